"""Hostile pushes against the example site: each a 4xx naming index, id and field, nothing stored.

The cases of issue 10: values no database or Python can hold (poisoned rows
that made every later pull fail), values that crashed the server (500s),
ids the database takes as equal, bodies built to exhaust memory, and error
bodies that quoted the database. Runs on SQLite, PostgreSQL and MariaDB.
"""

import json
import logging
from contextlib import contextmanager
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import IntegrityError, OperationalError, connection
from django.db.models import QuerySet
from django.test import override_settings
from todo.models import Task

from persistence_sync import compiled, models, pulls, pushes
from tests.testapp.models import Gadget

pytestmark = pytest.mark.django_db

POSTGRES = connection.vendor == "postgresql"
MYSQL = connection.vendor == "mysql"
DATETIME_RANGE = "date-times must lie between 0001-01-02 and 9999-12-30 (UTC)"
NOT_A_DATE = "expected seconds since 1970 or an ISO 8601 date-time"
NOT_FINITE = "the number is too large (not finite)"
SURROGATE = "a string holds a lone surrogate (\\ud800-\\udfff), which is not text"
NUL = "PostgreSQL cannot store the NUL character (\\u0000)"


@pytest.fixture
def stored(sync):
    """A task that every refused push must leave exactly as it is, and nothing else.

    Yields ``reset()`` for tests whose push is accepted on some databases.
    """
    sync.push("projectUpdates", [{"id": "P", "name": "p"}])
    sync.push("taskUpdates", [{"id": "KEEP", "name": "keep", "project": "P", "priority": 1}])
    before = list(Task.objects.values_list())
    fields = [f.attname for f in Task._meta.concrete_fields]

    def reset():  # a plain QuerySet: no new stamp
        QuerySet(Task).exclude(id="KEEP").delete()
        QuerySet(Task).filter(id="KEEP").update(**dict(zip(fields, before[0])))

    yield reset
    assert list(Task.objects.values_list()) == before


def post(sync, body, uri="taskUpdates"):
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    return sync.client.post(f"/{uri}", data=body, content_type="application/json")


def refused(response, status=400):
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    return response.json()


def only_error(response):
    body = refused(response)
    assert body["error"] == "The push was refused; nothing was stored."
    [error] = body["errors"]
    return error


def pulls_cleanly(sync, uri="taskUpdates"):
    """Every answer of a pull is strict JSON (no Infinity, no lone surrogate)."""
    response = sync.client.get(f"/{uri}", {"since": 0})
    assert response.status_code == 200, response.content[:500]
    response.content.decode("utf-8")  # strict: a lone surrogate cannot be encoded
    return json.loads(response.content, parse_constant=lambda name: pytest.fail(name))


# --- values no database or Python can hold, refused on the way in ----------

@pytest.mark.parametrize("field, value, message", [
    # Valid local time, but year 10000 in UTC: stored, it made every pull 503.
    ("due", "9999-12-31T23:59:59-05:00", DATETIME_RANGE),
    ("due", "9999-12-31T23:00:00Z", DATETIME_RANGE),  # no time zone could show it
    ("due", "0001-01-01T00:00:00+01:00", DATETIME_RANGE),
    ("due", "2020-13-45T99:99", NOT_A_DATE),  # was a ValueError 500
    ("due", "2020-02-30T10:00:00Z", NOT_A_DATE),
    ("due", "tomorrow", NOT_A_DATE),
    ("due", "2020-01-01T00:00:00Z" + " " * 100, NOT_A_DATE),
    ("due", 10**20, DATETIME_RANGE),
    ("due", -(10**15), DATETIME_RANGE),
    ("due", 1e400, DATETIME_RANGE),
    ("estimate", 1e400, NOT_FINITE),  # was stored as infinity; pulls sent Infinity
    ("estimate", -1e400, NOT_FINITE),
    ("estimate", 10**400, "the number is too large for a float (at most about 1.8e308)"),
    ("estimate", "1.5", "expected a number, got a string"),
    ("priority", 2**31, "2147483648 is out of range [-2147483648, 2147483647]"),
    ("priority", -(2**63) - 1,
     "-9223372036854775809 is out of range [-2147483648, 2147483647]"),
    ("priority", 10**400, f"{10**400} is out of range [-2147483648, 2147483647]"),
    ("priority", 1.5, "expected an integer, got a number"),
    ("name", "\ud800", SURROGATE),
    ("name", "ok\udfffok", SURROGATE),
    ("name", "x" * 201, "Ensure this value has at most 200 characters (it has 201)."),
    ("notes", {"a": [1, 1e400]}, NOT_FINITE),
    ("notes", {"\ud800": 1}, SURROGATE),
    ("notes", ["\udc00"], SURROGATE),
    ("project", "\ud800", SURROGATE),
])
def test_a_value_that_cannot_be_stored_is_refused(sync, stored, field, value, message):
    # json.dumps writes 1e400 as Infinity; the wire carries 1e400, which parses to inf.
    body = json.dumps([{"id": "NEW", "name": "n"}, {"id": "KEEP", field: value}])
    body = body.replace("-Infinity", "-1e400").replace("Infinity", "1e400")
    assert only_error(post(sync, body)) == {
        "index": 1, "id": "KEEP", "field": field, "message": message}
    pulls_cleanly(sync)


def test_the_400_digit_integer_and_huge_exponents_do_not_crash(sync, stored):
    body = '[{"id": "KEEP", "estimate": 1' + "0" * 400 + "}]"
    assert only_error(post(sync, body))["field"] == "estimate"
    body = '[{"id": "KEEP", "priority": 1' + "0" * 5000 + "}]"  # past Python's int limit
    assert refused(post(sync, body))["error"].startswith("The body is not valid JSON")


def test_a_lone_surrogate_in_an_id_is_refused_and_not_echoed(sync, stored):
    error = only_error(post(sync, '[{"id": "A\\ud800", "name": "x"}]'))
    assert error == {"index": 0, "id": "A?", "field": "id",
                     "message": "the id holds a lone surrogate (\\ud800-\\udfff), which is not text"}


def test_a_lone_surrogate_in_an_unknown_field_name_is_echoed_safely(sync, stored):
    error = only_error(post(sync, '[{"id": "KEEP", "\\ud800": 1}]'))
    assert error == {"index": 0, "id": "KEEP", "field": "?", "message": "unknown field"}


@pytest.mark.parametrize("field, value", [("name", "a\x00b"), ("notes", {"k": "\x00"}),
                                          ("notes", {"\x00": 1})])
def test_nul_is_refused_where_the_database_refuses_it(sync, stored, field, value):
    response = post(sync, [{"id": "KEEP", field: value}])
    if POSTGRES:
        assert only_error(response) == {"index": 0, "id": "KEEP", "field": field, "message": NUL}
    else:  # SQLite and MariaDB store it, and give it back
        assert response.status_code == 200, response.content
        [task] = [u for u in pulls_cleanly(sync)["updates"] if u["id"] == "KEEP"]
        assert task[field] == value
        stored()


def test_nul_in_an_id_is_refused_on_postgresql(sync, stored):
    response = post(sync, [{"id": "N\x00", "name": "x"}])
    if POSTGRES:
        assert only_error(response) == {"index": 0, "id": "N\x00", "field": "id", "message": NUL}
    else:
        assert response.status_code == 200
        stored()


def test_dates_before_1000_are_refused_on_mysql_only(sync, stored):
    response = post(sync, [{"id": "KEEP", "due": "0999-12-31T00:00:00Z"}])
    if MYSQL:
        assert only_error(response) == {"index": 0, "id": "KEEP", "field": "due",
                                        "message": "dates before the year 1000 do not fit MySQL/MariaDB"}
    else:
        assert response.status_code == 200
        [task] = [u for u in pulls_cleanly(sync)["updates"] if u["id"] == "KEEP"]
        assert task["due"] == -30610310400
        stored()


def test_extreme_but_valid_values_are_stored_and_pulled_back(sync):
    sync.push("taskUpdates", [{
        "id": "EDGE", "name": "é€😀", "priority": -(2**31), "estimate": 1.7976931348623157e308,
        "due": "9999-12-30T23:59:59Z", "notes": {"big": 10**30, "tiny": 5e-324, "deep": [[[[]]]],
                                                  "text": "😀 ok"},
    }])
    [task] = pulls_cleanly(sync)["updates"]
    assert task["estimate"] == 1.7976931348623157e308 and task["priority"] == -(2**31)
    assert task["due"] == 253402214399
    assert task["notes"]["big"] == 10**30 and task["notes"]["text"] == "😀 ok"
    assert task["name"] == "é€😀"


def test_decimal_places_digits_and_choices_are_checked(sync):
    def error(item):
        return only_error(post(sync, [{"id": "G", "name": "g", **item}], uri="gadgets"))

    assert error({"price": 1.005}) == {"index": 0, "id": "G", "field": "price",
                                       "message": "Ensure that there are no more than 2 decimal places."}
    assert error({"price": 1e300})["message"] == "Ensure that there are no more than 8 digits in total."
    assert error({"size": "M"}) == {"index": 0, "id": "G", "field": "size",
                                    "message": "is not one of the field's choices"}
    assert not Gadget.objects.exists()


def test_many_bad_items_list_fifty_and_count_the_rest(sync, stored):
    body = refused(post(sync, [{"id": f"B{i}", "priority": "x"} for i in range(1000)]))
    assert body["error"] == ("The push was refused; nothing was stored. "
                             "1000 values are bad; the first 50 are listed.")
    assert len(body["errors"]) == 50


# --- ids compared as the database compares them ------------------------------

def test_ids_differing_in_case_or_trailing_spaces(sync):
    """Never two ids on one row: stored apart where the database tells them apart, else refused."""
    sync.push("taskUpdates", [{"id": "A1", "name": "first"}])
    for other in ("a1", "A1 "):
        before = list(Task.objects.values_list())
        response = post(sync, [{"id": "X", "name": "x"}, {"id": other, "name": "other"}])
        if response.status_code == 200:
            continue
        assert only_error(response) == {
            "index": 1, "id": other, "field": "id",
            "message": "the database takes this id for the stored id 'A1'; ids that differ "
                       "only in case or trailing spaces cannot both be stored"}
        assert list(Task.objects.values_list()) == before
    tasks = {u["id"]: u["name"] for u in pulls_cleanly(sync)["updates"]}
    assert tasks["A1"] == "first"  # never overwritten
    if MYSQL:  # utf8mb4_bin, the suite's collation: case-sensitive but PAD SPACE
        assert set(tasks) == {"A1", "a1", "X"}
    else:
        assert set(tasks) == {"A1", "a1", "A1 ", "X"}


def test_ids_the_database_takes_as_equal_within_one_push(sync):
    response = post(sync, [{"id": "B1", "name": "one"}, {"id": "N", "name": "n"},
                           {"id": "B1 ", "name": "two"}])
    if MYSQL:
        assert only_error(response) == {
            "index": 2, "id": "B1 ", "field": "id",
            "message": "the database takes this id for another id of the push; ids that "
                       "differ only in case or trailing spaces cannot both be stored"}
        assert not Task.objects.exists()
    else:
        assert response.status_code == 200
        assert {u["id"]: u["name"] for u in pulls_cleanly(sync)["updates"]} == {
            "B1": "one", "N": "n", "B1 ": "two"}


def test_a_relation_to_an_id_the_database_takes_for_another_is_refused(sync):
    sync.push("projectUpdates", [{"id": "P1", "name": "p"}])
    error = only_error(post(sync, [{"id": "T", "name": "t", "project": "p1"}]))
    assert error == {"index": 0, "id": "T", "field": "project", "message": "no Project with id 'p1'"}


# --- limits on the body ----------------------------------------------------

def test_nesting_100000_deep_is_refused_without_recursion(sync, stored):
    body = refused(post(sync, "[" * 100_000 + "]" * 100_000))
    assert body == {"status": "error", "error":
                    "The body is nested more than 32 arrays/objects deep "
                    "(PERSISTENCE_SYNC['MAX_DEPTH']); flatten the values of JSON fields."}


def test_nesting_inside_a_json_field_counts(sync, stored):
    # The array and its objects are 2 levels: a JSON field has 30 more.
    deep = json.dumps([{"id": "KEEP", "notes": json.loads("[" * 31 + "]" * 31)}])
    assert "MAX_DEPTH" in refused(post(sync, deep))["error"]
    fits = json.dumps([{"id": "KEEP", "notes": json.loads("[" * 30 + "]" * 30)}])
    assert post(sync, fits).status_code == 200
    stored()


def test_brackets_inside_strings_do_not_count(sync, stored):
    response = post(sync, [{"id": "KEEP", "name": "[" * 150 + '\\"{'}])
    assert response.status_code == 200, response.content
    stored()


def test_too_many_items_are_refused_as_soon_as_parsed(sync, stored):
    body = refused(post(sync, "[" + "0," * 500_000 + "0]"), 413)
    assert body == {"status": "error", "error": (
        "The push has more than 10000 objects (PERSISTENCE_SYNC['MAX_ITEMS']); "
        "push at most 10000 objects at a time.")}
    # Whatever follows the first item over the limit is not even read.
    body = refused(post(sync, "[" + "0," * 10_000 + "0, not JSON"), 413)
    assert "MAX_ITEMS" in body["error"]


def test_too_many_values_are_refused_before_parsing(sync, stored):
    body = refused(post(sync, "[[" + "0," * 2_000_000 + "0]]"), 413)
    assert body == {"status": "error", "error": (
        "The body holds more than 2000000 JSON values (PERSISTENCE_SYNC['MAX_VALUES']); "
        "push fewer objects at a time.")}


@override_settings(PERSISTENCE_SYNC={"MAX_ITEMS": 3})
def test_the_item_limit_is_a_setting(sync, stored):
    assert post(sync, [{"id": f"I{i}", "name": "i"} for i in range(3)]).status_code == 200
    stored()
    body = refused(post(sync, [{"id": f"I{i}", "name": "i", "notes": [1, 2, 3]} for i in range(4)]),
                   413)
    assert "more than 3 objects" in body["error"]


@override_settings(PERSISTENCE_SYNC={"MAX_STRING_LENGTH": 10})
def test_the_string_limit_holds_for_values_ids_and_json(sync, stored):
    message = "a string of 11 characters is longer than 10 (PERSISTENCE_SYNC['MAX_STRING_LENGTH'])"
    assert only_error(post(sync, [{"id": "KEEP", "name": "x" * 11}]))["message"] == message
    assert only_error(post(sync, [{"id": "KEEP", "notes": {"k": "x" * 11}}]))["message"] == message
    assert only_error(post(sync, [{"id": "I" * 11, "name": "x"}]))["message"] == (
        "the id of 11 characters is longer than 10 (PERSISTENCE_SYNC['MAX_STRING_LENGTH'])")


@override_settings(PERSISTENCE_SYNC={"MAX_BODY_SIZE": 1000})
def test_the_body_limit_is_checked_before_reading(sync, stored):
    body = json.dumps([{"id": "KEEP", "name": "x" * 2000}])
    assert refused(post(sync, body), 413)["error"] == (
        "The body is larger than 1000 bytes (PERSISTENCE_SYNC['MAX_BODY_SIZE']); "
        "push fewer objects at a time.")
    # A Content-Length that understates the body: the read is capped anyway.
    response = sync.client.generic("POST", "/taskUpdates", body.encode(),
                                   content_type="application/json", CONTENT_LENGTH="10")
    assert response.status_code in (400, 413)



@pytest.mark.django_db(transaction=True)
@override_settings(PERSISTENCE_SYNC={"MAX_BODY_SIZE": 1000})
def test_a_body_longer_than_its_content_length_is_refused_under_asgi():
    """WSGI cuts the body at Content-Length; ASGI hands over all of it: the read is capped."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    from tests.conftest import demo_user

    client = AsyncClient()
    client.force_login(demo_user())
    body = json.dumps([{"id": "T1", "name": "x" * 2000}])
    response = async_to_sync(client.post)("/taskUpdates", body, content_type="application/json",
                                          headers={"content-length": "10"})
    assert refused(response, 413)["error"].startswith("The body is larger than 1000 bytes")
    assert not Task.objects.exists()

# --- errors say what, not how -------------------------------------------------

def test_database_errors_are_logged_not_echoed(sync, stored, caplog):
    failure = IntegrityError('duplicate key value violates unique constraint "todo_task_pkey"\n'
                             "DETAIL: Failing row contains (KEEP, secret).")
    with mock.patch.object(models._PreparedUpsert, "execute", side_effect=failure):
        with caplog.at_level(logging.WARNING, logger="persistence_sync.server"):
            response = post(sync, [{"id": "KEEP", "name": "changed"}])
    assert refused(response, 409) == {"status": "error", "error": (
        "The push conflicts with a database constraint (a unique value, or a related object "
        "removed meanwhile); nothing was stored.")}
    [record] = [r for r in caplog.records if r.name == "persistence_sync.server"]
    assert record.name == "persistence_sync.server"
    assert record.getMessage().startswith("push of todo.task by demo failed: IntegrityError: ")
    assert "Failing row contains (KEEP, secret)" in record.getMessage()


def test_a_failing_pull_says_nothing_of_the_database(sync, caplog):
    failure = OperationalError('relation "todo_task" does not exist LINE 1: SELECT "todo_task"."id"')
    with mock.patch.object(pulls.Pull, "prepare", side_effect=failure):
        response = sync.client.get("/taskUpdates")
    assert refused(response, 503) == {"status": "error",
                                      "error": "The database is unavailable, retry later."}
    [record] = [r for r in caplog.records if r.name == "persistence_sync.server"]
    assert record.getMessage().startswith("pull of todo.task by demo failed: OperationalError")
    assert "todo_task" in record.getMessage()


# --- throttles ----------------------------------------------------------------

@override_settings(PERSISTENCE_SYNC={"THROTTLE_RATES": {"push": "2/min", "pull": "3/min"}})
def test_throttle_rates_limit_pushes_and_pulls_per_client(sync):
    cache.clear()
    for _ in range(2):
        assert post(sync, []).status_code == 200
    body = refused(post(sync, []), 429)
    assert body["error"].startswith("Request was throttled.")
    for _ in range(3):
        assert sync.client.get("/projectUpdates").status_code == 200  # pulls count apart
    assert sync.client.get("/taskUpdates").status_code == 429
    cache.clear()



@pytest.fixture
def empty_cache():
    """The throttles' history (Django's cache), empty before and after the test."""
    cache.clear()
    yield
    cache.clear()


@pytest.mark.usefixtures("empty_cache")
@override_settings(PERSISTENCE_SYNC={"THROTTLE_RATES": {"pull": "2/min"}})
def test_users_behind_one_address_are_throttled_each_on_their_own(sync, django_user_model):
    from django.test import Client

    bob = Client()  # the same address as the demo user's client: 127.0.0.1
    bob.force_login(django_user_model.objects.create_user("bob"))
    for _ in range(2):
        assert sync.client.get("/projectUpdates").status_code == 200
    for _ in range(2):
        assert bob.get("/projectUpdates").status_code == 200
    assert bob.get("/projectUpdates").status_code == 429
    assert sync.client.get("/projectUpdates").status_code == 429


@pytest.mark.usefixtures("empty_cache")
@override_settings(PERSISTENCE_SYNC={"THROTTLE_RATES": {"push": "1/min", "pull": "1/hour"}})
def test_a_throttled_request_says_when_to_come_back(sync):
    assert post(sync, []).status_code == 200
    assert sync.client.get("/taskUpdates").status_code == 200
    push, pull = post(sync, []), sync.client.get("/taskUpdates")
    assert (push.status_code, pull.status_code) == (429, 429)
    assert 1 <= int(push["Retry-After"]) <= 60
    assert 60 < int(pull["Retry-After"]) <= 3600

@contextmanager
def task_id_collation(collation):
    """The todo_task.id column with ``collation`` (MariaDB), as a user's table may have it."""
    with connection.cursor() as cursor:
        # The tags table's foreign key would have to change with it.
        cursor.execute(
            "SELECT constraint_name FROM information_schema.referential_constraints "
            "WHERE constraint_schema = DATABASE() AND referenced_table_name = 'todo_task'")
        [(foreign_key,)] = cursor.fetchall()
        cursor.execute(f"ALTER TABLE todo_task_tags DROP FOREIGN KEY {foreign_key}")
        cursor.execute(f"ALTER TABLE todo_task MODIFY id varchar(32) COLLATE {collation} NOT NULL")
    forget_schema()
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM todo_task")  # ids the old collation cannot tell apart
            cursor.execute("ALTER TABLE todo_task MODIFY id varchar(32) COLLATE utf8mb4_bin NOT NULL")
            cursor.execute(f"ALTER TABLE todo_task_tags ADD CONSTRAINT {foreign_key} "
                           "FOREIGN KEY (task_id) REFERENCES todo_task (id)")
        forget_schema()


def forget_schema():
    """What a process learns of the schema once (docs: restart the workers after a
    collation change), as a restart would forget it: the id comparisons and the
    compiled statements built for the old collation."""
    pushes._exact_ids.clear()
    pulls._collations.clear()
    compiled._templates.clear()


@pytest.mark.skipif(not MYSQL, reason="collations of MariaDB/MySQL")
@pytest.mark.django_db(transaction=True)
def test_mariadb_default_collation_refuses_ids_differing_in_case(sync):
    """utf8mb4_general_ci, MariaDB's default: "a1", "A1" and "A1 " are one id to it."""
    with task_id_collation("utf8mb4_general_ci"):
        sync.push("taskUpdates", [{"id": "A1", "name": "first"}])
        for other in ("a1", "A1 ", "a1 "):
            assert only_error(post(sync, [{"id": other, "_removed": True}])) == {
                "index": 0, "id": other, "field": "id",
                "message": "the database takes this id for the stored id 'A1'; ids that differ "
                           "only in case or trailing spaces cannot both be stored"}
        assert only_error(post(sync, [{"id": "C1", "name": "c"}, {"id": "c1", "name": "c"}])) == {
            "index": 1, "id": "c1", "field": "id",
            "message": "the database takes this id for another id of the push; ids that "
                       "differ only in case or trailing spaces cannot both be stored"}
        assert list(Task.objects.values_list("id", "name")) == [("A1", "first")]


@pytest.mark.skipif(not MYSQL, reason="collations of MariaDB/MySQL")
@pytest.mark.django_db(transaction=True)
def test_mariadb_nopad_binary_collation_keeps_every_id_apart(sync):
    with task_id_collation("utf8mb4_nopad_bin"):
        assert pushes.exact_ids(Task, "default")
        sync.push("taskUpdates", [{"id": i, "name": i} for i in ("A1", "a1", "A1 ")])
        assert {u["id"]: u["name"] for u in pulls_cleanly(sync)["updates"]} == {
            "A1": "A1", "a1": "a1", "A1 ": "A1 "}
