"""A randomized soak of ``syncall``: writers on both sides, runs killed at random (issue 14).

The example site is served by ``gunicorn -w 2`` on a scratch database of the
suite's ``PS_DB``; a replica site on its own scratch database (SQLite, then
PostgreSQL) runs ``manage.py syncall`` back to back, about a third of the runs
killed at a random moment. Meanwhile:

* a *server writer* (a thread here) pushes over HTTP as another client would;
* a *replica writer* (a process on the replica's database) writes with the ORM.

Each writer creates, renames, moves and deletes projects and tasks of its
own (ids ``S...`` and ``R...``), deleting a project only after moving its
tasks to another, and logs every write once it is acknowledged (a 200 answer,
a committed transaction). Ownership makes the right final data exact: every
object holds its writer's last acknowledged value, or is gone if that was a
deletion. After the writers stop, ``syncall`` runs until a run is idle; the
test then requires identical data on both sides and every acknowledged write
accounted for.

The ``pushes-of-3`` variant runs ``syncall`` with ``PUSH_BATCH_SIZE`` 3, so
that most runs push in several parts and many are killed between two: every
part's stamp must be recognised as the replica's own echo by the next run,
or a replica write made after a run comes back as a conflict with its own
older value and is lost (issue 20).

``PS_SOAK_SECONDS`` (default 10) sets the writing time per replica database
and variant.
"""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from persistence_sync.client.transport import HttpTransport
from tests import databases
from tests.integration import live

pytestmark = pytest.mark.live

SECONDS = float(os.environ.get("PS_SOAK_SECONDS", "10"))
REPO = Path(__file__).resolve().parents[2]
MANAGE = REPO / "testproject" / "manage.py"


def site_env(env):
    return {**os.environ, **env, "PYTHONWARNINGS": "ignore"}


def server_db_problem(vendor):
    """Why the ``vendor`` server cannot host the scratch databases (its driver, the server, or
    the sign-in: each named as such), or None."""
    problem = databases.unavailable_reason(vendor)
    if problem:
        return problem
    try:
        live.admin_connection(live.site_env(vendor, "x")).close()
    except Exception as exc:  # the server is up, but refuses us
        return f"{databases.SERVERS[vendor][0]} refuses the test's sign-in: {exc}"
    return None


@pytest.fixture
def server():
    live.require_gunicorn()
    vendor = databases.vendor()
    if vendor != "sqlite" and (problem := server_db_problem(vendor)):
        pytest.skip(problem)
    with live.scratch_database(vendor, "soak_server") as env:
        with live.gunicorn(env, workers=2) as served:
            # The to-do models are per user: everyone syncs as the demo user, with a
            # token (Basic would check the password hash, a quarter of a second, on
            # each of the many requests); the URL's credentials are the fallback.
            yield served.url.replace("http://", "http://demo:demo@", 1) + "/", demo_token(env)


def demo_token(env):
    made = subprocess.run([sys.executable, str(MANAGE), "drf_create_token", "demo"],
                          env=live.process_env(env), capture_output=True, text=True, check=True)
    return made.stdout.split()[2]  # "Generated token <key> for user demo"


# --- the writers ------------------------------------------------------------------------


class Writer:
    """Random operations on the objects one side owns; ``expected`` is what they left."""

    def __init__(self, prefix, seed):
        self.prefix = prefix
        self.random = random.Random(seed)
        self.projects = {}  # id -> name
        self.tasks = {}  # id -> [name, project]
        self.counter = 0

    def new_id(self, kind):
        self.counter += 1
        return f"{self.prefix}{kind}{self.counter}"

    def next_operation(self):
        """``[(uri, items)]``: one operation, as the pushes it takes (in order)."""
        choice = self.random.random()
        value = f"{self.prefix}-v{self.counter}"
        if len(self.projects) < 2 or choice < 0.1:
            return [("projectUpdates", [{"id": self.new_id("P"), "name": value}])]
        if not self.tasks or choice < 0.35:
            project = self.random.choice(sorted(self.projects))
            return [("taskUpdates", [{"id": self.new_id("T"), "name": value, "done": False,
                                      "project": project}])]
        task = self.random.choice(sorted(self.tasks))
        if choice < 0.6:
            self.counter += 1
            return [("taskUpdates", [{"id": task, "name": f"{self.prefix}-v{self.counter}"}])]
        if choice < 0.75:
            return [("taskUpdates", [{"id": task, "project": self.random.choice(sorted(self.projects))}])]
        if choice < 0.85:
            return [("taskUpdates", [{"id": task, "_removed": True}])]
        if choice < 0.92:
            self.counter += 1
            project = self.random.choice(sorted(self.projects))
            return [("projectUpdates", [{"id": project, "name": f"{self.prefix}-v{self.counter}"}])]
        # Move a project's tasks to another, then delete it: nothing cascades.
        doomed, other = self.random.sample(sorted(self.projects), 2)
        moves = [{"id": pk, "project": other} for pk, (_, project) in self.tasks.items()
                 if project == doomed]
        return [("taskUpdates", moves), ("projectUpdates", [{"id": doomed, "_removed": True}])]

    def acknowledged(self, uri, items):
        table = self.projects if uri == "projectUpdates" else self.tasks
        for item in items:
            if item.get("_removed"):
                table.pop(item["id"], None)
            elif uri == "projectUpdates":
                table[item["id"]] = item["name"]
            else:
                old = table.get(item["id"], [None, None])
                table[item["id"]] = [item.get("name", old[0]), item.get("project", old[1])]

    def expected(self):
        return {"todo.project": {pk: [name] for pk, name in self.projects.items()},
                "todo.task": {pk: list(values) for pk, values in self.tasks.items()}}


def server_writer(base, token, writer, stop, errors):
    transport = HttpTransport(headers={"Authorization": f"Token {token}"}, retries=1, timeout=30)
    while not stop.is_set():
        for uri, items in writer.next_operation():
            push_id = uuid.uuid4().hex
            while True:  # an idempotent push: retrying it is safe
                try:
                    transport.push(base + uri, items, push_id=push_id)
                    break
                except Exception as exc:  # noqa: BLE001 - retried; a 4xx is a bug
                    if getattr(exc, "status", None) and exc.status < 500:
                        errors.append(f"{uri} {items}: {exc}")
                        return
                    time.sleep(0.1)
            writer.acknowledged(uri, items)
        time.sleep(writer.random.uniform(0, 0.05))


# The replica's writer: the same operations, as ORM writes, logged once committed.
REPLICA_WRITER = """
import json, os, random, sys, time
import django
django.setup()
from django.db import OperationalError, transaction
from todo.models import Project, Task
sys.path.insert(0, os.environ["SOAK_DIR"])
from soak_writer import Writer

writer = Writer("R", int(os.environ["SOAK_SEED"]))
stop = os.environ["SOAK_STOP"]
while not os.path.exists(stop):
    for uri, items in writer.next_operation():
        model = Project if uri == "projectUpdates" else Task
        while True:
            try:
                with transaction.atomic():
                    for item in items:
                        if item.get("_removed"):
                            model.objects.get(pk=item["id"]).delete()
                        else:
                            obj = model.objects.filter(pk=item["id"]).first() or model(pk=item["id"])
                            for name, value in item.items():
                                if name != "id":
                                    setattr(obj, "project_id" if name == "project" else name, value)
                            obj.save()
                break
            except OperationalError:  # database is locked: not acknowledged, try again
                time.sleep(0.05)
        writer.acknowledged(uri, items)
    time.sleep(writer.random.uniform(0, 0.05))
print(json.dumps(writer.expected()))
"""


# --- the replica ----------------------------------------------------------------------


def syncall(env, server, handler, timeout=120):
    return subprocess.Popen(
        [sys.executable, str(MANAGE), "syncall", "--server", server, "--conflicts", handler,
         "--json"],
        env=site_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def replica_dump(env):
    code = """
        import django, json
        django.setup()
        from todo.models import Project, Task
        print(json.dumps({
            "todo.project": {pk: [name] for pk, name in Project.objects.values_list("id", "name")},
            "todo.task": {pk: [name, project] for pk, name, project
                          in Task.objects.values_list("id", "name", "project_id")},
        }))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=site_env(env),
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def server_dump(base):
    transport = HttpTransport(retries=3)
    out = {}
    for label, uri, fields in [("todo.project", "projectUpdates", ["name"]),
                               ("todo.task", "taskUpdates", ["name", "project"])]:
        out[label] = {u["id"]: [u.get(f) for f in fields]
                      for u in transport.pull(base + uri, 0)["updates"] if not u.get("_removed")}
    return out


def unaccounted(expected, data):
    """Acknowledged writes the final ``data`` does not hold (lost or resurrected)."""
    problems = []
    for label, objects in expected.items():
        for pk, values in objects.items():
            if data[label].get(pk) != values:
                problems.append(f"{label} {pk}: expected {values}, found {data[label].get(pk)}")
        for pk in sorted(set(data[label]) - set(objects)):
            problems.append(f"{label} {pk}: deleted by its writer, found {data[label][pk]}")
    return problems


@dataclasses.dataclass
class Tally:
    """What the ``syncall`` runs of a soak did."""

    runs: int = 0
    killed: int = 0
    split: int = 0  # completed runs that pushed a model in several parts
    failures: list = dataclasses.field(default_factory=list)  # errors of runs not killed

    def __str__(self):
        return (f"{self.runs} runs, {self.killed} killed, {self.split} pushed in parts, "
                f"{len(self.failures)} failed {self.failures[:5]}")


def run_and_kill(env, server, rng, push_batch_size):
    """``syncall`` back to back for ``SECONDS``, about a third killed at a random moment."""
    tally = Tally()
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        process = syncall(env, server, rng.choice(["prefer-remote", "prefer-local"]))
        tally.runs += 1
        if rng.random() < 1 / 3:
            time.sleep(rng.uniform(0.2, 2.5))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                tally.killed += 1
        results = completed_results(process.communicate(timeout=120)[0])
        tally.failures += [result["error"] for result in results if result["error"]]
        tally.split += bool(push_batch_size) and any(
            result["pushed"] > push_batch_size for result in results)
    return tally


def run_until_idle(env, server):
    """After the writers stopped: ``syncall`` until a run succeeds with nothing to do."""
    summaries = []
    for _ in range(5):
        process = syncall(env, server, "prefer-remote")
        stdout, stderr = process.communicate(timeout=120)
        summaries = json.loads(stdout) if stdout.strip() else stderr
        if process.returncode == 0 and all(r["pushed"] == r["pulled"] == 0 for r in summaries):
            return
    pytest.fail(f"no idle run after the writers stopped: {summaries}")


def completed_results(stdout):
    """The per-model results of a run's ``--json`` summary; none for a killed run."""
    try:
        return json.loads(stdout)
    except ValueError:
        return []


def with_push_batch_size(env, size, directory):
    """``env`` for a replica whose ``syncall`` pushes at most ``size`` items at a time."""
    if size is None:
        return env
    (directory / "soak_settings.py").write_text(
        "from testproject.settings import *  # noqa: F403\n\n"
        f"PERSISTENCE_SYNC = {{**PERSISTENCE_SYNC, 'PUSH_BATCH_SIZE': {size}}}  # noqa: F405\n")
    return {**env, "DJANGO_SETTINGS_MODULE": "soak_settings",
            "PYTHONPATH": os.pathsep.join([str(directory), env["PYTHONPATH"]])}


@pytest.mark.parametrize("push_batch_size", [None, 3], ids=["whole-pushes", "pushes-of-3"])
@pytest.mark.parametrize("replica_vendor", ["sqlite", "postgresql"])
def test_no_acknowledged_write_is_lost(server, replica_vendor, push_batch_size, tmp_path):
    if replica_vendor != "sqlite" and (problem := server_db_problem(replica_vendor)):
        pytest.skip(problem)
    server, token = server
    seed = int(os.environ.get("PS_SOAK_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    (tmp_path / "soak_writer.py").write_text(
        "import random\n\n\n" + textwrap.dedent(_writer_source()))
    with live.scratch_database(replica_vendor, "soak_replica") as scratch:
        env = {**with_push_batch_size(scratch, push_batch_size, tmp_path),
               "PERSISTENCE_SYNC_TOKEN": token}  # syncall's token (TOKEN_ENV)
        stop_file = tmp_path / "stop"
        replica = subprocess.Popen(
            [sys.executable, "-c", REPLICA_WRITER], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
            env=site_env({**env, "SOAK_DIR": str(tmp_path), "SOAK_SEED": str(seed),
                          "SOAK_STOP": str(stop_file)}))
        writer, stop, errors = Writer("S", seed + 1), threading.Event(), []
        thread = threading.Thread(target=server_writer,
                                  args=(server, token, writer, stop, errors))
        thread.start()
        try:
            tally = run_and_kill(env, server, rng, push_batch_size)
        finally:
            stop.set()
            stop_file.touch()
            thread.join(timeout=60)
            out, err = replica.communicate(timeout=120)
        # Its objects are its own: one it no longer finds (DoesNotExist) was lost by a sync.
        assert replica.returncode == 0, f"the replica's writer failed, seed {seed}, {tally}:\n" \
            + err[-3000:]
        assert not errors, errors
        expected = {label: {**json.loads(out.strip().splitlines()[-1])[label],
                            **writer.expected()[label]} for label in ("todo.project", "todo.task")}
        run_until_idle(env, server)
        remote, local = server_dump(server), replica_dump(env)
        context = f"seed {seed}, {tally}"
        assert remote == local, context
        problems = unaccounted(expected, remote)
        assert not problems, f"{context}: {len(problems)} writes unaccounted for:\n" + "\n".join(
            problems[:30])
        print(f"\n[{replica_vendor} replica, {push_batch_size or 'whole'} pushes] {context}; "
              f"{sum(len(v) for v in expected.values())} objects checked")


def _writer_source():
    import inspect

    return inspect.getsource(Writer)
