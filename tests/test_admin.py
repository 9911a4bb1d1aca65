"""The admin: readable _lastChange on synced models; read-only pages for the app's tables."""

import datetime

import pytest
from django.db.models import F
from django.test import override_settings
from todo.models import Project, Task

from persistence_sync.admin import format_stamp
from persistence_sync.clock import Clock
from persistence_sync.models import SyncState, Tombstone

pytestmark = pytest.mark.django_db

STAMP = 1_796_075_942_123  # 2026-11-30 21:59:02.123 UTC


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    return client


def test_format_stamp_shows_date_time_and_raw_value():
    assert format_stamp(STAMP) == "2026-11-30 21:59:02.123 (1796075942123)"
    assert format_stamp(0) == "never (0)"
    with override_settings(TIME_ZONE="Europe/Paris"):
        assert format_stamp(STAMP) == "2026-11-30 22:59:02.123 (1796075942123)"


def test_synced_model_changelist_and_form_show_last_change_readably(admin_client):
    task = Task.objects.create(name="Dishes")
    Task.objects.filter(pk=task.pk).update()  # any write path stamps it
    task.refresh_from_db()
    html = admin_client.get("/admin/todo/task/").content.decode()
    assert format_stamp(task.last_change) in html and "Last change (_lastChange)" in html
    form = admin_client.get(f"/admin/todo/task/{task.pk}/change/").content.decode()
    assert format_stamp(task.last_change) in form


def make_rows():
    project = Project.objects.create(name="p")
    pk = project.pk
    project.delete()
    Task.objects.create(name="t").delete()
    Tombstone.objects.filter(object_id=pk).update(last_change=F("last_change") - 10 * 86_400_000)
    SyncState.objects.create(model="todo.task", remote="https://central.example/taskUpdates",
                             server_date=STAMP, server_push_date=STAMP - 1000,
                             push_stamps=[STAMP - 2000, STAMP - 1000],
                             synced_at=datetime.datetime(2026, 11, 30, 12, tzinfo=datetime.timezone.utc))
    Clock.objects.filter(model="todo.task").update(tombstones_pruned_to=STAMP)
    return pk


@pytest.mark.parametrize("url", [
    "/admin/persistence_sync/tombstone/",
    "/admin/persistence_sync/syncstate/",
    "/admin/persistence_sync/clock/",
])
def test_the_apps_tables_are_listed_read_only(admin_client, url):
    make_rows()
    response = admin_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{url}add/"' not in html and 'name="action"' not in html  # no add, no delete action
    assert admin_client.get(url + "add/").status_code == 403


def test_tombstones_filter_by_model_and_age(admin_client):
    old_project = make_rows()
    url = "/admin/persistence_sync/tombstone/"
    assert len(admin_client.get(url).context["cl"].result_list) == 2
    by_model = admin_client.get(url, {"model": "todo.task"}).context["cl"].result_list
    assert [t.model for t in by_model] == ["todo.task"]
    old = admin_client.get(url, {"older_than_days": "7"}).context["cl"].result_list
    assert [t.object_id for t in old] == [old_project]
    tombstone = Tombstone.objects.get(object_id=old_project)
    change = admin_client.get(f"{url}{tombstone.pk}/change/")
    assert change.status_code == 200 and 'type="submit"' not in change.content.decode().split("<form")[-1]
    assert admin_client.post(f"{url}{tombstone.pk}/delete/").status_code == 403
    assert Tombstone.objects.filter(pk=tombstone.pk).exists()


def test_sync_state_shows_last_pull_push_and_success(admin_client):
    make_rows()
    html = admin_client.get("/admin/persistence_sync/syncstate/").content.decode()
    assert "https://central.example/taskUpdates" in html
    assert format_stamp(STAMP) in html and format_stamp(STAMP - 1000) in html
    assert "Last success" in html and "Nov. 30, 2026" in html
    state = SyncState.objects.get()
    page = admin_client.get(f"/admin/persistence_sync/syncstate/{state.pk}/change/")
    assert f"[{STAMP - 2000}, {STAMP - 1000}]" in page.content.decode()  # the split push's echoes


def test_clock_shows_value_and_tombstone_horizon(admin_client):
    make_rows()
    html = admin_client.get("/admin/persistence_sync/clock/").content.decode()
    value = Clock.objects.get(model="todo.task").value
    assert format_stamp(value) in html and format_stamp(STAMP) in html
    clock = admin_client.post("/admin/persistence_sync/clock/todo.task/change/", {"value": 1})
    assert clock.status_code == 403 and Clock.objects.get(model="todo.task").value == value
