"""Clients of the change feed for the live tests and ``benchmarks/live_feed.py``.

* :func:`create_users` makes users (and DRF tokens) in a scratch database;
* :class:`Listener` is an ``EventSource`` on a thread: it keeps every event
  with its arrival time and reconnects with ``Last-Event-ID`` as browsers do;
* :func:`open_stream` and :func:`read_ids` are the benchmark's raw asyncio
  client: thousands of idle connections in one process.

Like :mod:`tests.integration.live`, nothing here imports Django or pytest at
module level.
"""

import asyncio
import json
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from tests.integration import live

CREATE_USERS = """
import json, os, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
names = json.loads(sys.stdin.read())
User = get_user_model()
existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
User.objects.bulk_create([User(username=name) for name in names if name not in existing])
users = {user.username: user for user in User.objects.filter(username__in=names)}
have = set(Token.objects.filter(user__in=users.values()).values_list("user__username", flat=True))
Token.objects.bulk_create([Token(user=users[name], key=Token.generate_key())
                           for name in names if name not in have])
print(json.dumps(dict(Token.objects.filter(user__in=users.values())
                      .values_list("user__username", "key"))))
"""


def create_users(env, names):
    """``{username: token}`` for ``names`` in the database of ``env`` (made if missing)."""
    made = subprocess.run([sys.executable, "-c", CREATE_USERS], input=json.dumps(list(names)),
                          cwd=live.SITE, env=live.process_env(env), capture_output=True, text=True,
                          check=True)
    return json.loads(made.stdout)


@dataclass
class Event:
    arrived: float  # time.time()
    id: int | None
    data: dict


@dataclass
class Listener:
    """An SSE client of ``url`` (``.../events``) signed in by ``token``, on a daemon thread.

    Like an ``EventSource``, it reconnects after any failure (``retry`` later)
    with the last id it received as ``Last-Event-ID``. ``events`` holds each
    ``change`` event; ``connects`` counts the streams it opened.
    """

    url: str
    token: str
    since: str | None = None
    retry: float = 0.2
    events: "queue.Queue[Event]" = field(default_factory=queue.Queue)
    last_id: str | None = None
    connects: int = 0
    connected: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        import requests

        self.session = requests.Session()
        self.stopping = threading.Event()
        self.response = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping.is_set():
            try:
                self.listen()
            except Exception:  # noqa: BLE001  (a cut connection: reconnect, as EventSource does)
                pass
            self.connected.clear()
            self.stopping.wait(self.retry)

    def listen(self):
        headers = {"Authorization": f"Token {self.token}", "Accept": "text/event-stream"}
        params = {}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        elif self.since is not None:
            params["since"] = self.since
        with self.session.get(self.url, headers=headers, params=params, stream=True,
                              timeout=(5, 120)) as response:
            if response.status_code != 200:
                return
            self.response = response
            self.connects += 1
            self.connected.set()
            event = {}
            for line in response.iter_lines(chunk_size=None, decode_unicode=True):
                if self.stopping.is_set():
                    return
                if line:
                    name, _, value = line.partition(": ")
                    event[name] = value
                    continue
                if event.get("event") == "change":
                    self.last_id = event["id"]
                    self.events.put(Event(time.time(), int(event["id"]), json.loads(event["data"])))
                event = {}

    def next(self, timeout=10.0):
        """The next change event; AssertionError when none comes within ``timeout`` s."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no notice within {timeout} s") from None

    def drain(self, quiet=0.5):
        """Every event until none came for ``quiet`` seconds."""
        drained = []
        while True:
            try:
                drained.append(self.events.get(timeout=quiet))
            except queue.Empty:
                return drained

    def close(self):
        self.stopping.set()
        response = self.response
        if response is not None:
            try:
                response.raw._fp.fp.raw._sock.shutdown(2)  # wake the blocked read at once
            except Exception:  # noqa: BLE001
                pass
            response.close()
        self.thread.join(5)


# --- the benchmark's client: raw asyncio streams ---------------------------------


async def open_stream(host, port, token, since):
    """An SSE connection (reader, writer) past its response headers; raises unless 200."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"GET /events?since={since} HTTP/1.1\r\nHost: {host}\r\n"
                  f"Authorization: Token {token}\r\nAccept: text/event-stream\r\n\r\n").encode())
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"the feed answered {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    return reader, writer


async def read_ids(reader, arrivals):
    """Append ``(time.time(), id)`` of each event to ``arrivals`` until the stream ends.

    Each event travels as one HTTP chunk, so its lines arrive whole between
    the chunk-size lines, which are skipped.
    """
    while True:
        line = await reader.readline()
        if not line:
            return
        if line.startswith(b"id: "):
            arrivals.append((time.time(), int(line[4:])))
