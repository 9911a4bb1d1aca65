"""Queries compiled once per process: the small reads every poll and push runs.

Building a queryset and compiling it to SQL costs more Python than a small
indexed query costs the database: a few tenths of a millisecond each, for
every query of every request. The hot paths (a poll, a one-object push)
therefore describe each of their queries as a function of its values::

    def stored(ids):
        return model._base_manager.db_manager(using).filter(pk__in=ids).values_list("pk", "name")

    rows = compiled.fetch(using, ("stored", model, "name"), stored, ids)

The first call for a key builds the queryset with *markers* in place of the
values, compiles it, and keeps its SQL, where each marker landed among the
parameters, and the converters of its columns. Later calls only put the
request's values where the markers were. A list of values is padded to the
next power of two (repeating its last value, which changes no ``IN``), so a
key has a handful of shapes, not one per length.

Only strings and integers are marked: values of other types (UUIDs, dates,
None, empty lists), and queries whose markers do not come out as parameters
as they went in, are built and compiled every time, as the ORM would. The
key must name everything else the query depends on: the builder is called
once per key and shape, so it must not read the request (a project's
``get_queryset(request)`` is never compiled this way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import connections
from django.db.models.manager import BaseManager

# Integers of every integer column's range (Django refuses out-of-range lookups
# on small columns), unlikely to be a query's constant.
_INT_MARKER = -2_100_000_000
_STR_MARKER = "\x00persistence-sync-marker-{}-{}\x00"
# Templates kept per process; beyond it the oldest shapes are compiled again.
_MAX_TEMPLATES = 1024


@dataclass(frozen=True)
class Query:
    """A compiled SELECT: its SQL, its parameters and its columns' converters.

    ``converters``: ``{column index: (converter functions, expression)}`` as
    Django's compiler gives them, to apply as ``f(value, expression, connection)``.
    """

    sql: str
    params: list
    converters: dict[int, tuple[list, Any]]

    def convert(self, rows: list[tuple], using: str) -> list[tuple]:
        """``rows`` with the database's converters applied (what the ORM would return)."""
        if not self.converters:
            return list(rows)
        connection = connections[using]
        converters = list(self.converters.items())
        converted = []
        for row in rows:
            values = list(row)
            for index, (functions, expression) in converters:
                value = values[index]
                for function in functions:
                    value = function(value, expression, connection)
                values[index] = value
            converted.append(tuple(values))
        return converted


@dataclass(frozen=True)
class _Template:
    sql: str
    params: tuple
    # Per parameter: None (a constant of the query), (arg, None) a whole
    # argument, (arg, index) one value of a list argument.
    slots: tuple
    converters: dict[int, tuple[list, Any]]

    def bind(self, args: list) -> list:
        params = list(self.params)
        for position, slot in enumerate(self.slots):
            if slot is not None:
                arg, index = slot
                params[position] = args[arg] if index is None else args[arg][index]
        return params


_templates: dict[tuple, _Template | None] = {}


def query(using: str, key: tuple, build: Callable[..., Any], *args: Any) -> Query | None:
    """``build(*args)``'s compiled SELECT (None: it can match no row), from the cache where it can."""
    shaped = _shaped(args)
    if shaped is None:
        return _compile(build(*args), using)
    padded, shape = shaped
    cache_key = (using, tuple(map(_hashed, key)), shape)
    if cache_key not in _templates:
        if len(_templates) >= _MAX_TEMPLATES:
            _templates.pop(next(iter(_templates)))
        _templates[cache_key] = _template(using, build, shape)
    template = _templates[cache_key]
    if template is None:
        return _compile(build(*args), using)
    return Query(template.sql, template.bind(padded), template.converters)


def fetch(using: str, key: tuple, build: Callable[..., Any], *args: Any) -> list[tuple]:
    """The rows of ``build(*args)`` (a ``values_list()`` queryset), as the ORM returns them."""
    compiled = query(using, key, build, *args)
    if compiled is None:
        return []
    with connections[using].cursor() as cursor:
        cursor.execute(compiled.sql, compiled.params)
        return compiled.convert(cursor.fetchall(), using)


def batches(using: str, compiled: Query | None, size: int) -> Iterator[list[tuple]]:
    """``compiled``'s raw rows (no converter applied), ``size`` at a time, from a server-side
    cursor where the database has one (as Django's ``iterator()``)."""
    if compiled is None:
        return
    with connections[using].chunked_cursor() as cursor:
        cursor.execute(compiled.sql, compiled.params)
        while rows := cursor.fetchmany(size):
            yield rows


def static_manager(manager: Any) -> bool:
    """Whether ``manager`` gives the same queryset on every call: its class leaves
    ``get_queryset`` alone (one that overrides it may read the request's state)."""
    return type(manager).get_queryset is BaseManager.get_queryset


def uncached(queryset: Any, using: str) -> Query | None:
    """``queryset``'s SELECT compiled now (None: it can match no row): the ORM's way, every time."""
    return _compile(queryset, using)


def _compile(queryset: Any, using: str) -> Query | None:
    compiler = queryset.query.get_compiler(using=using)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return None
    selected = [column[0] for column in compiler.select[: compiler.col_count]]
    return Query(sql, list(params), compiler.get_converters(selected))


def _shaped(args: tuple) -> tuple[list, tuple] | None:
    """``(args with lists padded, their shape)``, or None when a value cannot be marked."""
    padded: list = []
    shape: list[tuple[type, int | None]] = []
    for value in args:
        if isinstance(value, (list, tuple)):
            kinds = {_kind(item) for item in value}
            item_kind = kinds.pop() if len(kinds) == 1 else None
            if item_kind is None:  # empty, mixed, or of a type that cannot be marked
                return None
            size = 1 << (len(value) - 1).bit_length()
            padded.append([*value, *[value[-1]] * (size - len(value))])
            shape.append((item_kind, size))
            continue
        kind = _kind(value)
        if kind is None:
            return None
        padded.append(value)
        shape.append((kind, None))
    return padded, tuple(shape)


def _kind(value: Any) -> type | None:
    kind = type(value)
    return kind if kind is int or kind is str else None


def _marker(kind: type, arg: int, index: int) -> Any:
    if kind is int:
        return _INT_MARKER + arg * 65_536 + index
    return _STR_MARKER.format(arg, index)


def _template(using: str, build: Callable[..., Any], shape: tuple) -> _Template | None:
    """The query built with markers and compiled; None when the markers cannot be found again."""
    markers: dict[Any, tuple[int, int | None]] = {}
    args = []
    for arg, (kind, size) in enumerate(shape):
        if size is None:
            args.append(_marker(kind, arg, 0))
            markers[args[-1]] = (arg, None)
        else:
            args.append([_marker(kind, arg, index) for index in range(size)])
            markers.update({marker: (arg, index) for index, marker in enumerate(args[-1])})
    try:
        compiled = _compile(build(*args), using)
    except (EmptyResultSet, FullResultSet, ValueError, TypeError, LookupError):
        return None
    if compiled is None:
        return None
    slots: list = []
    found: set = set()
    for param in compiled.params:
        if isinstance(param, list) and param and all(_hashable(item) and item in markers
                                                     for item in param):
            # PostgreSQL's = ANY(array): the whole list is one parameter.
            arg = markers[param[0]][0]
            slots.append((arg, None))
            found.update(param)
        elif _hashable(param) and param in markers:
            slots.append(markers[param])
            found.add(param)
        else:
            slots.append(None)
    if found != set(markers):  # a value went through a conversion, or was left out
        return None
    params = tuple(None if slot is not None else param
                   for param, slot in zip(compiled.params, slots))
    return _Template(compiled.sql, params, tuple(slots), compiled.converters)


class _Same:
    """A part of a key compared by identity (a registration holding dicts): kept alive by
    the cache, so that its id is never another object's."""

    __slots__ = ("part",)

    def __init__(self, part: Any) -> None:
        self.part = part

    def __hash__(self) -> int:
        return id(self.part)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.part is self.part


def _hashed(part: Any) -> Any:
    try:
        hash(part)
    except TypeError:
        return _Same(part)
    return part


def _hashable(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)
