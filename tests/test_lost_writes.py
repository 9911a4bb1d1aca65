"""The three ways ``syncall`` used to lose acknowledged writes (issue 14), one test each.

Against the in-memory protocol server of ``test_client`` (idempotent pushes
included); the same scenarios over HTTP, with a proxy and a killed process,
are in ``integration/test_syncall_live.py``.
"""

import pytest
from django.db import DatabaseError
from todo.models import Project, Task

from persistence_sync.client import local, sync_all
from persistence_sync.models import OutgoingPush, SyncState, Tombstone
from tests.fakes import PROJECTS, SERVER, TASKS, FakeServer, run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server():
    return FakeServer()


def run_failing(server, handler="prefer-remote"):
    results = sync_all(server_url=SERVER, conflict_handler=handler, transport=server,
                       models=["todo.project", "todo.task"])
    assert not all(result.ok for result in results)
    return {result.model: result for result in results}


def assert_idle(server, **kwargs):
    pushes = len(server.pushes)
    for result in run(server, **kwargs).values():
        assert (result.pulled, result.pushed, result.conflicts) == (0, 0, []), result.summary()
    assert len(server.pushes) == pushes


# --- 1. a remote deletion's cascade is not a local deletion ---------------------------


def test_a_stale_cascade_does_not_delete_what_the_server_moved(server):
    server.put(PROJECTS, "P", name="old")
    server.put(PROJECTS, "Q", name="new")
    server.put(TASKS, "X", name="moved", done=False, project="P")
    run(server)
    server.put(TASKS, "X", project="Q")  # the server moves X out of P, then deletes P
    server.delete(PROJECTS, "P")
    results = run(server)
    assert results["todo.task"].conflicts == [] and results["todo.task"].pushed == 0
    assert "X" in server.objects[TASKS]
    assert Task.objects.get(pk="X").project_id == "Q" and not Project.objects.filter(pk="P")
    assert_idle(server)


def test_a_cascade_from_a_pull_older_than_the_move_is_not_pushed(server):
    """Projects are pulled again for a task naming a new one; that pull sees P deleted.

    The task pull came before the server moved X out of P: the local X still
    sits in P and goes with it, as a change taken from the remote, not pushed.
    """
    server.put(PROJECTS, "P", name="old")
    server.put(PROJECTS, "Q", name="new")
    server.put(TASKS, "X", name="moved", done=False, project="P")
    run(server)
    real_pull = server.pull
    calls = []

    def pull(url, since, **page):
        answer = real_pull(url, since, **page)
        calls.append(url)
        if calls == [PROJECTS]:
            server.put(PROJECTS, "P2", name="newer")
            server.put(TASKS, "T", name="in P2", done=False, project="P2")
        elif url == TASKS:
            server.put(TASKS, "X", project="Q")
            server.delete(PROJECTS, "P")
        return answer

    server.pull = pull
    results = run(server)
    server.pull = real_pull
    assert calls == [PROJECTS, TASKS, PROJECTS]
    assert Task.objects.get(pk="T").project_id == "P2"
    assert not Task.objects.filter(pk="X").exists()
    applied = SyncState.objects.get(model="todo.task").applied_stamp
    assert Tombstone.objects.get(object_id="X").last_change == applied
    assert results["todo.task"].pushed == 0 and server.values(TASKS, "X")["project"] == "Q"
    run(server)  # the next pull brings the move
    assert Task.objects.get(pk="X").project_id == "Q"
    assert_idle(server)


def test_a_pulled_child_of_a_parent_deleted_between_the_pulls_is_not_written(server):
    server.put(PROJECTS, "P", name="p")
    run(server)
    real_pull = server.pull
    calls = []

    def pull(url, since, **page):
        answer = real_pull(url, since, **page)
        calls.append(url)
        if calls == [PROJECTS]:
            server.put(PROJECTS, "P2", name="short-lived")
            server.put(TASKS, "T", name="in P2", done=False, project="P2")
        elif url == TASKS:
            server.delete(TASKS, "T")  # the server's cascade
            server.delete(PROJECTS, "P2")
        return answer

    server.pull = pull
    results = run(server)  # would fail on T's foreign key if T were written
    server.pull = real_pull
    assert calls == [PROJECTS, TASKS, PROJECTS] and results["todo.task"].created == 0
    assert not Task.objects.exists()
    assert_idle(server)


def test_a_local_child_of_a_parent_the_server_deleted_goes_with_it(server):
    server.put(PROJECTS, "P", name="doomed")
    run(server)
    Task.objects.create(id="Y", name="new here", project_id="P")
    server.delete(PROJECTS, "P")
    results = run(server)
    assert results["todo.task"].conflicts == [{"id": "Y", "properties": [],
                                               "resolution": "deleted"}]
    assert not Task.objects.exists() and "Y" not in server.objects.get(TASKS, {})
    assert_idle(server)


def test_a_local_deletion_wins_over_a_remote_change_of_a_child_it_took(server):
    server.put(PROJECTS, "P", name="p")
    server.put(TASKS, "X", name="x", done=False, project="P")
    run(server)
    Project.objects.get(pk="P").delete()  # and X with it, here
    server.put(TASKS, "X", name="renamed there")
    results = run(server)
    assert results["todo.task"].conflicts == [{"id": "X", "properties": [],
                                               "resolution": "deleted"}]
    assert "P" not in server.objects[PROJECTS] and "X" not in server.objects[TASKS]
    assert_idle(server)


def test_a_local_deletion_is_still_pushed(server):
    server.put(PROJECTS, "P", name="p")
    server.put(TASKS, "X", name="x", done=False, project="P")
    run(server)
    Project.objects.get(pk="P").delete()  # cascades to X: both are the user's deletions
    results = run(server)
    assert results["todo.project"].pushed == 1 and results["todo.task"].pushed == 1
    assert "P" not in server.objects[PROJECTS] and "X" not in server.objects[TASKS]


def test_a_parents_deletion_is_pushed_after_its_childrens_moves(server):
    """On a remote with CASCADE, the other order would delete the moved children there."""
    server.put(PROJECTS, "P", name="p")
    server.put(PROJECTS, "Q", name="q")
    server.put(TASKS, "X", name="x", done=False, project="P")
    run(server)
    Task.objects.filter(pk="X").update(project_id="Q")
    Project.objects.filter(pk="P").delete()
    Project.objects.filter(pk="Q").update(name="q2")
    run(server)
    assert [(url, [item["id"] for item in items]) for url, items in server.pushes] == [
        (PROJECTS, ["Q"]), (TASKS, ["X"]), (PROJECTS, ["P"])]


# --- 2. a push whose answer was lost ------------------------------------------------


@pytest.mark.parametrize("handler", ["prefer-remote", "prefer-local"])
def test_a_lost_answer_is_not_taken_for_someone_elses_change(server, handler):
    server.put(PROJECTS, "P", name="base")
    run(server)
    Project.objects.filter(pk="P").update(name="a")
    server.lose_answers = 1
    failed = run_failing(server, handler)["todo.project"]
    assert not failed.ok and server.values(PROJECTS, "P")["name"] == "a"
    assert OutgoingPush.objects.count() == 1
    Project.objects.filter(pk="P").update(name="a2")  # the replica's newer write
    results = run(server, handler)
    assert results["todo.project"].conflicts == []
    assert Project.objects.get().name == server.values(PROJECTS, "P")["name"] == "a2"
    assert not OutgoingPush.objects.exists()
    assert_idle(server, handler=handler)


@pytest.mark.parametrize("handler", ["prefer-remote", "prefer-local"])
def test_a_lost_answer_does_not_overwrite_the_servers_newer_write(server, handler):
    server.put(PROJECTS, "P", name="base")
    run(server)
    Project.objects.filter(pk="P").update(name="a")
    server.lose_answers = 1
    run_failing(server, handler)
    server.put(PROJECTS, "P", name="b")  # newer than the replica's delivered "a"
    results = run(server, handler)
    assert results["todo.project"].conflicts == []
    assert Project.objects.get().name == server.values(PROJECTS, "P")["name"] == "b"
    assert_idle(server, handler=handler)


def test_a_deletion_not_yet_pushed_when_the_answer_was_lost_is_pushed_next_run(server):
    server.put(PROJECTS, "P", name="p")
    server.put(PROJECTS, "Q", name="q")
    run(server)
    Project.objects.filter(pk="P").delete()
    Project.objects.filter(pk="Q").update(name="q2")
    server.lose_answers = 1  # the changes' push: the deletions' push is never sent
    run_failing(server)
    assert server.values(PROJECTS, "Q")["name"] == "q2" and "P" in server.objects[PROJECTS]
    results = run(server)
    assert results["todo.project"].pushed == 1 and "P" not in server.objects[PROJECTS]
    assert_idle(server)


def test_a_push_never_stored_is_decided_again(server):
    server.put(PROJECTS, "P", name="base")
    run(server)
    Project.objects.filter(pk="P").update(name="a")
    server.fail_push = "cannot connect: refused"
    run_failing(server)
    server.fail_push = None
    server.put(PROJECTS, "P", name="b")
    result = run(server, "prefer-remote")["todo.project"]
    # The replay learnt the push was never stored: "a" is a local change that
    # meets the server's "b", a real conflict.
    assert result.conflicts == [{"id": "P", "properties": ["name"], "resolution": "remote"}]
    assert Project.objects.get().name == server.values(PROJECTS, "P")["name"] == "b"
    assert server.receipts and None in server.receipts.values()


# --- 3. a run that fails after its push ---------------------------------------------


def test_a_sync_of_tasks_brings_the_projects_they_need(server):
    server.put(PROJECTS, "P2", name="new on the server")
    server.put(TASKS, "T", name="in P2", done=False, project="P2")
    Task.objects.create(id="X", name="mine")
    results = sync_all(server_url=SERVER, models=["todo.task"], transport=server)
    assert [(r.model, r.ok) for r in results] == [("todo.project", True), ("todo.task", True)]
    assert Task.objects.get(pk="T").project_id == "P2"
    assert server.values(TASKS, "X")["name"] == "mine"


def test_a_run_failing_after_its_push_reports_it_and_the_next_run_completes_it(
        server, monkeypatch):
    server.put(PROJECTS, "P", name="base")
    run(server)
    Project.objects.filter(pk="P").update(name="a")

    def fail(*args, **kwargs):
        raise DatabaseError("FOREIGN KEY constraint failed")

    monkeypatch.setattr(local, "apply_all", fail)
    failed = sync_all(server_url=SERVER, transport=server, models=["todo.project"])[0]
    monkeypatch.undo()
    assert (failed.ok, failed.pushed) == (False, 1)
    assert "FOREIGN KEY" in failed.error and "pushed 1" in failed.summary()
    Project.objects.filter(pk="P").update(name="a2")
    run(server)
    assert Project.objects.get().name == server.values(PROJECTS, "P")["name"] == "a2"
    assert_idle(server)
