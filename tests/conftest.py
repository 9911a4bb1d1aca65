"""Fixtures shared by the whole suite.

The example site (``testproject``) is the test project: its to-do models are
registered at /projectUpdates, /taskUpdates and /tagUpdates, per user
(``owner="owner"``); objects the tests create without an owner belong to the
demo user, as whom :class:`SyncClient` syncs.
"""

import json

import pytest
from django.test import Client

from persistence_sync import registry
from tests import databases
from tests.fakes import RecordingServer


def pytest_configure(config):
    databases.configure(config)


def pytest_collection_modifyitems(config, items):
    # PS_DB names a server that is not reachable (or has no driver here):
    # skip everything with one reason instead of erroring in every test.
    databases.skip_all_if_unavailable(config, items)


def pytest_report_header(config):
    return databases.report_header(config)


def demo_user():
    from django.contrib.auth import get_user_model
    from todo.models import demo_owner

    return get_user_model()._default_manager.get(pk=demo_owner())


@pytest.fixture(autouse=True)
def demo_user_here(request):
    """The demo user in the test database, as ``migrate`` makes it on every site.

    ``syncall`` maps what a remote sends for ``owner=`` models to the local
    user with the remote account's username (the fakes answer as "demo"), and
    pytest-django's flushes drop the migration's user.
    """
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction") or "transactional_db" in request.fixturenames
    request.getfixturevalue("transactional_db" if transactional else "db")
    demo_user()


class DemoClient(Client):
    """Django's test client, logged in as the demo user at its first request."""

    logged_in = False

    def request(self, **request):
        if not self.logged_in:
            self.logged_in = True
            self.force_login(demo_user())
        return super().request(**request)


def answer_bytes(response):
    """The body of a test-client response, whether it was streamed or not."""
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


class SyncClient:
    """A protocol client over Django's test client: pull() and push(), as the demo user."""

    def __init__(self, client=None):
        self.client = client or DemoClient()

    def pull(self, uri, since=0, expect=200, **params):
        response = self.client.get(f"/{uri}", {"since": since, **params})
        body = answer_bytes(response)
        assert response.status_code == expect, body
        return json.loads(body)

    def push(self, uri, items, expect=200):
        response = self.client.post(
            f"/{uri}", data=json.dumps(items), content_type="application/json"
        )
        assert response.status_code == expect, response.content
        return response.json()


@pytest.fixture
def sync():
    return SyncClient()


@pytest.fixture(params=["raw statement", "ORM statements"], ids=["raw-tick", "orm-tick"])
def tick_by(request, monkeypatch):
    """Each way the clock ticks: SQLite, PostgreSQL and MySQL run one raw
    statement; any other database backend (Oracle, a third-party one) the
    ORM's statements, which must give the same stamps."""
    from persistence_sync import clock

    if request.param == "ORM statements":
        monkeypatch.setattr(clock, "_tick_statements", lambda connection: None)
    return request.param


@pytest.fixture
def fresh_registry():
    """A copy of the default registry, swapped in for the test to change at will.

    ``persistence_sync.register()`` and friends, the checks and
    ``include("persistence_sync.urls")`` all use it; the original (and its
    URLs) is put back afterwards, whatever the test (un)registered.
    """
    original = registry.default
    registry.default = original.copy()
    registry.default.changed()
    try:
        yield registry.default
    finally:
        registry.default = original
        original.changed()


@pytest.fixture
def recording_server():
    """A real HTTP server that records each request and answers as the test scripts
    (:class:`tests.fakes.RecordingServer`); stopped afterwards."""
    server = RecordingServer()
    try:
        yield server
    finally:
        server.close()
