"""Settings of persistence_sync, read from the ``PERSISTENCE_SYNC`` dict.

Every key and its default is listed in :data:`DEFAULTS`; settings are read
lazily (never at import time) and re-read when a test overrides them::

    PERSISTENCE_SYNC = {
        "MAX_BODY_SIZE": 64 * 1024 * 1024,
    }
"""

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS: dict[str, Any] = {
    # Largest push body accepted, in bytes; a larger one gets 413. The classic
    # client sends all its local changes in one POST, so this is generous:
    # MAX_ITEMS objects of a few kilobytes each fit.
    "MAX_BODY_SIZE": 32 * 1024 * 1024,
    # Objects in one push; more gets 413 (parsing stops at the first one over).
    # A push is stored in one transaction that holds its models' clocks while
    # it writes (other writers of those models wait): 10,000 objects hold them
    # about half a second on a small server. Raise it for clients that cannot
    # split their pushes, knowing that the largest push stalls the others longer.
    "MAX_ITEMS": 10_000,
    # JSON values in one push body, each array and object counted once more
    # (a key and its value count once); more gets 413 before parsing. Bounds
    # what parsing can allocate: 10,000 objects of 8 fields count 90,000.
    "MAX_VALUES": 2_000_000,
    # Nesting of arrays/objects in a push body: the array and its objects are
    # 2, a JSON field's value adds its own. Deeper gets 400 before parsing.
    "MAX_DEPTH": 32,
    # Characters of any one string in a push (ids, values, keys and strings
    # inside JSON fields); a model field's max_length still applies.
    "MAX_STRING_LENGTH": 1_000_000,
    # Seconds a push waits for the model's clock (another writer's lock)
    # before it gives up with 503 and stores nothing; the client retries.
    "LOCK_TIMEOUT": 10,
    # DRF throttle rates of the sync endpoints per user (or IP address when
    # anonymous), e.g. {"pull": "600/min", "push": "60/min"}; None: no
    # throttle of this app (DRF's DEFAULT_THROTTLE_CLASSES still apply).
    # Uses Django's default cache, which must be shared by all workers.
    "THROTTLE_RATES": None,
    # Rows per SQL statement when a push or pull touches many objects; a pull
    # holds at most this many rows in memory while it streams its answer.
    "BATCH_SIZE": 2000,
    # Most objects one page of a paged pull (?limit=N) answers; a larger limit
    # is lowered to it.
    "MAX_PAGE_SIZE": 10000,
    # How often a push is retried after a transient database error (deadlock,
    # serialization failure, lock wait timeout, "database is locked").
    "TRANSIENT_RETRIES": 8,
    # Send DATE values as milliseconds instead of the protocol's seconds. The
    # classic client 0.3.0 stores a pulled object that is new to it without
    # converting seconds (its dates land in January 1970) but reads any number
    # above 10^12 as ms everywhere, so browser clients want True; syncall and
    # other protocol clients understand both.
    "DATES_IN_MILLISECONDS": False,
    # How long tombstones (the records of deletions that pulls hand out) are
    # kept: a timedelta or a number of days; None keeps them for ever.
    # ``manage.py prunetombstones`` (run it from cron) drops older ones; a
    # client that last pulled before a pruned deletion gets 410 and resyncs.
    "TOMBSTONE_RETENTION": None,
    # Put each SQLite database in write-ahead-log mode when it is opened: with
    # SQLite's default journal, a pull that a client reads slowly keeps a read
    # transaction open, and every writer of the file waits for it. In WAL mode
    # readers never block writers. Not for databases on a network file system
    # (SQLite's WAL needs shared memory); check W005 says when it is not on.
    "SQLITE_WAL": True,
    # Days a server remembers the id and stamp of an idempotent push
    # (X-Sync-Push-Id); a client that comes back later than that with an
    # unanswered push has it treated as never stored.
    "PUSH_RECEIPT_DAYS": 30,
    # --- the sync client (manage.py syncall) ---
    # Base URL of the remote server, e.g. "https://central.example.com/sync/".
    "SERVER_URL": None,
    # Extra HTTP headers for every request, e.g. {"Authorization": "Token ..."}.
    "HEADERS": {},
    # Name of an environment variable holding a bearer token for the remote.
    "TOKEN_ENV": "PERSISTENCE_SYNC_TOKEN",
    # Remote endpoint per model label when it differs from the registered URI:
    # {"todo.task": "https://other.example.com/taskUpdates"}.
    "ENDPOINTS": {},
    # Conflict handler: "prefer-local", "prefer-remote" or a dotted path.
    "CONFLICT_HANDLER": "prefer-remote",
    # Seconds before an HTTP request to the remote gives up.
    "TIMEOUT": 30,
    # Attempts for transient HTTP failures (connection errors, 5xx).
    "RETRIES": 3,
    # Seconds before the first retry; doubled (with jitter) for each further one.
    "RETRY_BACKOFF": 0.5,
    # Authorization scheme for the TOKEN_ENV token: "Token" for DRF's
    # TokenAuthentication, "Bearer" for OAuth2/JWT-style servers.
    "TOKEN_KEYWORD": "Token",
    # Largest answer the sync client reads from the remote, in bytes.
    "MAX_RESPONSE_SIZE": 256 * 1024 * 1024,
    # Objects per page the sync client asks for (?limit=N, docs/protocol.md
    # "Extensions"). A first sync is applied page by page, so the client's
    # memory is bounded by this, and an interrupted one resumes after the last
    # page it applied. A classic remote ignores it and answers everything.
    "PULL_PAGE_SIZE": 5000,
    # Most items per push the sync client sends; more local changes go in
    # several pushes (each idempotent on its own). A push the remote refuses
    # as too large (413) is split in half and retried.
    "PUSH_BATCH_SIZE": 5000,
    # --- the change feed (``events``, docs/events.md) ---
    # How the feed learns that a model changed: "auto" (PostgreSQL's
    # LISTEN/NOTIFY on PostgreSQL, else reading the clock table every
    # FEED_INTERVAL), "postgresql", "redis" (Redis pub/sub, FEED_REDIS_URL)
    # or "poll". Writers send NOTIFY only when it resolves to "postgresql",
    # and publish to Redis only on "redis".
    "FEED_BACKEND": "auto",
    # Seconds between two reads of the clock table by one feed process when
    # polling (one small query per process, whatever the number of clients);
    # half of it is the mean delay it adds to a notice.
    "FEED_INTERVAL": 0.025,
    # Seconds between two heartbeats (an SSE comment) on an idle feed
    # connection: proxies keep it open and a dead peer is found. Below the
    # proxy's read timeout.
    "FEED_HEARTBEAT": 20,
    # Milliseconds an EventSource waits before reconnecting (SSE ``retry:``).
    "FEED_RETRY": 2000,
    # Seconds a notice or heartbeat may take to leave for a client before the
    # feed drops that connection (a client that stopped reading).
    "FEED_SEND_TIMEOUT": 10,
    # Longest wait= of a long-poll, in seconds (a larger one is lowered to it).
    "FEED_MAX_WAIT": 60,
    # Seconds between two reads of a connected user's scope values
    # (scope_values= registrations), so that a grant or revocation made by
    # the project reaches the user's open connections.
    "FEED_SCOPE_REFRESH": 60,
    # The Redis server that carries the feed's wake-ups when FEED_BACKEND is
    # "redis", e.g. "redis://127.0.0.1:6379/0" (needs the redis package).
    "FEED_REDIS_URL": None,
}

# Keys whose value is a dotted path to import (callables).
IMPORT_STRINGS = ()


class Settings:
    """Attribute access to the merged PERSISTENCE_SYNC settings."""

    def __init__(self):
        self._cache = {}

    def __getattr__(self, name):
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid persistence_sync setting: {name!r}")
        if name not in self._cache:
            user = getattr(django_settings, "PERSISTENCE_SYNC", {}) or {}
            value = user.get(name, DEFAULTS[name])
            if name in IMPORT_STRINGS and isinstance(value, str):
                value = import_setting(value, name)
            self._cache[name] = value
        return self._cache[name]

    def reload(self):
        self._cache.clear()


def import_setting(path, setting_name):
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImportError(
            f"Could not import {path!r} for PERSISTENCE_SYNC[{setting_name!r}]: {exc}"
        ) from exc


sync_settings = Settings()


def _reload(*, setting, **kwargs):
    if setting == "PERSISTENCE_SYNC":
        sync_settings.reload()


setting_changed.connect(_reload)
