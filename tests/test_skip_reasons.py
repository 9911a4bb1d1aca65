"""The suite's skip reasons say what is missing: the driver (and how to install it) or the server."""

import importlib
import socket

from tests import databases


def test_a_missing_driver_is_named_as_such_not_as_an_unreachable_server(monkeypatch):
    real_import = importlib.import_module

    def without_psycopg(name):
        if name.split(".")[0] in ("psycopg", "psycopg2"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name)

    monkeypatch.setattr(databases.importlib, "import_module", without_psycopg)
    reason = databases.unavailable_reason("postgresql")
    assert reason.startswith("PostgreSQL driver (psycopg or psycopg2) is not installed")
    assert "pip install 'psycopg[binary]'" in reason and "reachable" not in reason


def test_a_server_that_does_not_answer_is_named_with_its_address(monkeypatch):
    with socket.socket() as unused:  # a port where nothing listens
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("PS_DB_PORT", str(port))
    monkeypatch.setenv("PS_DB", "postgresql")
    reason = databases.unavailable_reason()
    if databases.missing_driver("postgresql"):  # this machine lacks the driver: said so instead
        assert "driver" in reason
        return
    assert reason.startswith(f"PostgreSQL not reachable at 127.0.0.1:{port}")
    assert "start it or unset PS_DB" in reason


def test_the_redis_tests_name_a_missing_package_or_an_unreachable_server(monkeypatch):
    real_import = importlib.import_module

    def without_redis(name):
        if name.split(".")[0] == "redis":
            raise ImportError(f"No module named {name!r}")
        return real_import(name)

    monkeypatch.setattr(databases.importlib, "import_module", without_redis)
    reason = databases.redis_unavailable_reason()
    assert reason.startswith("the redis package is not installed") and "pip install" in reason
    monkeypatch.undo()

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("PS_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    reason = databases.redis_unavailable_reason()
    if reason.startswith("the redis package"):  # this machine lacks the package: said so instead
        return
    assert reason.startswith(f"Redis not reachable at 127.0.0.1:{port}")
    assert "start it (redis-server) or set PS_REDIS_URL" in reason
