"""The change feed without a server: who each change concerns, every write path, long-polls, reconnects.

Each test gets a feed hub of its own whose watcher is the test itself:
:func:`advance` reads the clocks (in the test's transaction) and publishes
what moved, as the watcher thread does every ``FEED_INTERVAL``. Feed
connections are made through the real ``events`` view (Django's test
client, WSGI), left open, and asked for their pending notice. Servers,
processes and faults are tests/integration/test_feed_live.py's.
"""

import asyncio
import itertools
import json
import time

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings
from todo.models import Task

from persistence_sync import clock
from persistence_sync.feed import hub as hubs
from persistence_sync.feed import watch
from persistence_sync.feed.handler import FeedASGIHandler
from persistence_sync.feed.hub import AsyncSubscriber, History, Hub, Snapshot, ThreadSubscriber
from persistence_sync.feed.views import FeedConnection, FeedResponse, parse_since, parse_wait
from persistence_sync.models import ScopeGrant
from tests.testapp.models import Board, Comment, Gadget, Memo, Note

pytestmark = pytest.mark.django_db

OWNED = {"memos", "comments", "projectUpdates", "taskUpdates", "tagUpdates"}


@pytest.fixture
def feed(monkeypatch):
    """A hub of the test's own, advanced by the test (no watcher thread)."""
    hub = Hub("default")
    hub.start_at(Snapshot.of(watch.read_clocks("default")))
    monkeypatch.setattr(watch, "hub_for", lambda using: hub)
    return hub


def advance(hub):
    return watch.advance(hub, "default")


class Device:
    """A feed connection of ``user`` (None: anonymous), left open; ``notice()`` takes what waits."""

    def __init__(self, user, hub, since="now", **headers):
        self.client = Client()
        if user is not None:
            self.client.force_login(user)
        params = {}
        if since == "now":  # connected now, knowing everything so far: no first notice
            params["since"] = hub.current.token
        elif since is not None:
            params["since"] = since
        headers.setdefault("HTTP_ACCEPT", "text/event-stream")  # as an EventSource asks
        self.response = self.client.get("/events", params, **headers)
        assert self.response.status_code == 200, self.response.content
        assert self.response["Content-Type"] == "text/event-stream"
        assert isinstance(self.response, FeedResponse)
        self.subscriber = self.response.feed.subscriber

    def notice(self):
        """``(endpoints, tables)`` of the pending notice, or None."""
        notice = self.subscriber.take()
        return None if notice is None else (set(notice.endpoints), set(notice.tables))

    def close(self):
        self.response.close()


@pytest.fixture
def people():
    return {name: User.objects.create_user(name, password="pw") for name in ("ann", "bob")}


@pytest.fixture
def devices(feed, people):
    made = []

    def connect(name, **kwargs):
        device = Device(people.get(name), feed, **kwargs)
        made.append(device)
        return device

    yield connect
    for device in made:
        device.close()


def memo(owner, pk="M1", **values):
    return Memo.objects.create(id=pk, owner=owner, **values)


# --- whom a change concerns ----------------------------------------------------


def test_a_first_connection_is_told_to_pull_everything_it_may_read(devices, feed):
    endpoints, tables = devices("ann", since=None).notice()
    assert OWNED | {"gadgets", "notes", "boards"} <= endpoints
    assert {"memos", "tasks", "gadgets", "boards"} <= tables
    anonymous, _ = devices(None, since=None).notice()
    assert "gadgets" in anonymous and not anonymous & OWNED  # owner= needs a user
    assert devices("ann").notice() is None  # since= now: nothing missed


def test_a_change_reaches_its_owner_only(devices, feed, people):
    ann, bob, nobody = devices("ann"), devices("bob"), devices(None)
    memo(people["ann"])
    advance(feed)
    assert ann.notice() == ({"memos"}, {"memos"})
    assert bob.notice() is None and nobody.notice() is None
    Task.objects.create(id="T1", name="bob's", owner=people["bob"])
    advance(feed)
    assert bob.notice() == ({"taskUpdates"}, {"tasks"})
    assert ann.notice() is None


def test_a_later_change_of_the_same_model_is_not_told_again(devices, feed, people):
    """Windows are (previous, current]: what a client heard of is not announced again,
    live or on reconnecting, when someone else's object of that model changes."""
    memo(people["ann"])
    heard = advance(feed)
    ann, bob = devices("ann"), devices("bob")
    memo(people["bob"], pk="M2")
    advance(feed)
    assert bob.notice() == ({"memos"}, {"memos"})
    assert ann.notice() is None
    assert devices("ann", since=heard.token).notice() is None


def test_an_unscoped_model_concerns_everyone_who_may_read_it(devices, feed):
    ann, bob, nobody = devices("ann"), devices("bob"), devices(None)
    Gadget.objects.create(id="G1", name="g")
    advance(feed)
    for device in (ann, bob, nobody):
        assert device.notice() == ({"gadgets"}, {"gadgets"})


def test_a_queryset_registration_is_followed_as_a_whole(devices, feed):
    """get_queryset= without a scope: the feed cannot tell whose rows changed (docs/events.md)."""
    ann, bob = devices("ann"), devices("bob")
    Note.objects.create(id="N1", owner="ann")
    advance(feed)
    assert ann.notice() == ({"notes"}, {"notes"}) == bob.notice()


def test_a_team_change_reaches_the_team_only(devices, feed, people):
    red = Group.objects.create(name="red")
    people["ann"].groups.add(red)
    ann, bob = devices("ann"), devices("bob")
    Board.objects.create(id="B1", team=red)
    advance(feed)
    assert ann.notice() == ({"boards"}, {"boards"})
    assert bob.notice() is None, "bob is not in red: he learns nothing of its boards"


def test_a_notices_id_is_the_now_a_pull_answers(devices, feed, people):
    """The SSE bytes as an EventSource reads them: a client whose pull answered a now at
    or above the id has the change already."""
    device = devices("ann")
    Gadget.objects.create(id="G1", name="older")  # another clock, so that ids are not sums
    memo(people["ann"])
    advance(feed)
    chunks = iter(device.response.streaming_content)
    assert next(chunks).startswith(b"retry: ")
    event = next(chunks).decode()
    lines = event.rstrip("\n").split("\n")
    assert lines[0] == "event: change" and event.endswith("\n\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    pull = Client()
    pull.force_login(people["ann"])
    assert int(fields["id"]) == pull.get("/memos", {"since": 0}).json()["now"]
    assert json.loads(fields["data"]) == {"endpoints": ["gadgets", "memos"],
                                          "tables": ["gadgets", "memos"]}


def test_changes_of_one_snapshot_come_as_one_notice(devices, feed, people):
    ann = devices("ann")
    memo(people["ann"])
    Comment.objects.create(id="C1", owner=people["ann"])
    Task.objects.create(id="T1", name="t", owner=people["ann"])
    snapshot = advance(feed)
    notice = ann.subscriber.take()
    assert set(notice.endpoints) == {"memos", "comments", "taskUpdates"}
    assert notice.snapshot.position == snapshot.position


def test_connections_made_while_the_windows_are_read_hear_only_their_own(feed, people, monkeypatch):
    """The watcher reads whom a window concerns for the models subscribed to; a connection
    to a model new to the process, made meanwhile, gets that window read too, not a guess."""
    memo(people["ann"])
    publish, arrived = feed.publish, []

    def publish_after_two_connect(*args):
        if not arrived:
            arrived.extend([Device(people["bob"], feed), Device(people["ann"], feed)])
        return publish(*args)

    monkeypatch.setattr(feed, "publish", publish_after_two_connect)
    advance(feed)
    bob, ann = arrived
    try:
        assert bob.notice() is None and ann.notice() == ({"memos"}, {"memos"})
    finally:
        bob.close()
        ann.close()


# --- every write path ------------------------------------------------------------


def push(user, uri, items):
    client = Client()
    client.force_login(user)
    response = client.post(f"/{uri}", json.dumps(items), content_type="application/json")
    assert response.status_code == 200, response.content
    return response


def watermelon_push(user, changes):
    client = Client()
    client.force_login(user)
    response = client.post("/watermelon?last_pulled_at=1", json.dumps(changes),
                           content_type="application/json")
    assert response.status_code == 200, response.content


WRITES = {
    "classic push": lambda ann: push(ann, "memos", [{"id": "M2", "text": "pushed"}]),
    "watermelon push": lambda ann: watermelon_push(
        ann, {"memos": {"created": [{"id": "M2", "text": "w"}], "updated": [], "deleted": []}}),
    "save": lambda ann: Memo.objects.filter(id="M1").get().save(),
    "update": lambda ann: Memo.objects.filter(owner=ann).update(text="u"),
    "bulk_create": lambda ann: Memo.objects.bulk_create([Memo(id="M2", owner=ann)]),
    "bulk_update": lambda ann: Memo.objects.bulk_update([Memo(id="M1", owner=ann, text="b")], ["text"]),
    "delete": lambda ann: Memo.objects.filter(id="M1").delete(),
    "classic removal": lambda ann: push(ann, "memos", [{"id": "M1", "_removed": True}]),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_every_write_path_reaches_the_owner_and_no_one_else(devices, feed, people, write):
    ann = people["ann"]
    memo(ann)
    advance(feed)
    ann_device, bob_device = devices("ann"), devices("bob")
    WRITES[write](ann)
    advance(feed)
    assert ann_device.notice() == ({"memos"}, {"memos"})
    assert bob_device.notice() is None


def test_a_cascade_reaches_the_owners_of_what_it_removed(devices, feed, people):
    ann = people["ann"]
    memo(ann)
    Comment.objects.create(id="C1", owner=ann, memo_id="M1")
    advance(feed)
    device, bob = devices("ann"), devices("bob")
    Memo.objects.get(id="M1").delete()
    advance(feed)
    assert device.notice() == ({"memos", "comments"}, {"memos", "comments"})
    assert bob.notice() is None


def test_a_move_reaches_the_old_owner_and_the_new_one(devices, feed, people):
    ann, bob = people["ann"], people["bob"]
    memo(ann)
    advance(feed)
    ann_device, bob_device = devices("ann"), devices("bob")
    moved = Memo.objects.get(id="M1")
    moved.owner = bob  # the admin giving ann's memo to bob
    moved.save()
    advance(feed)
    assert ann_device.notice() == ({"memos"}, {"memos"})  # a removal for her devices
    assert bob_device.notice() == ({"memos"}, {"memos"})


@override_settings(PERSISTENCE_SYNC={"FEED_SCOPE_REFRESH": 0})
def test_a_grant_and_a_revocation_reach_the_user(devices, feed, people):
    red = Group.objects.create(name="red")
    Board.objects.create(id="B1", team=red)
    advance(feed)
    bob = devices("bob")
    people["bob"].groups.add(red)  # the project grants bob the red team
    advance(feed)  # bob's scope values are read again (FEED_SCOPE_REFRESH)
    assert bob.notice() == ({"boards"}, {"boards"})
    Board.objects.create(id="B2", team=red)  # and he now hears of red's boards
    advance(feed)
    assert bob.notice() == ({"boards"}, {"boards"})
    people["bob"].groups.remove(red)
    advance(feed)
    assert bob.notice() == ({"boards"}, {"boards"})  # a revocation: his next pull drops red's
    Board.objects.create(id="B3", team=red)
    advance(feed)
    assert bob.notice() is None


def test_a_revocation_reaches_only_the_user_who_lost_the_value(devices, feed, people):
    red = Group.objects.create(name="red")
    for person in people.values():
        person.groups.add(red)
    Board.objects.create(id="B1", team=red)
    bob = Client()
    bob.force_login(people["bob"])
    for name in ("ann", "bob"):  # each pull records its user's grant of red
        client = Client()
        client.force_login(people[name])
        assert client.get("/boards", {"since": 0}).status_code == 200
    advance(feed)
    ann = devices("ann")
    people["bob"].groups.remove(red)
    assert bob.get("/boards", {"since": 1}).status_code == 200  # records his revocation
    assert advance(feed).total > feed.history.snapshots[-2].total  # the revocation moved the clock
    assert ann.notice() is None, "ann, still in red, learns nothing of bob leaving it"


def test_a_grant_recorded_by_one_device_reaches_the_users_other_devices(devices, feed, people):
    red = Group.objects.create(name="red")
    Board.objects.create(id="B1", team=red)
    advance(feed)
    other_device = devices("bob")
    people["bob"].groups.add(red)
    client = Client()
    client.force_login(people["bob"])
    assert client.get("/boards", {"since": 1}).status_code == 200  # records the grant, stamped
    assert ScopeGrant.objects.filter(user=str(people["bob"].pk), active=True).exists()
    advance(feed)
    assert other_device.notice() == ({"boards"}, {"boards"})


# --- long-polls ----------------------------------------------------------------------


def long_poll(user, expect=200, **params):
    client = Client()
    if user is not None:
        client.force_login(user)
    response = client.get("/events", params)
    assert response.status_code == expect, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_a_long_poll_answers_what_changed_after_since(feed, people):
    before = feed.current.token
    assert long_poll(people["ann"], since=before, wait=0) == {
        "now": feed.current.position, "since": before, "endpoints": [], "tables": []}
    memo(people["ann"])
    after = advance(feed)
    answer = long_poll(people["ann"], since=before, wait=0)
    assert answer == {"now": after.position, "since": after.token, "endpoints": ["memos"],
                      "tables": ["memos"]}
    assert long_poll(people["bob"], since=before, wait=0)["endpoints"] == []
    # The answer's since names that snapshot: nothing more to tell, no loop.
    assert long_poll(people["ann"], since=answer["since"], wait=0)["endpoints"] == []


def test_a_long_poll_with_nothing_to_tell_waits_before_answering(feed, people):
    # Answering at once would make every WSGI client poll in a busy loop.
    started = time.monotonic()
    answer = long_poll(people["ann"], since=feed.current.token, wait=1)
    assert time.monotonic() - started >= 0.9
    assert answer["endpoints"] == [] and answer["since"] == feed.current.token


def test_a_long_poll_with_a_pulls_now_as_since(feed, people):
    memo(people["ann"])
    advance(feed)
    now = Client()
    now.force_login(people["ann"])
    pulled = now.get("/memos", {"since": 0}).json()["now"]
    memo(people["ann"], pk="M2")
    advance(feed)
    assert long_poll(people["ann"], since=pulled, wait=0)["endpoints"] == ["memos"]


def test_a_long_poll_knowing_nothing_is_told_to_pull_everything(feed, people):
    answer = long_poll(people["ann"], wait=0)
    assert OWNED <= set(answer["endpoints"]) and answer["since"] == feed.current.token


@pytest.mark.parametrize("params", [{"wait": "x"}, {"wait": "-1"}, {"wait": "1.5"},
                                    {"since": "abc", "wait": "0"}, {"since": "1.2.3", "wait": "0"},
                                    {"since": "-5"}, {"since": "9" * 40}])
def test_bad_parameters_are_a_400_naming_them(feed, people, params):
    body = long_poll(people["ann"], expect=400, **params)
    assert body["status"] == "error" and next(iter(params)) in body["error"]
    assert feed.subscriber_count() == 0


def test_wait_is_lowered_to_its_most():
    with override_settings(PERSISTENCE_SYNC={"FEED_MAX_WAIT": 30}):
        assert parse_wait("3600") == 30.0 and parse_wait("5") == 5.0 and parse_wait(None) is None


def test_anonymous_requests_are_refused_where_nothing_is_open_to_them(feed, fresh_registry):
    for registration in list(fresh_registry.registrations()):
        if not (registration.owner or registration.scope):
            fresh_registry.unregister(registration.model)
    response = Client().get("/events", {"wait": 0})
    assert response.status_code in (401, 403) and response.json()["status"] == "error"
    assert feed.subscriber_count() == 0


# --- reconnects ----------------------------------------------------------------------


def test_last_event_id_of_a_notice_tells_only_what_was_missed(devices, feed, people):
    ann = people["ann"]
    memo(ann)
    first = advance(feed)
    Task.objects.create(id="T1", name="t", owner=ann)
    advance(feed)
    # A client whose last notice was `first` missed the task, not the memo.
    device = devices("ann", since=None, HTTP_LAST_EVENT_ID=str(first.position))
    endpoints, _ = device.notice()
    assert "taskUpdates" in endpoints and not endpoints & {"projectUpdates", "tagUpdates"}
    assert devices("bob", since=None, HTTP_LAST_EVENT_ID=str(first.position)).notice() is None


def test_last_event_id_wins_over_the_since_an_event_source_first_connected_with(devices, feed,
                                                                               people, monkeypatch):
    # A wall clock that moves between the two writes: two models written in one
    # millisecond share a position, which (rightly) names the earlier snapshot too.
    monkeypatch.setattr(clock, "wall_ms", itertools.count(clock.wall_ms()).__next__)
    first = feed.current.token
    memo(people["ann"])
    after_memo = advance(feed)
    Task.objects.create(id="T1", name="t", owner=people["ann"])
    heard = advance(feed)  # the client heard of both, the task last
    assert heard.position > after_memo.position
    device = devices("ann", since=first, HTTP_LAST_EVENT_ID=str(heard.position))
    endpoints, _ = device.notice()
    assert "memos" not in endpoints  # since= alone would announce the memo again


def test_a_deletion_missed_while_away_is_told_on_reconnecting(devices, feed, people):
    memo(people["ann"])
    heard = advance(feed)  # the client's last notice
    Memo.objects.get(id="M1").delete()
    advance(feed)
    assert devices("ann", since=heard.token).notice() == ({"memos"}, {"memos"})
    assert devices("bob", since=heard.token).notice() is None


@pytest.mark.parametrize("last_event_id", ["garbage", "0", "12"])
def test_an_id_the_feed_cannot_place_gets_a_resync_hint(devices, feed, people, last_event_id):
    memo(people["ann"])
    advance(feed)
    feed.history = History()  # a process just started: it remembers no snapshot before now
    feed.history.add(feed.current)
    endpoints, _ = devices("ann", since=None, HTTP_LAST_EVENT_ID=last_event_id).notice()
    assert OWNED <= endpoints


def test_a_late_commit_below_a_notices_id_is_not_missed():
    """Clocks are per model: a change of A may commit after a notice of B at L with a stamp <= L.

    The baseline of L is the latest snapshot below L, never the one at L.
    """
    history = History()
    before = Snapshot.of({"a": 100, "b": 90})
    told = Snapshot.of({"a": 100, "b": 150})  # the client's notice: id 150
    late = Snapshot.of({"a": 140, "b": 150})  # a writer of A stamped 140 commits after it
    for snapshot in (before, told, late):
        history.add(snapshot)
    assert history.baseline(150) == before  # A's window (100, 140] is looked at again
    assert history.baseline(150, told.total) == told  # a long-poll's since names its snapshot
    other = Snapshot.of({"a": 120, "b": 150})  # another process's snapshot, never seen here
    assert history.baseline(150, other.total) == told  # the latest below it: at or before it
    assert history.baseline(100) is None and history.baseline(90, 150) is None  # too old


def test_since_and_wait_grammar():
    assert parse_since("1714000000123") == (1714000000123, None)
    assert parse_since("1714000000123.99") == (1714000000123, 99)
    assert parse_since(None) is None and parse_since("") is None


# --- delivery: coalescing, stalled clients ---------------------------------------------


def test_notices_waiting_for_a_client_fold_into_one():
    subscriber = ThreadSubscriber(None, [])
    snapshots = [Snapshot.of({"a": n}) for n in range(1, 101)]
    for n, snapshot in enumerate(snapshots):
        subscriber.deliver({f"e{n % 3}"}, {f"t{n % 3}"}, snapshot)
    notice = subscriber.take()
    assert notice.endpoints == {"e0", "e1", "e2"} and notice.snapshot == snapshots[-1]
    assert subscriber.take() is None


@override_settings(PERSISTENCE_SYNC={"FEED_SEND_TIMEOUT": 0.05, "FEED_HEARTBEAT": 0.01})
def test_a_client_that_stops_reading_is_dropped_and_leaves_the_hub():
    hub = Hub("default")
    hub.start_at(Snapshot.of({}))
    subscriber = AsyncSubscriber(None, [])
    hub.subscribe(subscriber)
    feed = FeedConnection(hub, subscriber)
    response = FeedResponse(feed, feed.events(), "text/event-stream")
    sent = []

    async def stalled_send(message):
        sent.append(message)
        if len(sent) > 3:  # the socket's buffers are full: this send never completes
            await asyncio.sleep(3600)

    async def serve():
        await FeedASGIHandler.stream(None, response, stalled_send)

    asyncio.run(asyncio.wait_for(serve(), 5))
    assert hub.subscriber_count() == 0 and subscriber.closed
    assert sent[0]["type"] == "http.response.start" and b"retry:" in sent[1]["body"]


@override_settings(PERSISTENCE_SYNC={"FEED_HEARTBEAT": 0.01})
def test_a_client_that_disconnects_leaves_the_hub_at_once():
    hub = Hub("default")
    hub.start_at(Snapshot.of({}))
    subscriber = AsyncSubscriber(None, [])
    hub.subscribe(subscriber)
    feed = FeedConnection(hub, subscriber)
    response = FeedResponse(feed, feed.events(), "text/event-stream")
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    async def serve():
        await FeedASGIHandler.serve_feed(FeedASGIHandler.__new__(FeedASGIHandler), response, receive,
                                         send)

    asyncio.run(asyncio.wait_for(serve(), 5))
    assert hub.subscriber_count() == 0 and subscriber.closed
    assert any(b": ping" in message.get("body", b"") for message in sent)  # it was streaming


def test_a_stalled_subscriber_costs_the_fan_out_nothing(feed):
    """deliver() never waits: a subscriber nobody reads keeps one pending notice."""
    stalled = ThreadSubscriber(None, [])
    for n in range(10_000):
        stalled.deliver({"gadgets"}, {"gadgets"}, Snapshot.of({"a": n + 1}))
    assert len(stalled._endpoints) == 1


def test_the_feed_is_served_at_events_by_the_router():
    from django.urls import reverse

    assert reverse("persistence_sync:events") == "/events"
    assert hubs.hubs is not None


# --- settings ------------------------------------------------------------------------

def test_good_feed_settings_pass_and_postgresql_needs_postgresql():
    from django.db import connection

    from persistence_sync.setting_values import check_settings

    good = {"FEED_BACKEND": "poll", "FEED_INTERVAL": 0.01, "FEED_HEARTBEAT": 15, "FEED_RETRY": 0,
            "FEED_SEND_TIMEOUT": 2.5, "FEED_MAX_WAIT": 0, "FEED_SCOPE_REFRESH": 0}
    with override_settings(PERSISTENCE_SYNC=good):
        assert check_settings() == []
    with override_settings(PERSISTENCE_SYNC={"FEED_BACKEND": "postgresql"}):
        errors = check_settings()
    assert [e.id for e in errors] == ([] if connection.vendor == "postgresql" else ["persistence_sync.E045"])


def test_manage_py_check_fails_on_a_bad_feed_setting():
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with override_settings(PERSISTENCE_SYNC={"FEED_INTERVAL": "fast"}):
        with pytest.raises(SystemCheckError, match="E046"):
            call_command("check", "--tag", "persistence_sync")


# --- what a write announces (PostgreSQL) --------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_write_notifies_the_feed_at_commit_and_a_rollback_does_not():
    from django.db import connection, transaction

    from persistence_sync.feed.announce import CHANNEL

    if connection.vendor != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's; elsewhere the feed reads the clocks (PS_DB=postgresql)")
    listener = watch.Listening("default").connect()
    try:
        with transaction.atomic():
            Gadget.objects.create(id="G1", name="g")
            Gadget.objects.filter(id="G1").update(count=2)  # one notification per model
            assert list(listener.notifies(timeout=0.2)) == [], "sent before the commit"
        heard = [(n.channel, n.payload) for n in listener.notifies(timeout=2, stop_after=1)]
        assert heard == [(CHANNEL, "testapp.gadget")]
        assert list(listener.notifies(timeout=0.3)) == []
        with pytest.raises(RuntimeError), transaction.atomic():
            Gadget.objects.create(id="G2", name="g")
            raise RuntimeError("rolled back")
        assert list(listener.notifies(timeout=0.5)) == [], "a rolled-back write was announced"
    finally:
        listener.close()


def test_other_databases_announce_nothing():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL announces (the test above)")
    gadget = Gadget.objects.create(id="G0", name="g")  # the clock's row exists from now on
    with CaptureQueriesContext(connection) as queries:
        gadget.save()
    statements = [query["sql"] for query in queries]
    # The tick (one UPDATE ... RETURNING, or UPDATE and SELECT) and the save; no NOTIFY.
    assert len(statements) in (2, 3) and not any("notify" in sql.lower() for sql in statements)
