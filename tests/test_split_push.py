"""Every part of a split push is the sync's own echo, in the next run too (issue 20).

A sync pushes its local changes in parts of at most ``PUSH_BATCH_SIZE``
items (halved after a 413); each part gets a stamp of its own. The next pull
brings every part's objects back, each carrying its part's stamp: each of
those stamps must be taken for the replica's own echo. Otherwise an object
of a later part, edited here after the sync, conflicts with its own older
value, and prefer-remote overwrites the edit, which is then never pushed.

Against the in-memory protocol server of ``test_client``; the same with real
processes, kills and HTTP in ``integration/test_syncall_soak_live.py``.
"""

import pytest
from django.test import override_settings
from todo.models import Project

from persistence_sync.client import sync_all
from persistence_sync.models import OutgoingPush, SyncState
from tests.test_client import PROJECTS, SERVER, FakeServer, run
from tests.test_client_paging import too_large_over

pytestmark = pytest.mark.django_db(transaction=True)

PART = 2  # PUSH_BATCH_SIZE of these tests: five objects go in three parts


@pytest.fixture
def server():
    return FakeServer()


def small_parts(size=PART):
    return override_settings(PERSISTENCE_SYNC={"PUSH_BATCH_SIZE": size})


def sync(server, handler="prefer-remote", **kwargs):
    with small_parts():
        return run(server, handler, **kwargs)


def sync_failing(server, handler="prefer-remote"):
    with small_parts():
        results = sync_all(server_url=SERVER, conflict_handler=handler, transport=server,
                           models=["todo.project", "todo.task"])
    assert not all(result.ok for result in results)
    return {result.model: result for result in results}


def five_projects_pushed_in_three_parts(server):
    run(server)
    for n in range(5):
        Project.objects.create(id=f"P{n}", name=f"v{n}")
    result = sync(server)["todo.project"]
    assert result.pushed == 5 and [len(items) for _, items in server.pushes] == [2, 2, 1]
    return {item["id"]: server.objects[PROJECTS][item["id"]]["_lastChange"]
            for _, items in server.pushes for item in items}


def edit_every_project_here():
    for project in Project.objects.all():
        Project.objects.filter(pk=project.pk).update(name=f"{project.name} edited")


def assert_every_edit_on_both_sides(server):
    names = {f"P{n}": f"v{n} edited" for n in range(5)}
    assert dict(Project.objects.values_list("id", "name")) == names
    assert {pk: item["name"] for pk, item in server.objects[PROJECTS].items()} == names


def assert_idle(server):
    pushes = len(server.pushes)
    for result in sync(server).values():
        assert (result.pulled, result.pushed, result.conflicts) == (0, 0, []), result.summary()
    assert len(server.pushes) == pushes


@pytest.mark.parametrize("handler", ["prefer-remote", "prefer-local"])
def test_an_edit_after_a_sync_pushed_in_parts_is_pushed_not_overwritten(server, handler):
    stamps = five_projects_pushed_in_three_parts(server)
    assert len(set(stamps.values())) == 3
    edit_every_project_here()
    result = sync(server, handler)["todo.project"]
    assert (result.conflicts, result.pushed) == ([], 5)
    assert_every_edit_on_both_sides(server)
    assert_idle(server)


def test_every_parts_stamp_is_kept_in_the_sync_state_until_a_pull_brought_it_back(server):
    stamps = five_projects_pushed_in_three_parts(server)
    state = SyncState.objects.get(model="todo.project")
    assert state.push_stamps == sorted(set(stamps.values()))
    assert state.server_push_date == max(stamps.values())  # the last push, as before
    sync(server)  # pulls the echoes back and pushes nothing: none is needed any more
    state.refresh_from_db()
    assert state.push_stamps == [] and state.server_push_date == max(stamps.values())


def test_the_halves_of_a_push_refused_as_too_large_are_echoes_too(server):
    run(server)
    for n in range(5):
        Project.objects.create(id=f"P{n}", name=f"v{n}")
    refused = too_large_over(server, 2)
    run(server)  # the default PUSH_BATCH_SIZE: one push of 5, refused and halved
    assert refused == [5, 3] and [len(items) for _, items in server.pushes] == [2, 1, 2]
    edit_every_project_here()
    result = run(server)["todo.project"]
    assert (result.conflicts, result.pushed) == ([], 5)
    assert_every_edit_on_both_sides(server)


def test_a_dry_run_between_forgets_no_echo(server):
    five_projects_pushed_in_three_parts(server)
    edit_every_project_here()
    with small_parts():
        dry = sync_all(server_url=SERVER, transport=server, dry_run=True,
                       models=["todo.project"])
    assert {r.model: r.conflicts for r in dry} == {"todo.project": [], "todo.task": []}
    result = sync(server)["todo.project"]
    assert (result.conflicts, result.pushed) == ([], 5)
    assert_every_edit_on_both_sides(server)


def test_a_run_killed_between_parts_is_completed_and_every_part_recognised(server):
    run(server)
    for n in range(5):
        Project.objects.create(id=f"P{n}", name=f"v{n}")
    calls = []
    real_push = server.push

    def push(url, items, push_id=None, replay=False):
        calls.append(len(items))
        if len(calls) == 2:  # the second part is stored and its answer lost
            server.lose_answers = 1
        return real_push(url, items, push_id=push_id, replay=replay)

    server.push = push
    failed = sync_failing(server)["todo.project"]
    server.push = real_push
    assert (failed.ok, failed.pushed) == (False, 2) and OutgoingPush.objects.count() == 2
    assert sorted(server.objects[PROJECTS]) == ["P0", "P1", "P2", "P3"]
    edit_every_project_here()
    # Replays both (each learns its stamp), then pushes the edits and P4 in parts.
    result = sync(server)["todo.project"]
    assert result.conflicts == [] and not OutgoingPush.objects.exists()
    assert_every_edit_on_both_sides(server)
    # That run's own parts are recognised by the next one too.
    edit_every_project_here()
    result = sync(server)["todo.project"]
    assert (result.conflicts, result.pushed) == ([], 5)
    names = {f"P{n}": f"v{n} edited edited" for n in range(5)}
    assert {pk: item["name"] for pk, item in server.objects[PROJECTS].items()} == names
    assert dict(Project.objects.values_list("id", "name")) == names
    assert_idle(server)


def test_someone_elses_change_is_still_a_conflict(server):
    """The echoes are our pushes' stamps only: another client's change stays a conflict."""
    five_projects_pushed_in_three_parts(server)
    server.put(PROJECTS, "P3", name="theirs")
    Project.objects.filter(pk="P3").update(name="mine")
    result = sync(server)["todo.project"]
    assert result.conflicts == [{"id": "P3", "properties": ["name"], "resolution": "remote"}]
    assert Project.objects.get(pk="P3").name == server.values(PROJECTS, "P3")["name"] == "theirs"
