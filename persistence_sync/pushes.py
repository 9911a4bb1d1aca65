"""The protocol-neutral push: the changes of one or several models, stored whole or not at all.

A protocol face parses its wire shape into :class:`Batch` objects, one per
model (:func:`persistence_sync.serializers.parse_push` checks every value),
and :func:`push` stores them::

    stamps = push([Batch(registration, access, changes)], using, receipt)   # {label: stamp}

Every model written gets one fresh stamp from its clock (:mod:`persistence_sync.clock`),
shared by all its changes in the push. What a push needs to read (the stored
rows, visibility, relations) is read and checked *before* it takes the
clocks, so a large or slow push stalls no other writer while it is
prepared. Under the clocks (taken in label order, each waiting at most
``LOCK_TIMEOUT``) it only checks that the rows it read are unchanged (their
stamps) and writes. If another writer changed them meanwhile, the push is
prepared again; after ``PREPARE_ATTEMPTS`` such races it is prepared under
the clocks. The write rule (:class:`persistence_sync.scoping.Access`) applies
to every model; :mod:`persistence_sync.receipts` makes pushes idempotent.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from django.db import connections, models, transaction

from persistence_sync import bulk, clock, compiled
from persistence_sync.conf import sync_settings
from persistence_sync.db import chunks, is_in, lock_timeout, run_with_retries
from persistence_sync.exceptions import PUSH_REFUSED
from persistence_sync.models import delete_at, prepare_upsert, scope_key
from persistence_sync.receipts import Receipt, digest
from persistence_sync.registry import Registration
from persistence_sync.scoping import Access
from persistence_sync.serializers import ID, USE_DEFAULT, raise_item_errors

# Times a push is prepared outside the clocks before it is prepared under them.
PREPARE_ATTEMPTS = 3


@dataclass
class Batch:
    """One model's part of a push: its changes (``{id: Change}``) and what the request may touch."""

    registration: Registration
    access: Access
    changes: dict

    @property
    def label(self) -> str:
        return self.registration.label


class _Stale(Exception):
    """Rows a push read changed before it took the clocks: prepare it again."""


@dataclass
class _Plan:
    """What a push writes to one model, worked out (and its SQL compiled) from the rows it read."""

    batch: Batch
    changes: dict  # the push's changes, less removals of objects it may not see
    versions: dict  # pk -> last_change of every pushed id stored when read
    writes: list = field(default_factory=list)
    upsert: Any = None  # models.prepare_upsert() of the writes
    relinks: list = field(default_factory=list)  # (obj, attname) set once every new object exists
    removals: list = field(default_factory=list)
    stored: dict = field(default_factory=dict)  # pk -> scope key (None unscoped) of stored objects


def push(batches: list[Batch], using: str, receipt: Receipt | None = None,
         check: Callable[[dict[str, int]], None] | None = None) -> dict[str, int] | None:
    """Store every batch's changes, or none; ``{label: stamp}`` of each model.

    ``receipt``: the push's id, if it has one (:class:`Receipt`): a repeat
    stores nothing and answers the first stamp (every label gets it); a
    replay of an id never stored returns None. ``check(stamps)``, when
    given, runs once every clock is held and before anything is written: a
    refusal it raises leaves nothing stored, and no other writer of these
    models can change what it read.
    """
    run = _PushRun(batches, using, receipt or Receipt("", "", None, using), check)
    if run.receipt.known() or run.receipt.replay:
        # A repeat needs no preparation; a replay stores nothing.
        return run.retried(run.answer_repeat)
    if connections[using].in_atomic_block:
        # Inside the caller's transaction run_with_retries opens none, and the
        # write rule may refuse after writing: a savepoint undoes the push.
        return run_with_retries(run.in_savepoint, using)
    for _ in range(PREPARE_ATTEMPTS):
        try:
            return run.retried(run.write_prepared(run.prepare(abandon=False)))
        except _Stale:
            continue
    return run.retried(run.prepare_and_write)


class _PushRun:
    """The steps of one :func:`push`: prepared outside the clocks, written under them."""

    def __init__(self, batches, using, receipt, check):
        self.batches, self.using, self.receipt, self.check = batches, using, receipt, check
        # The objects each model's batch creates or changes: a relation may name them.
        self.written = {batch.label: {pk for pk, change in batch.changes.items()
                                      if not change.removed} for batch in batches}
        self.timeout = sync_settings.LOCK_TIMEOUT
        self.deadline = time.monotonic() + self.timeout if self.timeout else None

    def retried(self, step):
        """``step()`` in a transaction, retried after transient errors until the deadline."""
        return run_with_retries(step, self.using, self.deadline)

    def prepare(self, abandon):
        """``(plans, repeated)``: each batch's plan, and what unanswered pushes stored."""
        repeated = self.receipt.repeated(abandon=abandon)
        return [_prepare(batch, self.using, repeated, self.receipt, self.written)
                for batch in self.batches], repeated

    def tick(self) -> dict[str, int]:
        """Tick each batch's clock, in label order: two pushes of several models cannot deadlock."""
        stamps = {}
        with lock_timeout(self.using, self.timeout):
            for batch in sorted(self.batches, key=lambda batch: batch.label):
                stamps[batch.label] = clock.tick(batch.registration.model, self.using)
        return stamps

    def answered(self):
        """Under the clocks, where the first copy cannot be running: the first answer."""
        stamp = self.receipt.answer()
        return None if stamp is None else {batch.label: stamp for batch in self.batches}

    def answer_repeat(self):
        self.tick()
        return self.answered()

    def write_prepared(self, prepared):
        """The write step of ``prepared`` plans: under the clocks, if nothing they read changed."""
        plans, repeated = prepared

        def write():
            stamps = self.tick()
            if self.receipt.known():  # another copy of this push was stored meanwhile
                return self.answered()
            if self.receipt.repeated() != repeated:
                raise _Stale
            if self.check is not None:
                self.check(stamps)
            if not all(_unchanged(plan, self.using) for plan in plans):
                raise _Stale
            return self.write(plans, stamps)

        return write

    def prepare_and_write(self):
        """Everything under the clocks: after races, or inside a caller's transaction."""
        stamps = self.tick()
        if self.receipt.known():
            return self.answered()
        plans, _ = self.prepare(abandon=True)
        if self.check is not None:
            self.check(stamps)
        return self.write(plans, stamps)

    def in_savepoint(self):
        with transaction.atomic(using=self.using):
            return self.prepare_and_write()

    def write(self, plans, stamps) -> dict[str, int]:
        for plan in plans:
            _write(plan, stamps[plan.batch.label], self.using)
        self.receipt.record(max(stamps.values(), default=0))
        return stamps


def _prepare(batch: Batch, using: str, repeated: dict, receipt: Receipt,
             written: dict[str, set]) -> _Plan:
    """Read what the batch touches, check it, and work out the writes.

    The write rule's first half, the owner and read-only fields, the
    relations, and the ``perform_write`` hook on the objects to write.
    ``repeated``: what unanswered pushes of the client stored
    (:meth:`Receipt.repeated`); the same values are not written again.
    ``written``: ``{label: ids}`` the whole push creates or changes.
    """
    registration, access = batch.registration, batch.access
    model = registration.model
    concrete = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
    stored = _stored(model, batch.changes, concrete, using)
    _check_same_ids(batch.changes, stored)
    changes = dict(batch.changes)  # check_before drops removals of hidden objects
    access.check_before(changes, stored, using)
    access.server_values(changes, stored)
    _check_relations(registration, changes, using, access, written)
    codecs = {codec.attname: codec for codec in registration.codecs}
    touched = _drop_repeats(batch, changes, codecs, repeated.get(batch.label, {}), receipt)
    plan = _Plan(batch, changes, {pk: row["last_change"] for pk, row in stored.items()})
    # Checked unchanged under the clock (_unchanged): the write need not read them again.
    attname = access.scope_attname
    plan.stored = {pk: None if attname is None else scope_key(row[attname])
                   for pk, row in stored.items()}
    _plan_writes(plan, stored, codecs, touched)
    access.prepare(plan.writes)
    access.check_scope(changes, plan.writes)
    if plan.writes and not connections[using].features.can_defer_constraint_checks:
        plan.writes, plan.relinks = _parents_first(registration, plan.writes, stored)
    # perform_write may set fields that are not synced; the old values of the
    # rest were read above and are checked unchanged under the clock
    # (_unchanged), so writing every column changes only what the push or
    # the hook changed.
    plan.upsert = prepare_upsert(model._base_manager.db_manager(using).all(), plan.writes,
                                 [name for name in concrete if name != "last_change"])
    return plan


def _stored(model, pks, attnames, using) -> dict:
    """``{pk: {attname: value}}`` of the stored objects among ``pks``."""
    stored = {}
    for chunk in chunks(pks):
        for row in _rows(model, chunk, ("pk", *attnames), using):
            stored[row[0]] = dict(zip(attnames, row[1:]))
    return stored


def _rows(model, pks, names, using) -> list[tuple]:
    """``names`` of the stored objects among ``pks`` (one batch), by a query compiled once."""
    manager = model._base_manager

    def build(marked):
        return manager.db_manager(using).filter(is_in("pk", marked)).values_list(*names)

    if not compiled.static_manager(manager):
        return list(build(pks))
    return compiled.fetch(using, ("rows", model, names), build, pks)


def _plan_writes(plan: _Plan, stored: dict, codecs: dict, touched: set) -> None:
    """The model instances to write and the ids to remove; 400 for a null on a stored object.

    An object pushed with the values it has keeps its stamp, unless
    ``touched`` (see :func:`_drop_repeats`).
    """
    model = plan.batch.registration.model
    # Values the server sets on new objects (the owner), given to the
    # constructor so that no field default runs for them.
    initial = plan.batch.access.initial_values()
    # The pk by its attname: model(pk=...) would compute the pk field's
    # default (a uuid4(), say) for every object, then throw it away.
    pk_attname = model._meta.pk.attname
    errors = []
    for pk, change in plan.changes.items():
        if change.removed:
            if pk in stored:
                plan.removals.append(pk)
            continue
        defaulted = [name for name, value in change.values.items() if value is USE_DEFAULT]
        if defaulted and pk in stored:
            errors += [{"index": change.index, "id": pk, "field": codecs[name].name,
                        "message": "may not be null"} for name in defaulted]
            continue
        values = {name: value for name, value in change.values.items() if value is not USE_DEFAULT}
        if pk not in stored:
            # A default applies where null was sent.
            plan.writes.append(model(**{pk_attname: pk, **initial, **values}))
            continue
        old = stored[pk]
        if pk not in touched and all(codecs[name].wire(value) == codecs[name].wire(old[name])
                                     for name, value in values.items()):
            continue  # nothing changes: the object keeps its stamp
        obj = model(**{pk_attname: pk, **old, **values})
        obj._state.adding = False
        plan.writes.append(obj)
    if errors:
        raise_item_errors(PUSH_REFUSED, errors)


def _drop_repeats(batch, changes, codecs, repeated, receipt) -> set:
    """Drop the values an unanswered push of the client stored already; the ids touched.

    The client did not learn that its earlier push was stored, so it sends
    those values again; another client may have changed them since, and
    that later, acknowledged change must win. An object that loses values
    here is written anyway (stamped): its server values then come back to
    the client in its next pull.
    """
    touched: set = set()
    if not repeated and not receipt.remembers:
        return touched  # the usual push: nothing to compare, nothing to remember
    for pk, change in list(changes.items()):
        if change.removed:
            continue
        wire = {name: codecs[name].wire(value) for name, value in change.values.items()
                if value is not USE_DEFAULT}
        receipt.note(batch.label, pk, wire)
        earlier = repeated.get(pk)
        if not earlier:
            continue
        again = {name for name, value in wire.items() if earlier.get(name) == digest(value)}
        if again:
            # A new Change: the batch's own is prepared again after a race.
            changes[pk] = dataclasses.replace(change, values={
                name: value for name, value in change.values.items() if name not in again})
            touched.add(pk)
    return touched


def _unchanged(plan: _Plan, using: str) -> bool:
    """Whether every pushed id is stored (or absent) exactly as when the push was prepared.

    All of them, also those the plan leaves alone because they already held
    the pushed values: were one changed meanwhile, this later push must win.
    Runs under the clock, so no writer of the model (every write path ticks
    it) can change them between this read and the writes.
    """
    model = plan.batch.registration.model
    seen: dict = {}
    for chunk in chunks(plan.changes):
        seen.update(_rows(model, chunk, ("pk", "last_change"), using))
    return seen == plan.versions


def _write(plan: _Plan, stamp: int, using: str) -> None:
    registration, access = plan.batch.registration, plan.batch.access
    model = registration.model
    base = model._base_manager.db_manager(using)
    if plan.writes:
        plan.upsert.execute(stamp, plan.stored)
        if plan.relinks:  # links inside a cycle of new objects, set once all exist
            models.QuerySet.bulk_update(base.all(), [obj for obj, _ in plan.relinks],
                                        sorted({attname for _, attname in plan.relinks}))
        if not exact_ids(model, using):
            _check_written_ids(registration, plan.writes, using, plan.changes)
        access.check_after(plan.changes, plan.writes, using)  # the write rule's second half
    for chunk in chunks(plan.removals):
        delete_at(base.filter(is_in("pk", chunk)), stamp)


def _check_same_ids(changes, stored):
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
    written = [obj.pk for obj in writes]
    errors = []
    for chunk in chunks(written):
        found = {row[0] for row in _rows(registration.model, chunk, ("pk",), using)}
        errors += [pk for pk in chunk if pk not in found]
    if errors:
        errors.sort(key=lambda pk: changes[pk].index)
        raise_item_errors(PUSH_REFUSED, [
            {"index": changes[pk].index, "id": pk, "field": ID,
             "message": "the database takes this id for another id of the push; ids that "
                        "differ only in case or trailing spaces cannot both be stored"}
            for pk in errors
        ])


_exact_ids: dict[tuple[str, str], bool] = {}  # (database alias, model table) -> exact_ids()


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
    """``(writes, relinks)``: a parent created in the batch written before its children.

    For databases that check foreign keys row by row (MySQL/MariaDB): a batch
    may name a parent that comes later in it. Links inside a cycle of new
    objects are written as NULL first; ``relinks`` (``[(obj, attname)]``)
    sets them once every object exists.
    """
    model = registration.model
    links = [codec.attname for codec in registration.codecs if codec.related_model is model]
    if not links:
        return writes, []
    new = {obj.pk: obj for obj in writes if obj.pk not in stored}
    order, cycles = bulk.parents_first(
        {obj.pk: [getattr(obj, attname) for attname in links] for obj in writes}, new)
    by_pk = {obj.pk: obj for obj in writes}
    relinks = []
    for pk, parent in cycles:
        obj = by_pk[pk]
        for attname in links:
            if getattr(obj, attname) == parent:
                relinks.append((model(pk=pk, **{attname: parent}), attname))
                setattr(obj, attname, None)
    return [by_pk[pk] for pk in order], relinks


def _check_relations(registration, changes, using, access, written):
    """Every pushed relation must name an object the request may see (or one the push writes).

    A hidden object gets the same answer as a missing one. ``written``:
    ``{label: ids}`` the push creates or changes (checked by their own
    model's rules; parents are written first).
    """
    errors = []
    for codec in registration.codecs:
        target = codec.related_model
        if target is None or codec.attname == access.scope_attname:
            # The scope is checked against the request's scope values instead: a
            # value outside them is refused (403) whether it exists or not.
            continue
        wanted: dict[Any, list[Any]] = {}  # related id -> the pushed objects that name it
        for pk, change in changes.items():
            value = change.values.get(codec.attname) if not change.removed else None
            if value is not None:
                wanted.setdefault(value, []).append(pk)
        if not wanted:
            continue
        found = access.related(target, codec.field.target_field.attname, list(wanted), using)
        found.update(written.get(target._meta.label_lower, ()))  # a parent of the same push
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
