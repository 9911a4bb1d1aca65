"""Idempotent pushes (docs/protocol.md): X-Sync-Push-Id and X-Sync-Push-Replay."""

import datetime
import json

import pytest
from django.test import override_settings
from django.utils import timezone
from todo.models import Project

from persistence_sync.models import PushReceipt

pytestmark = pytest.mark.django_db


def post(sync, items, push_id=None, replay=False, uri="projectUpdates"):
    headers = {}
    if push_id is not None:
        headers["X-Sync-Push-Id"] = push_id
    if replay:
        headers["X-Sync-Push-Replay"] = "1"
    return sync.client.post(f"/{uri}", data=json.dumps(items), content_type="application/json",
                            headers=headers)


def test_a_repeated_push_id_gets_the_first_answer_and_stores_nothing_again(sync):
    first = post(sync, [{"id": "P1", "name": "first"}], push_id="abc-1")
    assert first.status_code == 200
    Project.objects.filter(pk="P1").update(name="changed since")
    again = post(sync, [{"id": "P1", "name": "first"}], push_id="abc-1")
    assert again.json() == first.json() == {"status": "ok", "now": first.json()["now"]}
    assert Project.objects.get().name == "changed since"
    replay = post(sync, [{"id": "P1", "name": "first"}], push_id="abc-1", replay=True)
    assert replay.json() == first.json()


def test_push_ids_are_per_model(sync):
    project = post(sync, [{"id": "P1", "name": "p"}], push_id="same")
    task = post(sync, [{"id": "T1", "name": "t"}], push_id="same", uri="taskUpdates")
    assert task.status_code == 200 and task.json()["now"] != project.json()["now"]


def test_a_replay_of_a_push_never_stored_stores_nothing_and_closes_the_id(sync):
    replay = post(sync, [{"id": "P1", "name": "late"}], push_id="lost-1", replay=True)
    assert replay.status_code == 200 and replay.json() == {"status": "abandoned"}
    assert not Project.objects.exists()
    assert post(sync, [], push_id="lost-1", replay=True).json() == {"status": "abandoned"}
    late = post(sync, [{"id": "P1", "name": "late"}], push_id="lost-1")
    assert late.status_code == 409 and "abandoned" in late.json()["error"]
    assert not Project.objects.exists()


def test_pushes_without_an_id_stay_classic(sync):
    answer = post(sync, [{"id": "P1", "name": "a"}])
    assert set(answer.json()) == {"status", "now"} and not PushReceipt.objects.exists()


@pytest.mark.parametrize("push_id, replay, message", [
    ("", False, "X-Sync-Push-Id must be"),
    ("a" * 65, False, "X-Sync-Push-Id must be"),
    ("has space", False, "X-Sync-Push-Id must be"),
    (None, True, "X-Sync-Push-Replay needs X-Sync-Push-Id"),
])
def test_bad_push_headers_are_refused_and_store_nothing(sync, push_id, replay, message):
    answer = post(sync, [{"id": "P1", "name": "a"}], push_id=push_id, replay=replay)
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert not Project.objects.exists() and not PushReceipt.objects.exists()


def test_a_refused_push_leaves_no_receipt(sync):
    refused = post(sync, [{"id": "T1", "project": "NOPE"}], push_id="r1", uri="taskUpdates")
    assert refused.status_code == 400 and not PushReceipt.objects.exists()
    # So its replay learns that it was never stored.
    replay = post(sync, [], push_id="r1", replay=True, uri="taskUpdates")
    assert replay.json() == {"status": "abandoned"}


@override_settings(PERSISTENCE_SYNC={"PUSH_RECEIPT_DAYS": 7})
def test_old_receipts_are_pruned_by_later_pushes(sync):
    post(sync, [{"id": "P1", "name": "a"}], push_id="old")
    PushReceipt.objects.update(received_at=timezone.now() - datetime.timedelta(days=8))
    post(sync, [{"id": "P2", "name": "b"}], push_id="new")
    assert list(PushReceipt.objects.values_list("push_id", flat=True)) == ["new"]


# --- pushes whose answer never came, named by the next push (X-Sync-Unanswered) --------


def watermelon_push(client, changes, last_pulled_at, push_id, unanswered=()):
    headers = {"X-Sync-Push-Id": push_id}
    if unanswered:
        headers["X-Sync-Unanswered"] = ",".join(unanswered)
    return client.post(f"/watermelon?last_pulled_at={last_pulled_at}", json.dumps(changes),
                       content_type="application/json", headers=headers)


def tasks(*records):
    return {"tasks": {"created": [], "updated": list(records), "deleted": []}}


def test_a_push_repeating_an_unanswered_ones_values_keeps_a_later_change(sync):
    """A device whose push answer was lost pushes the same columns again after another
    client changed one of them: the later, acknowledged change wins, and the record is
    stamped so that the device pulls it back."""
    from todo.models import Task

    device = sync.client
    timestamp = json.loads(device.get("/watermelon", {"last_pulled_at": "null"}).content)["timestamp"]
    first = watermelon_push(device, tasks({"id": "T1", "name": "mine", "done": False}),
                            timestamp, "push-A")
    assert first.status_code == 200  # stored; pretend its answer was lost on the way
    other = sync.push("taskUpdates", [{"id": "T1", "name": "theirs"}])  # acknowledged later
    task = Task.objects.get(pk="T1")
    assert task.name == "theirs" and task.last_change == other["now"]
    # The device pulled (the pull brought "theirs") but kept its own changed column,
    # as WatermelonDB does, and pushes it again, naming the push it never heard of.
    again = watermelon_push(device, tasks({"id": "T1", "name": "mine", "done": True}),
                            other["now"], "push-B", unanswered=["push-A"])
    assert again.status_code == 200
    task = Task.objects.get(pk="T1")
    assert task.name == "theirs" and task.done is True  # a value the device changed since: stored
    assert task.last_change > other["now"]  # re-stamped: the device's next pull brings "theirs"
    # The same push again is a repeat: stored once.
    assert watermelon_push(device, tasks({"id": "T1", "name": "mine", "done": False}),
                           other["now"], "push-B", unanswered=["push-A"]).status_code == 200
    assert Task.objects.get(pk="T1").done is True


def test_an_unanswered_push_never_stored_is_closed_and_its_late_copy_refused(sync):
    first = post(sync, [{"id": "P1", "name": "new"}], push_id="next", uri="projectUpdates")
    assert first.status_code == 200
    named = sync.client.post("/projectUpdates", "[]", content_type="application/json",
                             headers={"X-Sync-Push-Id": "later", "X-Sync-Unanswered": "lost"})
    assert named.status_code == 200
    late = post(sync, [{"id": "P2", "name": "late copy"}], push_id="lost")
    assert late.status_code == 409 and "abandoned" in late.json()["error"]
    assert list(Project.objects.values_list("pk", flat=True)) == ["P1"]


@pytest.mark.parametrize("headers, message", [
    ({"X-Sync-Unanswered": "a"}, "X-Sync-Unanswered needs X-Sync-Push-Id"),
    ({"X-Sync-Push-Id": "p", "X-Sync-Unanswered": "a,b c"}, "X-Sync-Unanswered must be"),
    ({"X-Sync-Push-Id": "p", "X-Sync-Unanswered": ",".join(f"u{n}" for n in range(21))},
     "at most 20"),
])
def test_bad_unanswered_headers_are_refused(sync, headers, message):
    response = sync.client.post("/projectUpdates", '[{"id": "P1", "name": "x"}]',
                                content_type="application/json", headers=headers)
    assert response.status_code == 400 and message in response.json()["error"]
    assert not Project.objects.exists()


def test_another_users_replay_of_my_next_id_neither_blocks_nor_answers_my_push(sync):
    """Push ids are the user's own: guessing or reusing one reveals and blocks nothing."""
    from django.contrib.auth.models import User
    from django.test import Client

    mallory = Client()
    mallory.force_login(User.objects.create_user("mallory"))
    replay = mallory.post("/projectUpdates", "[]", content_type="application/json",
                          headers={"X-Sync-Push-Id": "next-1", "X-Sync-Push-Replay": "1"})
    assert replay.json() == {"status": "abandoned"}  # closed for mallory only
    mine = post(sync, [{"id": "P1", "name": "mine"}], push_id="next-1")
    assert mine.status_code == 200 and Project.objects.get().name == "mine"
    again = mallory.post("/projectUpdates", json.dumps([{"id": "P2", "name": "hers"}]),
                         content_type="application/json", headers={"X-Sync-Push-Id": "next-1"})
    assert again.status_code == 409  # her own abandoned id, not my stamp
    assert "now" not in again.json() and Project.objects.count() == 1
