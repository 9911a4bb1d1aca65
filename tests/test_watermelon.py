"""WatermelonDB's protocol at /watermelon: answers, refusals and the one-timestamp rule.

The real client's end-to-end behaviour is in
``tests/integration/test_watermelon_live.py``; these are the server's rules,
case by case, with Django's test client.
"""

import datetime
import json

import pytest
from django.test import Client, override_settings
from rest_framework.permissions import IsAuthenticated
from todo.models import Project, Task

from persistence_sync import clock
from persistence_sync.clock import Clock
from persistence_sync.watermelon import WatermelonTable, table_of
from tests.conftest import DemoClient, answer_bytes
from tests.testapp.models import Gadget, Note

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    """Django's test client as the demo user: the example site's to-do models are per user."""
    return DemoClient()


def pull(client, expect=200, **params):
    params.setdefault("last_pulled_at", "null")
    response = client.get("/watermelon", params)
    body = json.loads(answer_bytes(response))
    assert response.status_code == expect, body
    return body


def push(client, changes, last_pulled_at, expect=200, **headers):
    response = client.post(f"/watermelon?last_pulled_at={last_pulled_at}", json.dumps(changes),
                           content_type="application/json", **headers)
    assert response.status_code == expect, response.content
    return response.json()


def test_tables_are_named_by_the_plural_model_name_or_the_registration(fresh_registry):
    assert table_of(fresh_registry.get_registration(Task)).name == "tasks"
    assert table_of(fresh_registry.get_registration(Gadget)).name == "gadgets"
    fresh_registry.unregister(Gadget)
    fresh_registry.register(Gadget, uri="gadgets", watermelon="widgets")
    assert table_of(fresh_registry.get_registration(Gadget)).name == "widgets"


def test_a_first_sync_sends_raw_records_as_created(client):
    home = Project.objects.create(name="Home")
    task = Task.objects.create(name="Dishes", project=home)
    Task.objects.create(id="GONE", name="gone").delete()
    answer = pull(client)
    assert answer["changes"]["tasks"] == {
        "created": [{"id": task.pk, "name": "Dishes", "done": False, "project_id": home.pk,
                     "due": None, "priority": 0, "estimate": None, "notes": None}],
        "updated": [], "deleted": ["GONE"]}
    assert answer["timestamp"] >= task.last_change


def test_values_travel_as_watermelondb_raw_values(client):
    due = datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.timezone.utc)
    gadget = Gadget.objects.create(name="g", due=due, day=datetime.date(2024, 5, 6),
                                   data={"labels": ["a"]}, price="1.50")
    [raw] = pull(client)["changes"]["gadgets"]["created"]
    assert raw["due"] == 1714979289123 and raw["day"] == 1714953600000
    assert raw["data"] == '{"labels": ["a"]}' and raw["price"] == 1.5
    assert "secret" not in raw
    timestamp = pull(client)["timestamp"]
    push(client, {"gadgets": {"updated": [{**raw, "due": 1714979289999, "data": '{"x": 1}',
                                           "_status": "updated", "_changed": "due,data"}]}},
         timestamp)
    gadget.refresh_from_db()
    assert gadget.due == due.replace(microsecond=999000) and gadget.data == {"x": 1}


def test_later_syncs_send_changes_since_as_updated_and_deletions(client):
    task = Task.objects.create(name="a")
    timestamp = pull(client)["timestamp"]
    assert pull(client, last_pulled_at=timestamp)["changes"]["tasks"] == {
        "updated": [], "created": [], "deleted": []}
    Task.objects.filter(pk=task.pk).update(name="b")
    other = Task.objects.create(name="c")
    other_pk = other.pk
    other.delete()
    tasks = pull(client, last_pulled_at=timestamp)["changes"]["tasks"]
    assert tasks == {"updated": [{"id": task.pk, "name": "b", "done": False, "project_id": None,
                                  "due": None, "priority": 0, "estimate": None, "notes": None}],
                     "created": [], "deleted": [other_pk]}


def test_one_timestamp_covers_every_table_even_idle_ones(client):
    """An idle model's clock is brought up to the busy one's before the answer.

    Without it, ``timestamp`` (the latest clock) would claim that a write of
    the idle model stamped below it had committed, which nobody checked.
    """
    Project.objects.create(name="long ago")
    Clock.objects.filter(model="todo.project").update(value=1000)
    Task.objects.create(name="now")
    timestamp = pull(client)["timestamp"]
    assert clock.committed_now(Project, "default") == timestamp
    assert clock.committed_now(Task, "default") == timestamp
    later = Project.objects.create(name="after the pull")
    assert later.last_change > timestamp
    assert [r["id"] for r in pull(client, last_pulled_at=timestamp)["changes"]["projects"][
        "updated"]] == [later.pk]


def test_a_push_stores_every_table_at_once(client):
    timestamp = pull(client)["timestamp"]
    push(client, {
        "projects": {"created": [{"id": "P1", "name": "Home", "_status": "created", "_changed": ""}],
                     "updated": [], "deleted": []},
        "tasks": {"created": [{"id": "T1", "name": "Dishes", "done": False, "project_id": "P1"}],
                  "updated": [{"id": "T2", "name": "made by update", "done": True}],
                  "deleted": ["NEVER-EXISTED"]},
    }, timestamp)
    assert Task.objects.get(pk="T1").project_id == "P1"
    assert Task.objects.get(pk="T2").done is True  # an update of a missing record creates it


def test_a_bad_value_refuses_the_whole_push_naming_table_list_index_id_and_column(client):
    timestamp = pull(client)["timestamp"]
    body = push(client, {
        "projects": {"created": [{"id": "P1", "name": "fine"}]},
        "tasks": {"created": [{"id": "T1", "name": "fine"},
                              {"id": "T2", "name": 5, "project_id": "P1"}],
                  "updated": [{"id": "T3", "done": "yes"}]},
        "gadgets": {"created": [{"id": "G1", "name": "g", "due": "tomorrow"}]},
    }, timestamp, expect=400)
    assert body["errors"] == [
        {"table": "gadgets", "list": "created", "index": 0, "id": "G1", "field": "due",
         "message": "expected milliseconds since 1970"},
        {"table": "tasks", "list": "created", "index": 1, "id": "T2", "field": "name",
         "message": "expected a string, got a number"},
        {"table": "tasks", "list": "updated", "index": 0, "id": "T3", "field": "done",
         "message": "expected true or false, got a string"},
    ]
    assert not Project.objects.exists() and not Task.objects.exists()


@pytest.mark.parametrize("body, message", [
    ([], "JSON object of tables"),
    ({"planets": {}}, "Unknown table 'planets'"),
    ({"tasks": {"created": {}}}, "'created', 'updated' and 'deleted' lists"),
    ({"tasks": {"renamed": []}}, "'created', 'updated' and 'deleted' lists"),
])
def test_malformed_pushes_are_refused(client, body, message):
    assert message in push(client, body, 1, expect=400)["error"]


@pytest.mark.parametrize("query", ["", "?last_pulled_at=abc", "?last_pulled_at=-5"])
def test_a_push_needs_a_last_pulled_at(client, query):
    response = client.post(f"/watermelon{query}", "{}", content_type="application/json")
    assert response.status_code == 400 and "last_pulled_at" in response.json()["error"]


def test_a_push_of_a_record_changed_after_last_pulled_at_is_refused_whole(client):
    task = Task.objects.create(name="a")
    timestamp = pull(client)["timestamp"]
    Task.objects.filter(pk=task.pk).update(name="server")
    body = push(client, {"projects": {"created": [{"id": "P1", "name": "new"}]},
                         "tasks": {"updated": [{"id": task.pk, "name": "device"}]}},
                timestamp, expect=409)
    assert body["errors"] == [{"table": "tasks", "id": task.pk,
                               "message": "changed on the server after last_pulled_at"}]
    assert Task.objects.get(pk=task.pk).name == "server" and not Project.objects.exists()


def test_a_push_to_a_record_deleted_on_the_server_is_refused(client):
    task = Task.objects.create(name="a")
    timestamp = pull(client)["timestamp"]
    pk = task.pk
    task.delete()
    body = push(client, {"tasks": {"updated": [{"id": pk, "name": "device"}]}}, timestamp,
                expect=409)
    assert body["errors"][0]["id"] == pk
    assert not Task.objects.filter(pk=pk).exists()


def test_deleting_what_the_server_deleted_already_is_fine(client):
    task = Task.objects.create(name="a")
    pk = task.pk
    task.delete()
    timestamp = pull(client)["timestamp"]
    push(client, {"tasks": {"deleted": [pk]}}, timestamp)


def test_tables_a_request_may_not_see_are_left_out_and_refused(fresh_registry):
    client = Client()  # anonymous: no Gadget, no per-user to-do table; Node is open
    fresh_registry.unregister(Gadget)
    fresh_registry.register(Gadget, uri="gadgets", permission_classes=[IsAuthenticated])
    changes = pull(client)["changes"]
    assert "gadgets" not in changes and "tasks" not in changes and "nodes" in changes
    body = push(client, {"gadgets": {"created": [{"id": "G1", "name": "g"}]}}, 1, expect=403)
    assert "gadgets" in body["error"]
    assert not Gadget.objects.exists()


def test_a_request_that_may_see_no_table_is_refused(fresh_registry):
    client = Client()  # anonymous
    for registration in fresh_registry.registrations():
        fresh_registry.unregister(registration.model)
    fresh_registry.register(Task, uri="taskUpdates", permission_classes=[IsAuthenticated])
    pull(client, expect=403)


def test_rows_follow_each_registrations_queryset(client):
    Note.objects.create(id="MINE", owner="me", text="mine")
    Note.objects.create(id="THEIRS", owner="them", text="theirs")
    response = client.get("/watermelon", {"last_pulled_at": "null"}, HTTP_X_OWNER="me")
    notes = json.loads(answer_bytes(response))["changes"]["notes"]["created"]
    assert [note["id"] for note in notes] == ["MINE"]


def test_a_client_schema_version_hides_newer_tables_and_columns(client, fresh_registry):
    fresh_registry.unregister(Gadget)
    fresh_registry.register(Gadget, uri="gadgets", exclude=["secret"],
                            watermelon=WatermelonTable(added_in=2, columns_added_in={"ratio": 3}))
    Gadget.objects.create(name="g", ratio=0.5)
    assert "gadgets" not in pull(client, schema_version=1)["changes"]
    [raw] = pull(client, schema_version=2)["changes"]["gadgets"]["created"]
    assert "ratio" not in raw
    [raw] = pull(client, schema_version=3)["changes"]["gadgets"]["created"]
    assert raw["ratio"] == 0.5


def test_a_migration_sync_brings_new_tables_whole_and_rows_whose_new_columns_are_set(
        client, fresh_registry):
    fresh_registry.unregister(Gadget)
    fresh_registry.register(Gadget, uri="gadgets", exclude=["secret"],
                            watermelon=WatermelonTable(columns_added_in={"ratio": 3}))
    fresh_registry.unregister(Note)
    fresh_registry.register(Note, uri="notes", watermelon=WatermelonTable(added_in=3))
    with_ratio = Gadget.objects.create(name="with", ratio=0.5)
    Gadget.objects.create(name="without")
    Note.objects.create(id="N1", owner="", text="old note")
    timestamp = pull(client, schema_version=2)["timestamp"]
    answer = pull(client, last_pulled_at=timestamp, schema_version=3,
                  migration=json.dumps({"from": 2, "tables": ["notes"],
                                        "columns": [{"table": "gadgets", "columns": ["ratio"]}]}))
    assert [r["id"] for r in answer["changes"]["gadgets"]["updated"]] == [with_ratio.pk]
    assert [r["id"] for r in answer["changes"]["notes"]["created"]] == ["N1"]
    assert answer["changes"]["tasks"]["updated"] == []


def test_pages_cover_the_window_once_across_tables(client):
    Project.objects.bulk_create([Project(id=f"P{n}", name=str(n)) for n in range(3)])
    Task.objects.bulk_create([Task(id=f"T{n}", name=str(n)) for n in range(4)])
    Task.objects.create(id="TX", name="x").delete()
    seen, params = [], {"limit": 2}
    for _ in range(10):
        page = pull(client, **params)
        for table, parts in page["changes"].items():
            seen += [(table, r["id"]) for r in parts["created"]]
            seen += [(table, "deleted", pk) for pk in parts["deleted"]]
        Task.objects.create(name="written while paging")  # in the next sync, not these pages
        if not page["hasMore"]:
            break
        params["cursor"] = page["cursor"]
    assert seen == [("projects", "P0"), ("projects", "P1"), ("projects", "P2"),
                    *(("tasks", f"T{n}") for n in range(4)), ("tasks", "deleted", "TX")]


@override_settings(PERSISTENCE_SYNC={"MAX_PAGE_SIZE": 2})
def test_a_page_is_never_larger_than_the_maximum(client):
    Task.objects.bulk_create([Task(id=f"T{n}", name=str(n)) for n in range(5)])
    page = pull(client, limit=100)
    assert len(page["changes"]["tasks"]["created"]) == 2 and page["hasMore"] is True


@pytest.mark.parametrize("params, message", [
    ({"last_pulled_at": "yesterday"}, "last_pulled_at must be a non-negative integer"),
    ({"schema_version": "v2"}, "schema_version must be a non-negative integer"),
    ({"migration": "{not json"}, "migration must be null or JSON"),
    ({"migration": '{"from": "2"}'}, "'from' must be a non-negative integer"),
    ({"limit": "0"}, "limit must be a positive integer"),
    ({"cursor": "abc"}, "send limit= too"),
    ({"limit": "2", "cursor": "not-a-cursor"}, "cursor must be the cursor of the previous page"),
])
def test_bad_pull_parameters_are_refused(client, params, message):
    assert message in pull(client, expect=400, **params)["error"]


def test_a_cursor_ahead_of_the_clock_is_refused(client):
    import base64

    Task.objects.create(name="x")
    ahead = clock.committed_now(Task, "default") + 10_000
    cursor = base64.urlsafe_b64encode(json.dumps(
        {"t": ahead, "table": "tasks", "part": "objects", "after": ""}).encode()).decode()
    assert "ahead of the server's clock" in pull(client, expect=400, limit=2, cursor=cursor)["error"]


# --- scoping: the same Access as the persistence.sync endpoints ---------------------


def user_client(name):
    from django.contrib.auth.models import User

    user = User.objects.create_user(name)
    client = Client()
    client.force_login(user)
    return user, client


def test_a_second_user_never_sees_nor_touches_the_first_users_records(client):
    home = Project.objects.create(name="Home")  # the demo user's
    task = Task.objects.create(name="Dishes", project=home)
    other, other_client = user_client("bob")
    answer = pull(other_client)["changes"]
    assert answer["projects"]["created"] == answer["tasks"]["created"] == []
    timestamp = pull(other_client)["timestamp"]
    push(other_client, {"tasks": {"updated": [{"id": task.pk, "name": "mine now"}]}}, timestamp,
         expect=403)
    push(other_client, {"tasks": {"created": [{"id": "T2", "name": "x", "project_id": home.pk}]}},
         timestamp, expect=400)  # a hidden project answers like a missing one
    push(other_client, {"projects": {"created": [{"id": "P2", "name": "x",
                                                  "owner_id": home.owner_id}]}},
         timestamp, expect=403)  # nobody creates in another account
    assert Task.objects.get().name == "Dishes" and list(Project.objects.all()) == [home]
    push(other_client, {"projects": {"created": [{"id": "P3", "name": "mine"}]}}, timestamp)
    assert Project.objects.get(pk="P3").owner == other  # new records get the requester
    assert [r["id"] for r in pull(client)["changes"]["projects"]["created"]] == [home.pk]


def test_a_record_moved_to_another_user_arrives_in_deleted_and_at_the_new_owner(client):
    task = Task.objects.create(name="Dishes")
    other, other_client = user_client("bob")
    timestamp = pull(client)["timestamp"]
    other_timestamp = pull(other_client)["timestamp"]
    task.owner = other
    task.save()
    assert pull(client, last_pulled_at=timestamp)["changes"]["tasks"] == {
        "created": [], "updated": [], "deleted": [task.pk]}
    moved = pull(other_client, last_pulled_at=other_timestamp)["changes"]["tasks"]
    assert [r["id"] for r in moved["updated"]] == [task.pk] and moved["deleted"] == []


def test_a_revoked_team_arrives_in_deleted_and_a_granted_one_in_updated():
    from django.contrib.auth.models import Group

    from tests.testapp.models import Board

    red, blue = Group.objects.create(name="red"), Group.objects.create(name="blue")
    user, device = user_client("ann")
    user.groups.add(red)
    Board.objects.create(id="R1", team=red)
    Board.objects.create(id="U1", team=blue)
    timestamp = pull(device)["timestamp"]
    user.groups.add(blue)
    user.groups.remove(red)
    answer = pull(device, last_pulled_at=timestamp, limit=1)
    assert answer["changes"]["boards"] == {"created": [], "updated": [
        {"id": "U1", "team_id": blue.pk, "title": ""}], "deleted": ["R1"]}
    assert answer["hasMore"] is False  # a revocation is answered whole
    assert pull(device, last_pulled_at=answer["timestamp"])["changes"]["boards"]["deleted"] == []


def test_pushes_follow_the_write_rule_and_perform_write():
    from django.contrib.auth.models import Group

    from tests.testapp.models import Board

    red, blue = Group.objects.create(name="red"), Group.objects.create(name="blue")
    user, device = user_client("ann")
    user.groups.add(red)
    timestamp = pull(device)["timestamp"]
    push(device, {"boards": {"created": [{"id": "U1", "team_id": blue.pk}]}}, timestamp,
         expect=403)
    assert not Board.objects.exists()
    push(device, {"boards": {"created": [{"id": "R1", "team_id": red.pk, "title": "t"}]}},
         timestamp)
    assert Board.objects.get().edited_by == "ann"
