"""GET <uri>?since=<ms>: the pull answer's shape, window, order and tombstones."""

import pytest
from django.db import OperationalError
from todo.models import Project, Task

from persistence_sync import clock

pytestmark = pytest.mark.django_db


def test_pull_answers_every_object_changed_after_since(sync):
    home = Project.objects.create(name="Home")
    old = Task.objects.create(name="Old", project=home)
    dishes = Task.objects.create(name="Dishes", done=True, project=home)
    answer = sync.pull("taskUpdates", since=old.last_change)
    assert answer == {
        "now": dishes.last_change,
        "updates": [{"id": dishes.pk, "name": "Dishes", "done": True, "project": home.pk,
                     "due": None, "priority": 0, "estimate": None, "notes": None,
                     "_lastChange": dishes.last_change}],
    }


def test_pull_since_now_returns_only_later_changes(sync):
    first = Task.objects.create(name="one")
    now = sync.pull("taskUpdates")["now"]
    assert sync.pull("taskUpdates", since=now)["updates"] == []
    second = Task.objects.create(name="two")
    first.name = "one, renamed"
    first.save()
    later = sync.pull("taskUpdates", since=now)
    assert [u["id"] for u in later["updates"]] == sorted([second.pk, first.pk])
    assert later["now"] > now


def test_pull_without_since_is_since_zero(sync):
    Task.objects.create(name="x")
    response = sync.client.get("/taskUpdates")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert len(response.json()["updates"]) == 1


def test_pull_order_is_ascending_id_with_tombstones_among_the_objects(sync):
    """The order a persistence.js server on MySQL answers in, whatever the stamps.

    A client that resets and pulls again rebuilds its rows in the same order,
    and pages (``after=<id>``) follow it. Ids are upper-case hex, as the
    client makes them, so every database collation orders them alike.
    """
    sync.push("taskUpdates", [{"id": i, "name": i} for i in ["B2", "A1", "C3", "0F"]])
    Task.objects.create(id="07", name="later")
    Task.objects.create(id="A0", name="gone").delete()
    updates = sync.pull("taskUpdates")["updates"]
    assert [u["id"] for u in updates] == ["07", "0F", "A0", "A1", "B2", "C3"]
    assert [u.get("_removed", False) for u in updates] == [False, False, True, False, False, False]


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


def test_a_pull_whose_database_fails_answers_503_json(sync, monkeypatch):
    def database_down(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(clock, "committed_now_and_horizon", database_down)
    response = sync.client.get("/taskUpdates", {"since": 0})
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json" and response["Retry-After"] == "5"
    body = response.json()
    assert body["status"] == "error" and "retry later" in body["error"]
