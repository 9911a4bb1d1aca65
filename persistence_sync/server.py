"""The server side of the protocol against the database: a model's pull and push.

The view (:mod:`persistence_sync.views`) parses the request and calls
:func:`pull` or :func:`push`; both are set-based.

:func:`pull` answers ``{"now", "updates"}`` with a fixed number of queries
(the clock, the objects, the tombstones) whatever the number of objects.
:func:`push` stores a whole batch under one stamp with a fixed number of
queries per ``BATCH_SIZE`` objects, or stores nothing.
"""

import time
from dataclasses import dataclass
from operator import itemgetter

from django.db import connections, models

from persistence_sync import clock
from persistence_sync.conf import sync_settings
from persistence_sync.db import chunks, lock_timeout, run_with_retries
from persistence_sync.exceptions import PUSH_REFUSED, ProtocolError
from persistence_sync.models import Tombstone, delete_at, prepare_upsert
from persistence_sync.serializers import ID, LAST_CHANGE, REMOVED, USE_DEFAULT, raise_item_errors


def pull(registration, queryset, since, using):
    """The protocol's pull answer for objects of ``queryset`` changed after ``since``."""
    codecs = registration.codecs
    # Rows that never went through the clock (fixtures, data migrations with
    # historical models) keep the default stamp 0: a first sync includes them.
    after = since if since > 0 else -1
    with clock.read_snapshot(using):
        now = clock.committed_now(registration.model, using)
        rows = list(
            queryset.using(using)
            .filter(last_change__gt=after, last_change__lte=now)
            .values_list("pk", "last_change", *(codec.attname for codec in codecs))
        )
        removed = list(
            Tombstone.objects.using(using)
            .filter(model=registration.label, last_change__gt=since, last_change__lte=now)
            .values_list("object_id", "last_change")
        )
    names = [codec.name for codec in codecs]
    converters = [codec.to_wire for codec in codecs]
    # Ascending _lastChange, then id, by Python's ordering, so the order does
    # not depend on the database's collation.
    entries = [(row[1], row[0], row) for row in rows]
    entries += [(stamp, pk, None) for pk, stamp in removed]
    entries.sort(key=itemgetter(0, 1))
    updates = []
    for stamp, pk, row in entries:
        if row is None:
            updates.append({ID: pk, REMOVED: True, LAST_CHANGE: stamp})
            continue
        update = {ID: pk}
        for name, convert, value in zip(names, converters, row[2:]):
            update[name] = None if value is None else convert(value)  # hot loop: no call
        update[LAST_CHANGE] = stamp
        updates.append(update)
    return {"now": now, "updates": updates}


def push(registration, queryset, changes, using):
    """Store ``changes`` (from :func:`serializers.parse_push`) whole; return the stamp.

    What a push needs to read (the stored rows, visibility, relations) is
    read and checked *before* it takes the model's clock, so one large or
    slow push stalls no other writer of the model while it is prepared. Under
    the clock it only checks that the rows it read are unchanged (their
    stamps) and writes. If another writer changed them meanwhile, the push is
    prepared again; after ``PREPARE_ATTEMPTS`` such races it is prepared
    under the clock. A writer waiting for the clock longer than
    ``LOCK_TIMEOUT`` gives up with a database error and stores nothing.
    """
    queryset = queryset.using(using)
    timeout = sync_settings.LOCK_TIMEOUT
    deadline = time.monotonic() + timeout if timeout else None

    def prepare_and_write():
        stamp = _tick(registration.model, using, timeout)
        plan = _prepare(registration, queryset, changes, using)
        _write(registration, plan, stamp, using, changes)
        return stamp

    if connections[using].in_atomic_block:
        return run_with_retries(prepare_and_write, using)  # one transaction anyway
    for _ in range(PREPARE_ATTEMPTS):
        plan = _prepare(registration, queryset, changes, using)

        def write(plan=plan):
            stamp = _tick(registration.model, using, timeout)
            if not _unchanged(registration, plan, changes, using):
                raise _Stale
            _write(registration, plan, stamp, using, changes)
            return stamp

        try:
            return run_with_retries(write, using, deadline)
        except _Stale:
            continue
    return run_with_retries(prepare_and_write, using, deadline)


# Times a push is prepared outside the clock before it is prepared under it.
PREPARE_ATTEMPTS = 3


class _Stale(Exception):
    """Rows a push read changed before it took the clock: prepare it again."""


def _tick(model, using, timeout):
    with lock_timeout(using, timeout):
        return clock.tick(model, using)


@dataclass
class _Plan:
    """What a push writes, worked out (and its SQL compiled) from the rows it read."""

    versions: dict  # pk -> last_change of every pushed id stored when read
    writes: list
    upsert: object  # models.prepare_upsert() of the writes
    relinks: list  # (obj, attname) set once every new object exists
    removals: list


def _prepare(registration, queryset, changes, using):
    """Read what ``changes`` touch, check it, and work out the writes."""
    model = registration.model
    base = model._base_manager.db_manager(using)
    concrete = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
    stored = {}
    for chunk in chunks(changes):
        for row in base.filter(pk__in=chunk).values_list("pk", *concrete):
            stored[row[0]] = dict(zip(concrete, row[1:]))
    _check_same_ids(registration, changes, stored)
    _check_visibility(registration, queryset, changes, stored)
    _check_relations(registration, changes, stored, using)

    codecs = {codec.attname: codec for codec in registration.codecs}
    writes, removals, errors = [], [], []
    for pk, change in changes.items():
        if change.removed:
            if pk in stored:
                removals.append(pk)
            continue
        defaulted = [name for name, value in change.values.items() if value is USE_DEFAULT]
        if defaulted and pk in stored:
            errors += [{"index": change.index, "id": pk, "field": codecs[name].name,
                        "message": "may not be null"} for name in defaulted]
            continue
        values = {name: value for name, value in change.values.items() if value is not USE_DEFAULT}
        if pk in stored:
            old = stored[pk]
            if all(
                codecs[name].wire(value) == codecs[name].wire(old[name])
                for name, value in values.items()
            ):
                continue  # nothing changes: the object keeps its stamp
            writes.append(model(pk=pk, **{**old, **values}))
        else:
            writes.append(model(pk=pk, **values))  # a default applies where null was sent

    if errors:
        raise_item_errors(PUSH_REFUSED, errors)
    relinks = []
    if writes and not connections[using].features.can_defer_constraint_checks:
        writes, relinks = _parents_first(registration, writes, stored)
    upsert = prepare_upsert(base.all(), writes, [codec.attname for codec in registration.codecs])
    versions = {pk: row["last_change"] for pk, row in stored.items()}
    return _Plan(versions, writes, upsert, relinks, removals)


def _unchanged(registration, plan, changes, using):
    """Whether every pushed id is stored (or absent) exactly as when the push was prepared.

    All of them, also those the plan leaves alone because they already held
    the pushed values: were one changed meanwhile, this later push must win.
    Runs under the clock, so no writer of the model (every write path ticks
    it) can change them between this read and the writes.
    """
    base = registration.model._base_manager.db_manager(using)
    seen = {}
    for chunk in chunks(changes):
        seen.update(base.filter(pk__in=chunk).values_list("pk", "last_change"))
    return seen == plan.versions


def _write(registration, plan, stamp, using, changes):
    model = registration.model
    base = model._base_manager.db_manager(using)
    if plan.writes:
        plan.upsert.execute(stamp)
        if plan.relinks:  # links inside a cycle of new objects, set once all exist
            models.QuerySet.bulk_update(base.all(), [obj for obj, _ in plan.relinks],
                                        sorted({attname for _, attname in plan.relinks}))
        if not exact_ids(model, using):
            _check_written_ids(registration, plan.writes, using, changes)
    for chunk in chunks(plan.removals):
        delete_at(base.filter(pk__in=chunk), stamp)


def _check_same_ids(registration, changes, stored):
    """Refuse pushed ids that the database takes for a different stored id.

    MySQL/MariaDB's usual collations compare ``"a1"``, ``"A1"`` and ``"A1 "``
    as equal: reading ``"a1"`` finds the row ``"A1"``, and writing it would
    overwrite that object.
    """
    strangers = {_loosely(pk): pk for pk in stored if pk not in changes}
    if not strangers:
        return
    errors = [
        {"index": change.index, "id": pk, "field": ID,
         "message": f"the database takes this id for the stored id {strangers[_loosely(pk)]!r}; "
                    "ids that differ only in case or trailing spaces cannot both be stored"}
        for pk, change in changes.items()
        if pk not in stored and _loosely(pk) in strangers
    ]
    if not errors:  # a collation that equates more than case and trailing spaces
        errors = [{"index": None, "id": pk, "field": ID,
                   "message": "the database takes a pushed id for this stored id"}
                  for pk in strangers.values()]
    raise_item_errors(PUSH_REFUSED, errors)


def _loosely(value):
    """An approximation of a case-insensitive, PAD SPACE comparison (for messages only)."""
    return value.rstrip(" ").casefold()


def _check_written_ids(registration, writes, using, changes):
    """Refuse the push if two of its ids were stored as one row (rolls it back).

    Runs after the writes, under the clock, where the database's own
    comparison says which rows the ids landed on: each written id must be
    read back exactly.
    """
    base = registration.model._base_manager.db_manager(using)
    written = [obj.pk for obj in writes]
    errors = []
    for chunk in chunks(written):
        found = set(base.filter(pk__in=chunk).values_list("pk", flat=True))
        errors += [pk for pk in chunk if pk not in found]
    if errors:
        errors.sort(key=lambda pk: changes[pk].index)
        raise_item_errors(PUSH_REFUSED, [
            {"index": changes[pk].index, "id": pk, "field": ID,
             "message": "the database takes this id for another id of the push; ids that "
                        "differ only in case or trailing spaces cannot both be stored"}
            for pk in errors
        ])


_exact_ids = {}


def exact_ids(model, using):
    """Whether the database compares ``model``'s ids exactly (byte for byte).

    True on SQLite and PostgreSQL; on MySQL/MariaDB only with a NO PAD binary
    collation on the id column (``utf8mb4_nopad_bin``, ``utf8mb4_0900_bin``).
    Read once per process: restart the workers after changing the collation.
    """
    connection = connections[using]
    if connection.vendor != "mysql":
        return True
    key = (using, model._meta.db_table)
    if key not in _exact_ids:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT collation_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = %s AND column_name = %s",
                [model._meta.db_table, model._meta.pk.column],
            )
            row = cursor.fetchone()
        name = (row[0] or "") if row else ""
        # MariaDB names its NO PAD collations *_nopad_*; MySQL 8's *_0900_bin is NO PAD.
        _exact_ids[key] = name == "binary" or (
            name.endswith("_bin") and ("_nopad_" in name or "_0900_" in name)
        )
    return _exact_ids[key]


def _parents_first(registration, writes, stored):
    """Order ``writes`` so a parent created in the batch is written before its children.

    For databases that check foreign keys row by row (MySQL/MariaDB): a batch
    may name a parent that comes later in it. Links inside a cycle of new
    objects are written as NULL first; returns ``(writes, [(obj, attname)])``
    for the caller to set them once every object exists.
    """
    model = registration.model
    links = [codec.attname for codec in registration.codecs if codec.related_model is model]
    if not links:
        return writes, []
    pending = {obj.pk: obj for obj in writes if obj.pk not in stored}
    ordered, relinks, state = [], [], {}
    for root in writes:  # depth-first, without recursion: chains may be long
        if root.pk in state:
            continue
        state[root.pk] = "visiting"
        stack = [(root, iter(links))]
        while stack:
            obj, remaining = stack[-1]
            for attname in remaining:
                parent = pending.get(getattr(obj, attname))
                if parent is None or state.get(parent.pk) == "done":
                    continue
                if state.get(parent.pk) == "visiting":  # a cycle: link it afterwards
                    relinks.append((model(pk=obj.pk, **{attname: parent.pk}), attname))
                    setattr(obj, attname, None)
                    continue
                state[parent.pk] = "visiting"
                stack.append((parent, iter(links)))
                break
            else:
                stack.pop()
                state[obj.pk] = "done"
                ordered.append(obj)
    return ordered, relinks


def _check_visibility(registration, queryset, changes, stored):
    """Refuse changes to stored objects this request may not touch."""
    if registration.queryset is None and registration.get_queryset is None:
        return
    visible = set()
    for chunk in chunks(stored):
        visible.update(queryset.filter(pk__in=chunk).values_list("pk", flat=True))
    errors = [
        {"index": changes[pk].index, "id": pk, "field": None,
         "message": "you may not change this object"}
        for pk in stored
        if pk not in visible
    ]
    if errors:
        raise_item_errors(PUSH_REFUSED, errors, status_code=403)


def _check_relations(registration, changes, stored, using):
    """Every pushed relation must name an object that exists (or is created here)."""
    errors = []
    for codec in registration.codecs:
        target = codec.related_model
        if target is None:
            continue
        wanted = {}
        for pk, change in changes.items():
            value = change.values.get(codec.attname) if not change.removed else None
            if value is not None:
                wanted.setdefault(value, []).append(pk)
        if not wanted:
            continue
        found = set()
        to_field = codec.field.target_field.attname
        for chunk in chunks(wanted):
            found.update(
                target._base_manager.db_manager(using)
                .filter(**{f"{to_field}__in": chunk})
                .values_list(to_field, flat=True)
            )
        if target is registration.model:  # a parent created in the same batch
            found.update(pk for pk, change in changes.items() if not change.removed)
        for value, pks in wanted.items():
            if value not in found:
                for pk in pks:
                    errors.append({
                        "index": changes[pk].index, "id": pk, "field": codec.name,
                        "message": f"no {target._meta.object_name} with id {value!r}",
                    })
    if errors:
        errors.sort(key=itemgetter("index"))
        raise_item_errors(PUSH_REFUSED, errors)


__all__ = ["ProtocolError", "pull", "push"]
