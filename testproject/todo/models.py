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


@persistence_sync.register(uri="taskUpdates", fields=["name", "done", "project"])
class Task(SyncableModel):
    name = models.CharField(max_length=200)
    done = models.BooleanField(default=False)
    project = models.ForeignKey(
        Project, null=True, blank=True, related_name="tasks", on_delete=models.CASCADE
    )
    # Many-to-many relations are not synced by the protocol; the admin edits them.
    tags = models.ManyToManyField(Tag, blank=True, related_name="tasks")

    def __str__(self):
        return self.name
