"""A ``syncall --follow`` replica for the live tests and ``benchmarks/follow_lag.py``.

:class:`Replica` is the example site on a database of its own (a SQLite
file by default, or a scratch database of :func:`tests.integration.live.scratch_database`),
with ``manage.py syncall --follow`` running against a source site in a
subprocess, signed in by a DRF token (``PERSISTENCE_SYNC_TOKEN``, as a
deployment would). Like :mod:`tests.integration.live`, nothing here imports
Django or pytest at module level.
"""

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

from tests.integration import live

MANAGE = live.SITE / "manage.py"


class Replica:
    """A replica site's database (``site_env``) and, once :meth:`start` ran, its follower process."""

    def __init__(self, site_env: dict, source_url: str, token: str, log_dir: Path):
        self.site_env, self.source_url, self.token = site_env, source_url, token
        # process_env leaves a developer's token out; this one is the test's own.
        self.env = {**live.process_env({**site_env, "PYTHONWARNINGS": "ignore"}),
                    "PERSISTENCE_SYNC_TOKEN": token}
        self.process = None
        self.log_path = log_dir / "follower.log"

    def syncall(self, *args, timeout=60):
        """A plain ``syncall`` run (or one with ``args``); the CompletedProcess."""
        return subprocess.run([sys.executable, str(MANAGE), "syncall", "--server",
                               self.source_url + "/", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, *args):
        """``syncall --follow`` in the background, its output to :attr:`log_path`."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(MANAGE), "syncall", "--follow", "--server",
                 self.source_url + "/", *args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_until_synced(self, timeout=60):
        """Return once the first full sync saved its state; fail with the log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the follower exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(Exception):  # the tables are being created, locked
                if self.query("SELECT count(*) FROM persistence_sync_syncstate "
                              "WHERE model = 'todo.task'")[0][0]:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the follower never completed its first sync:\n{self.log()}")

    def stop(self, signum=signal.SIGTERM, timeout=30):
        """Send ``signum``; the exit status (the log is at :meth:`log`)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the follower did not stop within {timeout} s:\n{self.log()}") from None

    def connect(self):
        """A connection to the replica's database, with ``%s`` parameters on either vendor."""
        if self.site_env["PS_DB"] == "sqlite":
            return SqliteConnection(self.site_env["PS_DB_NAME"])
        import psycopg

        host, port, user, password = live.server_address(self.site_env)
        return psycopg.connect(host=host, port=port, user=user, password=password,
                               dbname=self.site_env["PS_DB_NAME"], autocommit=True)

    def query(self, sql, params=()):
        connection = self.connect()
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def task_ids(self):
        return {row[0] for row in self.query("SELECT id FROM todo_task")}

    def wait_for_task(self, task_id, timeout=10.0):
        """Seconds until ``task_id`` is in the replica's database; fails after ``timeout``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.query("SELECT 1 FROM todo_task WHERE id = %s", [task_id]):
                return time.monotonic() - started
            time.sleep(0.01)
        raise AssertionError(f"task {task_id} never reached the replica in {timeout} s:\n{self.log()}")

    def create_task(self, name):
        """A task written on the replica by the ORM (as its admin or a view would); its id."""
        return create_task(self.env, name)


def create_task(env, name):
    """A task written by the ORM in another process on the site of ``env`` (the demo user's); its id."""
    task_id = uuid.uuid4().hex.upper()
    script = textwrap.dedent(f"""
        import django
        django.setup()
        from todo.models import Task
        Task.objects.create(id={task_id!r}, name={name!r})
    """)
    subprocess.run([sys.executable, "-c", script], env=live.process_env(env), cwd=live.SITE,
                   check=True, timeout=60)
    return task_id


class SqliteConnection:
    """sqlite3 with ``%s`` parameters, as psycopg takes them."""

    def __init__(self, path):
        self.connection = sqlite3.connect(path, timeout=5)

    def execute(self, sql, params=()):
        return self.connection.execute(sql.replace("%s", "?"), params)

    def close(self):
        self.connection.close()


@contextlib.contextmanager
def replica_of(source_url, token, vendor="sqlite"):
    """A migrated replica database of its own on ``vendor``; yields a :class:`Replica`."""
    with tempfile.TemporaryDirectory(prefix="ps_replica_") as directory, \
            live.scratch_database(vendor, purpose="replica") as env:
        replica = Replica(env, source_url, token, Path(directory))
        try:
            yield replica
        finally:
            if replica.process is not None and replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait()


def push_task(session, url, name="t"):
    """A new task pushed to the source at ``url``; ``(id, stamp, acknowledged at)``."""
    task_id = uuid.uuid4().hex.upper()
    answer = session.post(f"{url}/taskUpdates", json=[{"id": task_id, "name": name}], timeout=30)
    if answer.status_code != 200:
        raise AssertionError(f"push refused: {answer.status_code} {answer.text}")
    return task_id, json.loads(answer.text)["now"], time.time()
