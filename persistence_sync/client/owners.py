"""Replicas own their data: the local user who owns what ``syncall`` pulls for ``owner=`` models.

A model registered with ``owner="owner"`` holds each user's own objects,
and a remote answers a sync only with the objects of the account it signs in
as. A user id means nothing outside its database, so the replica never
writes the remote's: every object it pulls for such a model belongs to one
*local* user, by default the local user with the remote account's username,
or the one named by ``syncall --as-user USERNAME`` (``sync_all(local_user=...)``).

The remote names its account in every paged answer (``"user"``,
docs/protocol.md "Extensions", "Signed-in user"). :class:`Owners` learns it
once per run, from the first answer of the first ``owner=`` model, before
anything is written: such groups are synced first, and when another model
comes before the first ``owner=`` one in its group, a one-item page of that
model asks first (:meth:`Owners.probe`). A missing local user stops the run
with a message saying which and how to fix it, and nothing is written::

    owners = Owners(local_user=None, using="default")
    owner = owners.learn(registration, answer)   # LocalOwner(pk=..., username="ann")

The replica then syncs that user's objects only (:meth:`LocalOwner.filter`):
their local changes are pushed, without the owner, which the remote sets to
its account; another local user's objects are neither pushed nor touched;
and an object given here to another local user leaves the remote account as
a deletion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model

from persistence_sync.client import resync
from persistence_sync.exceptions import SyncClientError

NOTHING_WRITTEN = "Nothing was written."


@dataclass(frozen=True)
class LocalOwner:
    """The local user whose objects a run syncs for ``owner=`` models."""

    pk: Any
    username: str

    @property
    def scope_key(self) -> str:
        """The user as the tombstones of their objects store it (their scope)."""
        return str(self.pk)

    def filter(self, registration, queryset):
        """``queryset`` limited to this user's objects when ``registration`` has ``owner=``."""
        if not registration.owner:
            return queryset
        return queryset.filter(**{registration.scope_attname: self.pk})


class Owners:
    """The local owner of one run's ``owner=`` models: given, or learnt from the remote.

    ``local_user``: a username or a user instance (``--as-user``), checked at
    once; None: the local user with the remote account's username. ``labels``:
    of the ``owner=`` models synced, for messages.
    ``failure``: the error that stopped the run, once one did (every later
    group fails with it, unwritten).
    """

    def __init__(self, local_user=None, using=None, labels=()):
        self.using = using
        self.owner: LocalOwner | None = None
        self.remote_username: str | None = None  # as the remote named it
        self.failure: SyncClientError | None = None
        if local_user is None:
            return
        if not isinstance(local_user, str):
            self.owner = LocalOwner(local_user.pk, local_user.get_username())
            return
        user = self._user(local_user)
        if user is None:  # the run stops before it starts (sync_all reads failure)
            self.failure = SyncClientError(
                f"No local user {local_user!r} to own what is pulled for "
                f"{', '.join(labels) or 'owner= models'} (--as-user): create that user here, "
                f"or name another. {NOTHING_WRITTEN}")
            return
        self.owner = LocalOwner(user.pk, user.get_username())

    def fail(self, text: str):
        self.failure = SyncClientError(text)
        raise self.failure

    def needs_probe(self, runs) -> bool:
        """Whether a group must ask for the owner first: one of its models comes before
        its first ``owner=`` model, and could write pages before the owner is known."""
        return (self.owner is None and any(run.registration.owner for run in runs)
                and not runs[0].registration.owner)

    def probe(self, run, transport) -> LocalOwner:
        """Learn the owner from a one-item page of ``run``'s model (an ``owner=`` one)."""
        answer, _ = resync.pull(transport, run.url, run.state.server_date, limit=1)
        return self.learn(run.registration, answer)

    def learn(self, registration, answer) -> LocalOwner:
        """The local owner, learnt from ``answer`` (a pull's, of ``registration``) if need be."""
        username = answer.get("user")
        if self.owner is not None and (self.remote_username is None or username is None
                                       or username == self.remote_username):
            return self.owner
        if self.owner is not None:
            self.fail(f"The remote syncs {registration.label} as {username!r} but other models "
                      f"as {self.remote_username!r}: one run syncs one account's objects. "
                      f"{NOTHING_WRITTEN}")
        if not username:
            self.fail(f"The remote does not say which account it syncs {registration.label} as "
                      "(it does not send the \"user\" of docs/protocol.md's extensions, or the "
                      "request is anonymous): name the local user who owns what it sends "
                      f"(syncall --as-user USERNAME). {NOTHING_WRITTEN}")
        user = self._user(username)
        if user is None:
            self.fail(f"No local user {username!r}: the remote syncs as {username!r}, and what "
                      f"it sends for {registration.label} belongs to that user here. Create "
                      f"the user {username!r} here (manage.py createsuperuser, or the admin), "
                      f"or name another local user (syncall --as-user USERNAME). "
                      f"{NOTHING_WRITTEN}")
        self.owner, self.remote_username = LocalOwner(user.pk, user.get_username()), username
        return self.owner

    def _user(self, username):
        model = get_user_model()
        return model._default_manager.db_manager(self.using).filter(
            **{model.USERNAME_FIELD: username}).first()
