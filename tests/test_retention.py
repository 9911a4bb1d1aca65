"""Tombstone retention: prunetombstones, the horizon, and the 410 a too-old pull gets."""

import datetime
import io

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F
from django.test import override_settings
from todo.models import Project, Task

from persistence_sync import retention
from persistence_sync.clock import Clock
from persistence_sync.models import Tombstone

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
    assert prune("--dry-run") == (
        f"todo.project: would remove 1 tombstone older than 30 days; horizon {project_stamp}\n"
        f"todo.task: would remove 1 tombstone older than 30 days; horizon {task_stamp}\n"
    )
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


def test_recreating_a_pruned_id_is_delivered_to_clients(sync, later):
    task = Task.objects.create(name="phoenix")
    pk = task.pk
    task.delete()
    later(2)
    retention.prune_tombstones(DAY)
    Task.objects.create(pk=pk, name="phoenix again")
    assert [u["name"] for u in sync.pull("taskUpdates")["updates"]] == ["phoenix again"]
