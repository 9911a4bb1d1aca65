"""GET <uri>?since=<ms>: the pull answer's shape, window, order and tombstones."""

import pytest
from todo.models import Project, Task

pytestmark = pytest.mark.django_db


def test_pull_answers_every_object_changed_after_since(sync):
    home = Project.objects.create(name="Home")
    Task.objects.create(name="Dishes", done=True, project=home)
    answer = sync.pull("taskUpdates", since=0)
    assert set(answer) == {"now", "updates"}
    [task] = answer["updates"]
    assert task == {
        "id": task["id"], "name": "Dishes", "done": True, "project": home.pk,
        "due": None, "priority": 0, "estimate": None, "notes": None,
        "_lastChange": task["_lastChange"],
    }
    assert task["_lastChange"] <= answer["now"]


def test_pull_since_now_returns_only_later_changes(sync):
    first = Task.objects.create(name="one")
    now = sync.pull("taskUpdates")["now"]
    assert sync.pull("taskUpdates", since=now)["updates"] == []
    second = Task.objects.create(name="two")
    first.name = "one, renamed"
    first.save()
    later = sync.pull("taskUpdates", since=now)
    assert [u["id"] for u in later["updates"]] == [second.pk, first.pk]
    assert later["now"] > now


def test_pull_without_since_is_since_zero(sync):
    Task.objects.create(name="x")
    response = sync.client.get("/taskUpdates")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert len(response.json()["updates"]) == 1


def test_pull_order_is_stamp_then_id(sync):
    # One push gives many objects one stamp: they must come sorted by id.
    ids = ["B2", "A1", "C3", "a0"]
    sync.push("taskUpdates", [{"id": i, "name": i} for i in ids])
    Task.objects.create(id="0", name="later")
    updates = sync.pull("taskUpdates")["updates"]
    assert [u["id"] for u in updates] == ["A1", "B2", "C3", "a0", "0"]
    stamps = [u["_lastChange"] for u in updates]
    assert stamps == sorted(stamps)


def test_deletions_are_pulled_as_removed_with_the_objects_own_id(sync):
    task = Task.objects.create(name="gone soon")
    task_id = task.pk
    before = sync.pull("taskUpdates")["now"]
    task.delete()
    [tombstone] = sync.pull("taskUpdates", since=before)["updates"]
    assert tombstone["id"] == task_id
    assert tombstone["_removed"] is True
    assert tombstone["_lastChange"] > before


def test_a_recreated_id_is_pulled_as_an_object_not_a_tombstone(sync):
    Task.objects.create(id="SAME", name="first").delete()
    sync.push("taskUpdates", [{"id": "SAME", "name": "second"}])
    [update] = sync.pull("taskUpdates")["updates"]
    assert update["name"] == "second" and "_removed" not in update


def test_now_does_not_move_without_writes(sync):
    Task.objects.create(name="x")
    assert sync.pull("taskUpdates")["now"] == sync.pull("taskUpdates")["now"]


@pytest.mark.parametrize("since", ["-1", "abc", "1.5", "1e3", "99999999999999999999", " 5"])
def test_a_bad_since_is_refused(sync, since):
    response = sync.client.get("/taskUpdates", {"since": since})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and "since" in body["error"]


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods_get_405(sync, method):
    response = getattr(sync.client, method)("/taskUpdates")
    assert response.status_code == 405
    assert response.json()["status"] == "error"


def test_a_first_sync_includes_rows_that_never_went_through_the_clock(sync):
    """Fixtures and data migrations (historical models) write the default stamp 0."""
    Task.objects.create(name="stamped")
    Task.objects.bulk_create([Task(id="RAW", name="raw")])
    from django.db.models import QuerySet

    QuerySet(Task).filter(pk="RAW").update(last_change=0)  # a write past the clock
    assert {u["id"] for u in sync.pull("taskUpdates", since=0)["updates"]} >= {"RAW"}
