"""Every error this app raises, all under :class:`PersistenceSyncError`.

=====================  ========================================================
RegistrationError      a model cannot be registered as asked (also an
                       ``ImproperlyConfigured``, as Django reports set-up errors)
ClockError             a writer ticked the clock outside a transaction
ProtocolError          a request breaks the wire protocol: a 4xx JSON answer
HistoryPruned          a pull from before the tombstone horizon: 410, resync
WireTypeError          one JSON value does not fit its field (also a ValueError)
SyncClientError        the sync client could not complete a model's sync
TransportError         an HTTP exchange of the sync client failed
ConflictHandlerError   a conflict handler setting or argument is unusable
=====================  ========================================================

:class:`InsecureTransportWarning` (a warning, not an error): the sync client
talks plain http to another machine.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured


class PersistenceSyncError(Exception):
    """Base class of every error raised by persistence_sync."""


class RegistrationError(PersistenceSyncError, ImproperlyConfigured):
    """A model cannot be registered (or unregistered) as asked."""


class ClockError(PersistenceSyncError, RuntimeError):
    """The clock was ticked outside ``transaction.atomic()`` (a programming error)."""


class WireTypeError(PersistenceSyncError, ValueError):
    """A JSON value that does not fit the field."""


class SyncClientError(PersistenceSyncError):
    """The sync client could not complete a model's sync with a remote server."""


class TransportError(SyncClientError):
    """An HTTP exchange with the remote failed; ``transient`` ones are retried.

    ``status`` is the HTTP status of an error answer and ``answer`` its body
    parsed as JSON (None when it was not JSON).
    """

    def __init__(self, message: str, transient: bool = False, status: int | None = None,
                 answer: Any = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.answer = answer


class InsecureTransportWarning(UserWarning):
    """The sync client syncs over plain http with a host that is not this machine."""


class ConflictHandlerError(PersistenceSyncError, ValueError):
    """A conflict handler (setting, ``--conflicts`` or argument) cannot be used."""


class ProtocolError(PersistenceSyncError):
    """A request that breaks the wire protocol; answered with a 4xx JSON error.

    ``errors`` lists the bad items, each a dict with ``index``, ``id``,
    ``field`` and ``message`` where they are known. ``retry_after``: seconds
    a client should wait before retrying, sent as ``Retry-After`` (a 503).
    """

    status_code: int = 400

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None,
                 status_code: int | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])
        if status_code is not None:
            self.status_code = status_code
        self.retry_after = retry_after

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "error", "error": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


class HistoryPruned(ProtocolError):
    """A pull whose ``since`` is older than the tombstones kept: answered 410 Gone.

    Deletions stamped up to ``horizon`` were pruned (``manage.py
    prunetombstones``), so the server can no longer say which of the
    client's objects were deleted since ``since``. The answer (an extension,
    docs/protocol.md "Tombstone retention") tells the client to resync from 0.
    """

    status_code = 410

    def __init__(self, since: int, horizon: int) -> None:
        super().__init__(
            f"since={since} is older than the tombstone horizon {horizon}: deletions up to "
            "it were pruned. Pull again with since=0 and reconcile (a full resync)."
        )
        self.since = since
        self.horizon = horizon

    def as_json(self) -> dict[str, Any]:
        return {**super().as_json(), "horizon": self.horizon, "resync": True}


# The message of every refused push: the 4xx answer says nothing was stored.
PUSH_REFUSED = "The push was refused; nothing was stored."
