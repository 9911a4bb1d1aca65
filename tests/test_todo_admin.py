"""The example site's admin: the demo account manages its own to-do data, nothing else."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from todo.models import Project, Tag, Task

from tests.conftest import demo_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_browser():
    demo = demo_user()
    demo.is_staff = True  # as migration todo.0006 makes it (flushed by the test database)
    demo.save()
    browser = Client()
    browser.force_login(demo)
    return browser


@pytest.fixture
def others_data():
    ann = get_user_model().objects.create_user("ann")
    project = Project.objects.create(name="ann's project", owner=ann)
    Task.objects.create(id="ANN1", name="ann's task", owner=ann, project=project)
    Tag.objects.create(name="ann's tag", owner=ann)
    return ann


def test_migration_0006_makes_the_demo_account_staff():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("todo.migrations.0006_demo_user_is_staff")
    demo = demo_user()
    demo.is_staff = False
    demo.save()
    migration.demo_is_staff(apps, None)
    demo.refresh_from_db()
    assert demo.is_staff


def test_the_demo_account_sees_and_edits_its_own_tasks_only(demo_browser, others_data):
    mine = Task.objects.create(id="MINE", name="my task")
    index = demo_browser.get("/admin/")
    assert index.status_code == 200
    page = index.content.decode()
    assert "/admin/todo/task/" in page and "/admin/auth/user/" not in page
    listing = demo_browser.get("/admin/todo/task/").content.decode()
    assert "my task" in listing and "ann&#x27;s task" not in listing and "ann" not in listing
    assert demo_browser.get("/admin/todo/task/ANN1/change/").status_code in (302, 403, 404)
    before = mine.last_change
    form = demo_browser.get("/admin/todo/task/MINE/change/").content.decode()
    assert "ann&#x27;s project" not in form and 'name="owner"' not in form
    saved = demo_browser.post("/admin/todo/task/MINE/change/", {
        "name": "edited in the admin", "done": "on", "priority": 0})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    mine.refresh_from_db()
    assert (mine.name, mine.done) == ("edited in the admin", True)
    assert mine.last_change > before  # the page's next sync brings it
    assert demo_browser.get("/admin/auth/user/").status_code == 403


def test_what_the_demo_account_adds_in_the_admin_is_its_own(demo_browser, others_data):
    added = demo_browser.post("/admin/todo/project/add/", {
        "name": "from the admin", "tasks-TOTAL_FORMS": 1, "tasks-INITIAL_FORMS": 0,
        "tasks-0-name": "a task too", "tasks-0-done": ""})
    assert added.status_code == 302, added.content.decode()[:2000]
    project = Project.objects.get(name="from the admin")
    assert project.owner == demo_user() and project.tasks.get().owner == demo_user()


def test_a_superuser_still_sees_everyone(others_data):
    root = get_user_model().objects.create_superuser("root", password="pw")
    browser = Client()
    browser.force_login(root)
    listing = browser.get("/admin/todo/task/").content.decode()
    assert "ann&#x27;s task" in listing
