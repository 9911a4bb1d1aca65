"""The wire mapping: model fields to JSON values and back, and push parsing.

=====================  ===========================  ==============================
Django field           JSON on the wire             notes
=====================  ===========================  ==============================
CharField, TextField   string                       (and their subclasses)
BooleanField           true / false                 0 / 1 accepted on push
Integer fields         integer
FloatField             number
DecimalField           number
DateTimeField          integer seconds since 1970   on push: a number > 10^12 is read as
                                                    ms, an ISO 8601 string is accepted
DateField              integer seconds since 1970   midnight UTC
JSONField              any JSON value
UUIDField              string
ForeignKey, 1:1        the related object's id      named after the field
=====================  ===========================  ==============================

Converters are plain functions built once per model, so a large pull is a
loop over tuples, not per-object serializer machinery.

Every pushed value is checked on the way in, so that what is stored can be
pulled again as valid JSON and read back by Python: numbers must be finite and
within the column (``connection.ops.integer_field_range``), date-times within
what both Python and the database hold in UTC (with a day to spare, so any
time zone can show them), strings without lone surrogates (nor NUL on
PostgreSQL), within ``max_length`` and ``MAX_STRING_LENGTH``, decimals within
their digits and places, values among ``choices`` where declared. A refusal
names the item's index, id and field (:func:`parse_push`).
"""

import calendar
import datetime
import decimal
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core import validators as django_validators
from django.core.exceptions import ValidationError
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils.dateparse import parse_datetime

from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import PUSH_REFUSED, ProtocolError, WireTypeError
from persistence_sync.limits import check_string, printable

# Keys of a pushed item that are not model fields.
ID, LAST_CHANGE, REMOVED = "id", "_lastChange", "_removed"
# Request headers of idempotent pushes, a protocol extension (docs/protocol.md).
PUSH_ID_HEADER, PUSH_REPLAY_HEADER = "X-Sync-Push-Id", "X-Sync-Push-Replay"
UNANSWERED_HEADER = "X-Sync-Unanswered"
# Push errors listed in one answer; the rest are counted.
MAX_REPORTED_ERRORS = 50
# Date-times pushed must lie in this UTC range: what Python's datetime holds,
# less a day at each end so that showing one in any time zone cannot overflow.
EARLIEST = datetime.datetime(1, 1, 2, tzinfo=datetime.timezone.utc)
LATEST = datetime.datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc)
# MySQL/MariaDB DATETIME and DATE hold years 1000 to 9999 only.
MYSQL_EARLIEST_YEAR = 1000


# The classic client sends null for every property a new object never had;
# for a field that is not nullable but has a default, that means the default.
# (Only for new objects: server.push refuses it on an existing one.)
USE_DEFAULT = type("UseDefault", (), {"__repr__": lambda self: "USE_DEFAULT"})()


@dataclass(frozen=True)
class FieldCodec:
    """How one model field travels: its wire name and both conversions."""

    name: str  # wire name: the field's name (``project``, not ``project_id``)
    attname: str  # attribute/column name (``project_id``)
    field: models.Field
    to_wire: Callable[[Any], Any]
    from_wire: Callable[[Any], Any]  # raises WireTypeError
    # values -> True when from_wire would return every one of them as it is
    accepts_column: Callable[[list], bool] | None = None

    def from_wire_column(self, values: list) -> list:
        """``from_wire`` of each of ``values``: the list itself when it is all plainly valid."""
        if self.accepts_column is not None and self.accepts_column(values):
            return values
        return [self.from_wire(value) for value in values]

    def wire(self, value):
        """``value`` (a Python value or None) as it travels; None stays null."""
        return None if value is None else self.to_wire(value)

    @property
    def converts_to_wire(self):
        """False when the Python value travels as it is (strings, numbers, JSON, booleans)."""
        return self.to_wire is not _identity and self.to_wire is not _bool_to_wire

    @property
    def related_model(self):
        return self.field.related_model if self.field.is_relation else None

    @property
    def column_field(self) -> Any:
        """The field whose type the column has: a relation's target field, else the field."""
        return self.field.target_field if self.field.is_relation else self.field  # type: ignore[attr-defined]


def _identity(value):
    return value


def _check_string(value):
    if not isinstance(value, str):
        raise WireTypeError(f"expected a string, got {_json_type(value)}")
    problem = check_string(value)
    if problem:
        raise WireTypeError(problem)
    return value


def _check_bool(value):
    if value is True or value is False:
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise WireTypeError(f"expected true or false, got {_json_type(value)}")


def _check_int(value):
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise WireTypeError(f"expected an integer, got {_json_type(value)}")


class _IntegerCheck:
    """Integer check with the field's range on every backend (SQLite has none)."""

    def __init__(self, field):
        self.integer_range = BaseDatabaseOperations.integer_field_ranges.get(
            field.get_internal_type(), (None, None))  # also read by _column_check

    def __call__(self, value):
        value = _check_int(value)
        low, high = self.integer_range
        if (low is not None and value < low) or (high is not None and value > high):
            raise WireTypeError(f"{value} is out of range [{low}, {high}]")
        return value


def _check_number(value):
    if type(value) is int:
        return value
    if type(value) is float:
        if not math.isfinite(value):  # json reads 1e400 as infinity
            raise WireTypeError("the number is too large (not finite)")
        return value
    raise WireTypeError(f"expected a number, got {_json_type(value)}")


def _float_from_wire(value):
    try:
        number = float(_check_number(value))  # a 400-digit integer overflows
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise WireTypeError("the number is too large for a float (at most about 1.8e308)")
    return number


def _seconds(value):
    """Seconds since 1970 from the wire; the classic client may send ms."""
    number = _check_number(value)
    return number / 1000 if abs(number) > 10**12 else number


DATETIME_RANGE = "date-times must lie between 0001-01-02 and 9999-12-30 (UTC)"


def _datetime_from_wire(value):
    if isinstance(value, str):
        # The classic preferLocal conflict handler pushes a Date as ISO 8601.
        try:
            parsed = parse_datetime(value[:64])  # no ISO date-time is longer
        except ValueError:  # well-formed but impossible: "2020-13-45T99:99"
            parsed = None
        if parsed is None or len(value) > 64:
            raise WireTypeError("expected seconds since 1970 or an ISO 8601 date-time")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        try:
            # An offset may carry a valid local time past year 9999 in UTC.
            moment = parsed.astimezone(datetime.timezone.utc)
        except OverflowError as exc:
            raise WireTypeError(DATETIME_RANGE) from exc
    else:
        try:
            moment = datetime.datetime.fromtimestamp(_seconds(value), tz=datetime.timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise WireTypeError(DATETIME_RANGE) from exc
    if not EARLIEST <= moment <= LATEST:
        raise WireTypeError(DATETIME_RANGE)
    return moment if settings.USE_TZ else moment.replace(tzinfo=None)


def _epoch(seconds, microseconds=0):
    """Seconds since 1970 on the wire, or ms with DATES_IN_MILLISECONDS."""
    if sync_settings.DATES_IN_MILLISECONDS:
        return seconds * 1000 + microseconds // 1000
    return seconds


def _datetime_to_wire(value):
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc)
    return _epoch(calendar.timegm(value.timetuple()), value.microsecond)  # naive is UTC


def _date_from_wire(value):
    moment = _datetime_from_wire(value)
    return (moment.astimezone(datetime.timezone.utc) if moment.tzinfo else moment).date()


def _date_to_wire(value):
    return None if value is None else _epoch(calendar.timegm(value.timetuple()))


def _decimal_from_wire(value):
    return decimal.Decimal(repr(_check_number(value)))


def _decimal_to_wire(value):
    return None if value is None else float(value)


def _json_from_wire(value):
    """A JSON field's value, walked without recursion: what json.dumps can store again.

    Infinity (from ``1e400``) would be stored as ``Infinity``, which no JSON
    parser reads back; a lone surrogate could not be encoded at all.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str:
            problem = check_string(item)
            if problem:
                raise WireTypeError(problem)
        elif kind is float:
            if not math.isfinite(item):
                raise WireTypeError("the number is too large (not finite)")
        elif kind is list:
            pending.extend(item)
        elif kind is dict:
            pending.extend(item)  # the keys
            pending.extend(item.values())
    return value


def _uuid_from_wire(value):
    try:
        return uuid.UUID(_check_string(value))
    except ValueError as exc:
        raise WireTypeError("expected a UUID string") from exc


def _uuid_to_wire(value):
    return None if value is None else str(value)


def _bool_to_wire(value):
    return None if value is None else bool(value)


# Checked in order: the first base class a field is an instance of wins.
CONVERTERS = [
    (models.BooleanField, _bool_to_wire, _check_bool),
    (models.DateTimeField, _datetime_to_wire, _datetime_from_wire),
    (models.DateField, _date_to_wire, _date_from_wire),
    (models.DecimalField, _decimal_to_wire, _decimal_from_wire),
    (models.FloatField, _identity, _float_from_wire),
    (models.IntegerField, _identity, _check_int),  # all integer fields
    (models.JSONField, _identity, _json_from_wire),
    (models.UUIDField, _uuid_to_wire, _uuid_from_wire),
    (models.CharField, _identity, _check_string),  # slug, email, url, ...
    (models.TextField, _identity, _check_string),
    (models.GenericIPAddressField, _identity, _check_string),
]


def _converters(field):
    for field_class, to_wire, from_wire in CONVERTERS:
        if isinstance(field, field_class):
            if from_wire is _check_int:
                from_wire = _IntegerCheck(field)
            return to_wire, from_wire
    return None


def unsupported_reason(field):
    """Why ``field`` cannot be synced, or None if it can."""
    if field.many_to_many or field.one_to_many:
        return "many-to-many and reverse relations are not synced by the protocol"
    if not field.concrete:
        return "it is not a concrete field"
    if field.is_relation:
        return None
    if _converters(field) is None:
        return f"{type(field).__name__} has no JSON mapping in the protocol"
    return None


def _validated(field, from_wire):
    """Wrap ``from_wire`` with null handling, choices and the field's own validators."""
    choices = {key for key, _ in field.flatchoices} if field.choices else None

    def convert(value):
        if value is None:
            if field.null:
                return None
            if field.has_default():
                return USE_DEFAULT
            raise WireTypeError("may not be null")
        result = from_wire(value)
        if choices is not None and result not in choices:
            raise WireTypeError("is not one of the field's choices")
        if passes is None or not passes(result):
            try:
                field.run_validators(result)
            except ValidationError as exc:
                raise WireTypeError("; ".join(exc.messages)) from exc
        return result

    passes = _passes_validators(field)
    return convert


def _validator_limits(field):
    """``(max_length, low, high, no_nul)`` of ``field``'s validators, or None if it has others.

    Django's own length, range and NUL validators (those of char and integer
    fields) are most of what a large push or pull checks: they are checked
    inline, a batch at a time where possible (:func:`_passes_validators`,
    :func:`_column_check`). A value those checks do not clear goes through
    ``run_validators``, which says what is wrong.
    """
    max_length, low, high, no_nul = None, None, None, False
    for validator in field.validators:
        kind, limit = type(validator), getattr(validator, "limit_value", None)
        if callable(limit):
            return None
        if kind is django_validators.MaxLengthValidator:
            max_length = limit if max_length is None else min(max_length, limit)
        elif kind is django_validators.MinValueValidator:
            low = limit if low is None else max(low, limit)
        elif kind is django_validators.MaxValueValidator:
            high = limit if high is None else min(high, limit)
        elif kind is django_validators.ProhibitNullCharactersValidator:
            no_nul = True
        else:
            return None
    return max_length, low, high, no_nul


def _passes_validators(field):
    """A quick ``value -> bool``: True only for values all of ``field``'s validators accept."""
    limits = _validator_limits(field)
    if limits is None:
        return None
    max_length, low, high, no_nul = limits
    numbers = (int, float)

    def passes(value):
        if max_length is not None and (type(value) is not str or len(value) > max_length):
            return False
        if no_nul and (type(value) is not str or "\x00" in value):
            return False
        if low is not None or high is not None:
            if type(value) not in numbers:
                return False
            if (low is not None and value < low) or (high is not None and value > high):
                return False
        return True

    return passes


def _column_check(field, from_wire):
    """A quick ``values -> bool``: True only when ``from_wire`` would return each value as it is.

    For the plain types a large sync is mostly made of (strings, booleans,
    integers, nulls where allowed) and no choices: type, length, range and
    text checks over the whole list at once. None for any other field; False
    sends the list through ``from_wire`` value by value.
    """
    limits = _validator_limits(field)
    if limits is None or field.choices:
        return None
    max_length, low, high, no_nul = limits
    null = field.null

    def present(values):
        return [value for value in values if value is not None] if null else values

    if from_wire is _check_string:
        def strings(values):
            values = present(values)
            if not all(type(value) is str for value in values):
                return False  # None where not allowed, or another type
            longest = max(map(len, values), default=0)
            limit = sync_settings.MAX_STRING_LENGTH
            return (longest <= limit and (max_length is None or longest <= max_length)
                    and all(map(str.isascii, values))  # no lone surrogate
                    and not (no_nul and "\x00" in "".join(values)))
        return strings
    if from_wire is _check_bool and max_length is low is high is None:
        def booleans(values):
            return all(value is True or value is False for value in present(values))
        return booleans
    if isinstance(from_wire, _IntegerCheck):
        range_low, range_high = from_wire.integer_range
        low = range_low if low is None else low if range_low is None else max(low, range_low)
        high = range_high if high is None else high if range_high is None else min(high, range_high)

        def integers(values):
            values = present(values)
            return (all(type(value) is int for value in values)
                    and (low is None or min(values, default=low) >= low)
                    and (high is None or max(values, default=high) <= high))
        return integers
    return None


def database_checker(field, connection):
    """What the database behind ``connection`` refuses of ``field``'s values, or None.

    Returns a function raising :class:`WireTypeError`; checked in Python so
    that the refusal names the item and field instead of failing the batch.
    """
    target = field.target_field if field.is_relation else field
    internal = target.get_internal_type()
    if internal in BaseDatabaseOperations.integer_field_ranges:
        low, high = connection.ops.integer_field_range(internal)

        def check(value):
            if (low is not None and value < low) or (high is not None and value > high):
                raise WireTypeError(f"{value} is out of range [{low}, {high}] for this database")

        return check
    if connection.vendor == "postgresql" and isinstance(
        target, (models.CharField, models.TextField, models.JSONField)
    ):
        return _refuse_nul
    if connection.vendor == "mysql" and isinstance(target, models.DateField):

        def check(value):
            if value.year < MYSQL_EARLIEST_YEAR:
                raise WireTypeError("dates before the year 1000 do not fit MySQL/MariaDB")

        return check
    return None


def _refuse_nul(value):
    """PostgreSQL stores no NUL character, in text or in jsonb (keys included)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is str:
            if "\x00" in item:
                raise WireTypeError("PostgreSQL cannot store the NUL character (\\u0000)")
        elif type(item) is list:
            pending.extend(item)
        elif type(item) is dict:
            pending.extend(item)
            pending.extend(item.values())


def build_codec(field):
    if field.is_relation:
        target = field.target_field  # the related pk (or to_field)
        to_wire, from_wire = _converters(target) or (_identity, _identity)
    else:
        to_wire, from_wire = _converters(field)
    return FieldCodec(field.name, field.attname, field, to_wire, _validated(field, from_wire),
                      _column_check(field, from_wire))


def is_integral(value) -> bool:
    """Whether a JSON value is an integer (``3.0`` too: some encoders write integers so)."""
    return type(value) is int or (type(value) is float and value.is_integer())


def _json_type(value):
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


@dataclass
class Change:
    """One object's change in a push, after merging repeated ids in order."""

    index: int  # position of its last item in the pushed array
    removed: bool = False
    values: dict[str, Any] = field(default_factory=dict)  # attname -> Python value, only the fields sent


def parse_push(items, codecs, id_max_length, connection=None, server_fields=()):
    """Validate the pushed items; return ``{id: Change}`` in first-seen order.

    ``items``: a list, or the iterator of :func:`limits.parse_body`, which
    parses each item only when it is needed here, so that a large push never
    holds all its parsed objects at once. The other arguments are those of
    :class:`ChangeParser`. Raises :class:`ProtocolError` listing the bad
    items (index, id, field), the first ``MAX_REPORTED_ERRORS`` of them.
    """
    if isinstance(items, (dict, str, int, float, bool)) or items is None:
        raise ProtocolError(f"The body must be a JSON array of objects, not {_json_type(items)}.")
    parser = ChangeParser(codecs, id_max_length, connection, server_fields)
    for index, item in enumerate(items):
        parser.add(index, item)
    return parser.result()


class ChangeParser:
    """Pushed items checked and merged one at a time into ``{id: Change}``.

    ``connection``: the database the push will be stored in; values it would
    refuse are refused here. ``server_fields``: names the server sets (owner,
    read-only fields), for which a pushed null means "whatever the server
    sets" (USE_DEFAULT). Errors are collected (the first
    ``MAX_REPORTED_ERRORS``) and raised by :meth:`result`.
    """

    def __init__(self, codecs, id_max_length, connection=None, server_fields=()):
        self.by_name = {codec.name: codec for codec in codecs}
        self.id_max_length = id_max_length
        self.server_fields = server_fields
        self.stored_checks = {}
        self.id_check = None
        if connection is not None:
            self.stored_checks = {codec.name: database_checker(codec.field, connection)
                                  for codec in codecs}
            if connection.vendor == "postgresql":
                self.id_check = _refuse_nul
        self.errors: list[dict[str, Any]] = []
        self.bad_count = 0
        self.changes: dict[str, Change] = {}

    def error(self, index, obj_id, field, message):
        self.bad_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:  # a huge bad push must not cost memory
            self.errors.append({"index": index, "id": printable(obj_id),
                                "field": printable(field), "message": message})

    def add(self, index, item):
        """Check item number ``index`` of the push and merge it into the changes."""
        if not isinstance(item, dict):
            self.error(index, None, None, f"expected an object, got {_json_type(item)}")
            return
        obj_id = self.checked_id(index, item.get(ID))
        if obj_id is None:
            return
        if item.get(REMOVED) is True or item.get(REMOVED) == 1:
            self.changes[obj_id] = Change(index=index, removed=True, values={})
            return
        values = self.values(index, obj_id, item)
        if self.bad_count:
            return  # refused anyway: keep checking, not converted values
        previous = self.changes.get(obj_id)
        if previous is not None and not previous.removed:
            values = {**previous.values, **values}
        self.changes[obj_id] = Change(index=index, removed=False, values=values)

    def checked_id(self, index, obj_id):
        """The item's id, or None (and an error) when it is not a usable id."""
        if not isinstance(obj_id, str) or not obj_id:
            self.error(index, obj_id if isinstance(obj_id, (str, int, float)) else None, ID,
                       "every item needs a non-empty string id")
            return None
        if len(obj_id) > self.id_max_length:
            self.error(index, obj_id[:self.id_max_length + 1], ID,
                       f"ids are at most {self.id_max_length} characters")
            return None
        problem = check_string(obj_id, "the id")
        if problem is None and self.id_check is not None:
            try:
                self.id_check(obj_id)
            except WireTypeError as exc:
                problem = str(exc)
        if problem:
            self.error(index, obj_id, ID, problem)
            return None
        return obj_id

    def values(self, index, obj_id, item):
        """``{attname: Python value}`` of the item's fields, each checked."""
        values = {}
        for key, value in item.items():
            if key in (ID, LAST_CHANGE, REMOVED):
                continue  # the server assigns _lastChange; _removed false is no removal
            codec = self.by_name.get(key)
            if codec is None:
                self.error(index, obj_id, key[:100], "unknown field")
                continue
            if value is None and key in self.server_fields:
                values[codec.attname] = USE_DEFAULT
                continue
            try:
                result = codec.from_wire(value)
                check = self.stored_checks.get(key)
                if check is not None and result is not None and result is not USE_DEFAULT:
                    check(result)
                values[codec.attname] = result
            except WireTypeError as exc:
                self.error(index, obj_id, key, str(exc))
        return values

    def result(self):
        """``{id: Change}``; raises :class:`ProtocolError` if any item was bad."""
        if self.errors:
            raise_item_errors(PUSH_REFUSED, self.errors, count=self.bad_count)
        return self.changes


def raise_item_errors(message, errors, status_code=400, count=None):
    shown = errors[:MAX_REPORTED_ERRORS]
    count = len(errors) if count is None else count
    if count > len(shown):
        message += f" {count} values are bad; the first {len(shown)} are listed."
    raise ProtocolError(message, shown, status_code=status_code)
