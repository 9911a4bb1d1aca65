"""The sync client's side of the local database: reading local changes, applying a plan.

:func:`collect_local` reads, in one snapshot, the local clock and what
changed here since the last sync; :func:`apply_plan` writes what a
:class:`~persistence_sync.client.planner.Planner` took from the remote and the
new :class:`~persistence_sync.models.SyncState`, in one transaction. How the
two tell local changes from values taken from the remote is explained in
:mod:`persistence_sync.client`.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from persistence_sync import clock
from persistence_sync.db import chunks

# Ids per SQL query when reading local objects by id.
ID_CHUNK = 500


@dataclass
class LocalRow:
    stamp: int
    values: dict  # attname -> Python value


@dataclass
class LocalSnapshot:
    now: int  # the local clock's committed value: changes up to it are in this snapshot
    rows: dict  # pk -> LocalRow: pulled ids that exist here, and every local change
    changed: set  # pks of objects changed here since the last sync
    removed: set  # pks deleted here since the last sync

    def instance(self, model, pk):
        """The local object ``pk`` as a model instance (for conflict handlers)."""
        row = self.rows[pk]
        obj = model(pk=pk, **row.values)
        obj.last_change = row.stamp
        obj._state.adding = False
        return obj


def state_key(url: str) -> str:
    """The URL without credentials, to key the sync state by."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))[:500]


def get_state(registration, url, using):
    """The :class:`SyncState` of ``registration`` with ``url`` (unsaved when new)."""
    from persistence_sync.models import SyncState

    state = SyncState.objects.using(using).filter(
        model=registration.label, remote=state_key(url)).first()
    return state or SyncState(model=registration.label, remote=state_key(url))


def _columns(registration):
    return [codec.attname for codec in registration.codecs]


def read_rows(registration, queryset) -> dict:
    """``{pk: LocalRow}`` of ``queryset``'s objects."""
    attnames = _columns(registration)
    return {
        values[0]: LocalRow(values[1], dict(zip(attnames, values[2:])))
        for values in queryset.values_list("pk", "last_change", *attnames)
    }


def collect_local(registration, state, pulled_ids, using) -> LocalSnapshot:
    """The local changes since the last sync and the local copies of pulled objects."""
    from persistence_sync.models import Tombstone

    base = registration.model._base_manager.db_manager(using)
    with clock.read_snapshot(using):
        now = clock.committed_now(registration.model, using)
        window = {"last_change__gt": state.local_date, "last_change__lte": now}
        changed_qs = base.filter(**window)
        removed_qs = Tombstone.objects.using(using).filter(model=registration.label, **window)
        if state.applied_stamp:
            changed_qs = changed_qs.exclude(last_change=state.applied_stamp)
            removed_qs = removed_qs.exclude(last_change=state.applied_stamp)
        rows = read_rows(registration, changed_qs)
        changed = set(rows)
        for chunk in chunks(set(pulled_ids) - changed):
            rows.update(read_rows(registration, base.filter(pk__in=chunk)))
        removed = set(removed_qs.values_list("object_id", flat=True))
    return LocalSnapshot(now=now, rows=rows, changed=changed, removed=removed)


def apply_plan(registration, state, plan, pull_now, push_now, local, using, result) -> None:
    """Write what was taken from the remote and the new state, in one transaction."""
    with transaction.atomic(using=using):
        stamp = 0
        if plan.writes:
            # Ticking first takes the clock's lock: local writers of this model
            # wait until we commit, and what we re-read below stays true.
            stamp = clock.tick(registration.model, using)
            write_plan(registration, plan, stamp, local, using, result)
        state.server_date = pull_now
        state.server_push_date = push_now
        state.local_date = local.now
        state.applied_stamp = stamp
        state.synced_at = timezone.now()
        state.save(using=using)


def write_plan(registration, plan, stamp, local, using, result) -> None:
    """The plan's creates, updates and deletes, minus what changed here meanwhile."""
    from persistence_sync.models import delete_at, upsert_at

    model = registration.model
    base = model._base_manager.db_manager(using)
    current = {}
    for chunk in chunks([*plan.creates, *plan.updates, *plan.deletes]):
        current.update(read_rows(registration, base.filter(pk__in=chunk)))
    taken = creates_still_wanted(registration, plan, current, local, using)
    created = len(taken)
    merged = []
    for pk, (seen, values) in plan.updates.items():
        now = current.get(pk)
        if now is None:
            continue  # deleted here meanwhile: that deletion is pushed next run
        if now.stamp == seen.stamp:
            taken.append(model(pk=pk, **{**now.values, **values}))
        else:
            # Changed here meanwhile: keep the fields that change touched,
            # take the remote's for the others; the object stays a local
            # change (a stamp other than ``stamp``) and is pushed next run.
            kept = {name: value for name, value in values.items()
                    if now.values[name] == seen.values[name]}
            merged.append(model(pk=pk, **{**now.values, **kept}))
    deletes = [pk for pk, seen in plan.deletes.items()
               if pk in current and current[pk].stamp == seen]
    attnames = _columns(registration)
    if taken:
        upsert_at(base.all(), taken, stamp, attnames, ID_CHUNK)
    if merged:
        upsert_at(base.all(), merged, clock.tick(model, using), attnames, ID_CHUNK)
    for chunk in chunks(deletes):
        delete_at(base.filter(pk__in=chunk), stamp)
    result.created = created
    result.updated = len(taken) - created + len(merged)
    result.removed = len(deletes)


def creates_still_wanted(registration, plan, current, local, using) -> list:
    """New objects of the plan, minus those created or deleted here meanwhile.

    A local write wins over the remote's creation: it is pushed next run.
    """
    from persistence_sync.models import Tombstone

    late_deletions = set()
    for chunk in chunks(plan.creates):
        late_deletions.update(Tombstone.objects.using(using).filter(
            model=registration.label, object_id__in=chunk, last_change__gt=local.now,
        ).values_list("object_id", flat=True))
    return [registration.model(pk=pk, **values) for pk, values in plan.creates.items()
            if pk not in current and pk not in late_deletions]
