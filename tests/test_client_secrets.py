"""The sync client and secrets: nothing printed, nothing handed on, nothing unbounded."""

import base64
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import RequestFactory, override_settings
from rest_framework.authentication import TokenAuthentication
from rest_framework.request import Request

from persistence_sync.client import sync_all
from persistence_sync.client.transport import HttpTransport, redact
from persistence_sync.exceptions import InsecureTransportWarning, TransportError
from persistence_sync.models import SyncState
from tests.fakes import FakeServer, RecordingServer

SECRET = "s3cret-Pa55"


def test_redact_drops_user_and_password_only():
    assert redact(f"https://alice:{SECRET}@example.com:8443/sync/x?a=1") == \
        "https://example.com:8443/sync/x?a=1"
    assert redact("https://example.com/x") == "https://example.com/x"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url, message", [
    (f"ftp://alice:{SECRET}@example.com/", "is not an http:// or https:// URL"),
    (f"http://alice:{SECRET}@example.com:port/", "has a bad port"),
    # A password holding "/": URL parsing takes "alice:s3cret" for the host and a port.
    (f"http://alice:Zq9/{SECRET}@example.com/", "has a bad port"),
    (f"http://alice:{SECRET[:3]}/{SECRET[3:]}@example.com/", "must be percent-encoded"),
])
def test_unusable_server_urls_are_named_without_their_password(url, message):
    [result] = sync_all(server_url=url, transport=FakeServer(), models=["todo.tag"])
    assert message in result.error and SECRET not in result.error
    assert SECRET[3:] not in result.error and SECRET[:3] + "/" not in result.error


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


# A raw "@" in the password, as users paste it into the URL: the last "@" ends it.
AT_PASSWORD = "p@ss-W0rd"


def syncall_output(*args):
    """``(stdout, stderr, error)`` of ``manage.py syncall`` with ``args``."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("syncall", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), str(exc)
    return out.getvalue(), err.getvalue(), ""


@pytest.mark.django_db(transaction=True)
@override_settings(PERSISTENCE_SYNC={"RETRIES": 1})
@pytest.mark.parametrize("written", [AT_PASSWORD, AT_PASSWORD.replace("@", "%40")])
def test_a_password_with_an_at_sign_is_sent_whole_and_never_shown(recording_server, written):
    url = f"http://alice:{written}@127.0.0.1:{recording_server.port}/"
    recording_server.answers[:] = [(200, {"now": 100, "updates": [], "user": "demo"}),
                                   (503, {"status": "error", "error": "down"})]
    out, err, error = syncall_output("todo.Tag", "--server", url, "--json")
    [result] = json.loads(out)
    assert result["ok"] and result["url"] == f"{recording_server.url}/tagUpdates"
    failed = syncall_output("todo.Tag", "--server", url, "--json")
    assert "HTTP 503" in failed[1]
    for text in (out, err, error, *failed):
        assert "W0rd" not in text and "alice" not in text
    credentials = base64.b64encode(f"alice:{AT_PASSWORD}".encode()).decode()
    assert [r.headers.get("authorization") for r in recording_server.requests] == [
        f"Basic {credentials}"] * 2


@pytest.mark.django_db(transaction=True)
def test_the_sync_state_is_kept_per_server_without_its_credentials(recording_server, client,
                                                                      django_user_model):
    def sync_with(password):
        return sync_all(server_url=f"http://alice:{password}@127.0.0.1:{recording_server.port}/",
                        models=["todo.tag"], transport=HttpTransport(retries=1))

    recording_server.answers[:] = [(200, {"now": 100, "updates": [], "user": "demo"})]
    assert sync_with(AT_PASSWORD)[0].ok
    [state] = SyncState.objects.all()
    assert state.remote == f"{recording_server.url}/tagUpdates"
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    page = client.get("/admin/persistence_sync/syncstate/").content.decode()
    assert state.remote in page and "W0rd" not in page and "alice" not in page
    # A new password, the same server: the next pull goes on from the last one.
    recording_server.answers[:] = [(200, {"now": 120, "updates": [], "user": "demo"})]
    assert sync_with("n3w-W0rd")[0].ok
    assert recording_server.requests[-1].query["since"] == "100"
    assert SyncState.objects.get().server_date == 120


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


def redirecting(server, other):
    """``server`` answers per path: ``/same`` and ``/other`` redirect, ``/big`` is large, else JSON."""

    def answer(request):
        if request.path.startswith("/same"):
            return 302, b"", {"Location": f"{server.url}/final"}
        if request.path.startswith("/other"):
            return 302, b"", {"Location": f"{other.url}/final"}
        return 200, b'{"now": 1, "updates": []}' + (b" " * 5000 if request.path.startswith("/big")
                                                    else b"")

    server.answer = answer


@pytest.fixture
def two_servers():
    servers = [RecordingServer() for _ in range(2)]
    redirecting(*servers)
    redirecting(*reversed(servers))
    yield servers
    for server in servers:
        server.close()


@pytest.mark.parametrize("header", ["Authorization", "X-Api-Key"])
def test_a_redirect_to_another_origin_drops_every_configured_credential(two_servers, header):
    first, second = two_servers
    transport = HttpTransport(headers={header: "Token abc123", "X-Team": "red"}, retries=1)
    transport.pull(first.url + "/same", 0)
    transport.pull(first.url + "/other", 0)

    def seen(server):
        return [(request.path, request.headers.get(header.lower())) for request in server.requests]

    assert seen(first) == [("/same", "Token abc123"), ("/final", "Token abc123"),  # same origin
                           ("/other", "Token abc123")]
    assert seen(second) == [("/final", None)]  # another origin: dropped, and the other header too
    assert second.requests[0].headers.get("x-team") is None


def test_a_redirected_push_fails_instead_of_becoming_a_pull(two_servers):
    first, _ = two_servers
    with pytest.raises(TransportError, match="the push was redirected .* to http://127.0.0.1"):
        HttpTransport(retries=1).push(first.url + "/same", [{"id": "X"}])


def test_answers_larger_than_the_cap_are_refused(two_servers):
    first, _ = two_servers
    assert HttpTransport(max_response_size=1000).pull(first.url + "/small", 0)["now"] == 1
    with pytest.raises(TransportError, match="larger than 1000 bytes .*MAX_RESPONSE_SIZE"):
        HttpTransport(max_response_size=1000, retries=1).pull(first.url + "/big", 0)
