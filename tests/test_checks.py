"""System checks: one test per id, and manage.py check really fails."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

import persistence_sync
from persistence_sync import checks, registry
from tests.test_registry import restore_registry  # noqa: F401  (fixture)
from tests.testapp.models import Gadget, Node

pytestmark = pytest.mark.usefixtures("restore_registry")


def ids():
    return [error.id for error in checks.check_registrations()]


def test_the_example_site_passes():
    assert ids() == []


def test_e001_a_label_registration_of_a_model_that_is_not_syncable():
    persistence_sync.register("testapp.Plain")
    assert ids() == ["persistence_sync.E001"]


def test_e002_two_registrations_on_one_uri():
    persistence_sync.unregister(Node)
    persistence_sync.register("testapp.Node", uri="gadgets")
    [error] = checks.check_registrations()
    assert error.id == "persistence_sync.E002" and "gadgets" in error.msg


def test_e003_a_field_that_does_not_exist():
    persistence_sync.unregister(Node)
    persistence_sync.register("testapp.Node", fields=["label", "colour"])
    [error] = checks.check_registrations()
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
