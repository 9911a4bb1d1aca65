"""System checks: one test per id, and manage.py check (and syncall) really fail."""

import inspect
import io
import re
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.core.checks import run_checks
from django.core.exceptions import FieldDoesNotExist
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from rest_framework.permissions import IsAuthenticated

import persistence_sync
from persistence_sync import checks, registry
from persistence_sync.models import SyncableModel
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
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert set(re.findall(r"persistence_sync\.[EW]\d{3}", readme)) == set(checks.CHECKS)
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


def test_w004_a_scoped_model_without_an_index_on_its_scope_and_id(monkeypatch):
    from django.db import connection

    from tests.testapp.models import Board

    monkeypatch.setattr(Memo._meta, "indexes", [])  # the index the test app gives it
    warnings = [e for e in run() if e.id == "persistence_sync.W004"]
    if connection.vendor == "mysql":  # InnoDB's indexes end with the primary key
        assert warnings == []
        return
    [warning] = warnings
    assert warning.obj is Memo and "fields=['owner', 'id']" in warning.hint
    # The index may be a unique constraint too, and the id may be named pk.
    from django.db import models

    monkeypatch.setattr(Memo._meta, "constraints", [
        models.UniqueConstraint(fields=["owner", "pk"], name="memo_owner_pk")])
    assert "persistence_sync.W004" not in ids()
    monkeypatch.setattr(Board._meta, "indexes", [models.Index(fields=["id", "team"], name="x")])
    [warning] = [e for e in run() if e.id == "persistence_sync.W004"]
    assert warning.obj is Board and "(team, id)" in warning.msg  # the order matters


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


def test_syncall_refuses_to_run_with_a_broken_registration(db):
    persistence_sync.register("testapp.Nothing")
    # call_command() skips the checks unless told to; manage.py runs them.
    with pytest.raises(SystemCheckError, match="persistence_sync.E005"):
        call_command("syncall", server="http://127.0.0.1:9/", skip_checks=False)
