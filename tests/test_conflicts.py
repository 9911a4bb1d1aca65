"""The conflict handler contract: Conflict helpers, the stock handlers, lookup by name."""

import pytest
from todo.models import Task

from persistence_sync.client.conflicts import Conflict, get_conflict_handler, prefer_local, prefer_remote
from persistence_sync.exceptions import ConflictHandlerError
from persistence_sync.registry import get_registration


def make_conflict():
    local = Task(pk="T1", owner_id=1, name="local name", done=False, project_id=None)
    remote = {"id": "T1", "name": "remote name", "done": 1, "project": None, "_lastChange": 9}
    return Conflict(local=local, remote=remote, properties=["name", "done"],
                    registration=get_registration(Task))


def test_prefer_local_pushes_the_local_values_and_keeps_the_object():
    conflict, updates = make_conflict(), [{"id": "OTHER", "name": "x"}]
    prefer_local([conflict], updates)
    assert updates[1] == {"id": "T1", "name": "local name", "done": False}
    assert conflict.local.name == "local name"


def test_prefer_remote_takes_remote_values_decoded():
    conflict, updates = make_conflict(), []
    prefer_remote([conflict], updates)
    assert (conflict.local.name, conflict.local.done) == ("remote name", True)
    assert updates == []


def test_take_remote_takes_only_the_properties_named():
    conflict = make_conflict()
    conflict.take_remote(["name"])
    assert (conflict.local.name, conflict.local.done) == ("remote name", False)


def test_helpers_read_values_on_the_wire_and_in_python():
    conflict = make_conflict()
    assert conflict.local_value("done") is False and conflict.remote_value("done") is True
    assert conflict.local_update(["name"]) == {"id": "T1", "name": "local name"}
    with pytest.raises(KeyError, match="todo.task has no synced property 'tags'"):
        conflict.local_value("tags")


def my_handler(conflicts, updates_to_push):
    pass


@pytest.mark.parametrize("name, expected", [
    ("prefer-local", prefer_local), ("prefer_remote", prefer_remote),
    ("tests.test_conflicts.my_handler", my_handler), (my_handler, my_handler),
])
def test_handler_lookup(name, expected):
    assert get_conflict_handler(name) is expected


@pytest.mark.parametrize("name, message", [
    ("no.such.handler", "--conflicts: cannot import conflict handler 'no.such.handler'"),
    ("persistence_sync.client.conflicts.STOCK_HANDLERS", "--conflicts: .* is not callable"),
    ("", "--conflicts must be 'prefer-local'"),
    (None, "--conflicts must be 'prefer-local'"),
])
def test_bad_handler_names_say_where_they_came_from(name, message):
    with pytest.raises(ConflictHandlerError, match=message):
        get_conflict_handler(name, "--conflicts")
