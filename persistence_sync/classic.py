"""persistence.sync's classic protocol: one endpoint per model, its wire shapes only.

``GET <uri>?since=<ms>`` answers ``{"now": <ms>, "updates": [...]}``;
``POST <uri>`` with a JSON array answers ``{"status": "ok", "now": <ms>}``
(``docs/protocol.md``). The extensions: paging (``limit``, ``now``,
``after``; ``"more"`` in the answer, and ``"total"`` and ``"user"``), idempotent pushes (push id headers)
and the tombstone horizon's ``410`` with ``"resync": true``.

Everything else, from authentication to the clock, is the core's
(:mod:`persistence_sync.endpoints`, :mod:`persistence_sync.pulls`,
:mod:`persistence_sync.pushes`). The endpoint classes are generated per
registration by :func:`endpoint_class` and named after their model
(``TaskSyncView``), so a traceback says which model it is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import orjson
from django.db import connections

from persistence_sync.endpoints import SyncEndpoint, json_response, parse_limit, parse_stamp
from persistence_sync.exceptions import HistoryPruned, ProtocolError
from persistence_sync.limits import parse_body
from persistence_sync.pulls import Pull, Source, encode_items
from persistence_sync.pushes import Batch
from persistence_sync.registry import Registration, SyncRegistry
from persistence_sync.serializers import ID, LAST_CHANGE, parse_push


@dataclass(frozen=True)
class Page:
    """What a classic pull asks for: ``since``, and the paging extension's ``limit``, ``now``, ``after``.

    A classic pull answers everything changed in ``(since, now]``, with ``now``
    the clock's committed value. A paged pull answers at most ``limit``
    objects of that window in ascending id order; its next pages name the
    same ``now`` and the last id they hold (``after``), so every page of one
    sync reads the same window.
    """

    since: int = 0
    limit: int | None = None
    now: int | None = None
    after: str | None = None

    @classmethod
    def parse(cls, params, id_max_length: int) -> Page:
        since = parse_stamp("since", params.get("since")) or 0  # no since: everything
        limit = parse_limit(params.get("limit"))
        now, after = parse_stamp("now", params.get("now")), params.get("after")
        if limit is None:
            if now is not None or after is not None:
                raise ProtocolError("now= and after= continue a paged pull: send limit= too.")
            return cls(since)
        if after is not None:
            if now is None:
                raise ProtocolError("after= needs the now= of the first page of this sync.")
            if not after or len(after) > id_max_length or "\x00" in after:
                raise ProtocolError("after must be the id of the last object of the previous page.")
        if now is not None and now < since:
            raise ProtocolError(f"now ({now}) must not be before since ({since}).")
        return cls(since, limit, now, after)


def _to_wire(codec):
    """A codec's conversion of a pulled value, None when the value travels as it is."""
    return codec.to_wire if codec.converts_to_wire else None


class ClassicEndpoint(SyncEndpoint):
    """Pull (GET) and push (POST) of one registered model."""

    # Set on the generated subclass (endpoint_class); the base class serves no model.
    registration: Registration = None  # type: ignore[assignment]

    @property
    def endpoint_key(self) -> str:  # type: ignore[override]
        return self.registration.label

    def get_registrations(self) -> list[Registration]:
        return [self.registration]

    def id_max_length(self) -> int:
        return self.registration.model._meta.pk.max_length or 255

    def get(self, request, *args, **kwargs):
        page = Page.parse(request.query_params, self.id_max_length())
        source = Source(self.registration, self.access(self.registration), page.since)
        pull = Pull([source], self.get_db(), limit=page.limit, now=page.now)
        user = request.user.get_username() if request.user.is_authenticated else None
        return self.pull_answer(pull, self.answer_chunks(pull, page, user))

    def answer_chunks(self, pull: Pull, page: Page, user: str | None = None):
        """``{"now": ..., "updates": [...]}`` (and ``"more"`` when paged), as it is read.

        A paged answer also names the signed-in ``user`` (``"user"``), and a
        first page (no ``after``) the number of items of the whole window
        (``"total"``): docs/protocol.md, "Extensions".
        """
        keys = (ID, *(codec.name for codec in self.registration.codecs), LAST_CHANGE)
        with pull.snapshot() as now:
            source = pull.sources[0]
            if source.pruned:
                raise HistoryPruned(source.since, source.horizon)
            head = b'{"now":%d' % now
            if page.limit is not None:
                if page.after is None:
                    head += b',"total":%d' % pull.count(source)
                if user is not None:
                    head += b',"user":' + orjson.dumps(user)
            yield head + b',"updates":['
            separator = b""
            for items in pull.merged(source, keys, page.after, _to_wire):
                yield separator + encode_items(items)
                separator = b","
            if page.limit is None:
                yield b"]}"
            else:
                yield b'],"more":%s}' % (b"true" if pull.budget.full else b"false")

    def post(self, request, *args, **kwargs):
        receipt = self.receipt(request)
        reg = self.registration
        items = parse_body(self.read_body(request))
        changes = parse_push(items, reg.codecs, self.id_max_length(), connections[receipt.using],
                             server_fields=reg.server_fields)
        del items  # the body's text is no longer needed while the push is stored
        stamps = self.store([Batch(reg, self.access(reg), changes)], receipt)
        if stamps is None:  # a replay of a push this server never stored
            return json_response({"status": "abandoned"})
        return json_response({"status": "ok", "now": stamps[reg.label]})


def endpoint_class(registration: Registration, registry: SyncRegistry) -> type[ClassicEndpoint]:
    """A ``<Model>SyncView`` subclass of :class:`ClassicEndpoint` serving ``registration``."""
    attrs = {"registration": registration, "registry": registry, "__module__": __name__}
    if registration.authentication_classes is not None:
        attrs["authentication_classes"] = list(registration.authentication_classes)
    name = f"{registration.model.__name__}SyncView"
    return cast("type[ClassicEndpoint]", type(name, (ClassicEndpoint,), attrs))
