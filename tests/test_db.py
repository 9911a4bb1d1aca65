"""db.py: ids in BATCH_SIZE chunks, filters by a batch of them, and whole-transaction retries."""

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


def test_is_in_filters_by_a_batch_of_values_as_in_does():
    """db.is_in is ``__in``: one array parameter on PostgreSQL, IN elsewhere."""
    from django.contrib.auth import get_user_model
    from todo.models import Tag, Task

    tags = [Tag.objects.create(name=f"t{index}") for index in range(5)]
    ids = [tags[0].pk, tags[3].pk, "absent", None]
    assert set(Tag.objects.filter(db.is_in("pk", ids)).values_list("pk", flat=True)) == {
        tags[0].pk, tags[3].pk}
    assert set(Tag.objects.exclude(db.is_in("pk", ids)).values_list("pk", flat=True)) == {
        tags[1].pk, tags[2].pk, tags[4].pk}
    assert not Tag.objects.filter(db.is_in("pk", [])).exists()
    # A foreign key's column, compared as the type of the key it points at.
    alice, bob = (get_user_model().objects.create(username=name) for name in ("alice", "bob"))
    Task.objects.create(name="hers", owner=alice)
    Task.objects.create(name="his", owner=bob)
    assert list(Task.objects.filter(db.is_in("owner", [alice.pk])).values_list(
        "name", flat=True)) == ["hers"]


def session_lock_timeout():
    """The connection's own lock wait setting, as the project configured it."""
    statement = {"postgresql": "SHOW lock_timeout",
                 "mysql": "SELECT @@SESSION.innodb_lock_wait_timeout"}.get(
        connection.vendor, "PRAGMA busy_timeout")
    with connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchone()[0]


def test_a_lock_timeout_ends_with_its_transaction():
    """A push's LOCK_TIMEOUT is its own: the project's later transactions on the same
    connection wait for locks as the project configured, not LOCK_TIMEOUT."""
    from django.db import transaction

    configured = session_lock_timeout()
    with transaction.atomic(), db.lock_timeout("default", 3.0):
        assert session_lock_timeout() != configured
    assert session_lock_timeout() == configured
    with transaction.atomic():  # the next transaction too
        assert session_lock_timeout() == configured
