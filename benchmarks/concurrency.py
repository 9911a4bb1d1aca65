"""Writers and readers against the example site served by gunicorn: correctness and throughput.

Run it against one database::

    python benchmarks/concurrency.py --db postgresql --seconds 10

It creates a scratch database on the chosen server (SQLite: a temporary
file), migrates it, serves ``testproject`` with ``gunicorn -w 4`` on a free
127.0.0.1 port and runs, for ``--seconds`` each:

1. the mixed load: processes pushing batches of Tasks and of Projects over
   HTTP, one saving Tasks and Projects through the ORM, and readers following
   the ``since``/``now`` chain on ``/taskUpdates``; it reports pushes/s,
   pulls/s and ORM saves/s, and checks every pull (see :func:`check`);
2. Task pushes alone, then with a competing load next to them, and prints
   each rate as a ratio to the alone rate (the floor, measured in the same
   run). Writers of different models take different clock rows, so holding
   the Project clock must not slow Task pushes (ratio near 1), while holding
   the Task clock must (the positive control, well below 1). Hammering
   Project pushes also shares the CPU, so that ratio says how much the two
   models cost each other in all.

The database, the server and the checker are also used by
``tests/integration/test_concurrency_live.py``.
"""

import argparse
import bisect
import contextlib
import importlib
import itertools
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "testproject"
DEFAULT_PORTS = {"postgresql": "5432", "mysql": "3306"}
PROJECTS = [f"P{n}" for n in range(5)]  # shared by every writer; never deleted
REMOVED = None  # the logged value of a deletion
# The example site's to-do models are per user: the load syncs as the demo
# account its migrations create; ORM writes default to it too.
DEMO_AUTH = ("demo", "demo")
HTTP_TIMEOUT = 30


# --- the database --------------------------------------------------------


def database_env(vendor, name):
    """Environment for the example site (gunicorn, ``manage.py``, ORM writers) on ``name``."""
    env = {
        "PS_DB": vendor,
        "PS_DB_NAME": str(name),
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DJANGO_DEBUG": "0",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(SITE)]),
    }
    for key in ("PS_DB_HOST", "PS_DB_PORT", "PS_DB_USER", "PS_DB_PASSWORD"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def server_address(env):
    return (
        env.get("PS_DB_HOST") or "127.0.0.1",
        int(env.get("PS_DB_PORT") or DEFAULT_PORTS[env["PS_DB"]]),
        env.get("PS_DB_USER") or "root",
        env.get("PS_DB_PASSWORD") or "",
    )


def admin_connection(vendor, env):
    """An autocommit connection to the server (not to a database in it)."""
    host, port, user, password = server_address({**env, "PS_DB": vendor})
    if vendor == "postgresql":
        import psycopg

        return psycopg.connect(
            host=host, port=port, user=user, password=password, dbname="postgres", autocommit=True
        )
    import MySQLdb

    connection = MySQLdb.connect(host=host, port=port, user=user, passwd=password)
    connection.autocommit(True)
    return connection


def drop_database(vendor, name, env):
    with contextlib.closing(admin_connection(vendor, env)) as connection:
        cursor = connection.cursor()
        if vendor == "postgresql":
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@contextlib.contextmanager
def scratch_database(vendor, prefix="ps_scratch"):
    """Create and migrate a database of its own; yield its environment; drop it."""
    if vendor == "sqlite":
        directory = tempfile.mkdtemp(prefix=f"{prefix}_")
        env = database_env(vendor, Path(directory) / "db.sqlite3")
        try:
            migrate(env)
            yield env
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    name = f"{prefix}_{os.getpid()}"
    env = database_env(vendor, name)
    drop_database(vendor, name, env)
    with contextlib.closing(admin_connection(vendor, env)) as connection:
        cursor = connection.cursor()
        if vendor == "postgresql":
            cursor.execute(f'CREATE DATABASE "{name}"')
        else:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        migrate(env)
        yield env
    finally:
        drop_database(vendor, name, env)


def migrate(env):
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=SITE,
        env={**os.environ, **env},
        check=True,
    )


# --- the server ----------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self):
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def gunicorn(env, workers=4, extra_env=None):
    """Serve the example site with ``workers`` gunicorn processes; yield a :class:`Server`."""
    executable = shutil.which("gunicorn")
    if executable is None:
        raise RuntimeError("gunicorn is not installed: pip install gunicorn")
    port = free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="ps_gunicorn_"))
    log_path = log_dir / "gunicorn.log"
    command = [
        executable, "--chdir", str(SITE), "testproject.wsgi",
        "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
        "--timeout", "60", "--graceful-timeout", "5",
        "--error-logfile", str(log_path), "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        env={**os.environ, **env, **(extra_env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_serving(server)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Keep the log readable for the caller's report, then clean up.
        server.final_log = server.log() if log_path.exists() else ""
        shutil.rmtree(log_dir, ignore_errors=True)


def wait_until_serving(server, timeout=30):
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
        try:
            if requests.get(f"{server.url}/taskUpdates", params={"since": 2**62}, timeout=5,
                            auth=DEMO_AUTH).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within {timeout} s:\n{server.log()}")


# --- the load ------------------------------------------------------------


@dataclass
class Log:
    """What one client process did and saw."""

    role: str
    uri: str = ""
    writes: list = field(default_factory=list)  # (model, id, value, stamp)
    batches: list = field(default_factory=list)  # (model, stamp) per push or save
    pulls: list = field(default_factory=list)  # (since, now, [(id, stamp, value), ...])
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: list = field(default_factory=list)  # client-side failures and non-200 answers
    order_errors: int = 0


def record_failure(log, what):
    log.errors.append(what)
    return None


def post(session, log, url, items):
    log.requests += 1
    try:
        response = session.post(
            url, data=json.dumps(items), timeout=HTTP_TIMEOUT, headers={"Content-Type": "application/json"}
        )
    except Exception as exc:  # noqa: BLE001 - every client-side failure is reported
        return record_failure(log, f"POST {url}: {type(exc).__name__}: {exc}")
    log.statuses[response.status_code] += 1
    if response.status_code != 200:
        return record_failure(log, f"POST {url}: {response.status_code} {response.text[:300]}")
    return response.json()["now"]


def get(session, log, url, since):
    log.requests += 1
    try:
        response = session.get(url, params={"since": since}, timeout=HTTP_TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        return record_failure(log, f"GET {url}: {type(exc).__name__}: {exc}")
    log.statuses[response.status_code] += 1
    if response.status_code != 200:
        return record_failure(log, f"GET {url}: {response.status_code} {response.text[:300]}")
    return response.json()


def push_writer(base_url, model, number, go, stop, results, seed, batch_range, removals):
    """Push batches of new and changed objects of ``model`` ('task' or 'project')."""

    rng = random.Random(seed)
    uri = {"task": "taskUpdates", "project": "projectUpdates"}[model]
    log = Log(f"{model}-pusher-{number}", uri)
    url = f"{base_url}/{uri}"
    live, versions, counter = [], {}, itertools.count()
    if model == "project" and number == 0:
        live += PROJECTS  # renamed while tasks point at them
    session = demo_session(base_url)
    results.put(("ready", log.role))
    go.wait()
    while not stop.is_set():
        items = []
        for _ in range(rng.randint(*batch_range)):
            if not live or (len(live) < 200 and rng.random() < 0.3):
                obj_id = f"{model[0].upper()}{number}-{next(counter)}"
                live.append(obj_id)
            else:
                obj_id = rng.choice(live)
            if any(item["id"] == obj_id for item in items):
                continue
            stored = versions.get(obj_id, 0) > 0 and obj_id not in PROJECTS
            if removals and stored and len(live) > 20 and rng.random() < 0.03:
                live.remove(obj_id)
                items.append({"id": obj_id, "_removed": True})
                continue
            versions[obj_id] = versions.get(obj_id, 0) + 1
            item = {"id": obj_id, "name": f"{obj_id} v{versions[obj_id]}"}
            if model == "task":
                item["done"] = rng.random() < 0.5
                item["project"] = rng.choice(PROJECTS)
            items.append(item)
        stamp = post(session, log, url, items)
        if stamp is None:
            continue
        log.batches.append((model, stamp))
        for item in items:
            value = REMOVED if item.get("_removed") else item["name"]
            log.writes.append((model, item["id"], value, stamp))
    results.put(("log", log))


def orm_writer(env, number, go, stop, results, seed):
    """Create and change Tasks and Projects with ``save()``; log ``last_change`` after it."""
    os.environ.update(env)
    sys.path[:0] = [str(ROOT), str(SITE)]
    import django

    django.setup()
    from django.db import connection
    from todo.models import Project, Task

    rng = random.Random(seed)
    log = Log(f"orm-writer-{number}")
    objects, versions = [], {}
    results.put(("ready", log.role))
    go.wait()
    while not stop.is_set():
        try:
            if len(objects) < 100 and (not objects or rng.random() < 0.3):
                n = len(objects)
                if rng.random() < 0.8:
                    obj = Task(id=f"O{number}-T{n}", name="", project_id=rng.choice(PROJECTS))
                else:
                    obj = Project(id=f"O{number}-P{n}", name="")
                objects.append(obj)
            else:
                obj = rng.choice(objects)
            versions[obj.pk] = versions.get(obj.pk, 0) + 1
            obj.name = f"{obj.pk} v{versions[obj.pk]}"
            obj.save()
        except Exception as exc:  # noqa: BLE001
            record_failure(log, f"save(): {type(exc).__name__}: {exc}")
            connection.close()
            continue
        model = "task" if isinstance(obj, Task) else "project"
        log.requests += 1
        log.batches.append((model, obj.last_change))
        log.writes.append((model, obj.pk, obj.name, obj.last_change))
    connection.close()
    results.put(("log", log))


def reader(base_url, uri, number, go, writers_done, results):
    """Follow the since/now chain on ``uri`` until the writers are done, then once more."""

    log = Log(f"reader-{number}", uri)
    url = f"{base_url}/{uri}"
    session = demo_session(base_url)
    since = 0
    results.put(("ready", log.role))
    go.wait()
    last = False
    while True:
        last = writers_done.is_set()  # every acknowledged write committed before this
        answer = get(session, log, url, since)
        if answer is not None:
            entries = [
                (u["id"], u.get("_lastChange"), REMOVED if u.get("_removed") else u["name"])
                for u in answer["updates"]
            ]
            keys = [(stamp or 0, obj_id) for obj_id, stamp, _ in entries]
            if keys != sorted(keys):
                log.order_errors += 1
            log.pulls.append((since, answer["now"], entries))
            since = answer["now"]
            if last:
                break
        elif last:
            time.sleep(0.2)  # retry the final pull
    results.put(("log", log))


def clock_holder(env, model, go, stop, results, hold=0.2, pause=0.01):
    """Hold ``model``'s clock row (a tick in an open transaction) most of the time."""
    os.environ.update(env)
    sys.path[:0] = [str(ROOT), str(SITE)]
    import django

    django.setup()
    from django.db import connection, transaction

    from persistence_sync import clock

    target = importlib.import_module("todo.models").__dict__[model.capitalize()]
    log = Log(f"{model}-clock-holder")
    results.put(("ready", log.role))
    go.wait()
    while not stop.is_set():
        with transaction.atomic():
            clock.tick(target, "default")
            log.requests += 1
            time.sleep(hold)
        time.sleep(pause)
    connection.close()
    results.put(("log", log))


def collect(results, processes, kind, timeout=120):
    """The next ``kind`` message; fail early when a process died without sending it."""
    import queue

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, value = results.get(timeout=1)
        except queue.Empty:
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            if dead:
                message = f"load process {dead[0].name} died: exit {dead[0].exitcode}"
                raise RuntimeError(message) from None
            continue
        assert got == kind, (got, kind)
        return value
    raise RuntimeError(f"no {kind!r} message from the load processes in {timeout} s")


def demo_session(base_url):
    """A requests session signed in as the demo user (one password check, not one per request)."""
    import requests

    session = requests.Session()
    login = f"{base_url}/accounts/login/"
    session.get(login, timeout=HTTP_TIMEOUT).raise_for_status()
    username, password = DEMO_AUTH
    response = session.post(login, timeout=HTTP_TIMEOUT, allow_redirects=False, data={
        "username": username, "password": password,
        "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    assert response.status_code == 302, f"signing in as {username} failed: {response.status_code}"
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]  # rotated by the login
    return session


def create_projects(base_url):
    """The projects every task points at (a push of existing ones changes nothing)."""
    import requests

    items = [{"id": pk, "name": f"{pk} v0"} for pk in PROJECTS]
    response = requests.post(f"{base_url}/projectUpdates", json=items, timeout=HTTP_TIMEOUT,
                             auth=DEMO_AUTH)
    response.raise_for_status()


@dataclass
class Load:
    seconds: float
    logs: list

    def of(self, prefix):
        return [log for log in self.logs if log.role.startswith(prefix)]

    def rate(self, prefix, what="requests"):
        total = sum(len(log.batches) if what == "batches" else log.requests for log in self.of(prefix))
        return total / self.seconds


def run_load(
    base_url,
    env,
    seconds,
    *,
    task_pushers=2,
    project_pushers=1,
    orm_writers=1,
    readers=3,
    holders=(),
    batch_range=(1, 20),
    removals=True,
    seed=None,
):
    """Run the processes for ``seconds``; return a :class:`Load` with their logs."""
    context = multiprocessing.get_context("spawn")
    go, stop, writers_done = context.Event(), context.Event(), context.Event()
    results = context.Queue()
    seed = random.randrange(2**32) if seed is None else seed
    writers, others = [], []
    for n in range(task_pushers):
        args = (base_url, "task", n, go, stop, results, seed + n, batch_range, removals)
        writers.append(context.Process(target=push_writer, args=args))
    for n in range(project_pushers):
        args = (base_url, "project", n, go, stop, results, seed + 100 + n, batch_range, False)
        writers.append(context.Process(target=push_writer, args=args))
    for n in range(orm_writers):
        args = (env, n, go, stop, results, seed + 200 + n)
        writers.append(context.Process(target=orm_writer, args=args))
    for model in holders:
        writers.append(context.Process(target=clock_holder, args=(env, model, go, stop, results)))
    for n in range(readers):
        args = (base_url, "taskUpdates", n, go, writers_done, results)
        others.append(context.Process(target=reader, args=args))
    processes = writers + others
    create_projects(base_url)
    for process in processes:
        process.start()
    logs = []
    try:
        for _ in processes:
            collect(results, processes, "ready")
        go.set()
        started = time.monotonic()
        time.sleep(seconds)
        stop.set()
        for _ in writers:
            logs.append(collect(results, writers, "log"))
        elapsed = time.monotonic() - started
        writers_done.set()
        for _ in others:
            logs.append(collect(results, others, "log"))
    finally:
        stop.set()
        writers_done.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()
    return Load(elapsed, logs)


# --- the checks ----------------------------------------------------------


@dataclass
class Report:
    writes: int = 0
    pulls: int = 0
    misses: list = field(default_factory=list)  # a write absent from the pull whose window holds it
    unexpected: list = field(default_factory=list)  # a pulled entry no acknowledged write explains
    unreached: list = field(default_factory=list)  # a write beyond a reader's last `now`
    chain_breaks: list = field(default_factory=list)
    shared_stamps: dict = field(default_factory=dict)  # model -> stamps given to several batches
    server_errors: int = 0  # 5xx answers
    failures: list = field(default_factory=list)  # client errors and non-200 answers
    order_errors: int = 0

    @property
    def ok(self):
        return not (
            self.misses
            or self.unexpected
            or self.unreached
            or self.chain_breaks
            or self.shared_stamps
            or self.server_errors
            or self.failures
            or self.order_errors
        )

    def summary(self):
        return (
            f"{self.writes} writes, {self.pulls} pulls checked: {len(self.misses)} missed, "
            f"{len(self.unexpected)} unexpected, {len(self.unreached)} never reached, "
            f"{len(self.chain_breaks)} chain breaks, "
            f"{sum(len(s) for s in self.shared_stamps.values())} shared stamps, "
            f"{self.server_errors} 5xx, {len(self.failures)} failed requests, "
            f"{self.order_errors} badly ordered answers"
        )


def check(load, model="task"):
    """Check every reader's pulls against every acknowledged write of ``model``.

    The readers' windows ``(since, now]`` must chain from 0 and reach past the
    last acknowledged stamp. For each write, the pull whose window holds its
    stamp must answer it (same stamp and value) unless a later write of the
    same id inside that window superseded it; every pulled entry must be the
    latest acknowledged write of its id up to that pull's ``now``. Stamps of
    different pushes or saves of one model must all differ.
    """
    report = Report()
    for log in load.logs:
        report.server_errors += sum(n for status, n in log.statuses.items() if status >= 500)
        report.failures += [f"{log.role}: {error}" for error in log.errors]
        report.order_errors += log.order_errors
    batches = defaultdict(Counter)
    history = defaultdict(list)  # id -> [(stamp, value)] sorted
    for log in load.logs:
        for batch_model, stamp in log.batches:
            batches[batch_model][stamp] += 1
        for write_model, obj_id, value, stamp in log.writes:
            if write_model == model:
                history[obj_id].append((stamp, value))
    for batch_model, counts in batches.items():
        shared = sorted(stamp for stamp, n in counts.items() if n > 1)
        if shared:
            report.shared_stamps[batch_model] = shared
    for writes in history.values():
        writes.sort()
    report.writes = sum(len(writes) for writes in history.values())

    for log in load.of("reader"):
        report.pulls += len(log.pulls)
        nows = [now for _, now, _ in log.pulls]
        previous = 0
        for since, now, _ in log.pulls:
            if since != previous or now < since:
                report.chain_breaks.append((log.role, previous, since, now))
            previous = now
        answers = [
            {obj_id: (stamp, value) for obj_id, stamp, value in entries} for _, _, entries in log.pulls
        ]
        for obj_id, writes in history.items():
            for i, (stamp, value) in enumerate(writes):
                k = bisect.bisect_left(nows, stamp)
                if k == len(nows):
                    report.unreached.append((log.role, obj_id, stamp))
                    continue
                if i + 1 < len(writes) and writes[i + 1][0] <= nows[k]:
                    continue  # superseded inside the same window
                if answers[k].get(obj_id) != (stamp, value):
                    since = log.pulls[k][0]
                    report.misses.append(
                        (log.role, obj_id, stamp, value, (since, nows[k]), answers[k].get(obj_id))
                    )
        for since, now, entries in log.pulls:
            for obj_id, stamp, value in entries:
                writes = history.get(obj_id, [])
                stamps = [s for s, _ in writes]
                j = bisect.bisect_right(stamps, now) - 1
                if j < 0 or writes[j] != (stamp, value) or not since < stamp <= now:
                    report.unexpected.append((log.role, obj_id, stamp, value, (since, now)))
    return report


def throughput(load):
    return {
        "task pushes/s": load.rate("task-pusher"),
        "project pushes/s": load.rate("project-pusher"),
        "ORM saves/s": load.rate("orm-writer"),
        "pulls/s": load.rate("reader"),
    }


def format_rates(rates):
    return ", ".join(f"{value:.0f} {name}" for name, value in rates.items())


# --- the command ---------------------------------------------------------


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
        return run_load(server.url, env, seconds, **{**options, **load}).rate("task-pusher")

    alone = task_rate()
    rows = [("Task pushes alone (the floor)", alone)]
    rows.append(("... while the Project clock is held (lock only)", task_rate(holders=("project",))))
    rows.append(("... while another process hammers Project pushes", task_rate(project_pushers=1)))
    rows.append(("... while the Task clock is held (positive control)", task_rate(holders=("task",))))
    return [(name, rate, rate / alone if alone else float("nan")) for name, rate in rows]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "mysql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    args = parser.parse_args(argv)

    with scratch_database(args.db, prefix="ps_bench") as env:
        with gunicorn(env, workers=args.workers) as server:
            print(
                f"{args.db}: gunicorn -w {args.workers} at {server.url}, {args.seconds:g} s per phase",
                flush=True,
            )
            load = run_load(server.url, env, args.seconds)
            report = check(load)
            print(f"mixed load: {format_rates(throughput(load))}")
            print(f"  check: {report.summary()}")
            for name, rate, ratio in isolation(server, env, args.seconds):
                print(f"  {name:55s} {rate:7.0f} /s  ratio {ratio:.2f}")
    log = getattr(server, "final_log", "")
    if "Traceback" in log or "WORKER TIMEOUT" in log:
        print("gunicorn's log shows errors:\n" + log[-3000:])
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
