"""The sync client's side of the local database: reading local changes, applying plans.

:func:`collect_all` reads, in one snapshot, the local clocks and what changed
here since the last sync; :func:`record_push` records a push before it is
sent; :func:`apply_all` writes what the
:class:`~persistence_sync.client.planner.Planner` of each model took from the
remote and the new :class:`~persistence_sync.models.SyncState` of each, in one
transaction. How local changes are told from values taken from the remote is
explained in :mod:`persistence_sync.client`.
"""

from __future__ import annotations

import copy
import urllib.parse
from dataclasses import dataclass

from django.db import connections, transaction
from django.utils import timezone

from persistence_sync import clock
from persistence_sync.db import chunks, is_in, run_with_retries
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


def collect_local(registration, state, pulled_ids, using, delivered=None) -> LocalSnapshot:
    """The local changes since the last sync and the local copies of pulled objects.

    ``delivered``: ``{pk: local clock value}`` of changes a replayed push
    already delivered; such a change is no longer a local one unless the
    object was written again after that value.
    """
    from persistence_sync.models import Tombstone

    base = registration.model._base_manager.db_manager(using)
    delivered = delivered or {}
    with clock.read_snapshot(using):
        now = clock.committed_now(registration.model, using)
        window = {"last_change__gt": state.local_date, "last_change__lte": now}
        changed_qs = base.filter(**window)
        removed_qs = Tombstone.objects.using(using).filter(model=registration.label, **window)
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
        # lives on: that is a change to push, not a deletion.
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
                                      delivered=run.delivered)


def record_push(run, items, push_id, using):
    """Record a push of ``run``'s model in the local database before it is sent."""
    from persistence_sync.models import OutgoingPush

    with transaction.atomic(using=using):
        return OutgoingPush.objects.using(using).create(
            model=run.registration.label, remote=state_key(run.url), push_id=push_id,
            items=items, decided_at=run.local.now,
        )


def unanswered_pushes(registration, url, using) -> list:
    """Pushes recorded for ``registration`` and ``url`` whose sync never completed."""
    from persistence_sync.models import OutgoingPush

    return list(OutgoingPush.objects.using(using).filter(
        model=registration.label, remote=state_key(url)))


def forget_pushes(pks, using) -> None:
    from persistence_sync.models import OutgoingPush

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
            deletes = [write_plan(run.registration, run.plan, run.local, using, run.result)
                       if run.plan.writes else [] for run in runs]
            for run, pks in reversed(list(zip(runs, deletes))):
                delete_in_chunks(run.registration, pks, using)
            for run in runs:
                save_state(run, stamps.get(clock.clock_key(run.registration.model), 0), using)

    run_with_retries(apply, using)


def delete_in_chunks(registration, pks, using) -> None:
    from persistence_sync.models import delete_at

    base = registration.model._base_manager.db_manager(using)
    for chunk in chunks(pks):
        delete_at(base.filter(is_in("pk", chunk)), clock.tick(registration.model, using))


def save_state(run, applied_stamp, using) -> None:
    """The new sync state of ``run``'s model; its recorded pushes are done with."""
    state = run.state
    state.server_date = run.pull_now
    state.server_push_date = run.push_now
    state.local_date = run.local.now
    state.applied_stamp = applied_stamp
    state.page_now, state.page_after = 0, ""  # the pull is complete
    state.synced_at = timezone.now()
    state.save(using=using)
    forget_pushes(run.acknowledged, using)


def write_plan(registration, plan, local, using, result) -> list:
    """The plan's creates and updates, minus what changed here meanwhile.

    Returns the ids to delete, for the caller to delete once the children are done.
    """
    from persistence_sync.models import upsert_at

    model = registration.model
    # Ticking first takes the clock's lock: local writers of this model wait
    # until the sync commits, and what is re-read below stays true.
    stamp = clock.tick(model, using)
    base = model._base_manager.db_manager(using)
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
    from persistence_sync.models import Tombstone

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

    For a model related to itself: MySQL checks foreign keys row by row, even
    inside one statement. (A cycle keeps its order; it needs the deferred
    checks of the other databases.)
    """
    attnames = [codec.attname for codec in registration.codecs
                if codec.related_model is registration.model]
    if not attnames:
        return creates
    ordered, seen = {}, set()
    for start in creates:
        chain, pk = [], start  # up the parents not placed yet, then placed top down
        while pk in creates and pk not in seen:
            seen.add(pk)
            chain.append(pk)
            pk = next((creates[pk][name] for name in attnames
                       if creates[pk].get(name) in creates), None)
        for pk in reversed(chain):
            ordered[pk] = creates[pk]
    return ordered


# --- a pull applied page by page ----------------------------------------------------


def parse_page(run, updates, using) -> tuple:
    """``(items, ahead)`` of a pulled page: its ``RemoteItem`` by id, and their insert's columns.

    Runs in the thread that fetches pages (see :func:`~persistence_sync.client.pages`),
    while the caller waits for its database to write the page before. A
    page applied as it comes (``run.streaming``) is most often all new
    objects, so their database values are computed here too
    (:func:`~persistence_sync.models.new_columns`, ``ahead``); the page's
    insert uses them if the plan creates exactly those objects, and
    computes its own otherwise. None when the page will not be applied as it
    comes.
    """
    from persistence_sync.client.planner import parse_remote
    from persistence_sync.models import new_columns

    items = parse_remote(run.registration, updates)
    if not run.streaming:
        return items, None
    live = {pk: item.python for pk, item in items.items() if not item.removed}
    return items, new_columns(run.registration.model, live, using)


def apply_page(run, items, cursor, using, has_children, ahead=None) -> bool:
    """Apply one pulled page at once, when no local change can be involved; whether it did.

    ``items``: the page's :class:`~persistence_sync.client.planner.RemoteItem`
    by id; ``cursor``: ``(now, last id)`` of the paged pull after this page;
    ``has_children``: whether other models of the sync name this one (a
    deletion here would cascade into them, which only the whole sync's one
    transaction can stamp for them); ``ahead``: the insert's columns as
    :func:`parse_page` computed them.

    In one transaction: tick the model's clock (local writers now wait), check
    that nothing was written here since the last sync (no object or
    tombstone stamped in ``(local_date, stamp)`` besides the last applied
    stamp) and that every parent the page names exists here, then write the
    page with ``stamp`` and record ``local_date = applied_stamp = stamp`` and
    the cursor. With no local change there is nothing to decide but "take the
    remote" (the :class:`Planner` is run anyway, on the page's ids), and since
    every write stamped below ``stamp`` is committed (stamps commit in order)
    and none is a local change, advancing ``local_date`` to ``stamp`` forgets
    none: local writes made later are stamped above it and are local changes
    of this sync's end or of the next one.

    Returns False (writing nothing) when a check fails: the caller keeps the
    page and the rest of the pull in memory, to be decided with the local
    changes at the end of the sync, as a sync always did.
    """
    from persistence_sync.client.conflicts import prefer_remote
    from persistence_sync.client.planner import Planner
    from persistence_sync.client.results import ModelResult
    from persistence_sync.models import existing_ids, insert_at, upsert_at

    registration, state = run.registration, run.state
    model = registration.model
    base = model._base_manager.db_manager(using)

    def apply():
        _commit_without_waiting(using)
        with clock.applying_remote():
            stamp = clock.tick(model, using)
            if has_local_changes(registration, state, stamp, using):
                return None
            rows = {}
            # Only this pull's pages wrote the table (it was empty at the first
            # one, and each page since checked that nothing else was written):
            # they hold ids up to the cursor, this page ids after it, and a
            # pull names an id once, so none of this page's ids is here. A
            # remote that repeats an id fails the insert, loudly.
            only_pulled = run.only_pulled or not base.exists()
            if not only_pulled:
                # Most ids of a first sync are new here: find the few that are not first.
                for chunk in chunks(existing_ids(model, model._meta.pk.attname, items, using)):
                    rows.update(read_rows(registration, base.filter(is_in("pk", chunk))))
            if missing_parents(registration, items, using):
                return None
            scratch = ModelResult(model=registration.label, url=None)  # counted once committed
            snapshot = LocalSnapshot(now=stamp, rows=rows, changed=set(), removed=set())
            plan = Planner(registration, state, items, snapshot, prefer_remote, scratch).decide()
            if plan.deletes and has_children:
                return None
            # Read above under the clock: the creates are absent, a plain insert.
            insert_at(model, parents_first(registration, plan.creates), stamp, using,
                      columns=ahead)
            updates = [build(model, pk, {**row.values, **values})
                       for pk, (row, values) in plan.updates.items()]
            if updates:
                upsert_at(base.all(), updates, stamp, _columns(registration), ID_CHUNK)
            delete_in_chunks(registration, list(plan.deletes), using)
            new = copy.copy(state)  # run.state changes only once this has committed
            new.local_date = new.applied_stamp = stamp
            now, after = cursor
            resumable = len(after) <= new._meta.get_field("page_after").max_length
            new.page_now, new.page_after = (now, after) if resumable else (0, "")
            new.save(using=using)
            scratch.created, scratch.updated = len(plan.creates), len(plan.updates)
            scratch.removed = len(plan.deletes)
            return new, scratch, only_pulled

    done = run_with_retries(apply, using)
    if done is None:
        return False
    new, scratch, run.only_pulled = done
    run.state.__dict__.update(new.__dict__)
    for counter in ("pulled", "created", "updated", "removed"):
        setattr(run.result, counter, getattr(run.result, counter) + getattr(scratch, counter))
        run.streamed[counter] = run.streamed.get(counter, 0) + getattr(scratch, counter)
    return True


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


def has_local_changes(registration, state, stamp, using) -> bool:
    """Whether an object or tombstone of the model is stamped in ``(local_date, stamp)``.

    Objects carrying the last sync's applied stamp are values taken from the
    remote, not local changes.
    """
    from persistence_sync.models import Tombstone

    window = {"last_change__gt": state.local_date, "last_change__lt": stamp}
    objects = registration.model._base_manager.db_manager(using).filter(**window)
    tombstones = Tombstone.objects.using(using).filter(model=registration.label, **window)
    if state.applied_stamp:
        objects = objects.exclude(last_change=state.applied_stamp)
        tombstones = tombstones.exclude(last_change=state.applied_stamp)
    return objects.exists() or tombstones.exists()


def missing_parents(registration, items, using) -> bool:
    """Whether the page's objects name a related object that is not here (nor in the page)."""
    for codec in registration.codecs:
        if codec.related_model is None:
            continue
        named = {item.python.get(codec.attname) for item in items.values()} - {None}
        if codec.related_model is registration.model:
            named -= set(items)
        base = codec.related_model._base_manager.db_manager(using)
        for chunk in chunks(named):
            if len(chunk) != base.filter(is_in("pk", chunk)).count():
                return True
    return False
