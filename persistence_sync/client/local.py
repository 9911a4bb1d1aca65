"""The sync client's side of the local database: reading local changes, applying plans.

:func:`collect_all` reads, in one snapshot, the local clocks and what changed
here since the last sync; :func:`record_push` records a push before it is
sent; :func:`apply_all` writes what the
:class:`~persistence_sync.client.planner.Planner` of each model took from the
remote and the new :class:`~persistence_sync.models.SyncState` of each, in one
transaction. How local changes are told from values taken from the remote is
explained in :mod:`persistence_sync.client.sync`.
"""

from __future__ import annotations

import copy
import urllib.parse
from dataclasses import dataclass

from django.db import connections, transaction
from django.utils import timezone

from persistence_sync import bulk, clock
from persistence_sync.client.planner import parse_remote
from persistence_sync.client.results import ModelResult
from persistence_sync.client.transport import redact
from persistence_sync.db import chunks, is_in, run_with_retries
from persistence_sync.models import (
    OutgoingPush,
    SyncState,
    Tombstone,
    delete_at,
    insert_at,
    upsert_at,
)
from persistence_sync.serializers import USE_DEFAULT

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
        obj = build(model, pk, row.values)
        obj.last_change = row.stamp
        obj._state.adding = False
        return obj


def build(model, pk, values):
    """An instance of ``model`` with ``pk`` and ``values``, without computing defaults it has.

    ``model(pk=...)`` makes Django compute the primary key's default (a
    ``uuid4()`` for the example site) and throw it away: a fifth of a large
    sync's time. The pk's attname skips it.
    """
    values = {name: value for name, value in values.items() if value is not USE_DEFAULT}
    return model(**{model._meta.pk.attname: pk, **values})


def state_key(url: str) -> str:
    """The remote as sync states are keyed by: the URL without credentials, its host in lower case."""
    parts = urllib.parse.urlsplit(redact(url))
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.lower()))[:500]


def get_state(registration, url, using):
    """The :class:`SyncState` of ``registration`` with ``url`` (unsaved when new)."""
    state = SyncState.objects.using(using).filter(
        model=registration.label, remote=state_key(url)).first()
    return state or SyncState(model=registration.label, remote=state_key(url))


def synced_objects(registration, using, owner=None):
    """The local objects a sync of ``registration`` reads and writes: with ``owner`` (a
    :class:`~persistence_sync.client.owners.LocalOwner`), an ``owner=`` model's are that
    local user's only; another local user's objects are not the remote account's."""
    base = registration.model._base_manager.db_manager(using).all()
    return base if owner is None else owner.filter(registration, base)


def synced_tombstones(registration, using, owner=None):
    """The local deletions of ``registration`` a sync may push: with ``owner``, of that
    user's objects (an ``owner=`` model's tombstones store the owner as their scope)."""
    tombstones = Tombstone.objects.using(using).filter(model=registration.label)
    if owner is not None and registration.owner:
        tombstones = tombstones.filter(scope=owner.scope_key, user__isnull=True)
    return tombstones


def own(run, items) -> None:
    """Pulled ``items`` (``RemoteItem`` by id) of an ``owner=`` model belong to the run's
    local user: the remote's user id is never written here (:mod:`.owners`)."""
    if run.owner is None or not run.registration.owner:
        return
    attname, pk = run.registration.scope_attname, run.owner.pk
    for item in items.values():
        if not item.removed:
            item.python[attname] = pk


def without_owner(registration, items) -> list:
    """Push ``items`` without an ``owner=`` model's owner: the remote sets it to its account,
    and this replica's user id means nothing there."""
    if not registration.owner:
        return items
    name = next((codec.name for codec in registration.codecs
                 if codec.attname == registration.scope_attname), None)
    if name is None:
        return items
    return [{key: value for key, value in item.items() if key != name} for item in items]


def previous_remote(registration, url, using) -> str | None:
    """The remote ``registration``'s last completed sync was with, when not ``url``; else None.

    Sync states are kept per remote URL: another spelling of the same server
    (``localhost`` for ``127.0.0.1``, another port, a path without its
    trailing slash) starts afresh, and every local row looks like a local
    change to it.
    """
    last = (SyncState.objects.using(using).filter(model=registration.label,
                                                  synced_at__isnull=False)
            .order_by("-synced_at", "-pk").first())
    return None if last is None or last.remote == state_key(url) else last.remote


def _columns(registration):
    return [codec.attname for codec in registration.codecs]


def read_rows(registration, queryset) -> dict:
    """``{pk: LocalRow}`` of ``queryset``'s objects."""
    attnames = _columns(registration)
    return {
        values[0]: LocalRow(values[1], dict(zip(attnames, values[2:])))
        for values in queryset.values_list("pk", "last_change", *attnames)
    }


def collect_local(registration, state, pulled_ids, using, delivered=None,
                  owner=None) -> LocalSnapshot:
    """The local changes since the last sync and the local copies of pulled objects.

    ``delivered``: ``{pk: local clock value}`` of changes a replayed push
    already delivered; such a change is no longer a local one unless the
    object was written again after that value. ``owner``: see :func:`synced_objects`.
    """
    base = synced_objects(registration, using, owner)
    delivered = delivered or {}
    with clock.read_snapshot(using):
        now = clock.committed_now(registration.model, using)
        window = {"last_change__gt": state.local_date, "last_change__lte": now}
        changed_qs = base.filter(**window)
        removed_qs = synced_tombstones(registration, using, owner).filter(**window)
        if state.applied_stamp:
            changed_qs = changed_qs.exclude(last_change=state.applied_stamp)
            removed_qs = removed_qs.exclude(last_change=state.applied_stamp)
        rows = read_rows(registration, changed_qs)
        changed = {pk for pk, row in rows.items() if row.stamp > delivered.get(pk, 0)}
        for chunk in chunks(set(pulled_ids) - set(rows)):
            rows.update(read_rows(registration, base.filter(is_in("pk", chunk))))
        removed = {pk for pk, stamp in removed_qs.values_list("object_id", "last_change")
                   if stamp > delivered.get(pk, 0)}
        # An object of a scoped model that moved to another scope here leaves a
        # tombstone for its old scope (for this site's own clients), yet it
        # lives on: that is a change to push, not a deletion. (Of an owner=
        # model given to another local user, it is: it left the remote account.)
        for chunk in chunks(list(removed)):
            removed -= {str(pk) for pk in base.filter(is_in("pk", chunk)).values_list("pk", flat=True)}
    return LocalSnapshot(now=now, rows=rows, changed=changed, removed=removed)


def collect_all(runs, using) -> None:
    """:func:`collect_local` for every model of a sync, from one database snapshot.

    One snapshot, so that a local writer's parent and child (written in one
    transaction) are both in this sync or both in the next one.
    """
    with clock.read_snapshot(using):
        for run in runs:
            run.local = collect_local(run.registration, run.state, run.remote, using,
                                      delivered=run.delivered, owner=run.owner)


def record_push(run, items, push_id, using):
    """Record a push of ``run``'s model in the local database before it is sent."""
    with transaction.atomic(using=using):
        return OutgoingPush.objects.using(using).create(
            model=run.registration.label, remote=state_key(run.url), push_id=push_id,
            items=items, decided_at=run.local.now,
        )


def unanswered_pushes(registration, url, using) -> list:
    """Pushes recorded for ``registration`` and ``url`` whose sync never completed."""
    return list(OutgoingPush.objects.using(using).filter(
        model=registration.label, remote=state_key(url)))


def forget_pushes(pks, using) -> None:
    if pks:
        OutgoingPush.objects.using(using).filter(pk__in=pks).delete()


def apply_all(runs, using) -> None:
    """Write what every model of a sync took from the remote, and their new states.

    One transaction, retried after transient errors. Upserts go parents
    first and deletions children first, so that no deletion cascades into an
    object this sync is about to update; every write, cascades included, is
    stamped as taken from the remote (:func:`clock.applying_remote`).
    """

    def apply():
        with clock.applying_remote() as stamps:
            deletes = [write_plan(run.registration, run.plan, run.local, using, run.result,
                                  run.owner) if run.plan.writes else [] for run in runs]
            for run, pks in reversed(list(zip(runs, deletes))):
                delete_in_chunks(run.registration, pks, using, run.owner)
            for run in runs:
                save_state(run, stamps.get(clock.clock_key(run.registration.model), 0), using)

    run_with_retries(apply, using)


def delete_in_chunks(registration, pks, using, owner=None) -> None:
    base = synced_objects(registration, using, owner)
    for chunk in chunks(pks):
        delete_at(base.filter(is_in("pk", chunk)), clock.tick(registration.model, using))


def save_state(run, applied_stamp, using) -> None:
    """The new sync state of ``run``'s model; its recorded pushes are done with."""
    state = run.state
    state.server_date = run.pull_now
    state.server_push_date = run.push_now
    state.push_stamps = echoes_to_keep(state, run.echoes)
    state.local_date = run.local.now
    state.applied_stamp = applied_stamp
    state.page_now, state.page_after = 0, ""  # the pull is complete
    state.synced_at = timezone.now()
    state.save(using=using)
    forget_pushes(run.acknowledged, using)


def echoes_to_keep(state, stamps) -> list:
    """The stamps of our pushes that the next pulls may still bring back, ascending.

    ``state.server_date`` is the new pull's ``now``: a pull answers only what
    is stamped after its ``since``, so a stamp at or below it never comes
    back (a full resync sets such objects aside, :func:`.resync.unseen`).
    This run's parts were stored after its pull, so they are above it and
    kept; earlier ones came back in this run's pull, and were decided there.
    A run that pushes nothing thus keeps none: nothing it could meet again.
    """
    return sorted(stamp for stamp in {*(state.push_stamps or ()), *stamps}
                  if stamp > state.server_date)


def write_plan(registration, plan, local, using, result, owner=None) -> list:
    """The plan's creates and updates, minus what changed here meanwhile.

    Returns the ids to delete, for the caller to delete once the children are done.
    """
    model = registration.model
    # Ticking first takes the clock's lock: local writers of this model wait
    # until the sync commits, and what is re-read below stays true.
    stamp = clock.tick(model, using)
    base = synced_objects(registration, using, owner)
    current = {}
    for chunk in chunks([*plan.creates, *plan.updates, *plan.deletes]):
        current.update(read_rows(registration, base.filter(is_in("pk", chunk))))
    taken = creates_still_wanted(registration, plan, current, local, using)
    created = len(taken)
    updated, merged = updates_still_wanted(registration, plan, current)
    taken += updated
    deletes = [pk for pk, seen in plan.deletes.items()
               if pk in current and current[pk].stamp == seen]
    attnames = _columns(registration)
    if taken:
        upsert_at(base.all(), taken, stamp, attnames, ID_CHUNK)
    if merged:
        upsert_at(base.all(), merged, clock.tick(model, using, fresh=True), attnames, ID_CHUNK)
    # Added to what pages applied during the pull (see apply_page) did.
    result.created += created
    result.updated += len(taken) - created + len(merged)
    result.removed += len(deletes)
    return deletes


def updates_still_wanted(registration, plan, current) -> tuple[list, list]:
    """The plan's updates as ``(taken, merged)``: merged ones changed here meanwhile.

    A merged object keeps the fields the local change touched and takes the
    remote's for the others; it stays a local change (it gets a fresh stamp)
    and is pushed next run. An object deleted here meanwhile is left alone:
    that deletion is pushed next run.
    """
    model = registration.model
    taken, merged = [], []
    for pk, (seen, values) in plan.updates.items():
        now = current.get(pk)
        if now is None:
            continue
        if now.stamp == seen.stamp:
            taken.append(build(model, pk, {**now.values, **values}))
        else:
            kept = {name: value for name, value in values.items()
                    if now.values[name] == seen.values[name]}
            merged.append(build(model, pk, {**now.values, **kept}))
    return taken, merged


def creates_still_wanted(registration, plan, current, local, using) -> list:
    """New objects of the plan, minus those created or deleted here meanwhile.

    A local write wins over the remote's creation: it is pushed next run.
    """
    late_deletions = set()
    for chunk in chunks(plan.creates):
        late_deletions.update(Tombstone.objects.using(using).filter(
            is_in("object_id", chunk), model=registration.label, last_change__gt=local.now,
        ).values_list("object_id", flat=True))
    creates = parents_first(registration, plan.creates)
    return [build(registration.model, pk, values) for pk, values in creates.items()
            if pk not in current and pk not in late_deletions]


def parents_first(registration, creates) -> dict:
    """``creates`` (``{pk: values}``) with each object after its parent among them.

    For a model related to itself (:func:`persistence_sync.bulk.parents_first`).
    A cycle needs the deferred checks of the databases other than MySQL.
    """
    attnames = [codec.attname for codec in registration.codecs
                if codec.related_model is registration.model]
    if not attnames:
        return creates
    order, _ = bulk.parents_first(
        {pk: [values.get(name) for name in attnames] for pk, values in creates.items()}, creates)
    return {pk: creates[pk] for pk in order}


def named_parents(registration, items) -> dict:
    """``{related model: ids}`` that pulled ``items`` (``RemoteItem``) name by their relations."""
    named: dict = {}
    for codec in registration.codecs:
        if codec.related_model is not None:
            ids = {item.python.get(codec.attname) for item in items if not item.removed} - {None}
            named.setdefault(codec.related_model, set()).update(ids)
    return named


def missing_parents(named, pulled, using) -> bool:
    """Whether an id of ``named`` (``{model: ids}``) is neither here nor in ``pulled`` (the same shape).

    A pulled object naming such a parent cannot be written yet: the parent
    was created on the remote after its model was pulled, or deleted here.
    """
    for model, ids in named.items():
        ids = set(ids) - set(pulled.get(model, ()))
        base = model._base_manager.db_manager(using)
        for chunk in chunks(ids):
            if len(chunk) != base.filter(is_in("pk", chunk)).count():
                return True
    return False


# --- a pull applied page by page ----------------------------------------------------


def parse_page(run, updates, using) -> tuple:
    """``(items, ahead)`` of a pulled page: its ``RemoteItem`` by id, and their insert's columns.

    Runs in the thread that fetches pages (see :func:`~persistence_sync.client.sync.pages`),
    while the caller waits for its database to write the page before. A
    page applied as it comes (``run.streaming``) is most often all new
    objects, so their database values are computed here too
    (:func:`~persistence_sync.models.new_columns`, ``ahead``); the page's
    insert uses them if the plan creates exactly those objects, and
    computes its own otherwise. None when the page will not be applied as it
    comes.
    """
    items = parse_remote(run.registration, updates)
    own(run, items)
    if not run.streaming or (run.registration.owner and run.owner is None):
        # (The owner is not known yet: learnt from this very answer, after this.)
        return items, None
    live = {pk: item.python for pk, item in items.items() if not item.removed}
    return items, bulk.new_columns(run.registration.model, live, using)


def apply_page(run, items, cursor, using, decide, has_children, ahead=None) -> bool:
    """Apply one pulled page at once, when no local change can be involved; whether it did.

    ``items``: the page's :class:`~persistence_sync.client.planner.RemoteItem`
    by id; ``cursor``: ``(now, last id)`` of the paged pull after this page;
    ``decide(snapshot, result)``: the page's :class:`Plan` given the local
    rows (the orchestrator's planner; here, with no local change, it can
    only take the remote); ``has_children``: whether other models of the
    sync name this one (a deletion here would cascade into them, which only
    the whole sync's one transaction can stamp for them); ``ahead``: the
    insert's columns as :func:`parse_page` computed them.

    In one transaction: tick the model's clock (local writers now wait), check
    that nothing was written here since the last sync (no object or
    tombstone stamped in ``(local_date, stamp)`` besides the last applied
    stamp) and that every parent the page names exists here, then write the
    page with ``stamp`` and record ``local_date = applied_stamp = stamp`` and
    the cursor. Since every write stamped below ``stamp`` is committed
    (stamps commit in order) and none is a local change, advancing
    ``local_date`` to ``stamp`` forgets none: local writes made later are
    stamped above it and are local changes of this sync's end or of the
    next one.

    Returns False (writing nothing) when a check fails: the caller keeps the
    page and the rest of the pull in memory, to be decided with the local
    changes at the end of the sync, as a sync always did.
    """
    registration, state = run.registration, run.state
    model = registration.model

    def apply():
        _commit_without_waiting(using)
        with clock.applying_remote():
            stamp = clock.tick(model, using)
            if has_local_changes(registration, state, stamp, using, run.owner):
                return None
            rows, only_pulled = _page_rows(run, items, using)
            named = named_parents(registration, items.values())
            if missing_parents(named, {model: items}, using):
                return None
            result = ModelResult(model=registration.label, url=None)  # counted once committed
            plan = decide(LocalSnapshot(now=stamp, rows=rows, changed=set(), removed=set()), result)
            if plan.deletes and has_children:
                return None
            _write_page(registration, plan, stamp, using, ahead, run.owner)
            result.created, result.updated = len(plan.creates), len(plan.updates)
            result.removed = len(plan.deletes)
            return _page_state(state, stamp, cursor, using), result, only_pulled

    done = run_with_retries(apply, using)
    if done is None:
        return False
    new, result, run.only_pulled = done
    run.state.__dict__.update(new.__dict__)
    for counter in ("pulled", "created", "updated", "removed"):
        setattr(run.result, counter, getattr(run.result, counter) + getattr(result, counter))
        run.streamed[counter] = run.streamed.get(counter, 0) + getattr(result, counter)
    return True


def _page_rows(run, items, using) -> tuple[dict, bool]:
    """``(rows, only_pulled)``: the local rows of the page's ids, and whether the table holds
    only what this pull's pages wrote.

    Only this pull's pages wrote the table when it was empty at the first
    one, and each page since checked that nothing else was written: they
    hold ids up to the cursor, this page ids after it, and a pull names an
    id once, so none of this page's ids is here (a remote that repeats an
    id fails the insert, loudly).
    """
    model = run.registration.model
    base = model._base_manager.db_manager(using)
    only_pulled = run.only_pulled or not base.exists()
    rows: dict = {}
    if not only_pulled:
        # Most ids of a first sync are new here: find the few that are not first.
        # (Another local user's object with a pulled id is no row of this sync:
        # writing it fails loudly rather than change what is not ours.)
        mine = synced_objects(run.registration, using, run.owner)
        for chunk in chunks(bulk.existing_ids(model, model._meta.pk.attname, items, using)):
            rows.update(read_rows(run.registration, mine.filter(is_in("pk", chunk))))
    return rows, only_pulled


def _write_page(registration, plan, stamp, using, ahead, owner=None) -> None:
    """The page's plan, stamped ``stamp``; its creates were read absent under the clock."""
    model = registration.model
    insert_at(model, parents_first(registration, plan.creates), stamp, using, columns=ahead)
    updates = [build(model, pk, {**row.values, **values})
               for pk, (row, values) in plan.updates.items()]
    if updates:
        upsert_at(model._base_manager.db_manager(using).all(), updates, stamp,
                  _columns(registration), ID_CHUNK)
    delete_in_chunks(registration, list(plan.deletes), using, owner)


def _page_state(state, stamp, cursor, using):
    """The sync state after a page: its local side at ``stamp``, and the pull's cursor."""
    new = copy.copy(state)  # run.state changes only once this has committed
    new.local_date = new.applied_stamp = stamp
    now, after = cursor
    resumable = len(after) <= new._meta.get_field("page_after").max_length
    new.page_now, new.page_after = (now, after) if resumable else (0, "")
    new.save(using=using)
    return new


def _commit_without_waiting(using) -> None:
    """PostgreSQL: this transaction's commit does not wait for its WAL to reach the disk.

    A page's transaction writes the page and the cursor after it together,
    so a crash that loses it loses both: the next run pulls that page again.
    Nothing later can survive it either (WAL is flushed in order, and every
    other commit, a local writer's or the sync's last, waits for the flush).
    Most of a page's commit was that wait.
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def has_local_changes(registration, state, stamp, using, owner=None) -> bool:
    """Whether an object or tombstone of the model is stamped in ``(local_date, stamp)``.

    Objects carrying the last sync's applied stamp are values taken from the
    remote, not local changes.
    """
    window = {"last_change__gt": state.local_date, "last_change__lt": stamp}
    objects = synced_objects(registration, using, owner).filter(**window)
    tombstones = synced_tombstones(registration, using, owner).filter(**window)
    if state.applied_stamp:
        objects = objects.exclude(last_change=state.applied_stamp)
        tombstones = tombstones.exclude(last_change=state.applied_stamp)
    return objects.exists() or tombstones.exists()
