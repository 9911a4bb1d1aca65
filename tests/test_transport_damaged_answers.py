"""Answers cut short or not JSON, from a real socket (issue 20).

``http.client`` returns a body shorter than its Content-Length without
raising when it is read with a size, and raises ``IncompleteRead`` for a
chunked body cut early. Either is an answer cut short: to a request safe to
send again (every pull, a push carrying its push id) it is retried within
``retries`` like a cut connection; to a push without a push id (which may
have been stored) it is not. The error says which it was.

The server here is a thread on a local socket that answers each connection
with the next scripted bytes, exactly as given, then closes it.
"""

import json
import socket
import threading

import pytest

from persistence_sync.client.transport import HttpTransport
from persistence_sync.exceptions import TransportError

PULLED = json.dumps({"now": 7, "updates": [{"id": "A", "name": "x" * 200}]}).encode()
PUSHED = b'{"status":"ok","now":8}'


def whole(body, status="200 OK"):
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def cut(body, after):
    """The answer announcing all of ``body`` and sending its first ``after`` bytes."""
    return whole(body)[:len(whole(body)) - len(body) + after]


def chunked(body, after=None, status="200 OK"):
    """``body`` in chunks of 100 bytes; with ``after``, cut inside a chunk after that many."""
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    pieces = [b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100])
              for i in range(0, len(body), 100)]
    if after is None:
        return head + b"".join(pieces) + b"0\r\n\r\n"
    before, inside = divmod(after, 100)  # whole chunks sent, bytes of the next one
    return head + b"".join(pieces[:before]) + pieces[before][:pieces[before].index(b"\r\n") + 2
                                                               + inside]


class ScriptedServer:
    """Answers the n-th connection with ``answers[n]`` (raw bytes), then closes it."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []  # the raw head of each request received
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/taskUpdates"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(read_request(conn))
                conn.sendall(self.answers.pop(0))

    def close(self):
        self.sock.close()

    def push_ids(self):
        return [next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                      if line.lower().startswith("x-sync-push-id:")), None)
                for head in self.requests]


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    length = next((int(line.split(":", 1)[1]) for line in text.split("\r\n")
                   if line.lower().startswith("content-length:")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return text


@pytest.fixture
def scripted():
    servers = []

    def start(*answers):
        servers.append(ScriptedServer(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def transport(retries=3):
    return HttpTransport(retries=retries, backoff=0, timeout=5)


@pytest.mark.parametrize("damaged", [cut(PULLED, 0), cut(PULLED, 57), chunked(PULLED, 150),
                                     chunked(PULLED, 0), whole(b"<html>"), whole(b"")],
                         ids=["cut-before-the-body", "cut-after-57", "chunked-cut",
                              "chunked-cut-at-once", "not-json", "empty"])
def test_a_damaged_pull_answer_is_retried(scripted, damaged):
    server = scripted(damaged, whole(PULLED))
    answer = transport().pull(server.url, 0)
    assert answer["now"] == 7 and answer["updates"][0]["id"] == "A"
    assert len(server.requests) == 2


def test_a_chunked_answer_in_full_is_read_in_full(scripted):
    server = scripted(chunked(PULLED))
    assert transport().pull(server.url, 0)["updates"][0]["name"] == "x" * 200


@pytest.mark.parametrize("damaged, message", [
    (cut(PULLED, 57), rf"cut short after 57 of {len(PULLED)} bytes \(after 3 attempts\)"),
    (chunked(PULLED, 150), r"cut short after 100 bytes \(its chunked body ended early\) "
                           r"\(after 3 attempts\)"),
    (whole(b"<html>"), r"not JSON: '<html>' \(after 3 attempts\)"),
], ids=["cut", "chunked-cut", "not-json"])
def test_a_pull_damaged_every_time_fails_saying_how(scripted, damaged, message):
    server = scripted(damaged, damaged, damaged)
    with pytest.raises(TransportError, match=message):
        transport().pull(server.url, 0)
    assert len(server.requests) == 3


@pytest.mark.parametrize("damaged", [cut(PUSHED, 10), chunked(PUSHED, 5), whole(b"<html>")],
                         ids=["cut", "chunked-cut", "not-json"])
def test_a_push_with_its_push_id_is_sent_again_with_the_same_id(scripted, damaged):
    server = scripted(damaged, whole(PUSHED))
    assert transport().push(server.url, [{"id": "A"}], push_id="p-1") == 8
    assert server.push_ids() == ["p-1", "p-1"]


@pytest.mark.parametrize("damaged, message", [
    (cut(PUSHED, 10), f"cut short after 10 of {len(PUSHED)} bytes; not sent again"),
    (whole(b"<html>"), "not JSON: '<html>'; not sent again"),
], ids=["cut", "not-json"])
def test_a_push_without_a_push_id_is_not_sent_again(scripted, damaged, message):
    server = scripted(damaged, whole(PUSHED))
    with pytest.raises(TransportError, match=message) as failure:
        transport().push(server.url, [{"id": "A"}])
    assert not failure.value.transient and len(server.requests) == 1
    assert "may have been stored" in str(failure.value)


def test_an_error_answer_cut_short_is_still_its_http_error(scripted):
    body = b'{"status":"error","error":"' + b"y" * 300 + b'"}'
    server = scripted(chunked(body, 150, status="400 Bad Request"))
    with pytest.raises(TransportError, match="HTTP 400") as failure:
        transport().push(server.url, [{"id": "A"}], push_id="p-2")
    assert failure.value.status == 400 and len(server.requests) == 1
