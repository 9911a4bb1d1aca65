"""Live servers for the live tests and the benchmarks: databases, processes and the oracle.

A *live* test (``@pytest.mark.live``, files ``test_*_live.py`` beside this
one) serves the example site (``testproject``) from real server processes and
talks HTTP to it. This module holds everything those tests share with
``benchmarks/``, in four parts:

* **scratch databases** -- :func:`scratch_database` creates a database of its
  own on SQLite, PostgreSQL or MariaDB, migrates it and drops it afterwards;
  :func:`site_env` is the environment pointing the site at a database;
* **servers** -- :func:`gunicorn`, :func:`uvicorn` and :func:`runserver` start the site on a
  :func:`free_port`, :func:`wait_until_serving` and stop it, yielding a
  :class:`Server` whose log survives the stop;
* **the load** -- :func:`run_load` runs writer processes (HTTP pushes of Tasks
  and Projects, ORM saves, clock holders) and readers following the
  ``since``/``now`` chain, and returns a :class:`Load` of what each saw;
* **the oracle** -- :func:`check` tells from a :class:`Load` whether every
  acknowledged write reached every reader, and returns a :class:`Report`.

For example::

    with scratch_database("postgresql", purpose="concurrency") as env:
        with gunicorn(env, workers=4) as server:
            load = run_load(server.url, env, seconds=5)
    report = check(load)
    assert report.ok, report.summary()

Scratch databases on a server are named ``<PS_DB_NAME>_<purpose>_<pid>``
(``ps_<purpose>_<pid>`` when ``PS_DB_NAME`` is unset or a file path), so runs
that share a server with different ``PS_DB_NAME`` never touch each other's
databases. The server is found through ``PS_DB_HOST``, ``PS_DB_PORT``,
``PS_DB_USER`` and ``PS_DB_PASSWORD``, as in ``testproject/settings.py``.

Neither Django nor pytest is imported at module level: the benchmarks import
this module from a plain ``python`` process, and the load processes set up
Django on the scratch database themselves (:func:`setup_django`).
"""

import base64
import bisect
import contextlib
import importlib
import importlib.util
import itertools
import json
import multiprocessing
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "testproject"
VENDORS = ("sqlite", "postgresql", "mysql")
DEFAULT_PORTS = {"postgresql": "5432", "mysql": "3306"}
PROJECTS = [f"P{n}" for n in range(5)]  # shared by every writer; never deleted
URIS = {"task": "taskUpdates", "project": "projectUpdates"}
REMOVED = None  # the logged value of a deletion
HTTP_TIMEOUT = 30
# The example site's to-do models are per user: the load syncs as the demo
# account its migrations create; ORM writes default to it too.
DEMO_AUTH = ("demo", "demo")
GUNICORN_MISSING = "gunicorn is not installed: pip install gunicorn"


# --- scratch databases ---------------------------------------------------


def site_env(vendor, name):
    """The variables that point the example site (``manage.py``, gunicorn, ORM) at database ``name``.

    Only the variables to set; a subprocess gets them over :func:`process_env`.
    ``DJANGO_DEBUG=0`` serves the site as deployed (no query log, plain error
    pages). ``PYTHONPATH`` puts this checkout first and keeps the caller's
    entries after it.
    """
    env = {
        "PS_DB": vendor,
        "PS_DB_NAME": str(name),
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DJANGO_DEBUG": "0",
        "PS_THROTTLE": "0",  # load and live tests: the example site's throttle off
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(SITE), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    for key in ("PS_DB_HOST", "PS_DB_PORT", "PS_DB_USER", "PS_DB_PASSWORD"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def process_env(env):
    """This process's environment with ``env`` on top, for a subprocess of the site.

    A developer's ``PERSISTENCE_SYNC_TOKEN`` is left out: ``syncall`` would
    send it, and a test must not depend on who runs it.
    """
    merged = {**os.environ, **env}
    merged.pop("PERSISTENCE_SYNC_TOKEN", None)
    return merged


def scratch_name(purpose):
    """A database name that no parallel run shares: ``<PS_DB_NAME>_<purpose>_<pid>``."""
    prefix = os.environ.get("PS_DB_NAME", "")
    if not re.fullmatch(r"[A-Za-z0-9_]+", prefix):
        prefix = "ps"  # unset, or a SQLite file path
    return f"{prefix}_{purpose}_{os.getpid()}"


@contextlib.contextmanager
def scratch_database(vendor, purpose="scratch"):
    """Create and migrate a database of its own on ``vendor``; yield its :func:`site_env`; drop it.

    SQLite gets a file in a temporary directory. On a server, a database left
    behind by a killed run of the same name is dropped first.
    """
    if vendor not in VENDORS:
        raise ValueError(f"vendor must be one of {', '.join(VENDORS)}, not {vendor!r}")
    if vendor == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"ps_{purpose}_") as directory:
            env = site_env(vendor, Path(directory) / "db.sqlite3")
            migrate(env)
            yield env
        return
    env = site_env(vendor, scratch_name(purpose))
    drop_database(env)
    create_database(env)
    try:
        migrate(env)
        yield env
    finally:
        drop_database(env)


def server_address(env):
    """``(host, port, user, password)`` of the database server ``env`` points at."""
    return (
        env.get("PS_DB_HOST") or "127.0.0.1",
        int(env.get("PS_DB_PORT") or DEFAULT_PORTS[env["PS_DB"]]),
        env.get("PS_DB_USER") or "root",
        env.get("PS_DB_PASSWORD") or "",
    )


def admin_connection(env):
    """An autocommit connection to the server of ``env`` (not to a database in it)."""
    host, port, user, password = server_address(env)
    if env["PS_DB"] == "postgresql":
        import psycopg

        return psycopg.connect(
            host=host, port=port, user=user, password=password, dbname="postgres", autocommit=True
        )
    import MySQLdb

    connection = MySQLdb.connect(host=host, port=port, user=user, passwd=password)
    connection.autocommit(True)
    return connection


def run_admin_sql(env, postgresql, mysql):
    """Run one statement on the server: ``postgresql`` or ``mysql``, whichever ``env`` uses."""
    with contextlib.closing(admin_connection(env)) as connection:
        connection.cursor().execute(postgresql if env["PS_DB"] == "postgresql" else mysql)


def create_database(env):
    name = env["PS_DB_NAME"]
    # utf8mb4_bin: the collation the suite's MariaDB test database uses (case-sensitive ids).
    run_admin_sql(
        env,
        f'CREATE DATABASE "{name}"',
        f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
    )


def drop_database(env):
    name = env["PS_DB_NAME"]
    # FORCE: a server process killed mid-request may still hold a session.
    run_admin_sql(env, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f"DROP DATABASE IF EXISTS `{name}`")


def migrate(env):
    """``manage.py migrate`` the database ``env`` points at."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=SITE,
        env=process_env(env),
        check=True,
    )


def setup_django(env):
    """Set up Django in this process on the database ``env`` points at (the load processes, bulk_sync)."""
    os.environ.update(env)
    sys.path[:0] = [str(ROOT), str(SITE)]
    import django

    django.setup()


# --- servers -------------------------------------------------------------


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running example site: its base URL (no trailing slash), process and log file."""

    url: str
    process: subprocess.Popen
    log_path: Path
    final_log: str = ""  # the whole log, kept when the server stops

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def gunicorn(env, workers=4, extra_env=None):
    """Serve the example site with ``workers`` gunicorn processes; yield a :class:`Server`."""
    if not has_gunicorn():
        raise RuntimeError(GUNICORN_MISSING)
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--chdir", str(SITE), "testproject.wsgi",
        "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
        "--timeout", "60", "--graceful-timeout", "5", "--log-level", "warning",
    ]  # fmt: skip
    with serve(command, port, {**env, **(extra_env or {})}) as server:
        yield server


@contextlib.contextmanager
def uvicorn(env, port=None, extra_env=None):
    """Serve the example site (pages, sync endpoints, change feed) with one uvicorn process.

    ``port``: a given one (a restarted feed on its old address), else a free one.
    """
    port = port or free_port()
    command = [
        sys.executable, "-m", "uvicorn", "testproject.asgi:application", "--app-dir", str(SITE),
        "--host", "127.0.0.1", "--port", str(port), "--timeout-graceful-shutdown", "1",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with serve(command, port, {**env, **(extra_env or {})}) as server:
        yield server


def require_uvicorn():
    """Skip the calling test when uvicorn is not installed."""
    import pytest

    if importlib.util.find_spec("uvicorn") is None:
        pytest.skip("uvicorn is not installed: pip install -e '.[live]'")


@contextlib.contextmanager
def runserver(env):
    """Serve the example site with ``manage.py runserver`` (one process); yield a :class:`Server`."""
    port = free_port()
    command = [sys.executable, str(SITE / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"]
    with serve(command, port, env) as server:
        yield server


def has_gunicorn():
    """Whether this interpreter can run gunicorn (``python -m gunicorn``: no need for it on PATH)."""
    return importlib.util.find_spec("gunicorn") is not None


def require_gunicorn():
    """Skip the calling test when gunicorn is not installed."""
    import pytest  # here, not at the top: the benchmarks import this module without pytest

    if not has_gunicorn():
        pytest.skip(GUNICORN_MISSING)


@contextlib.contextmanager
def serve(command, port, env):
    """Run the server ``command`` listening on ``port``; yield its :class:`Server` once it answers."""
    with tempfile.TemporaryDirectory(prefix="ps_server_") as log_dir:
        log_path = Path(log_dir) / "server.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command, env=process_env(env), stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file
            )
        server = Server(f"http://127.0.0.1:{port}", process, log_path)
        try:
            wait_until_serving(server)
            yield server
        finally:
            stop(process)
            server.final_log = server.log()  # readable after the directory is gone


def stop(process, grace=15):
    """SIGTERM (gunicorn finishes its requests), then SIGKILL after ``grace`` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_serving(server, timeout=30):
    """Return once ``server`` answers a pull; raise with its log if it exits or stays silent."""
    # An empty pull (cheap on any database), as the demo user: the to-do models are per user.
    probe = urllib.request.Request(f"{server.url}/taskUpdates?since={2**62}", headers={
        "Authorization": "Basic " + base64.b64encode(":".join(DEMO_AUTH).encode()).decode()})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(probe, timeout=5):
                return
        except OSError:  # refused, reset, timed out or an HTTP error: not ready yet
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {timeout} s:\n{server.log()}")


# --- the load: what each process did and saw -----------------------------


@dataclass
class Log:
    """What one load process did and saw."""

    role: str
    uri: str = ""
    writes: list = field(default_factory=list)  # (model, id, value, stamp)
    batches: list = field(default_factory=list)  # (model, stamp) per push or save
    pulls: list = field(default_factory=list)  # (since, now, [(id, stamp, value), ...])
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: list = field(default_factory=list)  # client-side failures and non-200 answers
    order_errors: int = 0
    busy: int = 0  # pushes answered 503 "busy, retry later" and tried again

    def record_failure(self, what):
        self.errors.append(what)
        return None

    def acknowledged(self, model, items, stamp):
        """Log a push acknowledged with ``now`` = ``stamp`` (or a save that stamped ``last_change``)."""
        self.batches.append((model, stamp))
        for item in items:
            value = REMOVED if item.get("_removed") else item["name"]
            self.writes.append((model, item["id"], value, stamp))


@dataclass
class Load:
    """The logs of one :func:`run_load` and how long its writers ran."""

    seconds: float
    logs: list

    def of(self, prefix):
        return [log for log in self.logs if log.role.startswith(prefix)]

    def rate(self, prefix, what="requests"):
        """Per second: requests (or acknowledged ``batches``) of the roles named ``prefix...``."""
        total = sum(len(log.batches) if what == "batches" else log.requests for log in self.of(prefix))
        return total / self.seconds

    def throughput(self):
        return {
            "task pushes/s": self.rate("task-pusher"),
            "project pushes/s": self.rate("project-pusher"),
            "ORM saves/s": self.rate("orm-writer"),
            "pulls/s": self.rate("reader"),
        }

    def summary(self):
        """The throughput in one line: ``"42 task pushes/s, 7 project pushes/s, ..."``."""
        return ", ".join(f"{value:.0f} {name}" for name, value in self.throughput().items())


# --- the load: HTTP ------------------------------------------------------


# A push answered 503 "busy, retry later" (it waited LOCK_TIMEOUT for the clock
# and stored nothing) is tried again this many times, as a client would.
BUSY_RETRIES = 3


def post(session, log, url, items):
    """Push ``items``; the answer's ``now``, or ``None`` (logged) when the push failed.

    A 503 whose Retry-After says the model was busy stored nothing: it is
    retried (counted in ``log.busy``), and only a push still refused after
    :data:`BUSY_RETRIES` counts as a 5xx and a failure.
    """
    body = json.dumps(items)
    for attempt in range(BUSY_RETRIES + 1):
        log.requests += 1
        try:
            response = session.post(
                url, data=body, timeout=HTTP_TIMEOUT, headers={"Content-Type": "application/json"}
            )
        except Exception as exc:  # noqa: BLE001 - every client-side failure is reported
            return log.record_failure(f"POST {url}: {type(exc).__name__}: {exc}")
        busy = response.status_code == 503 and "busy" in response.text
        if busy and attempt < BUSY_RETRIES:
            log.busy += 1
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        break
    log.statuses[response.status_code] += 1
    if response.status_code != 200:
        return log.record_failure(f"POST {url}: {response.status_code} {response.text[:300]}")
    return response.json()["now"]


def get(session, log, url, since):
    """Pull since ``since``; the answer, or ``None`` (logged) when the pull failed."""
    log.requests += 1
    try:
        response = session.get(url, params={"since": since}, timeout=HTTP_TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        return log.record_failure(f"GET {url}: {type(exc).__name__}: {exc}")
    log.statuses[response.status_code] += 1
    if response.status_code != 200:
        return log.record_failure(f"GET {url}: {response.status_code} {response.text[:300]}")
    return response.json()


def create_projects(base_url):
    """The projects every task points at (a push of existing ones changes nothing)."""
    import requests

    items = [{"id": pk, "name": f"{pk} v0"} for pk in PROJECTS]
    response = requests.post(f"{base_url}/projectUpdates", json=items, timeout=HTTP_TIMEOUT,
                             auth=DEMO_AUTH)
    response.raise_for_status()


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


# --- the load: the processes ---------------------------------------------


@dataclass
class Signals:
    """What the load processes share with the parent: start, stop, and one queue for messages.

    Each process sends ``("ready", role)``, waits for ``go``, works until its
    stop event is set (``stop`` for writers, ``writers_done`` for readers) and
    sends ``("log", its Log)``.
    """

    go: object
    stop: object
    writers_done: object
    results: object

    def ready(self, log):
        self.results.put(("ready", log.role))
        self.go.wait()

    def done(self, log):
        self.results.put(("log", log))


class Batches:
    """One pusher's stream of batches: new objects, new versions of its objects, removals."""

    def __init__(self, model, number, rng, sizes, removals):
        self.model, self.number, self.rng = model, number, rng
        self.sizes, self.removals = sizes, removals
        self.live, self.versions, self.counter = [], {}, itertools.count()
        if model == "project" and number == 0:
            self.live += PROJECTS  # renamed while tasks point at them

    def next(self):
        items = []
        for _ in range(self.rng.randint(*self.sizes)):
            obj_id = self.choose_id()
            if any(item["id"] == obj_id for item in items):
                continue
            items.append(self.removal(obj_id) if self.removes(obj_id) else self.new_version(obj_id))
        return items

    def choose_id(self):
        """A new object now and then (at most 200 live), else one of the live ones."""
        if not self.live or (len(self.live) < 200 and self.rng.random() < 0.3):
            obj_id = f"{self.model[0].upper()}{self.number}-{next(self.counter)}"
            self.live.append(obj_id)
            return obj_id
        return self.rng.choice(self.live)

    def removes(self, obj_id):
        """Remove 3% of the stored objects, keeping at least 20 and every shared project."""
        stored = self.versions.get(obj_id, 0) > 0 and obj_id not in PROJECTS
        return self.removals and stored and len(self.live) > 20 and self.rng.random() < 0.03

    def removal(self, obj_id):
        self.live.remove(obj_id)
        return {"id": obj_id, "_removed": True}

    def new_version(self, obj_id):
        self.versions[obj_id] = self.versions.get(obj_id, 0) + 1
        item = {"id": obj_id, "name": f"{obj_id} v{self.versions[obj_id]}"}
        if self.model == "task":
            item["done"] = self.rng.random() < 0.5
            item["project"] = self.rng.choice(PROJECTS)
        return item


def push_writer(signals, base_url, model, number, seed, batch_range, removals):
    """Push batches of new and changed objects of ``model`` ('task' or 'project')."""

    log = Log(f"{model}-pusher-{number}", URIS[model])
    url = f"{base_url}/{URIS[model]}"
    batches = Batches(model, number, random.Random(seed), batch_range, removals)
    session = demo_session(base_url)
    signals.ready(log)
    while not signals.stop.is_set():
        items = batches.next()
        stamp = post(session, log, url, items)
        if stamp is not None:
            log.acknowledged(model, items, stamp)
    signals.done(log)


def orm_writer(signals, env, number, seed):
    """Create and change Tasks and Projects with ``save()``; log ``last_change`` after it."""
    setup_django(env)
    from django.db import connection
    from todo.models import Task

    rng = random.Random(seed)
    log = Log(f"orm-writer-{number}")
    objects, versions = [], {}
    signals.ready(log)
    while not signals.stop.is_set():
        try:
            obj = next_orm_object(objects, number, rng)
            versions[obj.pk] = versions.get(obj.pk, 0) + 1
            obj.name = f"{obj.pk} v{versions[obj.pk]}"
            obj.save()
        except Exception as exc:  # noqa: BLE001
            log.record_failure(f"save(): {type(exc).__name__}: {exc}")
            connection.close()
            continue
        log.requests += 1
        model = "task" if isinstance(obj, Task) else "project"
        log.acknowledged(model, [{"id": obj.pk, "name": obj.name}], obj.last_change)
    connection.close()
    signals.done(log)


def next_orm_object(objects, number, rng):
    """A new Task (80%) or Project now and then (at most 100), else one already made."""
    from todo.models import Project, Task

    if len(objects) < 100 and (not objects or rng.random() < 0.3):
        n = len(objects)
        if rng.random() < 0.8:
            obj = Task(id=f"O{number}-T{n}", name="", project_id=rng.choice(PROJECTS))
        else:
            obj = Project(id=f"O{number}-P{n}", name="")
        objects.append(obj)
        return obj
    return rng.choice(objects)


def reader(signals, base_url, uri, number):
    """Follow the since/now chain on ``uri`` until the writers are done, then once more."""

    log = Log(f"reader-{number}", uri)
    url = f"{base_url}/{uri}"
    session = demo_session(base_url)
    since = 0
    signals.ready(log)
    while True:
        last = signals.writers_done.is_set()  # every acknowledged write committed before this
        answer = get(session, log, url, since)
        if answer is not None:
            log.pulls.append((since, answer["now"], pulled_entries(answer, log)))
            since = answer["now"]
            if last:
                break
        elif last:
            time.sleep(0.2)  # retry the final pull
    signals.done(log)


def pulled_entries(answer, log):
    """``[(id, stamp, value)]`` of a pull's updates; counts an answer not in id order."""
    entries = [
        (u["id"], u.get("_lastChange"), REMOVED if u.get("_removed") else u["name"])
        for u in answer["updates"]
    ]
    # Ascending id, no id twice (ids here are ASCII: every collation agrees).
    ids = [obj_id for obj_id, _, _ in entries]
    if ids != sorted(set(ids)):
        log.order_errors += 1
    return entries


def clock_holder(signals, env, model, hold=0.2, pause=0.01):
    """Hold ``model``'s clock row (a tick in an open transaction) most of the time."""
    setup_django(env)
    from django.db import connection, transaction

    from persistence_sync import clock

    target = importlib.import_module("todo.models").__dict__[model.capitalize()]
    log = Log(f"{model}-clock-holder")
    signals.ready(log)
    while not signals.stop.is_set():
        with transaction.atomic():
            clock.tick(target, "default")
            log.requests += 1
            time.sleep(hold)
        time.sleep(pause)
    connection.close()
    signals.done(log)


# --- the load: running it ------------------------------------------------


class LoadProcesses:
    """The load processes of one run: writers, then readers, spawned fresh (no inherited state)."""

    def __init__(self):
        self.context = multiprocessing.get_context("spawn")
        events = [self.context.Event() for _ in range(3)]
        self.signals = Signals(*events, results=self.context.Queue())
        self.writers, self.readers = [], []

    def add_writer(self, target, *args):
        self.writers.append(self.context.Process(target=target, args=(self.signals, *args)))

    def add_reader(self, target, *args):
        self.readers.append(self.context.Process(target=target, args=(self.signals, *args)))

    def run(self, seconds):
        """Start everyone, let the writers work ``seconds``, then let the readers catch up."""
        processes = self.writers + self.readers
        for process in processes:
            process.start()
        try:
            self.collect_from(processes, "ready")
            self.signals.go.set()
            started = time.monotonic()
            time.sleep(seconds)
            self.signals.stop.set()
            logs = self.collect_from(self.writers, "log")
            elapsed = time.monotonic() - started
            self.signals.writers_done.set()
            logs += self.collect_from(self.readers, "log")
        finally:
            self.end(processes)
        return Load(elapsed, logs)

    def collect_from(self, processes, kind):
        return [self.collect(processes, kind) for _ in processes]

    def collect(self, processes, kind, timeout=120):
        """The next ``kind`` message; fail early when a process died without sending it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got, value = self.signals.results.get(timeout=1)
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    message = f"load process {dead[0].name} died: exit {dead[0].exitcode}"
                    raise RuntimeError(message) from None
                continue
            assert got == kind, (got, kind)
            return value
        raise RuntimeError(f"no {kind!r} message from the load processes in {timeout} s")

    def end(self, processes):
        self.signals.stop.set()
        self.signals.writers_done.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()


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
    """Run writers for ``seconds`` and readers on ``/taskUpdates``; return a :class:`Load` of their logs.

    The writers: ``task_pushers`` and ``project_pushers`` pushing batches of
    ``batch_range`` objects over HTTP (Task pushers also remove objects when
    ``removals``), ``orm_writers`` saving through the ORM, and a clock holder
    per model named in ``holders``. ``seed`` makes the batches repeatable.
    """
    seed = random.randrange(2**32) if seed is None else seed
    processes = LoadProcesses()
    for n in range(task_pushers):
        processes.add_writer(push_writer, base_url, "task", n, seed + n, batch_range, removals)
    for n in range(project_pushers):
        processes.add_writer(push_writer, base_url, "project", n, seed + 100 + n, batch_range, False)
    for n in range(orm_writers):
        processes.add_writer(orm_writer, env, n, seed + 200 + n)
    for model in holders:
        processes.add_writer(clock_holder, env, model)
    for n in range(readers):
        processes.add_reader(reader, base_url, "taskUpdates", n)
    create_projects(base_url)
    return processes.run(seconds)


# --- the oracle ----------------------------------------------------------


@dataclass
class Report:
    """What :func:`check` found; every list must be empty and every count 0."""

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
    count_request_problems(report, load.logs)
    report.shared_stamps = shared_stamps(load.logs)
    history = write_history(load.logs, model)
    report.writes = sum(len(writes) for writes in history.values())
    for log in load.of("reader"):
        report.pulls += len(log.pulls)
        check_chain(report, log)
        check_every_write_answered(report, log, history)
        check_every_entry_explained(report, log, history)
    return report


def count_request_problems(report, logs):
    """5xx answers, failed requests and answers out of id order, from every process."""
    for log in logs:
        report.server_errors += sum(n for status, n in log.statuses.items() if status >= 500)
        report.failures += [f"{log.role}: {error}" for error in log.errors]
        report.order_errors += log.order_errors


def shared_stamps(logs):
    """``{model: [stamp, ...]}`` of the stamps that several pushes or saves of a model got."""
    batches = defaultdict(Counter)
    for log in logs:
        for batch_model, stamp in log.batches:
            batches[batch_model][stamp] += 1
    shared = {m: sorted(stamp for stamp, n in counts.items() if n > 1) for m, counts in batches.items()}
    return {m: stamps for m, stamps in shared.items() if stamps}


def write_history(logs, model):
    """``{id: [(stamp, value), ...]}``, sorted, of every acknowledged write of ``model``."""
    history = defaultdict(list)
    for log in logs:
        for write_model, obj_id, value, stamp in log.writes:
            if write_model == model:
                history[obj_id].append((stamp, value))
    for writes in history.values():
        writes.sort()
    return history


def check_chain(report, log):
    """Each pull starts at the previous pull's ``now`` (the first at 0) and never goes back."""
    previous = 0
    for since, now, _ in log.pulls:
        if since != previous or now < since:
            report.chain_breaks.append((log.role, previous, since, now))
        previous = now


def check_every_write_answered(report, log, history):
    """Each write is in the pull whose window holds its stamp, unless superseded inside it."""
    nows = [now for _, now, _ in log.pulls]
    answers = [{obj_id: (stamp, value) for obj_id, stamp, value in entries} for _, _, entries in log.pulls]
    for obj_id, writes in history.items():
        for i, (stamp, value) in enumerate(writes):
            k = bisect.bisect_left(nows, stamp)
            if k == len(nows):
                report.unreached.append((log.role, obj_id, stamp))
                continue
            if i + 1 < len(writes) and writes[i + 1][0] <= nows[k]:
                continue  # superseded inside the same window
            if answers[k].get(obj_id) != (stamp, value):
                window = (log.pulls[k][0], nows[k])
                report.misses.append((log.role, obj_id, stamp, value, window, answers[k].get(obj_id)))


def check_every_entry_explained(report, log, history):
    """Each pulled entry is in its window and is the latest write of its id up to that ``now``."""
    for since, now, entries in log.pulls:
        for obj_id, stamp, value in entries:
            writes = history.get(obj_id, [])
            stamps = [s for s, _ in writes]
            j = bisect.bisect_right(stamps, now) - 1
            if j < 0 or writes[j] != (stamp, value) or not since < stamp <= now:
                report.unexpected.append((log.role, obj_id, stamp, value, (since, now)))
