"""How a write tells the feed processes that a model moved: one NOTIFY, sent at commit.

Every write path ticks its model's clock (:func:`persistence_sync.clock.tick`),
and the tick calls :func:`ticked` once. On PostgreSQL (``FEED_BACKEND`` "auto"
or "postgresql") it queues ``NOTIFY persistence_sync, '<clock key>'`` in the
writer's transaction: PostgreSQL delivers it to every listening feed process
when, and only if, the transaction commits, after its rows are visible. A
transaction that ticks one model many times (a cascade, a push of several
batches) sends one notification per model: PostgreSQL folds identical ones.

Nothing is sent on other databases: each feed process reads the clock table
every ``FEED_INTERVAL`` instead (:mod:`persistence_sync.feed.watch`). A
notification carries no data and the feed trusts none: it only makes the
feed read the clocks now rather than later, so a lost one (a feed process
reconnecting) delays notices until the feed reads the clocks again, which it
does after every reconnect.
"""

from __future__ import annotations

from django.db import connections

from persistence_sync.conf import sync_settings

#: The channel the writers notify and the feed processes listen to.
CHANNEL = "persistence_sync"


def notifies(vendor: str) -> bool:
    """Whether writers on a database of ``vendor`` send NOTIFY (the feed listens there)."""
    return vendor == "postgresql" and sync_settings.FEED_BACKEND in ("auto", "postgresql")


def ticked(key: str, using: str) -> None:
    """Announce that the clock ``key`` moved in the current transaction of ``using``."""
    connection = connections[using]
    if notifies(connection.vendor):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, key])
