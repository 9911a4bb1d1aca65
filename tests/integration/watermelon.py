"""A WatermelonDB device for the tests: the real npm client in Node, driven line by line.

``@nozbe/watermelondb`` (with its LokiJS adapter, in memory) is installed from
npm at first use into a cache outside the repository, next to the
persistence.js client's (``PERSISTENCE_SYNC_NPM_CACHE``, by default
``~/.cache/django-persistence-sync/npm``, plus ``-watermelon``), and
``watermelon_client.js`` runs it. Tests skip, saying why, without node/npm::

    device = WatermelonDevice(live_server.url + "/watermelon", schema=TODO_SCHEMA)
    task = device.create("tasks", name="Dishes", done=False)
    assert device.sync() == {"ok": True, "pages": 1}
    device.dump()["tasks"][task]
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

WATERMELONDB_VERSION = "0.28.0"
DRIVER = Path(__file__).with_name("watermelon_client.js")

# The example site's tables as a WatermelonDB app would declare them.
TODO_SCHEMA = {"version": 1, "tables": {
    "projects": {"name": "string"},
    "tags": {"name": "string"},
    "tasks": {"name": "string", "done": "boolean", "project_id": "string"},
}}


def modules_dir():
    """node_modules holding @nozbe/watermelondb, installed at first use; skips without npm."""
    base = os.environ.get("PERSISTENCE_SYNC_NPM_CACHE", "~/.cache/django-persistence-sync/npm")
    prefix = Path(base).expanduser().with_name(Path(base).name + "-watermelon")
    package = prefix / "node_modules" / "@nozbe" / "watermelondb" / "package.json"
    if package.exists() and json.loads(package.read_text())["version"] == WATERMELONDB_VERSION:
        return prefix / "node_modules"
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("the WatermelonDB tests need node and npm on PATH")
    prefix.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--no-save", "--ignore-scripts", "--no-audit",
         "--no-fund", f"@nozbe/watermelondb@{WATERMELONDB_VERSION}"],
        capture_output=True, text=True, timeout=300)
    if result.returncode != 0 or not package.exists():
        pytest.skip(f"npm could not install @nozbe/watermelondb: {result.stderr[-500:]}")
    return prefix / "node_modules"


class WatermelonDevice:
    """One WatermelonDB database (one device) in a Node process."""

    def __init__(self, url, schema=TODO_SCHEMA, headers=None):
        config = {"url": url, "schema": schema, "headers": headers or {}}
        self.process = subprocess.Popen(
            ["node", str(DRIVER), str(modules_dir()), json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.command_answer() == {"ready": True}

    def command_answer(self, **command):
        if command:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the WatermelonDB device exited with {self.process.poll()}"
        answer = json.loads(line)
        assert "fatal" not in answer, answer["fatal"]
        return answer

    def create(self, table, **values):
        return self.command_answer(op="create", table=table, values=values)["id"]

    def update(self, table, record_id, **values):
        self.command_answer(op="update", table=table, id=record_id, values=values)

    def delete(self, table, record_id):
        self.command_answer(op="delete", table=table, id=record_id)

    def sync(self, page_size=None):
        return self.command_answer(op="sync", pageSize=page_size)

    def dump(self):
        return self.command_answer(op="dump")

    def follow(self, events_url):
        """Sync on every notice of the change feed at ``events_url`` from now on (its long-poll)."""
        self.command_answer(op="follow", eventsUrl=events_url)

    def following(self):
        """``{"syncs", "answers", "overlaps", "errors"}`` of the follow loop so far."""
        return self.command_answer(op="following")

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)
