"""No lost write with many server processes: writers and readers over real HTTP.

The example site runs under ``gunicorn -w 4`` on a scratch database of the
server the suite runs on (``PS_DB``; SQLite: a temporary file). For about
12 s (``PS_LIVE_SECONDS``) processes push batches of Tasks and of Projects,
one saves Tasks and Projects through the ORM, and readers follow the
``since``/``now`` chain on ``/taskUpdates``. Then, for every reader:

* every acknowledged Task write whose stamp falls in a pull's window
  ``(since, now]`` is in that pull's answer, with that stamp and value
  (unless a later write of the same object inside the window replaced it),
  and nothing else is;
* the windows chain from 0 past the last acknowledged stamp, so every write
  reaches every reader;

and no two pushes or saves of one model share a stamp, no request got a 5xx
or failed on the client side. The load, the server and the checks live in
``tests/integration/live.py``; ``benchmarks/concurrency.py`` runs the same
load to measure throughput.
"""

import os

import pytest

from tests import databases
from tests.integration import live
from tests.integration.live import Load, Log

SECONDS = float(os.environ.get("PS_LIVE_SECONDS", "12"))


@pytest.fixture(scope="module")
def site_env():
    live.require_gunicorn()
    problem = databases.unavailable_reason()
    if problem:
        pytest.skip(problem)
    with live.scratch_database(databases.vendor(), purpose="concurrency") as env:
        yield env


@pytest.mark.live
def test_every_acknowledged_write_reaches_every_reader(site_env, capsys):
    with live.gunicorn(site_env, workers=4) as server:
        load = live.run_load(
            server.url, site_env, SECONDS,
            task_pushers=2, project_pushers=1, orm_writers=1, readers=3,
        )  # fmt: skip
    report = live.check(load)
    with capsys.disabled():
        print(f"\n[{databases.vendor()}, gunicorn -w 4, {load.seconds:.0f} s] {load.summary()}")
        print(f"[{databases.vendor()}] {report.summary()}")

    summary = report.summary()
    assert report.writes > 0 and report.pulls > 0, "the load did nothing"
    assert not report.failures, (summary, report.failures[:10])
    assert report.server_errors == 0, summary
    assert not report.misses, (summary, report.misses[:10])
    assert not report.unexpected, (summary, report.unexpected[:10])
    assert not report.unreached, (summary, report.unreached[:10])
    assert not report.chain_breaks, (summary, report.chain_breaks[:10])
    assert not report.shared_stamps, (summary, report.shared_stamps)
    assert report.order_errors == 0, summary
    assert "Traceback" not in server.final_log, f"gunicorn logged an error:\n{server.final_log[-3000:]}"


def synthetic_load(pulled):
    """Two pushes of T1 and one of T2, read by one reader whose pulls are ``pulled``."""
    writer = Log("task-pusher-0", "taskUpdates", requests=3)
    writer.batches = [("task", 10), ("task", 20), ("task", 30)]
    writer.writes = [
        ("task", "T1", "T1 v1", 10),
        ("task", "T2", "T2 v1", 20),
        ("task", "T1", "T1 v2", 30),
    ]
    reader = Log("reader-0", "taskUpdates", pulls=pulled)
    return Load(1.0, [writer, reader])


def test_the_checker_accepts_a_correct_chain():
    pulls = [
        (0, 20, [("T1", 10, "T1 v1"), ("T2", 20, "T2 v1")]),
        (20, 30, [("T1", 30, "T1 v2")]),
    ]
    assert live.check(synthetic_load(pulls)).ok


def test_the_checker_accepts_a_write_replaced_inside_one_window():
    pulls = [(0, 30, [("T1", 30, "T1 v2"), ("T2", 20, "T2 v1")])]
    assert live.check(synthetic_load(pulls)).ok


def test_the_checker_catches_a_write_missing_from_its_window():
    """The classic lost write: T2 commits late, below the `now` of the pull that missed it."""
    pulls = [(0, 20, [("T1", 10, "T1 v1")]), (20, 30, [("T1", 30, "T1 v2")])]
    report = live.check(synthetic_load(pulls))
    assert [miss[1:3] for miss in report.misses] == [("T2", 20)]


def test_the_checker_catches_a_broken_chain_a_stale_entry_and_a_shared_stamp():
    load = synthetic_load([(0, 10, [("T1", 10, "T1 v1")]), (15, 30, [("T1", 10, "T1 v1")])])
    load.logs[0].batches.append(("task", 30))
    report = live.check(load)
    assert report.chain_breaks and report.unexpected and report.misses
    assert report.shared_stamps == {"task": [30]}
