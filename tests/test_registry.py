"""register() / unregister() / is_registered() and the options of a registration."""

import inspect
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.test import Client, override_settings
from django.test.utils import isolate_apps
from django.urls import include, path, resolve, reverse
from rest_framework.permissions import IsAuthenticated
from rest_framework.throttling import BaseThrottle
from todo.models import Task

import persistence_sync
from persistence_sync import registry
from persistence_sync.exceptions import RegistrationError
from persistence_sync.models import SyncableModel, Tombstone
from persistence_sync.registry import SyncRegistry
from persistence_sync.routers import SyncRouter, default_router
from tests.testapp.models import Gadget, Node, Note, Plain

pytestmark = pytest.mark.usefixtures("fresh_registry")


def test_register_as_a_call_returns_the_model_and_serves_it(sync, db):
    persistence_sync.unregister(Gadget)
    assert not persistence_sync.is_registered(Gadget)
    assert sync.client.get("/gadgets").status_code == 404
    assert persistence_sync.register(Gadget, uri="/gizmos") is Gadget
    assert persistence_sync.is_registered("testapp.Gadget")
    assert sync.pull("gizmos")["updates"] == []
    assert reverse("persistence_sync:testapp.gadget") == "/gizmos"


def test_register_as_a_class_decorator():
    persistence_sync.unregister(Node)
    decorated = persistence_sync.register(uri="nodes2", fields=["label"])(Node)
    assert decorated is Node
    assert persistence_sync.get_registration(Node).fields == ("label",)


def test_default_uri_and_fields():
    persistence_sync.unregister(Gadget)
    persistence_sync.register(Gadget)
    reg = persistence_sync.get_registration(Gadget)
    assert reg.uri == "gadgetChanges"
    assert "secret" in reg.fields and "last_change" not in reg.fields and "id" not in reg.fields


def test_a_second_registration_of_a_model_is_refused_and_says_where_the_first_was():
    with pytest.raises(RegistrationError, match=r"testapp.Gadget is already registered.*models.py"):
        persistence_sync.register(Gadget, uri="other")


def test_a_second_registration_of_a_uri_is_refused():
    persistence_sync.unregister(Node)
    with pytest.raises(RegistrationError, match=r"both registered on the URI 'gadgets'.*uri="):
        persistence_sync.register(Node, uri="gadgets")


def test_a_model_that_is_not_syncable_is_refused():
    with pytest.raises(RegistrationError, match=r"testapp.Plain .*not a SyncableModel.*inherit"):
        persistence_sync.register(Plain)


@pytest.mark.parametrize("option", ["fields", "exclude"])
def test_an_unknown_field_is_refused_with_the_valid_names(option):
    persistence_sync.unregister(Gadget)
    with pytest.raises(RegistrationError, match=r"testapp.Gadget has no field 'colour'.*Choose among: name"):
        persistence_sync.register(Gadget, **{option: ["colour"]})


def test_unregistering_an_unregistered_model_is_refused():
    persistence_sync.unregister(Gadget)
    with pytest.raises(RegistrationError, match="not registered"):
        persistence_sync.unregister(Gadget)


def test_registrations_are_ordered_parents_before_children():
    labels = [reg.label for reg in persistence_sync.registrations()]
    assert labels.index("todo.project") < labels.index("todo.task")


def test_the_generated_view_is_named_after_its_model():
    assert resolve("/taskUpdates").func.view_class.__name__ == "TaskSyncView"
    assert resolve("/projectUpdates").func.view_class.__name__ == "ProjectSyncView"


def test_drf_classes_default_to_the_project_settings_and_can_be_set(sync, db):
    from rest_framework.settings import api_settings

    assert list(registry.permission_classes_of(persistence_sync.get_registration(Task))) == list(
        api_settings.DEFAULT_PERMISSION_CLASSES)

    class NoMore(BaseThrottle):
        def allow_request(self, request, view):
            return False

    persistence_sync.unregister(Gadget)
    persistence_sync.register(Gadget, uri="gadgets", permission_classes=[IsAuthenticated])
    response = Client().get("/gadgets")  # anonymous
    assert response.status_code in (401, 403) and response.json()["status"] == "error"
    persistence_sync.unregister(Gadget)
    persistence_sync.register(Gadget, uri="gadgets", throttle_classes=[NoMore])
    assert sync.client.get("/gadgets").status_code == 429


class TestVisibility:
    """get_queryset(request) limits what a request sees and touches (see testapp.Note)."""

    def headers(self, owner):
        return {"HTTP_X_OWNER": owner}

    def test_pulls_see_only_the_visible_objects(self, sync, db):
        Note.objects.create(id="A1", owner="ann", text="a")
        Note.objects.create(id="B1", owner="bob", text="b")
        response = sync.client.get("/notes", {"since": 0}, **self.headers("ann"))
        assert [u["id"] for u in response.json()["updates"]] == ["A1"]

    def test_pushes_may_not_touch_invisible_objects(self, sync, db):
        Note.objects.create(id="B1", owner="bob", text="b")
        response = sync.client.post("/notes", '[{"id": "B1", "text": "mine now"}]',
                                    content_type="application/json", **self.headers("ann"))
        assert response.status_code == 403
        assert response.json()["errors"][0]["id"] == "B1"
        # A removal of a hidden object answers like one of a missing id (so
        # no push can probe ids, and a device holding a revoked copy is not
        # refused for ever); it removes nothing.
        removal = sync.client.post("/notes", '[{"id": "B1", "_removed": true}]',
                                   content_type="application/json", **self.headers("ann"))
        missing = sync.client.post("/notes", '[{"id": "NOPE", "_removed": true}]',
                                   content_type="application/json", **self.headers("ann"))
        assert removal.status_code == missing.status_code == 200
        assert Note.objects.get().text == "b"
        assert not Tombstone.objects.exists()

    @pytest.mark.parametrize("pushed", [
        [{"id": "N1", "owner": "bob", "text": "for bob"}],  # created out of sight
        [{"id": "A1", "owner": "bob"}],  # given away
        [{"id": "N1", "owner": "ann"}, {"id": "A1", "owner": "bob"}],  # with a valid change
    ])
    def test_a_push_that_would_leave_the_requests_sight_is_refused_whole(self, sync, db, pushed):
        """The queryset's own filter can only be applied once the rows are written: a refusal
        then undoes the whole push, also inside a caller's transaction (a savepoint)."""
        Note.objects.create(id="A1", owner="ann", text="a")
        response = sync.client.post("/notes", json.dumps(pushed), content_type="application/json",
                                    **self.headers("ann"))
        assert response.status_code == 403
        assert [error["id"] for error in response.json()["errors"]] == [pushed[-1]["id"]]
        assert list(Note.objects.values_list("id", "owner", "text")) == [("A1", "ann", "a")]

    def test_a_push_stored_without_a_request_keeps_to_the_queryset(self, db):
        # pushes.push is public: a task or view of the project's may call it
        # with the queryset it is allowed and no request; the rule still holds.
        from persistence_sync import pushes
        from persistence_sync.exceptions import ProtocolError
        from persistence_sync.scoping import Access
        from persistence_sync.serializers import parse_push

        Note.objects.create(id="B1", owner="bob", text="b")
        reg = persistence_sync.get_registration(Note)
        changes = parse_push([{"id": "B1", "text": "mine now"}], reg.codecs, 32)
        access = Access(reg, None, queryset=Note.objects.filter(owner="ann"))
        with pytest.raises(ProtocolError) as refused:
            pushes.push([pushes.Batch(reg, access, changes)], "default")
        assert refused.value.status_code == 403
        assert Note.objects.get().text == "b"

    def test_a_queryset_option_filters_like_the_hook(self, sync, db):
        persistence_sync.unregister(Note)
        persistence_sync.register(Note, uri="notes", queryset=Note.objects.filter(owner="bob"))
        Note.objects.create(id="A1", owner="ann")
        Note.objects.create(id="B1", owner="bob")
        assert [u["id"] for u in sync.pull("notes")["updates"]] == ["B1"]


def test_queryset_and_get_queryset_together_are_refused():
    with pytest.raises(RegistrationError, match="either"):
        persistence_sync.register(Note, queryset=Note.objects.all(), get_queryset=lambda r: None)


def test_a_label_registration_is_resolved_lazily():
    persistence_sync.unregister(Node)
    persistence_sync.register("testapp.Node", uri="nodes-by-label")
    assert persistence_sync.get_registration(Node).uri == "nodes-by-label"


def test_the_package_root_re_exports_the_default_registrys_methods():
    assert persistence_sync.register.__self__ is registry.default
    assert persistence_sync.registrations.__func__ is SyncRegistry.registrations
    # help(persistence_sync.register) shows the options, not (*args, **kwargs).
    options = inspect.signature(persistence_sync.register).parameters
    assert list(options)[:3] == ["model", "uri", "fields"] and "throttle_classes" in options
    assert "get_queryset(request)" in persistence_sync.register.__doc__


def test_an_unknown_option_is_refused_with_the_valid_names():
    persistence_sync.unregister(Gadget)
    with pytest.raises(RegistrationError, match=r"unknown option\(s\) onwer; the options are: uri, "):
        persistence_sync.register(Gadget, onwer="owner")


def test_urls_are_cached_until_a_registration_changes(fresh_registry):
    urls = default_router.urls
    assert default_router.urls is urls
    persistence_sync.unregister(Gadget)
    assert "gadgets" not in [str(pattern.pattern) for pattern in default_router.urls]
    persistence_sync.register(Gadget, uri="gizmos")
    assert "gizmos" in [str(pattern.pattern) for pattern in default_router.urls]


def test_a_copy_is_independent_of_its_original(fresh_registry):
    copy = fresh_registry.copy()
    copy.unregister(Gadget)
    assert fresh_registry.is_registered(Gadget) and not copy.is_registered(Gadget)


# A registry of its own, served by a router of its own (this module is the URLconf).
separate = SyncRegistry()
urlpatterns = [path("elsewhere/", include((SyncRouter(separate).urls, "elsewhere")))]


@override_settings(ROOT_URLCONF=__name__)
def test_a_separate_registry_serves_a_later_registration(sync, db):
    assert sync.client.get("/elsewhere/gadgets").status_code == 404
    separate.register(Gadget, uri="gadgets")
    try:
        assert sync.pull("elsewhere/gadgets")["updates"] == []
        assert reverse("elsewhere:testapp.gadget") == "/elsewhere/gadgets"
    finally:
        separate.unregister(Gadget)
    assert sync.client.get("/elsewhere/gadgets").status_code == 404


@override_settings(ROOT_URLCONF=__name__)
def test_a_model_served_only_by_a_separate_registry_keeps_its_scope_end_to_end(db):
    """Deletions and scoping follow a registration of a second registry, not only the default's."""
    from django.contrib.auth.models import User

    from tests.testapp.models import Memo

    persistence_sync.unregister(Memo)  # now only the separate registry syncs it
    separate.register(Memo, uri="memos", owner="owner")
    try:
        ann, bob = (User.objects.create_user(name) for name in ("ann", "bob"))
        devices = {}
        for user in (ann, bob):
            devices[user] = Client()
            devices[user].force_login(user)
        pushed = devices[ann].post("/elsewhere/memos", '[{"id": "M1", "text": "mine"}]',
                                   content_type="application/json")
        assert pushed.status_code == 200 and Memo.objects.get().owner == ann
        since = pushed.json()["now"]
        Memo.objects.get().delete()  # the site's own code: its tombstone gets ann's scope
        assert Tombstone.objects.get().scope == str(ann.pk)
        removed = devices[ann].get("/elsewhere/memos", {"since": since}).json()["updates"]
        assert removed == [{"id": "M1", "_removed": True, "_lastChange": removed[0]["_lastChange"]}]
        assert devices[bob].get("/elsewhere/memos", {"since": since}).json()["updates"] == []
    finally:
        separate.unregister(Memo)


def test_scope_values_are_computed_once_per_request(sync, db, monkeypatch):
    from django.contrib.auth.models import Group

    from tests.testapp import models as testapp

    calls = []
    real = testapp.teams_of

    def counting(request):
        calls.append(request.path)
        return real(request)

    persistence_sync.unregister(testapp.Board)
    persistence_sync.register(testapp.Board, uri="boards", scope="team", scope_values=counting,
                              fields=["team", "title"])
    group = Group.objects.create(name="red")
    sync.client.get("/boards", {"since": 0})
    sync.client.post("/boards", f'[{{"id": "B1", "team": {group.pk}}}]',
                     content_type="application/json")
    sync.client.get("/watermelon", {"last_pulled_at": "null"})
    assert calls == ["/boards", "/boards", "/watermelon"]


@isolate_apps("tests.testapp")
def test_a_relation_to_a_model_that_does_not_exist_leaves_the_urls_working():
    # The README's first draft: ForeignKey("Project") with no Project. Django's
    # own checks report it (fields.E300); the URLs must not hide that behind
    # "does not appear to have any patterns ... circular import".
    class Orphan(SyncableModel):
        project = models.ForeignKey("Project", null=True, on_delete=models.CASCADE)

        class Meta:
            app_label = "testapp"

    persistence_sync.register(Orphan, uri="orphans")
    assert reverse("persistence_sync:testapp.orphan") == "/orphans"
    assert registry.default.registrations()[-1].model is Orphan


def test_an_error_while_building_the_urls_is_shown_as_it_is(monkeypatch):
    def broken(self):
        raise AttributeError("'str' object has no attribute '_meta'")

    monkeypatch.setattr(SyncRegistry, "registrations", broken)
    registry.default.changed()
    with pytest.raises(ImproperlyConfigured, match="'str' object has no attribute '_meta'"):
        resolve("/gadgets")
    monkeypatch.undo()
    registry.default.changed()
    assert resolve("/gadgets").url_name == "testapp.gadget"
