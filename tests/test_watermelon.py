"""WatermelonDB's protocol at /watermelon: answers, refusals and the one-timestamp rule.

The real client's end-to-end behaviour is in
``tests/integration/test_watermelon_live.py``; these are the server's rules,
case by case, with Django's test client.
"""

import datetime
import json
import time

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


@pytest.mark.django_db(transaction=True)
def test_a_conflict_is_refused_on_the_path_a_live_server_takes(client):
    """Outside a caller's transaction a push is prepared before the clocks and written under
    them (tests/test_concurrency.py): the conflict check runs there too, clocks held."""
    changed, deleted = Task.objects.create(name="a"), Task.objects.create(name="b")
    timestamp = pull(client)["timestamp"]
    Task.objects.filter(pk=changed.pk).update(name="server")
    deleted_pk = deleted.pk
    deleted.delete()
    body = push(client, {"tasks": {"updated": [{"id": changed.pk, "name": "device"},
                                               {"id": deleted_pk, "name": "device"}]}},
                timestamp, expect=409)
    assert sorted(error["id"] for error in body["errors"]) == sorted([changed.pk, deleted_pk])
    assert list(Task.objects.values_list("name", flat=True)) == ["server"]


def test_a_push_to_a_record_deleted_on_the_server_is_refused(client):
    task = Task.objects.create(name="a")
    timestamp = pull(client)["timestamp"]
    pk = task.pk
    task.delete()
    body = push(client, {"tasks": {"updated": [{"id": pk, "name": "device"}]}}, timestamp,
                expect=409)
    assert body["errors"][0]["id"] == pk
    assert not Task.objects.filter(pk=pk).exists()


def test_a_push_with_many_conflicts_names_the_first_50_only(client):
    """The 409 names records for the app to pull again; a push of every record of a big
    table, all stale, must not answer megabytes of them."""
    Task.objects.bulk_create([Task(id=f"T{n:03}", name="a") for n in range(60)])
    timestamp = pull(client)["timestamp"]
    Task.objects.update(name="server")
    updated = [{"id": f"T{n:03}", "name": "device"} for n in range(60)]
    body = push(client, {"tasks": {"updated": updated}}, timestamp, expect=409)
    assert [error["id"] for error in body["errors"]] == [f"T{n:03}" for n in range(50)]
    assert set(Task.objects.values_list("name", flat=True)) == {"server"}


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


def test_rows_loaded_past_the_clock_page_through_before_any_write(client):
    """Fixtures (loaddata) write rows with stamp 0 and tick no clock: the answered timestamp
    is 1 (WatermelonDB refuses 0), but the pages' window is the clock's, 0."""
    from django.db.models import QuerySet
    from todo.models import demo_owner

    QuerySet(Task).bulk_create([Task(id=f"T{n}", name=str(n), owner_id=demo_owner())
                                for n in range(3)])
    assert not Clock.objects.exists()
    pages, records = pull_every_page(client, limit=1)
    assert [pk for table, _, pk in records if table == "tasks"] == ["T0", "T1", "T2"]
    assert {page["timestamp"] for page in pages} == {1}
    assert pull(client, last_pulled_at=1)["changes"]["tasks"]["updated"] == []


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
    assert Task.objects.get().name == "Dishes" and list(Project.objects.all()) == [home]
    # The example site keeps the owner off the wire: a column naming another account
    # is no synced column, and new records get the requester (testapp's Memo, whose
    # owner is synced, refuses it: test_scoping.py).
    push(other_client, {"projects": {"created": [{"id": "P2", "name": "x",
                                                  "owner_id": home.owner_id}]}}, timestamp)
    push(other_client, {"projects": {"created": [{"id": "P3", "name": "mine"}]}}, timestamp)
    assert Project.objects.get(pk="P2").owner == Project.objects.get(pk="P3").owner == other
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
    first = pull(device, last_pulled_at=timestamp, limit=1)  # a revocation is paged too
    assert first["changes"]["boards"] == {"created": [], "updated": [
        {"id": "U1", "team_id": blue.pk, "title": ""}], "deleted": []}
    assert first["hasMore"] is True
    second = pull(device, last_pulled_at=timestamp, limit=1, cursor=first["cursor"])
    assert second["changes"]["boards"] == {"created": [], "updated": [], "deleted": ["R1"]}
    assert second["hasMore"] is False and second["timestamp"] == first["timestamp"]
    assert pull(device, last_pulled_at=second["timestamp"])["changes"]["boards"]["deleted"] == []


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


# --- paging and batches: every record once, and the last page says so ---------------


def pull_every_page(client, limit, **params):
    """``(pages, records)``: every page of one paged pull, and ``(table, part, id)`` of each
    record in the order received; fails if the pages never end."""
    pages, records = [], []
    params = {**params, "limit": limit}
    for _ in range(20):
        page = pull(client, **params)
        pages.append(page)
        for table, parts in page["changes"].items():
            for part in ("created", "updated"):
                records += [(table, part, record["id"]) for record in parts[part]]
            records += [(table, "deleted", pk) for pk in parts["deleted"]]
        if not page["hasMore"]:
            return pages, records
        params["cursor"] = page["cursor"]
    raise AssertionError(f"20 pages and still hasMore: {records[-2 * limit:]}")


def test_a_page_that_exactly_fills_the_limit_is_the_last(client):
    Project.objects.create(id="P0", name="home")
    Task.objects.bulk_create([Task(id=f"T{n}", name=str(n)) for n in range(2)])
    pages, records = pull_every_page(client, limit=3)
    assert len(pages) == 1 and "cursor" not in pages[0]  # no extra request for nothing
    assert records == [("projects", "created", "P0"), ("tasks", "created", "T0"),
                       ("tasks", "created", "T1")]


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_more_deletions_than_the_limit_are_paged_through_each_once(client, limit):
    Task.objects.bulk_create([Task(id=f"T{n}", name=str(n)) for n in range(6)])
    timestamp = pull(client)["timestamp"]
    Task.objects.filter(id__in=["T1", "T2", "T3", "T4", "T5"]).delete()
    Task.objects.filter(id="T0").update(name="changed")
    pages, records = pull_every_page(client, limit, last_pulled_at=timestamp)
    assert records == [("tasks", "updated", "T0"),
                       *(("tasks", "deleted", f"T{n}") for n in range(1, 6))]
    assert len(pages) == -(-6 // limit)


@override_settings(PERSISTENCE_SYNC={"BATCH_SIZE": 2})
@pytest.mark.parametrize("limit", [None, 4])
def test_tables_larger_than_a_batch_send_each_row_once(client, limit):
    """Rows are read BATCH_SIZE at a time; records and deletions span several batches."""
    Task.objects.bulk_create([Task(id=f"T{n}", name=str(n)) for n in range(5)])
    Task.objects.bulk_create([Task(id=f"X{n}", name=str(n)) for n in range(3)])
    Task.objects.filter(id__startswith="X").delete()
    if limit is None:
        records = [("tasks", "created", r["id"]) for r in pull(client)["changes"]["tasks"]["created"]]
        records += [("tasks", "deleted", pk) for pk in pull(client)["changes"]["tasks"]["deleted"]]
    else:
        _, records = pull_every_page(client, limit)
    assert records == [*(("tasks", "created", f"T{n}") for n in range(5)),
                       *(("tasks", "deleted", f"X{n}") for n in range(3))]


# --- pushes: the item limit ------------------------------------------------------------


@override_settings(PERSISTENCE_SYNC={"MAX_ITEMS": 3})
def test_a_push_of_more_records_than_max_items_is_refused_whatever_the_tables(client):
    timestamp = pull(client)["timestamp"]
    one_table = {"tasks": {"created": [{"id": f"T{n}", "name": "t"} for n in range(4)]}}
    spread = {"projects": {"created": [{"id": "P1", "name": "p"}]},
              "tasks": {"created": [{"id": "T1", "name": "t"}], "updated": [{"id": "T2", "name": "t"}],
                        "deleted": ["T3"]}}
    for changes in (one_table, spread):
        body = push(client, changes, timestamp, expect=413)
        assert "PERSISTENCE_SYNC['MAX_ITEMS']" in body["error"] and "at most 3" in body["error"]
    assert not Project.objects.exists() and not Task.objects.exists()
    push(client, {"projects": {"created": [{"id": "P1", "name": "p"}]},
                  "tasks": {"created": [{"id": "T1", "name": "t"}], "deleted": ["T3"]}}, timestamp)
    assert Task.objects.get().pk == "T1"


# --- scopes: moves between the user's own teams --------------------------------------


def team_member(*team_names):
    """A device of a user in teams named ``team_names``; returns (user, device, teams)."""
    from django.contrib.auth.models import Group

    teams = [Group.objects.create(name=name) for name in team_names]
    user, device = user_client("ann")
    user.groups.add(*teams)
    return user, device, teams


def pull_pages(device, **params):
    """Every page of one pull, merged as the app's pullChanges does: ``(changes, pages)``."""
    merged, pages, cursor = {}, 0, None
    while True:
        answer = pull(device, **params, **({"cursor": cursor} if cursor else {}))
        pages += 1
        for table, parts in answer["changes"].items():
            into = merged.setdefault(table, {"created": [], "updated": [], "deleted": []})
            for part in into:
                into[part] += parts[part]
        if not answer.get("hasMore"):
            return merged, pages
        cursor = answer["cursor"]


@pytest.mark.parametrize("paged", [{}, {"limit": 1}], ids=["whole", "paged"])
def test_leaving_a_team_does_not_remove_a_record_that_moved_to_another_of_the_users_teams(paged):
    """Whether the pull is paged or not (removals of a lost team are paged like the rest)."""
    from tests.testapp.models import Board

    user, device, (red, blue) = team_member("red", "blue")
    for pk in ("R1", "R2", "R3"):
        Board.objects.create(id=pk, team=red, title="t")
    timestamp = pull(device)["timestamp"]
    Board.objects.filter(id__in=["R1", "R3"]).update(team=blue)  # ann still sees them
    user.groups.remove(red)
    changes, pages = pull_pages(device, last_pulled_at=timestamp, **paged)
    assert changes["boards"] == {
        "created": [], "deleted": ["R2"],
        "updated": [{"id": pk, "team_id": blue.pk, "title": "t"} for pk in ("R1", "R3")]}
    assert pages == (3 if paged else 1)


def test_a_page_that_stops_in_the_records_loses_no_removal_with_a_smaller_id():
    """The cursor's id is where a table's records resume; its removals (a revocation's
    too) then start from their first id, whatever that id."""
    from tests.testapp.models import Board

    user, device, (red, blue) = team_member("red", "blue")
    for pk, team in (("A1", red), ("B1", blue), ("B2", blue)):
        Board.objects.create(id=pk, team=team, title="t")
    timestamp = pull(device)["timestamp"]
    Board.objects.filter(team=blue).update(title="changed")
    user.groups.remove(red)
    changes, pages = pull_pages(device, last_pulled_at=timestamp, limit=1)
    assert [record["id"] for record in changes["boards"]["updated"]] == ["B1", "B2"]
    assert changes["boards"]["deleted"] == ["A1"] and pages == 3


def test_a_record_that_moved_between_the_users_teams_can_be_pushed():
    from tests.testapp.models import Board

    user, device, (red, blue) = team_member("red", "blue")
    Board.objects.create(id="R1", team=red, title="t")
    timestamp = pull(device)["timestamp"]
    Board.objects.filter(id="R1").update(team=blue)  # another device moved it
    timestamp = pull(device, last_pulled_at=timestamp)["timestamp"]
    for title in ("edited", "edited again"):
        push(device, {"boards": {"updated": [{"id": "R1", "team_id": blue.pk, "title": title}]}},
             timestamp)
        assert Board.objects.get(id="R1").title == title
        timestamp = pull(device, last_pulled_at=timestamp)["timestamp"]


@pytest.mark.django_db(transaction=True)
@override_settings(PERSISTENCE_SYNC={"LOCK_TIMEOUT": 1})
def test_a_pull_behind_a_push_holding_a_lagging_clock_gets_503_after_lock_timeout(client):
    """One timestamp for every table: the lagging clocks are brought up first, which waits
    for a writer holding one of them; never longer than LOCK_TIMEOUT."""
    from tests.test_protocols import clock_held

    Project.objects.create(name="p")
    Task.objects.create(name="t")
    pull(client)  # every table's clock exists
    Clock.objects.filter(model="todo.task").update(value=clock.wall_ms() + 3_600_000)
    with clock_held(Project, 30):  # a long push of projects: its clock lags behind tasks'
        started = time.monotonic()
        response = client.get("/watermelon", {"last_pulled_at": "null"})
        waited = time.monotonic() - started
    assert response.status_code == 503 and int(response["Retry-After"]) >= 1
    assert waited < 10


# --- a database that fails during a pull -----------------------------------------------


def test_a_database_outage_during_a_pull_is_a_503_that_says_nothing_of_the_database(client):
    from django.db import OperationalError, connection

    Task.objects.create(name="x")
    pull(client)  # signed in: the session and the user are read before the pull's own queries

    def outage(execute, sql, params, many, context):
        if "todo_" in sql or "persistence_sync_" in sql:
            raise OperationalError('could not connect to server: relation "todo_task"')
        return execute(sql, params, many, context)

    with connection.execute_wrapper(outage):
        response = client.get("/watermelon", {"last_pulled_at": "null"})
    assert response.status_code == 503
    assert json.loads(answer_bytes(response)) == {
        "status": "error", "error": "The database is unavailable, retry later."}


# --- throttles: a sync is one request, refused whole ------------------------------------


@override_settings(PERSISTENCE_SYNC={"THROTTLE_RATES": {"pull": "2/min", "push": "1/min"}})
def test_a_throttled_sync_is_refused_whole_with_retry_after_and_counts_once(client):
    """A pull that left a throttled table out would answer a timestamp past its changes,
    which the device would then never get."""
    from django.core.cache import cache

    cache.clear()
    Task.objects.create(name="x")
    with override_settings(PERSISTENCE_SYNC={"THROTTLE_RATES": None}):
        every_table = set(pull(client)["changes"])
    try:
        for _ in range(2):  # one pull of every table counts once
            answer = pull(client)
            assert set(answer["changes"]) == every_table
        response = client.get("/watermelon", {"last_pulled_at": "null"})
        assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
        push(client, {"tasks": {"created": [{"id": "T1", "name": "a"}]}}, answer["timestamp"])
        body = push(client, {"tasks": {"created": [{"id": "T2", "name": "b"}]}},
                    answer["timestamp"], expect=429)
        assert body["error"].startswith("Request was throttled.")
        assert not Task.objects.filter(pk="T2").exists()
    finally:
        cache.clear()
