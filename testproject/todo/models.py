"""The to-do models of persistence.js's documentation, per user, synced at the site's root.

Each project, task and tag belongs to a user (``owner``): registered with
``owner="owner"``, a user pulls and pushes only their own, new objects
pushed by a device get ``owner=request.user``, and an admin moving an
object to another user removes it from the first user's devices.

None of them carries its owner on the wire (``exclude=["owner"]``): every
object of a user's sync is that user's, so the field would tell a device
nothing but a user id of this database, which means nothing on a device or
on a replica made by ``syncall`` (it gives what it pulls to its own local
user, see ``persistence_sync.client.owners``), and the server sets it on
every push anyway.
"""

from django.conf import settings
from django.db import models

import persistence_sync
from persistence_sync.models import SyncableModel

# The example site's demo account, made by migration todo.0003 (docs/index.md,
# "Try the example site"); objects created by site code without an owner (the
# shell, fixtures) belong to it.
DEMO_USERNAME = "demo"


# The demo user's id, once read. A default is computed for every object made
# without an owner, a sync's pulled tasks included: a query each would be most
# of a large first sync's time. Remembered only when found (a user created
# here may yet be rolled back), and forgotten whenever the database is
# migrated or flushed (post_migrate, see apps.py).
_demo_owner: list[int] = []


def demo_owner():
    """The demo user's id: the default owner of objects made without one."""
    from django.contrib.auth import get_user_model

    if _demo_owner:
        return _demo_owner[0]
    user, created = get_user_model()._default_manager.get_or_create(username=DEMO_USERNAME)
    if not created:
        _demo_owner.append(user.pk)
    return user.pk


def forget_demo_owner(**kwargs):
    _demo_owner.clear()


class Owned(SyncableModel):
    """A user's object. The index on (owner, id) serves a user's paged pulls:
    their rows in id order, read from where the last page ended, with no sort;
    the one on (owner, last_change) a user's polls: what changed since the
    last pull, whatever the number of rows (docs/deployment.md, "Indexes").
    They serve lookups by owner too, so the foreign key has no index of its own."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              default=demo_owner, related_name="+", db_index=False)

    class Meta:
        abstract = True
        indexes = [models.Index(fields=["owner", "id"], name="%(app_label)s_%(class)s_owner_id"),
                   models.Index(fields=["owner", "last_change"],
                                name="%(app_label)s_%(class)s_owner_stamp")]


@persistence_sync.register(uri="projectUpdates", owner="owner", exclude=["owner"])
class Project(Owned):
    name = models.CharField(max_length=200)

    def __str__(self):
        return self.name


@persistence_sync.register(uri="tagUpdates", owner="owner", exclude=["owner"])
class Tag(Owned):
    name = models.CharField(max_length=200)

    def __str__(self):
        return self.name


@persistence_sync.register(uri="taskUpdates", owner="owner", exclude=["owner"])
class Task(Owned):
    """A to-do item: one field of each wire type (string, boolean, relation,
    date-time, integer, float, JSON)."""

    name = models.CharField(max_length=200)
    done = models.BooleanField(default=False)
    # Only a project of the same user: the write rule checks pushed foreign
    # keys against the target's registration (its owner).
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
