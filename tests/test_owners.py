"""Replicas own their data: what syncall pulls for owner= models belongs to a local user.

Against the in-memory FakeServer (tests/fakes.py), which names its account
("user") in its paged answers as the real server does. testapp's Memo and
Comment sync their owner on the wire (the example site's models do not), so
these tests see the remote's user ids arrive and never get written.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from todo.models import Project, Task

from persistence_sync.models import SyncState
from tests.fakes import PROJECTS, SERVER, TASKS, FakeServer, run
from tests.testapp.models import Comment, Memo

pytestmark = pytest.mark.django_db(transaction=True)

MEMOS, COMMENTS = SERVER + "memos", SERVER + "comments"
REMOTE_USER_ID = 987_654  # the remote's id of its account: no such user here


@pytest.fixture
def server():
    return FakeServer()


def user(name):
    return get_user_model().objects.get_or_create(username=name)[0]


def test_pulled_objects_belong_to_the_local_user_with_the_remote_accounts_username(server):
    ann = user("ann")
    server.user = "ann"
    server.put(MEMOS, "M1", text="hello", owner=REMOTE_USER_ID, reviewed=False)
    server.put(COMMENTS, "C1", text="hi", memo="M1", owner=REMOTE_USER_ID)
    results = run(server, models=["testapp.memo", "testapp.comment"])
    assert results["testapp.memo"].created == results["testapp.comment"].created == 1
    assert Memo.objects.get().owner == Comment.objects.get().owner == ann
    # The owner compares as equal to the remote's: a second run sees nothing to do.
    again = run(server, models=["testapp.memo", "testapp.comment"])
    assert all((r.pulled, r.pushed) == (0, 0) for r in again.values())


def test_as_user_names_another_local_user(server):
    bob = user("bob")
    server.put(MEMOS, "M1", text="hello", owner=REMOTE_USER_ID, reviewed=False)
    run(server, models=["testapp.memo"], local_user="bob")
    assert Memo.objects.get().owner == bob


def test_a_missing_local_user_is_said_once_per_model_before_anything_is_written(server):
    server.user = "carol"
    server.put(PROJECTS, "P1", name="Home")
    server.put(TASKS, "T1", name="Dishes", project="P1")
    results = run(server, expect_error=True)
    causes = {result.cause for result in results.values()}
    assert len(causes) == 1
    [cause] = causes
    assert "No local user 'carol'" in cause and "--as-user" in cause
    assert "Nothing was written" in cause
    assert not Project.objects.exists() and not Task.objects.exists()
    assert not SyncState.objects.exists()


def test_a_missing_as_user_stops_the_run_before_any_request(server):
    results = run(server, local_user="nobody", expect_error=True)
    assert all("No local user 'nobody'" in r.error for r in results.values())
    assert server.pulls == [] and server.pushes == []


def test_a_remote_that_names_no_user_needs_as_user(server):
    server.user = None  # an older server, or another implementation
    server.put(PROJECTS, "P1", name="Home")
    results = run(server, expect_error=True)
    assert all("does not say which account" in r.error for r in results.values())
    assert not Project.objects.exists()
    assert run(server, local_user="demo")["todo.project"].created == 1


def test_pushes_never_carry_the_owner_and_skip_other_local_users_objects(server):
    ann, bob = user("ann"), user("bob")
    server.user = "ann"
    Memo.objects.create(id="M1", owner=ann, text="ann's")
    Memo.objects.create(id="M2", owner=bob, text="bob's")
    result = run(server, models=["testapp.memo"])["testapp.memo"]
    assert result.pushed == 1
    [(url, items)] = server.pushes
    assert items == [{"id": "M1", "text": "ann's", "reviewed": False}]


def test_the_replicas_user_edits_what_was_pulled_for_them_and_the_edit_is_pushed(server):
    ann = user("ann")
    server.user = "ann"
    server.put(MEMOS, "M1", text="from the server", owner=REMOTE_USER_ID, reviewed=False)
    run(server, models=["testapp.memo"])
    memo = Memo.objects.get(owner=ann)
    memo.text = "edited on the replica"
    memo.save()
    assert run(server, models=["testapp.memo"])["testapp.memo"].pushed == 1
    assert server.values(MEMOS, "M1") == {"id": "M1", "text": "edited on the replica",
                                          "owner": REMOTE_USER_ID, "reviewed": False}


def test_a_full_resync_deletes_none_of_another_local_users_objects(server):
    user("ann")
    bob = user("bob")
    server.user = "ann"
    server.put(MEMOS, "M1", text="a", owner=REMOTE_USER_ID, reviewed=False)
    run(server, models=["testapp.memo"])
    Memo.objects.create(id="B1", owner=bob, text="bob's, never synced")
    server.delete(MEMOS, "M1")
    server.put(MEMOS, "M2", text="b", owner=REMOTE_USER_ID, reviewed=False)
    server.prune(MEMOS)  # the deletion is forgotten: the replica resyncs from 0
    result = run(server, models=["testapp.memo"])["testapp.memo"]
    assert result.resynced
    assert sorted(Memo.objects.values_list("id", "owner__username")) == [
        ("B1", "bob"), ("M2", "ann")]


def test_a_group_whose_first_model_has_no_owner_asks_for_the_owner_before_writing(
        server, fresh_registry):
    # Memo without owner= (all users' memos), Comment per user, hanging on memos.
    fresh_registry.unregister(Memo)
    fresh_registry.register(Memo, uri="memos")
    ann = user("ann")
    server.user = "ann"
    server.put(MEMOS, "M1", text="shared", owner=ann.pk, reviewed=False)
    server.put(COMMENTS, "C1", text="mine", memo="M1", owner=REMOTE_USER_ID)
    run(server, models=["testapp.memo", "testapp.comment"])
    # A one-item page of the first owner= model, before the memos' pages.
    assert server.pages[0][0] == COMMENTS and server.pages[1][0] == MEMOS
    assert Comment.objects.get().owner == ann
    server.user = "nobody here"
    server.put(MEMOS, "M2", text="new", owner=ann.pk, reviewed=False)
    results = run(server, models=["testapp.memo", "testapp.comment"], expect_error=True)
    assert "No local user 'nobody here'" in results["testapp.memo"].error
    assert not Memo.objects.filter(pk="M2").exists()


def test_syncall_as_user(server, monkeypatch):
    from persistence_sync.client import transport

    bob = user("bob")
    monkeypatch.setattr(transport.HttpTransport, "from_settings", classmethod(lambda cls: server))
    server.put(MEMOS, "M1", text="hello", owner=REMOTE_USER_ID, reviewed=False)
    call_command("syncall", "testapp.Memo", "--server", SERVER, "--as-user", "bob", verbosity=0)
    assert Memo.objects.get().owner == bob
    with pytest.raises(CommandError, match="failed"):
        call_command("syncall", "testapp.Memo", "--server", SERVER, "--as-user", "zed",
                     verbosity=0)
