"""Which models are synced, with which options: registrations as data, and the verbs.

A :class:`SyncRegistry` holds one immutable :class:`Registration` per model.
The package uses one instance, :data:`default`, whose verbs the package root
re-exports, in the spirit of persistence.js's ``Task.enableSync('/taskChanges')``::

    import persistence_sync

    @persistence_sync.register(uri="taskChanges", fields=["name", "done", "project"])
    class Task(SyncableModel):
        ...

    persistence_sync.register(Project, uri="projectChanges")   # or as a call

The registry is data only: serving it is a router's job
(:class:`persistence_sync.routers.SyncRouter`, as DRF's routers sit over
viewsets; ``include("persistence_sync.urls")`` serves :data:`default`). It
tells the model layer which field scopes each model
(:func:`persistence_sync.models.publish_scopes`), and the routers that
registrations changed (:func:`on_change`).

A model may also be given as an ``"app_label.Model"`` string, resolved once
the app registry is ready; mistakes in such a registration are reported by
the system checks (``manage.py check``) instead of at the call.

A second registry works like the first (``SyncRouter(my_registry).urls``);
a model registered in both must have the same ``owner=``/``scope=`` there,
since the model layer records its deletions and moves with one scope.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, overload

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import connections, router
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from persistence_sync import checks
from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import RegistrationError
from persistence_sync.models import SyncableModel, SyncableQuerySet, publish_scopes
from persistence_sync.serializers import build_codec, unsupported_reason

if TYPE_CHECKING:
    from types import FrameType

    from django.apps.config import AppConfig
    from django.core.checks import CheckMessage
    from django.db.models import Field, Model, QuerySet

    from persistence_sync.serializers import FieldCodec

ModelT = TypeVar("ModelT", bound="type[Model] | str")

__all__ = ["Registration", "SyncOptions", "SyncRegistry", "WatermelonTable", "default"]


@dataclass(frozen=True)
class WatermelonTable:
    """How a registered model appears to WatermelonDB clients (``register(..., watermelon=)``).

    ``added_in`` and ``columns_added_in`` are client schema versions: a
    client below ``added_in`` does not get the table, and a migration sync
    from an older version gets every row of a table added since, and every
    row whose columns added since are set (WatermelonDB's migration syncs).
    """

    name: str | None = None  # None: the model's plural name, e.g. "tasks"
    added_in: int = 1
    columns_added_in: dict[str, int] = field(default_factory=dict)  # field name -> schema version


@dataclass(frozen=True)
class SyncOptions:
    """The options of :meth:`SyncRegistry.register`, each once, with its default.

    ``uri``: the endpoint path under the included URLs (default
    ``"<modelName>Changes"``). ``fields`` / ``exclude``: which fields are
    synced (default: every concrete field the protocol can carry).
    ``queryset`` or ``get_queryset(request)``: the objects a request may see
    and touch. ``authentication_classes``, ``permission_classes``,
    ``throttle_classes``: DRF classes (default: the project's DRF settings).
    ``watermelon``: the model's table for WatermelonDB clients, a table name or
    a :class:`WatermelonTable` (default: the plural model name, e.g. ``tasks``).

    Multi-user options (docs/registration.md, "Multi-user sync"; :mod:`persistence_sync.scoping`):
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

    uri: str | None = None
    fields: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    queryset: QuerySet | None = None
    get_queryset: Callable[[HttpRequest], QuerySet] | None = None
    authentication_classes: Sequence[type] | None = None
    permission_classes: Sequence[type] | None = None
    throttle_classes: Sequence[type] | None = None
    watermelon: str | WatermelonTable | None = None
    owner: str | None = None
    scope: str | None = None
    scope_values: Callable[[HttpRequest], Iterable[Any]] | None = None
    read_only_fields: Sequence[str] = ()
    perform_write: Callable[[HttpRequest, list[Model]], None] | None = None


OPTION_NAMES = tuple(option.name for option in dataclasses.fields(SyncOptions))


@dataclass(frozen=True, eq=False, kw_only=True)
class Registration(SyncOptions):
    """One registered model and its options as resolved for it (immutable).

    ``uri`` and ``fields`` hold what the registration serves (defaults filled
    in, ``exclude`` applied), sequences are tuples and ``watermelon`` is a
    :class:`WatermelonTable` or None.
    """

    model: type[Model]
    uri: str
    fields: tuple[str, ...]
    registered_at: str = field(default="", compare=False)  # "file:line" of the register() call

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @cached_property
    def codecs(self) -> tuple[FieldCodec, ...]:
        """How each synced field travels (:mod:`persistence_sync.serializers`)."""
        return tuple(build_codec(self.model._meta.get_field(name)) for name in self.fields)

    @cached_property
    def scope_field(self) -> Field | None:
        """The model field whose value decides who sees an object (or None)."""
        name = self.owner or self.scope
        return None if name is None else self.model._meta.get_field(name)  # type: ignore[return-value]

    @property
    def scope_attname(self) -> str | None:
        return None if self.scope_field is None else self.scope_field.attname

    @property
    def server_fields(self) -> frozenset[str]:
        """Synced fields the server sets (the owner, read-only fields): a pushed null keeps them."""
        return frozenset({*self.read_only_fields, *([self.owner] if self.owner else [])})

    @property
    def is_scoped(self) -> bool:
        """Whether requests see only some objects (a scope or any queryset limit)."""
        return bool(self.owner or self.scope or self.queryset is not None
                    or self.get_queryset is not None)

    @property
    def has_queryset(self) -> bool:
        """Whether the project limits what requests see by a queryset of its own."""
        return self.queryset is not None or self.get_queryset is not None

    @classmethod
    def resolve(cls, model: type[Model], options: SyncOptions, where: str) -> Registration:
        """The registration of ``model`` with ``options`` (already checked)."""
        synced = tuple(options.fields or default_fields(model))
        resolved = {name: getattr(options, name) for name in OPTION_NAMES}
        resolved.update(
            uri=resolve_uri(model, options.uri),
            fields=tuple(name for name in synced if name not in options.exclude),
            watermelon=(WatermelonTable(name=options.watermelon)
                        if isinstance(options.watermelon, str) else options.watermelon),
        )
        return cls(model=model, registered_at=where, **resolved)


def options_from(values: dict[str, Any]) -> SyncOptions:
    """``register()``'s keyword arguments as :class:`SyncOptions`; refuses unknown names."""
    unknown = sorted(set(values) - set(OPTION_NAMES))
    if unknown:
        raise RegistrationError(f"register() got unknown option(s) {', '.join(unknown)}; "
                                f"the options are: {', '.join(OPTION_NAMES)}.")
    tuples = {name: tuple(value) for name, value in values.items()
              if name in ("exclude", "read_only_fields", "authentication_classes",
                          "permission_classes", "throttle_classes", "fields")
              and value is not None}
    options = SyncOptions(**{**values, **tuples})
    if options.queryset is not None and options.get_queryset is not None:
        raise RegistrationError("Pass either queryset= or get_queryset= to register(), not both.")
    watermelon = options.watermelon
    if not (watermelon is None or isinstance(watermelon, WatermelonTable)
            or (isinstance(watermelon, str) and watermelon)):
        raise RegistrationError(
            f"watermelon= must be a table name or a WatermelonTable, not {watermelon!r}.")
    return options


class _Pending(NamedTuple):
    """A registration given by label, waiting for the app registry."""

    label: str
    options: SyncOptions
    registered_at: str


# Registries served by a router besides the default one: with the default, those
# whose scopes the model layer records (publish_scopes).
_served: weakref.WeakSet[SyncRegistry] = weakref.WeakSet()
# Called with a registry whenever its registrations change (routers reload their URLs).
_listeners: list[Callable[[SyncRegistry], None]] = []


def on_change(listener: Callable[[SyncRegistry], None]) -> None:
    """Call ``listener(registry)`` whenever a registry's registrations change."""
    _listeners.append(listener)


class SyncRegistry:
    """The synced models and their options.

    ``register()`` / ``unregister()`` change it; ``registrations()`` lists it
    parents first. Most projects need only :data:`default`.
    """

    def __init__(self) -> None:
        self._registrations: dict[str, Registration] = {}
        self._pending: list[_Pending] = []
        # Errors of label registrations that could not be resolved, for check().
        self._failed: list[CheckMessage] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {', '.join(self._registrations) or 'empty'}>"

    def copy(self) -> SyncRegistry:
        """A new registry holding the same registrations (tests change it freely)."""
        other = type(self)()
        other._registrations = dict(self._registrations)
        other._pending = list(self._pending)
        other._failed = list(self._failed)
        return other

    @overload
    def register(self, model: None = None, /, **options: Any) -> Callable[[ModelT], ModelT]: ...

    @overload
    def register(self, model: ModelT, /, **options: Any) -> ModelT: ...

    def register(self, model: type[Model] | str | None = None, /, **options: Any) -> Any:
        """Register ``model`` for sync. Returns the model, so it works as a decorator.

        ``model``: a :class:`~persistence_sync.models.SyncableModel` subclass,
        or its ``"app_label.Model"`` label (resolved when the apps are ready;
        mistakes are then reported by ``manage.py check``). The options
        (``uri``, ``fields``, ``exclude``, ``queryset`` or
        ``get_queryset(request)``, ``authentication_classes``,
        ``permission_classes``, ``throttle_classes``, ``watermelon``,
        ``owner``, ``scope`` with ``scope_values``, ``read_only_fields``,
        ``perform_write``) are those of :class:`SyncOptions`, documented there.

        A model already registered is refused (the error says where it was
        registered); unregister it first to change its options.
        """
        sync_options = options_from(options)
        if model is None:
            return lambda model: self.register(model, **options)
        where = _caller()
        if isinstance(model, str):
            label = model.lower()
            if label in self._registrations or any(p.label.lower() == label for p in self._pending):
                raise RegistrationError(f"{model} is already registered for sync.")
            self._pending.append(_Pending(model, sync_options, where))
            if apps.ready:
                self._resolve_pending()
            return model
        self._add(model, sync_options, where, raise_errors=True)
        return model

    def unregister(self, model: type[Model] | str) -> None:
        """Stop syncing ``model``; its endpoint disappears from the URLs serving this registry."""
        label = _label(model)
        if label not in self._registrations:
            raise RegistrationError(f"{model} is not registered for sync; nothing to unregister.")
        del self._registrations[label]
        self.changed()

    def is_registered(self, model: type[Model] | str) -> bool:
        """Whether ``model`` (a class or an ``"app_label.Model"`` label) is registered."""
        self._resolve_pending_if_ready()
        return _label(model) in self._registrations

    def get_registration(self, model: type[Model] | str) -> Registration:
        """The :class:`Registration` of ``model`` (a class or a label)."""
        self._resolve_pending_if_ready()
        try:
            return self._registrations[_label(model)]
        except KeyError:
            raise RegistrationError(f"{model} is not registered for sync.") from None

    def registrations(self) -> list[Registration]:
        """All registrations, parents before children (following foreign keys)."""
        self._resolve_pending_if_ready()
        ordered: list[Registration] = []
        seen: set[str] = set()

        def visit(reg: Registration, path: tuple[str, ...] = ()) -> None:
            if reg.label in seen or reg.label in path:
                return  # cycles are broken in registration order
            for target in related_models(reg.model, reg.fields):
                if target._meta.label_lower in self._registrations:
                    visit(self._registrations[target._meta.label_lower], (*path, reg.label))
            seen.add(reg.label)
            ordered.append(reg)

        for reg in list(self._registrations.values()):
            visit(reg)
        return ordered

    def changed(self) -> None:
        """Publish the registrations' scopes to the model layer and tell the routers.

        Called by register() and unregister(); call it after swapping
        :data:`default` (a test's fresh registry).
        """
        _publish_scopes()
        for listener in list(_listeners):
            listener(self)

    def check(self, app_configs: Iterable[AppConfig] | None = None) -> list[CheckMessage]:
        """Everything wrong with the registrations, as system-check messages."""
        self._resolve_pending_if_ready()
        errors = list(self._failed)
        regs = list(self._registrations.values())
        for index, reg in enumerate(regs):
            # Registrations made by class were checked by register(); check again
            # in case something changed them since (a field removed, say).
            errors += registration_problems(reg.model, reg, others=regs[:index])
            errors += _manager_problems(reg.model)
            errors += _exposure_problems(reg)
            errors += _index_problems(reg)
        if app_configs is None:
            return errors
        # Errors about a model only for its app; an unknown label's always.
        return [error for error in errors
                if getattr(error.obj, "_meta", None) is None or error.obj._meta.app_config in app_configs]

    def _add(self, model: Any, options: SyncOptions, where: str,
             raise_errors: bool) -> list[CheckMessage]:
        """Register a resolved model; return (or raise) what is wrong with it."""
        errors = self._problems(model, options)
        if errors:
            if raise_errors:
                raise RegistrationError(f"{errors[0].msg} {errors[0].hint}")
            return errors
        self._registrations[_label(model)] = Registration.resolve(model, options, where)
        self.changed()
        return []

    def _problems(self, model: Any, options: SyncOptions) -> list[CheckMessage]:
        if hasattr(model, "_meta") and _label(model) in self._registrations:
            first = self._registrations[_label(model)]
            return [checks.message("persistence_sync.E007", obj=model, model=model._meta.label,
                                   where=first.registered_at)]
        if hasattr(model, "_meta") and not resolve_uri(model, options.uri):
            return [checks.message("persistence_sync.E008", obj=model, model=model._meta.label,
                                   uri=options.uri, default=default_uri(model))]
        return (registration_problems(model, options, others=self._registrations.values())
                or _scope_conflicts(model, options, self))

    def _resolve_pending_if_ready(self) -> None:
        if self._pending and apps.ready:
            self._resolve_pending()

    def _resolve_pending(self) -> None:
        """Resolve label registrations; keep the errors of those that fail for check()."""
        while self._pending:
            label, options, where = self._pending.pop(0)
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError):
                self._failed.append(checks.message("persistence_sync.E005", label=label,
                                                   where=where))
                continue
            self._failed += self._add(model, options, where, raise_errors=False)


# help(persistence_sync.register) shows the options, though register() takes **options.
SyncRegistry.register.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
    inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
    inspect.Parameter("model", inspect.Parameter.POSITIONAL_ONLY, default=None),
    *(inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=option.default)
      for option in dataclasses.fields(SyncOptions)),
])


def served(registry: SyncRegistry) -> None:
    """Note that ``registry`` is served (a router's): its scopes count for the model layer.

    A registry only called directly (a script's, a test's) need not agree
    with the served ones; once served, it must (E018).
    """
    _served.add(registry)
    for reg in registry._registrations.values():
        conflicts = _scope_conflicts(reg.model, reg, registry)
        if conflicts:
            _served.discard(registry)
            raise RegistrationError(f"{conflicts[0].msg} {conflicts[0].hint}")
    _publish_scopes()


def _serving() -> list[SyncRegistry]:
    return [default, *(registry for registry in list(_served) if registry is not default)]


def _publish_scopes() -> None:
    """The scope column of every model registered in a served registry, for the model layer."""
    publish_scopes({reg.label: reg.scope_attname for registry in _serving()
                    for reg in registry._registrations.values() if reg.scope_attname})


def _scope_conflicts(model: Any, options: SyncOptions, registry: SyncRegistry) -> list[CheckMessage]:
    """A model registered in another served registry must keep the scope it has there."""
    serving = _serving()
    if registry not in serving:
        return []
    label = _label(model)
    for other in serving:
        reg = other._registrations.get(label)
        if other is not registry and reg is not None and (reg.owner, reg.scope) != (
                options.owner, options.scope):
            return [checks.message("persistence_sync.E018", obj=model, model=model._meta.label,
                                   where=reg.registered_at)]
    return []


def _caller() -> str:
    """The ``file:line`` of the code that called register(), for error messages."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "unknown"


def _label(model: type[Model] | str) -> str:
    return model.lower() if isinstance(model, str) else model._meta.label_lower


def resolve_uri(model: type[Model], uri: str | None) -> str:
    """The path a registration serves: ``uri`` without its leading slash, or the default."""
    return (uri or default_uri(model)).lstrip("/")


def default_uri(model: type[Model]) -> str:
    """``"<modelName>Changes"``: the URI of a model registered without ``uri=``."""
    name = model._meta.object_name or model.__name__
    return f"{name[0].lower()}{name[1:]}Changes"


def default_fields(model: type[Model]) -> tuple[str, ...]:
    """The fields synced by default: every concrete field the protocol can carry."""
    return tuple(
        f.name
        for f in model._meta.concrete_fields
        if not f.primary_key and f.name != "last_change" and unsupported_reason(f) is None
    )


def related_models(model: type[Model], names: Iterable[str] | None = None) -> Iterator[type[Model]]:
    """The models ``model``'s foreign keys (and one-to-ones) point at, concrete ones.

    ``names``: only those fields (a registration's synced fields); default
    every concrete field. A relation to a model that does not exist stays a
    string (Django's own checks report it, fields.E300) and is skipped.
    """
    fields: list[Any]
    if names is None:
        fields = list(model._meta.concrete_fields)
    else:
        fields = []
        for name in names:
            try:
                fields.append(model._meta.get_field(name))
            except FieldDoesNotExist:
                continue  # reported by the system checks
    for model_field in fields:
        target = model_field.related_model
        if (model_field.is_relation and (model_field.many_to_one or model_field.one_to_one)
                and isinstance(target, type)):
            related: Any = target
            yield related._meta.concrete_model or related


def registration_problems(model: Any, options: SyncOptions,
                          others: Iterable[Registration] = ()) -> list[CheckMessage]:
    """Everything wrong with registering ``model`` with ``options`` beside ``others``."""
    name = model._meta.label if hasattr(model, "_meta") else repr(model)
    if not (isinstance(model, type) and issubclass(model, SyncableModel)):
        return [checks.message("persistence_sync.E001", obj=model, model=name)]
    if model._meta.abstract:
        return [checks.message("persistence_sync.E006", obj=model, model=name)]
    uri = resolve_uri(model, options.uri)
    errors = [
        checks.message("persistence_sync.E002", obj=model, model=name, uri=uri,
                       other=other.model._meta.label, where=other.registered_at)
        for other in others
        if other.uri == uri and other.model is not model
    ]
    fields, exclude = options.fields, options.exclude
    valid = ", ".join(default_fields(model))
    for field_name in [*(fields or ()), *(exclude or ())]:
        try:
            model_field = model._meta.get_field(field_name)
        except FieldDoesNotExist:
            errors.append(checks.message("persistence_sync.E003", obj=model, model=name,
                                         field=field_name, valid=valid))
            continue
        reason = unsupported_reason(model_field) or (
            "the id and _lastChange always travel"
            if getattr(model_field, "primary_key", False) or field_name == "last_change"
            else None
        )
        if field_name in (fields or ()) and reason:
            errors.append(checks.message("persistence_sync.E004", obj=model, model=name,
                                         field=field_name, reason=reason, valid=valid))
    synced = list(fields or [f for f in default_fields(model) if f not in (exclude or ())])
    return errors + _scope_problems(model, name, options, synced)


def _is_user_link(model_field: Any) -> bool:
    """Whether ``model_field`` is a ForeignKey to the user model (also before models load)."""
    if not model_field.many_to_one:
        return False
    target = model_field.remote_field.model
    label = target if isinstance(target, str) else target._meta.label
    return label.lower() == settings.AUTH_USER_MODEL.lower()


def _scope_problems(model: Any, name: str, options: SyncOptions,
                    synced: Sequence[str]) -> list[CheckMessage]:
    """What is wrong with the owner= / scope= / scope_values= / read_only_fields= options."""
    owner, scope, scope_values = options.owner, options.scope, options.scope_values
    errors = []
    if owner and scope:
        errors.append(checks.message("persistence_sync.E011", obj=model, model=name))
    for option, field_name in (("owner", owner), ("scope", scope)):
        if field_name is None:
            continue
        try:
            model_field = model._meta.get_field(field_name)
        except FieldDoesNotExist:
            errors.append(checks.message("persistence_sync.E012", obj=model, model=name,
                                         option=option, field=field_name))
            continue
        if not model_field.concrete or model_field.many_to_many or model_field.primary_key:
            errors.append(checks.message("persistence_sync.E013", obj=model, model=name,
                                         option=option, field=field_name))
        elif option == "owner" and not _is_user_link(model_field):
            errors.append(checks.message("persistence_sync.E014", obj=model, model=name,
                                         field=field_name))
    if scope and not callable(scope_values):
        errors.append(checks.message("persistence_sync.E015", obj=model, model=name, scope=scope))
    if scope_values is not None and not scope:
        errors.append(checks.message("persistence_sync.E016", obj=model, model=name))
    for field_name in options.read_only_fields or ():
        if field_name not in synced:
            errors.append(checks.message("persistence_sync.E017", obj=model, model=name,
                                         field=field_name, synced=", ".join(synced)))
    return errors


def _exposure_problems(reg: Registration) -> list[CheckMessage]:
    """Open by default is loud: anonymous access, or per-user data synced to everyone."""
    warnings = []
    name = reg.model._meta.label
    if anonymous_allowed(reg):
        warnings.append(checks.message("persistence_sync.W002", obj=reg.model, model=name,
                                       uri=reg.uri))
    user_model = get_user_model()
    user_links = [f.name for f in reg.model._meta.concrete_fields
                  if f.is_relation and f.related_model is user_model]
    if user_links and not reg.is_scoped:
        warnings.append(checks.message("persistence_sync.W003", obj=reg.model, model=name,
                                       fields=", ".join(user_links),
                                       class_name=reg.model.__name__, field=user_links[0]))
    return warnings


def _index_problems(reg: Registration) -> list[CheckMessage]:
    """A model synced by owner= or scope= wants indexes that start (that field, id) and
    (that field, last_change).

    A page of a scoped pull is the rows of the request's scope after an id,
    in id order: a range of the first. A poll (what changed since the last
    pull) is the rows of the request's scope stamped after it: a range of the
    second, whatever the number of rows. MySQL and MariaDB need no index on
    (field, id) (InnoDB ends every secondary index with the primary key).
    """
    try:
        model_field = reg.scope_field
    except FieldDoesNotExist:  # E012 says so
        return []
    if model_field is None or not model_field.concrete:
        return []
    opts = reg.model._meta
    pk = opts.pk
    assert pk is not None  # a concrete model has one
    scope_names = {model_field.name, model_field.attname}
    wanted = {"last_change": {"last_change"}}
    if connections[router.db_for_read(reg.model)].vendor != "mysql":
        wanted = {pk.name: {pk.name, pk.attname, "pk"}, **wanted}
    candidates = [list(index.fields) for index in opts.indexes]
    candidates += [list(fields) for fields in opts.unique_together]
    candidates += [list(getattr(constraint, "fields", ())) for constraint in opts.constraints]
    missing = [second for second, names in wanted.items()
               if not any(len(fields) >= 2 and fields[0].lstrip("-") in scope_names
                          and fields[1].lstrip("-") in names for fields in candidates)]
    if not missing:
        return []
    code = " and ".join(f"models.Index(fields=[{model_field.name!r}, {second!r}], name=...)"
                        for second in missing)
    return [checks.message("persistence_sync.W004", obj=reg.model, model=opts.label,
                           field=model_field.name, class_name=reg.model.__name__, code=code,
                           missing=" and ".join(f"({model_field.name}, {second})"
                                                for second in missing))]


def permission_classes_of(reg: Registration) -> Sequence[type]:
    """The DRF permission classes a registration's endpoints apply."""
    if reg.permission_classes is not None:
        return reg.permission_classes
    return api_settings.DEFAULT_PERMISSION_CLASSES  # type: ignore[return-value]


def anonymous_allowed(reg: Registration) -> bool:
    """Whether the registration's permission classes let an anonymous GET or POST through."""
    # contrib.auth's models load with the app registry, after this module.
    from django.contrib.auth.models import AnonymousUser

    if reg.owner or reg.scope:
        return False  # the endpoints refuse anonymous requests themselves
    # A stand-in for the endpoint: what permission classes may ask of their view.
    view = APIView()
    view.get_queryset = lambda: reg.queryset if reg.queryset is not None else (  # type: ignore[attr-defined]
        reg.model._default_manager.all())
    for method in ("GET", "POST"):
        http_request = HttpRequest()
        http_request.method = method
        request = Request(http_request)
        request.user = AnonymousUser()
        view.request = request
        try:
            if all(permission().has_permission(request, view)
                   for permission in permission_classes_of(reg)):
                return True
        except Exception:  # noqa: BLE001  (a class that needs more than a user is not open)
            continue
    return False


def _manager_problems(model: type[Model]) -> list[CheckMessage]:
    queryset = model._default_manager.get_queryset()
    if isinstance(queryset, SyncableQuerySet):
        return []
    return [checks.message("persistence_sync.W001", obj=model, model=model._meta.label,
                           queryset=type(queryset).__name__)]


def address_keyed_throttle_problems(app_configs: Iterable[AppConfig] | None = None,
                                    **kwargs: Any) -> list[CheckMessage]:
    """W006 (a deployment check): throttles keyed on a spoofable address.

    DRF keys an anonymous request's throttle on its address, read from
    ``X-Forwarded-For`` as the client sent it unless ``NUM_PROXIES`` says how
    many of its entries the site's own proxies added. Only anonymous requests
    that may sync are throttled (permissions are checked first).
    """
    throttled = bool(sync_settings.THROTTLE_RATES or api_settings.DEFAULT_THROTTLE_CLASSES)
    if not throttled or api_settings.NUM_PROXIES is not None:
        return []
    open_to_anonymous = [reg.model._meta.label for reg in default.registrations()
                         if anonymous_allowed(reg)]
    if not open_to_anonymous:
        return []
    return [checks.message("persistence_sync.W006", models=", ".join(open_to_anonymous))]


#: The registry that ``persistence_sync.register()`` and friends use and that
#: ``include("persistence_sync.urls")`` serves.
default: SyncRegistry = SyncRegistry()


def check_registrations(app_configs: Iterable[AppConfig] | None = None,
                        **kwargs: Any) -> list[CheckMessage]:
    """The system check of :data:`default` (registered by the app's ready())."""
    return default.check(app_configs)


_DEFAULT_VERBS = ("get_registration", "is_registered", "register", "registrations", "unregister")

if TYPE_CHECKING:
    get_registration = default.get_registration
    is_registered = default.is_registered
    register = default.register
    registrations = default.registrations
    unregister = default.unregister


def __getattr__(name: str) -> Any:
    # registry.register(...) and friends act on the current default registry.
    if name in _DEFAULT_VERBS:
        return getattr(default, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
