"""Offline-first sync for Django models over persistence.js's sync protocol.

Mix :class:`persistence_sync.models.SyncableModel` into a model, register it
and include the URLs::

    import persistence_sync
    from persistence_sync.models import SyncableModel

    @persistence_sync.register(uri="taskChanges")
    class Task(SyncableModel):
        name = models.CharField(max_length=200)

    # urls.py
    urlpatterns = [path("", include("persistence_sync.urls"))]

The package root stays light: it imports nothing that loads models or views,
so ``import persistence_sync`` is safe while Django is still starting.
"""

from persistence_sync.exceptions import (
    PersistenceSyncError,
    RegistrationError,
    SyncClientError,
)

__version__ = "0.1.0"

__all__ = [
    "PersistenceSyncError",
    "RegistrationError",
    "SyncClientError",
    "get_registration",
    "is_registered",
    "register",
    "registrations",
    "unregister",
]


def register(model=None, **options):
    """Register a SyncableModel for sync; usable as ``@register(...)`` or a call.

    See :func:`persistence_sync.registry.register` for the options.
    """
    from persistence_sync import registry

    return registry.register(model, **options)


def unregister(model):
    """Stop syncing ``model``; its endpoint disappears from the URLs."""
    from persistence_sync import registry

    registry.unregister(model)


def is_registered(model):
    """Whether ``model`` (a class or an ``"app_label.Model"`` label) is registered."""
    from persistence_sync import registry

    return registry.is_registered(model)


def get_registration(model):
    """The :class:`~persistence_sync.registry.Registration` of ``model``."""
    from persistence_sync import registry

    return registry.get_registration(model)


def registrations():
    """Every registration, parents before children."""
    from persistence_sync import registry

    return registry.registrations()
