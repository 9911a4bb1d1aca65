"""The ``events`` endpoint: the change feed as Server-Sent Events, or as a long-poll.

``GET events`` (``Accept: text/event-stream``; what an ``EventSource`` asks)
answers a stream that stays open::

    retry: 2000

    event: change
    id: 1714000000123
    data: {"endpoints": ["taskUpdates"], "tables": ["tasks"]}

    : ping

One ``change`` event per notice (notices waiting for a slow client are
folded into one), a comment every ``FEED_HEARTBEAT`` seconds. The ``id`` is
the feed's position (:mod:`persistence_sync.feed.hub`): a client whose last
pull of each named endpoint answered a ``now`` at or above it has the change
already. A client reconnecting with ``Last-Event-ID`` (an ``EventSource``
sends it by itself), or connecting with ``?since=``, is told at once if it
missed anything; a client the feed knows nothing of (no ``since``, or one
older than this process remembers) gets one notice naming everything it
may read, so that "pull when told" is all a client needs to do.

``GET events?wait=<seconds>[&since=<since>]`` is the long-poll: JSON, at once
when something visible changed after ``since`` (or nothing is known of the
client), else as soon as something does, or after ``wait`` seconds (at
most ``FEED_MAX_WAIT``) with empty lists::

    {"now": 1714000000123, "since": "1714000000123.5142000000377",
     "endpoints": ["taskUpdates"], "tables": ["tasks"]}

Send ``since`` back as ``since`` next time: it names the feed's snapshot
exactly. A pull's ``now`` (the smallest of a client's endpoints) or a
WatermelonDB ``last_pulled_at`` is a valid first ``since`` too.

Everything else is the sync endpoints' (:class:`~persistence_sync.endpoints.SyncEndpoint`):
authentication (the classes of every registration), each registration's
permission classes (the feed names only the endpoints the request may pull;
``owner=``/``scope=`` models need a signed-in user), throttles (a connection
or a long-poll is one pull), and JSON 4xx errors. Served by WSGI, a
connection holds a thread; :mod:`persistence_sync.feed.asgi` serves
thousands per process.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from persistence_sync.conf import sync_settings
from persistence_sync.endpoints import SyncEndpoint
from persistence_sync.exceptions import ProtocolError
from persistence_sync.feed import subscriptions, watch
from persistence_sync.feed.hub import AsyncSubscriber, Hub, Notice, Snapshot, Subscriber, ThreadSubscriber
from persistence_sync.registry import Registration
from persistence_sync.scoping import user_key

# A position, or a position and a snapshot's sum (the long-poll's since): "1714000000123.5142".
SINCE_RE = re.compile(r"([0-9]{1,19})(?:\.([0-9]{1,30}))?")
WAIT_RE = re.compile(r"[0-9]{1,6}")


def parse_since(value: str | None) -> tuple[int, int | None] | None:
    """``(position, total or None)`` of a ``since`` or ``Last-Event-ID``; None when absent; else 400."""
    if value is None or value == "":
        return None
    match = SINCE_RE.fullmatch(value)
    if match is None:
        raise ProtocolError(f"since must be the since (or now) of an earlier answer, not {value[:40]!r}.")
    return int(match[1]), None if match[2] is None else int(match[2])


def parse_wait(value: str | None) -> float | None:
    """A long-poll's ``wait=``: whole seconds, lowered to ``FEED_MAX_WAIT``; None when absent."""
    if value is None:
        return None
    if not WAIT_RE.fullmatch(value):
        raise ProtocolError(f"wait must be a whole number of seconds, not {value[:40]!r}.")
    return float(min(int(value), sync_settings.FEED_MAX_WAIT))


def sse_event(notice: Notice) -> bytes:
    data = orjson.dumps({"endpoints": sorted(notice.endpoints), "tables": sorted(notice.tables)})
    return b"event: change\nid: %d\ndata: %s\n\n" % (notice.snapshot.position, data)


HEARTBEAT = b": ping\n\n"


class FeedConnection:
    """One subscriber of the hub, as a stream of SSE bytes or one long-poll answer.

    The caller serves it (:func:`sync_events`/:func:`events`, or the long-poll
    methods) and must :meth:`close` it, which leaves the hub.
    """

    def __init__(self, hub: Hub, subscriber: Subscriber) -> None:
        self.hub, self.subscriber = hub, subscriber

    def close(self) -> None:
        self.hub.unsubscribe(self.subscriber)

    def preamble(self) -> bytes:
        return b"retry: %d\n\n" % sync_settings.FEED_RETRY

    def _next(self, pending: bool) -> bytes:
        notice = self.subscriber.take() if pending else None
        return HEARTBEAT if notice is None else sse_event(notice)

    def sync_events(self) -> Iterator[bytes]:
        subscriber = self.subscriber
        assert isinstance(subscriber, ThreadSubscriber)
        try:
            yield self.preamble()
            while True:
                yield self._next(subscriber.wait(sync_settings.FEED_HEARTBEAT))
        finally:
            self.close()

    async def events(self) -> AsyncIterator[bytes]:
        subscriber = self.subscriber
        assert isinstance(subscriber, AsyncSubscriber)
        try:
            yield self.preamble()
            while True:
                yield self._next(await subscriber.next_wake())
        finally:
            self.close()

    def answer(self) -> bytes:
        """The long-poll's JSON: what is pending (maybe nothing), at the current snapshot."""
        current = self.hub.current
        assert current is not None
        notice = self.subscriber.take()
        endpoints, tables = (notice.endpoints, notice.tables) if notice else ((), ())
        return orjson.dumps({"now": current.position, "since": current.token,
                             "endpoints": sorted(endpoints), "tables": sorted(tables)})

    def sync_answer(self, wait: float) -> bytes:
        subscriber = self.subscriber
        assert isinstance(subscriber, ThreadSubscriber)
        try:
            subscriber.wait(wait)
            return self.answer()
        finally:
            self.close()

    async def answer_chunks(self, wait: float) -> AsyncIterator[bytes]:
        subscriber = self.subscriber
        assert isinstance(subscriber, AsyncSubscriber)
        try:
            await subscriber.wait(wait)
            yield self.answer()
        finally:
            self.close()


class FeedResponse(StreamingHttpResponse):
    """A streamed answer of the feed; ``feed`` is its connection (the ASGI handler serves it)."""

    def __init__(self, feed: FeedConnection, content: Any, content_type: str) -> None:
        super().__init__(content, content_type=content_type)
        self.feed, self.chunks = feed, content
        self["Cache-Control"] = "no-cache"
        # nginx buffers answers unless told not to: a notice would wait for the buffer.
        self["X-Accel-Buffering"] = "no"

    def close(self) -> None:
        self.feed.close()
        super().close()


def served_asynchronously(request: Any) -> bool:
    """Whether ``request`` came through an ASGI server (the connection then waits in its loop)."""
    return getattr(request, "scope", None) is not None


class EventsEndpoint(SyncEndpoint):
    """``GET events``: notices of the changes the request may see, for every registration."""

    http_method_names = ["get", "options"]
    partial_permissions = True  # a registration the request may not pull is left out
    endpoint_key = "events"

    def get_registrations(self) -> list[Registration]:
        return self.registry.registrations()

    def get_authenticators(self) -> list[Any]:
        """The authentication classes of every registration (the project's default for most)."""
        classes: list[type] = []
        chosen = [reg.authentication_classes for reg in self.get_registrations()] or [None]
        for registration_classes in chosen:
            for authentication in (self.authentication_classes if registration_classes is None
                                   else registration_classes):
                if authentication not in classes:
                    classes.append(authentication)
        return [authentication() for authentication in classes]

    def perform_content_negotiation(self, request: Any, force: bool = False) -> Any:
        # An EventSource asks for text/event-stream, which no DRF renderer offers:
        # the endpoint writes its answers itself and refuses nobody for Accept.
        return super().perform_content_negotiation(request, force=True)

    def check_permissions(self, request: Any) -> None:
        super().check_permissions(request)
        # A registration's endpoint would not have authenticated the request by a
        # class it does not list: the feed does not name it either.
        used = type(request.successful_authenticator)
        if request.successful_authenticator is not None:
            self.permitted = [reg for reg in self.permitted
                              if reg.authentication_classes is None or used in reg.authentication_classes]
            if not self.permitted:
                self.permission_denied(request, message="No synced model accepts this authentication.")

    def get(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        since = parse_since(request.query_params.get("since"))
        wait = parse_wait(request.query_params.get("wait"))
        if wait is None and request.headers.get("Last-Event-ID") is not None:
            # An EventSource reconnecting: the URL still holds the since= it first
            # connected with; the id it heard last is newer.
            try:
                since = parse_since(request.headers["Last-Event-ID"])
            except ProtocolError:
                since = None  # not one of ours: the client gets a resync hint
        feed = self.subscribe(request, since)
        if wait is None:
            if served_asynchronously(request):
                return FeedResponse(feed, feed.events(), "text/event-stream")
            return FeedResponse(feed, feed.sync_events(), "text/event-stream")
        if served_asynchronously(request):
            return FeedResponse(feed, feed.answer_chunks(wait), "application/json")
        return HttpResponse(feed.sync_answer(wait), content_type="application/json")

    def subscribe(self, request: Any, since: tuple[int, int | None] | None) -> FeedConnection:
        """Join the hub; a notice waits at once if the client missed anything since ``since``."""
        using = self.get_db()
        hub = watch.hub_for(using)
        subscriber_class = AsyncSubscriber if served_asynchronously(request) else ThreadSubscriber
        subscriber = subscriber_class(user_key(request),
                                      subscriptions.interests(self.permitted, request), request)
        current = hub.subscribe(subscriber)
        feed = FeedConnection(hub, subscriber)
        try:
            baseline = None if since is None else hub.history.baseline(*since)
            endpoints, tables = subscriptions.missed(subscriber, baseline, current, using)
        except BaseException:
            feed.close()
            raise
        if endpoints:
            subscriber.deliver(endpoints, tables, current)
        return feed


__all__ = ["EventsEndpoint", "FeedConnection", "FeedResponse", "Snapshot"]
