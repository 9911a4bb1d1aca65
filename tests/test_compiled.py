"""Queries compiled once per process (persistence_sync.compiled): the same rows as the ORM's,
and the hot paths, once warm, compile nothing."""

import contextvars
import datetime
import decimal
import json

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections, models
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import persistence_sync
from persistence_sync import compiled
from persistence_sync.models import SyncableManager
from tests.conftest import answer_bytes
from tests.testapp.models import Gadget

pytestmark = pytest.mark.django_db


def gadgets_named(names):
    return Gadget.objects.filter(name__in=names).order_by("name").values_list(
        "name", "price", "due", "day", "data", "active")


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 9])
def test_a_compiled_query_reads_what_the_orm_reads(count):
    # Lists of every length share a few compiled shapes (padded to a power of
    # two); converted columns (decimals, dates, JSON) come back as the ORM's.
    due = timezone.now().replace(microsecond=0)
    Gadget.objects.create(name="")  # an empty value, which no list below names
    for index in range(10):
        Gadget.objects.create(name=f"g{index}", price=decimal.Decimal("1.25") * index, due=due,
                              day=datetime.date(2026, 1, 1 + index), data={"n": [index]},
                              active=index % 2 == 0)
    names = [f"g{index}" for index in range(count)] + ["missing"]
    key = ("gadgets named",)
    expected = list(gadgets_named(names))
    assert compiled.fetch("default", key, gadgets_named, names) == expected
    # Once more, now from the template: other values, same shape.
    others = [f"g{index}" for index in range(10 - count, 10)] + ["missing"]
    assert compiled.fetch("default", key, gadgets_named, others) == list(gadgets_named(others))


def test_values_that_cannot_be_marked_are_read_by_the_orm():
    Gadget.objects.create(name="dated", due=timezone.now())

    def due_after(moment):
        return Gadget.objects.filter(due__gt=moment).values_list("name")

    earlier = timezone.now() - datetime.timedelta(days=1)
    assert compiled.fetch("default", ("due after",), due_after, earlier) == [("dated",)]
    assert compiled.fetch("default", ("due after",), due_after, timezone.now()) == []


def test_a_value_that_a_lookup_transforms_is_read_afresh_each_time():
    # contains wraps its value in % (escaped): it does not come out as it went
    # in, so the query is built for each value, as the ORM would.
    for name in ("apple", "banana"):
        Gadget.objects.create(name=name)

    def containing(part):
        return Gadget.objects.filter(name__contains=part).values_list("name")

    assert compiled.fetch("default", ("containing",), containing, "pp") == [("apple",)]
    assert compiled.fetch("default", ("containing",), containing, "nan") == [("banana",)]


@pytest.fixture
def sqlite_alias():
    """A second database of another kind, as a project may add one (a PostgreSQL primary
    and a SQLite store, say): made for the test, with the users' table only."""
    from django.db.backends.sqlite3.base import DatabaseWrapper

    if connection.vendor == "sqlite":
        pytest.skip("the default database is SQLite already (PS_DB=postgresql or mysql)")
    configured = connections.configure_settings(
        {"default": {}, "side": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
    connections["side"] = side = DatabaseWrapper(configured["side"], alias="side")
    with side.schema_editor() as editor:
        editor.create_model(get_user_model())
    try:
        yield "side"
    finally:
        side.close()
        del connections["side"]


def test_each_database_reads_with_its_own_compiled_query(sqlite_alias):
    # The same key on two databases: each its own SQL and converters (SQLite's
    # dates come back as text without them).
    users = get_user_model()

    def named(names):
        return users.objects.filter(username__in=names).values_list("username", "is_active",
                                                                     "date_joined")

    for alias in ("default", sqlite_alias):
        users.objects.db_manager(alias).create_user("ann", password="unused")
        expected = list(named(["ann", "bob"]).using(alias))
        assert compiled.fetch(alias, ("named",), named, ["ann", "bob"]) == expected


# The shop a request serves, as a multi-tenant project keeps it: read by the
# model's default manager on every call.
current_shop = contextvars.ContextVar("current_shop", default="")


class ShopManager(SyncableManager):
    def get_queryset(self):
        return super().get_queryset().filter(name__startswith=current_shop.get())


class ShopGadget(Gadget):
    objects = ShopManager()

    class Meta:
        proxy = True
        app_label = "testapp"


def test_a_manager_that_reads_the_request_state_is_asked_every_time(fresh_registry):
    persistence_sync.register(ShopGadget, uri="shopGadgets")
    Gadget.objects.create(name="north-1")
    Gadget.objects.create(name="south-1")
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create(username="shopper"))
    seen = {}
    for shop in ("north", "south", "north"):
        token = current_shop.set(shop)
        try:
            response = client.get("/shopGadgets", {"since": 0})
        finally:
            current_shop.reset(token)
        seen.setdefault(shop, []).append(
            [item["name"] for item in response.json()["updates"]])
    assert seen == {"north": [["north-1"], ["north-1"]], "south": [["south-1"]]}


@pytest.fixture
def compilations(monkeypatch):
    """The SQL compiled by the ORM meanwhile (SQLCompiler.as_sql calls)."""
    made = []
    original = SQLCompiler.as_sql

    def as_sql(self, *args, **kwargs):
        sql, params = original(self, *args, **kwargs)
        made.append(sql)
        return sql, params

    monkeypatch.setattr(SQLCompiler, "as_sql", as_sql)
    return made


def test_a_warm_poll_and_one_object_push_compile_no_query(compilations):
    users = [get_user_model().objects.create(username=name) for name in ("ann", "bob")]
    clients = []
    for user in users:
        client = APIClient()  # signed in as devices are, with a token
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        clients.append(client)
    since = {}
    for number, client in enumerate(clients):  # warm: the first request of each shape compiles
        assert client.post("/taskUpdates", [{"id": f"warm{number}", "name": "w"}],
                           format="json").status_code == 200
        since[number] = json.loads(answer_bytes(client.get("/taskUpdates", {"since": 0})))["now"]
        assert client.get("/taskUpdates", {"since": since[number]}).status_code == 200
    compilations.clear()
    response = clients[1].post("/taskUpdates", [{"id": "hot", "name": "h"}], format="json")
    assert response.status_code == 200
    poll = clients[0].get("/taskUpdates", {"since": since[0]})
    assert poll.status_code == 200 and b'"hot"' not in answer_bytes(poll)
    poll = clients[1].get("/taskUpdates", {"since": since[1]})
    assert b'"hot"' in answer_bytes(poll)
    assert compilations == [], f"compiled per request: {compilations}"


def test_the_cache_of_templates_is_bounded(monkeypatch):
    monkeypatch.setattr(compiled, "_MAX_TEMPLATES", 3)
    compiled._templates.clear()
    for index in range(10):
        compiled.fetch("default", ("bounded", index), gadgets_named, ["x"])
    assert len(compiled._templates) == 3


def test_a_registration_queryset_with_a_models_q_is_compiled_with_its_values():
    # The registration's own queryset (a constant filter) goes into the
    # template as it is; only the request's values are replaced.
    Gadget.objects.create(name="on", active=True)
    Gadget.objects.create(name="off", active=False)

    def active_named(names):
        return Gadget.objects.filter(models.Q(active=True), name__in=names).values_list("name")

    assert compiled.fetch("default", ("active",), active_named, ["on", "off"]) == [("on",)]
    assert compiled.fetch("default", ("active",), active_named, ["off"]) == []
