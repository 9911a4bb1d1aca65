"""Database helpers: batching ids into queries, and retrying a transaction.

Lock waits, deadlocks and serialisation failures are part of running many
writers against one database; a push that meets one is retried here, whole,
so that the client never sees it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from persistence_sync.conf import sync_settings

# SQLSTATEs: serialization_failure, deadlock_detected, lock_not_available.
POSTGRES_TRANSIENT = {"40001", "40P01", "55P03"}
# MySQL/MariaDB errors: lock wait timeout, deadlock.
MYSQL_TRANSIENT = {1205, 1213}

T = TypeVar("T")


def chunks(values: Iterable[T], size: int | None = None) -> Iterator[list[T]]:
    """``values`` in lists of at most ``size`` (default ``BATCH_SIZE``): one query each.

    Databases cap the parameters of one statement (SQLite: 32766, and far
    fewer on old builds), so ids are never sent in one unbounded ``IN (...)``.
    """
    size = size or sync_settings.BATCH_SIZE
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def is_transient(exc: DatabaseError, connection: BaseDatabaseWrapper) -> bool:
    """Whether retrying the whole transaction may succeed where it just failed."""
    cause = exc.__cause__
    if connection.vendor == "postgresql":
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        return code in POSTGRES_TRANSIENT
    if connection.vendor == "mysql":
        args = getattr(cause, "args", None) or exc.args
        return bool(args) and args[0] in MYSQL_TRANSIENT
    if connection.vendor == "sqlite":
        return "database is locked" in str(exc) or "database table is locked" in str(exc)
    return False


def run_with_retries(func: Callable[[], T], using: str) -> T:
    """Run ``func()`` in a transaction, retrying it after transient errors.

    Inside an outer atomic block nothing can be retried (the outer
    transaction is already doomed), so ``func`` then runs once.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        return func()
    attempts = max(1, sync_settings.TRANSIENT_RETRIES)
    for attempt in range(attempts):
        try:
            with transaction.atomic(using=using):
                return func()
        except DatabaseError as exc:
            if attempt == attempts - 1 or not is_transient(exc, connection):
                raise
        # Jittered exponential backoff, capped: the competing writer
        # usually finishes within milliseconds.
        time.sleep(random.uniform(0, min(0.5, 0.005 * 2**attempt)))
    raise AssertionError("unreachable: the last attempt returns or raises")
