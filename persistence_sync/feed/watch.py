"""The thread that watches the clocks of one database for its process's feed.

:func:`hub_for` starts it with the first feed request of the process (so a
forked worker starts its own). Each turn it waits for a reason to look --
a PostgreSQL notification (``LISTEN persistence_sync``, sent by every tick at
commit, :mod:`~persistence_sync.feed.announce`), a Redis message on the same
channel (``FEED_BACKEND`` "redis", published after every commit) or
``FEED_INTERVAL`` on other databases -- then :func:`advance` reads every
clock in one statement and publishes what moved. That is one small query per
interval per process, never one per connection, and with LISTEN or Redis
none while nothing is written.

On PostgreSQL the listening connection is its own (psycopg 3, autocommit).
When it breaks (PostgreSQL restarted, the connection terminated) the
watcher reconnects with a growing delay (up to 5 s), and reads the clocks
as soon as it listens again: notifications sent while it was away are lost,
but the clocks are not, and the windows since the last snapshot hold every
change of that time. It also reads the clocks every 5 s when nothing came,
in case the listening connection died silently. The Redis subscriber
(:class:`Subscribing`) does all of this the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.db import connections

from persistence_sync.clock import Clock
from persistence_sync.conf import sync_settings
from persistence_sync.feed import announce, subscriptions
from persistence_sync.feed.changes import Concerned, concerned
from persistence_sync.feed.hub import Hub, Snapshot, hubs, hubs_lock

logger = logging.getLogger("persistence_sync.feed")

# Seconds between two reads of the clocks when no notification (or Redis message) came.
LISTEN_SAFETY_READ = 5.0
# Seconds the Redis subscriber waits to connect, for SUBSCRIBE's answer, or for a
# reply to its health-check PING (sent when its connection has been idle for
# REDIS_HEALTH_CHECK seconds, so a connection cut without a word is noticed).
REDIS_TIMEOUT = 2.0
REDIS_HEALTH_CHECK = 15
# Longest wait before a watcher that failed tries again, in seconds.
MAX_BACKOFF = 5.0


def read_clocks(using: str) -> dict[str, int]:
    """Every clock's committed value, read in one statement (one snapshot)."""
    return dict(Clock.objects.using(using).values_list("model", "value"))


def advance(hub: Hub, using: str) -> Snapshot:
    """Read the clocks; publish whom the windows since the last snapshot concern."""
    snapshot = Snapshot.of(read_clocks(using))
    previous = hub.current
    if previous is None or snapshot.total < previous.total:
        # The first read, or a clock table emptied (a test database flushed).
        hub.start_at(snapshot)
        return snapshot
    if snapshot.total > previous.total:
        moved = [key for key, value in snapshot.clocks.items() if value > previous.clocks.get(key, 0)]
        windows: dict[str, Concerned] = {}
        wanted = [key for key in moved if key in hub.models]  # models somebody subscribed to
        while True:
            for key in wanted:
                windows[key] = concerned(hub.models[key], previous.clocks.get(key, 0),
                                         snapshot.clocks[key], using)
            wanted = sorted(hub.publish(snapshot, windows, moved))
            if not wanted:
                break
    for subscriber in hub.due_refreshes():
        hub.rescope(subscriber, subscriptions.reread(subscriber))
    return snapshot


class Polling:
    """Look every ``FEED_INTERVAL`` seconds."""

    def wait(self, stopping: threading.Event) -> None:
        stopping.wait(sync_settings.FEED_INTERVAL)

    def close(self) -> None:
        pass


class Listening:
    """Look when PostgreSQL notifies (and every :data:`LISTEN_SAFETY_READ` seconds)."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.connection: Any = None

    def wait(self, stopping: threading.Event) -> None:
        if self.connection is None:
            self.connection = self.connect()
            return  # read the clocks at once: what was sent before LISTEN is lost
        deadline = time.monotonic() + LISTEN_SAFETY_READ
        while not stopping.is_set() and time.monotonic() < deadline:
            if any(True for _ in self.connection.notifies(timeout=0.5, stop_after=1)):
                # Fold whatever else arrived: one read of the clocks covers them all.
                for _ in self.connection.notifies(timeout=0.001):
                    pass
                return

    def connect(self) -> Any:
        import psycopg

        params = connections[self.using].get_connection_params()
        params.setdefault("connect_timeout", 5)
        # TCP keepalives: a connection cut without a word is noticed within a minute.
        for key, value in (("keepalives", 1), ("keepalives_idle", 20), ("keepalives_interval", 5),
                           ("keepalives_count", 3)):
            params.setdefault(key, value)
        connection = psycopg.connect(**params, autocommit=True)
        connection.execute(f"LISTEN {announce.CHANNEL}")
        return connection

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001  (a broken connection may fail to close)
                pass


class Subscribing:
    """Look when a Redis message comes (and every :data:`LISTEN_SAFETY_READ` seconds).

    ``FEED_BACKEND`` "redis": writers publish on :data:`~announce.CHANNEL` after
    each commit. Only the wake-up travels; the clocks tell what moved. Redis
    away must not stop the feed (the database is still there): a failure is
    handled here, not by the watcher, which would stop reading the clocks
    until Redis came back. It reconnects with the watcher's growing delay and
    lets the clocks be read after every attempt, so notices keep coming, within
    :data:`MAX_BACKOFF` seconds, while Redis is away.
    """

    def __init__(self, url: str, using: str) -> None:
        self.url = url
        self.using = using
        self.client: Any = None  # kept: redis-py closes its pool, the subscription's too, with it
        self.pubsub: Any = None
        self.failures = 0

    def wait(self, stopping: threading.Event) -> None:
        try:
            if self.pubsub is None:
                self.client, self.pubsub = self.connect()
                if self.failures:
                    logger.info("The change feed of %r is subscribed to Redis again.", self.using)
                self.failures = 0
                return  # read the clocks at once: what was published before SUBSCRIBE is lost
            deadline = time.monotonic() + LISTEN_SAFETY_READ
            while not stopping.is_set() and time.monotonic() < deadline:
                if self.is_wake_up(self.pubsub.get_message(timeout=0.5)):
                    # Fold whatever else arrived: one read of the clocks covers them all.
                    while self.pubsub.get_message(timeout=0) is not None:
                        pass
                    return
        except Exception as exc:  # noqa: BLE001  (Redis away: read the clocks anyway, try again)
            self.close()
            self.failures += 1
            log = logger.warning if self.failures == 1 else logger.debug
            log("The change feed of %r lost Redis (%s: %s); it reads the clocks every few "
                "seconds until it is back.", self.using, type(exc).__name__, exc)
            stopping.wait(min(MAX_BACKOFF, 0.1 * 2 ** (self.failures - 1)))

    @staticmethod
    def is_wake_up(message: dict | None) -> bool:
        return message is not None and message.get("type") == "message"

    def connect(self) -> tuple[Any, Any]:
        """A Redis client and its subscription to the channel, confirmed by Redis."""
        client = announce.redis_client(self.url, timeout=REDIS_TIMEOUT,
                                       health_check_interval=REDIS_HEALTH_CHECK)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(announce.CHANNEL)
            # Wait for Redis to confirm: the clocks are read after that, so a
            # write that commits later is published to this subscription.
            deadline = time.monotonic() + REDIS_TIMEOUT
            while True:
                message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if message is not None and message.get("type") == "subscribe":
                    return client, pubsub
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"Redis did not confirm SUBSCRIBE {announce.CHANNEL} "
                                       f"within {REDIS_TIMEOUT:g} s")
        except BaseException:
            pubsub.close()
            client.close()
            raise

    def close(self) -> None:
        client, pubsub, self.client, self.pubsub = self.client, self.pubsub, None, None
        for closing in (pubsub, client):
            if closing is not None:
                try:
                    closing.close()
                except Exception:  # noqa: BLE001  (a broken connection may fail to close)
                    pass


def trigger_for(using: str) -> Polling | Listening | Subscribing:
    """How the watcher of ``using`` learns that something moved (``FEED_BACKEND``)."""
    if announce.publishes():
        url = sync_settings.FEED_REDIS_URL
        try:
            import redis  # noqa: F401
        except ImportError:
            logger.warning("The change feed polls the clocks of %r: FEED_BACKEND \"redis\" needs "
                           "the redis package (pip install \"django-persistence-sync[redis]\").",
                           using)
        else:
            if url:
                return Subscribing(url, using)
            logger.warning("The change feed polls the clocks of %r: FEED_BACKEND \"redis\" "
                           "needs FEED_REDIS_URL.", using)
        return Polling()
    if announce.notifies(connections[using].vendor):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            logger.warning("The change feed polls the clocks of %r: LISTEN needs psycopg 3 "
                           "(pip install 'psycopg[binary]').", using)
        else:
            return Listening(using)
    return Polling()


class Watcher(threading.Thread):
    """The daemon thread of one :class:`Hub`: wait, :func:`advance`, and again."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(name=f"persistence_sync feed ({hub.using})", daemon=True)
        self.hub = hub
        self.stopping = threading.Event()
        self.trigger = trigger_for(hub.using)

    def run(self) -> None:
        failures = 0
        try:
            while not self.stopping.is_set():
                try:
                    self.trigger.wait(self.stopping)
                    if not self.stopping.is_set():
                        advance(self.hub, self.hub.using)
                    failures = 0
                except Exception as exc:  # noqa: BLE001  (the feed must outlive any failure)
                    failures += 1
                    self.recover(exc, failures)
        finally:
            self.trigger.close()
            connections[self.hub.using].close()

    def recover(self, exc: Exception, failures: int) -> None:
        """Drop both connections and wait before trying again (0.1 s, doubling, at most 5 s)."""
        log = logger.warning if failures == 1 else logger.debug
        log("The change feed of %r lost the database (%s: %s); reconnecting.",
            self.hub.using, type(exc).__name__, exc)
        self.trigger.close()
        try:
            connections[self.hub.using].close()
        except Exception:  # noqa: BLE001
            pass
        self.stopping.wait(min(MAX_BACKOFF, 0.1 * 2 ** (failures - 1)))

    def stop(self) -> None:
        self.stopping.set()


def hub_for(using: str) -> Hub:
    """This process's hub of database ``using``, its watcher started (and the clocks read)."""
    with hubs_lock:
        hub = hubs.get(using)
        if hub is None or hub.watcher is None or not hub.watcher.is_alive():
            hub = Hub(using)
            hub.start_at(Snapshot.of(read_clocks(using)))
            hub.watcher = Watcher(hub)
            hub.watcher.start()
            hubs[using] = hub
        return hub


def stop_all(timeout: float = 5.0) -> None:
    """Stop every watcher of this process (an ASGI server's shutdown, tests)."""
    with hubs_lock:
        stopping = list(hubs.values())
        hubs.clear()
    for hub in stopping:
        if hub.watcher is not None:
            hub.watcher.stop()
    for hub in stopping:
        if hub.watcher is not None and hub.watcher is not threading.current_thread():
            hub.watcher.join(timeout)
