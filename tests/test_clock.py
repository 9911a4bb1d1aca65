"""clock.py: stamps follow the wall clock when it is ahead and never repeat or go back."""

import pytest
from todo.models import Task

from persistence_sync import clock

pytestmark = pytest.mark.django_db

LATER = 5_000_000_000_000  # ms, far above any real stamp, so the wall clock leads


def test_stamps_increase_when_the_wall_clock_stands_still_or_goes_back(monkeypatch, sync):
    walls = iter([LATER, LATER, LATER - 10**12, LATER + 1000])
    monkeypatch.setattr(clock, "wall_ms", lambda: next(walls))
    stamps = [Task.objects.create(name=str(i)).last_change for i in range(4)]
    assert stamps == [LATER, LATER + 1, LATER + 2, LATER + 1000]
    assert sync.pull("taskUpdates")["now"] == LATER + 1000


def test_a_model_without_writes_has_now_zero(sync):
    assert clock.committed_now(Task, "default") == 0
    assert sync.pull("taskUpdates") == {"now": 0, "updates": []}
