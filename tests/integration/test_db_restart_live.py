"""The database goes away in the middle of a push (PostgreSQL only).

A restart, a failover or an administrator ending sessions all look the same
to the server: its connection dies while a push is half-way through its
writes. The client must get a JSON 503, nothing of the batch may be stored
(nor the clock advanced), and the same push sent again must succeed.

The test makes the moment exact: it locks the last object of a large batch,
so the push stops on that row after writing the objects before it, then
terminates every connection of the gunicorn processes (found by their
``application_name``, the scratch database's name, which no parallel run
shares) with ``pg_terminate_backend``.
"""

import threading
import time

import pytest
import requests

from tests import databases
from tests.integration import live

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def site():
    databases.require_server_db("postgresql")
    live.require_gunicorn()
    with live.scratch_database("postgresql", purpose="restart") as env:
        # libpq reads PGAPPNAME: it tags the server's connections for the kill below.
        with live.gunicorn(env, workers=2, extra_env={"PGAPPNAME": app_name(env)}) as server:
            yield server, env


def app_name(env):
    """The ``application_name`` of the server's connections: its database's unique name."""
    return env["PS_DB_NAME"]


def connect(env, autocommit=True):
    import psycopg

    host, port, user, password = live.server_address(env)
    return psycopg.connect(
        host=host, port=port, user=user, password=password, dbname=env["PS_DB_NAME"], autocommit=autocommit
    )


def stored(env):
    with connect(env) as connection:
        tasks = dict(connection.execute("SELECT id, name FROM todo_task").fetchall())
        stamps = {row[0] for row in connection.execute("SELECT last_change FROM todo_task")}
        clock = connection.execute(
            "SELECT value FROM persistence_sync_clock WHERE model = 'todo.task'"
        ).fetchone()[0]
    return tasks, stamps, clock


def wait_for_blocked_push(env, timeout=20):
    deadline = time.monotonic() + timeout
    with connect(env) as connection:
        while time.monotonic() < deadline:
            blocked = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'", [app_name(env)],
            ).fetchall()  # fmt: skip
            if blocked:
                return
            time.sleep(0.05)
    raise AssertionError("the push never reached the locked row")


def terminate_server_connections(env):
    with connect(env) as connection:
        killed = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [app_name(env)],
        ).fetchall()
    assert killed, "no server connection to terminate"


def test_a_push_cut_off_by_the_database_stores_nothing_and_a_retry_succeeds(site):
    server, env = site
    url = f"{server.url}/taskUpdates"
    first = requests.post(url, json=[{"id": "LAST", "name": "before"}], timeout=30,
                          auth=live.DEMO_AUTH)
    assert first.status_code == 200, first.text
    before = stored(env)
    assert before == ({"LAST": "before"}, {first.json()["now"]}, first.json()["now"])

    batch = [{"id": f"N{n:05d}", "name": f"new {n}"} for n in range(3000)]
    batch.append({"id": "LAST", "name": "after"})
    answer = {}

    def push():
        answer["response"] = requests.post(url, json=batch, timeout=60,
                                           auth=live.DEMO_AUTH)

    with connect(env, autocommit=False) as holder:
        holder.execute("SELECT 1 FROM todo_task WHERE id = 'LAST' FOR UPDATE")
        pusher = threading.Thread(target=push)
        pusher.start()
        wait_for_blocked_push(env)
        terminate_server_connections(env)
        pusher.join(timeout=60)
        holder.rollback()

    response = answer["response"]
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["status"] == "error"
    assert stored(env) == before, "a push cut off half-way left something behind"

    retry = requests.post(url, json=batch, timeout=60, auth=live.DEMO_AUTH)
    assert retry.status_code == 200, retry.text
    stamp = retry.json()["now"]
    tasks, stamps, clock = stored(env)
    assert len(tasks) == 3001 and tasks["LAST"] == "after"
    assert stamps == {stamp} and clock == stamp > before[2]
    pulled = requests.get(url, params={"since": before[2]}, timeout=30,
                          auth=live.DEMO_AUTH).json()
    assert pulled["now"] == stamp and len(pulled["updates"]) == 3001
