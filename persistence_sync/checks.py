"""System checks: every id this app reports, with its message and hint, in one table.

=========================  ====================================================
persistence_sync.E001      a registered model is not a SyncableModel
persistence_sync.E002      two models registered on one URI
persistence_sync.E003      a synced (or excluded) field name does not exist
persistence_sync.E004      a synced field the protocol cannot carry
persistence_sync.E005      a model registered by label is not installed
persistence_sync.E006      a registered model is abstract
persistence_sync.E007      a model registered twice (by label and by class, say)
persistence_sync.E008      a registration whose URI is empty
persistence_sync.E009      the PERSISTENCE_SYNC setting is not a dict
persistence_sync.E010      PERSISTENCE_SYNC has a key this app does not know
persistence_sync.E011      a registration with both owner= and scope=
persistence_sync.E012      owner= or scope= names a field the model does not have
persistence_sync.E013      owner= or scope= names a field that cannot hold a scope
persistence_sync.E014      owner= names a field that is not a ForeignKey to the user model
persistence_sync.E015      scope= without scope_values=
persistence_sync.E016      scope_values= without scope=
persistence_sync.E017      a read_only_fields= name that is not synced
persistence_sync.E018      a model registered in two registries with different scopes
persistence_sync.E019      MAX_BODY_SIZE is not a whole number of bytes above 0
persistence_sync.E020      MAX_ITEMS is not a whole number above 0
persistence_sync.E021      MAX_VALUES is not a whole number above 0
persistence_sync.E022      MAX_DEPTH is not a whole number of 2 or more
persistence_sync.E023      MAX_STRING_LENGTH is not a whole number above 0
persistence_sync.E024      LOCK_TIMEOUT is not a number of seconds above 0
persistence_sync.E025      THROTTLE_RATES is not None or {"pull"/"push": DRF rate or None}
persistence_sync.E026      BATCH_SIZE is not a whole number above 0
persistence_sync.E027      MAX_PAGE_SIZE is not a whole number above 0
persistence_sync.E028      TRANSIENT_RETRIES is not a whole number, 0 or more
persistence_sync.E029      DATES_IN_MILLISECONDS is not True or False
persistence_sync.E030      TOMBSTONE_RETENTION is not None, a positive timedelta or days
persistence_sync.E031      SQLITE_WAL is not True or False
persistence_sync.E032      PUSH_RECEIPT_DAYS is not a number of days above 0
persistence_sync.E033      SERVER_URL is not None or an http(s) URL without query
persistence_sync.E034      HEADERS is not a dict of header names to one-line strings
persistence_sync.E035      TOKEN_ENV is not None or an environment variable's name
persistence_sync.E036      ENDPOINTS is not a dict of registered labels to http(s) URLs
persistence_sync.E037      CONFLICT_HANDLER is not a stock name or an importable callable
persistence_sync.E038      TIMEOUT is not a number of seconds above 0
persistence_sync.E039      RETRIES is not a whole number, 1 or more
persistence_sync.E040      RETRY_BACKOFF is not a number of seconds, 0 or more
persistence_sync.E041      TOKEN_KEYWORD is not one word
persistence_sync.E042      MAX_RESPONSE_SIZE is not a whole number above 0
persistence_sync.E043      PULL_PAGE_SIZE is not a whole number above 0
persistence_sync.E044      PUSH_BATCH_SIZE is not a whole number above 0
persistence_sync.E045      FEED_BACKEND is not "auto", "postgresql" (on PostgreSQL), "redis" or "poll"
persistence_sync.E046      FEED_INTERVAL is not a number of seconds above 0
persistence_sync.E047      FEED_HEARTBEAT is not a number of seconds above 0
persistence_sync.E048      FEED_RETRY is not a whole number of milliseconds, 0 or more
persistence_sync.E049      FEED_SEND_TIMEOUT is not a number of seconds above 0
persistence_sync.E050      FEED_MAX_WAIT is not a whole number of seconds, 0 or more
persistence_sync.E051      FEED_SCOPE_REFRESH is not a number of seconds, 0 or more
persistence_sync.E052      FEED_REDIS_URL is not None or a redis://, rediss:// or unix:// URL
persistence_sync.W001      a registered model's default manager bypasses the clock
persistence_sync.W002      a registered model is reachable by anonymous requests
persistence_sync.W003      a model with a foreign key to the user model is synced unscoped
persistence_sync.W004      an owner= or scope= model without its indexes on (field, id), (field, stamp)
persistence_sync.W005      an SQLite database that is not in WAL mode
persistence_sync.W006      a throttle keys anonymous syncs on their address, NUM_PROXIES unset
=========================  ====================================================

W002 and W003 carry the tag too but are not deployment checks: ``manage.py
check`` and ``manage.py check --deploy`` both report them. W006 is a
deployment check (``check --deploy`` only); W005 a database check
(``check --database``, and ``migrate``), tagged ``database`` only: Django 6.1
runs a database check that also carries a named tag against every database
whenever that tag is asked for, so ``check --tag persistence_sync`` (and
``syncall``'s own check) would open a connection to each.

The checks carry the tag ``"persistence_sync"`` (:data:`TAG`): ``manage.py
check --tag persistence_sync`` runs only them, and ``manage.py syncall``
requires them, so it refuses to run while one reports an error. The app's
``ready()`` registers :func:`persistence_sync.setting_values.check_settings` and
:func:`persistence_sync.registry.check_registrations`; the registry builds its
messages from :data:`CHECKS` with :func:`message`, and a registration made by
class is refused at the ``register()`` call with the same words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning
from django.db import connections

from persistence_sync.conf import DEFAULTS
from persistence_sync.db import journal_mode

if TYPE_CHECKING:
    from django.apps.config import AppConfig

TAG = "persistence_sync"


@dataclass(frozen=True)
class CheckDefinition:
    """What one id means: its level and its message and hint, as format strings."""

    level: Callable[..., CheckMessage]  # Error or Warning
    msg: str
    hint: str


CHECKS: dict[str, CheckDefinition] = {
    "persistence_sync.E001": CheckDefinition(
        Error, "{model} is registered for sync but is not a SyncableModel.",
        "Make {model} inherit from persistence_sync.models.SyncableModel.",
    ),
    "persistence_sync.E002": CheckDefinition(
        Error, "{model} and {other} are both registered on the URI {uri!r} (the first at {where}).",
        "Give {model} its own uri=... in register().",
    ),
    "persistence_sync.E003": CheckDefinition(
        Error, "{model} has no field {field!r} to sync.",
        "Choose among: {valid}.",
    ),
    "persistence_sync.E004": CheckDefinition(
        Error, "{model}.{field} cannot be synced: {reason}.",
        "Remove {field!r} from fields=; choose among: {valid}.",
    ),
    "persistence_sync.E005": CheckDefinition(
        Error, "{label!r} (registered for sync at {where}) is not an installed model.",
        "Use 'app_label.ModelName' of a model in INSTALLED_APPS.",
    ),
    "persistence_sync.E006": CheckDefinition(
        Error, "{model} is abstract and cannot be registered for sync.",
        "Register its concrete subclasses instead.",
    ),
    "persistence_sync.E007": CheckDefinition(
        Error, "{model} is already registered for sync (at {where}).",
        "Register it once; to change its options, unregister() it first.",
    ),
    "persistence_sync.E008": CheckDefinition(
        Error, "{model} is registered for sync on an empty URI ({uri!r}).",
        "Give register() a uri= that names a path, or leave it out for {default!r}.",
    ),
    "persistence_sync.E009": CheckDefinition(
        Error, "The PERSISTENCE_SYNC setting is a {type}, not a dict.",
        "Set PERSISTENCE_SYNC = {{...}} with keys among: {valid}.",
    ),
    "persistence_sync.E010": CheckDefinition(
        Error, "PERSISTENCE_SYNC has the unknown key {key!r}; it is ignored.",
        "{suggestion}Valid keys: {valid}.",
    ),
    "persistence_sync.E011": CheckDefinition(
        Error, "{model} is registered with both owner= and scope=.",
        "owner='field' is scope='field' limited to request.user; pick one.",
    ),
    "persistence_sync.E012": CheckDefinition(
        Error, "{model} has no field {field!r} for {option}=.",
        "Name a concrete field of {model}.",
    ),
    "persistence_sync.E013": CheckDefinition(
        Error, "{model}.{field} cannot be the {option}: it must be a concrete, single-valued "
        "field that is not the primary key.",
        "Use a ForeignKey or a plain field of the model itself.",
    ),
    "persistence_sync.E014": CheckDefinition(
        Error, "{model}.{field} cannot be the owner: it is not a ForeignKey to the user model.",
        "Use scope=... with scope_values=... for other fields.",
    ),
    "persistence_sync.E015": CheckDefinition(
        Error, "{model} is registered with scope={scope!r} but no scope_values.",
        "Pass scope_values=lambda request: [...] (the values the request may see).",
    ),
    "persistence_sync.E016": CheckDefinition(
        Error, "{model} is registered with scope_values= but no scope=.",
        "Name the field the values are compared with: scope='team'.",
    ),
    "persistence_sync.E017": CheckDefinition(
        Error, "{model}.{field} is in read_only_fields but not synced.",
        "Choose among the synced fields: {synced}.",
    ),
    "persistence_sync.E018": CheckDefinition(
        Error, "{model} is registered in another registry (at {where}) with another owner= "
        "or scope=.",
        "Register it with the same owner=/scope= in every registry: its deletions and moves "
        "are recorded with one scope.",
    ),
    "persistence_sync.W001": CheckDefinition(
        CheckWarning,
        "{model}'s default manager returns a {queryset}, "
        "so QuerySet.update(), bulk_create() and deletes bypass the sync clock.",
        "Build the manager on persistence_sync.models.SyncableQuerySet "
        "(e.g. SyncableQuerySet.as_manager()).",
    ),
    "persistence_sync.W002": CheckDefinition(
        CheckWarning,
        "{model} is synced at /{uri} to anonymous requests: its permission classes "
        "let a request without a user pull (or push).",
        "Pass permission_classes=[IsAuthenticated] to register() (or set DRF's "
        "DEFAULT_PERMISSION_CLASSES), or owner=/scope= which refuse anonymous requests.",
    ),
    "persistence_sync.W003": CheckDefinition(
        CheckWarning,
        "{model} has a foreign key to the user model ({fields}) but is synced unscoped: "
        "every request reads and writes every user's objects.",
        "register({class_name}, owner={field!r}) limits each user to their own objects "
        "(or use scope=/get_queryset=).",
    ),
    "persistence_sync.W004": CheckDefinition(
        CheckWarning,
        "{model} is synced by {field!r} but has no index on {missing}: a pull reads a user's "
        "rows in id order (a first sync, page by page) or by stamp (what changed since the "
        "last one), and without the index it reads or sorts every row of the user, work "
        "that grows with them.",
        "Add {code} to {class_name}.Meta.indexes (they also serve lookups by {field}, so "
        "the field needs no index of its own).",
    ),
    "persistence_sync.W005": CheckDefinition(
        CheckWarning,
        "The SQLite database {alias!r} is in the {mode!r} journal mode: a pull that a client "
        "reads slowly blocks every push to it until it ends.",
        "Keep PERSISTENCE_SYNC['SQLITE_WAL'] = True (the default), which puts the file in WAL "
        "mode when it is opened, or run PRAGMA journal_mode=WAL on it; not on a network file "
        "system.",
    ),
    "persistence_sync.W006": CheckDefinition(
        CheckWarning,
        "Anonymous requests may sync {models} and a throttle keys them on their address, but "
        "REST_FRAMEWORK['NUM_PROXIES'] is unset: DRF then takes the address from "
        "X-Forwarded-For as the client sent it, so a client escapes the throttle by changing "
        "the header, or gets another address throttled.",
        "Set REST_FRAMEWORK['NUM_PROXIES'] to the number of proxies in front of the site (0 when "
        "clients connect to it directly); see docs/deployment.md.",
    ),
}

# One id per PERSISTENCE_SYNC key, for a value of the wrong type or out of range
# (the rules are persistence_sync.setting_values'): (id, key, what the key wants).
SETTING_VALUE_CHECKS: list[tuple[str, str, str]] = [
    ("persistence_sync.E019", "MAX_BODY_SIZE",
     'a whole number of bytes above 0, e.g. 32 * 1024 * 1024'),
    ("persistence_sync.E020", "MAX_ITEMS",
     'a whole number of objects above 0, e.g. 10_000'),
    ("persistence_sync.E021", "MAX_VALUES",
     'a whole number above 0, e.g. 2_000_000'),
    ("persistence_sync.E022", "MAX_DEPTH",
     'a whole number of 2 or more (a push is an array of objects: 2), e.g. 32'),
    ("persistence_sync.E023", "MAX_STRING_LENGTH",
     'a whole number of characters above 0, e.g. 1_000_000'),
    ("persistence_sync.E024", "LOCK_TIMEOUT",
     'a number of seconds above 0, e.g. 10'),
    ("persistence_sync.E025", "THROTTLE_RATES",
     'None, or a dict with the keys "pull" and/or "push", each a DRF rate such as "600/min" '
     '(requests per s, min, hour or day) or None'),
    ("persistence_sync.E026", "BATCH_SIZE",
     'a whole number of rows above 0, e.g. 2000'),
    ("persistence_sync.E027", "MAX_PAGE_SIZE",
     'a whole number of objects above 0, e.g. 10000'),
    ("persistence_sync.E028", "TRANSIENT_RETRIES",
     'a whole number of retries, 0 or more, e.g. 8'),
    ("persistence_sync.E029", "DATES_IN_MILLISECONDS",
     'True or False'),
    ("persistence_sync.E030", "TOMBSTONE_RETENTION",
     'None (keep for ever), a datetime.timedelta above 0, or a number of days above 0, e.g. 90'),
    ("persistence_sync.E031", "SQLITE_WAL",
     'True or False'),
    ("persistence_sync.E032", "PUSH_RECEIPT_DAYS",
     'a number of days above 0, e.g. 30'),
    ("persistence_sync.E033", "SERVER_URL",
     'None, or the remote\'s base URL, "http(s)://host[:port]/path/" without a query or fragment'),
    ("persistence_sync.E034", "HEADERS",
     'a dict of header names to string values, e.g. {"X-Api-Key": "..."}'),
    ("persistence_sync.E035", "TOKEN_ENV",
     'None, or the name of an environment variable, e.g. "PERSISTENCE_SYNC_TOKEN"'),
    ("persistence_sync.E036", "ENDPOINTS",
     'a dict of registered model labels to http(s) URLs, e.g. {"todo.task": "https://other.example.com/taskUpdates"}'),
    ("persistence_sync.E037", "CONFLICT_HANDLER",
     '"prefer-remote", "prefer-local" or the dotted path of a callable'),
    ("persistence_sync.E038", "TIMEOUT",
     'a number of seconds above 0, e.g. 30'),
    ("persistence_sync.E039", "RETRIES",
     'a whole number of attempts, 1 or more, e.g. 3'),
    ("persistence_sync.E040", "RETRY_BACKOFF",
     'a number of seconds, 0 or more, e.g. 0.5'),
    ("persistence_sync.E041", "TOKEN_KEYWORD",
     'a word without spaces, "Token" (DRF) or "Bearer" (OAuth2, JWT)'),
    ("persistence_sync.E042", "MAX_RESPONSE_SIZE",
     'a whole number of bytes above 0, e.g. 256 * 1024 * 1024'),
    ("persistence_sync.E043", "PULL_PAGE_SIZE",
     'a whole number of objects above 0, e.g. 5000'),
    ("persistence_sync.E044", "PUSH_BATCH_SIZE",
     'a whole number of objects above 0, e.g. 5000'),
    # The change feed's (docs/events.md).
    ("persistence_sync.E045", "FEED_BACKEND",
     '"auto", "postgresql" (the default database must be PostgreSQL), "redis" (with '
     'FEED_REDIS_URL and the redis package: pip install "django-persistence-sync[redis]") or "poll"'),
    ("persistence_sync.E046", "FEED_INTERVAL", 'a number of seconds above 0, e.g. 0.025'),
    ("persistence_sync.E047", "FEED_HEARTBEAT", 'a number of seconds above 0, e.g. 20'),
    ("persistence_sync.E048", "FEED_RETRY", 'a whole number of milliseconds, 0 or more, e.g. 2000'),
    ("persistence_sync.E049", "FEED_SEND_TIMEOUT", 'a number of seconds above 0, e.g. 10'),
    ("persistence_sync.E050", "FEED_MAX_WAIT", 'a whole number of seconds, 0 or more, e.g. 60'),
    ("persistence_sync.E051", "FEED_SCOPE_REFRESH", 'a number of seconds, 0 or more, e.g. 60'),
    ("persistence_sync.E052", "FEED_REDIS_URL",
     'None, or the URL of the Redis server that carries the feed\'s wake-ups, '
     '"redis://host:6379/0" (rediss:// for TLS, unix:///path/to/redis.sock)'),
]


def _escaped(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


for _check_id, _key, _expected in SETTING_VALUE_CHECKS:
    CHECKS[_check_id] = CheckDefinition(
        Error, f"PERSISTENCE_SYNC[{_key!r}] is {{value}}: it {{problem}}.",
        f"Set PERSISTENCE_SYNC[{_key!r}] to {_escaped(_expected)}, or leave it out for the "
        f"default ({_escaped(repr(DEFAULTS[_key]))}).",
    )


def message(check_id: str, obj: Any = None, **params: Any) -> CheckMessage:
    """The message ``check_id`` reports, its text filled in from ``params``."""
    definition = CHECKS[check_id]
    return definition.level(
        definition.msg.format(**params), hint=definition.hint.format(**params),
        obj=obj, id=check_id,
    )


def check_sqlite_journal(app_configs: Iterable[AppConfig] | None = None,
                         databases: Iterable[str] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """W005 for each SQLite database of ``databases`` not in WAL mode (a database check)."""
    warnings = []
    for alias in databases or ():
        mode = journal_mode(connections[alias])
        if mode not in (None, "wal"):
            warnings.append(message("persistence_sync.W005", alias=alias, mode=mode))
    return warnings
