"""Follow lag: how long a write on the source takes to reach a ``syncall --follow`` replica.

Run it from the repository root (the ``test`` and ``live`` extras installed)::

    python benchmarks/follow_lag.py --db sqlite
    python benchmarks/follow_lag.py --db postgresql

On scratch databases it serves the source as docs/events.md's production
layout does: ``gunicorn`` (one worker) for the sync endpoints, where a writer
process pushes, and one ``uvicorn`` process, which the replica follows (its
pulls and the change feed's long-poll). The replica is the example site on a
database of its own (same vendor as the source), running ``manage.py syncall
--follow`` in a subprocess. Every tool signs in with a DRF token.

The writer pushes one new task at a steady ``--rate`` per second for
``--seconds``; this process polls the replica's database every 5 ms and
notes when each task appears. The lag of a write is that moment minus the
push's acknowledgement (the push committed just before it answered; the
lag from the request's start, an upper bound, is printed too). It prints
the machine, then p50/p95/p99/max of the lag, against the target p99 < 1 s.
Exits with 1 when a write never reached the replica.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The machine line is live_feed's, so that the two benchmarks print the same one.
from live_feed import machine  # noqa: E402  (benchmarks/ is the script's own directory)

from tests.integration import feed, follow, live  # noqa: E402

TARGET_P99 = 1.0  # seconds
POLL = 0.005  # seconds between two reads of the replica's database


def writer(url, token, rate, seconds):
    """The writer process: one-task pushes at ``rate``/s; prints ``[[id, sent, acked], ...]``."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    pushes, start = [], time.monotonic()
    for n in range(int(rate * seconds)):
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
        task_id, sent = uuid.uuid4().hex.upper(), time.time()
        answer = session.post(url, json=[{"id": task_id, "name": f"lag {n}"}], timeout=30)
        answer.raise_for_status()
        pushes.append([task_id, sent, time.time()])
    print(json.dumps(pushes))


def observe(replica, writer_process, expected, settle=10.0):
    """``{task id: time.time() it appeared}`` in the replica, until the writer ended and
    its ``expected`` tasks arrived (or ``settle`` s passed after it ended)."""
    seen, newest, ended = {}, -1, None
    connection = replica.connect()
    try:
        while True:
            rows = connection.execute(
                "SELECT id, last_change FROM todo_task WHERE last_change > %s", [newest]).fetchall()
            now = time.time()
            for task_id, stamp in rows:
                seen.setdefault(task_id, now)
                newest = max(newest, stamp)
            if ended is None and writer_process.poll() is not None:
                ended = time.monotonic()
            if ended is not None and time.monotonic() - ended > settle:
                return seen
            if ended is not None and len(seen) >= expected:
                return seen
            time.sleep(POLL)
    finally:
        connection.close()


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rate", type=float, default=50, help="writes per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--writer", nargs=4, metavar=("URL", "TOKEN", "RATE", "SECONDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer:
        url, token, rate, seconds = args.writer
        writer(url, token, float(rate), float(seconds))
        return 0
    with live.scratch_database(args.db, purpose="followbench") as env:
        token = feed.create_users(env, ["demo"])["demo"]
        print(machine(args.db, env), flush=True)
        with live.gunicorn(env, workers=1) as writer_site, live.uvicorn(env) as source, \
                follow.replica_of(source.url, token, vendor=args.db) as replica:
            replica.start()
            replica.wait_until_synced()
            print(f"{args.db}: writes pushed to gunicorn -w 1, the replica ({args.db}) follows one "
                  f"uvicorn process; {args.rate:g} writes/s for {args.seconds:g} s", flush=True)
            # The writer's list goes to a file: a pipe would fill up while this process polls.
            with tempfile.TemporaryFile("w+") as output:
                process = subprocess.Popen(
                    [sys.executable, __file__, "--writer", f"{writer_site.url}/taskUpdates", token,
                     str(args.rate), str(args.seconds)], stdout=output, text=True)
                seen = observe(replica, process, int(args.rate * args.seconds))
                process.wait()
                output.seek(0)
                pushes = json.loads(output.read())
            status = replica.stop()
            log = replica.log()
    lags = [seen[task_id] - acked for task_id, _, acked in pushes if task_id in seen]
    upper = [seen[task_id] - sent for task_id, sent, _ in pushes if task_id in seen]
    missed = len(pushes) - len(lags)
    p99 = percentile(lags, 0.99)
    print(f"  {len(pushes)} writes, push round trip p50 "
          f"{statistics.median(acked - sent for _, sent, acked in pushes) * 1000:.0f} ms")
    print(f"  follow lag (commit -> row in the replica): p50 {percentile(lags, 0.5) * 1000:.0f} ms, "
          f"p95 {percentile(lags, 0.95) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {max(lags, default=float('nan')) * 1000:.0f} ms "
          f"(target p99 < {TARGET_P99 * 1000:.0f} ms: {'met' if p99 < TARGET_P99 else 'MISSED'}); "
          f"from the request's start: p99 {percentile(upper, 0.99) * 1000:.0f} ms")
    print(f"  {missed} writes never reached the replica; follower exited with {status}; "
          f"its summary: {[line for line in log.splitlines() if line.startswith('Stopped')]}")
    return 1 if missed or status != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
