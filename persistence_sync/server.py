"""The server side of the protocol against the database: a model's pull and push.

The view (:mod:`persistence_sync.views`) parses the request and calls
:func:`pull` or :func:`push`; both are set-based.

:func:`pull` answers ``{"now", "updates"}`` with a fixed number of queries
(the clock, the objects, the tombstones) whatever the number of objects.
:func:`push` stores a whole batch under one stamp with a fixed number of
queries per ``BATCH_SIZE`` objects, or stores nothing.
"""

import datetime
import json
import time
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson
from django.db import connections, models, transaction
from django.db.models.sql.constants import MULTI
from django.utils import timezone

from persistence_sync import clock
from persistence_sync.conf import sync_settings
from persistence_sync.db import chunks, is_in, lock_timeout, run_with_retries
from persistence_sync.exceptions import PUSH_REFUSED, HistoryPruned, ProtocolError
from persistence_sync.models import PushReceipt, Tombstone, delete_at, prepare_upsert
from persistence_sync.serializers import (
    ID,
    LAST_CHANGE,
    REMOVED,
    USE_DEFAULT,
    raise_item_errors,
)

# Expired push receipts deleted by one push, at most.
RECEIPTS_PRUNED_PER_PUSH = 100


class Page:
    """Which slice of the changes a pull answers.

    A classic pull answers everything changed in ``(since, now]``, with ``now``
    the clock's committed value. A paged pull (an extension, see
    ``docs/protocol.md``) answers at most ``limit`` objects of that window in
    ascending id order; its next pages name the same ``now`` and the last id
    they hold (``after``), so every page of one sync reads the same window.
    """

    def __init__(self, since=0, limit=None, now=None, after=None):
        self.since, self.limit, self.now, self.after = since, limit, now, after

    @property
    def paged(self):
        return self.limit is not None


def pull(registration, queryset, since, using, page=None, access=None):
    """The whole pull answer as a dict (tests, small callers); see :func:`pull_chunks`."""
    return orjson.loads(b"".join(
        pull_chunks(registration, queryset, page or Page(since), using, access=access)))


def pull_chunks(registration, queryset, page, using, on_done=None, access=None):
    """The pull answer's JSON, as bytes chunks written while the rows are read.

    The clock and every row come from one database snapshot (the ``now`` rule,
    :mod:`persistence_sync.clock`), which stays open until the last chunk is
    produced: memory is bounded by ``BATCH_SIZE`` rows, whatever the answer's
    size. Objects and tombstones come merged by the database, in ascending id
    order, so a client that pulls again from scratch rebuilds its rows in the
    same order, and pages can continue ``after`` an id.

    Raises :class:`HistoryPruned` (410) when ``since`` is older than the
    model's tombstone horizon (:mod:`persistence_sync.retention`).
    ``on_done(now, count)`` is called once the last chunk is produced.

    ``access`` (for a scoped registration; ``queryset`` is then its
    ``access.queryset``) limits the tombstones to the request's scope values
    and adds what a change of those values since ``page.since`` brings
    (:mod:`persistence_sync.scoping`): objects of a granted value join the
    streamed window; removals for a revoked value exist only in memory, so
    the rare pull that carries one is answered whole, sorted by id, with
    ``more: false`` even when paged.
    """
    scoped = access is not None and access.scope_attname is not None
    if scoped:
        access.refresh_grants(using)  # before the snapshot: this pull answers it
    with clock.read_snapshot(using):
        now, horizon = clock.committed_now_and_horizon(registration.model, using)
        if 0 < page.since < horizon:
            # Deletions in (since, horizon] are gone: an answer would let the
            # client keep objects deleted here. since=0 needs no deletions.
            raise HistoryPruned(page.since, horizon)
        if page.now is not None:
            if page.now > now:
                raise ProtocolError(
                    f"now={page.now} is ahead of the server's clock ({now}); send the now "
                    "that the first page of this sync answered."
                )
            now = page.now
        # A pull from 0 gets everything visible and holds nothing to remove.
        granted, revoked = (access.grant_changes(page.since, now, using)
                            if scoped and page.since > 0 else ([], []))
        paged = page.paged
        if revoked:
            page = Page(page.since, after=page.after)  # answered whole: see above
        window = Window(registration, queryset, page, now, using, access if scoped else None,
                        granted)
        sent = [0]  # items written so far, counted by _encoded_items
        yield b'{"now":%d,"updates":[' % now
        if revoked:
            batches = _with_revocations(
                window, access.revoked_removals(revoked, page.since, using))
        else:
            batches = window.changes()
        more = yield from _encoded_items(batches, page, sent)
        if paged:
            yield b'],"more":%s}' % (b"true" if more else b"false")
        else:
            yield b"]}"
    if on_done is not None:
        on_done(now, sent[0])


def window_objects(queryset, since, now, using):
    """The objects of ``queryset`` stamped in the window ``(since, now]``."""
    # Rows that never went through the clock (fixtures, data migrations with
    # historical models) keep the default stamp 0: a first sync includes them.
    return queryset.using(using).filter(last_change__gt=since if since > 0 else -1,
                                        last_change__lte=now)


def window_tombstones(registration, since, now, using):
    """The tombstones of ``registration``'s model stamped in ``(since, now]``."""
    return Tombstone.objects.using(using).filter(
        model=registration.label, last_change__gt=since, last_change__lte=now
    )


class Window:
    """What one pull answers: the objects and the tombstones of ``(since, now]``, scoped.

    With ``access`` (a scoped registration), ``queryset`` is what the request
    sees; objects of the ``granted`` values (granted after ``since``) join the
    window whatever their stamp, and only the tombstones of the request's
    scope values are answered, never one of an object it sees (an object that
    moved between two of its scopes, or came back).
    """

    def __init__(self, registration, queryset, page, now, using, access=None, granted=()):
        self.registration, self.page, self.now, self.using = registration, page, now, using
        self.queryset, self.access, self.granted = queryset, access, list(granted)

    def objects(self):
        objects = window_objects(self.queryset, self.page.since, self.now, self.using)
        if self.granted:
            # One query for the window and the granted values: no id twice.
            in_granted = models.Q(**{f"{self.access.scope_attname}__in": self.granted})
            since = self.page.since if self.page.since > 0 else -1
            objects = self.queryset.using(self.using).filter(
                models.Q(last_change__gt=since) | in_granted, last_change__lte=self.now)
        if self.page.after is not None:
            objects = objects.filter(pk__gt=self.page.after)
        return objects

    def tombstones(self):
        """``(queryset, id column, stamp column)`` of the tombstones this pull answers."""
        tombstones = window_tombstones(self.registration, self.page.since, self.now, self.using)
        tombstones, object_id = as_model_ids(self.registration.model, tombstones, self.using)
        if self.page.after is not None:
            tombstones = tombstones.filter(**{f"{object_id}__gt": self.page.after})
        if self.access is None:
            # Unscoped: recreating an id forgets its tombstone, so a tombstone
            # and a live object never share an id, and an id has one tombstone.
            return tombstones.order_by(), object_id, "last_change"
        # NOT EXISTS, one index probe per tombstone: NOT IN (visible ids) made
        # the database list every visible id for every page.
        visible = self.queryset.using(self.using).order_by().filter(pk=models.OuterRef(object_id))
        # A scoped object has one tombstone per scope it left: answer the
        # latest of those the request may learn of, once.
        tombstones = (self.access.tombstones(tombstones).filter(~models.Exists(visible))
                      .order_by().values(object_id).annotate(latest=models.Max("last_change")))
        return tombstones, object_id, "latest"

    def changes(self):
        """The window's items as they travel, in lists of at most ``BATCH_SIZE``, by ascending id.

        One query: objects and tombstones merged and ordered by the database.
        Rows are read in batches (a server-side cursor where the database has
        one) and turned into wire dicts column by column: ``dict(zip())`` of
        the row, then only the columns whose database value is not already
        what travels (a SQLite boolean, a date, JSON text) are converted, and
        nulls never are. A paged window reads ``limit + 1`` rows: the extra
        one says that more follow.
        """
        codecs = self.registration.codecs
        marker = models.IntegerField()
        values = [f"ps_v{index}" for index in range(len(codecs))]
        # Every column is an annotation, named and annotated in the same order
        # in both branches: before Django 5.0, values_list() put model fields
        # before annotations and annotations in the order they were made,
        # whatever the order asked, which would pair the branches' columns
        # wrongly in the UNION. The order (id, values, stamp, removed) is the
        # wire item's, so that a row zips straight into one.
        objects = self.objects().order_by().annotate(
            ps_id=models.F("pk"),
            **{name: models.F(codec.attname) for name, codec in zip(values, codecs)},
            ps_stamp=models.F("last_change"), ps_removed=models.Value(0, output_field=marker),
        )
        tombstones, object_id, stamp = self.tombstones()
        tombstones = tombstones.annotate(
            ps_id=models.F(object_id),
            **{name: models.Value(None, output_field=codec.field.target_field
                                  if codec.field.is_relation else codec.field)
               for name, codec in zip(values, codecs)},
            ps_stamp=models.F(stamp), ps_removed=models.Value(1, output_field=marker),
        )
        columns = ["ps_id", *values, "ps_stamp", "ps_removed"]
        objects, tombstones = objects.values_list(*columns), tombstones.values_list(*columns)
        connection = connections[self.using]
        if self.page.paged and connection.features.supports_slicing_ordering_in_compound:
            # Each branch ordered and limited too (PostgreSQL, MariaDB): the
            # database then reads a page from an index in id order and stops,
            # where a LIMIT over the whole UNION made it sort every row after
            # ``after``. SQLite allows no LIMIT in a branch; it already reads
            # in index order (with an index on (scope, id) for a scoped model).
            objects = objects.order_by("ps_id")[: self.page.limit + 1]
            tombstones = tombstones.order_by("ps_id")[: self.page.limit + 1]
        # The union is ordered by the database, in its own collation: the order
        # that ``id > after`` follows too, so pages never skip or repeat an id.
        changes = objects.union(tombstones, all=True).order_by("ps_id")
        if self.page.paged:
            changes = changes[: self.page.limit + 1]  # one more says whether more follow
        compiler = changes.query.get_compiler(using=self.using)
        # Raw rows, without Django's per-row converters: _wire_conversions
        # applies the few that matter, to non-null values only.
        batches = compiler.execute_sql(MULTI, chunked_fetch=True,
                                       chunk_size=sync_settings.BATCH_SIZE)
        if batches is None:
            return
        selected = [column[0] for column in compiler.select[: compiler.col_count]]
        conversions = _wire_conversions(codecs, selected[1:-2], compiler)
        # The id as Django reads it (a UUID primary key stored as text, say).
        id_converters = compiler.get_converters(selected[:1]).get(0, ([], None))[0]
        if id_converters:
            conversions.insert(0, (ID, _converted(id_converters, selected[0], compiler.connection,
                                                  lambda value: value)))
        keys = (ID, *(codec.name for codec in codecs), LAST_CHANGE)
        for rows in batches:
            items = []
            for row in rows:
                if row[-1]:
                    items.append({ID: row[0], REMOVED: True, LAST_CHANGE: row[-2]})
                    continue
                item = dict(zip(keys, row))  # the last column (removed) has no key
                for key, convert in conversions:  # hot loop: no call for a null
                    value = item[key]
                    if value is not None:
                        item[key] = convert(value)
                items.append(item)
            yield items


def _wire_conversions(codecs, expressions, compiler):
    """``[(wire name, convert)]``: the columns whose raw database value is not what travels.

    ``convert`` applies the database's converters for the column (what
    Django would when it builds a value) then the codec's ``to_wire``; a
    column with neither is left out.
    """
    converters = compiler.get_converters(expressions)
    conversions = []
    for index, (codec, expression) in enumerate(zip(codecs, expressions)):
        from_db = converters.get(index, ([], None))[0]
        if not from_db and not codec.converts_to_wire:
            continue
        conversions.append((codec.name, _converted(from_db, expression, compiler.connection,
                                                   codec.to_wire)))
    return conversions


def _converted(from_db, expression, connection, to_wire):
    """``value -> wire value``: the database's converters for the column, then ``to_wire``."""
    def convert(value):
        for converter in from_db:
            value = converter(value, expression, connection)
        return None if value is None else to_wire(value)

    return convert


class _Collated(models.Func):
    """An id column compared, ordered and merged as another column's collation."""

    output_field = models.CharField()

    def __init__(self, expression, collation, vendor):
        if vendor == "mysql":
            charset = collation.split("_")[0]
            self.template = f"CONVERT(%(expressions)s USING {charset}) COLLATE {collation}"
        else:
            self.template = f'%(expressions)s COLLATE "{collation}"'
        super().__init__(expression)


# (database alias, model table) -> the id column's collation where it differs from tombstones'
_collations: dict[tuple[str, str], str | None] = {}


def as_model_ids(model, tombstones, using):
    """``(tombstones, name)``: their ``object_id`` as the database compares ``model``'s ids.

    A model's id column may have a collation of its own (MariaDB's
    ``utf8mb4_nopad_bin``, recommended in docs/deployment.md, or a
    PostgreSQL ``db_collation``): then the tombstones' ``object_id`` is
    compared and ordered in that collation, or the pull's UNION and its
    ``id > after`` would mix two orders (MariaDB refuses the UNION outright).
    Read once per process from the information schema.
    """
    connection = connections[using]
    if connection.vendor not in ("mysql", "postgresql"):
        return tombstones, "object_id"
    key = (using, model._meta.db_table)
    if key not in _collations:
        schema = "DATABASE()" if connection.vendor == "mysql" else "current_schema()"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_name, collation_name FROM information_schema.columns "
                f"WHERE table_schema = {schema} AND ((table_name = %s AND column_name = %s) "
                "OR (table_name = %s AND column_name = %s))",
                [model._meta.db_table, model._meta.pk.column,
                 Tombstone._meta.db_table, "object_id"],
            )
            found = dict(cursor.fetchall())
        ours, theirs = found.get(model._meta.db_table), found.get(Tombstone._meta.db_table)
        _collations[key] = ours if ours and ours != theirs else None
    collation = _collations[key]
    if collation is None:
        return tombstones, "object_id"
    return (tombstones.annotate(ps_object_id=_Collated("object_id", collation, connection.vendor)),
            "ps_object_id")


def _with_revocations(window, removals):
    """The whole window plus ``removals`` (``{pk: stamp}``), in memory, as one list by id.

    Objects the request still sees win over a removal; an object answered
    removed by both the tombstones and a revocation gets the latest stamp.
    """
    # Keyed by the id as text: tombstones and revocations store ids as text.
    items = {str(item[ID]): item for batch in window.changes() for item in batch}
    visible = {str(pk) for pk in window.access.visible(list(removals), window.using)}
    after = window.page.after
    for pk, stamp in removals.items():
        key = str(pk)
        if key in visible or (after is not None and key <= str(after)):
            continue
        item = items.get(key)
        if item is None:
            items[key] = {ID: pk, REMOVED: True, LAST_CHANGE: stamp}
        elif item.get(REMOVED):
            item[LAST_CHANGE] = max(stamp, item[LAST_CHANGE])
    return [[items[key] for key in sorted(items)]]


def _encoded_items(batches, page, sent):
    """Yield the items' JSON, comma-separated, a batch at a time; return whether more follow.

    ``sent[0]`` counts the items written; a paged pull stops at ``page.limit``.
    """
    first = True
    for items in batches:
        more = page.paged and sent[0] + len(items) > page.limit
        if more:
            items = items[: page.limit - sent[0]]
        if items:
            sent[0] += len(items)
            yield (b"" if first else b",") + encode_items(items)
            first = False
        if more:
            return True
    return False


def encode_items(items):
    """``items`` as JSON array members (no brackets), by orjson: written a batch at a time."""
    try:
        return orjson.dumps(items)[1:-1]
    except (orjson.JSONEncodeError, TypeError):
        # A value orjson refuses (a lone surrogate stored before values were
        # checked, an integer beyond 64 bits in a JSON field): the standard
        # library escapes it, so the answer stays valid JSON.
        return json.dumps(items, separators=(",", ":"))[1:-1].encode()


def push(registration, queryset, changes, using, push_id=None, replay=False, access=None):
    """Store ``changes`` (from :func:`serializers.parse_push`) whole; return the stamp.

    ``access`` (a :class:`persistence_sync.scoping.Access`) enforces the write
    rule, the owner and read-only fields and the ``perform_write`` hook.

    ``push_id`` makes the push idempotent (``docs/protocol.md``, "Idempotent
    pushes"): a push id seen before returns the stamp it got the first time
    and stores nothing. A ``replay`` of an id never seen stores nothing either
    and returns None: the client abandoned that push, and a late copy of it
    is refused (409).

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
    receipt = _Receipt(registration, push_id, replay, using)
    if receipt.known() or replay:
        # A repeat needs no preparation; a replay stores nothing: both are
        # answered under the clock, where the first copy cannot be running.
        return run_with_retries(lambda: receipt.answer(_tick(registration.model, using, timeout)),
                                using, deadline)

    def prepare_and_write():
        stamp = _tick(registration.model, using, timeout)
        if receipt.known():
            return receipt.answer(stamp)
        plan = _prepare(registration, queryset, changes, using, access)
        _write(registration, plan, stamp, using, access)
        return receipt.record(stamp)

    if connections[using].in_atomic_block:
        # Inside the caller's transaction run_with_retries opens none, and the
        # write rule may refuse after writing: a savepoint undoes the push.
        def in_savepoint():
            with transaction.atomic(using=using):
                return prepare_and_write()

        return run_with_retries(in_savepoint, using)  # one transaction anyway
    for _ in range(PREPARE_ATTEMPTS):
        plan = _prepare(registration, queryset, changes, using, access)

        def write(plan=plan):
            stamp = _tick(registration.model, using, timeout)
            if receipt.known():  # another copy of this push was stored meanwhile
                return receipt.answer(stamp)
            if not _unchanged(registration, plan, using):
                raise _Stale
            _write(registration, plan, stamp, using, access)
            return receipt.record(stamp)

        try:
            return run_with_retries(write, using, deadline)
        except _Stale:
            continue
    return run_with_retries(prepare_and_write, using, deadline)


class _Receipt:
    """The idempotent-push bookkeeping of one push (nothing when it has no id)."""

    def __init__(self, registration, push_id, replay, using):
        self.registration, self.push_id, self.replay, self.using = registration, push_id, replay, using

    def lookup(self):
        if self.push_id is None:
            return None
        return PushReceipt.objects.using(self.using).filter(
            model=self.registration.label, push_id=self.push_id).first()

    def known(self):
        return self.lookup() is not None

    def answer(self, stamp):
        """Under the clock: the first answer of a repeated id, or None for an abandoned replay."""
        found = self.lookup()
        if found is not None:
            return _answer_repeated(found, self.replay)
        _remember(self.registration, self.push_id, None, self.using)  # a replay: abandon it
        return None

    def record(self, stamp):
        if self.push_id is not None:
            _remember(self.registration, self.push_id, stamp, self.using)
        return stamp


def push_many(batches, using, check=None):
    """Store the changes of several models in one transaction; ``{label: stamp}``.

    ``batches`` holds ``(registration, queryset, changes, access)`` (``access``
    as for :func:`push`, or None). The clocks are
    ticked in label order, so two multi-model pushes cannot deadlock on them.
    ``check(stamps)``, when given, runs once every clock is held and before
    anything is written: a refusal it raises leaves nothing stored, and no
    other writer of these models can change what it read. (Prepared under
    the clocks: one transaction for several models is the point here.)
    """
    timeout = sync_settings.LOCK_TIMEOUT
    deadline = time.monotonic() + timeout if timeout else None

    def apply():
        stamps = {}
        for registration, *_ in sorted(batches, key=lambda batch: batch[0].label):
            stamps[registration.label] = _tick(registration.model, using, timeout)
        if check is not None:
            check(stamps)
        for registration, queryset, changes, access in batches:
            plan = _prepare(registration, queryset.using(using), changes, using, access)
            _write(registration, plan, stamps[registration.label], using, access)
        return stamps

    if connections[using].in_atomic_block:  # the write rule may refuse after writing
        def in_savepoint(apply=apply):
            with transaction.atomic(using=using):
                return apply()

        return run_with_retries(in_savepoint, using)
    return run_with_retries(apply, using, deadline)


def _answer_repeated(receipt, replay):
    if receipt.stamp is None and not replay:
        raise ProtocolError(
            f"Push {receipt.push_id!r} was abandoned by its client (it replayed the push "
            "before this copy arrived); nothing was stored.", status_code=409,
        )
    return receipt.stamp


def _remember(registration, push_id, stamp, using):
    """Record a push id, and forget receipts older than PUSH_RECEIPT_DAYS."""
    now = timezone.now()
    receipts = PushReceipt.objects.using(using)
    receipts.create(model=registration.label, push_id=push_id, stamp=stamp, received_at=now)
    cutoff = now - datetime.timedelta(days=sync_settings.PUSH_RECEIPT_DAYS)
    # Find first, then delete by primary key (as Tombstone.forget does), a
    # bounded number per push so that no push pays for a long backlog.
    old = list(receipts.filter(model=registration.label, received_at__lt=cutoff)
               .values_list("pk", flat=True)[:RECEIPTS_PRUNED_PER_PUSH])
    if old:
        receipts.filter(pk__in=old).delete()




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

    changes: dict  # the push's changes, less removals of objects it may not see
    versions: dict  # pk -> last_change of every pushed id stored when read
    writes: list
    upsert: object  # models.prepare_upsert() of the writes
    relinks: list  # (obj, attname) set once every new object exists
    removals: list


def _prepare(registration, queryset, changes, using, access=None):
    """Read what ``changes`` touch, check it, and work out the writes.

    With ``access``: the write rule's first half, the owner and read-only
    fields, and the ``perform_write`` hook on the objects to write.
    """
    model = registration.model
    base = model._base_manager.db_manager(using)
    concrete = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
    stored = {}
    for chunk in chunks(changes):
        for row in base.filter(is_in("pk", chunk)).values_list("pk", *concrete):
            stored[row[0]] = dict(zip(concrete, row[1:]))
    _check_same_ids(registration, changes, stored)
    if access is None:
        _check_visibility(registration, queryset, changes, stored)
    else:
        changes = dict(changes)  # check_before drops removals of hidden objects
        access.check_before(changes, stored, using)
        access.server_values(changes, stored, registration.codecs)
    _check_relations(registration, changes, stored, using, access)
    # Values the server sets on new objects (the owner), given to the
    # constructor so that no field default runs for them.
    initial = {} if access is None else access.initial_values()

    codecs = {codec.attname: codec for codec in registration.codecs}
    # The pk by its attname: model(pk=...) would compute the pk field's
    # default (a uuid4(), say) for every object, then throw it away.
    pk_attname = model._meta.pk.attname
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
            obj = model(**{pk_attname: pk, **old, **values})
            obj._state.adding = False
            writes.append(obj)
        else:
            # A default applies where null was sent.
            writes.append(model(**{pk_attname: pk, **initial, **values}))

    if errors:
        raise_item_errors(PUSH_REFUSED, errors)
    update_fields = [codec.attname for codec in registration.codecs]
    if access is not None:
        access.prepare(writes)
        access.check_scope(changes, writes)
        # perform_write may set fields that are not synced; the old values of
        # the rest were read above and are checked unchanged under the clock
        # (_unchanged), so writing every column changes only what the push
        # or the hook changed.
        update_fields = [name for name in concrete if name != "last_change"]
    relinks = []
    if writes and not connections[using].features.can_defer_constraint_checks:
        writes, relinks = _parents_first(registration, writes, stored)
    upsert = prepare_upsert(base.all(), writes, update_fields)
    versions = {pk: row["last_change"] for pk, row in stored.items()}
    return _Plan(changes, versions, writes, upsert, relinks, removals)


def _unchanged(registration, plan, using):
    """Whether every pushed id is stored (or absent) exactly as when the push was prepared.

    All of them, also those the plan leaves alone because they already held
    the pushed values: were one changed meanwhile, this later push must win.
    Runs under the clock, so no writer of the model (every write path ticks
    it) can change them between this read and the writes.
    """
    base = registration.model._base_manager.db_manager(using)
    seen = {}
    for chunk in chunks(plan.changes):
        seen.update(base.filter(is_in("pk", chunk)).values_list("pk", "last_change"))
    return seen == plan.versions


def _write(registration, plan, stamp, using, access=None):
    model = registration.model
    base = model._base_manager.db_manager(using)
    if plan.writes:
        plan.upsert.execute(stamp)
        if plan.relinks:  # links inside a cycle of new objects, set once all exist
            models.QuerySet.bulk_update(base.all(), [obj for obj, _ in plan.relinks],
                                        sorted({attname for _, attname in plan.relinks}))
        if not exact_ids(model, using):
            _check_written_ids(registration, plan.writes, using, plan.changes)
        if access is not None:  # the write rule's second half: still visible after
            access.check_after(plan.changes, plan.writes, using)
    for chunk in chunks(plan.removals):
        delete_at(base.filter(is_in("pk", chunk)), stamp)


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
        found = set(base.filter(is_in("pk", chunk)).values_list("pk", flat=True))
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
        visible.update(queryset.filter(is_in("pk", chunk)).values_list("pk", flat=True))
    errors = [
        {"index": changes[pk].index, "id": pk, "field": None,
         "message": "you may not change this object"}
        for pk in stored
        if pk not in visible
    ]
    if errors:
        raise_item_errors(PUSH_REFUSED, errors, status_code=403)


def _check_relations(registration, changes, stored, using, access=None):
    """Every pushed relation must name an object that exists (or is created here).

    With ``access``, one the request may see: a hidden object gets the same
    answer as a missing one.
    """
    errors = []
    for codec in registration.codecs:
        target = codec.related_model
        if target is None:
            continue
        if access is not None and codec.attname == access.scope_attname:
            # Checked against the request's scope values instead: a value
            # outside them is refused (403) whether it exists or not.
            continue
        targets = target._base_manager.db_manager(using).all()
        if access is not None:
            targets = access.related(target, using)
        wanted: dict[Any, list[Any]] = {}  # related id -> the pushed objects that name it
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
                targets.filter(**{f"{to_field}__in": chunk}).values_list(to_field, flat=True)
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
