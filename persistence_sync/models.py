"""SyncableModel, the mixin that makes a model syncable, and the app's own tables.

Every write path stamps the object through the server clock
(:mod:`persistence_sync.clock`), so a write done by the site's own code
reaches clients exactly like a push does:

* ``save()`` (also with ``update_fields``), hence the admin and ``create()``;
* ``QuerySet.update()``, ``bulk_create()`` and ``bulk_update()``;
* ``delete()`` and ``QuerySet.delete()`` leave a :class:`Tombstone` that later
  pulls return as ``{"id": ..., "_removed": true}``.

What cannot be intercepted: raw SQL, and writes through a plain
``QuerySet`` (a custom default manager not built on :class:`SyncableQuerySet`,
reported by check W001).
"""

import contextvars
import itertools
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, router, transaction

from persistence_sync import clock
from persistence_sync.clock import Clock  # noqa: F401  (the app's table; defined beside its writer)


def new_id():
    """A fresh id in persistence.js's format: 32 upper-case hex digits."""
    return uuid.uuid4().hex.upper()


# (model label, pk) of objects whose tombstone a bulk delete already wrote, so
# the post_delete receiver does not write it again, one query per object.
_tombstoned: contextvars.ContextVar[frozenset[tuple[str, object]]] = contextvars.ContextVar(
    "persistence_sync_tombstoned", default=frozenset())


def scope_attname(model):
    """The column deciding who sees ``model``'s objects (its registration's scope), or None."""
    from persistence_sync import registry

    if not registry.is_registered(model):
        return None
    field = registry.get_registration(model).scope_field
    return None if field is None else field.attname


def scope_key(value):
    """A scope value as tombstones store it: a string, or None."""
    return None if value is None else str(value)


def _scopes(model, pks, attname, using):
    """``{pk: scope_key}`` of the stored objects among ``pks``."""
    from persistence_sync.db import chunks, is_in

    found: dict[Any, str | None] = {}
    for chunk in chunks(pks):
        rows = models.QuerySet(model, using=using).filter(is_in("pk", chunk)).values_list(
            "pk", attname)
        found.update((pk, scope_key(value)) for pk, value in rows)
    return found


def record_departures(model, before, after, stamp, using):
    """Leave a removal for each scope an object left: ``before``/``after`` map pk -> scope key.

    The object lives on in its new scope; devices of the old one must drop it.
    """
    departed = {pk: old for pk, old in before.items() if pk in after and after[pk] != old}
    if departed:
        Tombstone.record(model, list(departed), stamp, using, scopes=departed)


def bulk_create_at(queryset, objs, stamp, **kwargs):
    """``bulk_create`` with every object stamped ``stamp`` (already ticked)."""
    for obj in objs:
        obj.last_change = stamp
    if kwargs.get("update_fields"):
        kwargs["update_fields"] = [*kwargs["update_fields"], "last_change"]
    attname = scope_attname(queryset.model)
    if attname is None:
        Tombstone.forget(queryset.model, [obj.pk for obj in objs], queryset.db)
        return models.QuerySet.bulk_create(queryset, objs, **kwargs)
    after = {obj.pk: scope_key(getattr(obj, attname)) for obj in objs}
    before = {}
    if kwargs.get("update_conflicts") and attname in {
        queryset.model._meta.get_field(name).attname for name in kwargs.get("update_fields") or ()
    }:
        before = _scopes(queryset.model, list(after), attname, queryset.db)
    # An object (re)entering a scope: a removal of it from that scope is void.
    Tombstone.forget(queryset.model, list(after), queryset.db, scopes=after)
    created = models.QuerySet.bulk_create(queryset, objs, **kwargs)
    record_departures(queryset.model, before, after, stamp, queryset.db)
    return created


def upsert_at(queryset, objs, stamp, fields, batch_size=None):
    """Insert ``objs`` or update ``fields`` of those that exist, all stamped ``stamp``.

    The one upsert of the app: the server stores pushes with it and the sync
    client stores what it pulled. Set-based (one statement per batch), on
    every backend Django ships (``ON CONFLICT`` / ``ON DUPLICATE KEY``).
    """
    prepare_upsert(queryset, objs, fields, batch_size).execute(stamp)


# Stands for the stamp in SQL compiled before the stamp is known.
_STAMP_PLACEHOLDER = -6_917_529_027_641_081_857


def prepare_upsert(queryset, objs, fields, batch_size=None):
    """:func:`upsert_at` in two steps: compile now, ``.execute(stamp)`` under the clock.

    Compiling the statements (every value through its field's
    ``get_db_prep_save``) is most of the ORM's cost of a large insert; done
    before the clock is taken, the clock is held only to run them.
    """
    return _PreparedUpsert(queryset, list(objs), list(fields), batch_size)


class _PreparedUpsert:
    def __init__(self, queryset, objs, fields, batch_size):
        from django.db.models.constants import OnConflict
        from django.db.models.sql import InsertQuery

        from persistence_sync.db import chunks

        self.model, self.using, self.objs = queryset.model, queryset.db, objs
        connection = connections[self.using]
        opts = self.model._meta
        columns = [f for f in opts.concrete_fields if f.concrete]
        stamp_index = columns.index(opts.get_field("last_change"))
        update = [opts.get_field(name) for name in [*fields, "last_change"]]
        unique = [opts.pk] if connection.features.supports_update_conflicts_with_target else None
        size = max(connection.ops.bulk_batch_size(columns, objs), 1)
        if batch_size:
            size = min(size, batch_size)
        for obj in objs:
            obj.last_change = _STAMP_PLACEHOLDER
        self.statements = []
        if _plain_columns(columns):
            self.statements = _column_upserts(self.model, connection, objs, columns, update,
                                              unique, size)
            return
        for chunk in chunks(objs, size):
            query = InsertQuery(self.model, on_conflict=OnConflict.UPDATE,
                                update_fields=update, unique_fields=unique)
            query.insert_values(columns, chunk)
            for sql, params in query.get_compiler(using=self.using).as_sql():
                params = list(params)
                positions: Sequence[int]
                if len(params) == len(chunk) * len(columns):  # one placeholder per value
                    positions = range(stamp_index, len(params), len(columns))
                elif len(params) == len(columns):  # PostgreSQL's UNNEST: one array per column
                    positions = [stamp_index]
                else:
                    positions = []
                if not positions or any(
                    params[p] != _STAMP_PLACEHOLDER and params[p] != [_STAMP_PLACEHOLDER] * len(chunk)
                    for p in positions
                ):
                    raise AssertionError(f"Unexpected INSERT parameters for {opts.label}.")
                self.statements.append((sql, params, positions))

    def execute(self, stamp):
        """Run the statements with ``stamp``; must run under the model's clock.

        As :func:`bulk_create_at` does: tombstones of the ids written are
        forgotten (of a scoped model, only those of the scope each object
        now has) and an object moved to another scope leaves a removal for
        the old one.
        """
        attname = scope_attname(self.model)
        pks = [obj.pk for obj in self.objs]
        if attname is None:
            Tombstone.forget(self.model, pks, self.using)
        else:
            after = {obj.pk: scope_key(getattr(obj, attname)) for obj in self.objs}
            before = _scopes(self.model, pks, attname, self.using)
            Tombstone.forget(self.model, pks, self.using, scopes=after)
        with connections[self.using].cursor() as cursor:
            for sql, params, positions in self.statements:
                for position in positions:
                    value = params[position]
                    params[position] = [stamp] * len(value) if isinstance(value, list) else stamp
                cursor.execute(sql, params)
        if attname is not None:
            record_departures(self.model, before, after, stamp, self.using)
        for obj in self.objs:
            obj.last_change = stamp
            obj._state.adding, obj._state.db = False, self.using


def _plain_columns(columns) -> bool:
    """Whether every column takes a prepared value as is (no database default, none generated)."""
    from django.db.models.fields import NOT_PROVIDED

    return not any(getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
                   or getattr(field, "generated", False) for field in columns)


def _column_upserts(model, connection, objs, columns, update, unique, size):
    """``[(sql, params, stamp positions)]``: the upsert of ``objs``, built column by column.

    What Django's INSERT compiler would produce (``pre_save``, then
    ``get_db_prep_save`` of each value, and the backend's own ``ON
    CONFLICT``/``ON DUPLICATE KEY`` clause), with one list comprehension per
    column instead of the compiler's calls per value, and on PostgreSQL one
    array per column (UNNEST) where the types allow: a statement psycopg does
    not parse again per value.
    """
    from django.db.models.constants import OnConflict

    from persistence_sync.db import chunks

    opts = model._meta
    quote = connection.ops.quote_name
    head = "INSERT INTO {} ({})".format(quote(opts.db_table),
                                        ", ".join(quote(field.column) for field in columns))
    suffix = connection.ops.on_conflict_suffix_sql(
        columns, OnConflict.UPDATE, [field.column for field in update],
        [field.column for field in unique or []])
    stamp_index = columns.index(opts.get_field("last_change"))
    arrays = _unnest_arrays(columns, connection)
    prepare = [_db_column(field, connection) for field in columns]
    statements: list[tuple[str, list, Sequence[int]]] = []
    for chunk in chunks(objs, size):
        values = [convert([field.pre_save(obj, True) for obj in chunk])
                  for field, convert in zip(columns, prepare)]
        if arrays:
            statements.append((f"{head} SELECT * FROM UNNEST({arrays}) {suffix}",
                               values, [stamp_index]))
        else:
            row = "({})".format(", ".join(["%s"] * len(columns)))
            params = list(itertools.chain.from_iterable(zip(*values)))
            statements.append((f"{head} VALUES {', '.join([row] * len(chunk))} {suffix}",
                               params, range(stamp_index, len(params), len(columns))))
    return statements


def insert_at(model, rows, stamp, using, batch_size=None, columns=None):
    """Insert new objects ``rows`` (``{pk: {attname: value}}``), all stamped ``stamp``.

    For objects known to be absent (the caller read them under the model's
    clock): plain multi-row ``INSERT`` statements, the values converted column
    by column; no model instance, no per-object compilation. Other fields get
    their defaults; the ids' tombstones are forgotten, as :func:`upsert_at` does.

    ``columns``: :func:`new_columns` of these ``rows``, if the caller had them
    computed ahead (a sync client, while it waited for its database); they
    are used only when they are of the same ids in the same order.
    """
    from persistence_sync.db import chunks

    connection = connections[using]
    opts = model._meta
    fields = _insert_fields(opts)
    if fields is None:
        # Defaults the database computes: Django's INSERT knows how to leave them out.
        from persistence_sync.serializers import USE_DEFAULT

        objs = [model(**{opts.pk.attname: pk, **{name: value for name, value in values.items()
                                                 if value is not USE_DEFAULT}})
                for pk, values in rows.items()]
        names = sorted({name for values in rows.values() for name in values})
        if objs:
            upsert_at(models.QuerySet(model, using=using), objs, stamp, names, batch_size)
        return
    if columns is None or columns.pks != list(rows):
        columns = new_columns(model, rows, using)
    bulk = _BulkInsert(model, fields, connection, len(rows), batch_size)
    # A model with no tombstone (a first sync's) spares a probe per chunk.
    tombstones = Tombstone.objects.using(using).filter(model=opts.label_lower).exists()
    with connection.cursor() as cursor:
        for start, chunk in zip(itertools.count(0, bulk.size), chunks(columns.pks, bulk.size)):
            tombstoned = tombstones and existing_ids(Tombstone, "object_id", chunk, using,
                                                     equal={"model": opts.label_lower})
            if tombstoned:
                Tombstone.forget(model, tombstoned, using)
            bulk.write(cursor, [[stamp] * len(chunk) if column is None
                                else column[start:start + bulk.size] for column in columns.values])


class _BulkInsert:
    """Plain ``INSERT`` of new rows given a column at a time, as each database takes them fastest.

    :attr:`size` rows per :meth:`write`. PostgreSQL with psycopg 3: ``COPY``,
    the database's own bulk load, rows streamed by the driver's C code (an
    UNNEST insert spent most of its time in psycopg quoting each array
    element into the statement's text, as Django binds parameters on the
    client); constraints and triggers apply as to an ``INSERT``. Other
    PostgreSQL drivers: one array per column (``UNNEST``), for psycopg parses
    a statement's placeholders again each time it runs. Elsewhere: multi-row
    ``VALUES``, within the database's limit on parameters. ``COPY`` and
    SQLite's statements are not in Django's query log.
    """

    def __init__(self, model, fields, connection, count, batch_size=None):
        from persistence_sync.conf import sync_settings

        self.connection = connection
        quote = connection.ops.quote_name
        self.into = f"{quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
        self.width = len(fields)
        batch = batch_size or sync_settings.BATCH_SIZE
        # Many rows per statement: one round trip each (executemany is one
        # per row on PostgreSQL).
        self.size = min(batch, 65535 // len(fields),
                        max(1, connection.ops.bulk_batch_size(fields, [None] * count)))
        self.arrays = _unnest_arrays(fields, connection)
        if self.arrays:
            self.size = min(batch, count or 1)

    def write(self, cursor, params) -> None:
        """Insert the rows of ``params`` (a list per field, database values) with ``cursor``."""
        if self.arrays and hasattr(cursor.cursor, "copy"):
            with cursor.cursor.copy(f"COPY {self.into} FROM STDIN") as out:
                for row in zip(*params):
                    out.write_row(row)
            return
        if self.arrays:
            cursor.execute(f"INSERT INTO {self.into} SELECT * FROM UNNEST({self.arrays})", params)
            return
        count = len(params[0])
        values = list(itertools.chain.from_iterable(zip(*params)))
        if self.connection.vendor == "sqlite":
            # sqlite3's own execute, "?" placeholders: Django's wrapper
            # rewrites each "%s" by a regular expression, which for
            # statements of a thousand placeholders cost a tenth of a first sync.
            one = "({})".format(", ".join(["?"] * self.width))
            sqlite3.Cursor.execute(cursor.cursor, f"INSERT INTO {self.into} VALUES "
                                   + ", ".join([one] * count), values)
        else:
            one = "({})".format(", ".join(["%s"] * self.width))
            cursor.execute(f"INSERT INTO {self.into} VALUES " + ", ".join([one] * count), values)


@dataclass
class NewColumns:
    """New objects' database values for :func:`insert_at`: ``values[i]`` is field i's column.

    The ``_lastChange`` column is ``None``: it is the insert's stamp.
    """

    pks: list
    values: list


def new_columns(model, rows, using) -> NewColumns | None:
    """The database values of new objects ``rows`` (``{pk: {attname: value}}``), a column per field.

    A field ``rows`` do not name, or name as ``USE_DEFAULT``, gets its
    default: a callable one called per object, as Django does. None for a
    model whose inserts leave defaults to the database (``db_default``).
    """
    from persistence_sync.serializers import USE_DEFAULT

    opts = model._meta
    fields = _insert_fields(opts)
    if fields is None:
        return None
    connection = connections[using]
    pks, values = list(rows), list(rows.values())
    columns: list[list | None] = []
    for field in fields:
        if field.attname == "last_change":
            columns.append(None)
            continue
        if field is opts.pk:
            column = list(pks)
        else:
            column = [row.get(field.attname, USE_DEFAULT) for row in values]
            if USE_DEFAULT in column:
                column = _with_defaults(field, column)
        columns.append(_db_column(field, connection)(column))
    return NewColumns(pks, columns)


def _with_defaults(field, column):
    """``column`` with each ``USE_DEFAULT`` replaced by ``field``'s default.

    A callable default is called once per object, as Django does, but
    directly: ``field.get_default()`` costs three Python calls a row (a
    foreign key's checks whether its default is an instance, done here on
    the values instead).
    """
    from persistence_sync.serializers import USE_DEFAULT

    if not (field.has_default() and callable(field.default)):
        default = field.get_default()
        return [default if value is USE_DEFAULT else value for value in column]
    make = field.default
    column = [make() if value is USE_DEFAULT else value for value in column]
    if field.is_relation and not set(map(type, column)) <= _PLAIN_VALUE_TYPES:
        model, attname = field.remote_field.model, field.target_field.attname
        column = [getattr(value, attname) if isinstance(value, model) else value
                  for value in column]
    return column


def _insert_fields(opts):
    """The fields a plain insert writes; None if the database computes some (``db_default``)."""
    from django.db.models.fields import NOT_PROVIDED

    fields = [field for field in opts.concrete_fields if not getattr(field, "generated", False)]
    if any(getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED for field in fields):
        return None
    return fields


def existing_ids(model, attname, values, using, equal=None):
    """The ``values`` found in ``model``'s column ``attname`` (rows also matching ``equal``).

    One plain ``IN`` query per batch, the values converted once by the
    column's field: the ORM's lookup would prepare every value through its
    machinery, a large share of a first sync's time.
    """
    from persistence_sync.db import chunks

    connection = connections[using]
    opts = model._meta
    quote = connection.ops.quote_name
    column = opts.get_field(attname)
    convert = _db_column(column, connection)
    equal = equal or {}
    conditions = [f"{quote(opts.get_field(name).column)} = %s" for name in equal]
    fixed = [_db_column(opts.get_field(name), connection)([value])[0]
             for name, value in equal.items()]
    found = []
    # PostgreSQL: one array, as psycopg parses each placeholder of a statement.
    array = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        for chunk in chunks(values):
            if array:
                match = f"{quote(column.column)} = ANY(%s::{column.db_type(connection)}[])"
                params = [*fixed, convert(list(chunk))]
            else:
                match = "{} IN ({})".format(quote(column.column), ", ".join(["%s"] * len(chunk)))
                params = [*fixed, *convert(list(chunk))]
            where = " AND ".join([*conditions, match])
            cursor.execute(f"SELECT {quote(column.column)} FROM {quote(opts.db_table)} "
                           f"WHERE {where}", params)
            found += [row[0] for row in cursor.fetchall()]
    return found


# Field types whose str, bool, int, float or None values every database
# driver takes as they are (a relation: the type of the field it points at).
_PLAIN_TYPES = {
    "CharField", "TextField", "SlugField", "EmailField", "URLField", "BooleanField",
    "IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField",
    "PositiveBigIntegerField", "PositiveSmallIntegerField", "FloatField",
    "AutoField", "BigAutoField", "SmallAutoField",  # an owner's user id, say
}
_PLAIN_VALUE_TYPES = frozenset({str, bool, int, float, type(None)})
# Field types whose prepared values psycopg sends as one array of a column
# (UNNEST): scalars all. Without one, a statement has a placeholder per
# value, which psycopg parses again for every statement (its cache keeps
# short statements only): most of a large insert's time.
_UNNEST_TYPES = _PLAIN_TYPES | {
    "DateTimeField", "DateField", "TimeField", "DurationField", "DecimalField", "UUIDField",
    "JSONField",
}


def _unnest_arrays(fields, connection) -> str | None:
    """``%s::type[], ...``: ``fields`` as one array parameter each, for ``UNNEST``.

    PostgreSQL only, and only when every field's type travels in an array
    (:data:`_UNNEST_TYPES`); None otherwise.
    """
    if connection.vendor != "postgresql" or not all(
            (field.target_field if field.is_relation else field).get_internal_type()
            in _UNNEST_TYPES for field in fields):
        return None
    return ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)


def _db_column(field, connection):
    """``values -> database values`` for a column of ``field``: as they are when all plain."""
    target = field.target_field if field.is_relation else field
    convert = field.get_db_prep_save
    plain = target.get_internal_type() in _PLAIN_TYPES
    json = isinstance(target, models.JSONField)

    def column(values):
        if plain and set(map(type, values)) <= _PLAIN_VALUE_TYPES:  # one pass in C
            return values
        if json:  # None is SQL NULL there too, but let the field say so
            return [convert(value, connection) for value in values]
        return [None if value is None else convert(value, connection) for value in values]

    return column


def delete_at(queryset, stamp):
    """Delete ``queryset``'s objects, leaving tombstones stamped ``stamp``."""
    from persistence_sync.db import is_in

    model = queryset.model
    attname = scope_attname(model)
    if attname is None:
        pks, scopes = list(queryset.values_list("pk", flat=True)), None
    else:
        scopes = {pk: scope_key(value) for pk, value in queryset.values_list("pk", attname)}
        pks = list(scopes)
    if not pks:
        return 0, {}
    Tombstone.record(model, pks, stamp, queryset.db, scopes=scopes)
    label = model._meta.label_lower
    token = _tombstoned.set(_tombstoned.get() | {(label, pk) for pk in pks})
    try:
        # Delete by pk so that a filter on related rows cannot change the set
        # between the listing above and the delete.
        return models.QuerySet.delete(
            models.QuerySet(model, using=queryset.db).filter(is_in("pk", pks))
        )
    finally:
        _tombstoned.reset(token)


class SyncableQuerySet(models.QuerySet):
    """A QuerySet whose bulk write paths stamp ``_lastChange`` and leave tombstones."""

    def update(self, **kwargs):
        with transaction.atomic(using=self.db, savepoint=False):
            kwargs["last_change"] = stamp = clock.tick(self.model, self.db)
            attname = scope_attname(self.model)
            if attname is None or not self._changes_field(attname, kwargs):
                return super().update(**kwargs)
            before = dict(self.values_list("pk", attname))
            count = super().update(**kwargs)
            self._record_departures(before, attname, stamp)
            return count

    # Django's flags on methods (no template calls them); stubs cannot type them.
    update.alters_data = True  # type: ignore[attr-defined]

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        if not objs:
            return objs
        if args:  # batch_size, ignore_conflicts, ... given positionally
            names = ["batch_size", "ignore_conflicts", "update_conflicts", "update_fields"]
            kwargs.update(zip(names, args))
        with transaction.atomic(using=self.db, savepoint=False):
            return bulk_create_at(self, objs, clock.tick(self.model, self.db), **kwargs)

    def bulk_update(self, objs, fields, batch_size=None):
        objs = list(objs)
        if not objs:
            return 0
        with transaction.atomic(using=self.db, savepoint=False):
            stamp = clock.tick(self.model, self.db)
            for obj in objs:
                obj.last_change = stamp
            # Django's bulk_update writes through update(): a plain QuerySet's,
            # or each batch would tick again and the instances would not hold
            # the stamp that is stored.
            plain: models.QuerySet = models.QuerySet(self.model, using=self.db)
            attname = scope_attname(self.model)
            if attname is None or not self._changes_field(attname, dict.fromkeys(fields)):
                return plain.bulk_update(objs, [*fields, "last_change"], batch_size=batch_size)
            before = _scopes(self.model, [obj.pk for obj in objs], attname, self.db)
            count = plain.bulk_update(objs, [*fields, "last_change"], batch_size=batch_size)
            self._record_departures(before, attname, stamp)
            return count

    def _changes_field(self, attname, names):
        opts = self.model._meta
        # update() and bulk_update() accept only concrete fields, never the
        # reverse relations get_field() may also return.
        return any(opts.get_field(name).attname == attname  # type: ignore[union-attr]
                   for name in names)

    def _record_departures(self, before, attname, stamp):
        """Removals for objects a bulk write moved out of their scope (read back: F() values)."""
        before = {pk: scope_key(value) for pk, value in before.items()}
        after = _scopes(self.model, list(before), attname, self.db)
        record_departures(self.model, before, after, stamp, self.db)

    bulk_update.alters_data = True  # type: ignore[attr-defined]

    def delete(self):
        with transaction.atomic(using=self.db, savepoint=False):
            return delete_at(self, clock.tick(self.model, self.db))

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]


# Named at module level so that django-stubs' plugin can type its methods.
_SyncableManagerBase = models.Manager.from_queryset(SyncableQuerySet)


class SyncableManager(_SyncableManagerBase):
    """The default manager of syncable models; subclass it for your own."""


class SyncableModel(models.Model):
    """Mixin for a model that persistence.js clients (and ``syncall``) sync.

    Adds two fields:

    ``id``
        The primary key: a string that fits persistence.js. New objects get 32
        upper-case hex digits (:func:`new_id`); ids received from clients are
        stored and echoed exactly.
    ``last_change``
        ``_lastChange`` on the wire: integer milliseconds, the server clock's
        stamp of the object's latest change (column ``last_change``).
        Set by every write path; never edit it by hand.

    A model with its own manager should build it on :class:`SyncableQuerySet`
    (``SyncableManager`` or ``SyncableQuerySet.as_manager()``), or
    ``QuerySet.update()`` and bulk writes bypass the clock (check W001).
    """

    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    last_change = models.BigIntegerField(
        default=0,
        db_index=True,
        editable=False,
        help_text="_lastChange: the server clock's stamp (ms) of the latest change.",
    )

    objects = SyncableManager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and not update_fields:
            return super().save(*args, **kwargs)  # Django saves nothing
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        model = type(self)
        with transaction.atomic(using=using, savepoint=False):
            self.last_change = stamp = clock.tick(model, using)
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "last_change"}
            attname = scope_attname(model)
            if attname is None:
                if self._state.adding:
                    # An id that was deleted and is now created again.
                    Tombstone.forget(model, [self.pk], using)
                return super().save(*args, **kwargs)
            # The scope before the write: moving an object to another scope
            # (the admin giving B's note to A) must reach B's devices as a removal.
            before = {} if self._state.adding else _scopes(model, [self.pk], attname, using)
            after = {self.pk: scope_key(getattr(self, attname))}
            Tombstone.forget(model, [self.pk], using, scopes=after)
            result = super().save(*args, **kwargs)
            record_departures(model, before, after, stamp, using)
            return result

    save.alters_data = True  # type: ignore[attr-defined]


def stamp_before_set_on_delete(sender, instance, using, **kwargs):
    """pre_delete receiver: stamp syncable objects whose relation Django will reset.

    For ``on_delete=SET_NULL``, ``SET_DEFAULT`` or ``SET(...)`` Django's
    deletion collector updates the children with no signal and past any
    manager. Stamping them here, in the same transaction and before the
    collector's update, gives that change a stamp that clients pull.
    """
    for field in relations_reset_on_delete(sender):
        SyncableQuerySet(field.model, using=using).filter(**{field.name: instance}).update()


def relations_reset_on_delete(parent):
    """Foreign keys of syncable models to ``parent`` that deleting it resets."""
    kept = {models.CASCADE, models.PROTECT, models.RESTRICT, models.DO_NOTHING}
    return [
        field
        for field in parent._meta.get_fields(include_hidden=True)
        if field.one_to_many or field.one_to_one
        if field.auto_created and not field.concrete
        if issubclass(field.related_model, SyncableModel)
        and field.on_delete not in kept
        for field in [field.remote_field]
    ]


def record_deletion(sender, instance, using, **kwargs):
    """post_delete receiver: leave a tombstone for a deleted syncable object."""
    label = sender._meta.label_lower
    if (label, instance.pk) in _tombstoned.get():
        return
    attname = scope_attname(sender)
    scopes = None if attname is None else {instance.pk: scope_key(getattr(instance, attname))}
    with transaction.atomic(using=using, savepoint=False):
        Tombstone.record(sender, [instance.pk], clock.tick(sender, using), using, scopes=scopes)


class Tombstone(models.Model):
    """An object gone from a scope (or, unscoped, gone), returned by pulls as ``_removed``.

    ``scope`` is the object's scope value when it was deleted or moved away,
    for models registered with ``owner=`` or ``scope=`` (NULL otherwise): a
    pull returns only the tombstones of the requester's scope values. A moved
    object keeps living in its new scope; its row says "no longer in
    ``scope``" and is cleared when the object comes back.
    """

    model = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255)
    last_change = models.BigIntegerField()
    # NULL, not "": unscoped models, whose tombstones every pull returns.
    scope = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "object_id", "scope"],
                                    name="persistence_sync_tomb_scope_uniq")
        ]
        indexes = [
            models.Index(fields=["model", "last_change"], name="persistence_sync_tomb_ts"),
            models.Index(fields=["model", "scope", "last_change"], name="persistence_sync_tomb_scope"),
        ]

    def __str__(self):
        where = "" if self.scope is None else f" from {self.scope}"
        return f"{self.model} {self.object_id} removed{where} @ {self.last_change}"

    @classmethod
    def record(cls, model, pks, stamp, using, scopes=None):
        """Tombstones for ``pks`` stamped ``stamp``; ``scopes``: ``{pk: scope key}`` if scoped."""
        from persistence_sync.db import chunks

        label = model._meta.label_lower
        cls.forget(model, pks, using, scopes=scopes)
        # A plain column-wise insert: a push removing thousands of objects
        # spent more in bulk_create's instances and compiler than storing.
        connection = connections[using]
        fields = [cls._meta.get_field(name) for name in ("model", "object_id", "last_change",
                                                         "scope")]
        bulk = _BulkInsert(cls, fields, connection, len(pks))
        with connection.cursor() as cursor:
            for chunk in chunks(list(pks), bulk.size):
                bulk.write(cursor, [[label] * len(chunk), [str(pk) for pk in chunk],
                                    [stamp] * len(chunk),
                                    [None] * len(chunk) if scopes is None
                                    else [scopes[pk] for pk in chunk]])

    @classmethod
    def forget(cls, model, pks, using, scopes=None):
        """Drop the tombstones of ``pks``: all of them, or those of ``scopes[pk]`` (and unscoped)."""
        from persistence_sync.db import chunks, is_in

        label = model._meta.label_lower
        tombstones = cls.objects.using(using)
        for chunk in chunks([str(pk) for pk in pks]):
            # Find first, then delete by primary key: a DELETE by (model,
            # object_id) of absent rows takes InnoDB gap locks, on which
            # writers of *other* models (sharing this table) would deadlock.
            # A plain read is exact here: the caller holds the model's clock.
            rows = tombstones.filter(is_in("object_id", chunk), model=label)
            if scopes is None:
                found = list(rows.values_list("pk", flat=True))
            else:
                keys = {str(pk): scope for pk, scope in scopes.items()}
                found = [row_pk for row_pk, object_id, scope in
                         rows.values_list("pk", "object_id", "scope")
                         if scope is None or scope == keys.get(object_id)]
            if found:
                tombstones.filter(is_in("pk", found)).delete()


class ScopeGrant(models.Model):
    """The scope values a user was last served for a model, and when each was granted or lost.

    Written by pulls of models registered with ``scope=``: when
    ``scope_values(request)`` differs from the active rows, the added values
    become active and the lost ones inactive, stamped by the model's clock.
    A pull whose ``since`` is older than a grant gets every object of that
    value; older than a revocation, a removal for every object it had then
    (:mod:`persistence_sync.scoping`).
    """

    model = models.CharField(max_length=100)
    user = models.CharField(max_length=255, help_text="The user's primary key.")
    value = models.CharField(max_length=255)
    active = models.BooleanField(default=True)
    last_change = models.BigIntegerField()
    revoked_ids = models.JSONField(
        default=list, blank=True,
        help_text="Ids of the objects of this value when it was revoked: exactly what the "
        "user's devices may hold, without naming objects created afterwards.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "user", "value"],
                                    name="persistence_sync_grant_uniq")
        ]

    def __str__(self):
        state = "granted" if self.active else "revoked"
        return f"{self.model} {self.value} {state} to user {self.user} @ {self.last_change}"


class SyncState(models.Model):
    """Where the sync client (``syncall``) stands with one model and one remote.

    persistence.js's ``_Sync`` record, kept per (model, remote endpoint) and
    advanced only when a sync of that model both pulled and pushed. The local
    side is measured with the local clock (:mod:`persistence_sync.clock`), not
    wall time, so that a local write committed while a sync runs is never
    taken for synced.
    """

    model = models.CharField(max_length=100, help_text="Label of the synced model.")
    remote = models.CharField(max_length=500, help_text="The remote endpoint URL.")
    server_date = models.BigIntegerField(
        default=0, help_text="serverDate: the remote's `now` of the last pull."
    )
    server_push_date = models.BigIntegerField(
        default=0, help_text="serverPushDate: the remote's `now` of the last push."
    )
    local_date = models.BigIntegerField(
        default=0,
        help_text="localDate: the local clock's committed value read before the last sync "
        "collected local changes; later stamps are local changes.",
    )
    applied_stamp = models.BigIntegerField(
        default=0,
        help_text="The local stamp of the values the last sync took from the remote; "
        "objects still carrying it are not local changes.",
    )
    page_now = models.BigIntegerField(
        default=0,
        help_text="The `now` of a paged pull in progress (0: none); with page_after, where "
        "an interrupted pull resumes.",
    )
    page_after = models.CharField(
        max_length=255, blank=True, default="",
        help_text="The id of the last object of the last page applied of that pull.",
    )
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "remote"], name="persistence_sync_state_uniq")
        ]

    def __str__(self):
        return f"{self.model} with {self.remote}"


class PushReceipt(models.Model):
    """The server's memory of an idempotent push: its id and the stamp it got.

    A client that sends ``X-Sync-Push-Id`` (``docs/protocol.md``, "Idempotent
    pushes") gets the same answer for the same id, and the batch is stored
    once. A receipt without a stamp is a push its client abandoned: a late
    copy of it is refused. Receipts older than
    ``PERSISTENCE_SYNC["PUSH_RECEIPT_DAYS"]`` are pruned by later pushes.
    """

    model = models.CharField(max_length=100, help_text="Label of the pushed model.")
    push_id = models.CharField(max_length=64, help_text="The client's X-Sync-Push-Id.")
    stamp = models.BigIntegerField(
        null=True, blank=True,
        help_text="The push's _lastChange; empty: abandoned by its client, never stored.",
    )
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "push_id"], name="persistence_sync_receipt_uniq")
        ]

    def __str__(self):
        return f"{self.model} push {self.push_id} @ {self.stamp}"


class OutgoingPush(models.Model):
    """A push of the sync client, recorded before it is sent and kept until applied.

    If the answer never arrives (a kill, a network cut, a local failure
    after it), the next run sends it again with the same id and so learns the
    stamp the remote gave it (see :mod:`persistence_sync.client`).
    """

    model = models.CharField(max_length=100, help_text="Label of the synced model.")
    remote = models.CharField(max_length=500, help_text="The remote endpoint URL.")
    push_id = models.CharField(max_length=64, unique=True)
    items = models.JSONField(help_text="The pushed array, as sent.")
    decided_at = models.BigIntegerField(
        help_text="The local clock's committed value the push was decided from: local "
        "stamps up to it are in the push, later ones are newer than it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self):
        return f"{self.model} push {self.push_id} to {self.remote}"
