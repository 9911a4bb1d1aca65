"""``syncall --follow``'s decisions (:mod:`persistence_sync.client.follow`), without HTTP.

The remote is ``FakeServer`` (tests/fakes.py) with its change feed's
long-poll; syncs are the real ``sync_all`` against it. The loop's decisions
are driven a step at a time: which models a notice makes due, that a burst
costs one sync, that a notice heard during a sync is not lost, the resync
hint, backoff and its cap, the remote without a feed, local writes (and
not the sync's own) making a model due. The whole command runs live in
tests/integration/test_follow_live.py.
"""

import base64
import os
import signal
import threading
import time

import pytest
from todo.models import Project, Task

from persistence_sync.client import sync_all
from persistence_sync.client.follow import (
    BACKOFF_CAP,
    LOCAL_CHECK,
    Backoff,
    Follower,
    FollowError,
    Pending,
    feed_url,
)
from persistence_sync.client.sync import groups
from persistence_sync.client.transport import HttpTransport
from persistence_sync.exceptions import TransportError
from persistence_sync.management.commands.syncall import AbandonSync, stopped_by_signals
from tests.fakes import PROJECTS, SERVER, TASKS, FakeServer

pytestmark = pytest.mark.django_db(transaction=True)

TODO = ["todo.project", "todo.task"]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def server():
    return FakeServer()


def make_follower(server, interval=30.0, during_sync=None, rand=lambda low, high: high):
    """A Follower of the to-do models on ``server``; ``.calls`` lists each sync's models."""
    calls, logged = [], []
    clock = Clock()

    def sync(labels):
        calls.append(None if labels is None else sorted(labels))
        if during_sync is not None:
            during_sync()
        return sync_all(server_url=SERVER, models=TODO if labels is None else sorted(labels),
                        conflict_handler="prefer-remote", transport=server)

    followed = [reg for group in groups(TODO) for reg in group]
    follower = Follower(sync, followed, SERVER, server, "default", interval=interval,
                        log=logged.append, clock=clock, rand=rand)
    follower.calls, follower.logged, follower.fake_clock = calls, logged, clock
    return follower


def sync_if_due(follower):
    if follower.due():
        return follower.sync_pending()
    return None


def test_the_feed_is_found_next_to_the_endpoints():
    assert feed_url("https://central.example.com/sync") == "https://central.example.com/sync/events"
    assert feed_url("http://h/") == "http://h/events"


def test_the_first_answer_is_taken_before_the_full_sync_and_covered_by_it(server):
    server.put(TASKS, "T1", name="before")
    follower = make_follower(server)
    assert follower.start_feed()
    assert server.feed_requests == [{"wait": "0"}]
    assert follower.since == str(server.stamp)
    assert not follower.pending  # the full sync that follows covers it


def test_a_burst_of_notices_costs_one_sync_of_the_models_named(server):
    follower = make_follower(server)
    follower.start_feed()
    for n in range(3):  # three notices before the loop gets to sync
        server.put(TASKS, f"T{n}", name=f"task {n}")
        follower.ask_feed(25)
    assert follower.stats.notices == 3
    sync_if_due(follower)
    assert follower.calls == [["todo.task"]]
    assert Task.objects.count() == 3
    assert sync_if_due(follower) is None  # nothing left to do


def test_names_of_endpoints_not_followed_are_left(server):
    follower = make_follower(server)
    follower.start_feed()
    follower.on_answer({"now": 1, "since": "1.1", "endpoints": ["otherUpdates"]}, "0.0")
    assert not follower.pending


def test_a_notice_heard_during_a_sync_is_synced_next(server):
    follower = None

    def a_change_meanwhile():
        if len(follower.calls) == 1:  # the remote changes while the first sync runs
            server.put(PROJECTS, "P9", name="meanwhile")
            follower.ask_feed(25)

    follower = make_follower(server, during_sync=a_change_meanwhile)
    follower.start_feed()
    server.put(TASKS, "T1", name="first")
    follower.ask_feed(25)
    sync_if_due(follower)
    sync_if_due(follower)
    assert follower.calls == [["todo.task"], ["todo.project"]]
    assert Project.objects.filter(pk="P9").exists()


def test_an_answer_to_a_request_without_since_is_a_resync_hint(server):
    server.put(TASKS, "T1", name="x")
    follower = make_follower(server)
    follower.start_feed()
    # The feed refuses our since (it is not one of its answers): ask without it.
    assert follower.on_feed_error(TransportError("bad since", status=400)) is not None
    assert follower.since is None
    follower.ask_feed(25)
    assert server.feed_requests[-1] == {"wait": "25"}
    sync_if_due(follower)
    assert follower.calls == [None]  # every followed model


def test_backoff_doubles_with_jitter_up_to_its_cap():
    low = Backoff(start=0.5, cap=30, rand=lambda a, b: a)
    high = Backoff(start=0.5, cap=30, rand=lambda a, b: b)
    lows = [low.failed() for _ in range(12)]
    highs = [high.failed() for _ in range(12)]
    assert highs[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(highs) == 30 and highs[-1] == 30  # capped, never beyond
    assert lows == [value / 2 for value in highs]  # jitter: between half and all of it
    high.succeeded()
    assert high.failed() == 0.5


def test_a_feed_that_keeps_failing_is_asked_again_no_slower_than_the_cap(server):
    follower = make_follower(server)
    delays = [follower.on_feed_error(TransportError("refused", transient=True))
              for _ in range(20)]
    assert all(delay is not None and 0 < delay <= BACKOFF_CAP for delay in delays)
    assert delays[-1] == BACKOFF_CAP
    assert len(follower.logged) == 1  # said once, not at every attempt
    follower.on_answer({"now": 1, "since": "1.1", "endpoints": []}, "0.0")
    assert follower.feed_backoff.failures == 0  # back: the next failure starts small


def test_a_failed_sync_stays_due_and_is_tried_again_after_a_backoff(server):
    follower = make_follower(server)
    follower.start_feed()
    server.put(TASKS, "T1", name="x")
    follower.ask_feed(25)
    server.fail_pull = "connection refused"
    sync_if_due(follower)
    assert "todo.task" in follower.pending.labels  # with the models its failure stopped
    assert sync_if_due(follower) is None  # backing off
    assert "connection refused" in follower.logged[-1]
    server.fail_pull = None
    follower.fake_clock.now += BACKOFF_CAP
    sync_if_due(follower)
    assert Task.objects.filter(pk="T1").exists()
    assert follower.stats.failed == 1 and follower.stats.syncs == 2


def test_without_a_feed_it_polls_every_interval(server):
    server.fail_feed = TransportError("HTTP 404 Not Found", status=404)
    follower = make_follower(server, interval=5)
    assert not follower.start_feed()
    assert "no change feed" in follower.logged[0] and "every 5 s" in follower.logged[0]
    follower.pending.add_everything()  # run()'s first full sync
    sync_if_due(follower)
    server.put(TASKS, "T1", name="x")
    assert sync_if_due(follower) is None
    follower.fake_clock.now += 5
    sync_if_due(follower)
    assert follower.calls == [None, None]
    assert Task.objects.filter(pk="T1").exists()


def test_a_feed_that_refuses_the_account_stops_following(server):
    server.fail_feed = TransportError("HTTP 403 Forbidden: no credentials", status=403)
    follower = make_follower(server)
    with pytest.raises(FollowError, match="refuses this account"):
        follower.run(threading.Event())


def test_a_local_write_makes_its_model_due_but_the_sync_s_own_writes_do_not(server):
    follower = make_follower(server)
    follower.start_feed()
    follower.check_local()
    server.put(TASKS, "T1", name="from the remote")
    follower.ask_feed(25)
    sync_if_due(follower)
    follower.check_local()  # the clock moved: the sync's own write, not a local change
    assert not follower.pending
    Task.objects.create(id="L1", name="local")
    follower.check_local()
    assert follower.pending.labels == {"todo.task"}
    sync_if_due(follower)
    assert "L1" in server.objects[TASKS]
    follower.check_local()
    assert not follower.pending


def test_run_follows_until_stopped(server):
    stop = threading.Event()
    follower = make_follower(server)
    server.put(TASKS, "T1", name="x")

    def stop_once_synced():
        if Task.objects.filter(pk="T1").exists():
            stop.set()

    follower.report = lambda results: stop_once_synced()
    stats = follower.run(stop)
    assert stats.syncs == 1 and follower.calls == [None]
    assert "1 syncs" in stats.summary(follower.fake_clock)


def test_pending_hands_over_everything_at_once():
    pending = Pending()
    pending.add(["a"])
    pending.add(["b", "a"])
    assert pending.take() == {"a", "b"} and not pending
    pending.add(["a"])
    pending.add_everything()
    assert pending.take() is None and not pending
    assert LOCAL_CHECK <= 0.5  # local writes go out within about a second


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers: the main thread only")
def test_a_signal_stops_after_the_sync_and_a_second_one_abandons_it():
    stop, wake = threading.Event(), threading.Event()
    before = signal.getsignal(signal.SIGTERM)
    with stopped_by_signals(stop, wake):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5) and wake.is_set()  # the loop ends once the current sync is done
        with pytest.raises(AbandonSync):
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(5)  # the handler raises here, as it would inside a sync
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_long_poll_travels_like_a_pull_and_never_shows_the_password(recording_server):
    """Over the real HttpTransport: HTTP Basic from the URL, the token header, wait/since,
    a timeout longer than the wait; a 404 is said without the URL's password."""
    secret = "s3cret-Pa55"
    server_url = recording_server.url.replace("http://", f"http://demo:{secret}@") + "/"
    transport = HttpTransport(headers={"X-Api-Key": "k"}, timeout=1, retries=1)
    followed = [reg for group in groups(TODO) for reg in group]
    logged = []
    follower = Follower(lambda labels: [], followed, server_url, transport, "default",
                        log=logged.append)
    answers = [(200, {"now": 5, "since": "5.9", "endpoints": [], "tables": []}),
               (200, {"now": 6, "since": "6.9", "endpoints": ["taskUpdates"], "tables": ["tasks"]}),
               (404, b"<html>Not Found</html>")]

    def answer(request):
        if request.query.get("since"):
            time.sleep(1.5)  # a long-poll that waited: longer than the transport's timeout
        return answers.pop(0)

    recording_server.answer = answer
    assert follower.start_feed()
    follower.ask_feed(2)
    first, second = recording_server.requests[:2]
    assert (first.path, first.query) == ("/events", {"wait": "0"})
    assert (second.path, second.query) == ("/events", {"wait": "2", "since": "5.9"})
    expected = "Basic " + base64.b64encode(f"demo:{secret}".encode()).decode()
    assert second.headers["authorization"] == expected and second.headers["x-api-key"] == "k"
    assert follower.pending.labels == {"todo.task"}
    with pytest.raises(TransportError) as failure:
        follower.ask_feed(2)
    assert follower.on_feed_error(failure.value) is None and follower.feed_missing
    assert secret not in " ".join(logged) and "/events (HTTP 404)" in logged[0]
