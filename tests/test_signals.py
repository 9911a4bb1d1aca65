"""pre_push, post_push (after commit) and post_pull, sent by the sync endpoints."""

import json

import pytest
from django.contrib.auth.models import User
from todo.models import Project, Task

from persistence_sync import signals
from persistence_sync.exceptions import ProtocolError


@pytest.fixture
def received():
    """Every signal sent during the test, as (name, sender, kwargs)."""
    calls = []
    receivers = {}
    for name in ("pre_push", "post_push", "post_pull"):
        def receiver(sender, name=name, **kwargs):
            kwargs.pop("signal")
            calls.append((name, sender, kwargs))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield calls
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_push_sends_pre_push_then_post_push_with_request_changes_and_stamp(client, received):
    user = User.objects.create_user("ada")
    client.force_login(user)
    project = Project.objects.create(name="Home", owner=user)
    body = [{"id": "T1", "name": "new", "project": project.pk}, {"id": "T0", "_removed": True}]
    response = client.post("/taskUpdates", json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    stamp = response.json()["now"]
    names = [name for name, _, _ in received]
    assert names == ["pre_push", "post_push"]
    (_, sender, pre), (_, post_sender, post) = received
    assert sender is Task and post_sender is Task
    assert pre["request"].user == user and pre["registration"].model is Task
    assert list(pre["changes"]) == ["T1", "T0"]
    assert pre["changes"]["T1"].values == {"name": "new", "project_id": project.pk}
    assert pre["changes"]["T0"].removed is True
    assert post["stamp"] == stamp and post["changes"] is pre["changes"]
    assert Task.objects.get(pk="T1").last_change == stamp


@pytest.mark.django_db
def test_post_push_waits_for_the_outer_commit(sync, received, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        sync.push("taskUpdates", [{"id": "T1", "name": "x"}])
        assert [name for name, _, _ in received] == ["pre_push"]
    assert len(callbacks) == 1
    callbacks[0]()
    assert [name for name, _, _ in received] == ["pre_push", "post_push"]


@pytest.mark.django_db(transaction=True)
def test_no_post_push_for_a_refused_push_nor_any_signal_for_an_empty_one(sync, received):
    sync.push("taskUpdates", [{"id": "T1", "project": "NOPE"}], expect=400)
    assert [name for name, _, _ in received] == ["pre_push"]
    received.clear()
    sync.push("taskUpdates", [])
    assert received == []


@pytest.mark.django_db(transaction=True)
def test_pre_push_receiver_may_refuse_the_push(sync):
    def refuse(sender, changes, **kwargs):
        if any(change.values and change.values.get("name") == "forbidden" for change in changes.values()):
            raise ProtocolError("Tasks may not be called 'forbidden'.", status_code=403)

    signals.pre_push.connect(refuse, sender=Task)
    try:
        answer = sync.push("taskUpdates", [{"id": "T1", "name": "forbidden"}], expect=403)
    finally:
        signals.pre_push.disconnect(refuse, sender=Task)
    assert answer == {"status": "error", "error": "Tasks may not be called 'forbidden'."}
    assert not Task.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_failing_post_push_receiver_is_logged_and_the_push_still_succeeds(sync, caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("audit log is down")

    signals.post_push.connect(broken)
    try:
        sync.push("taskUpdates", [{"id": "T1", "name": "kept"}])
    finally:
        signals.post_push.disconnect(broken)
    assert Task.objects.filter(pk="T1").exists()
    [record] = [r for r in caplog.records if r.name == "persistence_sync.signals"]
    assert "todo.Task" in record.getMessage() and "audit log is down" in caplog.text


@pytest.mark.django_db
def test_pull_sends_post_pull_with_since_now_and_count(sync, received):
    Task.objects.create(name="x")
    Task.objects.create(name="y").delete()
    answer = sync.pull("taskUpdates", since=5)
    [(name, sender, kwargs)] = received
    assert (name, sender) == ("post_pull", Task)
    assert (kwargs["since"], kwargs["now"], kwargs["count"]) == (5, answer["now"], 2)
    assert kwargs["request"].method == "GET"
