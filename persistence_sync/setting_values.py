"""What each ``PERSISTENCE_SYNC`` value may be: one rule per key of :data:`~persistence_sync.conf.DEFAULTS`.

:func:`check_settings`, registered by the app's ``ready()``, runs
:func:`problems` at ``manage.py check``: a value of the wrong type or out of range, which the
code would otherwise meet only at the first request or sync that reads it,
is reported with the setting's own check id (``checks.SETTING_VALUE_CHECKS``)::

    problem = VALUE_RULES["MAX_ITEMS"]("lots")   # "is not a whole number"

A rule returns what is wrong with a value, or None when it is fine.
"""

from __future__ import annotations

import datetime
import difflib
import re
import urllib.parse
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings

from persistence_sync.checks import SETTING_VALUE_CHECKS, message
from persistence_sync.conf import DEFAULTS

if TYPE_CHECKING:
    from django.apps import AppConfig
    from django.core.checks import CheckMessage

# DRF's SimpleRateThrottle.parse_rate: "<requests>/<period>", the period read by its first letter.
RATE_RE = re.compile(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)s?")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def whole(minimum: int) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return "is not a whole number"
        return None if value >= minimum else f"is below {minimum}"
    return rule


def number(minimum: float, inclusive: bool = False) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        if not _is_number(value):
            return "is not a number"
        if value > minimum or (inclusive and value == minimum):
            return None
        return f"is below {minimum}" if inclusive else f"is not above {minimum}"
    return rule


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "is not True or False"


def throttle_rates(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return "is not a dict"
    unknown = sorted(map(str, set(value) - {"pull", "push"}))
    if unknown:
        return f"has the unknown scope(s) {', '.join(map(repr, unknown))} (the scopes are 'pull' and 'push')"
    for scope, rate in value.items():
        if rate is not None and not (isinstance(rate, str) and RATE_RE.fullmatch(rate.strip())):
            return (f"has the rate {rate!r} for {scope!r}, which DRF cannot read "
                    "('<number>/<s, min, hour or day>')")
    return None


def retention(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        return None if value > datetime.timedelta(0) else "is not a positive period"
    if not _is_number(value):
        return "is neither a timedelta, a number of days nor None"
    return None if value > 0 else "is not a positive number of days (None keeps them for ever)"


def url_problem(value: Any) -> str | None:
    """What makes ``value`` unusable as a remote URL, or None."""
    if not isinstance(value, str):
        return "is not a string"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http:// or https:// URL with a host"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has a bad port (a password holding '/', '?', '#' or '@' must be percent-encoded)"
    if parts.query or parts.fragment:
        return "has a query or fragment, which the endpoints' URLs cannot keep"
    return None


def server_url(value: Any) -> str | None:
    return None if value is None else url_problem(value)


def headers(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "is not a dict"
    for name, header in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
            return f"has {name!r}, which is not an HTTP header name"
        if not isinstance(header, str) or "\n" in header or "\r" in header:
            return f"has a value for {name!r} that is not a one-line string"
    return None


def token_env(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and ENV_NAME_RE.fullmatch(value):
        return None
    return "is not the name of an environment variable"


def endpoints(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "is not a dict"
    from persistence_sync import registry

    registered = {reg.label for reg in registry.default.registrations()}
    for label, url in value.items():
        if not isinstance(label, str) or label.lower() not in registered:
            return f"has the key {label!r}, which is not the label of a registered model"
        problem = url_problem(url)
        if problem:
            return f"has the URL {url!r} for {label!r}, which {problem}"
    return None


def conflict_handler(value: Any) -> str | None:
    from django.utils.module_loading import import_string

    from persistence_sync.client.conflicts import STOCK_HANDLERS

    if callable(value) or (isinstance(value, str) and value in STOCK_HANDLERS):
        return None
    if not isinstance(value, str) or "." not in value:
        return "is neither a stock handler's name nor a dotted path"
    try:
        found = import_string(value)
    except ImportError as exc:
        return f"cannot be imported ({exc})"
    return None if callable(found) else "names something that is not callable"


def token_keyword(value: Any) -> str | None:
    if isinstance(value, str) and value and not any(char.isspace() for char in value):
        return None
    return "is not one word"


def feed_backend(value: Any) -> str | None:
    if value not in ("auto", "postgresql", "redis", "poll"):
        return 'is not "auto", "postgresql", "redis" or "poll"'
    if value == "postgresql":
        from django.db import connections

        if connections["default"].vendor != "postgresql":
            return "needs PostgreSQL as the default database (its LISTEN/NOTIFY)"
    if value == "redis":
        try:
            import redis  # noqa: F401
        except ImportError:
            return ("needs the redis package, which is not installed "
                    "(pip install \"django-persistence-sync[redis]\")")
        user = getattr(settings, "PERSISTENCE_SYNC", None) or {}
        if user.get("FEED_REDIS_URL") is None:
            return "needs FEED_REDIS_URL, the Redis server's URL, which is not set"
    return None


def redis_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return "is not a string"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme == "unix":
        return None if parts.path else "is a unix:// URL without the socket's path"
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return "is not a redis://, rediss:// or unix:// URL with a host"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has a bad port (a password holding '/', '?', '#' or '@' must be percent-encoded)"
    database = parts.path.strip("/")
    if database and not database.isdigit():
        return f"names the database {database!r}, which is not a number (redis://host:6379/0)"
    return None


VALUE_RULES: dict[str, Callable[[Any], str | None]] = {
    "MAX_BODY_SIZE": whole(1),
    "MAX_ITEMS": whole(1),
    "MAX_VALUES": whole(1),
    "MAX_DEPTH": whole(2),
    "MAX_STRING_LENGTH": whole(1),
    "LOCK_TIMEOUT": number(0),
    "THROTTLE_RATES": throttle_rates,
    "BATCH_SIZE": whole(1),
    "MAX_PAGE_SIZE": whole(1),
    "TRANSIENT_RETRIES": whole(0),
    "DATES_IN_MILLISECONDS": boolean,
    "TOMBSTONE_RETENTION": retention,
    "SQLITE_WAL": boolean,
    "PUSH_RECEIPT_DAYS": number(0),
    "SERVER_URL": server_url,
    "HEADERS": headers,
    "TOKEN_ENV": token_env,
    "ENDPOINTS": endpoints,
    "CONFLICT_HANDLER": conflict_handler,
    "TIMEOUT": number(0),
    "RETRIES": whole(1),
    "RETRY_BACKOFF": number(0, inclusive=True),
    "TOKEN_KEYWORD": token_keyword,
    "MAX_RESPONSE_SIZE": whole(1),
    "PULL_PAGE_SIZE": whole(1),
    "PUSH_BATCH_SIZE": whole(1),
    "FEED_BACKEND": feed_backend,
    "FEED_INTERVAL": number(0),
    "FEED_HEARTBEAT": number(0),
    "FEED_RETRY": whole(0),
    "FEED_SEND_TIMEOUT": number(0),
    "FEED_MAX_WAIT": whole(0),
    "FEED_SCOPE_REFRESH": number(0, inclusive=True),
    "FEED_REDIS_URL": redis_url,
}


def problems(user: dict) -> list[tuple[str, Any, str]]:
    """``[(key, value, what is wrong)]`` of the values in ``user`` (PERSISTENCE_SYNC)."""
    found = []
    for key, rule in VALUE_RULES.items():
        if key in user:
            problem = rule(user[key])
            if problem:
                found.append((key, user[key], problem))
    return found


def check_settings(app_configs: Iterable[AppConfig] | None = None,
                   **kwargs: Any) -> list[CheckMessage]:
    """PERSISTENCE_SYNC is a dict of known keys (a misspelt key would be silently ignored),
    each with a value its rule accepts (:mod:`persistence_sync.setting_values`)."""
    user = getattr(settings, "PERSISTENCE_SYNC", None)
    valid = ", ".join(DEFAULTS)
    if user is None:
        return []
    if not isinstance(user, dict):
        return [message("persistence_sync.E009", type=type(user).__name__, valid=valid)]
    errors = []
    for key in user:
        if key in DEFAULTS:
            continue
        close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
        suggestion = f"Did you mean {close[0]!r}? " if close else ""
        errors.append(message("persistence_sync.E010", key=key, suggestion=suggestion,
                              valid=valid))
    ids = {key: check_id for check_id, key, _ in SETTING_VALUE_CHECKS}
    for key, value, problem in problems(user):
        errors.append(message(ids[key], value=_shown(key, value), problem=problem))
    return errors


def _shown(key: str, value: Any) -> str:
    """The value as the message quotes it: never a header's value (a token, a key)."""
    if key == "HEADERS" and isinstance(value, dict):
        return "{" + ", ".join(f"{name!r}: ..." for name in value) + "}"
    if key in ("SERVER_URL", "ENDPOINTS", "FEED_REDIS_URL"):
        from persistence_sync.client.transport import redact

        if isinstance(value, str):
            return repr(redact(value))
        if isinstance(value, dict):
            return repr({label: redact(url) if isinstance(url, str) else url
                         for label, url in value.items()})
    return repr(value)
