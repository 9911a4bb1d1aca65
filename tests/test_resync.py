"""The sync client's full resync after the remote pruned deletions (persistence_sync.client.resync).

Through the public API, ``client.sync_all``, against tests.fakes'
in-memory server, whose ``prune(url)`` drops its deletions and answers older
pulls 410 like the real server (tests/test_retention.py tests that side).
"""

import pytest
from django.test import override_settings
from todo.models import Project, Task

from persistence_sync.client import sync_all
from persistence_sync.exceptions import TransportError
from persistence_sync.models import SyncState, Tombstone
from tests.fakes import PROJECTS, SERVER, TASKS, FakeServer, run

pytestmark = pytest.mark.django_db(transaction=True)


def by_model(results):
    return {result.model: result for result in results}


@pytest.fixture
def server():
    return FakeServer()


@pytest.fixture
def offline_replica(server):
    """A replica in sync with the server, which then deletes and prunes behind its back."""
    server.put(PROJECTS, "P1", name="Home")
    server.put(TASKS, "KEEP", name="keep", done=False, project="P1")
    server.put(TASKS, "GONE", name="deleted remotely", done=False, project="P1")
    server.put(TASKS, "ECHO", name="mine, deleted remotely", done=False, project="P1")
    run(server)
    server.delete(TASKS, "GONE")
    server.delete(TASKS, "ECHO")
    server.prune(TASKS)
    server.put(TASKS, "NEW", name="created remotely", done=False, project="P1")
    return server


def test_pruned_deletions_are_applied_and_local_changes_pushed(offline_replica):
    server = offline_replica
    mine = Task.objects.create(name="created offline", project_id="P1")
    Task.objects.filter(pk="KEEP").update(done=True)
    Task.objects.filter(pk="NEW").delete()  # not here yet: nothing to delete
    results = run(server)
    task = results["todo.task"]
    assert task.resynced and not results["todo.project"].resynced
    assert "full resync" in task.summary() and task.as_dict()["resynced"] is True
    assert (TASKS, 0) in server.pulls
    # No deleted object comes back, here or there; no local change is lost.
    assert set(Task.objects.values_list("pk", flat=True)) == {"KEEP", "NEW", mine.pk}
    assert set(server.objects[TASKS]) == {"KEEP", "NEW", mine.pk}
    assert server.values(TASKS, "KEEP")["done"] is True
    assert Task.objects.get(pk="KEEP").done is True
    assert task.removed == 2 and task.created == 1 and task.pushed == 2
    # The next run is an ordinary incremental one with nothing to do.
    since = SyncState.objects.get(model="todo.task").server_date
    again = run(server)["todo.task"]
    assert not again.resynced and (again.pulled, again.pushed, again.removed) == (0, 0, 0)
    assert server.pulls[-1] == (TASKS, since) and since > 0


def test_local_deletions_survive_a_resync(offline_replica):
    server = offline_replica
    Task.objects.filter(pk="KEEP").delete()
    result = run(server)["todo.task"]
    assert result.resynced and result.pushed == 1
    assert "KEEP" not in server.objects[TASKS] and not Task.objects.filter(pk="KEEP").exists()
    assert Tombstone.objects.filter(object_id="KEEP").exists()  # still served to our own clients


def test_local_edit_of_an_object_the_remote_deleted_and_pruned_is_kept(offline_replica):
    # The remote no longer knows it deleted ECHO: the local edit is kept and
    # pushed (documented in persistence_sync.client.resync), not silently dropped.
    server = offline_replica
    Task.objects.filter(pk="ECHO").update(name="edited offline")
    run(server)
    assert server.values(TASKS, "ECHO")["name"] == "edited offline"
    assert Task.objects.get(pk="ECHO").name == "edited offline"


def test_resync_dry_run_reports_and_writes_nothing(offline_replica):
    server = offline_replica
    before = list(SyncState.objects.values())
    result = by_model(sync_all(server_url=SERVER, models=["todo.task"], transport=server,
                                 dry_run=True))["todo.task"]
    assert result.resynced and (result.removed, result.created) == (2, 1)
    assert Task.objects.filter(pk="GONE").exists() and list(SyncState.objects.values()) == before


def test_a_failed_push_during_resync_changes_nothing_and_a_rerun_recovers(offline_replica):
    server = offline_replica
    mine = Task.objects.create(name="offline")
    server.fail_push = "HTTP 503"
    result = by_model(sync_all(server_url=SERVER, models=["todo.task"], transport=server))["todo.task"]
    assert not result.ok and Task.objects.filter(pk="GONE").exists()
    server.fail_push = None
    assert run(server, models=["todo.task"])["todo.task"].resynced
    assert not Task.objects.filter(pk="GONE").exists() and mine.pk in server.objects[TASKS]


def test_other_410s_are_errors_not_resyncs(server):
    server.put(PROJECTS, "P1", name="Home")
    run(server, models=["todo.project"])
    server.put(PROJECTS, "P2", name="Work")
    real_pull = server.pull

    def gone(url, since, **page):
        if since:
            raise TransportError("HTTP 410 Gone", status=410, answer={"status": "error"})
        return real_pull(url, since, **page)

    server.pull = gone
    result = by_model(sync_all(server_url=SERVER, models=["todo.project"], transport=server))[
        "todo.project"]
    assert "HTTP 410" in result.error and not Project.objects.filter(pk="P2").exists()


def test_a_local_edit_of_the_object_stamped_at_the_last_pulls_now_is_no_conflict(server):
    """The last pull's ``now`` is the stamp of its newest object: that value was seen."""
    server.put(TASKS, "OTHER", name="other", done=False, project=None)
    server.put(TASKS, "NEWEST", name="base", done=False, project=None)
    run(server, models=["todo.task"])
    assert SyncState.objects.get(model="todo.task").server_date == \
        server.objects[TASKS]["NEWEST"]["_lastChange"]
    Task.objects.filter(pk="NEWEST").update(name="edited here")
    server.delete(TASKS, "OTHER")
    server.prune(TASKS)
    result = run(server, "prefer-remote", models=["todo.task"])["todo.task"]
    assert result.resynced and result.conflicts == [] and result.pushed == 1
    assert Task.objects.get(pk="NEWEST").name == "edited here"
    assert server.values(TASKS, "NEWEST")["name"] == "edited here"
    assert not Task.objects.filter(pk="OTHER").exists()


def test_an_object_created_here_while_a_resync_decides_is_kept_and_pushed(offline_replica):
    server = offline_replica
    server.put(TASKS, "KEEP", name="changed there", done=False, project="P1")
    Task.objects.filter(pk="KEEP").update(name="changed here")  # a conflict: the handler runs

    def create_while_deciding(conflicts, updates_to_push):
        # Another process writes while syncall decides (the handler is called then).
        Task.objects.create(id="LATE", name="created meanwhile", project_id="P1")

    result = run(server, create_while_deciding, models=["todo.task"])["todo.task"]
    assert result.resynced and [c["id"] for c in result.conflicts] == ["KEEP"]
    assert Task.objects.get(pk="LATE").name == "created meanwhile"
    assert "LATE" not in server.objects[TASKS]
    again = run(server, models=["todo.task"])["todo.task"]
    assert again.pushed == 1 and server.values(TASKS, "LATE")["name"] == "created meanwhile"
    assert Task.objects.filter(pk="LATE").exists()


@override_settings(PERSISTENCE_SYNC={"PULL_PAGE_SIZE": 2})
def test_a_resync_after_an_interrupted_paged_pull_starts_from_the_first_page(server):
    for n in range(6):
        server.put(TASKS, f"T{n}", name=f"v1 {n}", done=False, project=None)
    run(server, models=["todo.task"])
    for n in range(6):
        server.put(TASKS, f"T{n}", name=f"v2 {n}", done=False, project=None)
    server.fail_after_pages = len(server.pages) + 2  # the projects' page, then one of tasks
    failed = sync_all(server_url=SERVER, models=["todo.task"], transport=server)
    assert not any(result.ok for result in failed)
    state = SyncState.objects.get(model="todo.task")
    assert state.page_after == "T1"  # the first page is written; the pull stopped after it
    server.fail_after_pages = None
    server.delete(TASKS, "T5")
    server.prune(TASKS)  # the resumed pull's since is now older than the horizon
    result = run(server, models=["todo.task"])["todo.task"]
    assert result.resynced
    assert dict(Task.objects.values_list("pk", "name")) == {f"T{n}": f"v2 {n}" for n in range(5)}
    assert set(server.objects[TASKS]) == {f"T{n}" for n in range(5)}
