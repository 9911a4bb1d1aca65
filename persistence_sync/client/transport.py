"""HTTP for the sync client: a pull, a push, retries for transient failures.

Standard library only (``urllib``). Connection errors, timeouts and 5xx
answers are transient and retried with jittered exponential backoff; 4xx,
TLS errors and answers that are not the protocol's JSON are not::

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
from persistence_sync.serializers import ID, PUSH_ID_HEADER, PUSH_REPLAY_HEADER

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


def _json_or_none(raw):
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None


def redact(url):
    """``url`` without the ``user:password@`` it may carry: what may be shown or logged."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_url(url):
    """Raise :class:`SyncClientError` (quoting no credentials) unless ``url`` is usable."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SyncClientError(f"{redact(url)!r} is not an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise SyncClientError(f"{redact(url)!r} has a bad port") from None


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
    A pull follows, without ``Authorization`` when the redirect leads to
    another origin or from https to http.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if req.get_method() != "GET":
            raise TransportError(
                f"the push was redirected (HTTP {code}) to {redact(newurl)}: "
                "use that address as the server URL"
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and origin(new.full_url) != origin(req.full_url):
            for name in ("Authorization", "Cookie"):
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


def is_int(value):
    return type(value) is int or (type(value) is float and value.is_integer())


def check_pull_answer(answer, size=0):
    """A pull's answer as ``{"now", "updates", "more", "size"}``; TransportError if malformed."""
    if not isinstance(answer, dict) or not is_int(answer.get("now")):
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
    return {"now": int(answer["now"]), "updates": updates, "more": more, "size": size}


class HttpTransport:
    """Pull and push over HTTP with the standard library (urllib).

    Transient failures (connection refused or reset, timeouts, 5xx) are
    retried ``retries`` times in all with jittered exponential backoff; 4xx,
    TLS errors and malformed answers are not. Every failure raises
    :class:`TransportError` whose message names the URL.
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
            urllib.request.HTTPSHandler(context=self.ssl_context), CarefulRedirectHandler())

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
        if (not isinstance(answer, dict) or not is_int(answer.get("now"))
                or answer.get("status", "ok") != "ok"):
            raise TransportError(f'the push answer is not {{"status": "ok", "now": <int>}}: '
                                 f"{_snippet(json.dumps(answer))}")
        return int(answer["now"])

    def request(self, method, url, payload=None, headers=None, sized=False):
        """One JSON request, retried after transient failures; returns the parsed body.

        ``sized``: returns ``(body, its length in bytes)``.
        """
        self.warn_if_plain_http(url)
        for attempt in range(self.retries):
            try:
                answer, size = self.request_once(method, url, payload, headers)
                return (answer, size) if sized else answer
            except TransportError as exc:
                if not exc.transient or attempt == self.retries - 1:
                    if attempt:
                        exc.args = (f"{exc.args[0]} (after {attempt + 1} attempts)",)
                    raise
            self.sleep(self.backoff * 2**attempt * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")  # pragma: no cover

    def request_once(self, method, url, payload=None, headers=None):
        headers = {"Accept": "application/json", "User-Agent": self.user_agent, **self.headers,
                   **(headers or {})}
        url = _basic_auth(url, headers)
        data = None
        if payload is not None:
            data = json.dumps(payload, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self.opener().open(request, timeout=self.timeout) as response:
                raw = response.read(self.max_response_size + 1)
        except urllib.error.HTTPError as exc:
            body = exc.read(ERROR_BODY_READ) if exc.fp is not None else b""
            raise TransportError(
                f"HTTP {exc.code} {exc.reason}: {_snippet(body)}",
                transient=exc.code >= 500, status=exc.code, answer=_json_or_none(body),
            ) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):
                raise TransportError(f"TLS error: {exc.reason}") from None
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise TransportError(f"timed out after {self.timeout}s", transient=True) from None
            raise TransportError(f"cannot connect: {exc.reason}", transient=True) from None
        except ssl.SSLError as exc:
            raise TransportError(f"TLS error: {exc}") from None
        except TimeoutError:
            raise TransportError(f"timed out after {self.timeout}s", transient=True) from None
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
            raise TransportError(f"the answer is not JSON: {_snippet(raw)!r}") from None
