"""The sync client: makes this site a replica of a remote persistence.sync server.

It decides exactly like the classic persistence.js client (``docs/protocol.md``,
"How the classic client decides"), one registered model at a time, parents
before children::

    from persistence_sync import client

    results = client.sync_all(server_url="https://central.example.com/sync/")
    for result in results:
        print(result.summary())        # or result.as_dict(); result.ok

``manage.py syncall`` is a thin command over :func:`sync_all`; a Celery task
or a view may call it directly.

How local changes are told apart, without wall time
---------------------------------------------------

Every local write is stamped by the local clock (:mod:`persistence_sync.clock`).
A sync of one model:

1. pulls ``since`` the last pull's ``now`` (nothing is written yet);
2. reads the local clock's committed value ``C`` and, in the same snapshot,
   the objects and tombstones stamped in ``(local_date, C]``: the local
   changes. A write committed later is stamped above ``C`` and is a local
   change of the next run;
3. decides (echo, conflict, take remote), lets the conflict handler resolve
   conflicts, and pushes (nothing is written locally before the push
   succeeded, so a failed push leaves the model's local state unchanged);
4. in one local transaction, writes what it took from the remote under one
   fresh stamp ``A`` and records the new state (``local_date = C``,
   ``applied_stamp = A``). Objects still stamped ``A`` next time are not local
   changes, so a second run pushes nothing. The transaction first ticks the
   clock, so local writers of that model wait for it; an object another
   process changed after step 2 keeps the fields it changed (and is pushed
   next run) instead of being overwritten.

Local deletions are the tombstones of the same window; they are "forgotten"
by advancing ``local_date`` past them, which happens only after the push
succeeded. The tombstone rows themselves stay: the site's own sync endpoints
still serve them to its clients.
"""

import urllib.parse
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, DatabaseError, transaction
from django.utils import timezone

from persistence_sync import clock, resync
from persistence_sync.conf import sync_settings
from persistence_sync.conflicts import Conflict, get_conflict_handler
from persistence_sync.db import chunks
from persistence_sync.exceptions import SyncClientError, WireTypeError
from persistence_sync.serializers import ID, LAST_CHANGE, REMOVED
from persistence_sync.transport import HttpTransport, is_int

# Ids per SQL query when reading local objects by id.
ID_CHUNK = 500




# --- results ------------------------------------------------------------------------


@dataclass
class ModelResult:
    """What one model's sync did (or, with ``dry_run``, would do)."""

    model: str  # label, e.g. "todo.task"
    url: str
    received: int = 0  # items the pull returned, our own echoes included
    pulled: int = 0  # of those, the ones that differed from the local data
    created: int = 0
    updated: int = 0
    removed: int = 0
    pushed: int = 0
    # {"id", "properties", "resolution"}; resolution is "local", "remote", "custom",
    # or "deleted" (a deletion on one side and a change on the other: the deletion wins).
    conflicts: list = field(default_factory=list)
    dry_run: bool = False
    error: str = None
    resynced: bool = False  # the remote had pruned deletions: pulled from 0 and reconciled

    @property
    def ok(self):
        return self.error is None

    def as_dict(self):
        return {
            "model": self.model, "url": self.url, "ok": self.ok, "error": self.error,
            "dry_run": self.dry_run, "received": self.received, "pulled": self.pulled,
            "created": self.created, "updated": self.updated, "removed": self.removed,
            "pushed": self.pushed, "conflicts": self.conflicts, "resynced": self.resynced,
        }

    def summary(self):
        if self.error:
            return f"error: {self.error}"
        resolutions = {}
        for conflict in self.conflicts:
            resolutions[conflict["resolution"]] = resolutions.get(conflict["resolution"], 0) + 1
        how = ", ".join(f"{count} {name}" for name, count in sorted(resolutions.items()))
        verb = "would be: " if self.dry_run else ""
        return (
            f"{self.model}: {verb}pulled {self.pulled}, created {self.created}, "
            f"updated {self.updated}, removed {self.removed}, pushed {self.pushed}, "
            f"conflicts {len(self.conflicts)}" + (f" ({how})" if how else "")
            + (" (full resync: the remote pruned older deletions)" if self.resynced else "")
        )


# --- the decisions ------------------------------------------------------------------


@dataclass
class RemoteItem:
    id: str
    raw: dict  # as received
    stamp: int = None  # _lastChange, when sent
    removed: bool = False
    wire: dict = None  # name -> normalised wire value, for comparisons
    python: dict = None  # attname -> Python value


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


@dataclass
class Plan:
    creates: dict = field(default_factory=dict)  # pk -> {attname: value}
    updates: dict = field(default_factory=dict)  # pk -> (LocalRow seen, {attname: value})
    deletes: dict = field(default_factory=dict)  # pk -> stamp seen
    push: list = field(default_factory=list)


def parse_remote(registration, updates):
    """Normalise pulled items; raise SyncClientError naming a value that does not fit."""
    by_name = {codec.name: codec for codec in registration.codecs}
    items = {}
    for item in updates:
        stamp = item.get(LAST_CHANGE)
        remote = RemoteItem(id=item[ID], raw=item, stamp=int(stamp) if is_int(stamp) else None)
        if item.get(REMOVED) is True or item.get(REMOVED) == 1:
            remote.removed = True
        else:
            remote.wire, remote.python = {}, {}
            for name, value in item.items():
                codec = by_name.get(name)
                if codec is None:
                    continue  # id, _lastChange, or a property this site does not sync
                try:
                    python = codec.from_wire(value)
                except WireTypeError as exc:
                    raise SyncClientError(
                        f"pulled object {item[ID]!r} has a bad {name!r}: {exc}"
                    ) from None
                remote.python[codec.attname] = python
                remote.wire[name] = codec.wire(python)
        items.pop(remote.id, None)  # a repeated id counts where it last appears
        items[remote.id] = remote
    return items


def collect_local(registration, state, pulled_ids, using):
    """The local changes since the last sync and the local copies of pulled objects."""
    from persistence_sync.models import Tombstone

    model = registration.model
    base = model._base_manager.db_manager(using)
    attnames = [codec.attname for codec in registration.codecs]
    columns = ("pk", "last_change", *attnames)

    def row(values):
        return values[0], LocalRow(values[1], dict(zip(attnames, values[2:])))

    with clock.read_snapshot(using):
        now = clock.committed_now(model, using)
        window = {"last_change__gt": state.local_date, "last_change__lte": now}
        changed_qs = base.filter(**window)
        removed_qs = Tombstone.objects.using(using).filter(model=registration.label, **window)
        if state.applied_stamp:
            changed_qs = changed_qs.exclude(last_change=state.applied_stamp)
            removed_qs = removed_qs.exclude(last_change=state.applied_stamp)
        rows = dict(row(values) for values in changed_qs.values_list(*columns))
        changed = set(rows)
        for chunk in chunks(set(pulled_ids) - changed):
            rows.update(row(values) for values in base.filter(pk__in=chunk).values_list(*columns))
        removed = set(removed_qs.values_list("object_id", flat=True))
    return LocalSnapshot(now=now, rows=rows, changed=changed, removed=removed)


def _wire_values(registration, values):
    return {
        codec.name: codec.wire(values[codec.attname]) for codec in registration.codecs
    }


def _instance(registration, pk, row):
    obj = registration.model(pk=pk, **row.values)
    obj.last_change = row.stamp
    obj._state.adding = False
    return obj


def decide(registration, state, remote, local, handler, result):
    """The classic client's decisions; returns the :class:`Plan` (writes nothing)."""
    plan = Plan()
    codecs = registration.codecs
    echo_stamp = state.server_push_date or None
    pushed = {}  # pk -> push item, merged in order (the node server keeps one item per id)

    def push(item):
        previous = pushed.get(item[ID])
        if previous is None or item.get(REMOVED) or previous.get(REMOVED):
            pushed[item[ID]] = dict(item)
        else:
            previous.update(item)

    conflicts = []
    for pk, item in remote.items():
        row = local.rows.get(pk)
        if item.removed:
            if row is not None:
                result.pulled += 1
                plan.deletes[pk] = row.stamp
                if pk in local.changed:
                    result.conflicts.append(
                        {"id": pk, "properties": [], "resolution": "deleted"})
            # An id we do not have: deleted here too, never here, or the node
            # sample server's tombstone id. Nothing to do.
            continue
        if row is None:
            if pk in local.removed:  # deleted here since the last sync
                if item.stamp is None or item.stamp != echo_stamp:
                    result.pulled += 1
                    result.conflicts.append({"id": pk, "properties": [], "resolution": "deleted"})
                continue  # the deletion wins: it is pushed below
            result.pulled += 1
            plan.creates[pk] = item.python
            continue
        local_wire = _wire_values(registration, row.values)
        differing = [name for name, value in item.wire.items() if local_wire[name] != value]
        if not differing:
            continue
        result.pulled += 1
        if pk in local.changed:
            if item.stamp is not None and item.stamp == echo_stamp:
                # The remote holds our own last push; the local value is newer.
                push({ID: pk, **{name: local_wire[name] for name in differing}})
            else:
                conflicts.append(Conflict(
                    local=_instance(registration, pk, row), remote=item.raw,
                    properties=differing, registration=registration,
                ))
        else:
            by_name = {codec.name: codec.attname for codec in codecs}
            plan.updates[pk] = (row, {by_name[name]: item.python[by_name[name]]
                                      for name in differing})

    for pk in sorted(local.changed - set(remote)):
        push({ID: pk, **_wire_values(registration, local.rows[pk].values)})
    for pk in sorted(local.removed):
        item = remote.get(pk)
        if item is None or not item.removed:
            push({ID: pk, REMOVED: True})

    if conflicts:
        resolve_conflicts(registration, conflicts, handler, plan, pushed, push, remote, local,
                          result)
    plan.push = list(pushed.values())
    return plan


def resolve_conflicts(registration, conflicts, handler, plan, pushed, push, remote, local,
                      result):
    """Run the handler, then make the local object and the remote end up equal."""
    codecs = registration.codecs
    updates_to_push = list(pushed.values())
    handler(conflicts, updates_to_push)
    # The handler may have appended to (or edited) the list: take it as the push.
    pushed.clear()
    for item in updates_to_push:
        if not isinstance(item, dict) or not isinstance(item.get(ID), str):
            raise SyncClientError(f"the conflict handler pushed a bad item: {item!r}")
        push(item)
    for conflict in conflicts:
        pk = conflict.local.pk
        row = local.rows[pk]
        before = _wire_values(registration, row.values)
        entry = pushed.get(pk) or {}
        final = {}  # attname -> value the replica keeps (= what the remote will hold)
        for codec in codecs:
            if codec.name in entry and not entry.get(REMOVED):
                try:
                    final[codec.attname] = codec.from_wire(entry[codec.name])
                except WireTypeError as exc:
                    raise SyncClientError(
                        f"the conflict handler pushed a bad {codec.name!r} for {pk!r}: {exc}"
                    ) from None
            else:
                final[codec.attname] = getattr(conflict.local, codec.attname)
        after = _wire_values(registration, final)
        if entry.get(REMOVED):
            plan.deletes[pk] = row.stamp
        else:
            remote_wire = {codec.name: None for codec in codecs}
            remote_wire.update(remote[pk].wire)
            missing = {name: value for name, value in after.items()
                       if value != remote_wire[name] and name not in entry}
            if missing:  # kept here but not pushed by the handler: push it
                push({ID: pk, **missing})
            changes = {codec.attname: final[codec.attname] for codec in codecs
                       if after[codec.name] != before[codec.name]}
            if changes:
                plan.updates[pk] = (row, changes)
        remote_values = remote[pk].wire
        if all(after[name] == before[name] for name in conflict.properties):
            resolution = "local"
        elif all(after[name] == remote_values.get(name) for name in conflict.properties):
            resolution = "remote"
        else:
            resolution = "custom"
        result.conflicts.append(
            {"id": pk, "properties": list(conflict.properties), "resolution": resolution})


# --- writing locally ----------------------------------------------------------------


def _upsert(registration, base, objs, stamp):
    from persistence_sync.models import upsert_at

    upsert_at(base.all(), objs, stamp, [codec.attname for codec in registration.codecs], ID_CHUNK)


def apply_plan(registration, state, plan, pull_now, push_now, local, using, result):
    """Write what was taken from the remote and the new state, in one transaction."""
    from persistence_sync.models import Tombstone, delete_at

    model = registration.model
    base = model._base_manager.db_manager(using)
    attnames = [codec.attname for codec in registration.codecs]
    with transaction.atomic(using=using):
        stamp = 0
        if plan.creates or plan.updates or plan.deletes:
            # Ticking first takes the clock's lock: local writers of this model
            # wait until we commit, and what we re-read below stays true.
            stamp = clock.tick(model, using)
            ids = [*plan.creates, *plan.updates, *plan.deletes]
            current = {}
            for chunk in chunks(ids):
                for values in base.filter(pk__in=chunk).values_list("pk", "last_change", *attnames):
                    current[values[0]] = LocalRow(values[1], dict(zip(attnames, values[2:])))
            late_deletions = set()
            for chunk in chunks(plan.creates):
                late_deletions.update(Tombstone.objects.using(using).filter(
                    model=registration.label, object_id__in=chunk, last_change__gt=local.now,
                ).values_list("object_id", flat=True))
            taken, merged = [], []
            for pk, values in plan.creates.items():
                # Created or deleted here meanwhile: the local write is kept and
                # pushed next run.
                if pk not in current and pk not in late_deletions:
                    taken.append(model(pk=pk, **values))
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
            if taken:
                _upsert(registration, base, taken, stamp)
            if merged:
                _upsert(registration, base, merged, clock.tick(model, using))
            if deletes:
                for chunk in chunks(deletes):
                    delete_at(base.filter(pk__in=chunk), stamp)
            result.created = sum(1 for obj in taken if obj.pk in plan.creates)
            result.updated = len(taken) - result.created + len(merged)
            result.removed = len(deletes)
        state.server_date = pull_now
        state.server_push_date = push_now
        state.local_date = local.now
        state.applied_stamp = stamp
        state.synced_at = timezone.now()
        state.save(using=using)


# --- the API ------------------------------------------------------------------------


def endpoint_url(registration, server_url=None):
    """The remote endpoint of ``registration``: ENDPOINTS, else its URI under the server URL."""
    endpoints = {label.lower(): url for label, url in (sync_settings.ENDPOINTS or {}).items()}
    if registration.label in endpoints:
        return endpoints[registration.label]
    base = server_url or sync_settings.SERVER_URL
    if not base:
        raise SyncClientError(
            "No remote server: pass --server URL (server_url=...) or set "
            "PERSISTENCE_SYNC['SERVER_URL']."
        )
    return urllib.parse.urljoin(base.rstrip("/") + "/", registration.uri)


def _state_key(url):
    """The URL without credentials, to key the sync state by."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))[:500]


def get_state(registration, url, using):
    from persistence_sync.models import SyncState

    state = SyncState.objects.using(using).filter(
        model=registration.label, remote=_state_key(url)).first()
    return state or SyncState(model=registration.label, remote=_state_key(url))


def sync_model(registration, url, transport, handler, using=DEFAULT_DB_ALIAS, dry_run=False,
               progress=None):
    """Sync one model with its remote endpoint; returns a :class:`ModelResult`.

    Raises :class:`SyncClientError` (or a DatabaseError) when it fails, with
    nothing of this model changed locally.
    """
    result = ModelResult(model=registration.label, url=url, dry_run=dry_run)
    state = get_state(registration, url, using)
    _report(progress, result, "pulling")
    answer, resyncing = resync.pull(transport, url, state.server_date)
    result.received = len(answer["updates"])
    remote = parse_remote(registration, answer["updates"])
    if resyncing:
        remote, present = resync.unseen(remote, state.server_date)
    _report(progress, result, "deciding")
    local = collect_local(registration, state, remote, using)
    plan = decide(registration, state, remote, local, handler, result)
    if resyncing:
        resync.reconcile(registration, present, local, plan, result, using)
    result.pushed = len(plan.push)
    if dry_run:
        result.created, result.removed = len(plan.creates), len(plan.deletes)
        result.updated = len(plan.updates)
        return result
    push_now = state.server_push_date
    if plan.push:
        _report(progress, result, "pushing")
        push_now = transport.push(url, plan.push)
    _report(progress, result, "saving")
    apply_plan(registration, state, plan, answer["now"], push_now, local, using, result)
    return result


def _report(progress, result, stage):
    if progress is not None:
        progress(result, stage)


def _select(models):
    from persistence_sync import registry

    ordered = registry.registrations()
    if models is None:
        return ordered
    wanted = set()
    for model in models:
        if isinstance(model, registry.Registration):
            wanted.add(model.label)
        else:
            wanted.add(registry.get_registration(model).label)
    return [reg for reg in ordered if reg.label in wanted]


def sync_all(server_url=None, models=None, conflict_handler=None, using=None, dry_run=False,
             progress=None, transport=None):
    """Sync the registered models (all, or ``models``) with the remote, parents first.

    ``models``: model classes, ``"app_label.Model"`` labels or registrations.
    ``conflict_handler``: a callable, ``"prefer-local"``, ``"prefer-remote"`` or
    a dotted path (default: ``PERSISTENCE_SYNC["CONFLICT_HANDLER"]``).
    ``progress(result, stage)`` is called as each model advances.
    Returns one :class:`ModelResult` per model; a failed model has ``error``
    set (naming the model and URL), its local state unchanged, and the
    other models are still synced.
    """
    using = using or DEFAULT_DB_ALIAS
    source = "conflict_handler" if conflict_handler else "PERSISTENCE_SYNC['CONFLICT_HANDLER']"
    handler = get_conflict_handler(conflict_handler or sync_settings.CONFLICT_HANDLER, source)
    transport = transport or HttpTransport.from_settings()
    results = []
    for registration in _select(models):
        url = None
        try:
            url = endpoint_url(registration, server_url)
            result = sync_model(registration, url, transport, handler, using, dry_run, progress)
        except (SyncClientError, DatabaseError) as exc:
            result = ModelResult(model=registration.label, url=url, dry_run=dry_run,
                                 error=f"{registration.label} ({url or 'no URL'}): {exc}")
        results.append(result)
        _report(progress, result, "done")
    return results
