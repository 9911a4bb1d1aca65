"""Models used only by the tests (tables made without migrations)."""

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
