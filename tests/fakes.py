"""The test fakes: remote sync servers for the sync client, in one place.

* :class:`FakeServer` is an in-memory persistence.sync server handed to
  ``sync_all(transport=...)`` (no HTTP): it keeps objects per endpoint URL and
  follows docs/protocol.md (pulls answer what changed after ``since``, paged
  in id order when asked; every push gets a fresh stamp that its changed
  objects carry; idempotent pushes; a pruned horizon answers 410), and the
  change feed's long-poll (``events?since=&wait=``, docs/events.md) through
  ``request()``. Tests edit it directly to play "another client". :func:`run`
  syncs with it.
* :class:`RecordingServer` is a real HTTP server in a thread, for what only
  the wire shows: it records each request the client sends (method, path,
  query, headers, body) and answers what the test scripts, so a test checks
  the client's query parameters, headers and credentials exactly as they
  travel. ``tests/conftest.py`` has it as the ``recording_server`` fixture.
* :class:`AnswerDroppingProxy` is a real TCP proxy in front of a live site,
  for faults of the network: it loses the answers of pushes the site stored,
  or cuts answers short at a random byte.
"""

import http.server
import json
import random
import socket
import threading
import urllib.parse
from dataclasses import dataclass

from persistence_sync.client import sync_all
from persistence_sync.exceptions import TransportError

SERVER = "http://remote.example/"
PROJECTS = SERVER + "projectUpdates"
TASKS = SERVER + "taskUpdates"
TAGS = SERVER + "tagUpdates"


class FakeServer:
    def __init__(self):
        self.stamp = 10_000
        self.objects = {}  # url -> id -> item (with _lastChange)
        self.removed = {}  # url -> id -> stamp
        self.pushes = []  # (url, items)
        self.fail_pull = self.fail_push = None
        self.on_push = None
        self.horizon = {}  # url -> highest pruned deletion stamp
        self.pulls = []  # (url, since)
        self.pages = []  # (url, since, now, after) of each paged request
        self.paging = True  # False: a classic server, which ignores limit=
        self.fail_after_pages = None  # fail every page request once this many were answered
        self.receipts = {}  # push id -> stamp (None: abandoned)
        self.lose_answers = 0  # pushes to store and then fail, as a lost answer does
        self.user = "demo"  # the account paged answers name ("user"; None: an older server)
        self.feed_requests = []  # the query of each long-poll, as a dict
        self.fail_feed = None  # a TransportError (a status, say) every long-poll raises

    def tick(self):
        self.stamp += 10
        return self.stamp

    def put(self, url, obj_id, **values):
        """A change made on the server by someone else."""
        stamp = self.tick()
        item = self.objects.setdefault(url, {}).setdefault(obj_id, {"id": obj_id})
        item.update(values, _lastChange=stamp)
        self.removed.get(url, {}).pop(obj_id, None)
        return stamp

    def delete(self, url, obj_id):
        self.objects.get(url, {}).pop(obj_id, None)
        self.removed.setdefault(url, {})[obj_id] = self.tick()

    def prune(self, url):
        """Forget every deletion of ``url`` (prunetombstones), remembering the horizon."""
        removed = self.removed.pop(url, {})
        if removed:
            self.horizon[url] = max(self.horizon.get(url, 0), *removed.values())

    def pull(self, url, since, limit=None, now=None, after=None):
        """A pull, or with ``limit`` a page of one (docs/protocol.md "Extensions")."""
        self.pulls.append((url, since))
        if self.fail_pull:
            raise TransportError(self.fail_pull)
        if 0 < since < self.horizon.get(url, 0):
            answer = {"status": "error", "error": "pruned", "horizon": self.horizon[url],
                      "resync": True}
            raise TransportError("HTTP 410 Gone", status=410, answer=answer)
        paged = limit is not None and self.paging
        if paged:
            if self.fail_after_pages is not None and len(self.pages) >= self.fail_after_pages:
                raise TransportError("connection failed: the server went away")
            self.pages.append((url, since, now, after))
        now = now if paged and after is not None else self.stamp
        updates = [dict(item) for item in self.objects.get(url, {}).values()
                   if since < item["_lastChange"] <= now]
        updates += [{"id": pk, "_removed": True, "_lastChange": stamp}
                    for pk, stamp in self.removed.get(url, {}).items() if since < stamp <= now]
        if not paged:
            updates.sort(key=lambda item: (item["_lastChange"], item["id"]))
            return {"now": now, "updates": updates, "more": False, "size": 0, "total": None,
                    "user": None}
        total = len(updates) if after is None else None  # the first page counts its window
        updates = sorted((item for item in updates if after is None or item["id"] > after),
                         key=lambda item: item["id"])
        return {"now": now, "updates": updates[:limit], "more": len(updates) > limit,
                "size": len(json.dumps(updates[:limit])), "total": total, "user": self.user}

    def push(self, url, items, push_id=None, replay=False):
        """Idempotent pushes as docs/protocol.md describes them."""
        if self.on_push:
            self.on_push()
        if self.fail_push:
            raise TransportError(self.fail_push)
        if push_id in self.receipts:
            return self.receipts[push_id]
        if replay:
            self.receipts[push_id] = None
            return None
        stamp = self.store(url, items)
        if push_id is not None:
            self.receipts[push_id] = stamp
        if self.lose_answers:
            self.lose_answers -= 1
            raise TransportError("connection failed: reset by peer (the push was stored)")
        return stamp

    def store(self, url, items):
        self.pushes.append((url, items))
        stamp = self.tick()
        for item in items:
            if item.get("_removed"):
                if self.objects.get(url, {}).pop(item["id"], None) is not None:
                    self.removed.setdefault(url, {})[item["id"]] = stamp
                continue
            stored = self.objects.setdefault(url, {}).setdefault(item["id"], {"id": item["id"]})
            stored.update({k: v for k, v in item.items() if k != "_lastChange"})
            stored["_lastChange"] = stamp
        return stamp

    def request(self, method, url, payload=None, headers=None, sized=False, timeout=None):
        """The change feed's long-poll, ``GET <server>/events?wait=&since=`` (docs/events.md).

        ``since`` is a stamp of this server: the answer names each endpoint
        with a change stamped after it, at once (a fake does not wait);
        without ``since``, every endpoint it has (a resync hint).
        """
        parts = urllib.parse.urlsplit(url)
        assert method == "GET" and parts.path.endswith("/events"), url
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.feed_requests.append(query)
        if self.fail_feed is not None:
            raise self.fail_feed
        since = int(query["since"]) if "since" in query else None
        changed = set()
        for url_of, stamps in [*((u, [o["_lastChange"] for o in objs.values()])
                                 for u, objs in self.objects.items()),
                               *((u, list(removed.values())) for u, removed in self.removed.items())]:
            if since is None or any(stamp > since for stamp in stamps):
                changed.add(url_of.rsplit("/", 1)[-1])
        return {"now": self.stamp, "since": str(self.stamp), "endpoints": sorted(changed),
                "tables": []}

    def values(self, url, obj_id):
        item = dict(self.objects[url][obj_id])
        item.pop("_lastChange")
        return item


def run(server, handler="prefer-remote", models=("todo.project", "todo.task"),
        expect_error=False, **kwargs):
    results = sync_all(server_url=SERVER, models=list(models), conflict_handler=handler,
                       transport=server, **kwargs)
    for result in results:
        assert result.ok or expect_error, result.error
    return {result.model: result for result in results}


# --- a real HTTP server that records what the client sends --------------------------

# An answer that never comes: the connection is closed once the request is read,
# as when a proxy or the network loses it (the server may have acted on it).
LOST = "lost"


@dataclass
class Recorded:
    """One request as it arrived."""

    method: str
    path: str  # without the query
    query: dict  # name -> value (the last one, if a name repeats)
    query_string: str  # as sent
    headers: dict  # lower-case name -> value
    body: bytes

    def json(self):
        return json.loads(self.body)


class RecordingServer:
    """An HTTP server on a free port of 127.0.0.1, serving from a thread.

    Each request is appended to ``requests`` (a :class:`Recorded`), then
    answered by ``answer(request)`` when the test sets that callable, else by
    the next of ``answers``. An answer is ``(status, body)`` or ``(status,
    body, headers)``: a body that is not bytes is sent as JSON; :data:`LOST`
    instead of an answer closes the connection without one. A request nobody
    scripted an answer for gets 404 saying so (4xx: the client does not retry
    it). Requests may come from several threads (syncall asks for the next
    page while it writes one): each is served in its own.
    """

    def __init__(self):
        self.requests = []
        self.answers = []
        self.answer = None
        self.lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one_request_of(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                request = Recorded(method, parts.path, query, parts.query,
                                   {name.lower(): value for name, value in self.headers.items()},
                                   self.rfile.read(length))
                reply = recorder.reply_to(request)
                if reply == LOST:
                    self.close_connection = True
                    return
                status, body, *headers = reply
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                for name, value in (headers[0] if headers else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(content)

            def do_GET(self):
                self.handle_one_request_of("GET")

            def do_POST(self):
                self.handle_one_request_of("POST")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll: close() waits for the loop to notice, once per test.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def reply_to(self, request):
        with self.lock:
            self.requests.append(request)
            scripted = self.answers.pop(0) if self.answer is None and self.answers else None
        if self.answer is not None:
            return self.answer(request)
        if scripted is not None:
            return scripted
        return 404, {"status": "error", "error": f"the test scripted no answer for {request.method} "
                                                 f"{request.path}"}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class AnswerDroppingProxy:
    """A TCP proxy that forwards each request whole and, while ``drop_posts`` > 0, reads
    the server's answer to a POST and closes the connection instead of passing it on.

    With ``cut_share`` > 0, that share of the connections (chosen at random)
    get only the start of their answer, cut at a random byte (in the status
    line, the headers or the body), as a flaky link or a dying proxy does.
    ``posts`` records ``(request line, answer body)`` of every POST, dropped or not.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.drop_posts = 0
        self.dropped = 0
        self.cut_share = 0.0
        self.cut = 0
        self.random = random.Random()
        self.posts = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        # Signed in as the demo user, as the server fixture is (the to-do models are per user).
        self.url = f"http://demo:demo@127.0.0.1:{self.sock.getsockname()[1]}/"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with conn, socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
            request = read_http_request(conn)
            upstream.sendall(request)
            answer = b"".join(iter(lambda: upstream.recv(65536), b""))
            if request.startswith(b"POST"):
                self.posts.append((request.split(b"\r\n", 1)[0].decode(),
                                   answer.partition(b"\r\n\r\n")[2]))
            if request.startswith(b"POST") and self.drop_posts > 0:
                self.drop_posts -= 1
                self.dropped += 1
                return  # the server stored the push; its answer never arrives
            if answer and self.random.random() < self.cut_share:
                self.cut += 1
                conn.sendall(answer[:self.random.randrange(len(answer))])
                return  # the request was served; its answer arrives cut short
            conn.sendall(answer)

    def close(self):
        self.sock.close()


def read_http_request(conn):
    """One request read whole from ``conn``, asking the server to close the connection after
    it (a client's keep-alive would leave the proxy waiting for the answer's end)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    lines = [line for line in head.split(b"\r\n")
             if line.partition(b":")[0].strip().lower() != b"connection"]
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body
