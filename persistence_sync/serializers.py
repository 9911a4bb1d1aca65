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
"""

import calendar
import datetime
import decimal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils.dateparse import parse_datetime

from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import PUSH_REFUSED, ProtocolError, WireTypeError

# Keys of a pushed item that are not model fields.
ID, LAST_CHANGE, REMOVED = "id", "_lastChange", "_removed"
# Request headers of idempotent pushes, a protocol extension (docs/protocol.md).
PUSH_ID_HEADER, PUSH_REPLAY_HEADER = "X-Sync-Push-Id", "X-Sync-Push-Replay"
# Push errors listed in one answer; the rest are counted.
MAX_REPORTED_ERRORS = 50


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

    def wire(self, value):
        """``value`` (a Python value or None) as it travels; None stays null."""
        return None if value is None else self.to_wire(value)

    @property
    def related_model(self):
        return self.field.related_model if self.field.is_relation else None


def _identity(value):
    return value


def _check_string(value):
    if not isinstance(value, str):
        raise WireTypeError(f"expected a string, got {_json_type(value)}")
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


def _integer_checker(field):
    """Integer check with the field's range on every backend (SQLite has none)."""
    low, high = BaseDatabaseOperations.integer_field_ranges.get(
        field.get_internal_type(), (None, None)
    )

    def check(value):
        value = _check_int(value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise WireTypeError(f"{value} is out of range [{low}, {high}]")
        return value

    return check


def _check_number(value):
    if type(value) in (int, float):
        return value
    raise WireTypeError(f"expected a number, got {_json_type(value)}")


def _seconds(value):
    """Seconds since 1970 from the wire; the classic client may send ms."""
    number = _check_number(value)
    return number / 1000 if abs(number) > 10**12 else number


def _datetime_from_wire(value):
    if isinstance(value, str):
        # The classic preferLocal conflict handler pushes a Date as ISO 8601.
        parsed = parse_datetime(value)
        if parsed is None:
            raise WireTypeError("expected seconds since 1970 or an ISO 8601 date-time")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        return parsed if settings.USE_TZ else parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    try:
        moment = datetime.datetime.fromtimestamp(_seconds(value), tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError) as exc:
        raise WireTypeError("timestamp out of range") from exc
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
    return decimal.Decimal(str(_check_number(value)))


def _decimal_to_wire(value):
    return None if value is None else float(value)


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
    (models.FloatField, _identity, _check_number),
    (models.IntegerField, _identity, _check_int),  # all integer fields
    (models.JSONField, _identity, _identity),
    (models.UUIDField, _uuid_to_wire, _uuid_from_wire),
    (models.CharField, _identity, _check_string),  # slug, email, url, ...
    (models.TextField, _identity, _check_string),
    (models.GenericIPAddressField, _identity, _check_string),
]


def _converters(field):
    for field_class, to_wire, from_wire in CONVERTERS:
        if isinstance(field, field_class):
            if from_wire is _check_int:
                from_wire = _integer_checker(field)
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
    """Wrap ``from_wire`` with null handling and the field's own validators."""

    def convert(value):
        if value is None:
            if field.null:
                return None
            if field.has_default():
                return USE_DEFAULT
            raise WireTypeError("may not be null")
        result = from_wire(value)
        try:
            field.run_validators(result)
        except ValidationError as exc:
            raise WireTypeError("; ".join(exc.messages)) from exc
        return result

    return convert


def build_codec(field):
    if field.is_relation:
        target = field.target_field  # the related pk (or to_field)
        to_wire, from_wire = _converters(target) or (_identity, _identity)
        return FieldCodec(field.name, field.attname, field, to_wire, _validated(field, from_wire))
    to_wire, from_wire = _converters(field)
    return FieldCodec(field.name, field.attname, field, to_wire, _validated(field, from_wire))


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


def parse_push(items, codecs, id_max_length):
    """Validate a pushed array; return ``{id: Change}`` in first-seen order.

    Raises :class:`ProtocolError` listing every bad item (index, id, field).
    """
    if not isinstance(items, list):
        raise ProtocolError(f"The body must be a JSON array of objects, not {_json_type(items)}.")
    by_name = {codec.name: codec for codec in codecs}
    errors = []

    def error(index, obj_id, field, message):
        errors.append({"index": index, "id": obj_id, "field": field, "message": message})

    changes = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            error(index, None, None, f"expected an object, got {_json_type(item)}")
            continue
        obj_id = item.get(ID)
        if not isinstance(obj_id, str) or not obj_id:
            error(index, obj_id if isinstance(obj_id, (str, int, float)) else None, ID,
                  "every item needs a non-empty string id")
            continue
        if len(obj_id) > id_max_length:
            error(index, obj_id, ID, f"ids are at most {id_max_length} characters")
            continue
        if item.get(REMOVED) is True or item.get(REMOVED) == 1:
            changes[obj_id] = Change(index=index, removed=True, values={})
            continue
        values = {}
        for key, value in item.items():
            if key in (ID, LAST_CHANGE, REMOVED):
                continue  # the server assigns _lastChange; _removed false is no removal
            codec = by_name.get(key)
            if codec is None:
                error(index, obj_id, key, "unknown field")
                continue
            try:
                values[codec.attname] = codec.from_wire(value)
            except WireTypeError as exc:
                error(index, obj_id, key, str(exc))
        previous = changes.get(obj_id)
        if previous is not None and not previous.removed:
            values = {**previous.values, **values}
        changes[obj_id] = Change(index=index, removed=False, values=values)
    if errors:
        raise_item_errors(PUSH_REFUSED, errors)
    return changes


def raise_item_errors(message, errors, status_code=400):
    shown = errors[:MAX_REPORTED_ERRORS]
    if len(errors) > len(shown):
        message += f" {len(errors)} items are bad; the first {len(shown)} are listed."
    raise ProtocolError(message, shown, status_code=status_code)
