"""Writers and readers against the example site served by gunicorn: throughput, and the correctness check.

Run it from the repository root against one database::

    python benchmarks/concurrency.py --db sqlite --seconds 2      # a quick check
    python benchmarks/concurrency.py --db postgresql --seconds 10

It creates a scratch database on the chosen server (SQLite: a temporary
file), migrates it, serves ``testproject`` with ``gunicorn -w 4`` on a free
127.0.0.1 port and runs, for ``--seconds`` each:

1. the mixed load: processes pushing batches of Tasks and of Projects over
   HTTP, one saving Tasks and Projects through the ORM, and readers following
   the ``since``/``now`` chain on ``/taskUpdates``; it reports pushes/s,
   pulls/s and ORM saves/s, and checks every pull;
2. Task pushes alone, then with a competing load next to them, and prints
   each rate as a ratio to the alone rate (the floor, measured in the same
   run). Writers of different models take different clock rows, so holding
   the Project clock must not slow Task pushes (ratio near 1), while holding
   the Task clock must (the positive control, well below 1). Hammering
   Project pushes also shares the CPU, so that ratio says how much the two
   models cost each other in all.

The scratch database, gunicorn, the load processes and the check are those of
the live tests, in ``tests/integration/live.py``; this file only chooses the
loads and reports. That module is imported from the repository checkout (the
directory above this one is put on ``sys.path``), so run the benchmark from a
checkout, with the ``test`` extra installed. It exits with 1 when the check
fails.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # `python benchmarks/concurrency.py` puts only benchmarks/ on the path.
    sys.path.insert(0, str(ROOT))

from tests.integration import live  # noqa: E402


def mixed_load(server, env, seconds):
    """Every kind of writer and three readers at once; print the rates and the check."""
    load = live.run_load(server.url, env, seconds)
    report = live.check(load)
    print(f"mixed load: {load.summary()}")
    print(f"  check: {report.summary()}")
    return report


def isolation(server, env, seconds, pushers=2):
    """Task pushes/s alone and next to competing loads, as ratios to the alone rate."""

    def task_rate(**load):
        options = dict(
            task_pushers=pushers,
            project_pushers=0,
            orm_writers=0,
            readers=0,
            removals=False,
            batch_range=(1, 10),
        )
        return live.run_load(server.url, env, seconds, **{**options, **load}).rate("task-pusher")

    alone = task_rate()
    rows = [("Task pushes alone (the floor)", alone)]
    rows.append(("... while the Project clock is held (lock only)", task_rate(holders=("project",))))
    rows.append(("... while another process hammers Project pushes", task_rate(project_pushers=1)))
    rows.append(("... while the Task clock is held (positive control)", task_rate(holders=("task",))))
    return [(name, rate, rate / alone if alone else float("nan")) for name, rate in rows]


def print_isolation(rows):
    for name, rate, ratio in rows:
        print(f"  {name:55s} {rate:7.0f} /s  ratio {ratio:.2f}")


def print_server_errors(server):
    log = server.final_log
    if "Traceback" in log or "WORKER TIMEOUT" in log:
        print("gunicorn's log shows errors:\n" + log[-3000:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=live.VENDORS, default="sqlite")
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    args = parser.parse_args(argv)

    with live.scratch_database(args.db, purpose="bench") as env:
        with live.gunicorn(env, workers=args.workers) as server:
            print(
                f"{args.db}: gunicorn -w {args.workers} at {server.url}, {args.seconds:g} s per phase",
                flush=True,
            )
            report = mixed_load(server, env, args.seconds)
            print_isolation(isolation(server, env, args.seconds))
    print_server_errors(server)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
