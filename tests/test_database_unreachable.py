"""A database that cannot be reached: JSON 503 with Retry-After, from the first step (issue 20).

DRF authenticates (session, HTTP Basic, token), throttles and checks
permissions before a view's own code runs, and each may read the database.
A database that cannot be reached failed there with Django's HTML 500, which
the classic client has no way to read. Every step of every endpoint of both
protocols must answer the protocol's JSON 503, with ``Retry-After``, and
store nothing.

The fault is real: the test database's connection is closed and pointed at
an address where nothing listens (a server database), or at a file that
cannot be opened (SQLite), so the real driver fails to connect.
"""

import base64
import contextlib
import json
import socket

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.permissions import BasePermission
from rest_framework.throttling import BaseThrottle
from todo.models import Task

from persistence_sync import clock
from tests.conftest import answer_bytes
from tests.testapp.models import Gadget

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse"


@contextlib.contextmanager
def database_unreachable(tmp_path):
    """The default database, out of reach until the block ends; its connection is reopened after."""
    saved = dict(connection.settings_dict)
    connection.close()
    with socket.socket() as bound:  # a port of ours where nothing listens: refused at once
        bound.bind(("127.0.0.1", 0))
        if connection.vendor == "sqlite":
            connection.settings_dict["NAME"] = str(tmp_path / "no such directory" / "db.sqlite3")
        else:
            connection.settings_dict.update(HOST="127.0.0.1", PORT=str(bound.getsockname()[1]))
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict.clear()
            connection.settings_dict.update(saved)


@pytest.fixture
def user():
    return get_user_model().objects.create_user("alice", password=PASSWORD)


def session_client(user):
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)  # a session row in the database, read by every request
    return client


def basic_client(user):
    credentials = base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
    return Client(HTTP_AUTHORIZATION=f"Basic {credentials}")


def token_client(user):
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")


CLIENTS = {"session": session_client, "basic": basic_client, "token": token_client}

# (method, path, body) of every endpoint of both protocols, as a signed-in client sends them.
REQUESTS = {
    "classic-pull": ("get", "/taskUpdates?since=0", None),
    "classic-push": ("post", "/taskUpdates", [{"id": "T1", "name": "never stored"}]),
    "watermelon-pull": ("get", "/watermelon?last_pulled_at=null&schema_version=1", None),
    "watermelon-push": ("post", "/watermelon?last_pulled_at=0",
                        {"tasks": {"created": [{"id": "T2", "name": "never stored"}],
                                   "updated": [], "deleted": []}}),
}


def send(client, request):
    method, path, body = request
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, json.dumps(body), content_type="application/json")


def assert_unavailable(response, method):
    assert response.status_code == 503, answer_bytes(response)
    assert response["Content-Type"] == "application/json"
    assert int(response["Retry-After"]) > 0
    body = json.loads(answer_bytes(response))
    assert body["status"] == "error" and "retry later" in body["error"]
    if method == "post":
        assert "nothing was stored" in body["error"]


@pytest.mark.parametrize("endpoint", sorted(REQUESTS))
@pytest.mark.parametrize("authentication", sorted(CLIENTS))
def test_a_signed_in_request_gets_json_503_with_retry_after(user, authentication, endpoint,
                                                             tmp_path, caplog):
    client = CLIENTS[authentication](user)
    method, path, _ = REQUESTS[endpoint]
    assert send(client, ("get", path.split("?")[0] + "?since=0&last_pulled_at=null",
                         None)).status_code == 200  # signed in, while the database is here
    before = clock.committed_now(Task, "default")
    with database_unreachable(tmp_path):
        response = send(client, REQUESTS[endpoint])
    assert_unavailable(response, method)
    assert not Task.objects.exists() and clock.committed_now(Task, "default") == before
    assert any(record.name == "persistence_sync.server" and "OperationalError" in record.getMessage()
               for record in caplog.records)
    assert send(client, REQUESTS[endpoint]).status_code == 200  # once it is back: the retry works


class MembersOnly(BasePermission):
    """A permission that reads the database, as a membership or a plan check does."""

    def has_permission(self, request, view):
        return get_user_model().objects.filter(is_active=True).exists()


class QuotaFromTheDatabase(BaseThrottle):
    def allow_request(self, request, view):
        return get_user_model().objects.count() < 1000


@pytest.mark.parametrize("option", ["permission_classes", "throttle_classes"])
def test_a_permission_or_throttle_reading_the_database_gets_json_503(fresh_registry, user,
                                                                     option, tmp_path):
    step = MembersOnly if option == "permission_classes" else QuotaFromTheDatabase
    fresh_registry.unregister(Gadget)
    fresh_registry.register(Gadget, uri="gadgets", **{option: [step]})
    client = Client()  # anonymous: nothing read before that step
    assert client.get("/gadgets?since=0").status_code == 200
    with database_unreachable(tmp_path):
        pull = client.get("/gadgets?since=0")
        push = client.post("/gadgets", '[{"id": "G1", "name": "x"}]',
                           content_type="application/json")
    assert_unavailable(pull, "get")
    assert_unavailable(push, "post")
    assert not Gadget.objects.exists()


def test_an_integrity_error_outside_a_push_is_a_server_error_not_a_503(fresh_registry, user):
    """Only unavailability is a 503: a bug's IntegrityError still reaches Django's report."""
    from django.db import IntegrityError

    class Broken(BasePermission):
        def has_permission(self, request, view):
            raise IntegrityError("a bug in a permission class")

    fresh_registry.unregister(Gadget)
    fresh_registry.register(Gadget, uri="gadgets", permission_classes=[Broken])
    with pytest.raises(IntegrityError):
        Client().get("/gadgets?since=0")

