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
