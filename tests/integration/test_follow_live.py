"""``syncall --follow`` against a real uvicorn site: live, both ways, through faults, stopped cleanly.

The source is the example site under one uvicorn process (sync endpoints and
change feed) on the suite's database (``PS_DB``); the replica is the example
site on a SQLite file of its own, with ``manage.py syncall --follow`` in a
subprocess signed in by a DRF token (:mod:`tests.integration.follow`).

* a task pushed to the source is in the replica's database within 2 s;
* a task written on the replica (by the ORM, in another process) reaches
  the source within 2 s;
* the source's process killed and started again (the feed forgets every
  client), a task written on its database meanwhile: the follower
  reconnects and the task arrives (with the floor far away: by the feed);
* on PostgreSQL, the source's database refusing connections for a while: the
  task written before and after arrives;
* SIGTERM: exit 0 with a summary, and a plain ``syncall`` run afterwards has
  nothing to pull or push.
"""

import json
import signal
import time

import pytest
import requests

from tests import databases
from tests.integration import feed, follow, live

pytestmark = pytest.mark.live

LIVE_WITHIN = 2.0  # seconds: "within about a second", with room for a shared machine
# A floor far away: what arrives in time came by the feed or the local clocks.
NO_FLOOR = ("--interval", "600")


@pytest.fixture(scope="module")
def source_db():
    live.require_uvicorn()
    vendor = databases.vendor()
    if vendor != "sqlite":
        databases.require_server_db(vendor)
    with live.scratch_database(vendor, purpose="follow") as env:
        tokens = feed.create_users(env, ["demo"])
        yield env, tokens["demo"]


@pytest.fixture
def session(source_db):
    session = requests.Session()
    session.headers["Authorization"] = f"Token {source_db[1]}"
    return session


def source_task_ids(session, url):
    updates = session.get(f"{url}/taskUpdates", params={"since": 0}, timeout=30).json()["updates"]
    return {item["id"] for item in updates if not item.get("_removed")}


def wait_for_source_task(session, url, task_id, timeout=10.0):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if task_id in source_task_ids(session, url):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached the source in {timeout} s")


def test_the_replica_follows_both_ways_and_stops_cleanly(source_db, session):
    env, token = source_db
    with live.uvicorn(env) as source, follow.replica_of(source.url, token) as replica:
        before, _, _ = follow.push_task(session, source.url, "before")
        replica.start(*NO_FLOOR)
        replica.wait_until_synced()
        assert before in replica.task_ids()  # the first, full sync

        for n in range(5):  # source -> replica, each within the bound
            task_id, _, _ = follow.push_task(session, source.url, f"live {n}")
            assert replica.wait_for_task(task_id) < LIVE_WITHIN, replica.log()

        local_id = replica.create_task("written on the replica")
        assert wait_for_source_task(session, source.url, local_id) < LIVE_WITHIN

        assert replica.stop(signal.SIGTERM) == 0, replica.log()
        assert "Stopped: followed for" in replica.log()
        # State saved: a plain run afterwards pulls nothing new and pushes nothing.
        after = replica.syncall("--json")
        assert after.returncode == 0, after.stderr
        for result in json.loads(after.stdout):
            assert result["ok"] and result["pushed"] == 0, result
            assert result["created"] == result["updated"] == result["removed"] == 0, result
        assert replica.task_ids() == source_task_ids(session, source.url)


def test_the_follower_misses_nothing_across_a_restart_of_the_source(source_db, session):
    env, token = source_db
    port = live.free_port()
    with live.uvicorn(env, port=port) as source, follow.replica_of(source.url, token) as replica:
        replica.start(*NO_FLOOR)
        replica.wait_until_synced()
        task_id, _, _ = follow.push_task(session, source.url)
        replica.wait_for_task(task_id)
        source.process.kill()  # no goodbye: the feed and its memory of clients are gone
        source.process.wait()
        missed = follow.create_task(env, "while away")  # on the source's database, by the ORM
        time.sleep(1)  # the follower's long-poll and its retries fail meanwhile
        with live.uvicorn(env, port=port) as restarted:
            # With the floor 600 s away, only the feed's reconnect can bring it: the
            # transport's retries, then a capped backoff, and the new process's resync hint.
            replica.wait_for_task(missed, timeout=20)
            task_id, _, _ = follow.push_task(session, restarted.url, "after")
            assert replica.wait_for_task(task_id) < LIVE_WITHIN, replica.log()
            assert replica.stop(signal.SIGINT) == 0, replica.log()
            assert replica.task_ids() == source_task_ids(session, restarted.url)


def test_the_follower_misses_nothing_while_postgresql_is_away(source_db, session):
    env, token = source_db
    if env["PS_DB"] != "postgresql":
        pytest.skip("the database restart fault: PostgreSQL only (set PS_DB=postgresql)")
    name = env["PS_DB_NAME"]
    with live.uvicorn(env) as source, follow.replica_of(source.url, token) as replica:
        replica.start(*NO_FLOOR)
        replica.wait_until_synced()
        written, _, _ = follow.push_task(session, source.url, "before the outage")
        # The database goes away, as in a restart: every connection ended and refused.
        live.run_admin_sql(env, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false', "")
        try:
            with live.admin_connection(env) as connection:
                connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = %s AND pid <> pg_backend_pid()", [name])
            time.sleep(2)  # the follower's syncs and long-polls fail meanwhile
        finally:
            live.run_admin_sql(env, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true', "")
        replica.wait_for_task(written, timeout=30)
        task_id, _, _ = follow.push_task(session, source.url, "after the outage")
        replica.wait_for_task(task_id, timeout=30)
        assert replica.stop() == 0, replica.log()
        assert replica.task_ids() == source_task_ids(session, source.url)
