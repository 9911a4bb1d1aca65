"""The sync client's full resync after the remote pruned deletions (persistence_sync.client.resync).

Through the public API, ``client.sync_all``, against tests.test_client's
in-memory server, whose ``prune(url)`` drops its deletions and answers older
pulls 410 like the real server (tests/test_retention.py tests that side).
"""

import pytest
from todo.models import Project, Task

from persistence_sync.client import sync_all
from persistence_sync.exceptions import TransportError
from persistence_sync.models import SyncState, Tombstone
from tests.test_client import PROJECTS, SERVER, TASKS, FakeServer, run

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
