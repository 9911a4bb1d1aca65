"""One request pipeline for every protocol: what every sync request goes through, once.

A protocol face (:mod:`persistence_sync.classic`, :mod:`persistence_sync.watermelon`)
subclasses :class:`SyncEndpoint` and writes only its wire shapes: how a
request names what it wants, and how the answer looks. Everything else is
done here, the same way for every protocol:

* authentication, and each registration's permission classes (a model
  registered with ``owner=``/``scope=`` refuses anonymous requests);
* throttles: one token per request, however many models it touches; a
  throttled request is a 429 with ``Retry-After``;
* the body: ``MAX_BODY_SIZE`` checked before it is read, JSON only, then
  parsed within ``MAX_ITEMS``/``MAX_VALUES``/``MAX_DEPTH`` by the face with
  :mod:`persistence_sync.limits`;
* query parameters parsed strictly (:func:`parse_stamp`, :func:`parse_limit`):
  anything malformed is a 400, never a 500;
* the signals (:mod:`persistence_sync.signals`): ``pre_push`` may refuse a
  push, ``post_push`` once it committed, ``post_pull`` once an answer ended;
* database errors: a 503 with ``Retry-After`` from the first step of a
  request (authentication reads the database too) to the last, a 409 for a
  constraint, a 400 for a value that does not fit; nothing half-written;
* the clocks' ``LOCK_TIMEOUT`` on every wait (:mod:`persistence_sync.pulls`,
  :mod:`persistence_sync.pushes`);
* idempotent pushes (:mod:`persistence_sync.receipts`): push ids, replays and
  unanswered pushes, per user and endpoint;
* streaming: an answer's first rows are read before it starts (a database
  that is down still gets a 503), the rest as the client reads it.

Every refusal is JSON: ``{"status": "error", "error": ..., "errors": [...]}``.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

from django.db import DatabaseError, DataError, IntegrityError, connections, router, transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from rest_framework import exceptions
from rest_framework.parsers import BaseParser, DataAndFiles
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle
from rest_framework.views import APIView, set_rollback

from persistence_sync import pulls, pushes, signals
from persistence_sync.conf import sync_settings
from persistence_sync.db import is_busy
from persistence_sync.exceptions import ProtocolError
from persistence_sync.limits import body_too_large
from persistence_sync.receipts import Receipt
from persistence_sync.registry import Registration, SyncRegistry, permission_classes_of
from persistence_sync.scoping import RequestScopes, user_key
from persistence_sync.serializers import PUSH_ID_HEADER, PUSH_REPLAY_HEADER, UNANSWERED_HEADER

# The database's own words about a refused or failed request: they may quote
# SQL, constraint names and row contents, so they go to the log, never on the wire.
logger = logging.getLogger("persistence_sync.server")

PUSH_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Largest value a BIGINT _lastChange column holds.
MAX_STAMP = 2**63 - 1
DIGITS_RE = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() takes "²"
# What of an answer is read before it is sent, at most: its clock and first rows.
HEAD_SIZE = 64 * 1024
# Unanswered push ids one push may name.
MAX_UNANSWERED = 20


def parse_stamp(name: str, value: str | None) -> int | None:
    """A query parameter holding a stamp (ms): a non-negative integer, or None when absent."""
    if value is None or value == "":
        return None
    if not DIGITS_RE.fullmatch(value) or int(value) > MAX_STAMP:
        raise ProtocolError(f"{name} must be a non-negative integer (milliseconds), not {value[:40]!r}.")
    return int(value)


def parse_limit(value: str | None) -> int | None:
    """A paged pull's ``limit``: a positive integer, lowered to ``MAX_PAGE_SIZE``; None when absent."""
    if value is None or value == "":
        return None
    if not DIGITS_RE.fullmatch(value) or int(value) < 1:
        raise ProtocolError(f"limit must be a positive integer, not {value[:40]!r}.")
    return min(int(value), sync_settings.MAX_PAGE_SIZE)


def json_response(body, status=200) -> HttpResponse:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    try:
        content = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it rather than fail
        content = json.dumps(body, separators=(",", ":")).encode("ascii")
    return HttpResponse(content, status=status, content_type="application/json")


def database_unavailable(exc: DatabaseError, using: str, push: bool = False) -> ProtocolError:
    """The 503 of a database error (transient ones were retried already).

    ``push``: the answer says that nothing was stored (the push's one
    transaction was rolled back).
    """
    busy = is_busy(exc, connections[using])
    if push:
        message = ("The model is busy with another push; nothing was stored, retry later." if busy
                   else "The database is unavailable; nothing was stored, retry later.")
    else:
        message = ("The model is busy with another push, retry later." if busy
                   else "The database is unavailable, retry later.")
    return ProtocolError(message, status_code=503, retry_after=1 if busy else 5)


def error_response(exc, context):
    """DRF exception handler: the protocol's JSON error shape for every refusal.

    A database that cannot be reached anywhere in the request
    (authentication, throttles and permissions read it before the face's
    code runs) is a 503 with Retry-After; nothing was written, since a push
    stores its batch in one transaction. An IntegrityError or DataError
    outside a push (which maps its own) is a bug, for Django to report.
    """
    if isinstance(exc, DatabaseError) and not isinstance(exc, (IntegrityError, DataError)):
        set_rollback()  # as DRF's own handler does, for an ATOMIC_REQUESTS caller's transaction
        view = context.get("view")
        if isinstance(view, SyncEndpoint):
            view.log_database_error("request", exc)
        exc = database_unavailable(exc, view.get_db() if isinstance(view, SyncEndpoint) else "default",
                                   push=getattr(context.get("request"), "method", "") == "POST")
    if isinstance(exc, ProtocolError):
        response = json_response(exc.as_json(), status=exc.status_code)
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.get_full_details())
        response = json_response({"status": "error", "error": str(detail)}, exc.status_code)
        # APIView.handle_exception() sets auth_header on a 401's exception;
        # Throttled (or a project's own exception) carries wait.
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            response["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if wait:
            response["Retry-After"] = str(max(1, round(wait)))
        return response
    return None  # a server error: let Django report it


class SyncRateThrottle(SimpleRateThrottle):
    """``PERSISTENCE_SYNC["THROTTLE_RATES"]``: pulls and pushes per user (or IP), all models.

    Added to every sync endpoint (after DRF's ``DEFAULT_THROTTLE_CLASSES``)
    unless its registrations name their own ``throttle_classes``; does nothing
    while the setting is None. ``{"pull": "600/min", "push": "60/min"}`` keeps
    a runaway client from sinking the server and lets a browser sync freely.
    """

    def get_rate(self):
        return None  # chosen per request in allow_request

    def allow_request(self, request, view):
        rates = sync_settings.THROTTLE_RATES or {}
        self.scope = "push" if request.method == "POST" else "pull"
        self.rate = rates.get(self.scope)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        ident = request.user.pk if request.user and request.user.is_authenticated else None
        return self.cache_format % {
            "scope": f"persistence_sync_{self.scope}",
            "ident": ident if ident is not None else self.get_ident(request),
        }


class UnreadBodyParser(BaseParser):
    """Leaves the body unread, whatever its type, for the face to read itself.

    DRF parses on first access to ``request.data`` / ``request.POST``, which
    SessionAuthentication's CSRF check makes; with no parser that access
    would answer 415 to every logged-in push.
    """

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return DataAndFiles({}, {})


class SyncEndpoint(APIView):
    """The pipeline of every sync request; a face implements ``get()`` and ``post()``.

    :meth:`get_registrations` names the models the endpoint serves;
    :attr:`permitted` holds those the request may use once permissions were
    checked. A face whose request may use only some of them (one endpoint
    for every model) sets :attr:`partial_permissions`.
    """

    http_method_names = ["get", "post", "head", "options"]
    parser_classes = [UnreadBodyParser]  # the face reads and parses the body itself
    #: The registry whose models it serves (set by the router).
    registry: SyncRegistry = None  # type: ignore[assignment]
    #: A request that may use some of the models is served with those.
    partial_permissions = False
    #: What push ids are scoped to, besides the user (see receipts).
    endpoint_key = ""

    def get_registrations(self) -> list[Registration]:
        raise NotImplementedError

    def get_exception_handler(self):
        return error_response

    def log_database_error(self, action: str, exc: DatabaseError) -> None:
        """The database's own words go to the log (``persistence_sync.server``), never on the wire."""
        models = ", ".join(reg.label for reg in self.permitted or self.get_registrations())
        # request.user may be what failed (authentication reads the database).
        user = getattr(getattr(self, "request", None), "_user", None)
        who = user.get_username() if user is not None and user.is_authenticated else "anonymous"
        logger.warning("%s of %s by %s failed: %s: %s", action, models or "nothing", who,
                       type(exc).__name__, exc, exc_info=exc)

    def initial(self, request, *args, **kwargs):
        self.scopes = RequestScopes(request, self.registry)
        self.permitted: list[Registration] = []
        super().initial(request, *args, **kwargs)

    # --- permissions and throttles ----------------------------------------------------

    def check_permissions(self, request):
        """Each registration's permission classes; refuse unless the request may use enough."""
        denied = None
        for registration in self.get_registrations():
            try:
                self._for(registration).check_registration(request)
            except exceptions.APIException as exc:
                denied = denied or exc
                continue
            self.permitted.append(registration)
        if denied is not None and (not self.partial_permissions or not self.permitted):
            raise denied

    def _for(self, registration: Registration) -> SyncEndpoint:
        """This endpoint as the view of one registration, for its permission classes."""
        view = copy.copy(self)
        view.registration = registration  # type: ignore[attr-defined]
        view.permission_classes = list(permission_classes_of(registration))
        return view

    def check_registration(self, request):
        super().check_permissions(request)
        # Owner and scope values come from the user: an anonymous request has
        # none, and gets 401/403 rather than an empty answer (or a 500).
        reg = self.registration  # type: ignore[attr-defined]
        if (reg.owner or reg.scope) and not request.user.is_authenticated:
            self.permission_denied(
                request, message=f"Log in to sync {reg.model._meta.verbose_name_plural}.")

    def get_queryset(self):
        """The registration's objects this request sees (for permission classes that ask)."""
        return self.access(self.registration).queryset  # type: ignore[attr-defined]

    def get_throttles(self) -> list[BaseThrottle]:
        """One instance of each throttle class of the registrations: one token per request."""
        # api_settings imports the dotted paths: classes, not the strings the stubs declare.
        defaults: list[type[BaseThrottle]] = [
            *api_settings.DEFAULT_THROTTLE_CLASSES,  # type: ignore[list-item]
            SyncRateThrottle,
        ]
        classes: list[type[BaseThrottle]] = []
        for registration in self.permitted or self.get_registrations():
            chosen = registration.throttle_classes
            for throttle in (defaults if chosen is None else chosen):
                if throttle not in classes:
                    classes.append(throttle)
        return [throttle() for throttle in classes]

    # --- what the request may see ----------------------------------------------------

    def access(self, registration: Registration):
        return self.scopes.access(registration)

    def get_db(self, for_write: bool = False) -> str:
        registrations = self.permitted or self.get_registrations()
        if not registrations:
            return "default"
        route = router.db_for_write if for_write else router.db_for_read
        return route(registrations[0].model)

    # --- bodies -------------------------------------------------------------------------

    def read_body(self, request) -> bytes:
        """The raw body of a push, within ``MAX_BODY_SIZE``; 415 unless it is JSON."""
        content_type = request.content_type.split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ProtocolError(
                f"A push must be sent as application/json, not {content_type or 'no type'!r}.",
                status_code=415,
            )
        limit = sync_settings.MAX_BODY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            raise body_too_large(limit)  # before reading a byte of it
        # Read the raw stream: Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) is
        # meant for forms; pushes have their own, larger limit. The read is
        # capped, whatever Content-Length claimed (or chunked bodies lack).
        body = request._request.read(limit + 1)
        if len(body) > limit:
            raise body_too_large(limit)
        return body

    # --- pulls --------------------------------------------------------------------------

    def pull_answer(self, pull: pulls.Pull, chunks: Iterator[bytes]) -> HttpResponseBase:
        """The answer of ``pull``, whose ``chunks`` the face writes; ``post_pull`` at its end.

        The grants and clocks are written, and the snapshot's clock and first
        rows read, before answering: a database that is down, or a clock
        held past ``LOCK_TIMEOUT``, still gets a 503, not a cut-off 200. An
        answer is streamed once it passes ``HEAD_SIZE`` or one of its queries
        needs a second batch of rows; a smaller one is sent whole, its
        snapshot closed before the client reads a byte.
        """
        def answer():
            pull.prepare()
            yield from chunks
            for source in pull.sources:
                signals.send_robust(
                    signals.post_pull, sender=source.registration.model, request=self.request,
                    registration=source.registration, since=source.since, now=pull.now,
                    count=source.count)

        body = answer()
        head: list[bytes] = []
        try:
            for chunk in body:
                head.append(chunk)
                if pull.large or sum(map(len, head)) > HEAD_SIZE:
                    break
            else:
                return HttpResponse(b"".join(head), content_type="application/json")
        except DatabaseError as exc:
            self.log_database_error("pull", exc)
            raise database_unavailable(exc, pull.using) from exc
        return StreamingHttpResponse(_streamed(head, body), content_type="application/json")

    # --- pushes -------------------------------------------------------------------------

    def receipt(self, request, remember: bool = False) -> Receipt:
        """The push's idempotency headers (docs/protocol.md, "Idempotent pushes")."""
        push_id = request.headers.get(PUSH_ID_HEADER)
        replay = request.headers.get(PUSH_REPLAY_HEADER)
        unanswered = [item.strip() for item in
                      (request.headers.get(UNANSWERED_HEADER) or "").split(",") if item.strip()]
        for header, given in ((PUSH_REPLAY_HEADER, replay), (UNANSWERED_HEADER, unanswered)):
            if push_id is None and given:
                raise ProtocolError(f"{header} needs {PUSH_ID_HEADER}.")
        for header, value in [(PUSH_ID_HEADER, push_id), *((UNANSWERED_HEADER, v) for v in unanswered)]:
            if value is not None and not PUSH_ID_RE.fullmatch(value):
                raise ProtocolError(f"{header} must be 1 to 64 letters, digits, '-' or '_' "
                                    f"(comma-separated), not {value[:80]!r}.")
        if replay not in (None, "1"):
            raise ProtocolError(f"{PUSH_REPLAY_HEADER} must be 1 when sent, not {replay[:80]!r}.")
        if len(unanswered) > MAX_UNANSWERED:
            raise ProtocolError(f"{UNANSWERED_HEADER} names at most {MAX_UNANSWERED} push ids.")
        return Receipt(self.endpoint_key, user_key(request) or "", push_id, self.get_db(True),
                       replay=replay == "1", unanswered=tuple(unanswered), remember=remember)

    def store(self, batches: list[pushes.Batch], receipt: Receipt, check=None) -> dict[str, int] | None:
        """Store the push: ``pre_push`` first, ``post_push`` once committed; errors as 4xx/503.

        Returns ``{label: stamp}``, or None for a replay of a push never stored.
        """
        for batch in batches:
            if batch.changes:
                signals.pre_push.send(sender=batch.registration.model, request=self.request,
                                      registration=batch.registration, changes=batch.changes)
        using = receipt.using
        try:
            stamps = pushes.push(batches, using, receipt, check)
        except DataError as exc:
            self.log_database_error("push", exc)
            raise ProtocolError("A value does not fit its database column; nothing was stored.") from exc
        except IntegrityError as exc:
            self.log_database_error("push", exc)
            raise ProtocolError(
                "The push conflicts with a database constraint (a unique value, or a "
                "related object removed meanwhile); nothing was stored.", status_code=409,
            ) from exc
        except DatabaseError as exc:
            # Transient errors were retried; what remains (the database
            # restarting, a writer holding a clock past LOCK_TIMEOUT) leaves
            # nothing half-written.
            self.log_database_error("push", exc)
            raise database_unavailable(exc, using, push=True) from exc
        if stamps is not None:
            for batch in batches:
                if batch.changes:
                    # The push committed already; inside an outer transaction
                    # (a test, a caller's atomic block) the signal waits for it.
                    transaction.on_commit(partial(
                        signals.send_robust, signals.post_push, sender=batch.registration.model,
                        request=self.request, registration=batch.registration,
                        changes=batch.changes, stamp=stamps[batch.label]), using=using)
        return stamps


def _streamed(head: list[bytes], chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The answer's chunks; closing it (a client gone) ends the pull's snapshot."""
    yield from head
    yield from chunks


def as_view(endpoint: type[SyncEndpoint], **initkwargs: Any):
    """The view function of ``endpoint``: it manages its own transactions.

    A snapshot for pulls, retried transactions for pushes: ATOMIC_REQUESTS
    must not wrap it, on any database.
    """
    view = endpoint.as_view(**initkwargs)
    for alias in connections:
        view = transaction.non_atomic_requests(using=alias)(view)
    return view


__all__ = ["SyncEndpoint", "as_view", "error_response", "parse_limit", "parse_stamp"]
