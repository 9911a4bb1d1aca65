"""Which models are synced, at which URI, with which options.

In the spirit of persistence.js's ``Task.enableSync('/taskChanges')``::

    import persistence_sync

    @persistence_sync.register(uri="taskChanges", fields=["name", "done", "project"])
    class Task(SyncableModel):
        ...

    persistence_sync.register(Project, uri="projectChanges")   # or as a call

Options are stored in an immutable :class:`Registration` keyed by the
model's label; :func:`urls` builds one DRF view per registration. A model
may also be given as an ``"app_label.Model"`` string, resolved once the app
registry is ready; mistakes in such a registration are reported by the
system checks (``manage.py check``) instead of at the call.
"""

import sys
import traceback
from dataclasses import dataclass, field
from functools import cached_property

from django.apps import apps
from django.core.checks import Error
from django.core.exceptions import FieldDoesNotExist
from django.urls import clear_url_caches

from persistence_sync.exceptions import RegistrationError


@dataclass(frozen=True, eq=False)
class Registration:
    """One registered model and its sync options (immutable)."""

    model: type
    uri: str
    fields: tuple  # names of the synced fields
    queryset: object = None  # a QuerySet limiting what requests see and touch
    get_queryset: object = None  # or a hook: get_queryset(request) -> QuerySet
    authentication_classes: tuple = None  # None: the project's DRF defaults
    permission_classes: tuple = None
    throttle_classes: tuple = None
    # Multi-user options (see "Multi-user sync" in the README and
    # persistence_sync.scoping): a foreign key to the user model that new
    # objects get set to request.user; or a field whose value must be one of
    # scope_values(request); fields clients may read but not write; and a hook
    # perform_write(request, objs) setting server-controlled values on the
    # objects a push creates (obj._state.adding) or changes.
    owner: str = None
    scope: str = None
    scope_values: object = None
    read_only_fields: tuple = ()
    perform_write: object = None
    registered_at: str = field(default="", compare=False)

    @property
    def label(self):
        return self.model._meta.label_lower

    @cached_property
    def codecs(self):
        from persistence_sync.serializers import build_codec

        return tuple(build_codec(self.model._meta.get_field(name)) for name in self.fields)

    @cached_property
    def view(self):
        from persistence_sync.views import sync_view_factory

        return sync_view_factory(self)

    @property
    def scope_field(self):
        """The model field whose value decides who sees an object (or None)."""
        name = self.owner or self.scope
        return None if name is None else self.model._meta.get_field(name)

    @property
    def is_scoped(self):
        """Whether requests see only some objects (a scope or any queryset limit)."""
        return bool(self.owner or self.scope or self.queryset is not None
                    or self.get_queryset is not None)

    def scope_values_for(self, request):
        """The scope values ``request`` may see, or None when the model has no scope."""
        from persistence_sync.scoping import scope_values_for

        return scope_values_for(self, request)

    def queryset_for(self, request):
        """The objects ``request`` may see and touch."""
        if self.get_queryset is not None:
            queryset = self.get_queryset(request)
        elif self.queryset is not None:
            queryset = self.queryset.all()
        else:
            queryset = self.model._default_manager.all()
        values = self.scope_values_for(request)
        if values is not None:
            queryset = queryset.filter(**{f"{self.scope_field.attname}__in": values.raw})
        return queryset


# label -> Registration, for resolved registrations.
_registry = {}
# Registrations given by label, resolved when the app registry is ready.
_pending = []


def _caller():
    for frame in reversed(traceback.extract_stack()[:-3]):
        if not frame.filename.endswith(("persistence_sync/registry.py", "persistence_sync/__init__.py")):
            return f"{frame.filename}:{frame.lineno}"
    return "unknown"


def _label(model):
    return model.lower() if isinstance(model, str) else model._meta.label_lower


def default_uri(model):
    name = model._meta.object_name
    return f"{name[0].lower()}{name[1:]}Changes"


def default_fields(model):
    from persistence_sync.serializers import unsupported_reason

    return tuple(
        f.name
        for f in model._meta.concrete_fields
        if not f.primary_key and f.name != "last_change" and unsupported_reason(f) is None
    )


def problems(model, uri, fields, exclude=None, others=(), owner=None, scope=None,
             scope_values=None, read_only_fields=()):
    """Everything wrong with a registration, as system-check Errors."""
    from persistence_sync.models import SyncableModel
    from persistence_sync.serializers import unsupported_reason

    name = model._meta.label if hasattr(model, "_meta") else repr(model)
    if not (isinstance(model, type) and issubclass(model, SyncableModel)):
        return [Error(
            f"{name} is registered for sync but is not a SyncableModel.",
            hint=f"Make {name} inherit from persistence_sync.models.SyncableModel.",
            obj=model, id="persistence_sync.E001",
        )]
    if model._meta.abstract:
        return [Error(
            f"{name} is abstract and cannot be registered for sync.",
            hint="Register its concrete subclasses instead.", obj=model, id="persistence_sync.E001",
        )]
    errors = []
    for other in others:
        if other.uri == uri and other.model is not model:
            errors.append(Error(
                f"{name} and {other.model._meta.label} are both registered on the URI {uri!r} "
                f"(the first at {other.registered_at}).",
                hint=f"Give {name} its own uri=... in register().",
                obj=model, id="persistence_sync.E002",
            ))
    valid = default_fields(model)
    for field_name in [*(fields or ()), *(exclude or ())]:
        try:
            model_field = model._meta.get_field(field_name)
        except FieldDoesNotExist:
            errors.append(Error(
                f"{name} has no field {field_name!r} to sync.",
                hint=f"Choose among: {', '.join(valid)}.", obj=model, id="persistence_sync.E003",
            ))
            continue
        reason = unsupported_reason(model_field)
        if field_name in (fields or ()) and (reason or model_field.primary_key
                                             or field_name == "last_change"):
            errors.append(Error(
                f"{name}.{field_name} cannot be synced: "
                f"{reason or 'the id and _lastChange always travel'}.",
                hint=f"Remove {field_name!r} from fields=; choose among: {', '.join(valid)}.",
                obj=model, id="persistence_sync.E004",
            ))
    errors += _scope_problems(model, name, owner, scope, scope_values, read_only_fields,
                              fields or [f for f in valid if f not in (exclude or ())])
    return errors


def _is_user_link(model_field):
    """Whether ``model_field`` is a ForeignKey to the user model (also before models load)."""
    from django.conf import settings

    if not model_field.many_to_one:
        return False
    target = model_field.remote_field.model
    label = target if isinstance(target, str) else target._meta.label
    return label.lower() == settings.AUTH_USER_MODEL.lower()


def _scope_problems(model, name, owner, scope, scope_values, read_only_fields, synced):
    def error(msg, hint):
        return Error(msg, hint=hint, obj=model, id="persistence_sync.E006")

    errors = []
    if owner and scope:
        errors.append(error(f"{name} is registered with both owner= and scope=.",
                            "owner='field' is scope='field' limited to request.user; pick one."))
    for option, field_name in (("owner", owner), ("scope", scope)):
        if field_name is None:
            continue
        try:
            model_field = model._meta.get_field(field_name)
        except FieldDoesNotExist:
            errors.append(error(f"{name} has no field {field_name!r} for {option}=.",
                                f"Name a concrete field of {name}."))
            continue
        if not model_field.concrete or model_field.many_to_many or model_field.primary_key:
            errors.append(error(f"{name}.{field_name} cannot be the {option}: it must be a "
                                "concrete, single-valued field that is not the primary key.",
                                "Use a ForeignKey or a plain field of the model itself."))
        elif option == "owner" and not _is_user_link(model_field):
            errors.append(error(f"{name}.{field_name} cannot be the owner: it is not a "
                                "ForeignKey to the user model.",
                                "Use scope=... with scope_values=... for other fields."))
    if scope and not callable(scope_values):
        errors.append(error(f"{name} is registered with scope={scope!r} but no scope_values.",
                            "Pass scope_values=lambda request: [...] (the values the "
                            "request may see)."))
    if scope_values is not None and not scope:
        errors.append(error(f"{name} is registered with scope_values= but no scope=.",
                            "Name the field the values are compared with: scope='team'."))
    for field_name in read_only_fields or ():
        if field_name not in synced:
            errors.append(error(f"{name}.{field_name} is in read_only_fields but not synced.",
                                f"Choose among the synced fields: {', '.join(synced)}."))
    return errors


def register(model=None, *, uri=None, fields=None, exclude=None, queryset=None,
             get_queryset=None, authentication_classes=None, permission_classes=None,
             throttle_classes=None, owner=None, scope=None, scope_values=None,
             read_only_fields=(), perform_write=None):
    """Register ``model`` for sync. Returns the model, so it works as a decorator.

    ``uri``: the endpoint path under the included URLs (default:
    ``"<modelName>Changes"``). ``fields`` / ``exclude``: which fields are
    synced (default: every concrete field the protocol can carry).
    ``queryset`` or ``get_queryset(request)``: the objects a request may see
    and touch. ``authentication_classes``, ``permission_classes``,
    ``throttle_classes``: DRF classes (default: the project's DRF settings).

    Multi-user options (README, "Multi-user sync"):
    ``owner="owner"`` names a ForeignKey to the user model: a request sees and
    touches only its user's objects, new objects get ``owner=request.user``,
    anonymous requests are refused. ``scope="team"`` with
    ``scope_values=lambda request: [...]``: a request sees the objects whose
    field value is one of those values; deletions, moves between values and
    changes of the request's values reach devices as removals.
    ``read_only_fields``: synced in pulls, refused in pushes unless unchanged.
    ``perform_write(request, objs)``: sets server-controlled values on the
    model instances a push is about to store (new ones have
    ``obj._state.adding``), like DRF's ``perform_create``.
    """
    options = dict(uri=uri, fields=fields, exclude=exclude, queryset=queryset,
                   get_queryset=get_queryset, authentication_classes=authentication_classes,
                   permission_classes=permission_classes, throttle_classes=throttle_classes,
                   owner=owner, scope=scope, scope_values=scope_values,
                   read_only_fields=read_only_fields, perform_write=perform_write)
    if queryset is not None and get_queryset is not None:
        raise RegistrationError("Pass either queryset= or get_queryset= to register(), not both.")
    if model is None:
        return lambda model: register(model, **options)
    where = _caller()
    if isinstance(model, str):
        if _label(model) in _registry or any(_label(m) == _label(model) for m, _, _ in _pending):
            raise RegistrationError(f"{model} is already registered for sync.")
        _pending.append((model, options, where))
        if apps.ready:
            _resolve_pending()
        return model
    _add(model, options, where, raise_errors=True)
    return model


def _add(model, options, where, raise_errors):
    label = _label(model)
    if label in _registry:
        raise RegistrationError(
            f"{model._meta.label} is already registered for sync "
            f"(at {_registry[label].registered_at}); unregister it first to change its options."
        )
    uri = (options["uri"] or (default_uri(model) if hasattr(model, "_meta") else "")).lstrip("/")
    errors = problems(model, uri, options["fields"], options["exclude"], _registry.values(),
                      **_scope_options(options))
    if not uri:
        raise RegistrationError(f"register({model!r}): uri must not be empty.")
    if errors:
        if raise_errors:
            raise RegistrationError(f"{errors[0].msg} {errors[0].hint}")
        return errors
    fields = tuple(options["fields"] or default_fields(model))
    fields = tuple(name for name in fields if name not in (options["exclude"] or ()))
    _registry[label] = Registration(
        model=model, uri=uri, fields=fields,
        queryset=options["queryset"], get_queryset=options["get_queryset"],
        authentication_classes=_tuple(options["authentication_classes"]),
        permission_classes=_tuple(options["permission_classes"]),
        throttle_classes=_tuple(options["throttle_classes"]),
        owner=options["owner"], scope=options["scope"], scope_values=options["scope_values"],
        read_only_fields=tuple(options["read_only_fields"] or ()),
        perform_write=options["perform_write"],
        registered_at=where,
    )
    _refresh_urls()
    return []


def _refresh_urls():
    """Make a (un)registration after the URLs were loaded take effect.

    ``include("persistence_sync.urls")`` makes a resolver that caches its
    patterns; Django's ``clear_url_caches()`` drops only the root resolver, so
    the included ones are reset here too. Before the URLs are first used
    (registrations at import time) there is nothing to reset.
    """
    from django.conf import settings
    from django.urls import get_resolver
    from django.urls.resolvers import URLResolver

    if getattr(settings, "ROOT_URLCONF", None) in sys.modules:
        pending = list(get_resolver().url_patterns)
        while pending:
            pattern = pending.pop()
            if not isinstance(pattern, URLResolver):
                continue
            if getattr(pattern.urlconf_name, "__name__", None) == "persistence_sync.urls":
                pattern.__dict__.pop("url_patterns", None)
                pattern.__init__(pattern.pattern, pattern.urlconf_name, pattern.default_kwargs,
                                 pattern.app_name, pattern.namespace)
            else:
                pending.extend(pattern.url_patterns)
    clear_url_caches()


def _scope_options(options):
    return {key: options[key] for key in ("owner", "scope", "scope_values", "read_only_fields")}


def _tuple(value):
    return None if value is None else tuple(value)


def _resolve_pending():
    """Resolve label registrations; return the check Errors of those that fail."""
    errors = []
    while _pending:
        label, options, where = _pending.pop(0)
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            errors.append(Error(
                f"{label!r} (registered for sync at {where}) is not an installed model.",
                hint="Use 'app_label.ModelName' of a model in INSTALLED_APPS.",
                id="persistence_sync.E005",
            ))
            continue
        try:
            errors += _add(model, options, where, raise_errors=False)
        except RegistrationError as exc:
            errors.append(Error(str(exc), obj=model, id="persistence_sync.E002"))
    _failed.extend(errors)
    return errors


# Errors of label registrations that could not be resolved, for the checks.
_failed = []


def unregister(model):
    label = _label(model)
    if label not in _registry:
        raise RegistrationError(f"{model} is not registered for sync; nothing to unregister.")
    del _registry[label]
    _refresh_urls()


def is_registered(model):
    if apps.ready:
        _resolve_pending()
    return _label(model) in _registry


def get_registration(model):
    if apps.ready:
        _resolve_pending()
    try:
        return _registry[_label(model)]
    except KeyError:
        raise RegistrationError(f"{model} is not registered for sync.") from None


def registrations():
    """All registrations, parents before children (following foreign keys)."""
    if apps.ready:
        _resolve_pending()
    ordered, seen = [], set()

    def visit(reg, path=()):
        if reg.label in seen or reg.label in path:
            return  # cycles are broken in registration order
        for target in _related_models(reg):
            if target._meta.label_lower in _registry:
                visit(_registry[target._meta.label_lower], (*path, reg.label))
        seen.add(reg.label)
        ordered.append(reg)

    for reg in list(_registry.values()):
        visit(reg)
    return ordered


def _related_models(reg):
    for name in reg.fields:
        try:
            model_field = reg.model._meta.get_field(name)
        except FieldDoesNotExist:
            continue  # reported by the system checks
        if model_field.is_relation and model_field.related_model is not None:
            yield model_field.related_model


def urls():
    """One URL pattern per registration (see ``persistence_sync.urls``)."""
    from django.urls import path

    return [path(reg.uri, reg.view, name=reg.label) for reg in registrations()]
