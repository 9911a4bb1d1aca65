"""HTTP for the sync client: a pull, a push, retries for transient failures.

Standard library only (``urllib``). Connection errors, timeouts and 5xx
answers are transient and retried with jittered exponential backoff; 4xx,
TLS errors and answers that are not the protocol's JSON are not::

    transport = HttpTransport.from_settings()
    answer = transport.pull("https://central.example.com/taskChanges", since=0)
"""

import base64
import http.client
import json
import random
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import TransportError
from persistence_sync.serializers import ID

# --- HTTP ---------------------------------------------------------------------------


def _snippet(raw, limit=200):
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _json_or_none(raw):
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None


def is_int(value):
    return type(value) is int or (type(value) is float and value.is_integer())


class HttpTransport:
    """Pull and push over HTTP with the standard library (urllib).

    Transient failures (connection refused or reset, timeouts, 5xx) are
    retried ``retries`` times in all with jittered exponential backoff; 4xx,
    TLS errors and malformed answers are not. Every failure raises
    :class:`TransportError` whose message names the URL.
    """

    user_agent = "persistence-sync-client"

    def __init__(self, headers=None, timeout=30, retries=3, backoff=0.5, ssl_context=None,
                 sleep=time.sleep):
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.ssl_context = ssl_context
        self.sleep = sleep

    @classmethod
    def from_settings(cls, **overrides):
        """A transport configured by ``PERSISTENCE_SYNC`` (HEADERS, TOKEN_ENV, TIMEOUT, ...)."""
        import os

        headers = dict(sync_settings.HEADERS or {})
        token = os.environ.get(sync_settings.TOKEN_ENV or "") if sync_settings.TOKEN_ENV else None
        if token and not any(name.lower() == "authorization" for name in headers):
            headers["Authorization"] = f"{sync_settings.TOKEN_KEYWORD} {token}"
        options = dict(headers=headers, timeout=sync_settings.TIMEOUT,
                       retries=sync_settings.RETRIES, backoff=sync_settings.RETRY_BACKOFF)
        options.update(overrides)
        return cls(**options)

    def pull(self, url, since):
        """``GET url?since=...``: the answer ``{"now": int, "updates": [...]}``, checked."""
        separator = "&" if urllib.parse.urlsplit(url).query else "?"
        answer = self.request("GET", f"{url}{separator}since={int(since)}")
        if not isinstance(answer, dict) or not is_int(answer.get("now")):
            raise TransportError('the pull answer is not {"now": <int>, "updates": [...]}')
        updates = answer.get("updates")
        if not isinstance(updates, list):
            raise TransportError('the pull answer has no "updates" array')
        for index, item in enumerate(updates):
            if not isinstance(item, dict) or not isinstance(item.get(ID), str) or not item[ID]:
                raise TransportError(f"pulled update #{index} is not an object with a string id")
        return {"now": int(answer["now"]), "updates": updates}

    def push(self, url, items):
        """``POST url`` with the JSON array ``items``; returns the answer's ``now``."""
        answer = self.request("POST", url, items)
        if (not isinstance(answer, dict) or not is_int(answer.get("now"))
                or answer.get("status", "ok") != "ok"):
            raise TransportError(f'the push answer is not {{"status": "ok", "now": <int>}}: '
                                 f"{_snippet(json.dumps(answer))}")
        return int(answer["now"])

    def request(self, method, url, payload=None):
        """One JSON request, retried after transient failures; returns the parsed body."""
        for attempt in range(self.retries):
            try:
                return self.request_once(method, url, payload)
            except TransportError as exc:
                if not exc.transient or attempt == self.retries - 1:
                    if attempt:
                        exc.args = (f"{exc.args[0]} (after {attempt + 1} attempts)",)
                    raise
            self.sleep(self.backoff * 2**attempt * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")  # pragma: no cover

    def request_once(self, method, url, payload=None):
        parts = urllib.parse.urlsplit(url)
        headers = {"Accept": "application/json", "User-Agent": self.user_agent, **self.headers}
        if parts.username is not None:  # http://user:password@host/ means HTTP Basic
            credentials = f"{urllib.parse.unquote(parts.username)}:" \
                          f"{urllib.parse.unquote(parts.password or '')}"
            headers.setdefault("Authorization",
                               "Basic " + base64.b64encode(credentials.encode()).decode())
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        data = None
        if payload is not None:
            data = json.dumps(payload, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout,
                                        context=self.ssl_context) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read() if exc.fp is not None else b""
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
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise TransportError(f"the answer is not JSON: {_snippet(raw)!r}") from None
