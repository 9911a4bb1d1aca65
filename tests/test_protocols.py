"""One standard for both protocols: every guarantee of the core, tried through each face.

persistence.sync's classic endpoints and WatermelonDB's endpoint share one
request pipeline (persistence_sync/endpoints.py). Each scenario here runs
once per protocol through a small adapter (:class:`Classic`,
:class:`Watermelon`) that speaks the wire shapes, so that a guarantee a
face forgets fails on that face: scoping, hidden == missing, revocation and
re-grant, limits, throttles, signals, lock timeouts, paging, idempotent
retries and database errors.
"""

import json
import threading
import time
from contextlib import contextmanager
from unittest import mock

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import OperationalError, connections, transaction
from django.test import Client, override_settings
from todo.models import Task

from persistence_sync import clock, signals
from persistence_sync.exceptions import ProtocolError
from tests.conftest import answer_bytes, demo_user
from tests.testapp.models import Board, Memo

pytestmark = pytest.mark.django_db

# Table name -> the classic endpoint's URI, for the models the scenarios use.
URIS = {"tasks": "taskUpdates", "projects": "projectUpdates", "memos": "memos",
        "comments": "comments", "boards": "boards", "gadgets": "gadgets"}
# Relations by field name: WatermelonDB names the column <field>_id.
RELATIONS = {"project", "memo", "team"}


class Answer:
    """A pull's answer, whatever the protocol: ``records`` by id, ``removed`` ids."""

    def __init__(self, response, records=None, removed=(), now=None, more=False, cursor=None):
        self.response, self.status = response, response.status_code
        self.records, self.removed = records or {}, set(removed)
        self.now, self.more, self.cursor = now, more, cursor


class Classic:
    name = "classic"

    def __init__(self, client):
        self.client, self.now = client, {}

    def pull(self, table, since=None, limit=None, cursor=None, **headers):
        params = {"since": self.now.get(table, 0) if since is None else since}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params.update(now=cursor[0], after=cursor[1])
        response = self.client.get(f"/{URIS[table]}", params, **headers)
        if response.status_code != 200:
            return Answer(response)
        body = json.loads(answer_bytes(response))
        records = {u["id"]: u for u in body["updates"] if not u.get("_removed")}
        removed = [u["id"] for u in body["updates"] if u.get("_removed")]
        if not body.get("more"):
            self.now[table] = body["now"]
        last = body["updates"][-1]["id"] if body["updates"] else None
        return Answer(response, records, removed, body["now"], body.get("more", False),
                      (body["now"], last))

    def push(self, table, records=(), removed=(), **headers):
        items = [*records, *({"id": pk, "_removed": True} for pk in removed)]
        return self.client.post(f"/{URIS[table]}", json.dumps(items),
                                content_type="application/json", **headers)


class Watermelon:
    name = "watermelon"

    def __init__(self, client):
        self.client, self.timestamp = client, None

    def pull(self, table, since=None, limit=None, cursor=None, **headers):
        since = self.timestamp if since is None else (since or None)
        params = {"last_pulled_at": "null" if since is None else since}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        response = self.client.get("/watermelon", params, **headers)
        if response.status_code != 200:
            return Answer(response)
        body = json.loads(answer_bytes(response))
        changes = body["changes"].get(table, {"created": [], "updated": [], "deleted": []})
        records = {r["id"]: self.neutral(r) for r in changes["created"] + changes["updated"]}
        if not body.get("hasMore"):
            self.timestamp = body["timestamp"]
        return Answer(response, records, changes["deleted"], body["timestamp"],
                      body.get("hasMore", False), body.get("cursor"))

    def push(self, table, records=(), removed=(), **headers):
        if self.timestamp is None:
            self.timestamp = json.loads(answer_bytes(self.client.get(
                "/watermelon", {"last_pulled_at": "null"})))["timestamp"]
        changes = {table: {"created": [], "updated": [self.raw(r) for r in records],
                           "deleted": list(removed)}}
        return self.client.post(f"/watermelon?last_pulled_at={self.timestamp}",
                                json.dumps(changes), content_type="application/json", **headers)

    @staticmethod
    def raw(record):
        return {f"{k}_id" if k in RELATIONS else k: v for k, v in record.items()}

    @staticmethod
    def neutral(raw):
        return {k[:-3] if k[:-3] in RELATIONS else k: v for k, v in raw.items()}


@pytest.fixture(params=[Classic, Watermelon], ids=["classic", "watermelon"])
def protocol(request):
    """``protocol(user)``: a device of that user speaking the protocol."""
    def device(user):
        client = Client()
        client.force_login(user)
        return request.param(client)

    return device


@pytest.fixture
def ann():
    return User.objects.create_user("ann", password="pw")


@pytest.fixture
def bob():
    return User.objects.create_user("bob", password="pw")


def refused(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error", body
    return body


# --- who sees and touches what -------------------------------------------------------


def test_a_user_sees_and_touches_only_their_own(protocol, ann, bob):
    ann_device, bob_device = protocol(ann), protocol(bob)
    assert ann_device.push("memos", [{"id": "M1", "text": "ann's"}]).status_code == 200
    assert "M1" not in bob_device.pull("memos", since=0).records
    assert refused(bob_device.push("memos", [{"id": "M1", "text": "bob's now"}]), 403)
    # A removal of a hidden object is a no-op, like one of a missing id.
    assert bob_device.push("memos", removed=["M1"]).status_code == 200
    assert Memo.objects.get(pk="M1").text == "ann's"


def test_a_foreign_key_to_a_hidden_object_answers_as_a_missing_one(protocol, ann, bob):
    protocol(ann).push("memos", [{"id": "M1", "text": "ann's"}])
    bob_device = protocol(bob)
    hidden = refused(bob_device.push("comments", [{"id": "C1", "memo": "M1"}]), 400)
    missing = refused(bob_device.push("comments", [{"id": "C1", "memo": "NOPE"}]), 400)
    assert [e["message"] for e in hidden["errors"]] == ["no Memo with id 'M1'"]
    assert [e["message"] for e in missing["errors"]] == ["no Memo with id 'NOPE'"]


def test_a_team_left_is_removed_and_a_team_rejoined_comes_back(protocol, ann):
    red = Group.objects.create(name="red")
    ann.groups.add(red)
    Board.objects.create(id="R1", team=red, title="red's")
    device = protocol(ann)
    assert set(device.pull("boards").records) == {"R1"}
    ann.groups.remove(red)
    left = device.pull("boards")
    assert (left.records, left.removed) == ({}, {"R1"})
    ann.groups.add(red)
    back = device.pull("boards")
    assert (set(back.records), back.removed) == ({"R1"}, set())


def test_a_record_that_moved_from_a_team_left_to_another_of_the_users_is_kept(protocol, ann):
    """The revocation names the record (it was in the lost team then); the record moved on
    to a team the user still has, so the pull answers the record, never also its removal."""
    red, blue = Group.objects.create(name="red"), Group.objects.create(name="blue")
    ann.groups.add(red, blue)
    Board.objects.create(id="R1", team=red, title="red's")
    away, other = protocol(ann), protocol(ann)
    assert set(away.pull("boards").records) == {"R1"}
    other.pull("boards")
    ann.groups.remove(red)
    assert other.pull("boards").removed == {"R1"}  # this pull recorded the revocation
    Board.objects.filter(pk="R1").update(team=blue)
    back = away.pull("boards")
    assert (set(back.records), back.removed) == ({"R1"}, set())
    assert back.records["R1"]["team"] == blue.pk


# --- limits, throttles -------------------------------------------------------------


@pytest.mark.parametrize("setting, value, status", [
    ("MAX_ITEMS", 2, 413), ("MAX_BODY_SIZE", 200, 413), ("MAX_VALUES", 8, 413),
])
def test_a_push_over_a_limit_is_refused_and_stores_nothing(protocol, ann, setting, value, status):
    device = protocol(ann)
    device.pull("memos")
    with override_settings(PERSISTENCE_SYNC={setting: value}):
        response = device.push("memos", [{"id": f"M{n}", "text": "x" * 100} for n in range(3)])
    refused(response, status)
    assert not Memo.objects.exists()


@override_settings(PERSISTENCE_SYNC={"THROTTLE_RATES": {"pull": "2/min", "push": "1/min"}})
def test_a_throttle_counts_one_request_once_and_refuses_it_whole(protocol, ann):
    cache.clear()
    device = protocol(ann)
    assert device.pull("memos").status == device.pull("memos").status == 200
    throttled = device.pull("memos")
    refused(throttled.response, 429)
    assert int(throttled.response["Retry-After"]) > 0
    assert device.push("memos", [{"id": "M1"}]).status_code == 200
    refused(device.push("memos", [{"id": "M2"}]), 429)
    assert list(Memo.objects.values_list("pk", flat=True)) == ["M1"]
    cache.clear()


@pytest.mark.parametrize("stamp", ["\u00b2", "\u0663", "9223372036854775808", "-1", "1e3"])
def test_a_malformed_stamp_is_a_400_never_a_500(protocol, ann, stamp):
    """str.isdigit() takes a superscript two that int() refuses; 2**63 overflows the column."""
    answer = protocol(ann).pull("memos", since=stamp)
    assert "must be a non-negative integer" in refused(answer.response, 400)["error"]


# --- signals -------------------------------------------------------------------------


@contextmanager
def receiving(signal, receiver, sender):
    signal.connect(receiver, sender=sender)
    try:
        yield
    finally:
        signal.disconnect(receiver, sender=sender)


def test_pre_push_may_refuse_and_post_push_follows_a_stored_push(
        protocol, ann, django_capture_on_commit_callbacks):
    device = protocol(ann)
    device.pull("memos")
    seen = []

    def refuse(sender, changes, **kwargs):
        if "BAD" in changes:
            raise ProtocolError("no bad memos", status_code=403)

    def stored(sender, changes, stamp, **kwargs):
        seen.append((set(changes), stamp))

    with receiving(signals.pre_push, refuse, Memo), receiving(signals.post_push, stored, Memo):
        with django_capture_on_commit_callbacks(execute=True):
            refused(device.push("memos", [{"id": "BAD"}]), 403)
        assert seen == [] and not Memo.objects.exists()
        with django_capture_on_commit_callbacks(execute=True):
            assert device.push("memos", [{"id": "OK"}]).status_code == 200
    assert seen == [({"OK"}, Memo.objects.get().last_change)]


def test_post_pull_tells_what_a_pull_answered(protocol, ann):
    device = protocol(ann)
    device.push("memos", [{"id": "M1"}, {"id": "M2"}])
    Memo.objects.filter(pk="M2").delete()
    pulled = []

    def record(sender, since, now, count, **kwargs):
        pulled.append((since, now, count))

    with receiving(signals.post_pull, record, Memo):
        answer = device.pull("memos", since=0)
    assert pulled == [(0, answer.now, len(answer.records) + len(answer.removed))]


# --- the clock's lock timeout ---------------------------------------------------------


@contextmanager
def clock_held(model, seconds):
    """Another writer holds ``model``'s clock (a transaction that ticked it) for ``seconds``."""
    ticked, done = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                clock.tick(model, "default")
                ticked.set()
                done.wait(seconds)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    assert ticked.wait(10)
    try:
        yield
    finally:
        done.set()
        thread.join()


@pytest.mark.django_db(transaction=True)
@override_settings(PERSISTENCE_SYNC={"LOCK_TIMEOUT": 1})
def test_a_push_behind_a_held_clock_gets_503_after_lock_timeout(protocol, ann):
    device = protocol(ann)
    device.pull("memos")
    with clock_held(Memo, 30):
        started = time.monotonic()
        response = device.push("memos", [{"id": "M1"}])
        waited = time.monotonic() - started
    refused(response, 503)
    assert int(response["Retry-After"]) >= 1 and waited < 10
    assert not Memo.objects.exists()


# --- paging ------------------------------------------------------------------------


@pytest.mark.parametrize("count", [4, 5])
def test_pages_hold_every_change_once_and_end_when_the_window_ends(protocol, count):
    device = protocol(demo_user())
    tasks = [Task.objects.create(id=f"T{n}", name=f"task {n}") for n in range(count)]
    Task.objects.filter(pk="T1").delete()
    seen, removed, pages, cursor = {}, set(), 0, None
    while True:
        answer = device.pull("tasks", since=0, limit=2, cursor=cursor)
        assert answer.status == 200 and len(answer.records) + len(answer.removed) <= 2
        assert not set(answer.records) & set(seen)
        seen.update(answer.records)
        removed |= answer.removed
        pages += 1
        if not answer.more:
            break
        cursor = answer.cursor
    assert set(seen) == {task.pk for task in tasks} - {"T1"}
    # T1's tombstone is no removal to a first sync that never had it (watermelon), or is
    # answered among the objects by id (classic); either way each id comes once.
    assert removed <= {"T1"}
    # A last page that exactly fills its limit says that nothing follows.
    assert pages == -(-(count - 1 + len(removed)) // 2)


def test_a_change_between_two_pages_reaches_the_device_by_the_next_sync(protocol):
    """Every page of one pull reads the first page's window: a record changed meanwhile,
    behind the page already sent, comes with the next sync, not never."""
    device = protocol(demo_user())
    for n in range(4):
        Task.objects.create(id=f"T{n}", name=f"task {n}")
    device.pull("tasks")
    Task.objects.filter(pk__in=["T1", "T2"]).update(name="changed")
    first = device.pull("tasks", limit=1)
    assert set(first.records) == {"T1"} and first.more
    Task.objects.filter(pk="T1").update(name="changed again")
    second = device.pull("tasks", limit=1, cursor=first.cursor)
    assert set(second.records) == {"T2"} and not second.more
    assert device.pull("tasks").records["T1"]["name"] == "changed again"


# --- idempotent retries ----------------------------------------------------------------


def test_a_retried_push_id_is_stored_once_and_belongs_to_its_user(protocol, ann, bob):
    ann_device, bob_device = protocol(ann), protocol(bob)
    ann_device.pull("memos")
    bob_device.pull("memos")
    headers = {"HTTP_X_SYNC_PUSH_ID": "push-1"}
    assert ann_device.push("memos", [{"id": "M1", "text": "first"}], **headers).status_code == 200
    stamp = Memo.objects.get(pk="M1").last_change
    # The same push again (its answer was lost): stored once, whatever the body.
    assert ann_device.push("memos", [{"id": "M1", "text": "again"}], **headers).status_code == 200
    assert Memo.objects.get(pk="M1").text == "first" and Memo.objects.get().last_change == stamp
    # Another user's push with the same id is a push of theirs.
    assert bob_device.push("memos", [{"id": "M2", "text": "bob's"}], **headers).status_code == 200
    assert Memo.objects.get(pk="M2").owner == bob


# --- the database ------------------------------------------------------------------


def test_a_database_error_while_pulling_or_pushing_is_a_json_503(protocol, ann):
    device = protocol(ann)
    device.pull("memos")
    failure = OperationalError("could not connect to server: Connection refused")
    with mock.patch.object(clock, "committed_now_and_horizon", side_effect=failure):
        pulled = device.pull("memos", since=0)
    refused(pulled.response, 503)
    assert int(pulled.response["Retry-After"]) >= 1
    with mock.patch.object(clock, "tick", side_effect=failure):
        pushed = device.push("memos", [{"id": "M1"}])
    refused(pushed, 503)
    assert "nothing was stored" in pushed.json()["error"] and not Memo.objects.exists()
