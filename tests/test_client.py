"""The sync client's decisions, against an in-memory protocol server (no HTTP).

``FakeServer`` (tests/fakes.py) keeps objects per endpoint URL and follows
docs/protocol.md: pulls answer what changed after ``since`` in stamp order,
every push gets a fresh stamp that its changed objects carry. Tests edit it
directly to play "another client". ``HttpTransport`` is tested at the end over
a real socket (``recording_server``).
"""

import pytest
from todo.models import Project, Tag, Task

from persistence_sync.client import local, sync_all
from persistence_sync.client.transport import HttpTransport
from persistence_sync.exceptions import TransportError
from persistence_sync.models import SyncState, Tombstone
from tests.fakes import PROJECTS, SERVER, TAGS, TASKS, FakeServer, run


@pytest.fixture
def server():
    return FakeServer()


pytestmark = pytest.mark.django_db(transaction=True)


def test_first_sync_creates_remote_objects_then_a_second_run_does_nothing(server):
    server.put(PROJECTS, "P1", name="Home")
    server.put(TASKS, "T1", name="Dishes", done=False, project="P1")
    first = run(server)
    assert first["todo.project"].created == 1 and first["todo.task"].created == 1
    assert Task.objects.get(pk="T1").project_id == "P1"
    second = run(server)
    for result in second.values():
        assert (result.pulled, result.pushed, result.conflicts) == (0, 0, [])
    assert server.pushes == []


def test_local_changes_and_deletions_are_pushed_once(server):
    run(server)
    project = Project.objects.create(name="Work")
    task = Task.objects.create(name="Report", project=project)
    first = run(server)
    assert first["todo.project"].pushed == 1 and first["todo.task"].pushed == 1
    assert server.values(TASKS, task.pk) == {
        "id": task.pk, "name": "Report", "done": False, "project": project.pk,
        "due": None, "priority": 0, "estimate": None, "notes": None}
    task_id = task.pk
    task.delete()
    assert Tombstone.objects.filter(object_id=task_id).exists()
    second = run(server)
    assert second["todo.task"].pushed == 1
    assert task_id not in server.objects[TASKS]
    third = run(server)
    assert all(r.pushed == 0 and r.pulled == 0 for r in third.values())


def test_remote_values_taken_are_not_local_changes(server):
    project = Project.objects.create(name="Old")
    run(server)
    server.put(PROJECTS, project.pk, name="New")
    result = run(server)["todo.project"]
    assert (result.updated, result.pushed, result.conflicts) == (1, 0, [])
    assert Project.objects.get().name == "New"
    pushes = len(server.pushes)
    again = run(server)["todo.project"]
    assert (again.pulled, again.pushed) == (0, 0) and len(server.pushes) == pushes


def test_own_echo_is_not_a_conflict(server):
    project = Project.objects.create(name="A")
    run(server)  # pushes A; serverPushDate = that push
    Project.objects.filter(pk=project.pk).update(name="B")
    # Our push's echo (name A, _lastChange == serverPushDate) comes back with this pull.
    state = SyncState.objects.get(model="todo.project")
    assert server.objects[PROJECTS][project.pk]["_lastChange"] == state.server_push_date
    state.server_date = 0  # make the pull bring the echo back
    state.save()
    result = run(server)["todo.project"]
    assert result.conflicts == []
    assert server.values(PROJECTS, project.pk)["name"] == "B"


@pytest.fixture
def conflicted(server):
    project = Project.objects.create(name="base")
    run(server)
    server.put(PROJECTS, project.pk, name="remote")
    Project.objects.filter(pk=project.pk).update(name="local")
    return project


def test_conflict_prefer_remote(server, conflicted):
    result = run(server, "prefer-remote")["todo.project"]
    assert result.conflicts == [
        {"id": conflicted.pk, "properties": ["name"], "resolution": "remote"}]
    assert Project.objects.get().name == "remote"
    assert server.values(PROJECTS, conflicted.pk)["name"] == "remote"
    again = run(server)["todo.project"]
    assert (again.conflicts, again.pushed) == ([], 0)


def test_conflict_prefer_local(server, conflicted):
    result = run(server, "prefer-local")["todo.project"]
    assert result.conflicts[0]["resolution"] == "local"
    assert Project.objects.get().name == "local"
    assert server.values(PROJECTS, conflicted.pk)["name"] == "local"
    again = run(server, "prefer-local")["todo.project"]
    assert (again.conflicts, again.pushed) == ([], 0)


def join_names(conflicts, updates_to_push):
    for conflict in conflicts:
        conflict.local.name = f"{conflict.local.name}+{conflict.remote['name']}"


def test_custom_handler_changing_local_objects_is_pushed(server, conflicted):
    result = run(server, join_names)["todo.project"]
    assert result.conflicts[0]["resolution"] == "custom"
    assert Project.objects.get().name == "local+remote"
    assert server.values(PROJECTS, conflicted.pk)["name"] == "local+remote"
    again = run(server, join_names)["todo.project"]
    assert (again.conflicts, again.pushed, again.pulled) == ([], 0, 0)


def test_remote_removed_ids_we_lack_are_ignored(server):
    project = Project.objects.create(name="keep")
    run(server)
    server.removed[PROJECTS] = {"6DC57EE5D8C14B0284A9096E84DC84F1": server.tick()}
    result = run(server)["todo.project"]
    assert result.removed == 0 and Project.objects.filter(pk=project.pk).exists()


def test_remote_deletion_is_applied_and_not_pushed_back(server):
    project = Project.objects.create(name="gone soon")
    run(server)
    server.delete(PROJECTS, project.pk)
    result = run(server)["todo.project"]
    assert result.removed == 1 and not Project.objects.exists()
    again = run(server)["todo.project"]
    assert again.pushed == 0


def test_failed_push_changes_nothing_locally_and_a_rerun_converges(server):
    project = Project.objects.create(name="mine")
    run(server)
    server.put(PROJECTS, "R1", name="theirs")
    project_id = project.pk
    project.delete()
    server.fail_push = "HTTP 500 Internal Server Error"
    before = list(SyncState.objects.values())
    result = sync_all(server_url=SERVER, models=["todo.project"], transport=server)[0]
    assert not result.ok and "todo.project" in result.error and PROJECTS in result.error
    assert list(SyncState.objects.values()) == before
    assert not Project.objects.filter(pk="R1").exists()
    server.fail_push = None
    result = run(server)["todo.project"]
    assert result.created == 1 and result.pushed == 1
    assert project_id not in server.objects[PROJECTS]


def test_failed_pull_names_model_and_url(server):
    server.fail_pull = "cannot connect: refused"
    result = sync_all(server_url=SERVER, models=["todo.tag"], transport=server)[0]
    assert result.error == f"todo.tag ({TAGS}): cannot connect: refused"
    assert not SyncState.objects.exists()


def test_bad_remote_value_is_an_error_not_corruption(server):
    server.put(TASKS, "T1", name="x", done="maybe")
    result = sync_all(server_url=SERVER, models=["todo.task"], transport=server)[0]
    assert "'done'" in result.error and not Task.objects.exists()


def test_dry_run_writes_nothing(server, conflicted):
    Tag.objects.create(name="new")
    results = sync_all(server_url=SERVER, transport=server, dry_run=True)
    by_model = {r.model: r for r in results}
    assert by_model["todo.project"].conflicts and by_model["todo.tag"].pushed == 1
    assert server.pushes[-1][0] != TAGS and Project.objects.get().name == "local"


def test_write_between_collect_and_apply_is_merged_not_lost(server, monkeypatch):
    project = Project.objects.create(name="v1")
    task = Task.objects.create(name="t", project=project)
    run(server)
    server.put(TASKS, task.pk, name="t", done=True, project=project.pk)  # remote: done
    Project.objects.create(name="p2")
    real_collect = local.collect_all

    def collect_then_edit(runs, using):
        real_collect(runs, using)
        if any(run.registration.model is Task for run in runs):
            Task.objects.filter(pk=task.pk).update(name="renamed here")

    monkeypatch.setattr(local, "collect_all", collect_then_edit)
    run(server, models=["todo.task"])
    monkeypatch.undo()
    task.refresh_from_db()
    assert (task.name, task.done) == ("renamed here", True)
    run(server, models=["todo.task"])
    assert server.values(TASKS, task.pk)["name"] == "renamed here"


def test_a_deletion_on_one_side_wins_over_a_change_on_the_other(server):
    mine, theirs = Project.objects.create(name="mine"), Project.objects.create(name="theirs")
    run(server)
    mine_id, theirs_id = mine.pk, theirs.pk
    server.put(PROJECTS, mine_id, name="changed there")
    mine.delete()
    server.delete(PROJECTS, theirs_id)
    Project.objects.filter(pk=theirs_id).update(name="changed here")
    result = run(server)["todo.project"]
    assert sorted(result.conflicts, key=lambda c: c["id"] == theirs_id) == [
        {"id": mine_id, "properties": [], "resolution": "deleted"},
        {"id": theirs_id, "properties": [], "resolution": "deleted"},
    ]
    assert not Project.objects.exists() and server.objects[PROJECTS] == {}
    again = run(server)["todo.project"]
    assert (again.conflicts, again.pushed, again.pulled) == ([], 0, 0)


def test_a_pulled_removed_false_is_an_object_not_a_deletion(server):
    """Some servers send ``"_removed": false`` on every live object."""
    server.put(PROJECTS, "P1", name="live", _removed=False)
    result = run(server)["todo.project"]
    assert result.created == 1 and Project.objects.get(pk="P1").name == "live"


def push_a_compromise(conflicts, updates_to_push):
    """Leaves the local objects alone and only appends to the push."""
    for conflict in conflicts:
        updates_to_push.append({"id": conflict.id, "name": "agreed"})
    updates_to_push.append({"id": "EXTRA", "name": "added by the handler"})


def test_a_handlers_additions_to_the_push_are_pushed_and_kept(server, conflicted):
    result = run(server, push_a_compromise)["todo.project"]
    assert result.conflicts == [
        {"id": conflicted.pk, "properties": ["name"], "resolution": "custom"}]
    assert server.values(PROJECTS, conflicted.pk)["name"] == "agreed"
    assert server.values(PROJECTS, "EXTRA") == {"id": "EXTRA", "name": "added by the handler"}
    assert Project.objects.get(pk=conflicted.pk).name == "agreed"
    again = run(server)["todo.project"]
    assert (again.conflicts, again.pushed) == ([], 0)
    assert Project.objects.get(pk="EXTRA").name == "added by the handler"


def push_only_the_name(conflicts, updates_to_push):
    for conflict in conflicts:
        updates_to_push.append(conflict.local_update(["name"]))


def test_what_a_handler_keeps_but_does_not_push_is_pushed_with_what_it_pushed(server):
    task = Task.objects.create(name="base")
    run(server, models=["todo.task"])
    server.put(TASKS, task.pk, name="remote", done=True, project=None)
    Task.objects.filter(pk=task.pk).update(name="local")
    result = run(server, push_only_the_name, models=["todo.task"])["todo.task"]
    assert result.conflicts == [{"id": task.pk, "properties": ["name", "done"],
                                 "resolution": "local"}]
    assert server.values(TASKS, task.pk) == {"id": task.pk, "name": "local", "done": False,
                                             "project": None, "due": None, "priority": 0,
                                             "estimate": None, "notes": None}
    assert Task.objects.values_list("name", "done").get() == ("local", False)


def delete_both(conflicts, updates_to_push):
    for conflict in conflicts:
        updates_to_push.append({"id": conflict.id, "_removed": True})


def test_a_handler_that_pushes_a_removal_deletes_the_object_on_both_sides(server, conflicted):
    run(server, delete_both)
    assert not Project.objects.exists()
    assert conflicted.pk not in server.objects[PROJECTS]
    again = run(server)["todo.project"]
    assert (again.conflicts, again.pushed, again.pulled) == ([], 0, 0)


def while_saving(model, action, stage="saving"):
    """A progress callback that runs ``action`` just before ``model``'s sync writes locally:
    another process changing the replica while syncall runs.

    A first sync's pages may be written as they are pulled: ``stage="pulling"``
    runs ``action`` before that.
    """
    done = []

    def progress(result, reached):
        if result.model == model and reached == stage and not done:
            done.append(True)
            action()

    return progress


def test_a_remote_deletion_spares_an_object_changed_here_while_syncall_ran(server):
    project = Project.objects.create(name="v1")
    run(server)
    server.delete(PROJECTS, project.pk)
    edit = while_saving("todo.project",
                        lambda: Project.objects.filter(pk=project.pk).update(name="edited here"))
    result = run(server, models=["todo.project"], progress=edit)["todo.project"]
    assert result.removed == 0
    assert Project.objects.get(pk=project.pk).name == "edited here"
    # The local change wins as a later write: it is pushed next run and not deleted.
    again = run(server, models=["todo.project"])["todo.project"]
    assert again.pushed == 1 and again.removed == 0
    assert server.values(PROJECTS, project.pk) == {"id": project.pk, "name": "edited here"}
    assert Project.objects.filter(pk=project.pk).exists()


def edit_another_project():
    """A local change: the model's pull is then decided and written as a whole, at "saving"
    (with none, its pages would be written as they come, before that)."""
    other = Project.objects.create(name="other")
    return lambda: Project.objects.filter(pk=other.pk).update(name="other, edited")


@pytest.mark.parametrize("whole", [False, True], ids=["pages", "whole"])
def test_a_remote_value_spares_the_same_field_changed_here_while_syncall_ran(server, whole):
    project = Project.objects.create(name="v1")
    edit_other = edit_another_project()
    run(server)
    server.put(PROJECTS, project.pk, name="remote")
    if whole:
        edit_other()
    edit = while_saving("todo.project",
                        lambda: Project.objects.filter(pk=project.pk).update(name="mine"))
    run(server, models=["todo.project"], progress=edit)
    assert Project.objects.get(pk=project.pk).name == "mine"
    run(server, models=["todo.project"])
    assert server.values(PROJECTS, project.pk)["name"] == "mine"


def test_a_remote_creation_spares_an_id_deleted_here_while_syncall_ran_to_its_end(server):
    edit_other = edit_another_project()
    run(server)
    server.put(PROJECTS, "R1", name="theirs")
    edit_other()

    def create_and_delete():  # after the local changes were read, before they are written
        Project.objects.create(id="R1", name="mine").delete()

    first = run(server, models=["todo.project"],
                progress=while_saving("todo.project", create_and_delete))["todo.project"]
    assert not Project.objects.filter(pk="R1").exists()
    again = run(server, models=["todo.project"])["todo.project"]
    assert (first.pushed, again.pushed) == (1, 1)  # the edit, then the deletion
    assert "R1" not in server.objects[PROJECTS] and not Project.objects.filter(pk="R1").exists()


def test_a_remote_creation_spares_an_id_deleted_here_while_syncall_ran(server):
    run(server)
    server.put(PROJECTS, "R1", name="theirs")

    def create_and_delete():
        Project.objects.create(id="R1", name="mine").delete()

    # While the pull runs: its page is then not written as it comes, and the
    # local deletion wins over the remote's creation.
    first = run(server, models=["todo.project"],
                progress=while_saving("todo.project", create_and_delete, stage="pulling"))
    assert not Project.objects.filter(pk="R1").exists()
    again = run(server, models=["todo.project"])["todo.project"]
    assert first["todo.project"].pushed + again.pushed == 1
    assert "R1" not in server.objects[PROJECTS] and not Project.objects.filter(pk="R1").exists()


# --- HttpTransport over a real socket --------------------------------------------------


@pytest.mark.django_db(transaction=False)
def test_transport_retries_5xx_but_not_4xx(recording_server):
    url, answers = recording_server.url + "/x", recording_server.answers
    transport = HttpTransport(retries=3, backoff=0, timeout=5)
    answers[:] = [(503, {}), (502, {}), (200, {"now": 5, "updates": []})]
    answer = transport.pull(url, 0)
    assert (answer["now"], answer["updates"], answer["more"]) == (5, [], False)
    answers[:] = [(400, {"status": "error"}), (200, {})]
    with pytest.raises(TransportError, match="HTTP 400"):
        transport.push(url, [])
    assert len(answers) == 1


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("body, message", [
    # (An answer that is not JSON at all is retried: tests/test_transport_damaged_answers.py.)
    ('{"now": "x", "updates": []}', "not {"),
    ('{"now": 1, "updates": [{"name": 1}]}', "string id"),
])
def test_transport_refuses_malformed_answers(recording_server, body, message):
    recording_server.answers[:] = [(200, body.encode())]
    with pytest.raises(TransportError, match=message):
        HttpTransport(retries=3, backoff=0).pull(recording_server.url + "/x", 0)
    assert len(recording_server.requests) == 1  # not retried


@pytest.mark.django_db(transaction=False)
def test_transport_connection_refused_is_retried_then_reported():
    sleeps = []
    transport = HttpTransport(retries=3, backoff=0.1, sleep=sleeps.append)
    with pytest.raises(TransportError, match="cannot connect.*after 3 attempts"):
        transport.pull("http://127.0.0.1:1/x", 0)
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.5


def test_an_object_given_to_another_local_user_leaves_the_remote_account(server):
    """The replica syncs its own user's objects (client/owners.py): one given to another
    local user is a deletion for the remote account, and stays here with its new owner."""
    from django.contrib.auth import get_user_model

    other = get_user_model().objects.create_user("other")
    project = Project.objects.create(name="Home")
    run(server, models=["todo.project"])
    Project.objects.filter(pk=project.pk).update(owner=other)
    assert Tombstone.objects.filter(object_id=project.pk).exists()  # the departure
    result = run(server, models=["todo.project"])["todo.project"]
    assert result.pushed == 1 and result.removed == 0
    assert project.pk not in server.objects[PROJECTS]
    # The remote's deletion comes back in the next pull: it touches no object of another user.
    again = run(server, models=["todo.project"])["todo.project"]
    assert (again.pushed, again.removed) == (0, 0)
    assert Project.objects.get(pk=project.pk).owner == other


def syncall_command(server, monkeypatch, *args):
    """``manage.py syncall`` against ``server``; returns (stdout, stderr, CommandError or None)."""
    import io

    from django.core.management import CommandError, call_command

    monkeypatch.setattr(HttpTransport, "from_settings", classmethod(lambda cls: server))
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("syncall", "todo", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


def test_a_failure_is_said_once_with_the_models_it_stopped(server, monkeypatch):
    server.put(PROJECTS, "P1", name="Home")
    run(server, models=["todo.project"])  # the owner is known: the failure comes at the pull
    server.fail_pull = "HTTP 404 Not Found: no sync endpoint at this URL"
    out, err, failure = syncall_command(server, monkeypatch, "--server", SERVER)
    assert err.count("no sync endpoint at this URL") == 1
    assert ("failed: todo.project (http://remote.example/projectUpdates), todo.tag "
            "(http://remote.example/tagUpdates)\n  not synced: todo.task\n") in err
    assert "3 of 3 models failed" in str(failure)


def test_a_run_with_another_url_than_the_last_is_warned_of(server, monkeypatch):
    run(server)
    other = "http://REMOTE.example:8000/"  # the same server, maybe: state is kept per URL
    out, err, failure = syncall_command(server, monkeypatch, "--server", other)
    # Once per previous server, naming its models; the next run with the same URL is quiet.
    assert err.count("were last synced with") == 1
    assert "Warning: todo.project, todo.task were last synced with http://remote.example/," in err
    assert "Sync state is kept per URL" in err
    assert "were last synced" not in syncall_command(server, monkeypatch, "--server", other)[1]
    results = run(server)  # back to the first URL: warned of in the results too
    assert results["todo.project"].previous_url == "http://remote.example:8000/projectUpdates"


def test_an_object_moved_to_another_scope_here_is_pushed_as_a_move_not_a_deletion(server):
    """A scope= model's object moved between scopes here leaves a removal for its old scope
    (for this site's own clients), yet it lives on: the sync pushes the move, no deletion."""
    from django.contrib.auth.models import Group

    from tests.testapp.models import Board

    red, blue = Group.objects.create(name="red"), Group.objects.create(name="blue")
    Board.objects.create(id="B1", team=red, title="t")
    run(server, models=["testapp.board"])
    Board.objects.filter(pk="B1").update(team=blue)
    assert Tombstone.objects.filter(object_id="B1").exists()  # the departure from red
    result = run(server, models=["testapp.board"])["testapp.board"]
    assert (result.pushed, result.removed) == (1, 0)
    assert server.objects[SERVER + "boards"]["B1"]["team"] == blue.pk
    assert Board.objects.get(pk="B1").team == blue
