"""Multi-user sync: owners, shared scopes, the write rule, scoped tombstones, revocation.

Two and three users over HTTP (Django's test client, session and Basic auth)
against tests.testapp's Memo and Comment (``owner="owner"``) and Board
(``scope="team"``, the teams being auth Groups). Every refusal is checked to
have stored nothing, and every pull to carry nothing of another user.
"""

import base64
import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from persistence_sync.models import ScopeGrant, Tombstone
from tests.conftest import answer_bytes
from tests.testapp.models import Board, Comment, Memo

pytestmark = pytest.mark.django_db


class Device:
    """One user's device: pulls and pushes as that user, remembering ``since``."""

    def __init__(self, user, basic=False):
        self.user = user
        self.client = Client()
        self.headers = {}
        if basic:
            token = base64.b64encode(f"{user.username}:pw".encode()).decode()
            self.headers["HTTP_AUTHORIZATION"] = f"Basic {token}"
        elif user is not None:
            self.client.force_login(user)
        self.since = {}

    def pull(self, uri, since=None):
        since = self.since.get(uri, 0) if since is None else since
        response = self.client.get(f"/{uri}", {"since": since}, **self.headers)
        assert response.status_code == 200, response.content
        body = response.json()
        self.since[uri] = body["now"]
        return body["updates"]

    def push(self, uri, items, expect=200):
        response = self.client.post(f"/{uri}", json.dumps(items), content_type="application/json",
                                    **self.headers)
        assert response.status_code == expect, response.content
        return response.json()


def ids(updates, removed=False):
    return sorted(u["id"] for u in updates if bool(u.get("_removed")) == removed)


@pytest.fixture
def users():
    return [User.objects.create_user(name, password="pw") for name in ("ann", "bob", "cid")]


@pytest.fixture
def ann(users):
    return Device(users[0])


@pytest.fixture
def bob(users):
    return Device(users[1], basic=True)  # one user per test on HTTP Basic


@pytest.fixture
def cid(users):
    return Device(users[2])


def snapshot():
    """Everything stored, to prove a refused push changed nothing."""
    return (
        sorted(Memo.objects.values_list("id", "owner_id", "text", "reviewed", "last_change")),
        sorted(Comment.objects.values_list("id", "owner_id", "memo_id", "text", "last_change")),
        sorted(Board.objects.values_list("id", "team_id", "title", "edited_by", "last_change")),
        sorted(Tombstone.objects.values_list("model", "object_id", "scope", "last_change")),
    )


class TestOwner:
    def test_new_objects_belong_to_the_requester_and_pulls_show_only_theirs(self, ann, bob, cid):
        ann.push("memos", [{"id": "A1", "text": "a"}])
        bob.push("memos", [{"id": "B1", "text": "b", "owner": None}])
        bob.push("memos", [{"id": "B2", "text": "b", "owner": bob.user.pk}])
        assert Memo.objects.get(id="A1").owner == ann.user
        assert set(Memo.objects.filter(owner=bob.user).values_list("id", flat=True)) == {"B1", "B2"}
        assert ids(ann.pull("memos")) == ["A1"]
        [b1, b2] = bob.pull("memos")
        assert b1["owner"] == bob.user.pk  # sent in pulls, set by the server
        assert ids(cid.pull("memos")) == []

    def test_nobody_creates_in_or_hands_over_to_another_account(self, ann, bob):
        bob.push("memos", [{"id": "B1", "text": "b"}])
        before = snapshot()
        answer = bob.push("memos", [{"id": "X1", "text": "in ann's account",
                                     "owner": ann.user.pk}], expect=403)
        assert answer["errors"][0]["id"] == "X1"
        bob.push("memos", [{"id": "B1", "owner": ann.user.pk}], expect=403)
        bob.push("memos", [{"id": "X2", "owner": 999999}], expect=403)  # missing user: same
        assert snapshot() == before
        assert ids(ann.pull("memos")) == []

    def test_nobody_changes_or_deletes_another_users_objects(self, ann, bob):
        ann.push("memos", [{"id": "A1", "text": "a"}])
        before = snapshot()
        bob.push("memos", [{"id": "A1", "text": "mine"}], expect=403)
        bob.push("memos", [{"id": "A1", "text": "mine"}, {"id": "B1", "text": "b"}], expect=403)
        # A removal of a hidden object answers like a removal of a missing one.
        hidden = bob.push("memos", [{"id": "A1", "_removed": True}])
        missing = bob.push("memos", [{"id": "NOPE", "_removed": True}])
        assert hidden.keys() == missing.keys() and hidden["status"] == missing["status"] == "ok"
        assert snapshot()[0] == before[0] and not Tombstone.objects.exists()

    def test_deletions_are_pulled_only_by_their_owner(self, ann, bob, cid):
        ann.push("memos", [{"id": "A1"}, {"id": "A2"}])
        bob.push("memos", [{"id": "B1"}])
        bob_since = bob.pull("memos") and bob.since["memos"]
        ann.push("memos", [{"id": "A1", "_removed": True}])
        Memo.objects.filter(id="A2").delete()  # site code deletes: also scoped
        Memo.objects.get(id="B1").delete()
        assert ids(ann.pull("memos", since=0), removed=True) == ["A1", "A2"]
        assert ids(bob.pull("memos", since=bob_since), removed=True) == ["B1"]
        assert cid.pull("memos", since=0) == []

    def test_a_deleted_id_of_another_user_cannot_be_recreated(self, ann, bob, users):
        ann.push("memos", [{"id": "A1", "text": "a"}])
        other_device = Device(users[0])
        other_device.pull("memos")
        ann.push("memos", [{"id": "A1", "_removed": True}])
        before = snapshot()
        answer = bob.push("memos", [{"id": "A1", "text": "taken"}], expect=403)
        assert answer["errors"][0]["message"] == "you may not change this object"
        assert snapshot() == before
        assert ids(other_device.pull("memos"), removed=True) == ["A1"]
        # Its owner may bring it back; the other device then receives it again.
        ann.push("memos", [{"id": "A1", "text": "back"}])
        assert [(u["id"], u.get("text")) for u in other_device.pull("memos")] == [("A1", "back")]

    def test_foreign_keys_must_name_visible_objects_and_hidden_answers_like_missing(self, ann, bob):
        ann.push("memos", [{"id": "A1"}])
        bob.push("memos", [{"id": "B1"}])
        before = snapshot()
        hidden = bob.push("comments", [{"id": "C1", "memo": "A1"}], expect=400)
        missing = bob.push("comments", [{"id": "C1", "memo": "ZZ"}], expect=400)
        assert json.dumps(hidden).replace("A1", "ZZ") == json.dumps(missing)
        assert snapshot() == before
        bob.push("comments", [{"id": "C1", "memo": "B1"}])
        # A's delete of A1 cascades into nothing of B's.
        ann.push("memos", [{"id": "A1", "_removed": True}])
        assert Comment.objects.get(id="C1").owner == bob.user

    def test_read_only_fields_are_pulled_and_never_changed_by_a_push(self, ann):
        ann.push("memos", [{"id": "A1", "text": "a", "reviewed": None}])
        Memo.objects.filter(id="A1").update(reviewed=True)  # the server's own decision
        [pulled] = ann.pull("memos", since=0)
        assert pulled["reviewed"] is True
        before = snapshot()
        answer = ann.push("memos", [{"id": "A1", "reviewed": False}], expect=400)
        assert answer["errors"][0]["field"] == "reviewed"
        ann.push("memos", [{"id": "A2", "reviewed": True}], expect=400)
        assert snapshot() == before
        ann.push("memos", [{**pulled, "text": "edited"}])  # a client echoing the object back
        assert Memo.objects.get(id="A1").reviewed is True

    def test_a_moved_object_leaves_the_old_owners_devices_and_reaches_the_new(self, ann, bob):
        bob.push("memos", [{"id": "B1", "text": "b"}])
        bob.pull("memos")
        ann.pull("memos")
        memo = Memo.objects.get(id="B1")
        memo.owner = ann.user  # the admin gives B's memo to A
        memo.save()
        [removal] = bob.pull("memos")
        assert removal["id"] == "B1" and removal["_removed"] is True
        assert [(u["id"], u["text"]) for u in ann.pull("memos")] == [("B1", "b")]
        bob.push("memos", [{"id": "B1", "text": "stale edit"}], expect=403)
        # Moved back (by QuerySet.update this time): B gets it, A loses it.
        Memo.objects.filter(id="B1").update(owner=bob.user)
        assert [(u["id"], u.get("_removed")) for u in bob.pull("memos")] == [("B1", None)]
        assert [(u["id"], u.get("_removed")) for u in ann.pull("memos")] == [("B1", True)]
        assert bob.pull("memos", since=0)[0]["id"] == "B1"  # no removal of it remains for B
        assert ids(bob.pull("memos", since=0), removed=True) == []

    def test_anonymous_requests_are_refused_not_crashed(self):
        anonymous = Client()
        assert anonymous.get("/memos").status_code in (401, 403)
        response = anonymous.post("/memos", '[{"id": "X"}]', content_type="application/json")
        assert response.status_code in (401, 403) and response.json()["status"] == "error"
        assert not Memo.objects.exists()

    def test_anonymous_requests_to_a_shared_scope_are_refused_too(self):
        """A scope= model's values come from the user: an anonymous request has none, and
        is told to log in rather than answered an empty (and misleading) pull."""
        anonymous = Client()
        response = anonymous.get("/boards")
        assert response.status_code in (401, 403) and response.json()["status"] == "error"

    def test_perform_write_sets_server_values(self, ann, users):
        team = Group.objects.create(name="red")
        users[0].groups.add(team)
        ann.push("boards", [{"id": "R1", "team": team.pk, "title": "t"}])
        assert Board.objects.get(id="R1").edited_by == "ann"


@pytest.fixture
def teams(users):
    ann, bob, cid = users
    red, blue = Group.objects.create(name="red"), Group.objects.create(name="blue")
    ann.groups.add(red, blue)
    bob.groups.add(red)
    cid.groups.add(blue)
    return red, blue


class TestTeams:
    def test_each_user_sees_the_boards_of_their_teams(self, ann, bob, cid, teams):
        red, blue = teams
        ann.push("boards", [{"id": "R1", "team": red.pk}, {"id": "U1", "team": blue.pk}])
        assert ids(ann.pull("boards")) == ["R1", "U1"]
        assert ids(bob.pull("boards")) == ["R1"]
        assert ids(cid.pull("boards")) == ["U1"]
        Board.objects.get(id="U1").delete()
        assert ids(bob.pull("boards"), removed=True) == []
        assert ids(cid.pull("boards"), removed=True) == ["U1"]

    def test_pushes_stay_inside_the_requesters_teams(self, ann, bob, teams):
        red, blue = teams
        ann.push("boards", [{"id": "U1", "team": blue.pk}])
        before = snapshot()
        bob.push("boards", [{"id": "B1", "team": blue.pk}], expect=403)
        bob.push("boards", [{"id": "B1"}], expect=403)  # no team: visible to nobody
        # Another team and a team that does not exist: one answer, no probing.
        other = bob.push("boards", [{"id": "B1", "team": blue.pk}], expect=403)
        assert bob.push("boards", [{"id": "B1", "team": 999999}], expect=403) == other
        bob.push("boards", [{"id": "U1", "title": "x"}], expect=403)
        bob.push("boards", [{"id": "R1", "team": red.pk}, {"id": "R2", "team": blue.pk}],
                 expect=403)
        assert snapshot() == before

    def test_a_board_moving_between_teams(self, ann, bob, cid, teams):
        red, blue = teams
        ann.push("boards", [{"id": "R1", "team": red.pk, "title": "t"}])
        for device in (ann, bob, cid):
            device.pull("boards")
        ann.push("boards", [{"id": "R1", "team": blue.pk}])  # ann is in both: allowed
        assert [(u["id"], u.get("_removed")) for u in bob.pull("boards")] == [("R1", True)]
        assert [(u["id"], u["title"]) for u in cid.pull("boards")] == [("R1", "t")]
        assert [(u["id"], u.get("_removed")) for u in ann.pull("boards")] == [("R1", None)]
        bob.push("boards", [{"id": "R1", "title": "stale"}], expect=403)
        bob.push("boards", [{"id": "R1", "_removed": True}])  # a no-op, not refused for ever
        assert Board.objects.get(id="R1").title == "t"

    def test_a_board_edited_after_moving_still_leaves_the_old_teams_devices(self, ann, bob, teams):
        # The edit (the admin's save()) writes the board where it is: the removal
        # from the team it left stays until that team's devices have pulled it.
        red, blue = teams
        ann.push("boards", [{"id": "R1", "team": red.pk, "title": "t"}])
        assert ids(bob.pull("boards")) == ["R1"]
        ann.push("boards", [{"id": "R1", "team": blue.pk}])
        board = Board.objects.get(id="R1")
        board.title = "edited in the admin"
        board.save()
        assert [(u["id"], u.get("_removed")) for u in bob.pull("boards")] == [("R1", True)]

    def test_a_deleted_id_of_another_team_cannot_be_recreated(self, ann, bob, cid, teams):
        red, blue = teams
        cid.push("boards", [{"id": "U1", "team": blue.pk}])
        cid.push("boards", [{"id": "U1", "_removed": True}])
        before = snapshot()
        bob.push("boards", [{"id": "U1", "team": red.pk}], expect=403)
        assert snapshot() == before

    def test_joining_and_leaving_a_team_reach_every_device_whatever_since(self, users, teams):
        ann_user, bob_user, cid_user = users
        red, blue = teams
        ann = Device(ann_user)
        ann.push("boards", [{"id": "R1", "team": red.pk}, {"id": "U1", "team": blue.pk},
                            {"id": "U2", "team": blue.pk}])
        phone, laptop, cid = Device(bob_user), Device(bob_user), Device(cid_user)
        for device in (phone, laptop, cid):
            device.pull("boards")
        assert ids(phone.pull("boards", since=0)) == ["R1"]

        bob_user.groups.add(blue)  # bob joins blue
        assert ids(phone.pull("boards")) == ["U1", "U2"]  # old objects, whatever since
        assert ids(laptop.pull("boards")) == ["U1", "U2"]  # the other device too
        assert phone.pull("boards") == []  # and only once

        bob_user.groups.remove(red)  # bob leaves red
        assert ids(phone.pull("boards"), removed=True) == ["R1"]
        ann.push("boards", [{"id": "R2", "team": red.pk}])  # created after: never named to bob
        Board.objects.filter(id="R1").delete()  # deleted after the revocation: nothing for bob
        assert phone.pull("boards") == []
        assert [(u["id"], u.get("_removed")) for u in laptop.pull("boards")] == [("R1", True)]
        assert ids(laptop.pull("boards", since=0)) == ["U1", "U2"]
        assert cid.pull("boards") == []  # another user: unaffected
        assert ScopeGrant.objects.filter(user=str(bob_user.pk), active=True).count() == 1

    def test_a_board_deleted_in_a_team_the_user_then_leaves_is_still_removed(self, users, teams):
        ann_user, bob_user, _ = users
        red, blue = teams
        ann, bob = Device(ann_user), Device(bob_user)
        ann.push("boards", [{"id": "R1", "team": red.pk}, {"id": "R2", "team": red.pk}])
        bob.pull("boards")
        ann.push("boards", [{"id": "R1", "_removed": True}])
        Board.objects.filter(id="R2").update(team=blue)  # moved away from red
        bob_user.groups.remove(red)
        assert ids(bob.pull("boards"), removed=True) == ["R1", "R2"]

    def test_a_user_who_leaves_a_team_and_rejoins_gets_its_objects_back_on_every_device(
            self, users, teams):
        ann_user, bob_user, _ = users
        red, _ = teams
        Device(ann_user).push("boards", [{"id": "R1", "team": red.pk}, {"id": "R2", "team": red.pk}])
        phone, laptop = Device(bob_user), Device(bob_user)
        phone.pull("boards")
        laptop.pull("boards")
        bob_user.groups.remove(red)
        assert ids(phone.pull("boards"), removed=True) == ["R1", "R2"]  # the phone drops them
        bob_user.groups.add(red)  # and bob is back in red
        assert ids(phone.pull("boards")) == ["R1", "R2"]
        assert phone.pull("boards") == []  # once
        # The laptop, away meanwhile, holds them still: it gets them again, and no removal.
        assert [(u["id"], u.get("_removed")) for u in laptop.pull("boards")] == [
            ("R1", None), ("R2", None)]

    def test_leaving_a_team_names_no_object_of_a_team_the_user_is_not_in(self, users, teams):
        ann_user, bob_user, _ = users
        red, blue = teams  # bob is in red only
        ann = Device(ann_user)
        ann.push("boards", [{"id": "R1", "team": red.pk}, {"id": "U1", "team": blue.pk},
                            {"id": "U2", "team": blue.pk}])
        bob = Device(bob_user)
        bob.pull("boards")
        ann.push("boards", [{"id": "U1", "_removed": True}])  # deleted in blue
        Board.objects.filter(id="U2").update(team=None)  # moved out of blue
        bob_user.groups.remove(red)
        assert [(u["id"], u.get("_removed")) for u in bob.pull("boards")] == [("R1", True)]

    def test_a_device_away_when_the_user_left_a_team_learns_nothing_done_there_since(
            self, users, teams):
        ann_user, bob_user, _ = users
        red, _ = teams
        ann = Device(ann_user)
        ann.push("boards", [{"id": "R1", "team": red.pk}])
        phone, laptop = Device(bob_user), Device(bob_user)
        phone.pull("boards")
        laptop.pull("boards")
        bob_user.groups.remove(red)
        assert ids(phone.pull("boards"), removed=True) == ["R1"]  # the revocation is recorded
        ann.push("boards", [{"id": "R2", "team": red.pk}])
        ann.push("boards", [{"id": "R2", "_removed": True}])  # created and deleted after it
        assert [(u["id"], u.get("_removed")) for u in laptop.pull("boards")] == [("R1", True)]


@pytest.mark.usefixtures("fresh_registry")
def test_the_owner_need_not_be_a_synced_field(ann, bob):
    import persistence_sync

    persistence_sync.unregister(Memo)
    persistence_sync.register(Memo, uri="memos", owner="owner", fields=["text"])
    ann.push("memos", [{"id": "A1", "text": "a"}])
    assert Memo.objects.get(id="A1").owner == ann.user
    assert ann.pull("memos") == [{"id": "A1", "text": "a", "_lastChange": ann.since["memos"]}]
    assert bob.pull("memos") == []


def test_nobody_comments_in_another_account(ann, bob):
    bob.push("memos", [{"id": "B1"}])
    before = snapshot()
    bob.push("comments", [{"id": "C1", "memo": "B1", "owner": ann.user.pk}], expect=403)
    assert snapshot() == before and ann.pull("comments") == []


def test_get_queryset_registrations_follow_the_write_rule_too(sync):
    """testapp.Note is limited by get_queryset (the X-Owner header): no write may leave it."""
    from tests.testapp.models import Note

    def push(owner, items):
        return sync.client.post("/notes", json.dumps(items), content_type="application/json",
                                HTTP_X_OWNER=owner)

    assert push("ann", [{"id": "N1", "owner": "ann"}]).status_code == 200
    assert push("ann", [{"id": "N2", "owner": "bob"}]).status_code == 403  # created hidden
    assert push("ann", [{"id": "N1", "owner": "bob"}]).status_code == 403  # handed over
    assert list(Note.objects.values_list("id", "owner")) == [("N1", "ann")]


class TestStreamedAndPaged:
    """Scoped pulls keep the paging rules: one window, id order, no id twice."""

    def pull_pages(self, device, uri, since, limit=2):
        params, items, pages = {"since": since, "limit": limit}, [], 0
        while True:
            response = device.client.get(f"/{uri}", params, **device.headers)
            assert response.status_code == 200
            body = json.loads(answer_bytes(response))
            if pages == 0:
                total = body["total"]
            items += body["updates"]
            pages += 1
            if not body["more"]:
                # The first page's count: every object and removal the pages held,
                # grants and revocations among them.
                assert total == len(items)
                return items, pages, body["now"]
            params.update(now=body["now"], after=body["updates"][-1]["id"])

    def test_an_object_that_left_several_of_the_requesters_scopes_is_answered_once(
            self, users, teams):
        ann_user, bob_user, cid_user = users
        red, blue = teams
        green = Group.objects.create(name="green")
        ann = Device(ann_user)
        ann.push("boards", [{"id": "R1", "team": red.pk}])
        since = ann.pull("boards") and ann.since["boards"]
        Board.objects.filter(id="R1").update(team=blue)
        Board.objects.filter(id="R1").update(team=green)  # ann is in red and blue, not green
        assert Tombstone.objects.filter(object_id="R1").count() == 2
        [removal] = ann.pull("boards", since=since)
        assert removal["id"] == "R1" and removal["_removed"]
        assert removal["_lastChange"] == max(Tombstone.objects.values_list("last_change", flat=True))
        Board.objects.filter(id="R1").update(team=blue)  # back among ann's: no removal of it
        assert [(u["id"], u.get("_removed")) for u in ann.pull("boards", since=since)] == [
            ("R1", None)]

    def test_a_granted_team_joins_the_paged_window(self, users, teams):
        ann_user, bob_user, _ = users
        red, blue = teams
        ann, bob = Device(ann_user), Device(bob_user)
        ann.push("boards", [{"id": f"U{n}", "team": blue.pk} for n in range(5)])
        ann.push("boards", [{"id": "R1", "team": red.pk}])
        since = bob.pull("boards") and bob.since["boards"]
        ann.push("boards", [{"id": "R0", "team": red.pk}])  # a change of bob's own window
        bob_user.groups.add(blue)
        items, pages, _ = self.pull_pages(bob, "boards", since)
        assert [u["id"] for u in items] == ["R0", "U0", "U1", "U2", "U3", "U4"]
        assert pages == 3

    def test_a_revocation_is_paged_in_id_order_like_every_change(self, users, teams):
        ann_user, bob_user, _ = users
        red, blue = teams
        ann, bob = Device(ann_user), Device(bob_user)
        bob_user.groups.add(blue)
        ann.push("boards", [{"id": f"U{n}", "team": blue.pk} for n in range(4)])
        ann.push("boards", [{"id": "R1", "team": red.pk}, {"id": "R2", "team": red.pk}])
        since = bob.pull("boards") and bob.since["boards"]
        ann.push("boards", [{"id": "R2", "_removed": True}, {"id": "R3", "team": red.pk}])
        bob_user.groups.remove(blue)
        items, pages, now = self.pull_pages(bob, "boards", since)
        assert pages == 3  # limit bounds every answer, revocations included
        assert [(u["id"], bool(u.get("_removed"))) for u in items] == [
            ("R2", True), ("R3", False), ("U0", True), ("U1", True), ("U2", True), ("U3", True)]
        # The next pull holds what changed since.
        ann.push("boards", [{"id": f"R{n}", "team": red.pk} for n in range(4, 9)])
        items, pages, _ = self.pull_pages(bob, "boards", now)
        assert [u["id"] for u in items] == ["R4", "R5", "R6", "R7", "R8"] and pages == 3
