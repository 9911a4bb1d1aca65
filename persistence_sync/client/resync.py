"""The sync client's full resync, after the remote pruned deletions it had not pulled.

A server that prunes old tombstones (``manage.py prunetombstones``) answers a
pull whose ``since`` is older than its horizon with 410 and ``"resync":
true`` (docs/protocol.md, "Tombstone retention"): it can no longer say which
objects were deleted since then. The client then:

1. pulls ``since=0`` (always answerable: every live object, and the
   deletions still recorded) -- :func:`pull`;
2. sets aside the pulled objects stamped at or before its last pull's
   ``now``: it has seen those values already, so they are neither remote
   changes nor conflicts with its own -- :func:`unseen`;
3. decides as usual on the rest, so its own unsynced changes and deletions
   are kept and pushed, remote changes taken, conflicts handed to the
   conflict handler;
4. deletes the local objects that the full answer lacks and that were not
   changed here since the last sync -- :func:`reconcile`: the remote deleted
   them and the record of it is gone.

An object changed here while the remote deleted it (and pruned the
deletion) cannot be told from one created here: it is kept and pushed, so it
comes back on the remote with the local values. A retention period longer
than any replica stays offline avoids that case.

:class:`persistence_sync.client.Sync` calls it in two places: ``pull_model``
(:func:`pull`) and ``decide`` (:func:`unseen` before the planner,
:func:`reconcile` after it).
"""

from persistence_sync.exceptions import TransportError


def resync_required(exc):
    """Whether ``exc`` is the remote's "your since is older than my horizon" answer."""
    return (
        isinstance(exc, TransportError)
        and exc.status == 410
        and isinstance(exc.answer, dict)
        and exc.answer.get("resync") is True
    )


def pull(transport, url, since, limit=None, now=None, after=None):
    """``(answer, resyncing)``: the pull (page) from ``since``, or from 0 when the remote asks.

    After a 410 the pull starts again from 0, from its first page.
    """
    try:
        return transport.pull(url, since, limit=limit, now=now, after=after), False
    except TransportError as exc:
        if not since or not resync_required(exc):
            raise
    return transport.pull(url, 0, limit=limit), True


def unseen(remote, last_pull_now):
    """``(items to decide on, every id the remote has)`` from a full pull's items by id.

    Pulls answer every change stamped up to their ``now``, so an item stamped
    at or before ``last_pull_now`` was already pulled: taking it as a remote
    change would make a conflict of every object changed here since.
    """
    present = set(remote)
    changed = {
        pk: item for pk, item in remote.items()
        if item.removed or item.stamp is None or item.stamp > last_pull_now
    }
    return changed, present


def reconcile(registration, present, local, plan, result, using, owner=None):
    """Add to ``plan`` the deletion of local objects a full pull no longer has.

    ``present``: the ids of the full pull; ``local``: the snapshot of local
    changes (objects changed here since the last sync are kept and pushed).
    Objects written after the snapshot (stamped above ``local.now``) are left
    for the next run, and the usual re-check before writing skips any object
    that changed meanwhile. ``owner``: the run's
    :class:`~persistence_sync.client.owners.LocalOwner`; another local user's
    objects of an ``owner=`` model are not the remote account's to delete.
    """
    base = registration.model._base_manager.db_manager(using).all()
    if owner is not None:
        base = owner.filter(registration, base)
    for pk, stamp in base.filter(last_change__lte=local.now).values_list("pk", "last_change").iterator():
        if pk not in present and pk not in local.changed:
            plan.deletes[pk] = stamp
    result.resynced = True
