"""Every ORM write path stamps through the server clock and reaches clients like a push."""

import re

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import override_settings
from todo.models import Project, Tag, Task

from persistence_sync import clock
from persistence_sync.models import Tombstone
from tests.testapp.models import Gadget

pytestmark = pytest.mark.django_db


@pytest.fixture
def mark(sync):
    """The current `now` of /taskUpdates: changes after it are pulled with since=mark."""
    sync.push("taskUpdates", [])
    return sync.pull("taskUpdates")["now"]


def pulled(sync, since):
    return {u["id"]: u for u in sync.pull("taskUpdates", since=since)["updates"]}


def test_new_ids_are_32_upper_case_hex_digits():
    task = Task.objects.create(name="x")
    assert re.fullmatch(r"[0-9A-F]{32}", task.pk)
    assert Task().pk != Task().pk


def test_save_stamps_and_is_pulled(sync, mark):
    task = Task(name="new")
    task.save()
    assert task.last_change > mark
    assert pulled(sync, mark)[task.pk]["_lastChange"] == task.last_change


def test_save_with_update_fields_still_stamps(sync, mark):
    task = Task.objects.create(name="a")
    after_create = sync.pull("taskUpdates")["now"]
    task.done = True
    task.save(update_fields=["done"])
    assert Task.objects.get().last_change == task.last_change > after_create
    assert pulled(sync, after_create)[task.pk]["done"] is True


def test_save_with_no_update_fields_saves_and_stamps_nothing(sync):
    """Django saves nothing for update_fields=[]; no change may reach clients either."""
    task = Task.objects.create(name="a")
    since = sync.pull("taskUpdates")["now"]
    task.name = "not saved"
    task.save(update_fields=[])
    assert sync.pull("taskUpdates", since=since) == {"now": since, "updates": []}
    assert Task.objects.get().name == "a"


def test_queryset_update_stamps(sync, mark):
    tasks = Task.objects.bulk_create([Task(name="a"), Task(name="b")])
    since = sync.pull("taskUpdates")["now"]
    assert Task.objects.filter(name="a").update(done=True) == 1
    assert list(pulled(sync, since)) == [tasks[0].pk]


def test_bulk_create_and_bulk_update_stamp(sync, mark):
    tasks = Task.objects.bulk_create([Task(name=f"t{i}") for i in range(3)])
    assert set(pulled(sync, mark)) == {t.pk for t in tasks}
    since = sync.pull("taskUpdates")["now"]
    for task in tasks[:2]:
        task.name += "!"
    Task.objects.bulk_update(tasks[:2], ["name"])
    assert {u["name"] for u in pulled(sync, since).values()} == {"t0!", "t1!"}


def test_bulk_create_updating_conflicts_stamps_the_updated_rows(sync):
    Gadget.objects.create(id="G", name="old")
    since = sync.pull("gadgets")["now"]
    target = ["id"] if connection.features.supports_update_conflicts_with_target else None
    Gadget.objects.bulk_create([Gadget(id="G", name="new")], update_conflicts=True,
                               update_fields=["name"], unique_fields=target)
    [item] = sync.pull("gadgets", since=since)["updates"]
    assert (item["id"], item["name"]) == ("G", "new")
    assert item["_lastChange"] == Gadget.objects.get().last_change > since


def test_bulk_update_gives_every_object_one_stamp_the_one_stored(sync):
    tasks = Task.objects.bulk_create([Task(name=f"t{i}") for i in range(3)])
    since = sync.pull("taskUpdates")["now"]
    for task in tasks:
        task.done = True
    Task.objects.bulk_update(tasks, ["done"], batch_size=1)
    stored = dict(Task.objects.values_list("pk", "last_change"))
    assert {task.pk: task.last_change for task in tasks} == stored
    assert len(set(stored.values())) == 1 and tasks[0].last_change > since
    assert sync.pull("taskUpdates")["now"] == tasks[0].last_change


def test_instance_and_queryset_deletes_leave_tombstones(sync, mark):
    one, two, three = Task.objects.bulk_create([Task(name=f"t{i}") for i in range(3)])
    ids = [one.pk, two.pk, three.pk]
    since = sync.pull("taskUpdates")["now"]
    one.delete()
    Task.objects.filter(pk__in=ids[1:]).delete()
    updates = pulled(sync, since)
    assert set(updates) == set(ids)
    assert all(u["_removed"] for u in updates.values())
    assert Tombstone.objects.filter(model="todo.task").count() == 3


def test_cascaded_deletes_leave_tombstones_for_the_children(sync):
    project = Project.objects.create(name="p")
    task = Task.objects.create(name="t", project=project)
    since = sync.pull("taskUpdates")["now"]
    Project.objects.filter(pk=project.pk).delete()
    tombstone = Tombstone.objects.get(model="todo.task")
    answer = sync.pull("taskUpdates", since=since)
    assert answer == {
        "now": tombstone.last_change,
        "updates": [{"id": task.pk, "_removed": True, "_lastChange": tombstone.last_change}],
    }
    assert tombstone.object_id == task.pk and tombstone.last_change > since


def test_relations_reset_by_on_delete_set_null_are_stamped(sync):
    """Django's collector updates SET_NULL children with no signal; clients must still see it."""
    from tests.testapp.models import Gadget, Note

    gadget = Gadget.objects.create(name="g")
    Note.objects.create(id="N", owner="ann", gadget=gadget)
    since = sync.client.get("/notes", HTTP_X_OWNER="ann").json()["now"]
    gadget.delete()
    answer = sync.client.get("/notes", {"since": since}, HTTP_X_OWNER="ann").json()
    assert [(u["id"], u["gadget"]) for u in answer["updates"]] == [("N", None)]


def test_admin_edits_reach_clients(sync, client):
    admin = User.objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(admin)
    task = Task.objects.create(name="before")
    since = sync.pull("taskUpdates")["now"]
    response = client.post(f"/admin/todo/task/{task.pk}/change/", {"name": "after", "done": "on",
                                                                   "project": "", "tags": [],
                                                                   "priority": 0, "notes": "null",
                                                                   "owner": task.owner_id})
    assert response.status_code == 302, response.content[:2000]
    assert pulled(sync, since)[task.pk]["name"] == "after"
    since = sync.pull("taskUpdates")["now"]
    response = client.post("/admin/todo/task/", {"action": "delete_selected",
                                                 "_selected_action": [task.pk], "post": "yes"})
    assert response.status_code == 302
    assert pulled(sync, since)[task.pk]["_removed"] is True


def test_m2m_changes_are_not_synced_and_do_not_touch_the_object(sync):
    """Task.tags is not on the wire: editing it neither re-stamps the task nor can be pushed."""
    task = Task.objects.create(name="t")
    tag = Tag.objects.create(name="x")
    since = sync.pull("taskUpdates")["now"]
    task.tags.add(tag)
    assert sync.pull("taskUpdates", since=since) == {"now": since, "updates": []}
    [pulled_task] = sync.pull("taskUpdates")["updates"]
    assert pulled_task == {"id": task.pk, "name": "t", "done": False, "project": None,
                           "due": None, "priority": 0, "estimate": None, "notes": None,
                           "_lastChange": task.last_change}
    body = sync.push("taskUpdates", [{"id": task.pk, "name": "u", "tags": [tag.pk]}], expect=400)
    assert [(e["id"], e["field"]) for e in body["errors"]] == [(task.pk, "tags")]
    tag.delete()  # clears the through rows, no signal to the task
    assert Task.objects.get().name == "t"
    assert sync.pull("taskUpdates", since=since)["updates"] == []


def test_stamps_are_strictly_increasing_across_writes():
    stamps = []
    for i in range(20):
        stamps.append(Task.objects.create(name=str(i)).last_change)
    assert stamps == sorted(set(stamps))


@pytest.mark.django_db(transaction=True)
def test_tick_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match="transaction.atomic"):
        clock.tick(Task, "default")


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_write_leaves_no_trace(sync):
    """A real ROLLBACK (not a test savepoint) undoes stamps and tombstones, and a later
    delete of the same objects still leaves the tombstones clients need."""
    keep, other = Task.objects.bulk_create([Task(name="keep"), Task(name="other")])
    mark = sync.pull("taskUpdates")["now"]
    with pytest.raises(RuntimeError), transaction.atomic():
        Task.objects.create(name="never")
        Task.objects.filter(pk=keep.pk).update(name="never renamed")
        Task.objects.filter(pk__in=[keep.pk, other.pk]).delete()
        raise RuntimeError("roll back")
    assert sync.pull("taskUpdates", since=mark) == {"now": mark, "updates": []}
    assert set(Task.objects.values_list("name", flat=True)) == {"keep", "other"}
    assert not Tombstone.objects.exists()
    ids = {keep.pk: True, other.pk: True}
    keep.delete()
    Task.objects.filter(pk=other.pk).delete()
    assert {u["id"]: u.get("_removed") for u in pulled(sync, mark).values()} == ids


@override_settings(PERSISTENCE_SYNC={"BATCH_SIZE": 2})
def test_ids_recreated_in_bulk_forget_every_tombstone_past_batch_size(sync):
    ids = [f"T{i}" for i in range(5)]
    Task.objects.bulk_create([Task(id=pk, name="first") for pk in ids])
    Task.objects.filter(pk__in=ids).delete()
    Task.objects.bulk_create([Task(id=pk, name="second") for pk in ids])
    assert not Tombstone.objects.exists()
    assert [(u["id"], "_removed" in u) for u in sync.pull("taskUpdates")["updates"]] == [
        (pk, False) for pk in ids]


@pytest.mark.parametrize("recreate", ["create", "save", "bulk_create"])
@pytest.mark.parametrize("model, uri", [(Task, "taskUpdates"), (Gadget, "gadgets")],
                         ids=["scoped", "unscoped"])
def test_an_id_recreated_through_the_orm_forgets_its_tombstone(sync, recreate, model, uri):
    """Else pulls would carry the object and its removal, and syncall would push the removal."""
    model.objects.create(id="SAME", name="first").delete()
    since = sync.pull(uri)["now"]
    if recreate == "create":
        model.objects.create(id="SAME", name="second")
    elif recreate == "save":
        model(id="SAME", name="second").save()
    else:
        model.objects.bulk_create([model(id="SAME", name="second")])
    assert not Tombstone.objects.exists()
    for start in (0, since):
        [update] = sync.pull(uri, since=start)["updates"]
        assert (update["id"], update["name"], "_removed" in update) == ("SAME", "second", False)


# --- deletes of many rows: set-based, with Django's on_delete rules -------------------


def test_a_queryset_delete_cascades_like_djangos_collector_and_leaves_tombstones(sync):
    project = Project.objects.create(name="p")
    tag = Tag.objects.create(name="home")
    tasks = [Task.objects.create(name=f"t{n}", project=project) for n in range(3)]
    for task in tasks:
        task.tags.add(tag)
    since = sync.pull("taskUpdates")["now"]
    assert Project.objects.filter(pk=project.pk).delete() == (
        7, {"todo.Project": 1, "todo.Task": 3, "todo.Task_tags": 3})
    assert not Task.objects.exists() and Tag.objects.get() == tag
    assert Task.tags.through.objects.count() == 0
    removed = sync.pull("taskUpdates", since=since)["updates"]
    assert sorted(u["id"] for u in removed if u["_removed"]) == sorted(t.pk for t in tasks)


def test_set_null_links_of_a_queryset_delete_are_reset_and_stamped(sync):
    from tests.testapp.models import Note

    gadget = Gadget.objects.create(name="g")
    Note.objects.create(id="N", owner="ann", gadget=gadget)
    since = sync.client.get("/notes", HTTP_X_OWNER="ann").json()["now"]
    Gadget.objects.filter(pk=gadget.pk).delete()
    answer = sync.client.get("/notes", {"since": since}, HTTP_X_OWNER="ann").json()
    assert [(u["id"], u["gadget"]) for u in answer["updates"]] == [("N", None)]


def test_a_protected_relation_refuses_the_delete_whole():
    from django.db.models import ProtectedError

    from tests.testapp.models import Part

    gadgets = [Gadget.objects.create(name=f"g{n}") for n in range(2)]
    Part.objects.create(gadget=gadgets[1])
    with pytest.raises(ProtectedError), transaction.atomic():
        Gadget.objects.all().delete()
    assert Gadget.objects.count() == 2 and not Tombstone.objects.exists()


def test_a_delete_receiver_of_the_projects_still_hears_every_cascaded_object():
    from django.db.models.signals import post_delete

    heard = []

    def receiver(sender, instance, **kwargs):
        heard.append(instance.pk)

    project = Project.objects.create(name="p")
    tasks = [Task.objects.create(name=f"t{n}", project=project) for n in range(2)]
    post_delete.connect(receiver, sender=Task)
    try:
        Project.objects.filter(pk=project.pk).delete()
    finally:
        post_delete.disconnect(receiver, sender=Task)
    assert sorted(heard) == sorted(t.pk for t in tasks)
    assert Tombstone.objects.filter(model="todo.task").count() == 2


# --- deletes handed to Django's collector (a project's delete receiver, PROTECT, ...) ----


@pytest.fixture
def task_delete_receiver():
    """A project's own post_delete receiver for Task: deletes reaching tasks go through
    Django's collector, so that it runs."""
    from django.db.models.signals import post_delete

    heard = []

    def receiver(sender, instance, **kwargs):
        heard.append(instance.pk)

    post_delete.connect(receiver, sender=Task)
    yield heard
    post_delete.disconnect(receiver, sender=Task)


def test_a_removal_deleted_by_djangos_collector_carries_the_push_stamp(sync, task_delete_receiver):
    """One tombstone per removed object, stamped like the rest of the push: its echo."""
    project = Project.objects.create(name="p")
    task = Task.objects.create(name="t", project=project)
    since = sync.pull("projectUpdates")["now"]
    now = sync.push("projectUpdates", [{"id": project.pk, "_removed": True}])["now"]
    assert task_delete_receiver == [task.pk]
    assert sync.pull("projectUpdates", since=since)["updates"] == [
        {"id": project.pk, "_removed": True, "_lastChange": now}]


def test_an_id_deleted_by_djangos_collector_then_again_leaves_its_second_removal(
        sync, task_delete_receiver):
    """What the collector path remembers (tombstones it wrote) lasts for that delete only."""
    project = Project.objects.create(id="P", name="p")
    Task.objects.create(name="t", project=project)
    Project.objects.filter(pk="P").delete()
    since = sync.pull("projectUpdates")["now"]
    again = Project.objects.create(id="P", name="again")
    again.delete()
    assert sync.pull("projectUpdates", since=since)["updates"] == [
        {"id": "P", "_removed": True,
         "_lastChange": Tombstone.objects.get(model="todo.project").last_change}]
