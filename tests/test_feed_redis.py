"""The change feed over Redis pub/sub (``FEED_BACKEND = "redis"``), against a real Redis server.

Writers publish the clock key of each model a transaction ticked, once,
after it commits; each process's watcher subscribes and reads the clocks
when a message comes. The tests use a channel of their own (Redis channels
are server-wide, whatever the /db of the URL), so parallel runs on one Redis
do not wake each other, and ``FEED_INTERVAL`` of an hour, so nothing here
can pass by polling. They skip, saying why, without the redis package or
the server (``PS_REDIS_URL``, default redis://127.0.0.1:6379/0).
"""

import logging
import socket
import threading
import time
import uuid

import pytest
from django.db import connections, transaction
from django.test import Client, override_settings

from persistence_sync.feed import announce, watch
from persistence_sync.setting_values import check_settings
from tests import databases
from tests.testapp.models import Gadget, Note

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit runs only at a real commit


def feed_settings(url):
    return {"FEED_BACKEND": "redis", "FEED_REDIS_URL": url, "FEED_INTERVAL": 3600}


@pytest.fixture
def channel(monkeypatch):
    """A Redis channel of this test's own; a fresh publisher (no pause left by another test)."""
    name = f"persistence_sync.test.{uuid.uuid4().hex}"
    monkeypatch.setattr(announce, "CHANNEL", name)
    monkeypatch.setattr(announce, "_publisher", announce._Publisher())
    return name


@pytest.fixture
def redis_feed(channel):
    databases.require_redis()
    with override_settings(PERSISTENCE_SYNC=feed_settings(databases.redis_url())):
        yield channel


class Listener:
    """A plain Redis subscriber of ``channel``: what the writers published, as heard."""

    def __init__(self, channel):
        import redis

        self.client = redis.Redis.from_url(databases.redis_url())
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        while self.client.pubsub_numsub(channel)[0][1] < 1:
            time.sleep(0.01)

    def heard(self, seconds):
        """The messages' data that arrive within ``seconds``."""
        found, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = self.pubsub.get_message(timeout=left)
            if message is not None:
                found.append(message["data"].decode())
        return found

    def close(self):
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def listener(redis_feed):
    heard = Listener(redis_feed)
    yield heard
    heard.close()


@pytest.fixture
def real_watcher():
    """This process's hub with its real watcher thread, stopped afterwards."""
    watch.stop_all()
    yield lambda: watch.hub_for("default")
    watch.stop_all()


def write_in_another_thread(delay, pk="G1"):
    """Create a gadget after ``delay`` seconds, in another thread (its own connection)."""

    def write():
        try:
            Gadget.objects.create(id=pk, name="elsewhere")
        finally:
            connections.close_all()

    writer = threading.Timer(delay, write)
    writer.start()
    return writer


def long_poll(since, wait):
    """``(answer, seconds)`` of an anonymous long-poll (gadgets are open to everyone)."""
    started = time.monotonic()
    answer = Client().get("/events", {"since": since, "wait": wait})
    assert answer.status_code == 200, answer.content
    return answer.json(), time.monotonic() - started


# --- what writers publish ------------------------------------------------------


def test_a_commit_publishes_each_model_it_ticked_once_and_a_rollback_nothing(listener):
    with transaction.atomic():
        Gadget.objects.create(id="G1", name="g")
        Gadget.objects.filter(id="G1").update(count=2)
        Gadget.objects.create(id="G2", name="g")  # three ticks of one model: one message
        Note.objects.create(id="N1", owner="ann")
        assert listener.heard(0.3) == [], "published before the commit"
    assert sorted(listener.heard(1.0)) == ["testapp.gadget", "testapp.note"]

    with pytest.raises(RuntimeError), transaction.atomic():
        Gadget.objects.create(id="G3", name="g")
        raise RuntimeError("rolled back")
    assert listener.heard(0.5) == [], "a rolled-back write was published"

    # The next transaction publishes again: the rolled-back one's batch is not reused.
    Gadget.objects.filter(id="G1").update(count=3)
    assert listener.heard(1.0) == ["testapp.gadget"]


def test_a_write_in_another_thread_wakes_the_feed_through_redis(redis_feed, real_watcher,
                                                                 monkeypatch):
    # Neither polling (FEED_INTERVAL an hour) nor the safety read can deliver in time:
    # only the Redis message can.
    monkeypatch.setattr(watch, "LISTEN_SAFETY_READ", 120.0)
    woken = []
    is_wake_up = watch.Subscribing.is_wake_up

    def recording(message):
        woke = is_wake_up(message)
        if woke:
            woken.append(message["data"])
        return woke

    monkeypatch.setattr(watch.Subscribing, "is_wake_up", staticmethod(recording))
    hub = real_watcher()
    assert isinstance(hub.watcher.trigger, watch.Subscribing)
    Listener(redis_feed).close()  # returns once the watcher's subscription is there too
    time.sleep(0.2)  # and its first read of the clocks done: the write comes after it
    writer = write_in_another_thread(0.3)
    answer, seconds = long_poll(hub.current.token, wait=30)
    writer.join()
    assert answer["endpoints"] == ["gadgets"] and answer["tables"] == ["gadgets"]
    assert seconds < 10, seconds
    assert woken == [b"testapp.gadget"]


# --- Redis away ----------------------------------------------------------------


@pytest.fixture(params=["refused", "silent"])
def dead_redis_url(request, channel):
    """The URL of a Redis that refuses connections, or of one that accepts and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    if request.param == "refused":
        server.close()
    else:
        server.listen(64)  # the kernel completes the handshakes; nobody ever reads
    yield f"redis://127.0.0.1:{port}/0"
    server.close()


def test_writes_succeed_at_once_and_warn_once_while_redis_is_away(dead_redis_url, caplog):
    caplog.set_level(logging.WARNING, logger="persistence_sync.feed")
    slowest = 0.0
    with override_settings(PERSISTENCE_SYNC=feed_settings(dead_redis_url)):
        for n in range(20):
            started = time.monotonic()
            Gadget.objects.create(id=f"G{n}", name="g")
            slowest = max(slowest, time.monotonic() - started)
    assert Gadget.objects.count() == 20
    # A refused connection costs nothing, a silent server at most REDIS_TIMEOUT once:
    # the other writes come within the pause that follows a failure.
    assert slowest < announce.REDIS_TIMEOUT + 0.5, slowest
    warnings = [r.getMessage() for r in caplog.records if "could not publish" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "reading the clocks" in warnings[0]


def test_the_feed_still_delivers_by_its_safety_read_while_redis_is_away(channel, real_watcher,
                                                                       caplog):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{unused.getsockname()[1]}/0"
    with override_settings(PERSISTENCE_SYNC=feed_settings(url)):
        hub = real_watcher()
        assert isinstance(hub.watcher.trigger, watch.Subscribing)
        writer = write_in_another_thread(0.3)
        answer, seconds = long_poll(hub.current.token, wait=30)
        writer.join()
    assert answer["endpoints"] == ["gadgets"]
    # The watcher retries Redis with a growing delay (at most MAX_BACKOFF) and
    # reads the clocks after each attempt.
    assert seconds < watch.MAX_BACKOFF + 3, seconds
    assert any("lost Redis" in r.getMessage() for r in caplog.records)


# --- settings ------------------------------------------------------------------


def test_redis_with_its_url_passes_the_checks_and_picks_the_subscriber(redis_feed):
    assert check_settings() == []
    assert isinstance(watch.trigger_for("default"), watch.Subscribing)


def test_redis_without_the_package_is_refused_saying_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)  # import redis now raises ImportError
    with override_settings(PERSISTENCE_SYNC=feed_settings("redis://127.0.0.1:6379/0")):
        [error] = check_settings()
        assert isinstance(watch.trigger_for("default"), watch.Polling)
    assert error.id == "persistence_sync.E045"
    assert "needs the redis package" in error.msg
    assert 'pip install "django-persistence-sync[redis]"' in error.msg + error.hint
