"""System checks: one test per id, and manage.py check (and syncall) really fail."""

import inspect
import io
import re
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.apps import apps
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import FieldDoesNotExist
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from rest_framework.permissions import IsAuthenticated

import persistence_sync
from persistence_sync import checks, registry
from persistence_sync.exceptions import RegistrationError
from persistence_sync.models import SyncableModel
from persistence_sync.registry import SyncRegistry
from persistence_sync.routers import SyncRouter
from tests.testapp.models import Gadget, Memo, Node, Note

pytestmark = pytest.mark.usefixtures("fresh_registry")


# The test app's Gadget, Node and Note are open to anonymous requests on
# purpose (most protocol tests pull without logging in): W002 about them is
# expected, and tested below.
OPEN_ON_PURPOSE = {Gadget, Node, Note}


def run():
    """What ``manage.py check --tag persistence_sync`` reports, but the expected W002s."""
    return [error for error in run_checks(tags=[checks.TAG])
            if not (error.id == "persistence_sync.W002" and error.obj in OPEN_ON_PURPOSE)]


def ids():
    return [error.id for error in run()]


def test_the_example_site_passes():
    assert ids() == []


def test_e001_a_label_registration_of_a_model_that_is_not_syncable():
    persistence_sync.register("testapp.Plain")
    [error] = run()
    assert error.id == "persistence_sync.E001"
    assert "testapp.Plain" in error.msg and "SyncableModel" in error.hint


def test_e002_two_registrations_on_one_uri():
    persistence_sync.unregister(Node)
    persistence_sync.register("testapp.Node", uri="gadgets")
    [error] = run()
    assert error.id == "persistence_sync.E002" and "gadgets" in error.msg
    assert "testapp.Gadget" in error.msg and "models.py" in error.msg  # where the first is


def test_e003_a_field_that_does_not_exist():
    persistence_sync.unregister(Node)
    persistence_sync.register("testapp.Node", fields=["label", "colour"])
    [error] = run()
    assert error.id == "persistence_sync.E003" and "colour" in error.msg and "label" in error.hint


def test_e003_also_catches_a_field_removed_after_registration(monkeypatch):
    get_field = Gadget._meta.get_field

    def without_count(name):
        if name == "count":
            raise FieldDoesNotExist(name)
        return get_field(name)

    monkeypatch.setattr(Gadget._meta, "get_field", without_count)
    assert ids() == ["persistence_sync.E003"]


def test_e004_a_field_the_protocol_cannot_carry():
    persistence_sync.unregister(Gadget)
    with pytest.raises(persistence_sync.RegistrationError, match="cannot be synced"):
        persistence_sync.register(Gadget, fields=["name", "last_change"])
    persistence_sync.register("testapp.Gadget", fields=["id"])
    assert ids() == ["persistence_sync.E004"]


def test_e005_an_unknown_model_label():
    persistence_sync.register("testapp.Nothing")
    [error] = run()
    assert error.id == "persistence_sync.E005" and "'testapp.Nothing'" in error.msg
    assert "test_checks.py" in error.msg  # where it was registered


def test_e006_an_abstract_model():
    # apps.get_model() never returns an abstract model (a label gets E005), so
    # this is met at the register() call, with the check's words.
    [error] = registry.registration_problems(SyncableModel, "syncables", None)
    assert error.id == "persistence_sync.E006"
    with pytest.raises(persistence_sync.RegistrationError) as raised:
        persistence_sync.register(SyncableModel)
    assert str(raised.value) == f"{error.msg} {error.hint}"


def test_e007_a_model_registered_twice(monkeypatch):
    # As when models.py registers a label and then the class itself: while
    # the apps load, the label waits and the class registration goes first.
    persistence_sync.unregister(Node)
    monkeypatch.setattr(registry.apps, "ready", False)
    persistence_sync.register("testapp.Node")
    persistence_sync.register(Node, uri="nodes")
    monkeypatch.undo()
    [error] = run()
    assert error.id == "persistence_sync.E007" and "testapp.Node" in error.msg
    assert "test_checks.py" in error.msg  # where the first registration is
    with pytest.raises(persistence_sync.RegistrationError, match="already registered"):
        persistence_sync.register("testapp.Node")


def test_e008_an_empty_uri():
    persistence_sync.unregister(Node)
    persistence_sync.register("testapp.Node", uri="/")
    [error] = run()
    assert error.id == "persistence_sync.E008" and "nodeChanges" in error.hint
    with pytest.raises(persistence_sync.RegistrationError, match="empty URI"):
        persistence_sync.register(Node, uri="/")


@override_settings(PERSISTENCE_SYNC=[("MAX_BODY_SIZE", 1)])
def test_e009_settings_that_are_not_a_dict():
    [error] = run()
    assert error.id == "persistence_sync.E009" and "list" in error.msg
    assert "MAX_BODY_SIZE" in error.hint


@override_settings(PERSISTENCE_SYNC={"MAX_BODY_SIZE": 1, "BATCH_SIZ": 10})
def test_e010_an_unknown_settings_key():
    [error] = run()
    assert error.id == "persistence_sync.E010" and "'BATCH_SIZ'" in error.msg
    assert "Did you mean 'BATCH_SIZE'?" in error.hint


def test_w001_a_default_manager_that_bypasses_the_clock(monkeypatch):
    from django.db import models

    monkeypatch.setattr(Gadget._meta, "default_manager", models.Manager())
    Gadget._meta.default_manager.model = Gadget
    assert ids() == ["persistence_sync.W001"]


def test_check_of_some_apps_reports_only_their_models():
    persistence_sync.unregister(Node)
    persistence_sync.register("testapp.Node", fields=["colour"])
    assert run_checks(app_configs=[apps.get_app_config("todo")], tags=[checks.TAG]) == []
    testapp = [apps.get_app_config("testapp")]
    assert [e.id for e in run_checks(app_configs=testapp, tags=[checks.TAG])
            if e.id != "persistence_sync.W002"] == ["persistence_sync.E003"]


def test_every_id_is_documented_and_tested():
    documented = set(re.findall(r"persistence_sync\.[EW]\d{3}", checks.__doc__))
    assert documented == set(checks.CHECKS)
    reference = (Path(__file__).parents[1] / "docs" / "checks.md").read_text()
    assert set(re.findall(r"persistence_sync\.[EW]\d{3}", reference)) == set(checks.CHECKS)
    source = inspect.getsource(sys.modules[__name__])
    untested = [i for i in checks.CHECKS if f"def test_{i.split('.')[1].lower()}_" not in source]
    assert untested == []


# Django 6 reads the database in its model checks (JSONField support), hence db.
def test_manage_py_check_fails_on_an_error(db):
    persistence_sync.register("testapp.Nothing")
    with pytest.raises(SystemCheckError, match="persistence_sync.E005"):
        call_command("check")


def test_w002_a_model_open_to_anonymous_requests():
    warnings = [e for e in registry.check_registrations() if e.id == "persistence_sync.W002"]
    assert {warning.obj for warning in warnings} == OPEN_ON_PURPOSE
    persistence_sync.unregister(Gadget)
    persistence_sync.register(Gadget, uri="gadgets", permission_classes=[IsAuthenticated])
    assert Gadget not in {e.obj for e in registry.check_registrations()
                          if e.id == "persistence_sync.W002"}


def test_w003_a_model_linked_to_users_synced_unscoped():
    from tests.testapp.models import Memo

    persistence_sync.unregister(Memo)
    persistence_sync.register(Memo, uri="memos", permission_classes=[IsAuthenticated])
    [warning] = run()
    assert warning.id == "persistence_sync.W003" and "owner='owner'" in warning.hint


def test_w004_a_scoped_model_without_its_indexes_on_scope_and_id_and_on_scope_and_stamp(
        monkeypatch):
    from django.db import connection, models

    from tests.testapp.models import Board

    def w004():
        return [e for e in run() if e.id == "persistence_sync.W004"]

    mysql = connection.vendor == "mysql"  # InnoDB's indexes end with the primary key
    monkeypatch.setattr(Memo._meta, "indexes", [])  # the indexes the test app gives it
    [warning] = w004()
    assert warning.obj is Memo and "fields=['owner', 'last_change']" in warning.hint
    assert ("fields=['owner', 'id']" in warning.hint) is not mysql
    # Either may be a unique constraint, the id may be named pk.
    monkeypatch.setattr(Memo._meta, "constraints", [
        models.UniqueConstraint(fields=["owner", "pk"], name="memo_owner_pk"),
        models.UniqueConstraint(fields=["owner", "last_change", "id"], name="memo_owner_stamp")])
    assert w004() == []
    monkeypatch.setattr(Board._meta, "indexes", [models.Index(fields=["id", "team"], name="x"),
                                                 models.Index(fields=["team", "last_change"],
                                                              name="y")])
    if mysql:
        assert w004() == []
        return
    [warning] = w004()
    assert warning.obj is Board and "(team, id)" in warning.msg  # the order matters
    assert "last_change" not in warning.msg


@pytest.mark.django_db
def test_w005_an_sqlite_database_not_in_wal_mode(tmp_path):
    """With SQLite's default journal a slow reader blocks every writer: the app sets WAL mode."""
    from django.db import connections
    from django.db.utils import ConnectionHandler

    from persistence_sync.db import journal_mode

    path = tmp_path / "site.sqlite3"
    handler = ConnectionHandler({"default": {"ENGINE": "django.db.backends.sqlite3",
                                             "NAME": str(path)}})
    try:
        with override_settings(PERSISTENCE_SYNC={"SQLITE_WAL": False}):
            connection = handler["default"]
            assert journal_mode(connection) == "delete"  # SQLite's own default
            with mock.patch.dict(connections._connections.__dict__, {"elsewhere": connection}):
                [warning] = checks.check_sqlite_journal(databases=["elsewhere"])
            assert warning.id == "persistence_sync.W005" and "'delete' journal mode" in warning.msg
            connection.close()
        connection = handler["default"]  # a new connection, SQLITE_WAL on: WAL from now on
        connection.ensure_connection()
        assert journal_mode(connection) == "wal"
        with mock.patch.dict(connections._connections.__dict__, {"elsewhere": connection}):
            assert checks.check_sqlite_journal(databases=["elsewhere"]) == []
    finally:
        handler.close_all()


@pytest.mark.django_db
def test_the_test_database_is_in_wal_mode():
    from django.db import connection

    assert journal_mode_of(connection) in (None, "wal")


def journal_mode_of(connection):
    from persistence_sync.db import journal_mode

    return journal_mode(connection)


def test_w006_an_address_keyed_throttle_without_num_proxies():
    from rest_framework.settings import api_settings

    def deploy_warnings():
        return [e for e in run_checks(include_deployment_checks=True, tags=[checks.TAG])
                if e.id == "persistence_sync.W006"]

    throttled = {**settings.PERSISTENCE_SYNC, "THROTTLE_RATES": {"pull": "60/min"}}
    with override_settings(PERSISTENCE_SYNC=throttled):
        [warning] = deploy_warnings()  # Gadget, Node and Note let anonymous requests sync
        assert "testapp.Gadget" in warning.msg and "NUM_PROXIES" in warning.hint
        assert "persistence_sync.W006" not in {e.id for e in run_checks(tags=[checks.TAG])}
        with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}):
            assert api_settings.NUM_PROXIES == 1 and deploy_warnings() == []
    assert deploy_warnings() == []  # no throttle of this app's nor DRF's: nothing keyed


def test_w002_and_w003_are_reported_by_check_deploy():
    from tests.testapp.models import Memo

    persistence_sync.unregister(Memo)
    persistence_sync.register(Memo, uri="memos")
    out = io.StringIO()
    call_command("check", "--deploy", stdout=out, stderr=out)
    assert "persistence_sync.W002" in out.getvalue()
    assert "persistence_sync.W003" in out.getvalue()


def assert_bad_multi_user_options(check_id, message, **options):
    """Refused at register(), reported by the checks for a label registration."""
    persistence_sync.unregister(Memo)
    with pytest.raises(persistence_sync.RegistrationError, match=message):
        persistence_sync.register(Memo, uri="memos", **options)
    persistence_sync.register("testapp.Memo", uri="memos", **options)
    assert f"persistence_sync.{check_id}" in ids()


def test_e011_both_owner_and_scope():
    assert_bad_multi_user_options("E011", "both", owner="owner", scope="text",
                                  scope_values=lambda request: [])


@pytest.mark.parametrize("options", [{"owner": "nothing"},
                                     {"scope": "nothing", "scope_values": lambda request: []}])
def test_e012_owner_or_scope_names_no_field(options):
    assert_bad_multi_user_options("E012", "no field 'nothing'", **options)


def test_e013_a_scope_field_that_cannot_hold_a_scope():
    assert_bad_multi_user_options("E013", "cannot be the scope", scope="id",
                                  scope_values=lambda request: [])


def test_e014_an_owner_that_is_not_a_user_foreign_key():
    assert_bad_multi_user_options("E014", "not a ForeignKey to the user model", owner="text")


def test_e015_scope_without_scope_values():
    assert_bad_multi_user_options("E015", "no scope_values", scope="text")


def test_e016_scope_values_without_scope():
    assert_bad_multi_user_options("E016", "no scope=", scope_values=lambda request: [])


def test_e017_a_read_only_field_that_is_not_synced():
    assert_bad_multi_user_options("E017", "not synced", owner="owner", read_only_fields=["colour"])


def test_e018_a_model_served_by_two_registries_with_different_scopes():
    other = SyncRegistry()
    SyncRouter(other)  # served: its scopes count for the model layer too
    with pytest.raises(RegistrationError, match=r"testapp.Memo is registered in another registry "
                                                r"\(at .*models.py:\d+\) with another owner="):
        other.register(Memo, uri="memos")
    other.register(Memo, uri="memos", owner="owner")  # the same scope is fine
    try:
        assert other.is_registered(Memo)
    finally:
        other.unregister(Memo)


def test_syncall_refuses_to_run_with_a_broken_registration(db):
    persistence_sync.register("testapp.Nothing")
    # call_command() skips the checks unless told to; manage.py runs them.
    with pytest.raises(SystemCheckError, match="persistence_sync.E005"):
        call_command("syncall", server="http://127.0.0.1:9/", skip_checks=False)


# --- values of PERSISTENCE_SYNC: one id per key -------------------------------------


def setting_errors(key, value):
    """What ``manage.py check`` reports for ``PERSISTENCE_SYNC = {key: value}``."""
    with override_settings(PERSISTENCE_SYNC={key: value}):
        return [error for error in run() if error.id != "persistence_sync.W002"]


def assert_values(key, bad, says, good):
    """Each of ``bad`` gets the key's own id, naming the setting and what is wrong
    (``says``, one fragment per bad value) and a hint with the fix; ``good`` pass."""
    check_id = next(cid for cid, name, _ in checks.SETTING_VALUE_CHECKS if name == key)
    for value, fragment in zip(bad, says, strict=True):
        [error] = setting_errors(key, value)
        assert error.id == check_id, (value, error)
        assert f"PERSISTENCE_SYNC[{key!r}]" in error.msg and fragment in error.msg, error.msg
        assert error.hint.startswith(f"Set PERSISTENCE_SYNC[{key!r}] to "), error.hint
    for value in good:
        assert setting_errors(key, value) == [], value


WHOLE = (["lots", 2.5, True, 0], ["not a whole number"] * 3 + ["below 1"])


def test_every_setting_has_a_value_check_and_its_default_passes():
    assert [key for _, key, _ in checks.SETTING_VALUE_CHECKS] == list(checks.DEFAULTS)
    with override_settings(PERSISTENCE_SYNC=dict(checks.DEFAULTS)):
        assert ids() == []


@override_settings(PERSISTENCE_SYNC={"MAX_ITEMS": "lots"})
def test_manage_py_check_fails_on_a_bad_setting_value(db):
    with pytest.raises(SystemCheckError, match="persistence_sync.E020"):
        call_command("check")


def test_e019_max_body_size():
    assert_values("MAX_BODY_SIZE", *WHOLE, good=[1, 64 * 1024 * 1024])


def test_e020_max_items():
    assert_values("MAX_ITEMS", *WHOLE, good=[1, 50_000])


def test_e021_max_values():
    assert_values("MAX_VALUES", *WHOLE, good=[10])


def test_e022_max_depth():
    assert_values("MAX_DEPTH", [1, "deep"], ["below 2", "not a whole number"], good=[2, 64])


def test_e023_max_string_length():
    assert_values("MAX_STRING_LENGTH", *WHOLE, good=[255])


def test_e024_lock_timeout():
    assert_values("LOCK_TIMEOUT", [0, -1, "10s", float("nan")],
                  ["not above 0", "not above 0", "not a number", "not a number"], good=[0.5, 10])


def test_e025_throttle_rates():
    assert_values(
        "THROTTLE_RATES",
        [{"pul": "600/min"}, {"pull": "600 per minute"}, {"push": 60}, "600/min"],
        ["unknown scope(s) 'pul'", "'600 per minute' for 'pull'", "60 for 'push'", "not a dict"],
        good=[None, {}, {"pull": "600/min"}, {"pull": None, "push": "10/s"},
              {"push": "1000/day", "pull": "50/hour"}])


def test_e026_batch_size():
    assert_values("BATCH_SIZE", *WHOLE, good=[500])


def test_e027_max_page_size():
    assert_values("MAX_PAGE_SIZE", *WHOLE, good=[100])


def test_e028_transient_retries():
    assert_values("TRANSIENT_RETRIES", [-1, "8"], ["below 0", "not a whole number"], good=[0, 8])


def test_e029_dates_in_milliseconds():
    assert_values("DATES_IN_MILLISECONDS", ["yes", 1], ["not True or False"] * 2,
                  good=[True, False])


def test_e030_tombstone_retention():
    import datetime

    assert_values("TOMBSTONE_RETENTION", ["90 days", 0, datetime.timedelta(0), True],
                  ["neither a timedelta", "not a positive number", "not a positive period",
                   "neither a timedelta"],
                  good=[None, 90, 0.5, datetime.timedelta(hours=12)])


def test_e031_sqlite_wal():
    assert_values("SQLITE_WAL", ["off"], ["not True or False"], good=[True, False])


def test_e032_push_receipt_days():
    assert_values("PUSH_RECEIPT_DAYS", [0, "30"], ["not above 0", "not a number"], good=[1, 0.5])


def test_e033_server_url():
    assert_values(
        "SERVER_URL",
        ["central.example.com", "ftp://central.example.com/", "https://h/sync/?x=1",
         "http://ann:pa/ss@h/"],
        ["not an http:// or https:// URL", "not an http:// or https:// URL", "query or fragment",
         "bad port"],
        good=[None, "https://central.example.com/sync/", "http://127.0.0.1:8000/"])
    [error] = setting_errors("SERVER_URL", "http://ann:pa/ss@h/")
    assert "pa/ss" not in error.msg  # the password is not quoted


def test_e034_headers():
    assert_values("HEADERS", [["X-Api-Key"], {"X Api Key": "k"}, {"X-Api-Key": 42}],
                  ["not a dict", "not an HTTP header name", "not a one-line string"],
                  good=[{}, {"X-Api-Key": "k"}])
    [error] = setting_errors("HEADERS", {"Authorization": "Token s3cret", "Bad Name": "x"})
    assert "s3cret" not in error.msg  # a credential is never quoted


def test_e035_token_env():
    assert_values("TOKEN_ENV", ["MY TOKEN", 5], ["not the name of an environment variable"] * 2,
                  good=[None, "", "SYNC_TOKEN"])


def test_e036_endpoints():
    assert_values(
        "ENDPOINTS",
        [{"todo.taks": "https://h/taskUpdates"}, {"todo.task": "h/taskUpdates"}, ["todo.task"]],
        ["'todo.taks', which is not the label of a registered model",
         "'h/taskUpdates' for 'todo.task'", "not a dict"],
        good=[{}, {"todo.task": "https://h/taskUpdates"}, {"todo.Task": "http://h:8000/t"}])


def test_e037_conflict_handler():
    assert_values(
        "CONFLICT_HANDLER",
        ["prefer local", "myapp.nothing.here", "persistence_sync.conf.DEFAULTS", None],
        ["neither a stock handler's name nor a dotted path", "cannot be imported",
         "not callable", "neither a stock handler's name"],
        good=["prefer-local", "prefer_remote", "persistence_sync.client.prefer_local"])


def test_e038_timeout():
    assert_values("TIMEOUT", [0, "30"], ["not above 0", "not a number"], good=[0.5, 30])


def test_e039_retries():
    assert_values("RETRIES", [0, 2.0], ["below 1", "not a whole number"], good=[1, 5])


def test_e040_retry_backoff():
    assert_values("RETRY_BACKOFF", [-0.1, "1"], ["below 0", "not a number"], good=[0, 0.5])


def test_e041_token_keyword():
    assert_values("TOKEN_KEYWORD", ["", "Bearer token", None], ["not one word"] * 3,
                  good=["Token", "Bearer"])


def test_e042_max_response_size():
    assert_values("MAX_RESPONSE_SIZE", *WHOLE, good=[1024])


def test_e043_pull_page_size():
    assert_values("PULL_PAGE_SIZE", *WHOLE, good=[1, 10_000])


def test_e044_push_batch_size():
    assert_values("PUSH_BATCH_SIZE", *WHOLE, good=[1, 10_000])


# --- the change feed's settings (docs/events.md) ---


def test_e045_feed_backend():
    # "redis" alone: its URL is missing (tests/test_feed_redis.py has it with the URL).
    assert_values("FEED_BACKEND", ["kafka", 1, "redis"],
                  ["is not \"auto\"", "is not \"auto\"", "needs FEED_REDIS_URL"],
                  good=["auto", "poll"])


def test_e046_feed_interval():
    assert_values("FEED_INTERVAL", [0, "0.1"], ["not above 0", "not a number"], good=[0.01, 1])


def test_e047_feed_heartbeat():
    assert_values("FEED_HEARTBEAT", ["20", -1], ["not a number", "not above 0"], good=[15])


def test_e048_feed_retry():
    assert_values("FEED_RETRY", [1.5, -1], ["not a whole number", "below 0"], good=[0, 2000])


def test_e049_feed_send_timeout():
    assert_values("FEED_SEND_TIMEOUT", [-1, None], ["not above 0", "not a number"], good=[2.5])


def test_e050_feed_max_wait():
    assert_values("FEED_MAX_WAIT", [True, 1.5], ["not a whole number", "not a whole number"],
                  good=[0, 60])


def test_e051_feed_scope_refresh():
    assert_values("FEED_SCOPE_REFRESH", [None, -1], ["not a number", "below 0"], good=[0, 60])


def test_e052_feed_redis_url():
    assert_values("FEED_REDIS_URL",
                  ["http://cache:6379/0", 6379, "redis://cache:6379/zero", "redis://cache:99999/0",
                   "unix://", "redis:///0"],
                  ["not a redis://", "not a string", "not a number", "bad port", "without the socket",
                   "with a host"],
                  good=[None, "redis://127.0.0.1:6379/0", "rediss://:pw@cache.example.com:6380/1",
                        "redis://cache", "unix:///run/redis/redis.sock"])


def test_e052_never_shows_the_redis_password():
    [error] = setting_errors("FEED_REDIS_URL", "redis://:s3cret@cache:6379/db")
    assert error.id == "persistence_sync.E052" and "s3cret" not in error.msg
