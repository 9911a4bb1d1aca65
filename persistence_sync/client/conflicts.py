"""Conflict handlers: what ``syncall`` does when both sides changed one property.

A conflict is an object pulled from the remote that also changed locally since
the last sync, whose values differ from the local ones in some properties, and
that is not the echo of our own last push. The contract is the classic
persistence.js one, ``handler(conflicts, updates_to_push)``:

* ``conflicts``: a list of :class:`Conflict` (the local object, the remote
  values as received, the names of the conflicting properties);
* ``updates_to_push``: the list of wire dicts (``{"id": ..., "name": ...}``)
  about to be pushed. A handler may append to it (the remote then takes those
  values) and may change the local objects (the replica then keeps them).

The client saves what the handler left in the local objects and makes sure
the remote ends up with the same values: a property the handler changed
locally but did not push is pushed for it. Usage::

    def longest_name(conflicts, updates_to_push):
        for conflict in conflicts:
            if len(conflict.remote_value("name")) > len(conflict.local.name):
                conflict.take_remote(["name"])
            else:
                updates_to_push.append(conflict.local_update(["name"]))

    # settings.py: PERSISTENCE_SYNC = {"CONFLICT_HANDLER": "myapp.sync.longest_name"}
    # or: manage.py syncall --conflicts myapp.sync.longest_name
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Model
from django.utils.module_loading import import_string

from persistence_sync.exceptions import ConflictHandlerError
from persistence_sync.serializers import ID

if TYPE_CHECKING:
    from persistence_sync.registry import Registration


@dataclass
class Conflict:
    """One object changed on both sides; ``properties`` are the wire names that differ."""

    local: Model  # the local model instance; a handler may change its fields
    remote: dict[str, Any]  # the remote item exactly as pulled (wire names and values)
    properties: list[str]
    registration: Registration = field(repr=False)

    @property
    def id(self):
        return self.local.pk

    def _codec(self, name):
        for codec in self.registration.codecs:
            if codec.name == name:
                return codec
        raise KeyError(f"{self.registration.label} has no synced property {name!r}")

    def local_value(self, name):
        """The local value of property ``name``, as it travels on the wire."""
        codec = self._codec(name)
        value = getattr(self.local, codec.attname)
        return codec.wire(value)

    def remote_value(self, name):
        """The remote value of property ``name``, as a Python value for the field."""
        return self._codec(name).from_wire(self.remote.get(name))

    def take_remote(self, names=None):
        """Give the local object the remote values of ``names`` (default: all conflicting)."""
        for name in self.properties if names is None else names:
            setattr(self.local, self._codec(name).attname, self.remote_value(name))

    def local_update(self, names=None):
        """A push item carrying the local values of ``names`` (default: all conflicting)."""
        update = {ID: self.local.pk}
        for name in self.properties if names is None else names:
            update[name] = self.local_value(name)
        return update


def prefer_local(conflicts, updates_to_push):
    """Keep the local values and push them (persistence.js's ``preferLocalConflictHandler``)."""
    for conflict in conflicts:
        updates_to_push.append(conflict.local_update())


def prefer_remote(conflicts, updates_to_push):
    """Take the remote values (persistence.js's ``preferRemoteConflictHandler``)."""
    for conflict in conflicts:
        conflict.take_remote()


# Names accepted by --conflicts and PERSISTENCE_SYNC["CONFLICT_HANDLER"].
STOCK_HANDLERS = {
    "prefer-local": prefer_local,
    "prefer_local": prefer_local,
    "prefer-remote": prefer_remote,
    "prefer_remote": prefer_remote,
}


def get_conflict_handler(handler, source="PERSISTENCE_SYNC['CONFLICT_HANDLER']"):
    """A callable from a stock name, a dotted path or a callable.

    ``source`` names where the value came from, for the error message.
    """
    if callable(handler):
        return handler
    if not isinstance(handler, str) or not handler:
        raise ConflictHandlerError(f"{source} must be 'prefer-local', 'prefer-remote' or a dotted path.")
    if handler in STOCK_HANDLERS:
        return STOCK_HANDLERS[handler]
    try:
        found = import_string(handler)
    except ImportError as exc:
        raise ConflictHandlerError(
            f"{source}: cannot import conflict handler {handler!r} ({exc}); use "
            "'prefer-local', 'prefer-remote' or the dotted path of a callable."
        ) from exc
    if not callable(found):
        raise ConflictHandlerError(f"{source}: {handler!r} is not callable.")
    return found
