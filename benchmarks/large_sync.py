"""Sync at a million objects: each figure as a ratio to a floor measured in the same run.

One command, run from the repository root::

    python benchmarks/large_sync.py                      # SQLite, 10k and 100k
    python benchmarks/large_sync.py --db sqlite,postgresql --sizes 10000,100000,1000000

For each database and each N it fills the example site's Task table in a
throw-away database with N objects and prints, medians of ``--repeat`` runs:

* full pull (``since=0``) through the view vs. the floor: one indexed query
  of the same rows and fields in id order, encoded by orjson (both answers'
  sizes are printed);
* paged pull (pages of ``MAX_PAGE_SIZE``) vs. the same floor;
* incremental pull of 1,000 changed objects vs. the floor's query of them;
* polls (what changed since the last pull) of 10 changes and of 1% of the
  N rows, for the same table served with ``owner=``, ``scope=`` and
  unscoped, each against its floor, the 1% one per object against the full
  pull (issue 23: 10 changes under 10 ms, 1% within 3x per object, at 1M);
* push of 10,000 new objects through the view vs. one raw upsert transaction
  (``bulk_create(update_conflicts=True)``) of the same rows;
* the server's memory: RSS growth of a process that serves one full pull of
  N, measured in a fresh process (peak RSS minus RSS before the pull);
* ``syncall`` initial sync of the N tasks (``sync_all`` into an empty replica
  database, pages of ``PULL_PAGE_SIZE``, each written as it comes) vs. the
  full pull alone (one ``since=0`` GET, read and parsed by the client's
  transport), both in one client process against one gunicorn worker
  serving the benchmark's database; the client's peak RSS growth is printed
  with it (bounded by the page size, not N), and, for scale, the time the
  replica's database alone takes to store the N rows (one ``INSERT ...
  SELECT`` from a copy: indexes and foreign-key checks, no Python).

The targets of issues #11 and #23 are printed next to the figures. Absolute times
depend on the machine; only the ratios mean something.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"full pull": 1.5, "paged pull": None, "incremental pull": None, "push 10k": 2.0,
           "syncall initial": 3.0}
RSS_TARGET_MB = 64
POLL_TARGET_S, POLL_PER_OBJECT_TARGET = 0.010, 3.0  # issue 23, at 1,000,000 rows
PUSH_SIZE = 10_000
CHANGED = 1_000


def setup_django(db, name=None):
    os.environ["PS_DB"] = db
    if name:
        os.environ["PS_DB_NAME"] = name
    elif db == "sqlite":
        os.environ["PS_DB_NAME"] = str(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    import django

    django.setup()


def median_time(func, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_medians(func, floor, repeat):
    """Medians of ``func`` and ``floor`` timed in turns: a database's background work
    (InnoDB purging and flushing after the benchmark's own updates) then weighs on
    both alike instead of on whichever ran first."""
    times: tuple[list, list] = ([], [])
    for _ in range(repeat):
        for measured, run in zip(times, (func, floor)):
            start = time.perf_counter()
            run()
            measured.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def consume(response):
    """Read a pull's answer as a client would, without keeping it; returns its size."""
    if response.streaming:
        return sum(len(chunk) for chunk in response.streaming_content)
    return len(response.content)


def fill(n):
    """N tasks in id order, stamped 1..N as pushes would have, and the clock after them."""
    from django.db.models import QuerySet
    from todo.models import Task, demo_owner

    from persistence_sync.clock import Clock

    QuerySet(Task).all()._raw_delete(Task.objects.db)
    owner = demo_owner()  # the user whose pulls are measured
    batch = []
    for i in range(n):
        batch.append(Task(id=f"{i:032X}", name=f"task {i}", done=i % 2 == 0, last_change=i + 1,
                          owner_id=owner))
        if len(batch) == 5000:
            QuerySet(Task).bulk_create(batch)
            batch = []
    QuerySet(Task).bulk_create(batch)
    Clock.objects.update_or_create(model="todo.task", defaults={"value": n})
    analyze()


def analyze():
    """Table statistics, as a deployed database has them (autovacuum, after a load):
    without them PostgreSQL's planner guesses a few rows and picks its plans for those."""
    from django.db import connection

    if connection.vendor in ("postgresql", "mysql"):
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE" if connection.vendor == "postgresql"
                           else "ANALYZE TABLE todo_task")


def floor_pull(since):
    """One indexed query of the window, in id order, encoded by orjson.

    The same columns as the pull sends: the id, every synced field (the
    registration's, so that the two cannot drift apart) and the stamp.
    """
    import orjson
    from todo.models import Task

    from persistence_sync.registry import default

    synced = default.get_registration(Task).fields
    rows = Task.objects.filter(last_change__gt=since).order_by("pk").values(
        "id", *synced, "last_change")
    return len(orjson.dumps({"now": 0, "updates": list(rows)}))


def demo_client():
    """A test client signed in as the demo user: the to-do models are per user."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from todo.models import demo_owner

    client = Client()
    client.force_login(get_user_model()._default_manager.get(pk=demo_owner()))
    return client


def pull_through_view(client, **params):
    response = client.get("/taskUpdates", params)
    assert response.status_code == 200
    return consume(response)


def paged_pull(client, limit):
    """Every page of one sync; the answers are parsed, as a paging client must."""
    params = {"since": 0, "limit": limit}
    while True:
        response = client.get("/taskUpdates", params)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        answer = json.loads(body)
        if not answer["more"]:
            return
        params.update(now=answer["now"], after=answer["updates"][-1]["id"])


def measure(n, repeat):
    from django.db import transaction
    from django.db.models import QuerySet
    from todo.models import Task, demo_owner

    from persistence_sync.clock import Clock
    from persistence_sync.conf import sync_settings
    from persistence_sync.models import Tombstone

    client = demo_client()
    fill(n)
    figures = {}
    pull_floor = median_time(lambda: floor_pull(-1), repeat)
    figures["full pull"] = (median_time(lambda: pull_through_view(client, since=0), repeat), pull_floor)
    figures["paged pull"] = (
        median_time(lambda: paged_pull(client, sync_settings.MAX_PAGE_SIZE), repeat), pull_floor)

    changed = [f"{i:032X}" for i in range(0, n, max(1, n // CHANGED))][:CHANGED]
    QuerySet(Task).filter(pk__in=changed).update(last_change=n + 1, name="changed")
    Clock.objects.filter(model="todo.task").update(value=n + 1)
    figures["incremental pull"] = (
        median_time(lambda: pull_through_view(client, since=n), repeat),
        median_time(lambda: floor_pull(n), repeat))

    owner = demo_owner()
    rows = [{"id": f"P{i:031X}", "name": f"pushed {i}", "done": False} for i in range(PUSH_SIZE)]
    body = json.dumps(rows)

    def push():
        response = client.post("/taskUpdates", body, "application/json")
        assert response.status_code == 200, response.content[:300]

    def floor_push():
        objs = [Task(id=r["id"], name=r["name"], done=r["done"], last_change=1, owner_id=owner)
                for r in rows]
        with transaction.atomic():
            QuerySet(Task).bulk_create(objs, batch_size=2000, update_conflicts=True,
                                       unique_fields=["id"], update_fields=["name", "done"])

    def fresh(func):
        def run():
            # New objects each time: no row, and no tombstone that the
            # deletion left (a push would forget them; the floor does not).
            QuerySet(Task).filter(pk__startswith="P").delete()
            Tombstone.objects.filter(model="todo.task", object_id__startswith="P").delete()
            start = time.perf_counter()
            func()
            return time.perf_counter() - start
        return run

    figures["push 10k"] = (
        statistics.median(fresh(push)() for _ in range(repeat)),
        statistics.median(fresh(floor_push)() for _ in range(repeat)))
    QuerySet(Task).filter(pk__startswith="P").delete()
    return figures


def poll_figures(n, repeat):
    """Polls of 10 changes and of 1% of the N rows, for each kind of registration.

    The same Task table served three ways: with ``owner=`` (the example
    site's registration), ``scope=`` (the owner's id as the request's scope
    value) and unscoped. Each poll is timed through its endpoint, in-process,
    against the floor (one indexed query of the changed rows, encoded by
    orjson), and the 1% poll's cost per object against the full pull's.
    Returns ``{kind: {label: (seconds, floor seconds, objects)}}``.
    """
    from django.contrib.auth import get_user_model
    from django.db.models import QuerySet
    from django.test import RequestFactory
    from rest_framework.test import force_authenticate
    from todo.models import Task, demo_owner

    from persistence_sync.classic import endpoint_class
    from persistence_sync.clock import Clock
    from persistence_sync.endpoints import as_view
    from persistence_sync.registry import SyncRegistry, default

    user = get_user_model()._default_manager.get(pk=demo_owner())
    fields = default.get_registration(Task).fields
    others = SyncRegistry()  # not served: only called here
    kinds = {"owner=": default.get_registration(Task),
             "scope=": others.get_registration(others.register(
                 Task, uri="scoped", fields=fields, scope="owner",
                 scope_values=lambda request: [request.user.pk])),
             "unscoped": None}
    others_unscoped = SyncRegistry()
    kinds["unscoped"] = others_unscoped.get_registration(
        others_unscoped.register(Task, uri="plain", fields=fields))
    factory = RequestFactory()

    def view_of(registration, registry):
        return as_view(endpoint_class(registration, registry))

    views = {"owner=": view_of(kinds["owner="], default),
             "scope=": view_of(kinds["scope="], others),
             "unscoped": view_of(kinds["unscoped"], others_unscoped)}

    def pull(kind, since):
        request = factory.get("/x", {"since": since})
        force_authenticate(request, user)
        response = views[kind](request)
        assert response.status_code == 200, response.content[:300]
        return consume(response)

    for kind in views:  # a first sync each: the scope= one records its grant (a tick)
        pull(kind, 0)
    clock = Clock.objects.get(model="todo.task").value
    figures: dict = {kind: {} for kind in views}
    for label, count in (("poll of 10 changes", 10), ("poll of 1% changed", max(1, n // 100))):
        step = max(1, n // count)
        changed = [f"{i:032X}" for i in range(step // 2, n, step)][:count]
        since, clock = clock, clock + 1
        QuerySet(Task).filter(pk__in=changed).update(last_change=clock, name="polled")
        Clock.objects.filter(model="todo.task").update(value=clock)
        analyze()
        for kind in views:
            pull(kind, since)  # warm: the registration's codecs, the plan cache
            figures[kind][label] = (*paired_medians(
                lambda kind=kind, since=since: pull(kind, since),
                lambda since=since: floor_pull(since), repeat), len(changed))
    for kind in views:
        figures[kind]["full pull"] = (*paired_medians(
            lambda kind=kind: pull(kind, 0), lambda: floor_pull(-1), repeat), n)
    return figures


def rss_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def serve_one_pull():
    """In a fresh process: the RSS growth (MB) of serving one full pull."""
    client = demo_client()
    pull_through_view(client, since=0, limit=1)  # warm: imports, connection, caches
    before = rss_kb("VmRSS")
    size = pull_through_view(client, since=0)
    print(json.dumps({"growth_mb": (rss_kb("VmHWM") - before) / 1024, "bytes": size}))


def rss_growth(db, name):
    env = {**os.environ, "PS_DB": db, "PS_DB_NAME": name}
    out = subprocess.run([sys.executable, __file__, "--db", db, "--rss-of", name],
                         env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.splitlines()[-1])


def syncall_figures(db, name, repeat):
    """``(syncall, full pull alone)`` medians, and the client's RSS growth, over real HTTP."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token
    from todo.models import demo_owner

    from tests.integration import live

    # A token, as a deployed syncall would use: HTTP Basic would check the
    # password hash once per page (a quarter of a second each here).
    token, _ = Token.objects.get_or_create(user=get_user_model()._default_manager.get(
        pk=demo_owner()))
    with live.gunicorn(live.site_env(db, name), workers=1) as server, \
            live.scratch_database(db, purpose="bench_client") as client_env:
        out = subprocess.run(
            [sys.executable, __file__, "--db", db, "--syncall-from", server.url,
             "--repeat", str(repeat)],
            # stderr passes through: a failing client shows its traceback.
            env={**live.process_env(client_env), "PERSISTENCE_SYNC_TOKEN": token.key},
            check=True, stdout=subprocess.PIPE, text=True,
        ).stdout
    return json.loads(out.splitlines()[-1])


def time_syncall(url, repeat):
    """In the client process: the full pull alone, then initial syncs into empty tables."""
    import django

    django.setup()
    from django.db.models import QuerySet
    from todo.models import Project, Task

    from persistence_sync.client import HttpTransport, sync_all
    from persistence_sync.conf import sync_settings
    from persistence_sync.models import Clock, OutgoingPush, SyncState, Tombstone

    transport = HttpTransport.from_settings(timeout=600)  # with PERSISTENCE_SYNC_TOKEN

    def reset():
        for model in (Task, Project, SyncState, Tombstone, Clock, OutgoingPush):
            QuerySet(model).all()._raw_delete(QuerySet(model).db)

    times = []
    before = rss_kb("VmRSS")
    for _ in range(repeat):
        reset()
        start = time.perf_counter()
        results = sync_all(server_url=url + "/", models=["todo.task"], transport=transport)
        times.append(time.perf_counter() - start)
        assert all(result.ok for result in results), [r.error for r in results]
    growth = (rss_kb("VmHWM") - before) / 1024  # before the full pull: its answer is bigger
    count = Task.objects.count()
    rewrite = replica_writes_alone(Task)
    writes = statistics.median(rewrite() for _ in range(repeat))
    pull = median_time(lambda: transport.pull(url + "/taskUpdates", 0), repeat)

    def pages():
        answer, page = {"more": True}, {}
        while answer["more"]:
            answer = transport.pull(url + "/taskUpdates", 0, limit=sync_settings.PULL_PAGE_SIZE,
                                    **page)
            page = {"now": answer["now"], "after": answer["updates"][-1]["id"]}

    paged = median_time(pages, repeat)
    print(json.dumps({"syncall": statistics.median(times), "pull": pull, "paged": paged,
                      "writes": writes, "objects": count, "growth_mb": growth}))


def replica_writes_alone(model):
    """The replica's database alone writing the rows a sync wrote: ``INSERT ... SELECT``.

    The rows are kept in a temporary table; each run empties the model's
    table and copies them back in one statement and one commit, with the
    table's indexes and foreign keys. No Python, no HTTP: what the
    database itself needs to store them.
    """
    from django.db import connection, transaction
    from django.db.models import QuerySet

    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE bench_rows AS SELECT * FROM {table}")

    def run():  # its time, the emptying left out
        QuerySet(model).all()._raw_delete(connection.alias)
        start = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {table} SELECT * FROM bench_rows")
        return time.perf_counter() - start

    return run


def run_database(db, sizes, repeat, polls_only=False):
    setup_django(db)
    from django.db import connection

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    test_name = connection.settings_dict["NAME"]
    try:
        for n in sizes:
            if polls_only:
                fill(n)
                polls = poll_figures(n, repeat)
                print(f"\n{db}, N = {n:,}")
                report_polls(polls)
                continue
            figures = measure(n, repeat)
            fill(n)
            polls = poll_figures(n, repeat)
            floor_bytes = floor_pull(-1)  # the same answer? (ids, values and stamps)
            connection.close()  # let the measuring process see the committed rows
            rss = rss_growth(db, test_name)
            synced = syncall_figures(db, test_name, repeat)
            assert synced["objects"] == n, synced
            figures["syncall initial"] = (synced["syncall"], synced["pull"])
            report(db, n, figures, rss, synced, floor_bytes)
            report_polls(polls)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def report(db, n, figures, rss, synced, floor_bytes):
    print(f"\n{db}, N = {n:,}")
    for name, (time_taken, floor) in figures.items():
        target = TARGETS.get(name)
        goal = f"target <= {target}x" if target else ""
        floor_name = "pull" if name == "syncall initial" else "floor"
        print(f"  {name:<17} {time_taken:8.3f}s  {floor_name} {floor:8.3f}s  = "
              f"{time_taken / floor:5.2f}x  {goal}")
    verdict = "ok" if rss["growth_mb"] < RSS_TARGET_MB else "OVER"
    print(f"  server RSS growth of a full pull ({rss['bytes'] / 1e6:.0f} MB answer): "
          f"{rss['growth_mb']:.1f} MB  target < {RSS_TARGET_MB} MB  {verdict}")
    print(f"  full pull answer {rss['bytes'] / 1e6:.1f} MB, the floor's {floor_bytes / 1e6:.1f} MB "
          "(the same rows and fields; dates as ms against ISO text)")
    print(f"  syncall's own pages alone (PULL_PAGE_SIZE, no writes): {synced['paged']:.3f}s "
          f"= {synced['paged'] / synced['pull']:.2f}x the full pull")
    print(f"  the replica's database alone storing the N rows (INSERT ... SELECT, one commit): "
          f"{synced['writes']:.3f}s = {synced['writes'] / synced['pull']:.2f}x the full pull")
    print(f"  client RSS growth of syncall initial: {synced['growth_mb']:.1f} MB "
          "(bounded by PULL_PAGE_SIZE, not N)")


def report_polls(polls):
    """Each kind's polls: time, floor, and cost per object against the full pull's."""
    print("  polls (what changed since the last pull), per kind of registration:")
    for kind, figures in polls.items():
        full, _, n = figures["full pull"]
        for label, (taken, floor, count) in figures.items():
            line = (f"    {kind:<9} {label:<20} {taken * 1000:9.1f} ms  floor {floor * 1000:8.1f} ms"
                    f" = {taken / floor:5.2f}x")
            if label == "poll of 10 changes":
                verdict = "ok" if taken < POLL_TARGET_S else "OVER"
                line += f"  target < {POLL_TARGET_S * 1000:.0f} ms  {verdict}"
            elif label == "poll of 1% changed":
                per_object = (taken / count) / (full / n)
                verdict = "ok" if per_object <= POLL_PER_OBJECT_TARGET else "OVER"
                line += (f"  {per_object:5.2f}x the full pull's cost per object"
                         f"  target <= {POLL_PER_OBJECT_TARGET:g}x  {verdict}")
            print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite", help="comma-separated: sqlite,postgresql,mysql")
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated object counts")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--polls-only", action="store_true",
                        help="only the polls of each kind of registration (quicker at 1M)")
    parser.add_argument("--rss-of", help=argparse.SUPPRESS)  # internal: the measuring process
    parser.add_argument("--syncall-from", help=argparse.SUPPRESS)  # internal: the client process
    args = parser.parse_args()
    if args.syncall_from:
        sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
        time_syncall(args.syncall_from, args.repeat)
        return
    if args.rss_of:
        setup_django(args.db, args.rss_of)
        serve_one_pull()
        return
    dbs = args.db.split(",")
    sizes = [int(size) for size in args.sizes.split(",")]
    for db in dbs:
        if len(dbs) > 1:  # one database per process: Django's settings are global
            subprocess.run([sys.executable, __file__, "--db", db, "--sizes", args.sizes,
                            "--repeat", str(args.repeat),
                            *(["--polls-only"] if args.polls_only else [])], check=True)
        else:
            run_database(db, sizes, args.repeat, args.polls_only)


if __name__ == "__main__":
    main()
