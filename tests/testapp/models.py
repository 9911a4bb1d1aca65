"""Models used only by the tests (tables made by migrations/0001_initial.py, because Memo and
Comment link to the user model and PostgreSQL needs auth_user to exist first)."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

import persistence_sync
from persistence_sync.models import SyncableModel


class Gadget(SyncableModel):
    """One field of each type the wire mapping knows."""

    name = models.CharField(max_length=20)
    count = models.IntegerField(default=0)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    ratio = models.FloatField(null=True)
    active = models.BooleanField(default=True)
    due = models.DateTimeField(null=True)
    day = models.DateField(null=True)
    data = models.JSONField(null=True)
    size = models.CharField(max_length=1, choices=[("S", "small"), ("L", "large")], default="S")
    secret = models.CharField(max_length=20, default="hidden")  # never synced


class Node(SyncableModel):
    """A tree: a relation to its own model."""

    label = models.CharField(max_length=20)
    parent = models.ForeignKey("self", null=True, on_delete=models.CASCADE)


class Note(SyncableModel):
    """Visible only to its owner (the X-Owner header, for the tests)."""

    owner = models.CharField(max_length=20)
    text = models.TextField(blank=True)
    gadget = models.ForeignKey(Gadget, null=True, blank=True, on_delete=models.SET_NULL)


class Plain(models.Model):
    """Not syncable."""

    name = models.CharField(max_length=20)


def notes_of_owner(request):
    return Note.objects.filter(owner=request.headers.get("X-Owner", ""))


persistence_sync.register(Gadget, uri="gadgets", exclude=["secret"])
persistence_sync.register(Node, uri="nodes")
persistence_sync.register(Note, uri="notes", get_queryset=notes_of_owner)


# --- multi-user models (tests/test_scoping.py) ---

class Memo(SyncableModel):
    """Belongs to one user: registered with owner="owner"."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField(blank=True)
    reviewed = models.BooleanField(default=False)  # read-only for clients

    class Meta:
        indexes = [models.Index(fields=["owner", "id"], name="memo_owner_id"),  # check W004
                   models.Index(fields=["owner", "last_change"], name="memo_owner_stamp")]


class Comment(SyncableModel):
    """Belongs to one user and hangs on a memo (of the same user, by the write rule)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    memo = models.ForeignKey(Memo, null=True, on_delete=models.CASCADE)
    text = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "id"], name="comment_owner_id"),
                   models.Index(fields=["owner", "last_change"], name="comment_owner_stamp")]


class Board(SyncableModel):
    """Shared by a team (an auth Group): registered with scope="team"."""

    team = models.ForeignKey(Group, null=True, on_delete=models.CASCADE)
    title = models.CharField(max_length=50, blank=True)
    edited_by = models.CharField(max_length=150, blank=True)  # set by perform_write

    class Meta:
        indexes = [models.Index(fields=["team", "id"], name="board_team_id"),
                   models.Index(fields=["team", "last_change"], name="board_team_stamp")]


def teams_of(request):
    return request.user.groups.all()


def record_editor(request, objs):
    for obj in objs:
        obj.edited_by = request.user.get_username()


persistence_sync.register(Memo, uri="memos", owner="owner", read_only_fields=["reviewed"])
persistence_sync.register(Comment, uri="comments", owner="owner")
persistence_sync.register(Board, uri="boards", scope="team", scope_values=teams_of,
                          fields=["team", "title"], perform_write=record_editor)


class Part(models.Model):
    """Holds on to its gadget (on_delete=PROTECT): deleting the gadget is refused."""

    gadget = models.ForeignKey(Gadget, on_delete=models.PROTECT)
