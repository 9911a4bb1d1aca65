"""The to-do models of persistence.js's documentation, synced at the site's root."""

from django.db import models

import persistence_sync
from persistence_sync.models import SyncableModel


@persistence_sync.register(uri="projectUpdates")
class Project(SyncableModel):
    name = models.CharField(max_length=200)

    def __str__(self):
        return self.name


@persistence_sync.register(uri="tagUpdates")
class Tag(SyncableModel):
    name = models.CharField(max_length=200)

    def __str__(self):
        return self.name


@persistence_sync.register(
    uri="taskUpdates",
    fields=["name", "done", "project", "due", "priority", "estimate", "notes"],
)
class Task(SyncableModel):
    """A to-do item: one field of each wire type (string, boolean, relation,
    date-time, integer, float, JSON)."""

    name = models.CharField(max_length=200)
    done = models.BooleanField(default=False)
    project = models.ForeignKey(
        Project, null=True, blank=True, related_name="tasks", on_delete=models.CASCADE
    )
    due = models.DateTimeField(null=True, blank=True)
    priority = models.IntegerField(default=0, help_text="Higher comes first.")
    estimate = models.FloatField(null=True, blank=True, help_text="Hours of work expected.")
    # null by default, not {}: the classic client compares values with !==,
    # so an object (even {}) always differs from its local copy.
    notes = models.JSONField(
        null=True, blank=True, help_text='Free-form, e.g. {"labels": ["home"], "text": "..."}.'
    )
    # Many-to-many relations are not synced by the protocol; the admin edits them.
    tags = models.ManyToManyField(Tag, blank=True, related_name="tasks")

    def __str__(self):
        return self.name
