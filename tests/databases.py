"""Which database the suite runs on, and skipping it all when that server is away.

The example site's settings pick the database from ``PS_DB`` (``sqlite``,
``postgresql`` or ``mysql``) and ``PS_DB_HOST``/``PS_DB_PORT``/... (see
``testproject/settings.py``). On a machine without the chosen server, or
without its Python driver, every test is skipped with one reason that says
what to do, instead of each test erroring while pytest-django creates the
test database. ``tests/conftest.py`` wires the hooks :func:`configure`,
:func:`skip_all_if_unavailable` and :func:`report_header`.

A missing driver breaks ``django.setup()`` itself (model classes ask the
backend for its name length limit), which pytest-django runs before any
conftest hook, so the test settings swap in Django's dummy backend first::

    DATABASES = databases.without_missing_driver(DATABASES)

Integration tests that need a server database (not SQLite) call
:func:`require_server_db`; those of the change feed's Redis backend call
:func:`require_redis` (the server at ``PS_REDIS_URL``, default
``redis://127.0.0.1:6379/0``).
"""

import importlib
import os
import socket

import pytest

# PS_DB value -> (display name, default port, driver modules, the first importable wins)
SERVERS = {
    "postgresql": ("PostgreSQL", 5432, ("psycopg", "psycopg2"), "pip install 'psycopg[binary]'"),
    "mysql": (
        "MariaDB/MySQL",
        3306,
        ("MySQLdb",),
        "apt-get install -y libmariadb-dev pkg-config && pip install mysqlclient",
    ),
}
ALIASES = {"postgres": "postgresql", "mariadb": "mysql"}
CONNECT_TIMEOUT = 2.0

PROBLEM_KEY = pytest.StashKey[str]()  # "" when the database is usable


def vendor():
    """The database the suite runs on: ``sqlite``, ``postgresql`` or ``mysql``."""
    name = os.environ.get("PS_DB", "sqlite").strip().lower() or "sqlite"
    return ALIASES.get(name, name)


def address(name=None):
    """``(host, port)`` of the server (default: the configured one; meaningless for SQLite)."""
    default_port = SERVERS.get(name or vendor(), (None, 0))[1]
    host = os.environ.get("PS_DB_HOST") or "127.0.0.1"
    port = int(os.environ.get("PS_DB_PORT") or default_port)
    return host, port


def missing_driver(name=None):
    """The install hint when the server's driver cannot be imported, else ``None``.

    ``name``: ``postgresql`` or ``mysql`` (default: the one the suite runs on).
    """
    name = name or vendor()
    if name not in SERVERS:
        return None
    label, _, modules, install = SERVERS[name]
    for module in modules:
        try:
            importlib.import_module(module)
            return None
        except ImportError:
            continue
    return f"{label} driver ({' or '.join(modules)}) is not installed: {install}, or unset PS_DB"


def without_missing_driver(databases):
    """``DATABASES`` with the dummy backend standing in for a server whose driver is missing.

    Only lets Django start so that :func:`skip_all_if_unavailable` can skip
    every test with the reason; any query on it fails.
    """
    if missing_driver() is None:
        return databases
    return {**databases, "default": {"ENGINE": "django.db.backends.dummy"}}


def unavailable_reason(name=None):
    """Why the database cannot be used, or ``None`` when it can.

    ``name``: ``sqlite``, ``postgresql`` or ``mysql`` (default: the one the
    suite runs on). Checks that the driver imports (the reason then names the
    driver and how to install it) and that the server accepts a TCP
    connection (the reason then names the address); it does not log in (a
    wrong password still fails loudly).
    """
    name = name or vendor()
    if name == "sqlite":
        return None
    if name not in SERVERS:
        return f"PS_DB={name!r} is not one of sqlite, postgresql, mysql"
    driver_problem = missing_driver(name)
    if driver_problem:
        return driver_problem
    label = SERVERS[name][0]
    host, port = address(name)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        why = exc.strerror or exc
        return f"{label} not reachable at {host}:{port} ({why}): start it or unset PS_DB"
    return None


def configure(config):
    """``pytest_configure``: find out once whether the database is usable."""
    config.stash[PROBLEM_KEY] = unavailable_reason() or ""


def skip_all_if_unavailable(config, items):
    """``pytest_collection_modifyitems``: skip every test when the database is away."""
    problem = config.stash.get(PROBLEM_KEY, None)
    if problem is None:  # configure() was not wired; decide now
        problem = unavailable_reason() or ""
    if problem:
        marker = pytest.mark.skip(reason=problem)
        for item in items:
            item.add_marker(marker)


def report_header(config):
    """``pytest_report_header``: say which database the run uses."""
    name = vendor()
    if name == "sqlite":
        return "database: sqlite (set PS_DB=postgresql or PS_DB=mysql for a server)"
    host, port = address()
    line = f"database: {name} at {host}:{port}"
    problem = config.stash.get(PROBLEM_KEY, "")
    return f"{line} -- UNAVAILABLE, every test skipped: {problem}" if problem else line


def require_server_db(*vendors):
    """Skip the calling test unless the suite runs on one of ``vendors`` (default: any server)."""
    wanted = vendors or tuple(SERVERS)
    name = vendor()
    if name not in wanted:
        labels = " or ".join(SERVERS[v][0] for v in wanted)
        pytest.skip(f"needs {labels}; the suite runs on {name} (set PS_DB={wanted[0]})")
    problem = unavailable_reason()
    if problem:
        pytest.skip(problem)


def redis_url():
    """The Redis server the feed's Redis tests use (``PS_REDIS_URL``)."""
    return os.environ.get("PS_REDIS_URL") or "redis://127.0.0.1:6379/0"


def redis_unavailable_reason():
    """Why the Redis tests cannot run (the package, or the server), or ``None`` when they can."""
    try:
        importlib.import_module("redis")
    except ImportError:
        return ("the redis package is not installed: pip install -e '.[redis]' "
                "(the test extra has it)")
    from urllib.parse import urlsplit

    parts = urlsplit(redis_url())
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        why = exc.strerror or exc
        return (f"Redis not reachable at {host}:{port} ({why}): start it (redis-server) "
                "or set PS_REDIS_URL")
    return None


def require_redis():
    """Skip the calling test unless the redis package and the Redis server are there."""
    problem = redis_unavailable_reason()
    if problem:
        pytest.skip(problem)
