"""System checks for what can be caught at start-up.

=========================  ====================================================
persistence_sync.E001      a registered model is not a (concrete) SyncableModel
persistence_sync.E002      two registrations on one URI
persistence_sync.E003      a synced (or excluded) field name does not exist
persistence_sync.E004      a synced field the protocol cannot carry
persistence_sync.E005      a model registered by label is not installed
persistence_sync.E006      a bad owner= / scope= / scope_values= / read_only_fields=
persistence_sync.W001      a registered model's default manager bypasses the clock
persistence_sync.W002      a registered model is reachable by anonymous requests
persistence_sync.W003      a model with a foreign key to the user model is synced unscoped
=========================  ====================================================

W002 and W003 are ordinary checks, so ``manage.py check`` and
``manage.py check --deploy`` both report them.
"""

from django.core import checks

from persistence_sync import registry


@checks.register()
def check_registrations(app_configs=None, **kwargs):
    registry.registrations()  # resolve registrations given by label
    errors = list(registry._failed)
    regs = list(registry._registry.values())
    for index, reg in enumerate(regs):
        # Registrations made by class were checked by register(); check again
        # in case something changed them since (a field removed, say).
        errors += registry.problems(reg.model, reg.uri, reg.fields, others=regs[:index],
                                    owner=reg.owner, scope=reg.scope,
                                    scope_values=reg.scope_values,
                                    read_only_fields=reg.read_only_fields)
        errors += _check_manager(reg.model)
        errors += _check_exposure(reg)
    return errors


def _check_exposure(reg):
    """Open by default is loud: anonymous access, or per-user data synced to everyone."""
    from django.contrib.auth import get_user_model

    warnings = []
    name = reg.model._meta.label
    if _anonymous_allowed(reg):
        warnings.append(checks.Warning(
            f"{name} is synced at /{reg.uri} to anonymous requests: its permission classes "
            "let a request without a user pull (or push).",
            hint="Pass permission_classes=[IsAuthenticated] to register() (or set DRF's "
            "DEFAULT_PERMISSION_CLASSES), or owner=/scope= which refuse anonymous requests.",
            obj=reg.model, id="persistence_sync.W002",
        ))
    user_model = get_user_model()
    user_links = [f.name for f in reg.model._meta.concrete_fields
                  if f.is_relation and f.related_model is user_model]
    if user_links and not reg.is_scoped:
        warnings.append(checks.Warning(
            f"{name} has a foreign key to the user model ({', '.join(user_links)}) but is "
            "synced unscoped: every request reads and writes every user's objects.",
            hint=f"register({reg.model.__name__}, owner={user_links[0]!r}) limits each "
            "user to their own objects (or use scope=/get_queryset=).",
            obj=reg.model, id="persistence_sync.W003",
        ))
    return warnings


def _anonymous_allowed(reg):
    """Whether the view's effective permission classes let an anonymous GET or POST through."""
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpRequest
    from rest_framework.request import Request

    if reg.owner or reg.scope:
        return False  # the view refuses anonymous requests itself
    view = reg.view.view_class()
    for method in ("GET", "POST"):
        http_request = HttpRequest()
        http_request.method = method
        request = Request(http_request)
        request.user = AnonymousUser()
        view.request = request
        try:
            if all(p.has_permission(request, view) for p in view.get_permissions()):
                return True
        except Exception:  # noqa: BLE001  (a class that needs more than a user is not open)
            continue
    return False


def _check_manager(model):
    from persistence_sync.models import SyncableQuerySet

    queryset = model._default_manager.get_queryset()
    if isinstance(queryset, SyncableQuerySet):
        return []
    return [checks.Warning(
        f"{model._meta.label}'s default manager returns a {type(queryset).__name__}, "
        "so QuerySet.update(), bulk_create() and deletes bypass the sync clock.",
        hint="Build the manager on persistence_sync.models.SyncableQuerySet "
        "(e.g. SyncableQuerySet.as_manager()).",
        obj=model, id="persistence_sync.W001",
    )]
