"""The vendor SQL of bulk writes: many rows per statement, built a column at a time.

The model layer (:mod:`persistence_sync.models`) decides *what* a write
stores and keeps tombstones and scopes right; this module only turns rows
into the fastest statements each database takes:

* :func:`upsert_statements` compiles an insert-or-update of model instances
  before the stamp is known (the stamp is filled in by :func:`run_statements`
  under the model's clock), column by column where Django's per-value
  compiler is not needed;
* :class:`BulkInsert` writes new rows given as columns: ``COPY`` on
  PostgreSQL with psycopg 3, ``UNNEST`` arrays with other PostgreSQL drivers,
  multi-row ``VALUES`` elsewhere (sqlite3's own ``?`` placeholders on SQLite);
* :func:`new_columns` and :func:`existing_ids` prepare such inserts.

Statements run here through the driver's own cursor (``COPY``, SQLite's
inserts) are not in Django's query log nor seen by ``execute_wrapper`` hooks.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connections, models
from django.db.models.constants import OnConflict
from django.db.models.fields import NOT_PROVIDED
from django.db.models.sql import InsertQuery

from persistence_sync.conf import sync_settings
from persistence_sync.db import chunks
from persistence_sync.serializers import USE_DEFAULT

# Stands for the stamp in SQL compiled before the stamp is known.
STAMP_PLACEHOLDER = -6_917_529_027_641_081_857


@dataclass
class Statement:
    """One statement of a bulk write, whose stamp is known only once the clock is held.

    ``positions``: where the stamp goes in ``params`` (a value, or an array
    of one per row). ``rendered``: on PostgreSQL, the statement's text on
    either side of the stamp with every other value already bound, so that
    under the clock no value is quoted again: psycopg binds on the client
    (as Django has it), and quoting the arrays of a large write was most of
    the time a push held its clock.
    """

    sql: str
    params: list
    positions: Sequence[int]
    rendered: tuple[str, str] | None = None

    def run(self, cursor, stamp: int) -> None:
        if self.rendered is not None:
            before, after = self.rendered
            cursor.execute(before + str(int(stamp)) + after)
            return
        params = list(self.params)
        for position in self.positions:
            value = params[position]
            params[position] = [stamp] * len(value) if isinstance(value, list) else stamp
        cursor.execute(self.sql, params)


def render(connection, sql: str, params) -> str:
    """``sql`` with ``params`` bound as psycopg binds them on the client (PostgreSQL only)."""
    connection.ensure_connection()
    driver = connection.Database
    if hasattr(driver, "ClientCursor"):  # psycopg 3
        return driver.ClientCursor(connection.connection).mogrify(sql, params)
    with connection.connection.cursor() as cursor:  # psycopg2
        return cursor.mogrify(sql, params).decode()


def upsert_statements(model, using, objs, fields, batch_size=None):
    """:class:`Statement` list: insert ``objs`` or update ``fields`` of existing ones.

    Every object's ``last_change`` is set to :data:`STAMP_PLACEHOLDER`;
    :func:`run_statements` puts the real stamp in. Compiling (every value
    through its field's ``get_db_prep_save``, and binding it on PostgreSQL)
    is most of the ORM's cost of a large write: done before the clock is
    taken, the clock is held only to run the statements.
    """
    connection = connections[using]
    opts = model._meta
    columns = [f for f in opts.concrete_fields if f.concrete]
    update = [opts.get_field(name) for name in [*fields, "last_change"]]
    unique = [opts.pk] if connection.features.supports_update_conflicts_with_target else None
    size = max(connection.ops.bulk_batch_size(columns, objs), 1)
    if batch_size:
        size = min(size, batch_size)
    for obj in objs:
        obj.last_change = STAMP_PLACEHOLDER
    if plain_columns(columns):
        return _column_upserts(model, connection, objs, columns, update, unique, size)
    return _compiled_upserts(model, using, objs, columns, update, unique, size)


def _compiled_upserts(model, using, objs, columns, update, unique, size):
    """:func:`upsert_statements` by Django's own INSERT compiler (database defaults, generated fields)."""
    opts = model._meta
    stamp_index = columns.index(opts.get_field("last_change"))
    statements = []
    for chunk in chunks(objs, size):
        query = InsertQuery(model, on_conflict=OnConflict.UPDATE, update_fields=update,
                            unique_fields=unique)
        query.insert_values(columns, chunk)
        for sql, params in query.get_compiler(using=using).as_sql():
            params = list(params)
            positions: Sequence[int]
            if len(params) == len(chunk) * len(columns):  # one placeholder per value
                positions = range(stamp_index, len(params), len(columns))
            elif len(params) == len(columns):  # PostgreSQL's UNNEST: one array per column
                positions = [stamp_index]
            else:
                positions = []
            if not positions or any(
                params[p] != STAMP_PLACEHOLDER and params[p] != [STAMP_PLACEHOLDER] * len(chunk)
                for p in positions
            ):
                raise AssertionError(f"Unexpected INSERT parameters for {opts.label}.")
            statements.append(Statement(sql, params, positions))
    return statements


def run_statements(statements, stamp, using):
    """Run :func:`upsert_statements`' statements with ``stamp`` in place of the placeholder."""
    with connections[using].cursor() as cursor:
        for statement in statements:
            statement.run(cursor, stamp)


def plain_columns(columns) -> bool:
    """Whether every column takes a prepared value as is (no database default, none generated)."""
    return not any(getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
                   or getattr(field, "generated", False) for field in columns)


def _column_upserts(model, connection, objs, columns, update, unique, size):
    """:class:`Statement` list: the upsert of ``objs``, built column by column.

    What Django's INSERT compiler would produce (``pre_save``, then
    ``get_db_prep_save`` of each value, and the backend's own ``ON
    CONFLICT``/``ON DUPLICATE KEY`` clause), with one list comprehension per
    column instead of the compiler's calls per value, and on PostgreSQL one
    array per column (UNNEST) where the types allow: a statement psycopg does
    not parse again per value.
    """
    shape = _upsert_shape(model, connection, columns, update, unique)
    head, suffix, columns, prepare, arrays, stamp_index = shape
    statements: list[Statement] = []
    for chunk in chunks(objs, size):
        values = [convert([field.pre_save(obj, True) for obj in chunk])
                  for field, convert in zip(columns, prepare)]
        if arrays:
            after = render(connection, f" FROM UNNEST({arrays}) {suffix}", values[:-1])
            statements.append(Statement("", [], [], (f"{head} SELECT *, ", after)))
        else:
            row = "({})".format(", ".join(["%s"] * len(columns)))
            params = list(itertools.chain.from_iterable(zip(*values)))
            statements.append(Statement(f"{head} VALUES {', '.join([row] * len(chunk))} {suffix}",
                                        params, range(stamp_index, len(params), len(columns))))
    return statements


def _upsert_shape(model, connection, columns, update, unique):
    """What :func:`_column_upserts` builds once per model and columns, kept on the connection
    (one per thread): ``(head, suffix, columns, converters, arrays, stamp index)``."""
    key = (model, tuple(columns), tuple(update), tuple(unique or ()))
    shapes = connection.__dict__.setdefault("_persistence_sync_upserts", {})
    if key in shapes:
        return shapes[key]
    opts = model._meta
    quote = connection.ops.quote_name
    suffix = connection.ops.on_conflict_suffix_sql(
        columns, OnConflict.UPDATE, [field.column for field in update],
        [field.column for field in unique or []])
    stamp_field = opts.get_field("last_change")
    stamp_index = columns.index(stamp_field)
    valued = [field for field in columns if field is not stamp_field]
    arrays = unnest_arrays(valued, connection)
    if arrays:  # the stamp after the rows' columns, one value for all of them
        columns = [*valued, stamp_field]
    head = "INSERT INTO {} ({})".format(quote(opts.db_table),
                                        ", ".join(quote(field.column) for field in columns))
    prepare = [db_column(field, connection) for field in columns]
    shapes[key] = (head, suffix, columns, prepare, arrays, stamp_index)
    return shapes[key]


class BulkInsert:
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
        self.connection = connection
        quote = connection.ops.quote_name
        self.into = f"{quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
        self.width = len(fields)
        batch = batch_size or sync_settings.BATCH_SIZE
        # Many rows per statement: one round trip each (executemany is one
        # per row on PostgreSQL).
        self.size = min(batch, 65535 // len(fields),
                        max(1, connection.ops.bulk_batch_size(fields, [None] * count)))
        self.arrays = unnest_arrays(fields, connection)
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
    opts = model._meta
    fields = insert_fields(opts)
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
                column = with_defaults(field, column)
        columns.append(db_column(field, connection)(column))
    return NewColumns(pks, columns)


def with_defaults(field, column):
    """``column`` with each ``USE_DEFAULT`` replaced by ``field``'s default.

    A callable default is called once per object, as Django does, but
    directly: ``field.get_default()`` costs three Python calls a row (a
    foreign key's checks whether its default is an instance, done here on
    the values instead).
    """
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


def insert_fields(opts):
    """The fields a plain insert writes; None if the database computes some (``db_default``)."""
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
    connection = connections[using]
    opts = model._meta
    quote = connection.ops.quote_name
    column = opts.get_field(attname)
    convert = db_column(column, connection)
    equal = equal or {}
    conditions = [f"{quote(opts.get_field(name).column)} = %s" for name in equal]
    fixed = [db_column(opts.get_field(name), connection)([value])[0]
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


def unnest_arrays(fields, connection) -> str | None:
    """``%s::type[], ...``: ``fields`` as one array parameter each, for ``UNNEST``.

    PostgreSQL only, and only when every field's type travels in an array
    (:data:`_UNNEST_TYPES`); None otherwise.
    """
    if connection.vendor != "postgresql" or not all(
            (field.target_field if field.is_relation else field).get_internal_type()
            in _UNNEST_TYPES for field in fields):
        return None
    return ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)


def db_column(field, connection):
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


def parents_first(parents, pending):
    """``(order, cycles)``: the keys of ``parents``, each after its parents among ``pending``.

    For databases that check foreign keys row by row (MySQL/MariaDB), even
    inside one statement: a row naming a parent created by the same write
    must come after it. ``parents``: ``{pk: [parent pk, ...]}`` (a model's
    links to itself); ``pending``: the pks being created, the only parents
    that must come first. ``cycles``: the ``(pk, parent)`` links that close
    a cycle; the caller writes them once every row exists (or relies on
    deferred checks). Depth-first, without recursion: chains may be long.
    """
    order, cycles, state = [], [], {}
    for root in parents:
        if root in state:
            continue
        state[root] = "visiting"
        stack = [(root, iter(parents[root]))]
        while stack:
            pk, remaining = stack[-1]
            for parent in remaining:
                if parent not in pending or parent not in parents or state.get(parent) == "done":
                    continue
                if state.get(parent) == "visiting":
                    cycles.append((pk, parent))
                    continue
                state[parent] = "visiting"
                stack.append((parent, iter(parents[parent])))
                break
            else:
                stack.pop()
                state[pk] = "done"
                order.append(pk)
    return order, cycles
