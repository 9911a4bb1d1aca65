"""System checks: every id this app reports, with its message and hint, in one table.

=========================  ====================================================
persistence_sync.E001      a registered model is not a SyncableModel
persistence_sync.E002      two models registered on one URI
persistence_sync.E003      a synced (or excluded) field name does not exist
persistence_sync.E004      a synced field the protocol cannot carry
persistence_sync.E005      a model registered by label is not installed
persistence_sync.E006      a registered model is abstract
persistence_sync.E007      a model registered twice (by label and by class, say)
persistence_sync.E008      a registration whose URI is empty
persistence_sync.E009      the PERSISTENCE_SYNC setting is not a dict
persistence_sync.E010      PERSISTENCE_SYNC has a key this app does not know
persistence_sync.E011      a registration with both owner= and scope=
persistence_sync.E012      owner= or scope= names a field the model does not have
persistence_sync.E013      owner= or scope= names a field that cannot hold a scope
persistence_sync.E014      owner= names a field that is not a ForeignKey to the user model
persistence_sync.E015      scope= without scope_values=
persistence_sync.E016      scope_values= without scope=
persistence_sync.E017      a read_only_fields= name that is not synced
persistence_sync.W001      a registered model's default manager bypasses the clock
persistence_sync.W002      a registered model is reachable by anonymous requests
persistence_sync.W003      a model with a foreign key to the user model is synced unscoped
persistence_sync.W004      an owner= or scope= model without an index on (that field, id)
=========================  ====================================================

W002 and W003 carry the tag too but are not deployment checks: ``manage.py
check`` and ``manage.py check --deploy`` both report them.

The checks carry the tag ``"persistence_sync"`` (:data:`TAG`): ``manage.py
check --tag persistence_sync`` runs only them, and ``manage.py syncall``
requires them, so it refuses to run while one reports an error. The app's
``ready()`` registers :func:`check_settings` and
:func:`persistence_sync.registry.check_registrations`; the registry builds its
messages from :data:`CHECKS` with :func:`message`, and a registration made by
class is refused at the ``register()`` call with the same words.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning

from persistence_sync.conf import DEFAULTS

if TYPE_CHECKING:
    from django.apps.config import AppConfig

TAG = "persistence_sync"


@dataclass(frozen=True)
class CheckDefinition:
    """What one id means: its level and its message and hint, as format strings."""

    level: Callable[..., CheckMessage]  # Error or Warning
    msg: str
    hint: str


CHECKS: dict[str, CheckDefinition] = {
    "persistence_sync.E001": CheckDefinition(
        Error, "{model} is registered for sync but is not a SyncableModel.",
        "Make {model} inherit from persistence_sync.models.SyncableModel.",
    ),
    "persistence_sync.E002": CheckDefinition(
        Error, "{model} and {other} are both registered on the URI {uri!r} (the first at {where}).",
        "Give {model} its own uri=... in register().",
    ),
    "persistence_sync.E003": CheckDefinition(
        Error, "{model} has no field {field!r} to sync.",
        "Choose among: {valid}.",
    ),
    "persistence_sync.E004": CheckDefinition(
        Error, "{model}.{field} cannot be synced: {reason}.",
        "Remove {field!r} from fields=; choose among: {valid}.",
    ),
    "persistence_sync.E005": CheckDefinition(
        Error, "{label!r} (registered for sync at {where}) is not an installed model.",
        "Use 'app_label.ModelName' of a model in INSTALLED_APPS.",
    ),
    "persistence_sync.E006": CheckDefinition(
        Error, "{model} is abstract and cannot be registered for sync.",
        "Register its concrete subclasses instead.",
    ),
    "persistence_sync.E007": CheckDefinition(
        Error, "{model} is already registered for sync (at {where}).",
        "Register it once; to change its options, unregister() it first.",
    ),
    "persistence_sync.E008": CheckDefinition(
        Error, "{model} is registered for sync on an empty URI ({uri!r}).",
        "Give register() a uri= that names a path, or leave it out for {default!r}.",
    ),
    "persistence_sync.E009": CheckDefinition(
        Error, "The PERSISTENCE_SYNC setting is a {type}, not a dict.",
        "Set PERSISTENCE_SYNC = {{...}} with keys among: {valid}.",
    ),
    "persistence_sync.E010": CheckDefinition(
        Error, "PERSISTENCE_SYNC has the unknown key {key!r}; it is ignored.",
        "{suggestion}Valid keys: {valid}.",
    ),
    "persistence_sync.E011": CheckDefinition(
        Error, "{model} is registered with both owner= and scope=.",
        "owner='field' is scope='field' limited to request.user; pick one.",
    ),
    "persistence_sync.E012": CheckDefinition(
        Error, "{model} has no field {field!r} for {option}=.",
        "Name a concrete field of {model}.",
    ),
    "persistence_sync.E013": CheckDefinition(
        Error, "{model}.{field} cannot be the {option}: it must be a concrete, single-valued "
        "field that is not the primary key.",
        "Use a ForeignKey or a plain field of the model itself.",
    ),
    "persistence_sync.E014": CheckDefinition(
        Error, "{model}.{field} cannot be the owner: it is not a ForeignKey to the user model.",
        "Use scope=... with scope_values=... for other fields.",
    ),
    "persistence_sync.E015": CheckDefinition(
        Error, "{model} is registered with scope={scope!r} but no scope_values.",
        "Pass scope_values=lambda request: [...] (the values the request may see).",
    ),
    "persistence_sync.E016": CheckDefinition(
        Error, "{model} is registered with scope_values= but no scope=.",
        "Name the field the values are compared with: scope='team'.",
    ),
    "persistence_sync.E017": CheckDefinition(
        Error, "{model}.{field} is in read_only_fields but not synced.",
        "Choose among the synced fields: {synced}.",
    ),
    "persistence_sync.W001": CheckDefinition(
        CheckWarning,
        "{model}'s default manager returns a {queryset}, "
        "so QuerySet.update(), bulk_create() and deletes bypass the sync clock.",
        "Build the manager on persistence_sync.models.SyncableQuerySet "
        "(e.g. SyncableQuerySet.as_manager()).",
    ),
    "persistence_sync.W002": CheckDefinition(
        CheckWarning,
        "{model} is synced at /{uri} to anonymous requests: its permission classes "
        "let a request without a user pull (or push).",
        "Pass permission_classes=[IsAuthenticated] to register() (or set DRF's "
        "DEFAULT_PERMISSION_CLASSES), or owner=/scope= which refuse anonymous requests.",
    ),
    "persistence_sync.W003": CheckDefinition(
        CheckWarning,
        "{model} has a foreign key to the user model ({fields}) but is synced unscoped: "
        "every request reads and writes every user's objects.",
        "register({class_name}, owner={field!r}) limits each user to their own objects "
        "(or use scope=/get_queryset=).",
    ),
    "persistence_sync.W004": CheckDefinition(
        CheckWarning,
        "{model} is synced by {field!r} but has no index on ({field}, {pk}): each page of a "
        "pull then sorts all of a user's remaining objects, work that grows with them.",
        "Add models.Index(fields=[{field!r}, {pk!r}], name=...) to {class_name}.Meta.indexes "
        "(it also serves lookups by {field}, so the field needs no index of its own).",
    ),
}


def message(check_id: str, obj: Any = None, **params: Any) -> CheckMessage:
    """The message ``check_id`` reports, its text filled in from ``params``."""
    definition = CHECKS[check_id]
    return definition.level(
        definition.msg.format(**params), hint=definition.hint.format(**params),
        obj=obj, id=check_id,
    )


def check_settings(app_configs: Iterable[AppConfig] | None = None,
                   **kwargs: Any) -> list[CheckMessage]:
    """PERSISTENCE_SYNC is a dict of known keys (a misspelt key would be silently ignored)."""
    user = getattr(settings, "PERSISTENCE_SYNC", None)
    valid = ", ".join(DEFAULTS)
    if user is None:
        return []
    if not isinstance(user, dict):
        return [message("persistence_sync.E009", type=type(user).__name__, valid=valid)]
    errors = []
    for key in user:
        if key in DEFAULTS:
            continue
        close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
        suggestion = f"Did you mean {close[0]!r}? " if close else ""
        errors.append(message("persistence_sync.E010", key=key, suggestion=suggestion,
                              valid=valid))
    return errors
