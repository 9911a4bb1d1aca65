"""Tombstone retention: dropping old deletion records without losing deletions.

Every delete leaves a :class:`~persistence_sync.models.Tombstone` so that pulls
can tell clients what disappeared. Kept for ever, they make every new
client's first pull longer. :func:`prune_tombstones` (``manage.py
prunetombstones``, driven by ``PERSISTENCE_SYNC["TOMBSTONE_RETENTION"]``)
deletes those older than the retention period and records, per model, the
highest stamp it deleted: the *horizon* (``Clock.tombstones_pruned_to``).

A pull with ``0 < since < horizon`` could miss a deletion, so the server
refuses it with 410 (:class:`~persistence_sync.exceptions.HistoryPruned`) and
the client resyncs from 0 (``syncall`` does so by itself, see
:mod:`persistence_sync.client.resync`). Clients that sync more often than the
retention period never notice::

    from persistence_sync.retention import prune_tombstones

    report = prune_tombstones(older_than=timedelta(days=90))
    # {"todo.task": PruneResult(removed=1234, horizon=1767225600000), ...}
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Max, Model, Value
from django.db.models.functions import Greatest

from persistence_sync import clock
from persistence_sync.clock import Clock, wall_ms
from persistence_sync.conf import sync_settings
from persistence_sync.models import Tombstone

# Tombstones deleted per transaction: short transactions keep the table (and
# the clock row, locked for the horizon update) free for writers and pulls.
PRUNE_BATCH = 2000


@dataclass
class PruneResult:
    removed: int = 0  # tombstones deleted (or that would be, dry run)
    horizon: int = 0  # the model's horizon afterwards


def retention_period(value: datetime.timedelta | float | None = None) -> datetime.timedelta | None:
    """``value`` (or the setting) as a timedelta; None means keep for ever."""
    setting = "PERSISTENCE_SYNC['TOMBSTONE_RETENTION']"
    if value is None:
        value = sync_settings.TOMBSTONE_RETENTION
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        period = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        period = datetime.timedelta(days=value)
    else:
        raise ValueError(f"{setting} must be a timedelta, a number of days or None, not {value!r}.")
    if period <= datetime.timedelta(0):
        # 0 reads like "off", and pruning everything at every run is the opposite.
        raise ValueError(f"{setting} must be positive, not {value!r}; None keeps tombstones for ever.")
    return period


def prune_tombstones(older_than: datetime.timedelta, labels: Iterable[str] | None = None,
                     using: str = DEFAULT_DB_ALIAS, dry_run: bool = False,
                     batch_size: int = PRUNE_BATCH) -> dict[str, PruneResult]:
    """Delete tombstones stamped before ``now - older_than``; returns ``{label: PruneResult}``.

    ``labels``: model labels (``"todo.task"``) to prune; default every model
    with tombstones. Safe to run concurrently with pulls, pushes and another
    pruning: each batch deletes its tombstones and raises the model's horizon
    in one transaction, so a pull sees either both or neither.
    """
    cutoff = wall_ms() - int(older_than.total_seconds() * 1000)
    tombstones = Tombstone.objects.using(using)
    if labels is None:
        labels = sorted(set(tombstones.values_list("model", flat=True).distinct()))
    report: dict[str, PruneResult] = {}
    for label in labels:
        old = tombstones.filter(model=label, last_change__lt=cutoff)
        model = _model(label)
        result = report[label] = PruneResult(horizon=_horizon(model, using))
        if dry_run:
            result.removed = old.count()
            result.horizon = max(result.horizon, old.aggregate(top=Max("last_change"))["top"] or 0)
            continue
        while True:
            with transaction.atomic(using=using):
                # Oldest first, by primary key: a DELETE by range would take
                # InnoDB gap locks that writers of every model would wait on.
                batch = list(old.order_by("last_change", "pk").values_list("pk", "last_change")
                             [:batch_size])
                if not batch:
                    break
                top = batch[-1][1]
                if model is not None:
                    _raise_horizon(model, top, using)
                tombstones.filter(pk__in=[pk for pk, _ in batch]).delete()
            result.removed += len(batch)
            result.horizon = max(result.horizon, top)
    return report


def _model(label: str) -> type[Model] | None:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        return None  # a model that no longer exists: no endpoint serves its tombstones


def _horizon(model: type[Model] | None, using: str) -> int:
    if model is None:
        return 0
    return clock.committed_now_and_horizon(model, using)[1]


def _raise_horizon(model: type[Model], stamp: int, using: str) -> None:
    key = clock.clock_key(model)
    counter = Clock.objects.using(using).filter(model=key)
    if not counter.update(tombstones_pruned_to=Greatest("tombstones_pruned_to", Value(stamp))):
        Clock.objects.using(using).bulk_create(
            [Clock(model=key, value=stamp, tombstones_pruned_to=stamp)], ignore_conflicts=True)
        counter.update(tombstones_pruned_to=Greatest("tombstones_pruned_to", Value(stamp)))
