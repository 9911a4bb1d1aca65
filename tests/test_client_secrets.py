"""The sync client and secrets: nothing printed, nothing handed on, nothing unbounded."""

import http.server
import io
import json
import threading

import pytest
from django.core.management import CommandError, call_command
from django.test import RequestFactory, override_settings
from rest_framework.authentication import TokenAuthentication
from rest_framework.request import Request

from persistence_sync.client import sync_all
from persistence_sync.client.transport import HttpTransport, redact
from persistence_sync.exceptions import InsecureTransportWarning, TransportError
from tests.test_client import FakeServer

SECRET = "s3cret-Pa55"


def test_redact_drops_user_and_password_only():
    assert redact(f"https://alice:{SECRET}@example.com:8443/sync/x?a=1") == \
        "https://example.com:8443/sync/x?a=1"
    assert redact("https://example.com/x") == "https://example.com/x"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url, message", [
    (f"ftp://alice:{SECRET}@example.com/", "is not an http:// or https:// URL"),
    (f"http://alice:{SECRET}@example.com:port/", "has a bad port"),
])
def test_unusable_server_urls_are_named_without_their_password(url, message):
    [result] = sync_all(server_url=url, transport=FakeServer(), models=["todo.tag"])
    assert message in result.error and SECRET not in result.error


@pytest.mark.django_db(transaction=True)
def test_results_and_errors_never_show_the_password():
    server = FakeServer()
    server.fail_pull = "cannot connect: refused"
    results = sync_all(server_url=f"http://alice:{SECRET}@remote.example/", transport=server,
                       models=["todo.tag"])
    assert results[0].url == "http://remote.example/tagUpdates"
    assert SECRET not in json.dumps([r.as_dict() for r in results])
    assert SECRET not in results[0].summary()


@pytest.mark.django_db(transaction=True)
@override_settings(PERSISTENCE_SYNC={"RETRIES": 1, "TIMEOUT": 2})
def test_syncall_output_never_shows_the_password():
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("syncall", "todo.Tag", "--server", f"http://alice:{SECRET}@127.0.0.1:1/",
                     "--json", stdout=out, stderr=err)
    assert "cannot connect" in err.getvalue()
    for text in (out.getvalue(), err.getvalue(), str(failure.value)):
        assert SECRET not in text and "alice" not in text


@pytest.mark.parametrize("keyword, expected", [(None, "Token abc123"), ("Bearer", "Bearer abc123")])
def test_the_token_works_with_drfs_token_authentication(monkeypatch, keyword, expected):
    monkeypatch.setenv("PERSISTENCE_SYNC_TOKEN", "abc123")
    settings = {"TOKEN_KEYWORD": keyword} if keyword else {}
    with override_settings(PERSISTENCE_SYNC=settings):
        header = HttpTransport.from_settings().headers["Authorization"]
    assert header == expected
    if keyword is None:  # DRF's own class reads it as the token abc123

        class Found(TokenAuthentication):
            def authenticate_credentials(self, key):
                return ("user", key)

        request = Request(RequestFactory().get("/", HTTP_AUTHORIZATION=header))
        assert Found().authenticate(request) == ("user", "abc123")


@pytest.mark.parametrize("url, warns", [
    ("http://central.example.com/x", True),
    ("http://10.0.0.5:8000/x", True),
    ("https://central.example.com/x", False),
    ("http://127.0.0.1:8000/x", False),
    ("http://localhost/x", False),
    ("http://[::1]:8000/x", False),
])
def test_plain_http_to_another_machine_warns_once(url, warns, recwarn):
    transport = HttpTransport()
    transport.warn_if_plain_http(url)
    transport.warn_if_plain_http(url)
    found = [w for w in recwarn if issubclass(w.category, InsecureTransportWarning)]
    assert len(found) == (1 if warns else 0)


# --- over a real socket: redirects and answer sizes ------------------------------------


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers per path: ``/same`` and ``/other`` redirect, ``/big`` is large, else JSON."""

    seen = []  # (port, path, Authorization header)
    other_port = None

    def do_GET(self):
        port = self.server.server_address[1]
        self.seen.append((port, self.path, self.headers.get("Authorization")))
        if self.path.startswith("/same"):
            self.redirect(f"http://127.0.0.1:{port}/final")
        elif self.path.startswith("/other"):
            self.redirect(f"http://127.0.0.1:{self.other_port}/final")
        else:
            body = b'{"now": 1, "updates": []}' + (b" " * 5000 if self.path.startswith("/big") else b"")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    do_POST = do_GET

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def two_servers():
    servers = [http.server.HTTPServer(("127.0.0.1", 0), Recorder) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.other_port = servers[1].server_address[1]
    yield [f"http://127.0.0.1:{server.server_address[1]}" for server in servers]
    for server in servers:
        server.shutdown()
    Recorder.seen.clear()


def test_a_redirect_to_another_origin_drops_the_authorization(two_servers):
    first, second = two_servers
    transport = HttpTransport(headers={"Authorization": "Token abc123"}, retries=1)
    transport.pull(first + "/same", 0)
    transport.pull(first + "/other", 0)
    assert [auth for _, _, auth in Recorder.seen] == [
        "Token abc123", "Token abc123",  # same origin: kept
        "Token abc123", None,  # another origin: dropped
    ]


def test_a_redirected_push_fails_instead_of_becoming_a_pull(two_servers):
    first, _ = two_servers
    with pytest.raises(TransportError, match="the push was redirected .* to http://127.0.0.1"):
        HttpTransport(retries=1).push(first + "/same", [{"id": "X"}])


def test_answers_larger_than_the_cap_are_refused(two_servers):
    first, _ = two_servers
    assert HttpTransport(max_response_size=1000).pull(first + "/small", 0)["now"] == 1
    with pytest.raises(TransportError, match="larger than 1000 bytes .*MAX_RESPONSE_SIZE"):
        HttpTransport(max_response_size=1000, retries=1).pull(first + "/big", 0)
