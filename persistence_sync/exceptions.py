"""The errors this app raises: one base class and a few named kinds."""

from django.core.exceptions import ImproperlyConfigured


class PersistenceSyncError(Exception):
    """Base class of every error raised by persistence_sync."""


class RegistrationError(PersistenceSyncError, ImproperlyConfigured):
    """A model cannot be registered (or unregistered) as asked."""


class SyncClientError(PersistenceSyncError):
    """The sync client could not complete a model's sync with a remote server."""


class ProtocolError(PersistenceSyncError):
    """A request that breaks the wire protocol; answered with a 4xx JSON error.

    ``errors`` lists the bad items, each a dict with ``index``, ``id``,
    ``field`` and ``message`` where they are known.
    """

    status_code = 400

    def __init__(self, message, errors=None, status_code=None):
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])
        if status_code is not None:
            self.status_code = status_code

    def as_json(self):
        body = {"status": "error", "error": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body
