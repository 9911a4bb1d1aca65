"""Signals sent by the sync endpoints, for audit logs, notifications, cache invalidation.

Every signal's ``sender`` is the synced model class; every receiver gets
``request`` (DRF's request: ``request.user`` is who synced) and
``registration`` (:class:`~persistence_sync.registry.Registration`)::

    from django.dispatch import receiver
    from persistence_sync.signals import post_push

    @receiver(post_push, sender=Task)
    def audit(sender, request, changes, stamp, **kwargs):
        for object_id, change in changes.items():
            AuditEntry.objects.create(user=request.user, object_id=object_id,
                                      removed=change.removed, stamp=stamp)

``pre_push(sender, request, registration, changes)``
    Before a push is stored. ``changes`` maps each pushed id to a
    :class:`~persistence_sync.serializers.Change` (``removed``, ``values``:
    the fields sent, by attname, as Python values; ``index``: its position
    in the pushed array). A receiver may raise
    :class:`~persistence_sync.exceptions.ProtocolError` to refuse the push
    with a 4xx JSON answer; nothing is stored then.

``post_push(sender, request, registration, changes, stamp)``
    After the push's transaction committed (``transaction.on_commit``), with
    the ``_lastChange`` stamp every stored change carries. Not sent when
    the push failed. Receivers run robustly: an error is logged (logger
    ``persistence_sync.signals``) and the client still gets its 200.

``post_pull(sender, request, registration, since, now, count)``
    After a pull's whole answer was produced: ``since`` as asked, the
    answer's ``now`` and ``count``, the number of items it held (objects
    and ``_removed`` ones). The items themselves are not kept: a large pull
    is streamed, never held in memory. A streamed answer whose client went
    away before its end sends nothing. Receivers run robustly, as for
    ``post_push``.

Neither push signal is sent for an empty push (the classic client posts
``[]`` on every sync). Writes made by the site's own code (``save()``, the
admin) send Django's model signals, not these.
"""

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

pre_push = Signal()
post_push = Signal()
post_pull = Signal()


def send_robust(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal``; log (never raise) a receiver's error: the sync already happened."""
    for receiver, response in signal.send_robust(**kwargs):
        if isinstance(response, Exception):
            logger.error(
                "persistence_sync: %r receiver for %s failed",
                receiver, kwargs["sender"]._meta.label, exc_info=response,
            )
