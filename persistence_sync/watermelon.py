"""WatermelonDB's backend sync protocol, served from the same registrations: its wire shapes only.

WatermelonDB (npm ``@nozbe/watermelondb``) syncs every table through one
endpoint: ``GET ?last_pulled_at=<ms|null>&schema_version=<n>&migration=<json|null>``
answers ``{"changes": {"<table>": {"created": [...], "updated": [...],
"deleted": [ids]}}, "timestamp": <ms>}``, and ``POST ?last_pulled_at=<ms>``
sends the same ``changes`` shape. The app's URLs serve it at ``watermelon``;
docs/watermelon.md shows the app's side (``synchronize()``).

Everything below the wire shapes is the core's, as for the classic
protocol (:mod:`persistence_sync.endpoints`): authentication, each table's
permission classes, one throttle token per request, the body limits, the
signals, 503s, the clocks and their ``LOCK_TIMEOUT``, one ``timestamp`` read
from the snapshot its rows come from (:mod:`persistence_sync.pulls`), scopes
and revocations, idempotent pushes (``X-Sync-Push-Id``; a push naming
unanswered ones in ``X-Sync-Unanswered`` does not write their values again,
:mod:`persistence_sync.receipts`), and all-or-nothing pushes of several
tables (:mod:`persistence_sync.pushes`). What is WatermelonDB's own:

* tables and columns: a model is the table named by ``register(...,
  watermelon=...)`` (a :class:`WatermelonTable` or a name), by default its
  plural model name (``Task`` is ``tasks``); its columns are the synced
  fields, relations as ``<field>_id``; dates travel as milliseconds and JSON
  fields as strings;
* schema versions and migration syncs (:class:`WatermelonTable`);
* a push is refused (409) when a pushed record changed on the server after
  ``last_pulled_at``;
* a table whose deletions were pruned since ``last_pulled_at`` (the
  tombstone horizon) is answered whole with WatermelonDB's
  ``experimentalStrategy`` ``replacement`` for it: the device replaces its
  copy of the table;
* paging: ``limit`` and an opaque ``cursor``; ``hasMore`` in the answer.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import datetime
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connections, models
from django.http.response import HttpResponseBase

from persistence_sync import pushes
from persistence_sync.db import chunks, is_in
from persistence_sync.endpoints import SyncEndpoint, json_response, parse_limit, parse_stamp
from persistence_sync.exceptions import PUSH_REFUSED, HistoryPruned, ProtocolError, WireTypeError
from persistence_sync.limits import parse_changes
from persistence_sync.pulls import Pull, Source, Window, encode_items
from persistence_sync.registry import Registration, WatermelonTable
from persistence_sync.serializers import ID, REMOVED, ChangeParser, FieldCodec, raise_item_errors

__all__ = ["WatermelonEndpoint", "WatermelonTable", "columns_of", "table_name", "table_of"]

PARTS = ("created", "updated", "deleted")


def table_of(registration: Registration) -> WatermelonTable:
    """The :class:`WatermelonTable` of ``registration``, its name filled in."""
    table = registration.watermelon or WatermelonTable()
    assert isinstance(table, WatermelonTable)  # a name was made a table by register()
    if table.name is None:
        plural = str(registration.model._meta.verbose_name_plural)
        table = WatermelonTable(plural.lower().replace(" ", "_"), table.added_in,
                                dict(table.columns_added_in))
    return table


def table_name(registration: Registration) -> str:
    """The name of ``registration``'s table."""
    name = table_of(registration).name
    assert name is not None  # table_of() fills it in
    return name


# --- columns: one synced field as a WatermelonDB column -------------------------


@dataclass(frozen=True)
class Column:
    name: str  # the column: the field's name, or "<field>_id" for a relation
    codec: FieldCodec  # the field's codec, which checks every value
    to_raw: Callable[[Any], Any]  # Python value (not None) -> raw record value
    from_raw: Callable[[Any], Any]  # raw record value (not None) -> wire value for codec.from_wire
    added_in: int = 1


def _ms(value: datetime.date) -> int:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        return calendar.timegm(value.timetuple()) * 1000 + value.microsecond // 1000
    return calendar.timegm(value.timetuple()) * 1000  # a date: its midnight UTC


def _from_ms(value: Any) -> str:
    if type(value) not in (int, float):
        raise WireTypeError("expected milliseconds since 1970")
    try:
        moment = datetime.datetime.fromtimestamp(value / 1000, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError) as exc:
        raise WireTypeError("timestamp out of range") from exc
    return moment.isoformat()


def _from_json_string(value: Any) -> Any:
    if not isinstance(value, str):
        raise WireTypeError("expected a JSON string")
    try:
        return json.loads(value)
    except ValueError as exc:
        raise WireTypeError("expected a JSON string") from exc


def _identity(value: Any) -> Any:
    return value


def columns_of(registration: Registration, schema_version: int | None = None) -> list[Column]:
    """The table's columns, without those a client at ``schema_version`` does not have yet."""
    added = table_of(registration).columns_added_in
    columns = []
    to_raw: Callable[[Any], Any]
    from_raw: Callable[[Any], Any]
    for codec in registration.codecs:
        model_field = codec.field
        if isinstance(model_field, (models.DateTimeField, models.DateField)):
            to_raw, from_raw = _ms, _from_ms
        elif isinstance(model_field, models.JSONField):
            to_raw, from_raw = json.dumps, _from_json_string
        else:
            to_raw, from_raw = codec.to_wire, _identity
        column = Column(codec.attname if model_field.is_relation else codec.name, codec,
                        to_raw, from_raw, added.get(codec.name, 1))
        if schema_version is None or column.added_in <= schema_version:
            columns.append(column)
    return columns


# --- the pull request -------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a page of a paged pull stopped: the pull's ``now``, a table, a part, an id."""

    timestamp: int  # the pull's now (0 before any write), not its answered timestamp
    table: str
    part: str  # "objects" or "deleted"
    after: str  # the last id sent ("" before every id)
    resynced: tuple[str, ...] = ()  # tables answered whole (the tombstone horizon)

    def encode(self) -> str:
        data = orjson.dumps({"t": self.timestamp, "table": self.table, "part": self.part,
                             "after": self.after, "r": list(self.resynced)})
        return base64.urlsafe_b64encode(data).decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            data = orjson.loads(base64.urlsafe_b64decode(text.encode()))
            cursor = cls(data["t"], data["table"], data["part"], data["after"],
                         tuple(data.get("r", ())))
            valid = (type(cursor.timestamp) is int and cursor.timestamp >= 0
                     and isinstance(cursor.table, str) and cursor.part in ("objects", "deleted")
                     and isinstance(cursor.after, str)
                     and all(isinstance(name, str) for name in cursor.resynced))
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error,
                orjson.JSONDecodeError):
            valid = False
        if not valid:
            raise ProtocolError("cursor must be the cursor of the previous page, unchanged.")
        return cursor


@dataclass(frozen=True)
class PullQuery:
    last_pulled_at: int | None  # None on a first sync
    schema_version: int | None  # None: the newest
    migrated_from: int | None  # None: no migration sync
    limit: int | None = None  # paging: at most this many records
    cursor: Cursor | None = None  # paging: where the previous page stopped

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> PullQuery:
        limit = parse_limit(params.get("limit"))
        cursor = params.get("cursor")
        if cursor is not None and limit is None:
            raise ProtocolError("cursor= continues a paged pull: send limit= too.")
        return cls(_optional_stamp(params, "last_pulled_at"), _optional_stamp(params, "schema_version"),
                   _migrated_from(params.get("migration")), limit,
                   Cursor.decode(cursor) if cursor else None)


def _optional_stamp(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    return None if value in ("null", "undefined") else parse_stamp(name, value)


def _migrated_from(migration: str | None) -> int | None:
    if migration is None or migration in ("", "null"):
        return None
    try:
        migrated_from = json.loads(migration)["from"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ProtocolError("migration must be null or JSON with a 'from' schema version.") from exc
    if type(migrated_from) is not int or migrated_from < 0:
        raise ProtocolError("migration's 'from' must be a non-negative integer.")
    return migrated_from


# --- the endpoint -----------------------------------------------------------------


class WatermelonEndpoint(SyncEndpoint):
    """GET pulls and POST pushes every table the request may use."""

    partial_permissions = True  # a table the request may not use is left out
    endpoint_key = "watermelon"

    def get_registrations(self) -> list[Registration]:
        return self.registry.registrations()

    def get(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        query = PullQuery.parse(request.query_params)
        tables = [reg for reg in self.permitted
                  if query.schema_version is None or table_of(reg).added_in <= query.schema_version]
        sources = [Source(reg, self.access(reg), _since(reg, query), extra=_migrated_rows(reg, query))
                   for reg in tables]
        pull = Pull(sources, self.get_db(), limit=query.limit,
                    now=query.cursor.timestamp if query.cursor else None)
        return self.pull_answer(pull, _Answer(pull, query).chunks())

    def post(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        last_pulled_at = parse_stamp("last_pulled_at", request.query_params.get("last_pulled_at"))
        if last_pulled_at is None:
            raise ProtocolError("last_pulled_at is required.")
        receipt = self.receipt(request, remember=True)
        body = self.read_body(request)
        connection = connections[receipt.using]
        tables = _TablesPushed(self.get_registrations(), self.permitted, connection)
        for table, part, index, record in parse_changes(body, PARTS):
            tables.add(table, part, index, record)
        del body  # the parsed changes are all that is needed while the push is stored
        batches = [pushes.Batch(reg, self.access(reg), changes)
                   for reg, changes in tables.result()]
        self.store(batches, receipt, check=_conflicts(batches, last_pulled_at, receipt.using))
        return json_response({"status": "ok"})


def _since(registration: Registration, query: PullQuery) -> int:
    """The table's window starts after this: 0 on a first sync and for a table new to the client."""
    new_table = query.migrated_from is not None and table_of(registration).added_in > query.migrated_from
    return 0 if (new_table or query.last_pulled_at is None) else query.last_pulled_at


def _migrated_rows(registration: Registration, query: PullQuery) -> models.Q | None:
    """A migration sync's rows whose columns the client just gained are set: sent too."""
    if query.migrated_from is None or _since(registration, query) == 0:
        return None
    new = [column for column in columns_of(registration, query.schema_version)
           if column.added_in > query.migrated_from]
    if not new:
        return None
    is_set = models.Q()
    for column in new:
        is_set |= models.Q(**{f"{column.codec.attname}__isnull": False})
    return is_set


class _Answer:
    """The chunks of a pull's answer: tables in order, each its records then its deletions."""

    def __init__(self, pull: Pull, query: PullQuery) -> None:
        self.pull, self.query = pull, query
        self.stopped: Cursor | None = None

    def chunks(self) -> Iterator[bytes]:
        pull, query = self.pull, self.query
        with pull.snapshot() as now:
            timestamp = max(1, now)  # WatermelonDB refuses 0 (a server nobody wrote to yet)
            resynced = self.resync(pull.sources)
            yield b'{"changes":{'
            cursor, separator = query.cursor, b""
            for source in pull.sources:
                name = table_name(source.registration)
                after = None
                if cursor is not None:  # a later page: start where the previous one stopped
                    if name != cursor.table:
                        continue
                    after, cursor = (cursor.part, cursor.after), None
                yield separator + orjson.dumps(name) + b":"
                separator = b","
                yield from self.table(source, name, after, now, resynced)
                if self.stopped is not None:
                    break
            yield b'},"timestamp":%d' % timestamp
            if resynced:
                yield b',"experimentalStrategy":' + orjson.dumps({
                    "default": "incremental", "override": dict.fromkeys(resynced, "replacement")})
            if query.limit is not None:
                yield b',"hasMore":%s' % (b"true" if self.stopped else b"false")
                if self.stopped is not None:
                    yield b',"cursor":' + orjson.dumps(self.stopped.encode())
            yield b"}"

    def resync(self, sources: list[Source]) -> tuple[str, ...]:
        """The tables whose deletions since ``last_pulled_at`` were pruned: answered whole.

        A later page answers whole the tables its first page did; a table
        pruned since then gets a 410 (the device syncs again from the start).
        """
        first_page = self.query.cursor is None
        resynced = [] if first_page else list(self.query.cursor.resynced)  # type: ignore[union-attr]
        for source in sources:
            name = table_name(source.registration)
            if source.pruned and first_page:
                resynced.append(name)
            elif source.pruned and name not in resynced:
                raise HistoryPruned(source.since, source.horizon)
            if name in resynced:
                source.since, source.granted, source.revoked = 0, [], []
        return tuple(resynced)

    def table(self, source: Source, name: str, after: tuple[str, str] | None, now: int,
              resynced: tuple[str, ...]) -> Iterator[bytes]:
        """One table's ``{"created"|"updated": [...], "deleted": [...]}``, read in id order.

        A page that stops here names the pull's ``now`` in its cursor: the next
        page's window must be this one's, and a clock at 0 (rows loaded past the
        clock, no write yet) is answered as timestamp 1, which no clock reached.
        """
        columns = columns_of(source.registration, self.query.schema_version)
        keys = (ID, *(column.name for column in columns))
        raw = {column.codec.attname: column.to_raw for column in columns}
        part = "created" if source.since == 0 else "updated"
        yield b'{"%s":[' % part.encode()
        if after is None or after[0] == "objects":
            last, separator = after[1] if after else "", b""
            for records in self.pull.records(source, keys, last or None,
                                             lambda codec: raw[codec.attname],
                                             [column.codec for column in columns]):
                yield separator + encode_items(records)
                separator, last = b",", records[-1][ID]
            if self.pull.budget.full:
                self.stopped = Cursor(now, name, "objects", last, resynced)
        yield b'],"%s":[],"deleted":[' % (b"updated" if part == "created" else b"created")
        if self.stopped is None:
            start = after[1] if after and after[0] == "deleted" else ""
            last, separator = start, b""
            for ids in self.pull.removed_ids(source, start or None):
                yield separator + encode_items(ids)
                separator, last = b",", ids[-1]
            if self.pull.budget.full:
                self.stopped = Cursor(now, name, "deleted", last, resynced)
        yield b"]}"


# --- the push ---------------------------------------------------------------------


@dataclass
class _TablePush:
    """One table's records of a push, checked as they are parsed."""

    registration: Registration
    parser: ChangeParser
    columns: dict[str, Column]
    places: list[tuple[str, int]] = field(default_factory=list)  # (list, index) of each item
    deleted: list[tuple[int, Any]] = field(default_factory=list)  # (index, id), applied last
    refused: list[dict[str, Any]] = field(default_factory=list)


class _TablesPushed:
    """A push body's tables as they are parsed: each record checked, nothing stored yet."""

    def __init__(self, registrations: list[Registration], permitted: list[Registration],
                 connection: Any) -> None:
        self.known = {table_name(reg): reg for reg in registrations}
        self.permitted = {reg.label for reg in permitted}
        self.connection = connection
        self.tables: dict[str, _TablePush] = {}

    def add(self, table: str, part: str | None, index: int, record: Any) -> None:
        pushed = self.tables.get(table) or self._open(table)
        if part is None:  # the table's object begins
            return
        if part == "deleted":  # deletions win over a change of the same record
            pushed.deleted.append((index, record))
            return
        if isinstance(record, dict):
            record = self._item(pushed, table, part, index, record)
        pushed.places.append((part, index))
        pushed.parser.add(len(pushed.places) - 1, record)

    def _open(self, table: str) -> _TablePush:
        registration = self.known.get(table)
        if registration is None:
            raise ProtocolError(f"Unknown table {table[:100]!r}; this server syncs {sorted(self.known)}.")
        if registration.label not in self.permitted:
            raise ProtocolError(f"You may not push to {table!r}.", status_code=403)
        parser = ChangeParser(registration.codecs, registration.model._meta.pk.max_length or 255,
                              self.connection, server_fields=registration.server_fields)
        pushed = self.tables[table] = _TablePush(
            registration, parser, {column.name: column for column in columns_of(registration)})
        return pushed

    @staticmethod
    def _item(pushed: _TablePush, table: str, part: str, index: int, record: dict) -> dict:
        """A raw record as a persistence.sync item: dates from ms, JSON from strings.

        ``_status``, ``_changed`` and local-only columns are left out; the
        codecs then check every value as for persistence.sync pushes.
        """
        item = {ID: record.get(ID)}
        for key, value in record.items():
            column = pushed.columns.get(key)
            if column is None:
                continue
            try:
                item[column.codec.name] = None if value is None else column.from_raw(value)
            except WireTypeError as exc:
                pushed.refused.append({"table": table, "list": part, "index": index,
                                       "id": record.get(ID), "field": key, "message": str(exc)})
        return item

    def result(self) -> list[tuple[Registration, dict]]:
        """``[(registration, {id: Change})]``, parents first; 400 naming table, list, index, id, column."""
        batches, errors = [], []
        for table, pushed in sorted(self.tables.items(),
                                    key=lambda item: list(self.known).index(item[0])):
            for index, record_id in pushed.deleted:
                pushed.places.append(("deleted", index))
                pushed.parser.add(len(pushed.places) - 1, {ID: record_id, REMOVED: True})
            errors += pushed.refused
            try:
                batches.append((pushed.registration, pushed.parser.result()))
            except ProtocolError as exc:
                errors += [self._located(table, pushed, error) for error in exc.errors]
        if errors:
            errors.sort(key=lambda e: (e["table"], PARTS.index(e["list"]), e["index"]))
            raise_item_errors(PUSH_REFUSED, errors)
        return batches

    @staticmethod
    def _located(table: str, pushed: _TablePush, error: dict[str, Any]) -> dict[str, Any]:
        part, index = pushed.places[error["index"]]
        wire_to_column = {column.codec.name: name for name, column in pushed.columns.items()}
        return {"table": table, "list": part, "index": index, "id": error["id"],
                "field": wire_to_column.get(error["field"], error["field"]),
                "message": error["message"]}


def _conflicts(batches: list[pushes.Batch], last_pulled_at: int, using: str) -> Callable[[dict], None]:
    """``check(stamps)`` for the push: refuse it if a pushed record changed after ``last_pulled_at``.

    Runs with every touched model's clock held, so nothing can change between
    this check and the writes. A record deleted on the server is a conflict
    too, unless the push deletes it as well; of a scoped table, only the
    request's own deletions count (another scope's record is the write
    rule's 403, like a hidden one).
    """
    def check(stamps: dict[str, int]) -> None:
        conflicts = []
        for batch in batches:
            name = table_name(batch.registration)
            queryset = batch.access.queryset.using(using)
            source = Source(batch.registration, batch.access, since=-1)
            removals, object_id, _ = Window(source, stamps[batch.label], using).removals()
            for chunk in chunks(batch.changes):
                # In id order, not the database's: the 409 names the same first 50 every time.
                changed = queryset.filter(is_in("pk", chunk), last_change__gt=last_pulled_at)
                conflicts += [{"table": name, "id": pk,
                               "message": "changed on the server after last_pulled_at"}
                              for pk in changed.order_by("pk").values_list("pk", flat=True)]
                live = [pk for pk in chunk if not batch.changes[pk].removed]
                conflicts += [{"table": name, "id": pk, "message": "deleted on the server"}
                              for pk in removals.filter(is_in(object_id, live))
                              .values_list(object_id, flat=True)]
        if conflicts:
            raise ProtocolError(
                "Records changed on the server after last_pulled_at; nothing was stored. "
                "Pull, then push again.", conflicts[:50], status_code=409)

    return check
