"""clock.py: stamps follow the wall clock when it is ahead and never repeat or go back."""

import pytest
from todo.models import Task

from persistence_sync import clock

pytestmark = pytest.mark.django_db

LATER = 5_000_000_000_000  # ms, far above any real stamp, so the wall clock leads


def test_stamps_increase_when_the_wall_clock_stands_still_or_goes_back(monkeypatch, sync, tick_by):
    walls = iter([LATER, LATER, LATER - 10**12, LATER + 1000])
    monkeypatch.setattr(clock, "wall_ms", lambda: next(walls))
    stamps = [Task.objects.create(name=str(i)).last_change for i in range(4)]
    assert stamps == [LATER, LATER + 1, LATER + 2, LATER + 1000]
    assert sync.pull("taskUpdates")["now"] == LATER + 1000


def test_a_model_without_writes_has_now_zero(sync):
    assert clock.committed_now(Task, "default") == 0
    assert sync.pull("taskUpdates") == {"now": 0, "updates": []}


class UrgentTask(Task):
    """A proxy, as an admin or a second manager may use: no table, no registration."""

    class Meta:
        proxy = True
        app_label = "todo"


def test_a_write_through_a_proxy_model_is_in_the_next_pull(sync):
    # A proxy's writes must tick the concrete model's clock: a counter of its
    # own would stamp them above the `now` that pulls of the model answer.
    urgent = UrgentTask.objects.create(name="via the proxy")
    answer = sync.pull("taskUpdates")
    assert [item["id"] for item in answer["updates"]] == [urgent.pk]
    assert answer["now"] == urgent.last_change
