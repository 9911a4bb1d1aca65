"""The server clock: how every change gets its ``_lastChange`` and why no pull misses one.

The protocol's hard rule: a pull answers ``{"now": N, "updates": [...]}`` and
the client asks ``since=N`` next time, so any write that is not in the answer
must later carry a ``_lastChange`` greater than ``N``. A server that reads the
wall clock breaks it: a push that took its timestamp before the pull but
commits after the pull's query is invisible to the pull and below its ``now``,
so it is lost for ever.

The design, one counter per model (the ``persistence_sync.Clock`` table):

1. A writer (a push, a ``save()``, ``QuerySet.update()``, ``bulk_create()``,
   a delete) first *ticks* the model's counter inside its transaction::

       UPDATE clock SET value = GREATEST(value + 1, <wall-clock ms>) WHERE model = ...

   and stamps everything it writes with the new value. The UPDATE takes the
   counter row's write lock, held until the transaction ends. So writers of
   one model run one after another and commit in the order of their stamps,
   and no two of them ever get the same stamp (every push gets a fresh one).
   Writers of different models use different rows and never wait for each
   other. Ticking comes first so that, on MySQL/MariaDB's REPEATABLE READ,
   the writer's snapshot is taken after the previous writer committed.

2. A reader reads the counter's *committed* value ``C`` and then, in the same
   database snapshot, the rows stamped in ``(since, C]``, and answers
   ``now = C``. Because stamps are taken under the lock and commit in order,
   a committed counter at ``C`` means every writer stamped ``<= C`` has
   committed, so the snapshot holds all of them; every writer still running
   holds a stamp ``> C`` and will be in the next pull. Readers take no lock
   and never wait for writers.

This holds across threads, processes and hosts, on PostgreSQL (READ
COMMITTED, the default, for writers), MySQL/MariaDB (InnoDB) and SQLite
(whose writers are serialised anyway). Stamps follow the wall clock in
milliseconds when it is ahead and never go backwards when it is not.
"""

from __future__ import annotations

import contextvars
import datetime
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Model, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from persistence_sync import compiled
from persistence_sync.db import lock_timeout
from persistence_sync.exceptions import ClockError
from persistence_sync.feed import announce


class Clock(models.Model):
    """One counter per syncable model: the table behind :func:`tick` and :func:`committed_now`.

    Defined here, beside its only writer, and re-exported by
    :mod:`persistence_sync.models` so that Django and the migrations find it.
    """

    model = models.CharField(max_length=100, primary_key=True)
    value = models.BigIntegerField(default=0)
    tombstones_pruned_to = models.BigIntegerField(
        default=0,
        help_text="Deletions stamped up to this value were pruned; pulls from before it "
        "are answered 410 (a full resync).",
    )

    class Meta:
        app_label = "persistence_sync"
        verbose_name = "sync clock"

    def __str__(self) -> str:
        return f"{self.model} @ {self.value}"


def format_stamp(value: int | None) -> str:
    """A stamp (ms since 1970) as ``2026-11-30 21:59:02.123 (1796075942123)`` in local time."""
    if not value:
        return f"never ({value or 0})"
    try:
        moment = datetime.datetime.fromtimestamp(value / 1000, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(value)  # not a wall-clock stamp (another server's counter, say)
    moment = timezone.localtime(moment) if settings.USE_TZ else moment.astimezone().replace(tzinfo=None)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d} ({value})"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def clock_key(model: type[Model]) -> str:
    """The counter a model's writes share (proxies share their concrete model's)."""
    concrete = model._meta.concrete_model or model  # None only on abstract models
    return concrete._meta.label_lower


# {clock key: stamp} while the sync client applies what it took from a remote.
_remote_stamps: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "persistence_sync_remote_stamps", default=None)


@contextmanager
def applying_remote() -> Iterator[dict[str, int]]:
    """Stamp every write of the block, cascades included, as taken from a remote.

    The sync client (:mod:`persistence_sync.client`) applies a sync inside
    this block and one transaction. The first :func:`tick` of each model
    advances its counter as usual; every later tick of that model in the
    block returns the same stamp, so the objects and tombstones that
    Django's deletion collector writes for a ``CASCADE`` or ``SET_NULL``
    carry the stamp the sync records as "taken from the remote" (yielded as
    ``{clock key: stamp}``), and are never mistaken for local changes.
    """
    stamps: dict[str, int] = {}
    token = _remote_stamps.set(stamps)
    try:
        yield stamps
    finally:
        _remote_stamps.reset(token)


def tick(model: type[Model], using: str, fresh: bool = False) -> int:
    """Advance ``model``'s counter and return the new stamp.

    Must run inside ``transaction.atomic(using=using)``: the counter's row lock
    is what orders writers, and it is only held until that transaction ends.
    Inside :func:`applying_remote`, returns that block's stamp for the model
    unless ``fresh`` (a stamp for a local change).
    """
    if not connections[using].in_atomic_block:
        raise ClockError(
            "persistence_sync.clock.tick() must run inside transaction.atomic(): "
            "the clock's row lock must be held until the stamped rows commit."
        )
    key = clock_key(model)
    remote_stamps = None if fresh else _remote_stamps.get()
    if remote_stamps is not None and key in remote_stamps:
        return remote_stamps[key]
    stamp = _advance(key, using)
    announce.ticked(key, using)  # the change feed's NOTIFY, delivered at commit
    if remote_stamps is not None:
        remote_stamps[key] = stamp
    return stamp


def _advance(key: str, using: str) -> int:
    connection = connections[using]
    statements = _tick_statements(connection)
    if statements is None:  # a database of its own kind: the ORM's statements
        return _advance_by_orm(key, using)
    update, select = statements
    wall = wall_ms()
    with connection.cursor() as cursor:
        for _ in range(2):
            cursor.execute(update, [wall, key])
            if select is not None:  # no UPDATE ... RETURNING
                cursor.execute(select, [key])
            row = cursor.fetchone()
            if row is not None:
                return row[0]
            # First write ever for this model: create the row (a concurrent
            # creator makes this a no-op) and take its lock as usual.
            Clock.objects.using(using).bulk_create([Clock(model=key, value=0)],
                                                   ignore_conflicts=True)
    raise ClockError(f"The sync clock of {key} could not be created.")


# {vendor: (UPDATE, SELECT or None when the UPDATE returns the value)}
_statements: dict[str, tuple[str, str | None] | None] = {}


def _tick_statements(connection: BaseDatabaseWrapper) -> tuple[str, str | None] | None:
    """The tick as one raw statement where the database returns updated values, else two.

    A tick runs in every write, a one-object push included: built once, not
    compiled by the ORM each time.
    """
    vendor = connection.vendor
    if vendor not in _statements:
        table = connection.ops.quote_name(Clock._meta.db_table)
        greatest = {"sqlite": "MAX", "postgresql": "GREATEST", "mysql": "GREATEST"}.get(vendor)
        update = (f"UPDATE {table} SET value = {greatest}(value + 1, %s) WHERE model = %s"
                  if greatest else None)
        if update is None:
            _statements[vendor] = None
        elif vendor == "postgresql" or (vendor == "sqlite"
                                        and connection.features.can_return_columns_from_insert):
            _statements[vendor] = (update + " RETURNING value", None)
        else:
            _statements[vendor] = (update, f"SELECT value FROM {table} WHERE model = %s")
    return _statements[vendor]


def _advance_by_orm(key: str, using: str) -> int:
    counter = Clock.objects.using(using).filter(model=key)
    advance = {"value": Greatest(F("value") + 1, Value(wall_ms()))}
    if not counter.update(**advance):
        Clock.objects.using(using).bulk_create([Clock(model=key, value=0)], ignore_conflicts=True)
        counter.update(**advance)
    return counter.values_list("value", flat=True).get()


def committed_now(model: type[Model], using: str) -> int:
    """The counter's committed value: every stamp up to it has committed."""
    return committed_now_and_horizon(model, using)[0]


def committed_now_and_horizon(model: type[Model], using: str) -> tuple[int, int]:
    """``(committed_now, tombstones_pruned_to)`` read in one query, hence one snapshot."""
    rows = compiled.fetch(using, ("clock",), _committed, clock_key(model))
    return rows[0] if rows else (0, 0)


def _values(keys: list[str]) -> models.QuerySet:
    return Clock.objects.filter(model__in=keys).values_list("model", "value")


def _committed(key: str) -> models.QuerySet:
    return Clock.objects.filter(model=key).values_list("value", "tombstones_pruned_to")


@contextmanager
def read_snapshot(using: str) -> Iterator[None]:
    """A read-only transaction whose queries all see one database snapshot.

    The clock value and the rows read with it must come from the same
    snapshot, or a row re-stamped in between would drop out of both this pull
    and the next one's window (it is still delivered later, but a pull would
    no longer hold every write stamped inside its window).
    tests/test_concurrency.py commits such a write right after the clock read.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # Must be the transaction's first statement. Read-only
                # REPEATABLE READ transactions never fail to serialise.
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            elif connection.vendor == "mysql":
                # Applies to the transaction the next statement starts, in
                # case the project configured READ COMMITTED for MySQL.
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def catch_up(models: Iterable[type[Model]], using: str, timeout: float | None = None) -> int:
    """Bring the clocks of ``models`` up to the latest of them; return that value ``T``.

    For a pull of several models under one timestamp (WatermelonDB's
    protocol has one ``last_pulled_at`` for every table). Each model keeps
    its own counter, so an idle model's committed value lags behind a busy
    one's: a pull answering the smallest of them (the only value proven for
    every model, :mod:`persistence_sync.pulls`) would never get past an idle
    model's. Advancing the lagging counters to ``T`` takes their row locks
    (waiting at most ``timeout`` seconds for a writer holding one; then a
    ``DatabaseError``), so after this transaction every counter is at least
    ``T``. Only lagging counters are written; their locks are taken in label
    order, as pushes of several models take them.
    """
    keys = sorted({clock_key(model) for model in models})
    values = dict(compiled.fetch(using, ("clocks",), _values, keys))
    latest = max(values.values(), default=0)
    lagging = [key for key in keys if values.get(key, 0) < latest]
    if lagging:
        with transaction.atomic(using=using), lock_timeout(using, timeout):
            counters = Clock.objects.using(using)
            counters.bulk_create([Clock(model=key, value=0) for key in lagging if key not in values],
                                 ignore_conflicts=True)
            for key in lagging:
                counters.filter(model=key).update(value=Greatest(F("value"), Value(latest)))
    return latest
