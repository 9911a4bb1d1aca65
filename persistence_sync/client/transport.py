"""HTTP for the sync client: a pull, a push, retries for transient failures.

Standard library only (``urllib``). Connection errors, timeouts and 5xx
answers are transient and retried with jittered exponential backoff; so is
an answer cut short or not JSON to a request that is safe to send again (a
pull, a push with its push id). 4xx, TLS errors, answers of the wrong shape
and a bad answer to a push without a push id are not::

    transport = HttpTransport.from_settings()
    answer = transport.pull("https://central.example.com/taskChanges", since=0)
"""

import base64
import http.client
import ipaddress
import json
import random
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings

import orjson

from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import InsecureTransportWarning, SyncClientError, TransportError
from persistence_sync.serializers import ID, PUSH_ID_HEADER, PUSH_REPLAY_HEADER, is_integral

# Bytes of an error answer read, to quote the start of it.
ERROR_BODY_READ = 64 * 1024

# --- HTTP ---------------------------------------------------------------------------


def _snippet(raw, limit=200):
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _loads(raw):
    """``json.loads``, by orjson (several times faster on a large page) where it can.

    orjson refuses a few things the standard library reads (NaN, integers
    beyond 64 bits): those answers are read as before.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _content_length(response):
    """The Content-Length the answer announced, or None (chunked, absent or unreadable)."""
    try:
        length = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def is_repeatable(method, headers):
    """Whether sending the request again cannot store anything twice.

    A pull reads only; a push with ``X-Sync-Push-Id`` is stored at most once
    (docs/protocol.md, "Idempotent pushes"). A push without one may have been
    stored although its answer was lost, and would then be stored again.
    """
    return method == "GET" or bool((headers or {}).get(PUSH_ID_HEADER))


def _bad_answer(problem, repeatable):
    """A TransportError for an answer that arrived damaged: transient when repeatable."""
    if not repeatable:
        problem += (f"; not sent again: a push without {PUSH_ID_HEADER} may have been stored "
                    "already")
    return TransportError(problem, transient=repeatable)


def _json_or_none(raw):
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None


# What an error status means for a sync client, when the answer says nothing readable.
STATUS_MEANINGS = {
    400: "the remote refused the request as malformed",
    401: "the remote wants credentials: put user:password@ in the server URL, or a token "
         "in the environment variable PERSISTENCE_SYNC['TOKEN_ENV'] names",
    403: "the remote refuses this account: check the credentials and the account's permissions",
    404: "no sync endpoint at this URL: check the server URL, and that the remote syncs this "
         "model at this URI",
    405: "this URL does not take this request: it is not a sync endpoint",
    413: "the request is too large for the remote, or for a proxy in front of it",
    429: "the remote throttles this account: run again later",
    502: "a proxy in front of the remote got no answer from it",
    503: "the remote is unavailable for now",
    504: "a proxy in front of the remote timed out waiting for it",
}


def describe_error_answer(status, body, answer):
    """What an error answer says, for a person: the protocol's JSON error text, or a short
    plain-text answer, quoted; a web page (a proxy's or a framework's 404) never is, the
    status's meaning stands for it."""
    if isinstance(answer, dict):
        text = answer.get("error") or answer.get("detail")
        if isinstance(text, str) and text:
            return _snippet(text)
        return _snippet(json.dumps(answer))
    text = body.decode("utf-8", "replace").strip() if isinstance(body, bytes) else ""
    meaning = STATUS_MEANINGS.get(status) or (
        "the remote failed (a server error: its logs say why)" if status >= 500
        else "the remote refused the request")
    if text and not text.startswith("<") and "\n" not in text[:200] and len(text) <= 200:
        return f"{meaning} ({_snippet(text)})"
    return meaning


def redact(url):
    """``url`` without the ``user:password@`` it may carry: what may be shown or logged.

    A password may hold an unescaped ``/``, ``?`` or ``#``, which URL parsing
    takes for the end of the host (``http://ann:pa/ss@host/`` has the "host"
    ``ann:pa``, a bad port): then everything up to the last ``@`` goes.
    """
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        netloc = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    scheme, separator, rest = url.partition("://")
    if separator and "@" in rest and not _has_valid_port(parts):
        return f"{scheme}://{rest.rpartition('@')[2]}"
    return url


def _has_valid_port(parts) -> bool:
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    return True


def check_url(url):
    """Raise :class:`SyncClientError` (quoting no credentials) unless ``url`` is usable."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SyncClientError(f"{redact(url)!r} is not an http:// or https:// URL")
    if not _has_valid_port(parts):
        raise SyncClientError(
            f"{redact(url)!r} has a bad port (a password holding '/', '?', '#' or '@' must be "
            "percent-encoded)")


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin(url):
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class CarefulRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects of pulls only, and never hands credentials to another origin.

    A redirected POST would come back as a GET (urllib's, and browsers', way
    with 301/302/303): the push would be lost while a pull's answer looked
    like a success. So a push that is redirected fails and names the new URL.
    A pull follows, without any credential when the redirect leads to another
    origin or from https to http: ``Authorization``, ``Cookie``,
    ``Proxy-Authorization`` and every header of ``PERSISTENCE_SYNC["HEADERS"]``
    (an ``X-Api-Key``, say), given as ``credentials``.
    """

    def __init__(self, credentials=()):
        super().__init__()
        self.credentials = {"Authorization", "Cookie", "Proxy-Authorization", *credentials}

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if req.get_method() != "GET":
            raise TransportError(
                f"the push was redirected (HTTP {code}) to {redact(newurl)}: "
                "use that address as the server URL"
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(new.full_url) != origin(req.full_url):
            # urllib keeps header names capitalized (str.capitalize()).
            for name in {name.capitalize() for name in self.credentials}:
                new.headers.pop(name, None)
                new.unredirected_hdrs.pop(name, None)
        return new


def _basic_auth(url, headers):
    """``http://user:password@host/`` means HTTP Basic: the header, and the URL without them."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url
    credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    headers.setdefault("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_pull_answer(answer, size=0):
    """A pull's answer as ``{"now", "updates", "more", "size", "total", "user"}``; TransportError
    if malformed. ``total`` (the first page's count of its window) and ``user`` (the signed-in
    user's name) are None when the remote does not send them (docs/protocol.md, "Extensions")."""
    if not isinstance(answer, dict) or not is_integral(answer.get("now")):
        raise TransportError('the pull answer is not {"now": <int>, "updates": [...]}')
    updates = answer.get("updates")
    if not isinstance(updates, list):
        raise TransportError('the pull answer has no "updates" array')
    for index, item in enumerate(updates):
        if not isinstance(item, dict) or not isinstance(item.get(ID), str) or not item[ID]:
            raise TransportError(f"pulled update #{index} is not an object with a string id")
    more = answer.get("more", False)
    if not isinstance(more, bool):
        raise TransportError('the pull answer\'s "more" is not true or false')
    if more and not updates:
        raise TransportError('the pull answer says "more" but holds no object to continue after')
    total, user = answer.get("total"), answer.get("user")
    if total is not None and not (is_integral(total) and total >= 0):
        raise TransportError('the pull answer\'s "total" is not a count')
    if user is not None and not (isinstance(user, str) and user):
        raise TransportError('the pull answer\'s "user" is not a name')
    return {"now": int(answer["now"]), "updates": updates, "more": more, "size": size,
            "total": None if total is None else int(total), "user": user}


class HttpTransport:
    """Pull and push over HTTP with the standard library (urllib).

    Transient failures (connection refused or reset, timeouts, 5xx, and an
    answer cut short or not JSON to a request :func:`is_repeatable`) are
    retried ``retries`` times in all with jittered exponential backoff; 4xx,
    TLS errors and answers of the wrong shape are not. Every failure raises
    :class:`TransportError`.
    """

    user_agent = "persistence-sync-client"

    # Sync.pull_model may ask for the next page from another thread while
    # it writes this one: one request at a time, and nothing but HTTP.
    prefetch = True

    def __init__(self, headers=None, timeout=30, retries=3, backoff=0.5, ssl_context=None,
                 sleep=time.sleep, max_response_size=256 * 1024 * 1024):
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.ssl_context = ssl_context
        self.sleep = sleep
        self.max_response_size = max_response_size
        self.warned: set = set()

    def opener(self):
        return urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.ssl_context),
            CarefulRedirectHandler(credentials=self.headers))

    def warn_if_plain_http(self, url):
        """Warn once per host about plain http to a host that is not this machine."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or is_loopback(parts.hostname) or parts.hostname in self.warned:
            return
        self.warned.add(parts.hostname)
        warnings.warn(
            f"syncing with {parts.hostname} over plain http: its data and any credentials "
            "travel unencrypted; use an https:// URL.", InsecureTransportWarning, stacklevel=4,
        )

    @classmethod
    def from_settings(cls, **overrides):
        """A transport configured by ``PERSISTENCE_SYNC`` (HEADERS, TOKEN_ENV, TIMEOUT, ...)."""
        import os

        headers = dict(sync_settings.HEADERS or {})
        token = os.environ.get(sync_settings.TOKEN_ENV or "") if sync_settings.TOKEN_ENV else None
        if token and not any(name.lower() == "authorization" for name in headers):
            headers["Authorization"] = f"{sync_settings.TOKEN_KEYWORD} {token}"
        options = dict(headers=headers, timeout=sync_settings.TIMEOUT,
                       retries=sync_settings.RETRIES, backoff=sync_settings.RETRY_BACKOFF,
                       max_response_size=sync_settings.MAX_RESPONSE_SIZE)
        options.update(overrides)
        return cls(**options)

    def pull(self, url, since, limit=None, now=None, after=None):
        """``GET url?since=...``: the answer ``{"now", "updates", "more", "size"}``, checked.

        ``limit`` asks for a page (docs/protocol.md, "Extensions"); ``now`` and
        ``after`` continue a paged pull. ``more`` says that more pages follow
        (False from a classic remote, which ignores ``limit`` and answers
        everything); ``size`` is the answer's length in bytes.
        """
        query = {"since": int(since)}
        if limit is not None:
            query["limit"] = int(limit)
            if after is not None:
                query.update(now=int(now), after=after)
        separator = "&" if urllib.parse.urlsplit(url).query else "?"
        answer, size = self.request("GET", f"{url}{separator}{urllib.parse.urlencode(query)}",
                                    sized=True)
        return check_pull_answer(answer, size)

    def push(self, url, items, push_id=None, replay=False):
        """``POST url`` with the JSON array ``items``; returns the answer's ``now``.

        ``push_id`` makes the push idempotent (``docs/protocol.md``, "Idempotent
        pushes"): a retry after a lost answer gets the first answer, and the
        batch is stored once. ``replay=True`` asks for that answer only: it
        returns None when the server never stored the push (and now never
        will). A server without the extension ignores both and stores the
        batch again.
        """
        headers = {}
        if push_id is not None:
            headers[PUSH_ID_HEADER] = push_id
            if replay:
                headers[PUSH_REPLAY_HEADER] = "1"
        answer = self.request("POST", url, items, headers)
        if replay and isinstance(answer, dict) and answer.get("status") == "abandoned":
            return None
        if (not isinstance(answer, dict) or not is_integral(answer.get("now"))
                or answer.get("status", "ok") != "ok"):
            raise TransportError(f'the push answer is not {{"status": "ok", "now": <int>}}: '
                                 f"{_snippet(json.dumps(answer))}")
        return int(answer["now"])

    def request(self, method, url, payload=None, headers=None, sized=False, timeout=None):
        """One JSON request, retried after transient failures; returns the parsed body.

        ``sized``: returns ``(body, its length in bytes)``. ``timeout``: seconds
        for this request instead of the transport's (a long-poll that waits
        on purpose, :mod:`~persistence_sync.client.follow`).
        """
        self.warn_if_plain_http(url)
        for attempt in range(self.retries):
            try:
                answer, size = self.request_once(method, url, payload, headers, timeout)
                return (answer, size) if sized else answer
            except TransportError as exc:
                if not exc.transient or attempt == self.retries - 1:
                    if attempt:
                        exc.args = (f"{exc.args[0]} (after {attempt + 1} attempts)",)
                    raise
            self.sleep(self.backoff * 2**attempt * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")  # pragma: no cover

    def request_once(self, method, url, payload=None, headers=None, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        headers = {"Accept": "application/json", "User-Agent": self.user_agent, **self.headers,
                   **(headers or {})}
        url = _basic_auth(url, headers)
        data = None
        if payload is not None:
            data = json.dumps(payload, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        repeatable = is_repeatable(method, headers)
        try:
            with self.opener().open(request, timeout=timeout) as response:
                raw = self.read_answer(response, repeatable)
        except urllib.error.HTTPError as exc:
            body = _error_body(exc)
            answer = _json_or_none(body)
            raise TransportError(
                f"HTTP {exc.code} {exc.reason}: {describe_error_answer(exc.code, body, answer)}",
                transient=exc.code >= 500, status=exc.code, answer=answer,
            ) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):
                raise TransportError(f"TLS error: {exc.reason}") from None
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise TransportError(f"timed out after {timeout}s", transient=True) from None
            raise TransportError(f"cannot connect: {exc.reason}", transient=True) from None
        except ssl.SSLError as exc:
            raise TransportError(f"TLS error: {exc}") from None
        except TimeoutError:
            raise TransportError(f"timed out after {timeout}s", transient=True) from None
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise TransportError(f"connection failed: {exc}", transient=True) from None
        if len(raw) > self.max_response_size:
            raise TransportError(
                f"the answer is larger than {self.max_response_size} bytes "
                "(PERSISTENCE_SYNC['MAX_RESPONSE_SIZE']); raise it if the remote is trusted"
            )
        try:
            return _loads(raw), len(raw)
        except (UnicodeDecodeError, ValueError):
            problem = f"the answer is not JSON: {_snippet(raw)!r}" if raw else "the answer is empty"
            raise _bad_answer(problem, repeatable) from None

    def read_answer(self, response, repeatable):
        """The answer's body, whole, or at most one byte over ``max_response_size``.

        ``http.client`` hands back a body shorter than its Content-Length
        without a word when read with a size (a proxy or the server's process
        cut it), and raises ``IncompleteRead`` for a chunked one: both are an
        answer cut short, retried like a cut connection when the request
        :func:`is_repeatable`.
        """
        try:
            raw = response.read(self.max_response_size + 1)
        except http.client.IncompleteRead as exc:
            raise _bad_answer(f"the answer was cut short after {len(exc.partial)} bytes "
                              "(its chunked body ended early)", repeatable) from None
        expected = _content_length(response)
        if expected is not None and len(raw) < expected and len(raw) <= self.max_response_size:
            raise _bad_answer(f"the answer was cut short after {len(raw)} of {expected} bytes",
                              repeatable)
        return raw


def _error_body(exc):
    """The start of an error answer's body, to quote; what arrived of it if it was cut."""
    if exc.fp is None:
        return b""
    try:
        return exc.read(ERROR_BODY_READ)
    except http.client.IncompleteRead as cut:
        return cut.partial
    except (http.client.HTTPException, OSError):
        return b""
