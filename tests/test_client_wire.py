"""``syncall`` on the wire: the requests the sync client sends, as docs/protocol.md spells them.

Against ``recording_server`` (tests/fakes.py), a real HTTP server that records
each request and answers what the test scripts: the query of every page of a
paged pull, and the headers of pushes and replays. The client is the public
``sync_all`` with the real ``HttpTransport``.
"""

import re

import pytest
from django.test import override_settings
from todo.models import Tag

from persistence_sync.client import HttpTransport, TransportError, sync_all
from tests.fakes import LOST

pytestmark = pytest.mark.django_db(transaction=True)

PUSH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # docs/protocol.md, "Idempotent pushes"


def sync_tags(server, retries=2):
    [result] = sync_all(server_url=server.url + "/", models=["todo.tag"],
                        transport=HttpTransport(retries=retries, backoff=0, timeout=10))
    return result


def requests(server, method):
    return [request for request in server.requests if request.method == method]


def nothing_new(now):
    return 200, {"now": now, "updates": [], "more": False, "user": "demo"}


def tags_in_pages(tags, now):
    """An answer function: ``tags`` paged by id after ``after``, as the server pages.

    Like the real server, it refuses ``after`` without the first page's ``now``.
    """

    def answer(request):
        if request.method != "GET":
            return 404, {"status": "error", "error": "no push expected"}
        query = request.query
        if "after" in query and "now" not in query:
            return 400, {"status": "error", "error": "after= needs the now= of the first page."}
        rest = [tag for tag in tags if tag["id"] > query.get("after", "")]
        limit = int(query["limit"])
        return 200, {"now": int(query.get("now", now)), "updates": rest[:limit],
                     "more": len(rest) > limit, "user": "demo"}

    return answer


@override_settings(PERSISTENCE_SYNC={"PULL_PAGE_SIZE": 2})
def test_every_page_of_a_pull_repeats_since_and_limit_and_sends_now_and_the_last_id(
        recording_server):
    tags = [{"id": f"T{n}", "name": f"tag {n}", "_lastChange": 400 + n} for n in range(5)]
    recording_server.answer = tags_in_pages(tags, now=500)
    result = sync_tags(recording_server)
    assert result.ok, result.error
    assert sorted(Tag.objects.values_list("pk", "name")) == [(t["id"], t["name"]) for t in tags]
    assert [(r.path, r.query) for r in recording_server.requests] == [
        ("/tagUpdates", {"since": "0", "limit": "2"}),
        ("/tagUpdates", {"since": "0", "limit": "2", "now": "500", "after": "T1"}),
        ("/tagUpdates", {"since": "0", "limit": "2", "now": "500", "after": "T3"}),
    ]
    recording_server.requests.clear()
    recording_server.answer = None
    recording_server.answers[:] = [nothing_new(600)]
    assert sync_tags(recording_server).ok
    [again] = recording_server.requests
    assert again.query == {"since": "500", "limit": "2"}  # the next sync: since the first page's now


@override_settings(PERSISTENCE_SYNC={"PUSH_BATCH_SIZE": 1})
def test_every_push_carries_its_own_push_id_and_a_retry_after_a_lost_answer_the_same(
        recording_server):
    Tag.objects.create(id="A", name="first")
    Tag.objects.create(id="B", name="second")
    recording_server.answers[:] = [nothing_new(100), LOST, (200, {"status": "ok", "now": 110}),
                                   (200, {"status": "ok", "now": 120})]
    result = sync_tags(recording_server)
    assert result.ok and result.pushed == 2, result.error
    lost, retried, other = requests(recording_server, "POST")
    assert lost.json() == retried.json() != other.json()
    assert PUSH_ID.fullmatch(lost.headers.get("x-sync-push-id", ""))
    assert retried.headers["x-sync-push-id"] == lost.headers["x-sync-push-id"]  # stored once
    assert PUSH_ID.fullmatch(other.headers.get("x-sync-push-id", ""))
    assert other.headers["x-sync-push-id"] != lost.headers["x-sync-push-id"]
    assert not any("x-sync-push-replay" in push.headers for push in (lost, retried, other))


def test_a_push_whose_answer_was_lost_is_replayed_with_its_id_and_the_replay_header(
        recording_server):
    Tag.objects.create(id="A", name="mine")
    recording_server.answers[:] = [nothing_new(100), LOST]
    failed = sync_tags(recording_server, retries=1)
    assert not failed.ok and "connection failed" in failed.error
    [lost] = requests(recording_server, "POST")
    recording_server.requests.clear()
    # The replay learns that the push was stored at 150; its echo then comes in the pull.
    recording_server.answers[:] = [
        (200, {"status": "ok", "now": 150}),
        (200, {"now": 160, "user": "demo",
               "updates": [{"id": "A", "name": "mine", "_lastChange": 150}],
               "more": False}),
    ]
    result = sync_tags(recording_server)
    assert result.ok, result.error
    replay, pull = recording_server.requests
    assert (replay.method, replay.path, pull.method) == ("POST", "/tagUpdates", "GET")
    assert replay.headers["x-sync-push-id"] == lost.headers["x-sync-push-id"]
    assert replay.headers["x-sync-push-replay"] == "1"
    assert replay.json() == lost.json()
    assert (result.pushed, result.conflicts) == (0, [])  # its own echo, nothing to push again


@pytest.mark.parametrize("status, body, says", [
    (404, b"<!DOCTYPE html><html><head><title>Page not found</title></head><body>...</body>",
     "HTTP 404 Not Found: no sync endpoint at this URL: check the server URL, and that the "
     "remote syncs this model at this URI"),
    (502, b"<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>",
     "HTTP 502 Bad Gateway: a proxy in front of the remote got no answer from it"),
    (403, {"detail": "You do not have permission to perform this action."},
     "HTTP 403 Forbidden: You do not have permission to perform this action."),
    (400, {"status": "error", "error": "since must be an integer"},
     "HTTP 400 Bad Request: since must be an integer"),
    (429, b"Too many requests", "HTTP 429 Too Many Requests: the remote throttles this account:"
     " run again later (Too many requests)"),
])
def test_an_error_answer_is_said_in_words_never_as_html(recording_server, status, body, says):
    recording_server.answers[:] = [(status, body)]
    with pytest.raises(TransportError) as failure:
        HttpTransport(retries=1).pull(recording_server.url + "/projectUpdates", 0)
    assert str(failure.value) == says
    assert "<" not in str(failure.value)
