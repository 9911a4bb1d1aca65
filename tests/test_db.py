"""db.py: ids in BATCH_SIZE chunks, and whole-transaction retries after transient errors."""

import pytest
from django.db import OperationalError, connection
from django.test import override_settings

from persistence_sync import db

pytestmark = pytest.mark.django_db(transaction=True)  # retries only happen outside atomic()


def test_chunks_cover_every_value_once_in_order():
    assert list(db.chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(db.chunks([], 3)) == []
    with override_settings(PERSISTENCE_SYNC={"BATCH_SIZE": 4}):
        assert list(db.chunks("abcdefghi")) == [list("abcd"), list("efgh"), ["i"]]


def transient_error():
    """The error each backend reports when another writer holds what we need."""
    if connection.vendor == "postgresql":
        import psycopg

        return OperationalError("deadlock detected", psycopg.errors.DeadlockDetected())
    if connection.vendor == "mysql":
        return OperationalError(1213, "Deadlock found when trying to get lock")
    return OperationalError("database is locked")


def failing(times, error):
    calls = []

    def func():
        calls.append(connection.in_atomic_block)
        if len(calls) <= times:
            exc = error()
            if exc.args and isinstance(exc.args[-1], BaseException):
                raise exc from exc.args[-1]
            raise exc
        return "stored"

    return func, calls


@override_settings(PERSISTENCE_SYNC={"TRANSIENT_RETRIES": 3})
def test_a_transient_error_is_retried_in_a_fresh_transaction(monkeypatch):
    monkeypatch.setattr(db.time, "sleep", lambda seconds: None)
    func, calls = failing(2, transient_error)
    assert db.run_with_retries(func, "default") == "stored"
    assert calls == [True, True, True]


@override_settings(PERSISTENCE_SYNC={"TRANSIENT_RETRIES": 3})
def test_the_last_transient_error_and_any_other_error_are_raised(monkeypatch):
    monkeypatch.setattr(db.time, "sleep", lambda seconds: None)
    func, calls = failing(5, transient_error)
    with pytest.raises(OperationalError):
        db.run_with_retries(func, "default")
    assert len(calls) == 3
    func, calls = failing(5, lambda: OperationalError("no such table: x"))
    with pytest.raises(OperationalError):
        db.run_with_retries(func, "default")
    assert len(calls) == 1
