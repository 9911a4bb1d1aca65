"""The change feed under load: write-to-notice latency with thousands of idle clients, memory per connection.

Run it from the repository root (the ``test`` extra installed)::

    python benchmarks/live_feed.py --db sqlite --clients 1000 5000
    python benchmarks/live_feed.py --db postgresql --clients 1000 5000

On a scratch database it serves the example site twice, as docs/events.md's
production layout does: ``gunicorn`` (one worker) for the sync endpoints,
where a writer process pushes, and one ``uvicorn`` process for the feed
(``/events``), to which one asyncio process opens N idle SSE connections,
signed in by DRF tokens. Most belong to other users (five each), who must
hear nothing; ``--writer-clients`` belong to the writing user. The writer
makes one-object pushes at ``--rate`` per second for ``--seconds``, each
timed from its acknowledgement (the push committed) to its notice on each
of the writing user's connections (the first with an ``id`` at or above the
push's stamp). Memory per idle connection is the growth of uvicorn's RSS
once the N connections are open, divided by N.

It prints the machine, then per round the latency percentiles and the
memory, against the targets: p99 under 100 ms at 1,000 clients, under
250 ms at 5,000, and under 50 KB per idle connection. Exits with 1 when a
notice was missed or another user heard something.
"""

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration import feed, live  # noqa: E402

TARGETS = {1000: 0.100, 5000: 0.250}  # p99 of write-to-notice, seconds
MEMORY_TARGET = 50 * 1024  # bytes per idle connection
CLIENTS_PER_OTHER_USER = 5


def writer(url, token, rate, seconds):
    """The writer process: one-object pushes at ``rate``/s; prints ``[[sent, acked, stamp], ...]``."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    pushes, start = [], time.monotonic()
    for n in range(int(rate * seconds)):
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
        sent = time.time()
        answer = session.post(url, json=[{"id": uuid.uuid4().hex.upper(), "name": f"n{n}"}], timeout=30)
        answer.raise_for_status()
        pushes.append([sent, time.time(), answer.json()["now"]])
    print(json.dumps(pushes))


def rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def connect_all(port, tokens, since, arrivals):
    """Open one stream per token (a few at a time, as clients come); return the readers' tasks."""
    streams = []
    gate = asyncio.Semaphore(50)

    async def one(token, into):
        async with gate:
            reader, writer_ = await feed.open_stream("127.0.0.1", port, token, since)
        streams.append(writer_)
        await feed.read_ids(reader, into)

    tasks = [asyncio.ensure_future(one(token, into)) for token, into in zip(tokens, arrivals)]
    while len(streams) < len(tokens):
        failed = [task for task in tasks if task.done() and task.exception()]
        if failed:
            raise failed[0].exception()
        await asyncio.sleep(0.2)
    return tasks, streams


async def one_round(sites, tokens, clients, writer_clients, rate, seconds):
    writer_site, feed_site = sites
    port = int(feed_site.url.rsplit(":", 1)[1])
    since = await asyncio.to_thread(long_poll_since, feed_site.url, tokens["demo"])
    others = [name for name in tokens if name != "demo"]
    names = ["demo"] * writer_clients + [others[n // CLIENTS_PER_OTHER_USER]
                                         for n in range(clients - writer_clients)]
    arrivals = [[] for _ in names]
    before = rss(feed_site.process.pid)
    started = time.monotonic()
    tasks, streams = await connect_all(port, [tokens[name] for name in names], since, arrivals)
    connect_time = time.monotonic() - started
    # This process's own garbage collector, walking thousands of streams, would
    # pause its reading and be counted as the server's latency.
    gc.collect()
    gc.freeze()
    await asyncio.sleep(3)  # idle
    per_connection = (rss(feed_site.process.pid) - before) / clients
    pushes = json.loads(await asyncio.to_thread(
        subprocess.check_output, [sys.executable, __file__, "--writer", f"{writer_site.url}/taskUpdates",
                                  tokens["demo"], str(rate), str(seconds)]))
    await asyncio.sleep(1)  # the last notices
    gc.unfreeze()
    for stream in streams:
        stream.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return measure(pushes, arrivals[:writer_clients], arrivals[writer_clients:], clients,
                   connect_time, per_connection)


def long_poll_since(url, token):
    """The feed's current snapshot (and its hub started): connections made with it hear only news."""
    import requests

    answer = requests.get(f"{url}/events", params={"wait": 0}, timeout=30,
                          headers={"Authorization": f"Token {token}"})
    answer.raise_for_status()
    return answer.json()["since"]


def measure(pushes, writer_arrivals, other_arrivals, clients, connect_time, per_connection):
    latencies, missed = [], 0
    for arrivals in writer_arrivals:
        for sent, acked, stamp in pushes:
            heard = [arrived for arrived, position in arrivals if position >= stamp and arrived >= sent]
            if heard:
                latencies.append(min(heard) - acked)
            else:
                missed += 1
    return {
        "clients": clients, "connect_s": connect_time, "pushes": len(pushes),
        "push_rtt_p50": statistics.median(acked - sent for sent, acked, _ in pushes),
        "p50": percentile(latencies, 0.5), "p90": percentile(latencies, 0.9),
        "p99": percentile(latencies, 0.99), "max": max(latencies, default=float("nan")),
        "missed": missed, "leaked": sum(len(arrivals) for arrivals in other_arrivals),
        "bytes_per_connection": per_connection,
    }


def machine(db, env):
    import django

    lines = [f"machine: {os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}",
             f"Python {platform.python_version()}, Django {django.get_version()}"]
    if db == "postgresql":
        with live.admin_connection(env) as connection:
            lines.append(connection.execute("SHOW server_version").fetchone()[0].join(["PostgreSQL ", ""]))
    else:
        import sqlite3

        lines.append(f"SQLite {sqlite3.sqlite_version}")
    return ", ".join(lines)


def report(result):
    target = TARGETS.get(result["clients"])
    verdict = "" if target is None else (
        f" (target < {target * 1000:.0f} ms: {'met' if result['p99'] < target else 'MISSED'})")
    memory = result["bytes_per_connection"]
    print(f"  {result['clients']:5d} clients (connected in {result['connect_s']:.1f} s): "
          f"write-to-notice p50 {result['p50'] * 1000:.0f} ms, p90 {result['p90'] * 1000:.0f} ms, "
          f"p99 {result['p99'] * 1000:.0f} ms, max {result['max'] * 1000:.0f} ms{verdict}; "
          f"push round trip p50 {result['push_rtt_p50'] * 1000:.0f} ms; "
          f"{memory / 1024:.1f} KB per idle connection (target < 50 KB: "
          f"{'met' if memory < MEMORY_TARGET else 'MISSED'}); "
          f"{result['missed']} notices missed, {result['leaked']} heard by other users")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "mysql"), default="sqlite")
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--writer-clients", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10, help="pushes per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--writer", nargs=4, metavar=("URL", "TOKEN", "RATE", "SECONDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer:
        url, token, rate, seconds = args.writer
        writer(url, token, float(rate), float(seconds))
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # uvicorn inherits it
    others = (max(args.clients) - args.writer_clients) // CLIENTS_PER_OTHER_USER + 1
    results = []
    with live.scratch_database(args.db, purpose="feedbench") as env:
        tokens = feed.create_users(env, ["demo", *(f"user{n}" for n in range(others))])
        print(machine(args.db, env), flush=True)
        with live.gunicorn(env, workers=1) as writer_site, live.uvicorn(env) as feed_site:
            print(f"{args.db}: pushes to gunicorn -w 1, feed from one uvicorn process; "
                  f"{args.writer_clients} connections of the writing user, the rest of "
                  f"{others} others; {args.rate:g} pushes/s for {args.seconds:g} s", flush=True)
            for clients in args.clients:
                result = asyncio.run(one_round((writer_site, feed_site), tokens, clients,
                                               args.writer_clients, args.rate, args.seconds))
                report(result)
                results.append(result)
    # Feed connections still open when uvicorn stops are cancelled by its graceful
    # shutdown timeout, and it logs each: expected, not an error of the feed.
    errors = [block for block in feed_site.final_log.split("ERROR:")[1:]
              if "timeout graceful shutdown exceeded" not in block]
    if errors:
        print("uvicorn's log shows errors:\n" + "ERROR:".join(errors)[-3000:])
    return 1 if any(result["missed"] or result["leaked"] for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
