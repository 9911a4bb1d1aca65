"""POST <uri>: storing a batch whole under one fresh stamp."""

import json

import pytest
from django.test import override_settings
from todo.models import Project, Task

from persistence_sync.models import Tombstone

pytestmark = pytest.mark.django_db


def test_push_creates_objects_with_the_clients_ids(sync):
    answer = sync.push("projectUpdates", [{"id": "0A1B2C3D4E5F60718293A4B5C6D7E8F9", "name": "Home"}])
    assert answer["status"] == "ok"
    project = Project.objects.get()
    assert project.pk == "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
    assert project.last_change == answer["now"]


def test_ids_are_echoed_exactly(sync):
    odd = "lower-case id with spaces ü"
    sync.push("projectUpdates", [{"id": odd, "name": "x"}])
    assert sync.pull("projectUpdates")["updates"][0]["id"] == odd


def test_new_objects_get_model_defaults_for_missing_fields(sync):
    sync.push("taskUpdates", [{"id": "T", "name": "only a name"}])
    task = Task.objects.get()
    assert task.done is False and task.project is None


def test_one_stamp_for_the_whole_batch(sync):
    Project.objects.create(id="P", name="p")
    answer = sync.push("taskUpdates", [
        {"id": "T1", "name": "a", "project": "P"},
        {"id": "T2", "name": "b", "done": True},
    ])
    assert set(Task.objects.values_list("last_change", flat=True)) == {answer["now"]}
    assert {u["_lastChange"] for u in sync.pull("taskUpdates")["updates"]} == {answer["now"]}


def test_partial_update_keeps_the_other_fields(sync):
    Project.objects.create(id="P", name="p")
    sync.push("taskUpdates", [{"id": "T", "name": "a", "done": False, "project": "P"}])
    sync.push("taskUpdates", [{"id": "T", "done": True}])
    task = Task.objects.get()
    assert (task.name, task.done, task.project_id) == ("a", True, "P")


def test_client_lastchange_is_ignored(sync):
    answer = sync.push("taskUpdates", [{"id": "T", "name": "a", "_lastChange": 5}])
    assert Task.objects.get().last_change == answer["now"]


def test_every_push_gets_a_fresh_stamp_even_an_empty_one(sync):
    stamps = [sync.push("taskUpdates", [])["now"] for _ in range(5)]
    sync.push("taskUpdates", [{"id": "T", "name": "a"}])
    stamps.append(sync.push("taskUpdates", [{"id": "T", "name": "a"}])["now"])  # changes nothing
    stamps.append(sync.push("taskUpdates", [{"id": "T", "name": "b"}])["now"])
    assert len(set(stamps)) == len(stamps)
    assert stamps == sorted(stamps)


def test_an_update_that_changes_nothing_keeps_the_old_stamp(sync):
    first = sync.push("taskUpdates", [{"id": "T", "name": "a", "done": True}])["now"]
    second = sync.push("taskUpdates", [{"id": "T", "name": "a", "done": 1}])["now"]
    assert second > first
    assert Task.objects.get().last_change == first
    assert sync.pull("taskUpdates", since=first)["updates"] == []


def test_only_changed_objects_of_a_batch_get_the_new_stamp(sync):
    old = sync.push("taskUpdates", [{"id": "A", "name": "a"}, {"id": "B", "name": "b"}])["now"]
    new = sync.push("taskUpdates", [{"id": "A", "name": "a"}, {"id": "B", "name": "B!"}])["now"]
    stamps = dict(Task.objects.values_list("id", "last_change"))
    assert stamps == {"A": old, "B": new}


def test_removed_in_a_push_deletes_and_leaves_a_tombstone(sync):
    Task.objects.create(id="T", name="a")
    since = sync.pull("taskUpdates")["now"]
    answer = sync.push("taskUpdates", [{"id": "T", "_removed": True}])
    assert not Task.objects.exists()
    assert sync.pull("taskUpdates", since=since)["updates"] == [
        {"id": "T", "_removed": True, "_lastChange": answer["now"]}
    ]


@pytest.mark.parametrize("uri", ["taskUpdates", "gadgets"], ids=["scoped", "unscoped"])
def test_a_pushed_id_deleted_before_comes_back_live_without_its_removal(sync, uri):
    sync.push(uri, [{"id": "BACK", "name": "first"}])
    sync.push(uri, [{"id": "BACK", "_removed": True}])
    since = sync.pull(uri)["now"]
    answer = sync.push(uri, [{"id": "BACK", "name": "again"}])
    assert not Tombstone.objects.exists()
    for start in (0, since):
        [item] = sync.pull(uri, since=start)["updates"]
        assert (item["id"], item["name"], item["_lastChange"]) == ("BACK", "again", answer["now"])
        assert "_removed" not in item


def test_removing_an_unknown_id_is_not_an_error(sync):
    assert sync.push("taskUpdates", [{"id": "NOPE", "_removed": True}])["status"] == "ok"


def test_repeated_ids_in_one_batch_merge_in_order(sync):
    sync.push("taskUpdates", [
        {"id": "T", "name": "a", "done": False},
        {"id": "T", "done": True},
        {"id": "T", "name": "c"},
    ])
    task = Task.objects.get()
    assert (task.name, task.done) == ("c", True)


def test_a_relation_to_an_object_created_in_the_same_batch(sync):
    sync.push("nodes", [{"id": "child", "label": "c", "parent": "root"}, {"id": "root", "label": "r"}])
    updates = {u["id"]: u for u in sync.pull("nodes")["updates"]}
    assert updates["child"]["parent"] == "root" and updates["root"]["parent"] is None


def test_a_push_of_max_items_objects_is_accepted_by_default_and_one_more_is_not(sync):
    items = [{"id": f"{i:032X}", "name": f"task {i}", "done": i % 2 == 0} for i in range(10_001)]
    over = sync.client.post("/taskUpdates", data=json.dumps(items), content_type="application/json")
    assert over.status_code == 413 and not Task.objects.exists()
    body = json.dumps(items[:10_000])
    answer = sync.client.post("/taskUpdates", data=body, content_type="application/json")
    assert answer.status_code == 200, answer.content[:500]
    assert Task.objects.count() == 10_000
    assert set(Task.objects.values_list("last_change", flat=True).distinct()) == {answer.json()["now"]}


def test_a_chain_and_a_cycle_of_new_objects_in_one_batch(sync):
    """MariaDB checks foreign keys row by row: parents are written first, cycles relinked."""
    chain = [{"id": f"n{i}", "label": "c", "parent": f"n{i + 1}" if i < 300 else None}
             for i in range(301)]
    cycle = [{"id": "x", "label": "x", "parent": "y"}, {"id": "y", "label": "y", "parent": "x"}]
    sync.push("nodes", chain + cycle)
    parents = {u["id"]: u["parent"] for u in sync.pull("nodes")["updates"]}
    assert parents["n0"] == "n1" and parents["n300"] is None
    assert (parents["x"], parents["y"]) == ("y", "x")


def test_removed_false_is_an_update_not_a_removal(sync):
    """The classic client sends ``"_removed": false`` on objects it changed."""
    Task.objects.create(id="T", name="a")
    sync.push("taskUpdates", [{"id": "T", "name": "b", "_removed": False},
                              {"id": "N", "name": "new", "_removed": 0}])
    assert dict(Task.objects.values_list("id", "name")) == {"T": "b", "N": "new"}
    assert not Tombstone.objects.exists()


@override_settings(PERSISTENCE_SYNC={"BATCH_SIZE": 2})
def test_batches_larger_than_batch_size_are_stored_whole(sync):
    """Every set-based step works in chunks of BATCH_SIZE ids: none may drop a chunk."""
    sync.push("projectUpdates", [{"id": f"P{i}", "name": "p"} for i in range(7)])
    sync.push("taskUpdates", [{"id": f"T{i}", "name": "t", "project": f"P{i}"} for i in range(7)])
    since = sync.pull("taskUpdates")["now"]
    sync.push("taskUpdates", [{"id": f"T{i}", "done": True} for i in range(5)]
              + [{"id": f"T{i}", "_removed": True} for i in range(5, 7)])
    assert dict(Task.objects.values_list("id", "done")) == {f"T{i}": True for i in range(5)}
    assert Task.objects.filter(project_id__in=[f"P{i}" for i in range(5)]).count() == 5
    updates = sync.pull("taskUpdates", since=since)["updates"]
    assert [(u["id"], u.get("done"), u.get("_removed")) for u in updates] == [
        *[(f"T{i}", True, None) for i in range(5)], *[(f"T{i}", None, True) for i in range(5, 7)]]
    # A relation check over many chunks still finds every missing parent.
    body = sync.push("taskUpdates", [{"id": f"X{i}", "project": f"NO{i}"} for i in range(5)],
                     expect=400)
    assert [error["id"] for error in body["errors"]] == [f"X{i}" for i in range(5)]
    # Re-created ids forget their tombstones, chunk by chunk.
    sync.push("taskUpdates", [{"id": f"T{i}", "name": "again"} for i in range(5, 7)])
    assert not Tombstone.objects.filter(model="todo.task").exists()
