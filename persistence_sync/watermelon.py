"""WatermelonDB's backend sync protocol, served from the same registrations.

WatermelonDB (npm ``@nozbe/watermelondb``) syncs every table through one
endpoint: ``GET ?last_pulled_at=<ms|null>&schema_version=<n>&migration=<json|null>``
answers ``{"changes": {"<table>": {"created": [...], "updated": [...],
"deleted": [ids]}}, "timestamp": <ms>}``, and ``POST ?last_pulled_at=<ms>``
sends the same ``changes`` shape. The app's URLs serve it at ``watermelon``::

    await synchronize({
      database,
      sendCreatedAsUpdated: true,
      pullChanges: async ({ lastPulledAt, schemaVersion, migration }) => {
        const query = `last_pulled_at=${lastPulledAt}&schema_version=${schemaVersion}`
          + `&migration=${encodeURIComponent(JSON.stringify(migration))}`
        const response = await fetch(`/watermelon?${query}`, { headers })
        if (!response.ok) throw new Error(await response.text())
        return response.json()
      },
      pushChanges: async ({ changes, lastPulledAt }) => {
        const response = await fetch(`/watermelon?last_pulled_at=${lastPulledAt}`,
          { method: "POST", headers, body: JSON.stringify(changes) })
        if (!response.ok) throw new Error(await response.text())
      },
    })

Everything below the wire format is the persistence.sync core: the clock and
its ``now`` rule (:func:`persistence_sync.clock.catch_up` gives one timestamp
for all tables), the value checks of :mod:`persistence_sync.serializers`,
tombstones, each registration's queryset, permission and throttle classes,
its scope (:class:`persistence_sync.scoping.Access`: scoped tombstones, moved
objects and revoked scope values arrive in ``deleted``; the write rule, owner,
read-only fields and ``perform_write`` apply to pushes), and
:func:`persistence_sync.server.push_many` for an all-or-nothing push.

A model appears as the table named by ``register(..., watermelon=...)``
(a :class:`WatermelonTable` or a name), by default its plural model name
(``Task`` is ``tasks``). Its columns are the synced fields, relations as
``<field>_id``; dates travel as milliseconds and JSON fields as strings.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import dataclasses
import datetime
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import orjson
from django.db import DatabaseError, IntegrityError, connections, models, router, transaction
from django.http import HttpResponse, StreamingHttpResponse
from rest_framework import exceptions
from rest_framework.views import APIView

from persistence_sync import clock, server
from persistence_sync.conf import sync_settings
from persistence_sync.db import chunks, is_in
from persistence_sync.exceptions import PUSH_REFUSED, ProtocolError, WireTypeError
from persistence_sync.limits import parse_document, too_many_items
from persistence_sync.serializers import ID, REMOVED, parse_push

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import QuerySet
    from rest_framework.request import Request

    from persistence_sync.registry import Registration, SyncRegistry
    from persistence_sync.scoping import Access
    from persistence_sync.serializers import Change, FieldCodec
    from persistence_sync.views import SyncView

    # (registration, access) of a table a request may sync
    Table = tuple[Registration, Access]
    # (registration, queryset, changes, access): one table's parsed push, for push_many
    Batch = tuple[Registration, QuerySet, dict[Any, Change], Access]

PARTS = ("created", "updated", "deleted")


@dataclass(frozen=True)
class WatermelonTable:
    """How a registered model appears to WatermelonDB clients.

    ``added_in`` and ``columns_added_in`` are client schema versions: a
    client below ``added_in`` does not get the table, and a migration sync
    from an older version gets every row of a table added since, and every
    row whose columns added since are set (WatermelonDB's migration syncs).
    """

    name: str | None = None  # None: the model's plural name, e.g. "tasks"
    added_in: int = 1
    columns_added_in: dict[str, int] = field(default_factory=dict)  # field name -> schema version


def table_of(registration: Registration) -> WatermelonTable:
    """The :class:`WatermelonTable` of ``registration``, its name filled in."""
    table = registration.watermelon or WatermelonTable()
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
    codec: FieldCodec  # the field's persistence.sync codec, which checks every value
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


def _identity(value: Any) -> Any:
    return value


# --- the request ------------------------------------------------------------------


@dataclass
class PullRequest:
    last_pulled_at: int | None  # None on a first sync
    schema_version: int | None  # None: the newest
    migrated_from: int | None  # None: no migration sync
    limit: int | None = None  # paging: at most this many records
    cursor: dict[str, Any] | None = None  # paging: where the previous page stopped


def _int_param(params: Mapping[str, str], name: str, required: bool = False) -> int | None:
    value = params.get(name)
    if value in (None, "", "null", "undefined"):
        if required:
            raise ProtocolError(f"{name} is required.")
        return None
    if not value.isdigit() or len(value) > 18:
        raise ProtocolError(f"{name} must be a non-negative integer, not {value!r}.")
    return int(value)


def parse_pull_request(params: Mapping[str, str]) -> PullRequest:
    migration = params.get("migration")
    migrated_from = None
    if migration not in (None, "", "null"):
        try:
            migrated_from = json.loads(migration)["from"]
        except (ValueError, TypeError, KeyError) as exc:
            raise ProtocolError("migration must be null or JSON with a 'from' schema version.") from exc
        if type(migrated_from) is not int or migrated_from < 0:
            raise ProtocolError("migration's 'from' must be a non-negative integer.")
    limit = _int_param(params, "limit")
    if limit is not None:
        if limit < 1:
            raise ProtocolError("limit must be a positive integer.")
        limit = min(limit, sync_settings.MAX_PAGE_SIZE)
    cursor = params.get("cursor")
    if cursor is not None and limit is None:
        raise ProtocolError("cursor= continues a paged pull: send limit= too.")
    return PullRequest(_int_param(params, "last_pulled_at"), _int_param(params, "schema_version"),
                       migrated_from, limit, _decode_cursor(cursor) if cursor else None)


def _encode_cursor(timestamp: int, table: str, part: str, after: str) -> str:
    data = orjson.dumps({"t": timestamp, "table": table, "part": part, "after": after})
    return base64.urlsafe_b64encode(data).decode()


def _decode_cursor(text: str) -> dict[str, Any]:
    try:
        cursor = orjson.loads(base64.urlsafe_b64decode(text.encode()))
        valid = (type(cursor.get("t")) is int and isinstance(cursor.get("table"), str)
                 and cursor.get("part") in ("objects", "deleted")
                 and isinstance(cursor.get("after"), str))
    except (ValueError, TypeError, AttributeError, binascii.Error, orjson.JSONDecodeError):
        valid = False
    if not valid:
        raise ProtocolError("cursor must be the cursor of the previous page, unchanged.")
    return cursor


# --- pull ---------------------------------------------------------------------------


class _Budget:
    """How many more records a paged pull may answer, and where it stopped."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit
        self.full = False  # more records remain than this page holds
        self.stopped_at: tuple[str, str, Any] | None = None  # (table, part, last id sent) once full

    def take(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows that fit in the page."""
        if self.left is None:
            return rows
        if len(rows) > self.left:
            rows, self.full = rows[: self.left], True
        self.left -= len(rows)
        return rows

    def stop_if_full(self, table: str, part: str, rows: Sequence[object], last_id: Any) -> bool:
        if self.full and self.stopped_at is None:
            # "" sorts before every id: the part starts over at its beginning.
            self.stopped_at = (table, part, last_id if rows else "")
        return self.full


def pull_chunks(tables: list[Table], pull: PullRequest, using: str) -> Iterator[bytes]:
    """The pull answer's JSON as bytes chunks; ``tables`` is ``[(registration, access)]``.

    A change of the request's scope values that took one away brings removals
    that exist only in memory (:mod:`persistence_sync.scoping`): the rare pull
    that carries one is answered whole, ``hasMore: false`` even when paged.
    """
    for _, access in tables:
        if access.scope_attname is not None:
            access.refresh_grants(using)  # before the timestamp: this pull answers it
    # WatermelonDB refuses a timestamp of 0 (a server nobody wrote to yet).
    # 1 is as safe: every stamp a writer takes is at least the wall clock's ms.
    timestamp = pull.cursor["t"] if pull.cursor else max(1, clock.catch_up(
        [registration.model for registration, _ in tables], using))
    with clock.read_snapshot(using):
        for registration, _ in tables:
            if max(1, clock.committed_now(registration.model, using)) < timestamp:
                raise ProtocolError("The cursor's timestamp is ahead of the server's clock; "
                                    "send the cursor of the previous page, unchanged.")
        scopes = {registration.label: _scope_changes(registration, access, pull, timestamp, using)
                  for registration, access in tables}
        paged = pull.limit is not None
        if any(revoked for _, revoked in scopes.values()):
            pull = dataclasses.replace(pull, limit=None)  # answered whole: see above
        budget = _Budget(pull.limit)
        yield b'{"changes":{'
        skipping, emitted = pull.cursor, 0
        for registration, access in tables:
            name = table_name(registration)
            after = None
            if skipping is not None:  # a later page: start where the previous one stopped
                if name != skipping["table"]:
                    continue
                after = (skipping["part"], skipping["after"])
                skipping = None
            yield (b"," if emitted else b"") + orjson.dumps(name) + b":"
            emitted += 1
            yield from _table_chunks(registration, access, pull, timestamp, after, budget, using,
                                     *scopes[registration.label])
            if budget.stopped_at:
                break
        yield b'},"timestamp":%d' % timestamp
        if paged:
            more = budget.stopped_at is not None
            yield b',"hasMore":%s' % (b"true" if more else b"false")
            if budget.stopped_at is not None:
                yield b',"cursor":' + orjson.dumps(_encode_cursor(timestamp, *budget.stopped_at))
        yield b"}"


def _since(registration: Registration, pull: PullRequest) -> int:
    """The table's window starts after this: 0 on a first sync and for a table new to the client."""
    table = table_of(registration)
    new_table = pull.migrated_from is not None and table.added_in > pull.migrated_from
    return 0 if (new_table or pull.last_pulled_at is None) else pull.last_pulled_at


def _scope_changes(registration: Registration, access: Access, pull: PullRequest, timestamp: int,
                   using: str) -> tuple[list[Any], list[Any]]:
    """``(granted, revoked)`` scope values of the request since the table's window began."""
    since = _since(registration, pull)
    if access.scope_attname is None or since == 0:
        return [], []  # a first sync gets everything visible, and holds nothing to remove
    return access.grant_changes(since, timestamp, using)


def _table_chunks(registration: Registration, access: Access, pull: PullRequest, timestamp: int,
                  after: tuple[str, str] | None, budget: _Budget, using: str,
                  granted: Sequence[Any] = (), revoked: Sequence[Any] = ()) -> Iterator[bytes]:
    """One table's ``{"created"|"updated": [...], "deleted": [...]}``, read in id order."""
    table = table_of(registration)
    name = table_name(registration)
    columns = columns_of(registration, pull.schema_version)
    new_table = pull.migrated_from is not None and table.added_in > pull.migrated_from
    since = _since(registration, pull)
    queryset = access.queryset
    scoped = access.scope_attname is not None
    # The persistence.sync pull's window: the same objects, scoped tombstones and grants.
    window = server.Window(registration, queryset, server.Page(since), timestamp, using,
                           access if scoped else None, granted)
    objects = window.objects()
    new_columns = [c for c in columns if pull.migrated_from is not None and not new_table
                   and c.added_in > pull.migrated_from]
    if new_columns:  # rows whose columns the client just gained are set: send them too
        is_set = models.Q()
        for column in new_columns:
            is_set |= models.Q(**{f"{column.codec.attname}__isnull": False})
        objects = (objects | queryset.using(using).filter(is_set, last_change__lte=timestamp))
    part = "created" if since == 0 else "updated"
    yield b'{"%s":[' % part.encode()
    if after is None or after[0] == "objects":
        if after is not None:
            objects = objects.filter(pk__gt=after[1])
        yield from _records(objects.order_by("pk"), columns, budget, name)
    yield b'],"%s":[' % (b"updated" if part == "created" else b"created")
    yield b'],"deleted":['
    if budget.stopped_at is None:
        tombstones, object_id, _ = window.tombstones()
        if after is not None and after[0] == "deleted":
            tombstones = tombstones.filter(**{f"{object_id}__gt": after[1]})
        tombstones = tombstones.order_by(object_id)
        if revoked:  # in memory, with the revocations' removals (the whole answer)
            removals = access.revoked_removals(revoked, since, using)
            visible = {str(pk) for pk in access.visible(list(removals), using)}
            ids = {*tombstones.values_list(object_id, flat=True),
                   *(str(pk) for pk in removals if str(pk) not in visible)}
            if ids:
                yield server.encode_items(sorted(ids))
        else:
            yield from _deleted(tombstones, object_id, budget, name)
    yield b"]}"


def _batches(queryset: QuerySet, fields: list[str], budget: _Budget) -> Iterator[list[tuple[Any, ...]]]:
    """Lists of rows of ``queryset``, BATCH_SIZE at a time, within the page's budget."""
    size = sync_settings.BATCH_SIZE
    if budget.left is not None:
        queryset = queryset[: budget.left + 1]  # one more says whether more follow
    batch = []
    for row in queryset.values_list(*fields).iterator(chunk_size=size):
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _records(objects: QuerySet, columns: list[Column], budget: _Budget, table: str) -> Iterator[bytes]:
    first = True
    for batch in _batches(objects, ["pk", *(c.codec.attname for c in columns)], budget):
        rows = budget.take(batch)
        records = []
        for row in rows:
            record = {ID: row[0]}
            for column, value in zip(columns, row[1:]):
                record[column.name] = None if value is None else column.to_raw(value)
            records.append(record)
        if records:
            yield (b"" if first else b",") + server.encode_items(records)
            first = False
        if budget.stop_if_full(table, "objects", rows, rows[-1][0] if rows else None):
            return


def _deleted(tombstones: QuerySet, object_id: str, budget: _Budget, table: str) -> Iterator[bytes]:
    first = True
    for batch in _batches(tombstones, [object_id], budget):
        rows = budget.take(batch)
        if rows:
            yield (b"" if first else b",") + server.encode_items([row[0] for row in rows])
            first = False
        if budget.stop_if_full(table, "deleted", rows, rows[-1][0] if rows else None):
            return


# --- push ---------------------------------------------------------------------------


def parse_push_body(body: Any, tables: list[Table], id_max_length: int,
                    connection: BaseDatabaseWrapper | None = None) -> list[Batch]:
    """``[(registration, queryset, changes, access)]`` from a push body; 400 naming table,
    list and index.

    ``tables``: ``[(registration, access)]``. ``connection``: the database the
    push goes to; values it would refuse are refused here, as in
    persistence.sync pushes.
    """
    if not isinstance(body, dict):
        raise ProtocolError("The body must be a JSON object of tables: WatermelonDB's changes.")
    total = sum(len(part) for changes in body.values() if isinstance(changes, dict)
                for part in changes.values() if isinstance(part, list))
    if total > sync_settings.MAX_ITEMS:
        raise too_many_items(sync_settings.MAX_ITEMS)
    by_name = {table_name(registration): (registration, access) for registration, access in tables}
    batches, errors = [], []
    for name, table_changes in body.items():
        if name not in by_name:
            raise ProtocolError(f"Unknown table {name!r}; this server syncs {sorted(by_name)}.")
        registration, access = by_name[name]
        items, places, refused = _push_items(name, table_changes, registration)
        errors += refused
        try:
            changes = parse_push(items, registration.codecs, id_max_length, connection,
                                 server_fields=registration.server_fields)
            batches.append((registration, access.queryset, changes, access))
        except ProtocolError as exc:
            errors += [{"table": name, "list": places[e["index"]][0], "index": places[e["index"]][1],
                        "id": e["id"], "field": _column_name(registration, e["field"]),
                        "message": e["message"]} for e in exc.errors]
    if errors:
        raise ProtocolError(PUSH_REFUSED, sorted(errors, key=_error_order)[:50])
    return batches


def _error_order(error: dict[str, Any]) -> tuple[str, int, int]:
    return error["table"], PARTS.index(error["list"]), error["index"]


def _push_items(name: str, table_changes: Any, registration: Registration
                ) -> tuple[list[Any], list[tuple[str, int]], list[dict[str, Any]]]:
    """persistence.sync items for one table's changes, each item's (list, index), and refusals.

    Raw values become wire values here (dates from ms, JSON from strings);
    parse_push then checks them exactly as it checks persistence.sync pushes.
    """
    if not isinstance(table_changes, dict) or set(table_changes) - set(PARTS) or not all(
            isinstance(table_changes.get(part, []), list) for part in PARTS):
        raise ProtocolError(f"{name} must be an object of 'created', 'updated' and 'deleted' lists.")
    by_column = {column.name: column for column in columns_of(registration)}
    items, places, refused = [], [], []
    for part in ("created", "updated"):
        for index, record in enumerate(table_changes.get(part, [])):
            places.append((part, index))
            if not isinstance(record, dict):
                items.append(record)  # parse_push names it
                continue
            item = {ID: record.get(ID)}
            for key, value in record.items():
                column = by_column.get(key)
                if column is None:
                    continue  # _status, _changed, and local-only columns
                try:
                    item[column.codec.name] = None if value is None else column.from_raw(value)
                except WireTypeError as exc:
                    refused.append({"table": name, "list": part, "index": index,
                                    "id": record.get(ID), "field": key, "message": str(exc)})
            items.append(item)
    for index, record_id in enumerate(table_changes.get("deleted", [])):
        places.append(("deleted", index))
        items.append({ID: record_id, REMOVED: True})
    return items, places, refused


def _column_name(registration: Registration, wire_name: str) -> str:
    for column in columns_of(registration):
        if column.codec.name == wire_name:
            return column.name
    return wire_name


def conflict_check(batches: list[Batch], last_pulled_at: int | None, using: str
                   ) -> Callable[[dict[str, int]], None]:
    """``check(stamps)`` for push_many: refuse the push if a pushed record changed meanwhile.

    Runs with every touched model's clock held, so nothing can change between
    this check and the writes.
    """

    def check(stamps: dict[str, int]) -> None:
        conflicts = []
        for registration, queryset, changes, access in batches:
            name = table_name(registration)
            for chunk in chunks(changes):
                changed = queryset.using(using).filter(is_in("pk", chunk),
                                                      last_change__gt=last_pulled_at)
                conflicts += [{"table": name, "id": pk,
                               "message": "changed on the server after last_pulled_at"}
                              for pk in changed.values_list("pk", flat=True)]
                deleted = server.window_tombstones(registration, -1, stamps[registration.label], using)
                if access.scope_attname is not None:
                    # The request's own deletions only (another scope's are the
                    # write rule's 403, like a hidden object), and not the
                    # removal of an object that moved away and came back.
                    deleted, object_id = server.as_model_ids(registration.model, deleted, using)
                    deleted = access.tombstones(deleted).exclude(**{
                        f"{object_id}__in": registration.model._base_manager.db_manager(using)
                        .filter(is_in("pk", chunk)).values("pk")})
                live = [pk for pk in chunk if not changes[pk].removed]
                conflicts += [{"table": name, "id": pk, "message": "deleted on the server"}
                              for pk in deleted.filter(is_in("object_id", live))
                              .values_list("object_id", flat=True)]
        if conflicts:
            raise ProtocolError(
                "Records changed on the server after last_pulled_at; nothing was stored. "
                "Pull, then push again.", conflicts[:50], status_code=409)

    return check


# --- the view -----------------------------------------------------------------------


class WatermelonSyncView(APIView):
    """GET pulls and POST pushes every table the request may see."""

    http_method_names = ["get", "post", "head", "options"]
    permission_classes = []  # each table's own permission classes decide, below
    # The SyncRegistry whose models it serves; set by watermelon_view(). as_view()
    # accepts only arguments the class has as attributes, hence the None.
    registry: SyncRegistry = None  # type: ignore[assignment]

    def get_parsers(self) -> list[Any]:
        from persistence_sync.views import UnreadBodyParser

        return [UnreadBodyParser()]

    def get_exception_handler(self) -> Callable[..., Any]:
        from persistence_sync.views import error_response

        return error_response

    def visible_tables(self, request: Request) -> list[Table]:
        """``[(registration, access)]`` of the tables this request may sync, parents first."""
        tables, denied = [], None
        for registration in self.registry.registrations():
            view = cast("SyncView", registration.view.cls(request=request, args=(), kwargs={},
                                                          format_kwarg=None))
            view.headers = {}
            try:
                view.check_permissions(request)
                view.check_throttles(request)
            except exceptions.APIException as exc:
                denied = denied or exc
                continue
            tables.append((registration, view.get_access()))
        if not tables and denied is not None:
            raise denied
        return tables

    def get_db(self, tables: list[Table]) -> str:
        return router.db_for_read(tables[0][0].model) if tables else "default"

    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse | StreamingHttpResponse:
        pull = parse_pull_request(request.query_params)
        tables = self.visible_tables(request)
        if pull.schema_version is not None:
            tables = [(r, a) for r, a in tables if table_of(r).added_in <= pull.schema_version]
        chunks = pull_chunks(tables, pull, self.get_db(tables))
        try:
            head = []
            for chunk in chunks:  # read the clocks and the first rows before answering
                head.append(chunk)
                if sum(len(c) for c in head) > 65536:
                    break
            else:
                return HttpResponse(b"".join(head), content_type="application/json")
        except DatabaseError as exc:
            raise ProtocolError("The database is unavailable, retry later.", status_code=503) from exc
        return StreamingHttpResponse(_streamed(head, chunks), content_type="application/json")

    def post(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        from persistence_sync.views import SyncView

        last_pulled_at = _int_param(request.query_params, "last_pulled_at", required=True)
        body = parse_document(SyncView.read_body(request))
        pushed = set(body) if isinstance(body, dict) else set()
        known = {table_name(r) for r in self.registry.registrations()}
        if pushed - known:
            raise ProtocolError(f"Unknown table {sorted(pushed - known)[0]!r}; this server syncs "
                                f"{sorted(known)}.")
        tables = [(r, a) for r, a in self.visible_tables(request) if table_name(r) in pushed]
        forbidden = pushed - {table_name(r) for r, _ in tables}
        if forbidden:
            raise ProtocolError(f"You may not push to {sorted(forbidden)}.", status_code=403)
        using = router.db_for_write(tables[0][0].model) if tables else "default"
        batches = parse_push_body(body, tables, max(r.model._meta.pk.max_length or 255
                                                    for r, _ in tables) if tables else 255,
                                  connections[using])
        try:
            server.push_many(batches, using, conflict_check(batches, last_pulled_at, using))
        except IntegrityError as exc:
            raise ProtocolError("The push conflicts with a database constraint; nothing was stored.",
                                status_code=409) from exc
        except DatabaseError as exc:
            raise ProtocolError("The database is unavailable; nothing was stored, retry later.",
                                status_code=503) from exc
        return HttpResponse(b'{"status":"ok"}', content_type="application/json")


def _streamed(head: list[bytes], chunks: Iterable[bytes]) -> Iterator[bytes]:
    yield from head
    yield from chunks


def watermelon_view(registry: SyncRegistry) -> Callable[..., Any]:
    """The view function of the WatermelonDB endpoint for ``registry``'s models."""
    view = WatermelonSyncView.as_view(registry=registry)
    # Like the persistence.sync views, it manages its own transactions.
    return transaction.non_atomic_requests(view)
