"""Streamed answers and the paging extension (``?limit=N``, then ``now=`` and ``after=``)."""

import json

import pytest
from django.test import override_settings
from todo.models import Task

from tests.conftest import answer_bytes

pytestmark = pytest.mark.django_db


def pages(sync, since=0, limit=3):
    """Follow a paged pull to its end; returns the pages' answers."""
    answers = [sync.pull("taskUpdates", since=since, limit=limit)]
    while answers[-1]["more"]:
        last = answers[-1]
        answers.append(sync.pull("taskUpdates", since=since, limit=limit, now=last["now"],
                                 after=last["updates"][-1]["id"]))
    return answers


def ids(answers):
    return [u["id"] for answer in answers for u in answer["updates"]]


def push_tasks(sync, count, prefix="T"):
    # One push: every object shares one stamp, so only the id can order pages.
    sync.push("taskUpdates", [{"id": f"{prefix}{n:04d}", "name": str(n)} for n in range(count)])


def test_pages_hold_every_object_once_in_id_order_under_one_now(sync):
    push_tasks(sync, 10)
    Task.objects.create(id="T0003X", name="x").delete()  # a tombstone among them
    answers = pages(sync, limit=3)
    assert [len(a["updates"]) for a in answers] == [3, 3, 3, 2]
    assert [a["more"] for a in answers] == [True, True, True, False]
    assert len({a["now"] for a in answers}) == 1
    expected = sorted([f"T{n:04d}" for n in range(10)] + ["T0003X"])
    assert ids(answers) == expected
    assert ids(answers) == [u["id"] for u in sync.pull("taskUpdates")["updates"]]


def test_a_page_size_that_divides_the_window_ends_with_an_empty_last_page_or_none(sync):
    push_tasks(sync, 6)
    answers = pages(sync, limit=3)
    assert ids(answers) == [f"T{n:04d}" for n in range(6)]
    assert answers[-1]["more"] is False


def test_a_change_between_pages_is_in_the_next_sync_not_skipped(sync):
    push_tasks(sync, 6)
    first = sync.pull("taskUpdates", limit=2)
    assert ids([first]) == ["T0000", "T0001"]
    Task.objects.filter(pk="T0004").update(name="renamed")  # re-stamped after the window
    Task.objects.filter(pk="T0005").delete()
    Task.objects.filter(pk="T0000").update(name="seen already")
    rest = [first]
    while rest[-1]["more"]:
        rest.append(sync.pull("taskUpdates", limit=2, now=first["now"],
                              after=rest[-1]["updates"][-1]["id"]))
    assert ids(rest) == ["T0000", "T0001", "T0002", "T0003"]
    later = sync.pull("taskUpdates", since=first["now"])["updates"]
    assert [(u["id"], u.get("name"), u.get("_removed")) for u in later] == [
        ("T0000", "seen already", None), ("T0004", "renamed", None), ("T0005", None, True)]


@override_settings(PERSISTENCE_SYNC={"MAX_PAGE_SIZE": 4})
def test_a_limit_above_the_maximum_is_lowered_to_it(sync):
    push_tasks(sync, 6)
    answer = sync.pull("taskUpdates", limit=1000)
    assert len(answer["updates"]) == 4 and answer["more"] is True


def test_a_classic_pull_is_not_paged(sync):
    push_tasks(sync, 5)
    answer = sync.pull("taskUpdates")
    assert set(answer) == {"now", "updates"} and len(answer["updates"]) == 5


@pytest.mark.parametrize("params, message", [
    ({"limit": "0"}, "limit must be a positive integer"),
    ({"limit": "-2"}, "limit must be a positive integer"),
    ({"limit": "x"}, "limit must be a positive integer"),
    ({"now": "5"}, "send limit= too"),
    ({"limit": "2", "after": "T0001"}, "after= needs the now="),
    ({"limit": "2", "now": "abc"}, "now must be a non-negative integer"),
    ({"limit": "2", "now": "1", "since": "5"}, "must not be before since"),
])
def test_bad_paging_parameters_are_refused(sync, params, message):
    response = sync.client.get("/taskUpdates", params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_now_ahead_of_the_clock_is_refused(sync):
    """Such a window could hold writes that have not committed yet: they would be skipped."""
    push_tasks(sync, 2)
    now = sync.pull("taskUpdates")["now"]
    response = sync.client.get("/taskUpdates", {"limit": "1", "now": str(now + 1000)})
    assert response.status_code == 400
    assert "ahead of the server's clock" in response.json()["error"]


def test_a_large_answer_is_streamed_with_the_same_bytes(sync, settings):
    push_tasks(sync, 25)
    Task.objects.create(id="T0007X", name="x").delete()
    whole = sync.client.get("/taskUpdates", {"since": 0})
    assert not whole.streaming
    settings.PERSISTENCE_SYNC = {"BATCH_SIZE": 4}
    streamed = sync.client.get("/taskUpdates", {"since": 0})
    assert streamed.streaming and streamed["Content-Type"] == "application/json"
    body = answer_bytes(streamed)
    assert body == whole.content
    assert [u["id"] for u in json.loads(body)["updates"]] == sorted(
        [f"T{n:04d}" for n in range(25)] + ["T0007X"])


def test_paged_answers_are_streamed_too(sync, settings):
    push_tasks(sync, 25)
    settings.PERSISTENCE_SYNC = {"BATCH_SIZE": 4}
    response = sync.client.get("/taskUpdates", {"since": 0, "limit": 20})
    assert response.streaming
    answer = json.loads(answer_bytes(response))
    assert len(answer["updates"]) == 20 and answer["more"] is True


@pytest.mark.parametrize("cap", [0, 100])
@pytest.mark.parametrize("compiled_once", [True, False])
def test_a_paged_poll_answers_every_change_whether_read_by_id_or_by_stamp(
        sync, monkeypatch, cap, compiled_once):
    # A poll finding more than a few pages of changes reads in id order
    # (Pull.reads_by_id); with cap=0 every paged poll does. Real stamps are
    # beyond 32-bit integers: a comparison typed as one was dropped by Django
    # on PostgreSQL and MariaDB, and the poll answered nothing new. Both ways
    # of building the query: compiled once (persistence_sync.compiled), and
    # by the ORM every time (a registration whose queryset reads the request).
    from persistence_sync import compiled, pulls

    monkeypatch.setattr(pulls, "POLL_PAGES", 0)
    monkeypatch.setattr(pulls, "POLL_ROWS", cap)
    if not compiled_once:
        monkeypatch.setattr(compiled, "_shaped", lambda args: None)
    push_tasks(sync, 4, prefix="OLD")
    since = sync.pull("taskUpdates")["now"]
    push_tasks(sync, 5, prefix="NEW")
    Task.objects.filter(id="OLD0001").delete()
    answers = pages(sync, since=since, limit=2)
    assert ids(answers) == ["NEW0000", "NEW0001", "NEW0002", "NEW0003", "NEW0004", "OLD0001"]
    assert answers[-1]["updates"][-1].get("_removed") is True


def test_a_first_page_counts_its_window_and_every_page_names_the_user(sync):
    """The "total" and "user" extensions: what a client needs for a progress bar and a
    replica's owner, and nothing a classic (unpaged) pull carries."""
    push_tasks(sync, 7)
    Task.objects.create(id="T0003X", name="x").delete()  # a removal counts as an item
    answers = pages(sync, limit=3)
    assert answers[0]["total"] == 8 == len(ids(answers))
    assert ["total" in answer for answer in answers] == [True, False, False]
    assert {answer["user"] for answer in answers} == {"demo"}
    classic = sync.pull("taskUpdates")
    assert set(classic) == {"now", "updates"}
    # A poll counts only what changed since its last pull.
    Task.objects.filter(pk="T0001").update(name="again")
    assert sync.pull("taskUpdates", since=answers[0]["now"], limit=3)["total"] == 1


def test_the_total_is_the_requesters_own_window(sync):
    from django.contrib.auth import get_user_model

    push_tasks(sync, 4)
    other = get_user_model().objects.create_user("other")
    Task.objects.create(id="O1", name="not demo's", owner=other)
    assert sync.pull("taskUpdates", limit=2)["total"] == 4
