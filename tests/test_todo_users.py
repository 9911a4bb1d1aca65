"""The example site per user: sign-in, each user's own to-do data, no anonymous sync."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from todo.models import Project, Task
from todo.views import DEFAULT_PROJECT_NAME

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def npm_not_needed(monkeypatch):
    from todo import clientlib

    monkeypatch.setattr(clientlib, "ensure_installed", lambda: None)


def test_the_page_asks_to_sign_in_and_the_demo_account_from_the_migrations_works():
    browser = Client()
    response = browser.get("/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")
    assert "demo" in browser.get(response.url).content.decode()
    signed_in = browser.post("/accounts/login/", {"username": "demo", "password": "demo",
                                                  "next": "/"})
    assert signed_in.status_code == 302 and signed_in.url == "/"
    page = browser.get("/")
    assert page.status_code == 200 and 'id="username">demo<' in page.content.decode()


def test_two_users_each_get_their_own_project_and_tasks():
    ann, bob = (User.objects.create_user(name, password="pw") for name in ("ann", "bob"))
    browsers = {}
    for user in (ann, bob):
        browsers[user] = Client()
        browsers[user].force_login(user)
        assert browsers[user].get("/").status_code == 200
    assert sorted(Project.objects.values_list("owner__username", "name")) == [
        ("ann", DEFAULT_PROJECT_NAME), ("bob", DEFAULT_PROJECT_NAME)]
    ann_project = Project.objects.get(owner=ann)
    pushed = browsers[ann].post("/taskUpdates", json.dumps([
        {"id": "T1", "name": "ann's", "done": False, "project": ann_project.pk}]),
        content_type="application/json")
    assert pushed.status_code == 200 and Task.objects.get().owner == ann
    bob_pull = browsers[bob].get("/taskUpdates", {"since": 0}).json()
    assert bob_pull["updates"] == []
    [bob_project] = browsers[bob].get("/projectUpdates", {"since": 0}).json()["updates"]
    # bob's own, and no user id on the wire (the owner is implied by who syncs).
    assert bob_project["id"] == Project.objects.get(owner=bob).pk and "owner" not in bob_project
    # bob may not file a task under ann's project: answered like a missing one.
    refused = browsers[bob].post("/taskUpdates", json.dumps([
        {"id": "T2", "name": "bob's", "project": ann_project.pk}]),
        content_type="application/json")
    assert refused.status_code == 400 and Task.objects.count() == 1


@pytest.mark.parametrize("uri", ["projectUpdates", "taskUpdates", "tagUpdates"])
def test_anonymous_sync_is_refused(uri):
    anonymous = Client()
    assert anonymous.get(f"/{uri}", {"since": 0}).status_code in (401, 403)
    response = anonymous.post(f"/{uri}", '[{"id": "X", "name": "x"}]',
                              content_type="application/json")
    assert response.status_code in (401, 403) and response.json()["status"] == "error"
    assert not Project.objects.exists() and not Task.objects.exists()
