"""System checks: one test per id, and manage.py check really fails."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from rest_framework.permissions import IsAuthenticated

import persistence_sync
from persistence_sync import checks, registry
from tests.test_registry import restore_registry  # noqa: F401  (fixture)
from tests.testapp.models import Gadget, Node, Note

pytestmark = pytest.mark.usefixtures("restore_registry")


# The test app's Gadget, Node and Note are open to anonymous requests on
# purpose (most protocol tests pull without logging in): W002 about them is
# expected, and tested below.
OPEN_ON_PURPOSE = {Gadget, Node, Note}


def found():
    return [error for error in checks.check_registrations()
            if not (error.id == "persistence_sync.W002" and error.obj in OPEN_ON_PURPOSE)]


def ids():
    return [error.id for error in found()]


def test_the_example_site_passes():
    assert ids() == []


def test_e001_a_label_registration_of_a_model_that_is_not_syncable():
    persistence_sync.register("testapp.Plain")
    assert ids() == ["persistence_sync.E001"]


def test_e002_two_registrations_on_one_uri():
    persistence_sync.unregister(Node)
    persistence_sync.register("testapp.Node", uri="gadgets")
    [error] = found()
    assert error.id == "persistence_sync.E002" and "gadgets" in error.msg


def test_e003_a_field_that_does_not_exist():
    persistence_sync.unregister(Node)
    persistence_sync.register("testapp.Node", fields=["label", "colour"])
    [error] = found()
    assert error.id == "persistence_sync.E003" and "colour" in error.msg and "label" in error.hint


def test_e003_also_catches_a_field_removed_after_registration():
    registration = registry._registry["testapp.gadget"]
    registry._registry["testapp.gadget"] = type(registration)(
        model=Gadget, uri="gadgets", fields=("name", "gone")
    )
    assert ids() == ["persistence_sync.E003"]


def test_e004_a_field_the_protocol_cannot_carry():
    persistence_sync.unregister(Gadget)
    with pytest.raises(persistence_sync.RegistrationError, match="cannot be synced"):
        persistence_sync.register(Gadget, fields=["name", "last_change"])
    persistence_sync.register("testapp.Gadget", fields=["id"])
    assert ids() == ["persistence_sync.E004"]


def test_e005_an_unknown_model_label():
    persistence_sync.register("testapp.Nothing")
    assert ids() == ["persistence_sync.E005"]


def test_w001_a_default_manager_that_bypasses_the_clock(monkeypatch):
    from django.db import models

    monkeypatch.setattr(Gadget._meta, "default_manager", models.Manager())
    Gadget._meta.default_manager.model = Gadget
    assert ids() == ["persistence_sync.W001"]


def test_manage_py_check_fails_on_an_error():
    persistence_sync.register("testapp.Nothing")
    with pytest.raises(SystemCheckError, match="persistence_sync.E005"):
        call_command("check")


def test_w002_a_model_open_to_anonymous_requests():
    warnings = [e for e in checks.check_registrations() if e.id == "persistence_sync.W002"]
    assert {warning.obj for warning in warnings} == OPEN_ON_PURPOSE
    persistence_sync.unregister(Gadget)
    persistence_sync.register(Gadget, uri="gadgets", permission_classes=[IsAuthenticated])
    assert Gadget not in {e.obj for e in checks.check_registrations()
                          if e.id == "persistence_sync.W002"}


def test_w003_a_model_linked_to_users_synced_unscoped():
    from tests.testapp.models import Memo

    persistence_sync.unregister(Memo)
    persistence_sync.register(Memo, uri="memos", permission_classes=[IsAuthenticated])
    [warning] = found()
    assert warning.id == "persistence_sync.W003" and "owner='owner'" in warning.hint


def test_w002_and_w003_are_reported_by_check_deploy():
    from tests.testapp.models import Memo

    persistence_sync.unregister(Memo)
    persistence_sync.register(Memo, uri="memos")
    out = io.StringIO()
    call_command("check", "--deploy", stdout=out, stderr=out)
    assert "persistence_sync.W002" in out.getvalue()
    assert "persistence_sync.W003" in out.getvalue()


@pytest.mark.parametrize("options, message", [
    ({"owner": "text"}, "not a ForeignKey to the user model"),
    ({"owner": "nothing"}, "no field 'nothing'"),
    ({"scope": "text"}, "no scope_values"),
    ({"scope_values": lambda request: []}, "no scope="),
    ({"owner": "owner", "read_only_fields": ["colour"]}, "not synced"),
    ({"owner": "owner", "scope": "text", "scope_values": lambda request: []}, "both"),
])
def test_e006_bad_multi_user_options(options, message):
    from tests.testapp.models import Memo

    persistence_sync.unregister(Memo)
    with pytest.raises(persistence_sync.RegistrationError, match=message):
        persistence_sync.register(Memo, uri="memos", **options)
    persistence_sync.register("testapp.Memo", uri="memos", **options)
    assert "persistence_sync.E006" in ids()
