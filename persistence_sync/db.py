"""Database helpers: batching ids into queries, and retrying a transaction.

Lock waits, deadlocks and serialisation failures are part of running many
writers against one database; a push that meets one is retried here, whole,
so that the client never sees it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Expression, F, lookups

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


class _AnyOf(lookups.In):
    """``IN``, with PostgreSQL's ``= ANY(%s)``: the values go as one array parameter.

    An ``IN (%s, %s, ...)`` of a batch of ids is thousands of placeholders,
    each prepared by Django and quoted into the statement by psycopg (it
    binds on the client): on PostgreSQL that took longer than the query.
    The values are ids and keys (read from the database, or checked on their
    way in): strings and integers of such columns go as they are, the rest
    is prepared once, for the database, not once more for Python.
    """

    def get_prep_lookup(self) -> list:
        return [value for value in self.rhs if value is not None]  # as IN: NULL matches nothing

    def as_postgresql(self, compiler: Any, connection: BaseDatabaseWrapper) -> tuple[str, tuple]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = self.rhs
        if not (field.get_internal_type() in _PLAIN_KEYS and set(map(type, values)) <= {str, int}):
            values = [field.get_db_prep_value(value, connection) for value in values]
        return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", (*lhs_params, values)


# Column types whose str and int values psycopg takes as they are (ids, keys, scopes, stamps).
_PLAIN_KEYS = frozenset({"CharField", "TextField", "IntegerField", "BigIntegerField",
                         "AutoField", "BigAutoField", "SmallIntegerField", "SmallAutoField",
                         "PositiveIntegerField", "PositiveBigIntegerField"})


class _IsIn(Expression):
    """The filter ``name__in=values``: an :class:`_AnyOf` of the column ``name`` once resolved.

    (A lookup cannot be built on ``F(name)`` itself before Django 5.0.)
    """

    conditional = True
    output_field = BooleanField()

    def __init__(self, name: str, values: list) -> None:
        super().__init__()
        self.name, self.values = name, values

    def resolve_expression(self, *args: Any, **kwargs: Any) -> Any:
        return _AnyOf(F(self.name).resolve_expression(*args, **kwargs), self.values)


def is_in(name: str, values: Iterable) -> _IsIn:
    """The filter ``name__in=values``, sent as one array on PostgreSQL (see :class:`_AnyOf`).

    For the batches of ids of a push or a pull: ``queryset.filter(is_in("pk", chunk))``.
    """
    return _IsIn(name, list(values))


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


def is_busy(exc: DatabaseError, connection: BaseDatabaseWrapper) -> bool:
    """Whether ``exc`` is a lock wait that timed out (another writer held the lock)."""
    cause = exc.__cause__
    if connection.vendor == "postgresql":
        return (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) == "55P03"
    if connection.vendor == "mysql":
        args = getattr(cause, "args", None) or exc.args
        return bool(args) and args[0] == 1205
    if connection.vendor == "sqlite":
        return "database is locked" in str(exc)
    return False


@contextmanager
def lock_timeout(using: str, seconds: float | None) -> Iterator[None]:
    """Make lock waits on ``using`` give up after ``seconds`` (inside a transaction).

    PostgreSQL: ``SET LOCAL lock_timeout`` (ends with the transaction);
    MySQL/MariaDB: the session's ``innodb_lock_wait_timeout`` (whole seconds,
    restored after); SQLite: its busy timeout (restored after).
    """
    connection = connections[using]
    if not seconds or connection.vendor not in ("postgresql", "mysql", "sqlite"):
        yield
        return
    wanted = max(1, round(seconds)) if connection.vendor == "mysql" else int(seconds * 1000)
    previous = wanted
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{wanted}ms"])
        else:
            previous = _session_timeout(connection, cursor)
            if previous != wanted and connection.vendor == "mysql":
                cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {wanted}")
            elif previous != wanted:
                cursor.execute(f"PRAGMA busy_timeout = {wanted}")
    if previous == wanted:  # PostgreSQL's ends with the transaction
        yield
        return
    try:
        yield
    finally:
        # On the driver's own connection: after a failed statement, Django
        # refuses queries until the atomic block ends, but this setting is
        # the session's, not the transaction's, and must be restored now.
        raw = connection.connection
        if raw is not None:  # not closed by a failure meanwhile
            cursor = raw.cursor()
            try:
                if connection.vendor == "mysql":
                    cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {int(previous)}")
                else:
                    cursor.execute(f"PRAGMA busy_timeout = {int(previous)}")
            finally:
                cursor.close()


def _session_timeout(connection: BaseDatabaseWrapper, cursor: Any) -> int:
    """The session's own lock wait timeout (MySQL: seconds, SQLite: ms), read once per connection.

    :func:`lock_timeout` always restores it, so it stays what the project set.
    """
    raw = connection.connection
    known = getattr(connection, "_persistence_sync_timeout", None)
    if known is not None and known[0] is raw:
        return known[1]
    if connection.vendor == "mysql":
        cursor.execute("SELECT @@SESSION.innodb_lock_wait_timeout")
    else:
        cursor.execute("PRAGMA busy_timeout")
    value = int(cursor.fetchone()[0])
    connection._persistence_sync_timeout = (raw, value)  # type: ignore[attr-defined]
    return value


def run_with_retries(func: Callable[[], T], using: str, deadline: float | None = None) -> T:
    """Run ``func()`` in a transaction, retrying it after transient errors.

    Inside an outer atomic block nothing can be retried (the outer
    transaction is already doomed), so ``func`` then runs once, in a
    savepoint so that a refusal it raises leaves nothing behind. No retry
    starts after ``deadline`` (a ``time.monotonic()`` value): a writer stuck
    behind another gives up in bounded time.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        with transaction.atomic(using=using):
            return func()
    attempts = max(1, sync_settings.TRANSIENT_RETRIES)
    for attempt in range(attempts):
        try:
            with transaction.atomic(using=using):
                return func()
        except DatabaseError as exc:
            if attempt == attempts - 1 or not is_transient(exc, connection):
                raise
            if deadline is not None and time.monotonic() > deadline:
                raise
        # Jittered exponential backoff, capped: the competing writer
        # usually finishes within milliseconds.
        time.sleep(random.uniform(0, min(0.5, 0.005 * 2**attempt)))
    raise AssertionError("unreachable: the last attempt returns or raises")


def journal_mode(connection: BaseDatabaseWrapper) -> str | None:
    """SQLite's journal mode of ``connection`` ("wal", "delete", ...); None elsewhere or in memory."""
    if connection.vendor != "sqlite" or connection.is_in_memory_db():  # type: ignore[attr-defined]
        return None
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        return str(cursor.fetchone()[0]).lower()


def use_wal(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """``connection_created`` receiver: an SQLite file goes to WAL mode (``SQLITE_WAL``).

    In SQLite's default journal mode a reader blocks every writer of the file
    until its read transaction ends, and a pull streams its answer from one
    read transaction: a client reading slowly stalled every push. WAL mode is
    a property of the file, kept once set; setting it needs no lock when it
    is already set.
    """
    if not sync_settings.SQLITE_WAL or journal_mode(connection) in (None, "wal"):
        return
    with connection.cursor() as cursor:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except DatabaseError:  # another connection holds the file: the next one will try again
            return
