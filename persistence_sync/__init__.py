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

``register``, ``unregister``, ``is_registered``, ``get_registration`` and
``registrations`` are the methods of :data:`persistence_sync.registry.default`
(see :class:`~persistence_sync.registry.SyncRegistry`), so ``help()`` shows
their options. The package root stays light: it imports nothing that loads
models or views, so ``import persistence_sync`` is safe while Django is still
starting; the registry is imported on first use of one of these names.
"""

from typing import TYPE_CHECKING, Any

from persistence_sync.exceptions import (
    PersistenceSyncError,
    RegistrationError,
    SyncClientError,
)

# PEP 440: between releases, the next version with ``.devN`` (CHANGELOG.md's
# "Unreleased" section); the release commit drops the suffix and dates the section.
__version__ = "0.2.0.dev0"

_REGISTRY_VERBS = ("get_registration", "is_registered", "register", "registrations", "unregister")

__all__ = [
    "PersistenceSyncError",
    "RegistrationError",
    "SyncClientError",
    *_REGISTRY_VERBS,
]

if TYPE_CHECKING:
    from persistence_sync.registry import default as _default

    get_registration = _default.get_registration
    is_registered = _default.is_registered
    register = _default.register
    registrations = _default.registrations
    unregister = _default.unregister


def __getattr__(name: str) -> Any:
    if name in _REGISTRY_VERBS:
        from persistence_sync import registry

        # Looked up on each use rather than cached here, so that a registry
        # swapped in for a test (tests/conftest.py's fresh_registry) is the one used.
        return getattr(registry.default, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_REGISTRY_VERBS})
