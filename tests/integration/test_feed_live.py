"""The change feed served by a real uvicorn, written to by another process, through real faults.

The layout of docs/events.md: gunicorn serves the sync endpoints (the writer
pushes there, another process), one uvicorn process serves the feed, and
clients listen as an ``EventSource`` does (:class:`tests.integration.feed.Listener`,
reconnecting with ``Last-Event-ID``). On the suite's database (``PS_DB``):

* two users' connections: each hears its own changes, never the other's;
* the feed process killed and started again: the client reconnects and is
  told of the write made while the feed was down;
* PostgreSQL away (the feed's connections ended and refused for a while,
  as in a restart; the scratch database alone, other runs untouched):
  notices resume and the write made meanwhile is announced;
* a client that stops reading: another connection of the same user still
  hears each change promptly;
* the Redis backend: writers (gunicorn) publish, the feed (uvicorn)
  subscribes, and each push is heard well within the 5 s safety read.
"""

import contextlib
import socket
import statistics
import time
import uuid

import pytest
import requests

from tests import databases
from tests.integration import feed, live

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def site():
    live.require_gunicorn()
    live.require_uvicorn()
    vendor = databases.vendor()
    if vendor != "sqlite":
        databases.require_server_db(vendor)
    with live.scratch_database(vendor, purpose="feed") as env:
        tokens = feed.create_users(env, ["demo", "eve"])
        with live.gunicorn(env, workers=1) as writer_site:
            yield env, tokens, writer_site


@contextlib.contextmanager
def listening(url, token, since):
    listener = feed.Listener(f"{url}/events", token, since=since)
    try:
        assert listener.connected.wait(10), "the feed never answered"
        yield listener
    finally:
        listener.close()


def current_since(url, token):
    answer = requests.get(f"{url}/events", params={"wait": 0}, timeout=30,
                          headers={"Authorization": f"Token {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["since"]


def push(site, user="demo"):
    """One new task as ``user`` through gunicorn; ``(stamp, acknowledged at)``."""
    _, tokens, writer_site = site
    answer = requests.post(f"{writer_site.url}/taskUpdates", timeout=30,
                           json=[{"id": uuid.uuid4().hex.upper(), "name": "t"}],
                           headers={"Authorization": f"Token {tokens[user]}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["now"], time.time()


def heard(listener, stamp, timeout=10.0):
    """The first notice naming taskUpdates at or after ``stamp``; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        event = listener.next(max(0.01, deadline - time.monotonic()))
        if event.id >= stamp and "taskUpdates" in event.data["endpoints"]:
            return event


def test_each_user_hears_their_own_changes_and_nothing_else(site):
    env, tokens, _ = site
    with live.uvicorn(env) as feed_site:
        since = current_since(feed_site.url, tokens["demo"])
        with listening(feed_site.url, tokens["demo"], since) as demo, \
                listening(feed_site.url, tokens["eve"], since) as eve:
            stamp, _ = push(site, "demo")
            notice = heard(demo, stamp)
            assert notice.data == {"endpoints": ["taskUpdates"], "tables": ["tasks"]}
            stamp, _ = push(site, "eve")
            heard(eve, stamp)
            assert demo.drain() == [] and eve.drain() == [], "a user heard another's change"


def test_a_client_of_a_restarted_feed_misses_nothing(site):
    env, tokens, _ = site
    port = live.free_port()
    with live.uvicorn(env, port=port) as feed_site:
        since = current_since(feed_site.url, tokens["demo"])
        listener = feed.Listener(f"{feed_site.url}/events", tokens["demo"], since=since)
        try:
            assert listener.connected.wait(10)
            heard(listener, push(site)[0])  # it holds an id now (Last-Event-ID)
            feed_site.process.kill()  # no goodbye: the process is gone
            feed_site.process.wait()
            stamp, _ = push(site)  # written while the feed is down
            with live.uvicorn(env, port=port):
                notice = heard(listener, stamp, timeout=20)  # told on reconnecting
                assert listener.connects == 2
                assert "taskUpdates" in notice.data["endpoints"]
                heard(listener, push(site)[0])  # and the feed goes on
        finally:
            listener.close()


def database_connections(env, app_name):
    with live.admin_connection(env) as connection:
        return connection.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                  [app_name]).fetchone()[0]


def test_notices_resume_after_postgresql_comes_back(site):
    env, tokens, _ = site
    if env["PS_DB"] != "postgresql":
        pytest.skip("LISTEN/NOTIFY: PostgreSQL only (set PS_DB=postgresql)")
    app_name = f"{env['PS_DB_NAME']}_feed"  # the feed process's connections, and only them
    name = env["PS_DB_NAME"]
    with live.uvicorn(env, extra_env={"PGAPPNAME": app_name}) as feed_site:
        since = current_since(feed_site.url, tokens["demo"])
        with listening(feed_site.url, tokens["demo"], since) as listener:
            heard(listener, push(site)[0])  # LISTEN works
            assert database_connections(env, app_name) >= 1
            # The database goes away for the feed, as in a restart; gunicorn keeps
            # its open connection (CONN_MAX_AGE) and goes on writing.
            live.run_admin_sql(env, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false', "")
            try:
                with live.admin_connection(env) as connection:
                    connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                       "WHERE application_name = %s", [app_name])
                stamp, _ = push(site)  # announced to nobody: the feed is not listening
                time.sleep(2)
                assert database_connections(env, app_name) == 0
            finally:
                live.run_admin_sql(env, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true', "")
            heard(listener, stamp, timeout=20)  # read from the clocks once back
            started = time.monotonic()
            heard(listener, push(site)[0])
            assert time.monotonic() - started < 2, "notices did not resume promptly"
            assert listener.connects == 1  # the client never noticed


def test_a_client_that_stops_reading_costs_the_others_nothing(site):
    env, tokens, _ = site
    with live.uvicorn(env) as feed_site:
        since = current_since(feed_site.url, tokens["demo"])
        host, port = "127.0.0.1", int(feed_site.url.rsplit(":", 1)[1])
        stalled = socket.create_connection((host, port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        stalled.sendall((f"GET /events?since={since} HTTP/1.1\r\nHost: {host}\r\nAccept: "
                         f"text/event-stream\r\nAuthorization: Token {tokens['demo']}\r\n\r\n").encode())
        try:
            with listening(feed_site.url, tokens["demo"], since) as healthy:
                delays = []
                for _ in range(150):  # the stalled client's buffers fill up meanwhile
                    stamp, acknowledged = push(site)
                    delays.append(heard(healthy, stamp).arrived - acknowledged)
                assert max(delays) < 2.0, (statistics.median(delays), max(delays))
        finally:
            stalled.close()


def test_pushes_reach_the_feed_through_redis(site):
    databases.require_redis()
    env, tokens, _ = site
    # Both processes on Redis, polling an hour apart: a prompt notice came by a message.
    redis_env = {"PS_FEED_REDIS_URL": databases.redis_url(), "PS_FEED_INTERVAL": "3600"}
    with live.gunicorn(env, workers=1, extra_env=redis_env) as writer_site, \
            live.uvicorn(env, extra_env=redis_env) as feed_site:
        redis_site = (env, tokens, writer_site)
        since = current_since(feed_site.url, tokens["demo"])
        with listening(feed_site.url, tokens["demo"], since) as demo:
            time.sleep(0.5)  # the watcher subscribed (it starts with the first connection)
            delays = []
            for _ in range(5):
                stamp, acknowledged = push(redis_site)
                delays.append(heard(demo, stamp, timeout=20).arrived - acknowledged)
    # The safety read comes every 5 s: five arrivals under 1.5 s each are the messages'.
    assert max(delays) < 1.5, delays
