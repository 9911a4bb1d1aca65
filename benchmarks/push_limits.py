"""What a push costs the server: memory of refused and accepted pushes, and the clock's hold.

Runs the example site's Task endpoint in-process on a throw-away database
and prints, for each body:

* the peak of memory Python allocated while the view handled it
  (``tracemalloc``; the request body itself is allocated before and not
  counted), as bytes and as a multiple of the body;
* for accepted pushes, the bytes per object, to show the growth is linear;
* how long the push held the model's clock (from asking for it to commit),
  against the whole request: only the writes run under the clock.

Usage::

    python benchmarks/push_limits.py [--objects 100000] [--db sqlite|postgresql|mysql]

The figures of one run on the development machine are in docs/deployment.md.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--db", default=os.environ.get("PS_DB", "sqlite"))
    args = parser.parse_args()

    os.environ["PS_DB"] = args.db
    if args.db == "sqlite":
        os.environ.setdefault("PS_DB_NAME", str(Path(tempfile.mkdtemp()) / "bench.sqlite3"))
    sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import RequestFactory, override_settings

    from persistence_sync import get_registration, server

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    factory = RequestFactory()
    view = get_registration("todo.Task").view
    holds = []
    real_tick, real_run = server._tick, server.run_with_retries

    def tick(*args):  # the clock is asked for here ...
        holds.append(time.perf_counter())
        return real_tick(*args)

    def run_with_retries(*args, **kwargs):  # ... and released when this commits
        result = real_run(*args, **kwargs)
        holds[-1] = time.perf_counter() - holds[-1]
        return result

    server._tick, server.run_with_retries = tick, run_with_retries

    def call(request, expect, label):
        holds.clear()
        started = time.perf_counter()
        response = view(request)
        elapsed = time.perf_counter() - started
        assert response.status_code == expect, (label, response.status_code, response.content[:300])
        return response, elapsed, (holds[-1] if holds else None)

    def request_of(body):
        return factory.post("/taskUpdates", body, content_type="application/json")

    def traced(body, expect, label):
        request = request_of(body)  # the body is the client's, not counted
        tracemalloc.start()  # slows allocation down: timed separately
        call(request, expect, label)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    def report(label, body, expect, traced_body=None):
        """Time (and clock hold) of ``body``; memory of ``traced_body`` (default: the same)."""
        response, elapsed, hold = call(request_of(body), expect, label)
        peak = traced(traced_body or body, expect, label)
        line = (f"  {label:<52} {len(body) / 2**20:7.1f} MB  -> {response.status_code}  "
                f"peak {peak / 2**20:7.1f} MB = {peak / len(body):5.1f} x body  {elapsed:6.2f} s")
        if hold is not None:
            line += f"  clock held {hold * 1000:.0f} ms"
        print(line, flush=True)
        return peak

    def task(i):
        return {"id": f"{i:032X}", "name": f"task {i}", "done": i % 2 == 0, "priority": i % 5,
                "estimate": 1.5, "due": 1705314600 + i, "notes": {"labels": ["home"]}}

    try:
        print(f"{connection.vendor}: {settings.DATABASES['default']['ENGINE']}")
        print("Refused pushes (nothing stored):")
        mb30 = 30 * 2**20
        report("30 MB of [0,0,...] (MAX_VALUES)", b"[" + b"0," * (mb30 // 2) + b"0]", 413)
        report("1 MB of [0,0,...] (MAX_ITEMS)", b"[" + b"0," * (2**19) + b"0]", 413)
        report("30 MB of [{},{},...] (MAX_VALUES)", b"[" + b"{}," * (mb30 // 3) + b"{}]", 413)
        report("nested 100,000 deep (MAX_DEPTH)", b"[" * 100_000 + b"]" * 100_000, 400)
        report("15 MB nested 15M deep (MAX_DEPTH)", b"[" * 2**23 + b"]" * 2**23, 400)
        report("one item, 30 MB JSON field of [{},...] (MAX_VALUES)",
               b'[{"id":"X","notes":[' + b"{}," * (mb30 // 3) + b"{}]}]", 413)
        report("950,000 {} in a JSON field, a bad value after",
               b'[{"id":"X","notes":[' + b"{}," * 950_000 + b'{}],"priority":"x"}]', 400)
        report("40 MB body (MAX_BODY_SIZE, by Content-Length)", b" " * (40 * 2**20), 413)
        bad = json.dumps([{**task(i), "priority": "high"} for i in range(args.objects)]).encode()
        report(f"{args.objects} objects, each with a bad value", bad, 400)
        with override_settings(PERSISTENCE_SYNC={**settings.PERSISTENCE_SYNC,
                                                 "MAX_STRING_LENGTH": 10**7}):
            report("one 30 MB string", b'[{"id":"X","name":"' + b"x" * mb30 + b'"}]', 400)

        print("Accepted pushes (new objects, then the same ids removed):")
        done = 0
        for n in sorted({1000, args.objects // 10, args.objects}):
            timed_body = json.dumps([task(i) for i in range(done, done + n)]).encode()
            traced_body = json.dumps([task(i) for i in range(done + n, done + 2 * n)]).encode()
            peak = report(f"{n} new objects", timed_body, 200, traced_body)
            print(f"  {'':<52} {peak / n:7.0f} bytes per object", flush=True)
            done += 2 * n
        removals = [{"id": f"{i:032X}", "_removed": True} for i in range(done - 2 * args.objects, done)]
        report(f"{args.objects} removals", json.dumps(removals[::2]).encode(), 200,
               json.dumps(removals[1::2]).encode())
    finally:
        server._tick, server.run_with_retries = real_tick, real_run
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
