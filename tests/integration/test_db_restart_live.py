"""The database goes away in the middle of a push, or refuses every connection (PostgreSQL only).

A restart, a failover or an administrator ending sessions all look the same
to the server: its connection dies while a push is half-way through its
writes. The client must get a JSON 503, nothing of the batch may be stored
(nor the clock advanced), and the same push sent again must succeed.

The test makes the moment exact: it locks the last object of a large batch,
so the push stops on that row after writing the objects before it, then
terminates every connection of the gunicorn processes (found by their
``application_name``, the scratch database's name, which no parallel run
shares) with ``pg_terminate_backend``.

The second test makes the database refuse new connections
(``ALLOW_CONNECTIONS false``, on the scratch database alone) and ends the
server's: every signed-in request then fails at its first step,
authentication, which reads the database before any view code runs. Each
must still get the protocol's JSON 503 with ``Retry-After`` (issue 20).
"""

import contextlib
import subprocess
import sys
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
    # From the server's maintenance database: the scratch one may refuse connections.
    with live.admin_connection(env) as connection:
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


@contextlib.contextmanager
def connections_refused(env):
    """The scratch database refuses every connection (the server's are ended) until the block ends."""
    name = env["PS_DB_NAME"]
    live.run_admin_sql(env, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false', "")
    try:
        terminate_server_connections(env)
        yield
    finally:
        live.run_admin_sql(env, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true', "")


def demo_token(env):
    """A DRF token of the demo user, made by the site's own command."""
    made = subprocess.run([sys.executable, "manage.py", "drf_create_token", "demo"],
                          cwd=live.SITE, env=live.process_env(env), capture_output=True,
                          text=True, check=True)
    return made.stdout.split()[2]  # "Generated token <key> for user demo"


# (method, path, body) of each endpoint of both protocols
REQUESTS = [
    ("GET", "/taskUpdates?since=0", None),
    ("POST", "/taskUpdates", [{"id": "REFUSED", "name": "never stored"}]),
    ("GET", "/watermelon?last_pulled_at=null&schema_version=1", None),
    ("POST", "/watermelon?last_pulled_at=0",
     {"tasks": {"created": [{"id": "REFUSED2", "name": "never stored"}], "updated": [],
                "deleted": []}}),
]


def test_signed_in_requests_get_json_503_while_the_database_refuses_connections(site):
    server, env = site
    session = live.demo_session(server.url)
    token = requests.Session()
    token.headers["Authorization"] = f"Token {demo_token(env)}"
    basic = requests.Session()
    basic.auth = live.DEMO_AUTH
    clients = {"session": session, "token": token, "basic": basic}
    for client in clients.values():  # signed in, while the database is here
        assert client.post(f"{server.url}/taskUpdates", json=[], timeout=30).status_code == 200
    before = stored(env)
    with connections_refused(env):
        answers = {(auth, method, path): client.request(method, server.url + path, json=body,
                                                        timeout=30)
                   for auth, client in clients.items() for method, path, body in REQUESTS}
    for request, response in answers.items():
        assert response.status_code == 503, (request, response.text[:300])
        assert response.headers["Content-Type"] == "application/json", request
        assert int(response.headers["Retry-After"]) > 0, request
        assert response.json()["status"] == "error", request
    assert stored(env) == before, "a request refused by the database left something behind"
    # The database is back: each client is signed in again, and each request succeeds.
    for client in clients.values():
        assert client.get(f"{server.url}/taskUpdates?since=0", timeout=30).status_code == 200
    for method, path, body in REQUESTS:
        assert token.request(method, server.url + path, json=body,
                             timeout=30).status_code == 200, (method, path)
