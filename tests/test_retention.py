"""Tombstone retention: prunetombstones, the horizon, and the 410 a too-old pull gets."""

import datetime
import io
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F
from django.test import override_settings
from todo.models import Project, Task

from persistence_sync import retention
from persistence_sync.clock import Clock, format_stamp
from persistence_sync.models import Tombstone
from tests.conftest import DemoClient, answer_bytes

pytestmark = pytest.mark.django_db

DAY = datetime.timedelta(days=1)
DAY_MS = 86_400_000


@pytest.fixture
def later(monkeypatch):
    """Move retention's notion of now ``days`` ahead (stamps are wall-clock ms)."""

    def move(days):
        future = retention.wall_ms() + days * DAY_MS
        monkeypatch.setattr(retention, "wall_ms", lambda: future)

    return move


def prune(*args, **options):
    out = io.StringIO()
    call_command("prunetombstones", *args, stdout=out, **options)
    return out.getvalue()


def test_without_retention_nothing_is_pruned(later):
    Task.objects.create(name="x").delete()
    later(1000)
    assert "nothing pruned" in prune()
    assert Tombstone.objects.count() == 1


@override_settings(PERSISTENCE_SYNC={"TOMBSTONE_RETENTION": 30})
def test_prunes_only_tombstones_older_than_retention_and_reports_per_model():
    old_task, old_project = Task.objects.create(name="old"), Project.objects.create(name="old")
    task_id, project_id = old_task.pk, old_project.pk
    old_task.delete()
    old_project.delete()
    Task.objects.create(name="recent").delete()
    old = Tombstone.objects.filter(object_id__in=[task_id, project_id])
    old.update(last_change=F("last_change") - 40 * DAY_MS)
    task_stamp = Tombstone.objects.get(object_id=task_id).last_change
    project_stamp = Tombstone.objects.get(object_id=project_id).last_change
    # The horizon as a date (in TIME_ZONE), with the stamp itself for a search in the logs.
    assert prune("--dry-run") == (
        f"todo.project: would remove 1 tombstone older than 30 days; horizon "
        f"{format_stamp(project_stamp)}: clients that last synced before it resync\n"
        f"todo.task: would remove 1 tombstone older than 30 days; horizon "
        f"{format_stamp(task_stamp)}: clients that last synced before it resync\n"
    )
    assert re.search(r"horizon \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \(\d+\)", prune("--dry-run"))
    assert Tombstone.objects.count() == 3
    assert not Clock.objects.filter(tombstones_pruned_to__gt=0).exists()
    out = prune()
    assert "todo.task: removed 1 tombstone " in out and "todo.project: removed 1 tombstone " in out
    assert list(Tombstone.objects.values_list("model", flat=True)) == ["todo.task"]
    assert Clock.objects.get(model="todo.task").tombstones_pruned_to == task_stamp
    assert prune().count("removed 0 tombstones") == 1  # a second run (cron) is a no-op


def test_older_than_overrides_the_setting_and_labels_select_models(later):
    Task.objects.create(name="t").delete()
    Project.objects.create(name="p").delete()
    later(2)
    assert "todo.task: removed 1" in prune("todo.Task", "--older-than", "36h")
    assert set(Tombstone.objects.values_list("model", flat=True)) == {"todo.project"}


@pytest.mark.parametrize("value", ["soon", "-3d", "0", "1w"])
def test_bad_older_than_is_refused(value):
    with pytest.raises(CommandError, match="--older-than"):
        prune("--older-than", value)


def test_unknown_label_is_refused():
    with pytest.raises(CommandError, match="Unknown model 'todo.nothing'"):
        prune("todo.nothing", "--older-than", "1d")


@override_settings(PERSISTENCE_SYNC={"TOMBSTONE_RETENTION": "90 days"})
def test_bad_retention_setting_names_the_setting():
    with pytest.raises(CommandError, match=r"TOMBSTONE_RETENTION.*timedelta"):
        prune()


def test_retention_accepts_timedelta_and_days():
    assert retention.retention_period(DAY * 7) == DAY * 7
    assert retention.retention_period(1.5) == DAY * 1.5


def test_pull_from_before_the_horizon_gets_410_and_nothing_else(sync, later):
    keep = Task.objects.create(name="keep")
    gone = Task.objects.create(name="gone")
    since = sync.pull("taskUpdates")["now"]  # a client that then goes offline
    gone.delete()
    later(31)
    retention.prune_tombstones(30 * DAY)
    horizon = Clock.objects.get(model="todo.task").tombstones_pruned_to
    assert since < horizon

    answer = sync.pull("taskUpdates", since=since, expect=410)
    assert answer == {
        "status": "error", "horizon": horizon, "resync": True,
        "error": f"since={since} is older than the tombstone horizon {horizon}: deletions up "
                 "to it were pruned. Pull again with since=0 and reconcile (a full resync).",
    }
    # A full pull is always answered, and lacks the pruned object (no deleted object comes back).
    full = sync.pull("taskUpdates", since=0)
    assert [item["id"] for item in full["updates"]] == [keep.pk]
    # Clients at or past the horizon are not bothered.
    assert sync.pull("taskUpdates", since=horizon)["updates"] == []
    assert sync.pull("taskUpdates", since=full["now"])["updates"] == []


def test_pruning_in_batches_keeps_horizon_and_tombstones_consistent(later):
    tasks = [Task.objects.create(name=str(n)) for n in range(5)]
    for task in tasks:
        task.delete()
    stamps = sorted(Tombstone.objects.values_list("last_change", flat=True))
    later(2)
    report = retention.prune_tombstones(DAY, batch_size=2)
    assert report["todo.task"] == retention.PruneResult(removed=5, horizon=stamps[-1])
    assert Clock.objects.get(model="todo.task").tombstones_pruned_to == stamps[-1]


@pytest.mark.parametrize("deletions, batch_size", [(4, 2), (5, 3), (3, 10)])
def test_the_horizon_is_the_newest_pruned_deletion_whatever_the_batches(sync, later, deletions,
                                                                        batch_size):
    """Batches with several rows each, the last one too: a pull from between two pruned
    deletions would miss the newer one, so it is refused."""
    for task in [Task.objects.create(name=str(n)) for n in range(deletions)]:
        task.delete()
    stamps = sorted(Tombstone.objects.values_list("last_change", flat=True))
    assert len(set(stamps)) == deletions
    later(2)
    report = retention.prune_tombstones(DAY, batch_size=batch_size)
    assert report["todo.task"] == retention.PruneResult(removed=deletions, horizon=stamps[-1])
    assert sync.pull("taskUpdates", since=stamps[-2], expect=410)["horizon"] == stamps[-1]
    assert sync.pull("taskUpdates", since=stamps[-1])["updates"] == []


@pytest.mark.parametrize("setting", [0, 0.0, datetime.timedelta(0)])
def test_a_retention_of_zero_is_refused_not_taken_as_pruning_everything(later, setting):
    Task.objects.create(name="x").delete()
    later(1)
    with override_settings(PERSISTENCE_SYNC={"TOMBSTONE_RETENTION": setting}):
        with pytest.raises(CommandError, match=r"PERSISTENCE_SYNC\['TOMBSTONE_RETENTION'\] must be "
                                               r"positive.* None keeps tombstones for ever"):
            prune()
    assert Tombstone.objects.count() == 1
    assert not Clock.objects.filter(tombstones_pruned_to__gt=0).exists()


def test_recreating_a_pruned_id_is_delivered_to_clients(sync, later):
    task = Task.objects.create(name="phoenix")
    pk = task.pk
    task.delete()
    later(2)
    retention.prune_tombstones(DAY)
    Task.objects.create(pk=pk, name="phoenix again")
    assert [u["name"] for u in sync.pull("taskUpdates")["updates"]] == ["phoenix again"]


# --- WatermelonDB: the horizon's answer in its own terms ------------------------------


def watermelon_pull(client, **params):
    params.setdefault("last_pulled_at", "null")
    response = client.get("/watermelon", params)
    return response.status_code, json.loads(answer_bytes(response))


def test_a_watermelondb_table_pruned_since_last_pulled_at_is_answered_whole_for_replacement(later):
    client = DemoClient()
    keep, gone = Task.objects.create(name="keep"), Task.objects.create(name="gone")
    project = Project.objects.create(name="home")
    _, first = watermelon_pull(client)
    gone.delete()
    later(31)
    retention.prune_tombstones(30 * DAY)
    status, answer = watermelon_pull(client, last_pulled_at=first["timestamp"])
    assert status == 200
    # The device replaces its copy of the table: the answer holds the whole table.
    assert answer["experimentalStrategy"] == {"default": "incremental",
                                              "override": {"tasks": "replacement"}}
    tasks = answer["changes"]["tasks"]
    assert [record["id"] for record in tasks["created"]] == [keep.pk]
    assert tasks["updated"] == tasks["deleted"] == []
    # Other tables stay incremental: nothing changed there.
    assert answer["changes"]["projects"] == {"created": [], "updated": [], "deleted": []}
    assert Project.objects.get() == project
    _, after = watermelon_pull(client, last_pulled_at=answer["timestamp"])
    assert "experimentalStrategy" not in after


def test_a_horizon_passed_between_two_pages_sends_the_device_back_to_the_start(later):
    """A later page cannot be answered whole (the first one was not): 410, and the
    device pulls again from scratch."""
    client = DemoClient()
    for name in ("a", "b", "c"):
        Task.objects.create(id=name.upper(), name=name)
    _, first = watermelon_pull(client)
    Task.objects.filter(pk__in=["A", "B"]).update(name="changed")
    status, page = watermelon_pull(client, last_pulled_at=first["timestamp"], limit=1)
    assert status == 200 and page["hasMore"] and "experimentalStrategy" not in page
    Task.objects.get(pk="C").delete()
    later(31)
    retention.prune_tombstones(30 * DAY)
    status, refusal = watermelon_pull(client, last_pulled_at=first["timestamp"], limit=1,
                                      cursor=page["cursor"])
    assert status == 410 and refusal["resync"] is True
