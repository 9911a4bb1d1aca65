"""The protocol-neutral pull: what changed in ``(since, now]``, read from one snapshot.

A protocol face (:mod:`persistence_sync.classic`, :mod:`persistence_sync.watermelon`)
describes what a request asks for as :class:`Source` objects, one per model,
and writes the answer in its own wire shape; everything else is here::

    pull = Pull([Source(registration, access, since)], using, limit=500)
    with pull.snapshot() as now:                 # the `now` rule, the horizon
        for batch in pull.merged(pull.sources[0]):   # objects and removals by id
            ...

The ``now`` rule (:mod:`persistence_sync.clock`): every answer's ``now`` is
read in the same database snapshot as its rows. For several models (one
WatermelonDB timestamp for every table), the lagging clocks are first
brought up to the latest (:func:`clock.catch_up`, bounded by
``LOCK_TIMEOUT``), and ``now`` is the *smallest* committed clock value of
those models read in the snapshot: every stamp up to it has committed in
every model, so the snapshot holds each of them, and a row re-stamped
meanwhile is above ``now`` and in the next pull.

Paging (an extension): a pull may answer at most ``limit`` items; every
page of one pull names the first page's ``now`` and continues after the last
id it held, so each page reads the same window by ascending id and nothing
is skipped or sent twice (:class:`Budget`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connections, models

from persistence_sync import clock, compiled
from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import ProtocolError
from persistence_sync.models import Tombstone
from persistence_sync.registry import Registration
from persistence_sync.scoping import Access
from persistence_sync.serializers import REMOVED


@dataclass
class Source:
    """One model's part of a pull: what the request may see, and from when.

    ``extra``: a condition on objects that joins them to the window whatever
    their stamp (a WatermelonDB migration sync's rows whose new columns are set).
    """

    registration: Registration
    access: Access
    since: int = 0
    extra: models.Q | None = None
    count: int = 0  # items answered so far (objects and removals)
    pruned: bool = False  # since is older than the model's tombstone horizon
    horizon: int = 0
    granted: list = field(default_factory=list)  # scope values granted after since
    revoked: list = field(default_factory=list)  # (value, stamp) lost after since
    by_id: bool = True  # its objects are read in id order, not by stamp (see Pull.reads_by_id)


# A paged poll is read by stamp while it holds at most this many pages of
# changes, or this many rows, whichever is more (Pull.reads_by_id).
POLL_PAGES, POLL_ROWS = 4, 10_000


class Budget:
    """How many more items a paged pull may answer (``limit=None``: no limit).

    Each query of a page asks for :meth:`wanted` rows, one more than fit:
    :meth:`take` keeps those that fit and sets :attr:`full` when one was left
    out, so a page that exactly fills its limit says that nothing follows.
    """

    def __init__(self, limit: int | None) -> None:
        self.left = limit
        self.full = False

    def wanted(self) -> int | None:
        return None if self.left is None else self.left + 1

    def take(self, rows: list) -> list:
        if self.left is None:
            return rows
        if len(rows) > self.left:
            rows, self.full = rows[: self.left], True
        self.left -= len(rows)
        return rows


class Pull:
    """One pull of ``sources``: its snapshot, its ``now`` and the windows it reads.

    ``now``: a paged pull's continuation (the ``now`` of its first page);
    refused when ahead of the clock. ``limit``: items per page.
    """

    def __init__(self, sources: list[Source], using: str, limit: int | None = None,
                 now: int | None = None) -> None:
        self.sources, self.using, self.now_asked = sources, using, now
        self.budget = Budget(limit)
        self.now = 0
        self.large = False  # a query of this pull needed more than one batch of rows

    def prepare(self) -> None:
        """The writes a pull may need, before its snapshot: grants, lagging clocks."""
        for source in self.sources:
            if source.access.scope_attname is not None:
                source.access.refresh_grants(self.using)
        if len(self.sources) > 1 and self.now_asked is None:
            clock.catch_up([source.registration.model for source in self.sources], self.using,
                           timeout=sync_settings.LOCK_TIMEOUT)

    @contextmanager
    def snapshot(self) -> Iterator[int]:
        """Open the read snapshot; yield ``now``. Call :meth:`prepare` first.

        Sets each source's ``pruned`` (its ``since`` is older than its model's
        tombstone horizon: deletions after it were pruned) and its scope
        changes since ``since``.
        """
        with clock.read_snapshot(self.using):
            clocks = [clock.committed_now_and_horizon(source.registration.model, self.using)
                      for source in self.sources]
            now = min((value for value, _ in clocks), default=0)
            if self.now_asked is not None:
                if self.now_asked > now:
                    raise ProtocolError(
                        f"now={self.now_asked} is ahead of the server's clock ({now}); send the "
                        "now that the first page of this sync answered.")
                now = self.now_asked
            self.now = now
            for source, (_, horizon) in zip(self.sources, clocks):
                source.horizon = horizon
                # Deletions in (since, horizon] are gone: an answer would let the
                # client keep objects deleted here. since=0 needs no deletions.
                source.pruned = 0 < source.since < horizon
                source.granted, source.revoked = source.access.grant_changes(
                    source.since, now, self.using)
                source.by_id = self.reads_by_id(source)
            yield now

    def reads_by_id(self, source: Source) -> bool:
        """Whether ``source``'s objects are read in id order rather than by their stamp.

        A first sync (and a pull bringing a granted scope value) reads the
        request's rows in id order (an index on (scope, id)), and a paged one
        stops at the page's end. A poll, what changed since the last pull,
        reads only the rows stamped after it (an index on (scope,
        last_change)) and sorts them: its cost follows what changed, not the
        table. A paged poll that finds more than a few pages of changes goes
        back to id order, where each page stops once full.
        """
        if source.since <= 0 or source.granted:
            return True
        limit = self.budget.left
        if limit is None:
            return False
        cap = max(POLL_PAGES * limit, POLL_ROWS)
        source.by_id = False
        changed = self.window(source).objects().order_by()[: cap + 1].count()
        return changed > cap

    def window(self, source: Source) -> Window:
        return Window(source, self.now, self.using)

    def count(self, source: Source) -> int:
        """How many items ``source``'s whole window holds: objects and removals, every page.

        For the first page of a paged pull (the "total" extension): a client
        shows a first sync's progress and its ETA. Two COUNT queries in the
        pull's snapshot, served by the same indexes as the pages.
        """
        window = self.window(source)
        removals, _, _ = window.removals()
        return window.objects().order_by().count() + removals.count()

    def merged(self, source: Source, keys: tuple[str, ...], after: Any = None,
               convert: Callable[[Any], Callable | None] | None = None) -> Iterator[list[dict]]:
        """Batches of the window's objects and removals as dicts, by id (see :meth:`Window.merged`)."""
        window = self.window(source)
        yield from self._counted(source, window.merged(keys, after, self.budget.wanted(), convert))

    def records(self, source: Source, keys: tuple[str, ...], after: Any = None,
                convert: Callable[[Any], Callable | None] | None = None,
                codecs: list | None = None) -> Iterator[list[dict]]:
        """Batches of the window's objects as dicts, by id (see :meth:`Window.records`)."""
        window = self.window(source)
        yield from self._counted(source, window.records(keys, after, self.budget.wanted(), convert,
                                                        codecs))

    def removed_ids(self, source: Source, after: Any = None) -> Iterator[list]:
        """Batches of the ids of the window's removals, by id."""
        window = self.window(source)
        yield from self._counted(source, window.removed_ids(after, self.budget.wanted()))

    def _counted(self, source: Source, batches: Iterator[list]) -> Iterator[list]:
        for number, batch in enumerate(batches):
            self.large = self.large or number > 0
            items = self.budget.take(batch)
            source.count += len(items)
            if items:
                yield items
            if self.budget.full:
                return


class Window:
    """What one model's pull answers: its objects and removals in ``(since, now]``.

    The objects are what the request sees (its access's queryset), with those
    of scope values granted after ``since`` whatever their stamp; the
    removals are the tombstones the request may learn of
    (:meth:`Access.removals`), never one of an object it sees (an object that
    moved between two of its scopes, or came back).
    """

    def __init__(self, source: Source, now: int, using: str) -> None:
        self.source, self.now, self.using = source, now, using
        self.registration, self.access = source.registration, source.access
        self.scoped = source.access.scope_attname is not None
        # Rows that never went through the clock (fixtures, data migrations with
        # historical models) keep the default stamp 0: a first sync includes them.
        self.since = source.since if source.since > 0 else -1

    def compiled(self, name: str, build: Callable[[Window, Any], Any], after: Any,
                 *key: Any) -> compiled.Query | None:
        """``build(window, after)``'s query, compiled once per shape where it can be.

        Everything the request brings (since, now, its scope values and
        user, ``after``) goes in as values; ``name`` and ``key`` name the rest.
        A window with grants, revocations or an extra condition, or a
        registration whose queryset reads the request, is compiled every time.
        """
        source, access = self.source, self.access
        if source.granted or source.revoked or source.extra is not None or not access.compilable:
            return compiled.uncached(build(self, after), self.using)
        values = access.values
        scoped = values is not None
        args: list = [self.since, self.now]
        if values is not None:
            if not values.raw or access.user is None:
                return compiled.uncached(build(self, after), self.using)
            args += [list(values.raw), sorted(values.keys), access.user]
        if after is not None:
            args.append(after)

        def marked(since, now, *rest):
            window = Window(source, now, self.using)
            window.since = since
            if scoped:
                raw, keys, user, *more = rest
                window.access = access.marked(raw, keys, user)
                rest = tuple(more)
            return build(window, rest[0] if rest else None)

        shape = (self.registration, name, source.by_id, scoped, after is None, *key)
        return compiled.query(self.using, shape, marked, *args)

    def objects(self):
        """The window's objects (a queryset)."""
        since = self.since
        queryset = self.access.queryset.using(self.using)
        stamp = "last_change"
        if self.source.by_id:
            # The stamp compared as an expression, which no index serves: the
            # database then reads the (scope, id) index in order and stops at a
            # page's end, instead of gathering rows by stamp and sorting them.
            # Typed as the stamp: Django types a sum of integers as a 32-bit
            # IntegerField, and on PostgreSQL and MariaDB (5.0+) drops a
            # comparison with a value beyond that range as always false or true.
            queryset = queryset.alias(ps_stamp_value=models.ExpressionWrapper(
                models.F("last_change") + models.Value(0), output_field=models.BigIntegerField()))
            stamp = "ps_stamp_value"
        joined = models.Q(**{f"{stamp}__gt": since})
        if self.source.granted:
            joined |= models.Q(**{f"{self.access.scope_attname}__in": self.source.granted})
        if self.source.extra is not None:
            joined |= self.source.extra
        # One condition (one query): no id twice.
        return queryset.filter(joined, **{f"{stamp}__lte": self.now})

    def removals(self):
        """``(queryset, id column, stamp column)`` of the tombstones this pull answers."""
        tombstones = Tombstone.objects.using(self.using).filter(
            model=self.registration.label, last_change__gt=self.since, last_change__lte=self.now)
        tombstones, object_id = as_model_ids(self.registration.model, tombstones, self.using)
        tombstones = self.access.removals(tombstones, self.source.revoked)
        if not self.scoped:
            # Unscoped: recreating an id forgets its tombstone, so a tombstone
            # and a live object never share an id, and an id has one tombstone.
            return tombstones.order_by(), object_id, "last_change"
        # NOT EXISTS, one index probe per tombstone: NOT IN (visible ids) made
        # the database list every visible id for every page.
        visible = self.access.queryset.using(self.using).order_by().filter(
            pk=models.OuterRef(object_id))
        # A scoped object has one tombstone per scope it left (and revocations):
        # answer the latest of those the request may learn of, once.
        tombstones = (tombstones.filter(~models.Exists(visible)).order_by()
                      .values(object_id).annotate(latest=models.Max("last_change")))
        return tombstones, object_id, "latest"

    def merged(self, keys, after, limit, convert=None) -> Iterator[list[dict]]:
        """Batches of items by id, objects and removals from one query (see :meth:`merged_query`)."""
        query = self.compiled("merged", lambda window, after: window.merged_query(after, limit),
                              after, limit)
        codecs = self.registration.codecs
        yield from _items(query, self.using, codecs, keys, convert, merged=True)

    def merged_query(self, after, limit):
        """Batches of items by id, objects and removals from one query.

        An object is ``dict(zip(keys, (id, *values, stamp)))``, ``keys``
        naming the id, each synced field (the registration's codecs, in
        order) and the stamp; a removal is ``{keys[0]: id, "_removed": True,
        keys[-1]: stamp}``. Objects and tombstones are merged and ordered by
        the database (a UNION, in its own collation: the order ``id > after``
        follows too, so pages never skip or repeat an id).
        """
        codecs = self.registration.codecs
        values = [f"ps_v{index}" for index in range(len(codecs))]
        # Every column is an annotation, named and annotated in the same order
        # in both branches: before Django 5.0, values_list() put model fields
        # before annotations and annotations in the order they were made,
        # whatever the order asked, which would pair the branches' columns
        # wrongly in the UNION. The order (id, values, stamp, removed) is the
        # item's, so that a row zips straight into one.
        marker = models.IntegerField()
        objects = self._after(self.objects(), "pk", after).order_by().annotate(
            ps_id=models.F("pk"),
            **{name: models.F(codec.attname) for name, codec in zip(values, codecs)},
            ps_stamp=models.F("last_change"), ps_removed=models.Value(0, output_field=marker),
        )
        tombstones, object_id, stamp = self.removals()
        tombstones = self._after(tombstones, object_id, after).annotate(
            ps_id=models.F(object_id),
            **{name: models.Value(None, output_field=codec.column_field)
               for name, codec in zip(values, codecs)},
            ps_stamp=models.F(stamp), ps_removed=models.Value(1, output_field=marker),
        )
        columns = ["ps_id", *values, "ps_stamp", "ps_removed"]
        objects, tombstones = objects.values_list(*columns), tombstones.values_list(*columns)
        if (limit is not None and self.source.by_id
                and connections[self.using].features.supports_slicing_ordering_in_compound):
            # Each branch ordered and limited too (PostgreSQL, MariaDB): the
            # database then reads a page from an index in id order and stops,
            # where a LIMIT over the whole UNION made it sort every row after
            # ``after``. SQLite allows no LIMIT in a branch; it already reads
            # in index order (with an index on (scope, id) for a scoped model).
            objects = objects.order_by("ps_id")[:limit]
            tombstones = tombstones.order_by("ps_id")[:limit]
        changes = objects.union(tombstones, all=True).order_by("ps_id")
        return changes if limit is None else changes[:limit]

    def records(self, keys, after, limit, convert=None, codecs=None) -> Iterator[list[dict]]:
        """Batches of the window's objects, ``dict(zip(keys, (id, *values)))``, by id.

        ``codecs``: the fields to read (default: every synced field), ``keys`` naming them.
        """
        codecs = self.registration.codecs if codecs is None else codecs
        names = tuple(codec.attname for codec in codecs)

        def build(window, after):
            objects = window._after(window.objects(), "pk", after).order_by("pk")
            if limit is not None:
                objects = objects[:limit]
            return objects.values_list("pk", *names)

        query = self.compiled("records", build, after, limit, names)
        yield from _items(query, self.using, codecs, keys, convert, merged=False)

    def removed_ids(self, after, limit) -> Iterator[list]:
        """Batches of the ids of the window's removals, by id."""
        def build(window, after):
            tombstones, object_id, _ = window.removals()
            tombstones = window._after(tombstones, object_id, after).order_by(object_id)
            if limit is not None:
                tombstones = tombstones[:limit]
            return tombstones.values_list(object_id)

        query = self.compiled("removed", build, after, limit)
        for rows in compiled.batches(self.using, query, sync_settings.BATCH_SIZE):
            yield [row[0] for row in rows]

    @staticmethod
    def _after(queryset, column, after):
        return queryset if after is None else queryset.filter(**{f"{column}__gt": after})


def _items(query, using, codecs, keys, convert, merged) -> Iterator[list[dict]]:
    """``query``'s rows as dicts keyed by ``keys``, batch by batch, values converted.

    Rows are read raw (a server-side cursor where the database has one),
    without Django's per-row converters: ``dict(zip())`` of the row, then
    only the columns whose database value is not what the face wants are
    converted, and nulls never are. ``merged``: rows end with (stamp,
    removed), and removals become ``{id: ..., "_removed": True, stamp: ...}``.
    """
    if query is None:
        return
    connection = connections[using]
    # Column 0 is the id, then one per codec.
    converters = {index - 1: found for index, found in query.converters.items()}
    conversions = _conversions(codecs, keys[1:], converters, connection, convert)
    # The id as Django reads it (a UUID primary key stored as text, say).
    id_converters, id_expression = converters.get(-1, ([], None))
    if id_converters:
        conversions.insert(0, (keys[0], _converted(id_converters, id_expression, connection,
                                                   _same)))
    id_key, stamp_key = keys[0], keys[-1]
    for rows in compiled.batches(using, query, sync_settings.BATCH_SIZE):
        items = []
        for row in rows:
            if merged and row[-1]:
                items.append({id_key: row[0], REMOVED: True, stamp_key: row[-2]})
                continue
            item = dict(zip(keys, row))  # a merged row's last column (removed) has no key
            for key, conversion in conversions:  # hot loop: no call for a null
                value = item[key]
                if value is not None:
                    item[key] = conversion(value)
            items.append(item)
        yield items


def _conversions(codecs, keys, converters, connection, convert):
    """``[(key, conversion)]``: the columns whose raw value is not what the face wants.

    A conversion applies the database's converters for the column
    (``converters``: ``{index: (functions, expression)}``, what Django would
    apply when it builds a value) then ``convert(codec)``, the face's (None:
    the value as it is); a column with neither is left out.
    """
    conversions = []
    for index, (codec, key) in enumerate(zip(codecs, keys)):
        from_db, expression = converters.get(index, ([], None))
        to_face = None if convert is None else convert(codec)
        if not from_db and to_face is None:
            continue
        conversions.append((key, _converted(from_db, expression, connection, to_face or _same)))
    return conversions


def _same(value):
    return value


def _converted(from_db, expression, connection, to_face):
    """``value -> face value``: the database's converters for the column, then ``to_face``."""
    def convert(value):
        for converter in from_db:
            value = converter(value, expression, connection)
        return None if value is None else to_face(value)

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


def encode_items(items) -> bytes:
    """``items`` as JSON array members (no brackets), by orjson: written a batch at a time."""
    try:
        return orjson.dumps(items)[1:-1]
    except (orjson.JSONEncodeError, TypeError):
        # A value orjson refuses (a lone surrogate stored before values were
        # checked, an integer beyond 64 bits in a JSON field): the standard
        # library escapes it, so the answer stays valid JSON.
        return json.dumps(items, separators=(",", ":"))[1:-1].encode()
