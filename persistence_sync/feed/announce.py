"""How a write tells the feed processes that a model moved: a wake-up, sent at commit.

Every write path ticks its model's clock (:func:`persistence_sync.clock.tick`),
and the tick calls :func:`ticked` once. What it sends depends on ``FEED_BACKEND``:

* PostgreSQL ("auto" or "postgresql"): it queues ``NOTIFY persistence_sync,
  '<clock key>'`` in the writer's transaction. PostgreSQL delivers it to every
  listening feed process when, and only if, the transaction commits, after its
  rows are visible. A transaction that ticks one model many times (a cascade,
  a push of several batches) sends one notification per model: PostgreSQL
  folds identical ones.
* "redis": it publishes the clock key on the Redis channel
  ``persistence_sync`` once the transaction has committed
  (``transaction.on_commit``), once per model and transaction, in
  :func:`publish`. Redis being down never fails a write: the commit is done by
  then, the publish gives up after :data:`REDIS_TIMEOUT`, stops trying for
  :data:`REDIS_PAUSE` and logs a warning at most every :data:`WARN_EVERY`.

Nothing is sent otherwise: each feed process reads the clock table every
``FEED_INTERVAL`` instead (:mod:`persistence_sync.feed.watch`). A wake-up
carries no data and the feed trusts none: it only makes the feed read the
clocks now rather than later, so a lost one (a feed process reconnecting,
Redis away) delays notices until the feed reads the clocks again, which it
does after every reconnect and every few seconds anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.db import connections, transaction

from persistence_sync.conf import sync_settings

logger = logging.getLogger("persistence_sync.feed")

#: The channel the writers notify (or publish to) and the feed processes listen to.
CHANNEL = "persistence_sync"

# Seconds a writer's publish may wait for Redis (connect, send, answer): it
# runs after the commit, in the request, so it bounds what Redis down costs a write.
REDIS_TIMEOUT = 0.2
# Seconds a process stops publishing after a failure: writes meanwhile pay no
# timeout, and the feed processes find their changes by their safety read.
REDIS_PAUSE = 1.0
# Seconds between two warnings about Redis being away (one per outage, not per write).
WARN_EVERY = 60.0


def notifies(vendor: str) -> bool:
    """Whether writers on a database of ``vendor`` send NOTIFY (the feed listens there)."""
    return vendor == "postgresql" and sync_settings.FEED_BACKEND in ("auto", "postgresql")


def publishes() -> bool:
    """Whether writers publish their ticks to Redis (``FEED_BACKEND`` "redis")."""
    return sync_settings.FEED_BACKEND == "redis"


def ticked(key: str, using: str) -> None:
    """Announce that the clock ``key`` moved in the current transaction of ``using``."""
    connection = connections[using]
    if publishes():
        _pending(using).add(key)
    elif notifies(connection.vendor):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, key])


class _Pending:
    """The clock keys one transaction ticked, published together when it commits."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def add(self, key: str) -> None:
        self.keys.add(key)

    def __call__(self) -> None:  # the on_commit callback
        publish(sorted(self.keys))


def _pending(using: str) -> _Pending:
    """The keys the current transaction of ``using`` will publish at commit.

    One on_commit callback per transaction, however many ticks: it is kept on
    the connection and reused while Django still holds it among the
    transaction's callbacks. A rollback drops it (so nothing is published);
    the next tick then registers a new one. A key ticked in a savepoint that
    was rolled back may still be published with the others: a wake-up for
    nothing costs the feed one read of the clocks, never a wrong notice.
    """
    connection = connections[using]
    pending = getattr(connection, "_persistence_sync_pending", None)
    if pending is None or not any(entry[1] is pending for entry in connection.run_on_commit):
        pending = _Pending()
        connection._persistence_sync_pending = pending  # type: ignore[attr-defined]
        transaction.on_commit(pending, using=using)
    return pending


class _Publisher:
    """This process's Redis client for the writers' wake-ups, and its failure state."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.url: str | None = None
        self.client: Any = None
        self.paused_until = 0.0
        self.warned_at = -WARN_EVERY

    def get_client(self, url: str) -> Any:
        with self.lock:
            if self.client is None or self.url != url:
                self.client, self.url = redis_client(url, timeout=REDIS_TIMEOUT), url
            return self.client

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self.paused_until = now + REDIS_PAUSE
        if now - self.warned_at >= WARN_EVERY:
            self.warned_at = now
            logger.warning("The change feed could not publish a write to Redis (%s: %s); the "
                           "feed processes will find it by reading the clocks, within seconds.",
                           type(exc).__name__, exc)


_publisher = _Publisher()


def redis_client(url: str, timeout: float, **options: Any) -> Any:
    """A redis-py client of ``url`` that waits at most ``timeout`` seconds and never retries
    (a retry would hide a reconnect from the feed, which must then read the clocks)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 0), socket_keepalive=True, **options)


def publish(keys: list[str]) -> None:
    """Publish each clock key on :data:`CHANNEL`; never raises (it runs after a commit)."""
    url = sync_settings.FEED_REDIS_URL
    if not keys or not url or time.monotonic() < _publisher.paused_until:
        return
    try:
        client = _publisher.get_client(url)
        with client.pipeline(transaction=False) as pipe:  # one round trip for all the keys
            for key in keys:
                pipe.publish(CHANNEL, key)
            pipe.execute()
    except Exception as exc:  # noqa: BLE001  (Redis away, or no redis package: the write stands)
        _publisher.failed(exc)
