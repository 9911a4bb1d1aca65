"""Which models are synced, at which URI, with which options.

A :class:`SyncRegistry` holds one immutable :class:`Registration` per model
and builds one URL pattern per registration, as a DRF router does for its
viewsets. The package uses one instance, :data:`default`, whose verbs the
package root re-exports, in the spirit of persistence.js's
``Task.enableSync('/taskChanges')``::

    import persistence_sync

    @persistence_sync.register(uri="taskChanges", fields=["name", "done", "project"])
    class Task(SyncableModel):
        ...

    persistence_sync.register(Project, uri="projectChanges")   # or as a call

``include("persistence_sync.urls")`` serves the default registry's
:attr:`~SyncRegistry.urls`; ``registry.register()`` and the other verbs named
at this module's level act on :data:`default` too. A model may also be given as an
``"app_label.Model"`` string, resolved once the app registry is ready;
mistakes in such a registration are reported by the system checks
(``manage.py check``) instead of at the call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, overload

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.urls import clear_url_caches

from persistence_sync import checks
from persistence_sync.exceptions import RegistrationError

if TYPE_CHECKING:
    from types import FrameType

    from django.apps.config import AppConfig
    from django.core.checks import CheckMessage
    from django.db.models import Model, QuerySet
    from django.http import HttpRequest
    from django.urls import URLPattern
    from rest_framework.views import AsView, GenericView

    from persistence_sync.serializers import FieldCodec

ModelT = TypeVar("ModelT", bound="type[Model] | str")

__all__ = ["Registration", "SyncRegistry", "default"]


@dataclass(frozen=True, eq=False)
class Registration:
    """One registered model and its sync options (immutable)."""

    model: type[Model]
    uri: str
    fields: tuple[str, ...]  # names of the synced fields
    queryset: QuerySet | None = None  # limits what requests see and touch
    get_queryset: Callable[[HttpRequest], QuerySet] | None = None  # or a hook per request
    authentication_classes: tuple[type, ...] | None = None  # None: the project's DRF defaults
    permission_classes: tuple[type, ...] | None = None
    throttle_classes: tuple[type, ...] | None = None
    watermelon: Any = None  # a watermelon.WatermelonTable; None: the defaults
    # Multi-user options (see "Multi-user sync" in the README and
    # persistence_sync.scoping): a foreign key to the user model that new
    # objects get set to request.user; or a field whose value must be one of
    # scope_values(request); fields clients may read but not write; and a hook
    # perform_write(request, objs) setting server-controlled values on the
    # objects a push creates (obj._state.adding) or changes.
    owner: str | None = None
    scope: str | None = None
    scope_values: Callable[[HttpRequest], Iterable[Any]] | None = None
    read_only_fields: tuple[str, ...] = ()
    perform_write: Callable[[HttpRequest, list[Model]], None] | None = None
    registered_at: str = field(default="", compare=False)  # "file:line" of the register() call

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @cached_property
    def codecs(self) -> tuple[FieldCodec, ...]:
        from persistence_sync.serializers import build_codec

        return tuple(build_codec(self.model._meta.get_field(name)) for name in self.fields)

    @cached_property
    def view(self) -> AsView[GenericView]:
        from persistence_sync.views import sync_view_factory

        return sync_view_factory(self)

    @property
    def scope_field(self) -> Any:
        """The model field whose value decides who sees an object (or None)."""
        name = self.owner or self.scope
        return None if name is None else self.model._meta.get_field(name)

    @property
    def server_fields(self) -> frozenset[str]:
        """Synced fields the server sets (the owner, read-only fields): a pushed null keeps them."""
        return frozenset({*self.read_only_fields, *([self.owner] if self.owner else [])})

    @property
    def is_scoped(self) -> bool:
        """Whether requests see only some objects (a scope or any queryset limit)."""
        return bool(self.owner or self.scope or self.queryset is not None
                    or self.get_queryset is not None)

    def scope_values_for(self, request: HttpRequest) -> Any:
        """The scope values ``request`` may see, or None when the model has no scope."""
        from persistence_sync.scoping import scope_values_for

        return scope_values_for(self, request)

    def queryset_for(self, request: HttpRequest) -> QuerySet:
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


class _Pending(NamedTuple):
    """A registration given by label, waiting for the app registry."""

    label: str
    options: dict[str, Any]
    registered_at: str


class SyncRegistry:
    """The synced models and their endpoints.

    ``register()`` / ``unregister()`` change it; ``registrations()`` lists
    it parents first; :attr:`urls` holds one pattern per registration, cached
    until the next change. Most projects need only :data:`default`; a
    separate instance can be served with ``path("", include(my_registry.urls))``.
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
    def register(
        self, model: None = None, *, uri: str | None = ..., fields: Sequence[str] | None = ...,
        exclude: Sequence[str] | None = ..., queryset: QuerySet | None = ...,
        get_queryset: Callable[[HttpRequest], QuerySet] | None = ...,
        authentication_classes: Iterable[type] | None = ...,
        permission_classes: Iterable[type] | None = ...,
        throttle_classes: Iterable[type] | None = ...,
        watermelon: Any = ..., owner: str | None = ..., scope: str | None = ...,
        scope_values: Callable[[HttpRequest], Iterable[Any]] | None = ...,
        read_only_fields: Sequence[str] = ...,
        perform_write: Callable[[HttpRequest, list[Model]], None] | None = ...,
    ) -> Callable[[ModelT], ModelT]: ...

    @overload
    def register(
        self, model: ModelT, *, uri: str | None = ..., fields: Sequence[str] | None = ...,
        exclude: Sequence[str] | None = ..., queryset: QuerySet | None = ...,
        get_queryset: Callable[[HttpRequest], QuerySet] | None = ...,
        authentication_classes: Iterable[type] | None = ...,
        permission_classes: Iterable[type] | None = ...,
        throttle_classes: Iterable[type] | None = ...,
        watermelon: Any = ..., owner: str | None = ..., scope: str | None = ...,
        scope_values: Callable[[HttpRequest], Iterable[Any]] | None = ...,
        read_only_fields: Sequence[str] = ...,
        perform_write: Callable[[HttpRequest, list[Model]], None] | None = ...,
    ) -> ModelT: ...

    def register(
        self,
        model: type[Model] | str | None = None,
        *,
        uri: str | None = None,
        fields: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        queryset: QuerySet | None = None,
        get_queryset: Callable[[HttpRequest], QuerySet] | None = None,
        authentication_classes: Iterable[type] | None = None,
        permission_classes: Iterable[type] | None = None,
        throttle_classes: Iterable[type] | None = None,
        watermelon: Any = None,
        owner: str | None = None,
        scope: str | None = None,
        scope_values: Callable[[HttpRequest], Iterable[Any]] | None = None,
        read_only_fields: Sequence[str] = (),
        perform_write: Callable[[HttpRequest, list[Model]], None] | None = None,
    ) -> Any:
        """Register ``model`` for sync. Returns the model, so it works as a decorator.

        ``model``: a :class:`~persistence_sync.models.SyncableModel` subclass,
        or its ``"app_label.Model"`` label (resolved when the apps are ready;
        mistakes are then reported by ``manage.py check``).
        ``uri``: the endpoint path under the included URLs (default:
        ``"<modelName>Changes"``). ``fields`` / ``exclude``: which fields are
        synced (default: every concrete field the protocol can carry).
        ``queryset`` or ``get_queryset(request)``: the objects a request may see
        and touch. ``authentication_classes``, ``permission_classes``,
        ``throttle_classes``: DRF classes (default: the project's DRF settings).
        ``watermelon``: the model's table for WatermelonDB clients, a table name
        or a :class:`persistence_sync.watermelon.WatermelonTable` (default: the
        plural model name, e.g. ``tasks``).

        Multi-user options (README, "Multi-user sync"; :mod:`persistence_sync.scoping`):
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

        A model already registered is refused (the error says where it was
        registered); unregister it first to change its options.
        """
        options: dict[str, Any] = dict(
            uri=uri, fields=fields, exclude=exclude, queryset=queryset,
            get_queryset=get_queryset, authentication_classes=authentication_classes,
            permission_classes=permission_classes, throttle_classes=throttle_classes,
            watermelon=watermelon, owner=owner, scope=scope, scope_values=scope_values,
            read_only_fields=read_only_fields, perform_write=perform_write,
        )
        if queryset is not None and get_queryset is not None:
            raise RegistrationError("Pass either queryset= or get_queryset= to register(), not both.")
        if model is None:
            return lambda model: self.register(model, **options)
        where = _caller()
        if isinstance(model, str):
            label = model.lower()
            if label in self._registrations or any(p.label.lower() == label for p in self._pending):
                raise RegistrationError(f"{model} is already registered for sync.")
            self._pending.append(_Pending(model, options, where))
            if apps.ready:
                self._resolve_pending()
            return model
        self._add(model, options, where, raise_errors=True)
        return model

    def unregister(self, model: type[Model] | str) -> None:
        """Stop syncing ``model``; its endpoint disappears from :attr:`urls`."""
        label = _label(model)
        if label not in self._registrations:
            raise RegistrationError(f"{model} is not registered for sync; nothing to unregister.")
        del self._registrations[label]
        self.invalidate_urls()

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
            for target in _related_models(reg):
                if target._meta.label_lower in self._registrations:
                    visit(self._registrations[target._meta.label_lower], (*path, reg.label))
            seen.add(reg.label)
            ordered.append(reg)

        for reg in list(self._registrations.values()):
            visit(reg)
        return ordered

    @cached_property
    def urls(self) -> list[URLPattern]:
        """One URL pattern per registration, named after its model's label, and WatermelonDB's."""
        from django.urls import path

        from persistence_sync.watermelon import watermelon_view

        return [
            *(path(reg.uri, reg.view, name=reg.label) for reg in self.registrations()),
            path("watermelon", watermelon_view(self), name="watermelon"),
        ]

    def invalidate_urls(self) -> None:
        """Forget the cached :attr:`urls` and make the URL resolvers serving them reload.

        ``include()`` makes a resolver that caches its patterns, and Django's
        ``clear_url_caches()`` drops only the root resolver; so every loaded
        resolver still holding the old patterns is reset too, and a
        (un)registration after the URLs were loaded takes effect. Called by
        register() and unregister(); call it after swapping :data:`default`.
        """
        stale = self.__dict__.pop("urls", None)
        if stale is not None:
            _reset_resolvers_serving(stale, lambda: self.urls)
        clear_url_caches()

    def check(self, app_configs: Iterable[AppConfig] | None = None) -> list[CheckMessage]:
        """Everything wrong with the registrations, as system-check messages."""
        self._resolve_pending_if_ready()
        errors = list(self._failed)
        regs = list(self._registrations.values())
        for index, reg in enumerate(regs):
            # Registrations made by class were checked by register(); check again
            # in case something changed them since (a field removed, say).
            errors += registration_problems(reg.model, reg.uri, reg.fields, others=regs[:index],
                                            **_scope_options(vars(reg)))
            errors += _manager_problems(reg.model)
            errors += _exposure_problems(reg)
            errors += _index_problems(reg)
        if app_configs is None:
            return errors
        # Errors about a model only for its app; an unknown label's always.
        return [error for error in errors
                if getattr(error.obj, "_meta", None) is None or error.obj._meta.app_config in app_configs]

    def _add(self, model: Any, options: dict[str, Any], where: str,
             raise_errors: bool) -> list[CheckMessage]:
        """Register a resolved model; return (or raise) what is wrong with it."""
        errors = self._problems(model, options)
        if errors:
            if raise_errors:
                raise RegistrationError(f"{errors[0].msg} {errors[0].hint}")
            return errors
        fields = tuple(options["fields"] or default_fields(model))
        fields = tuple(name for name in fields if name not in (options["exclude"] or ()))
        self._registrations[_label(model)] = Registration(
            model=model, uri=_uri(model, options), fields=fields,
            queryset=options["queryset"], get_queryset=options["get_queryset"],
            authentication_classes=_tuple(options["authentication_classes"]),
            permission_classes=_tuple(options["permission_classes"]),
            throttle_classes=_tuple(options["throttle_classes"]),
            watermelon=_watermelon_table(options["watermelon"]),
            owner=options["owner"], scope=options["scope"], scope_values=options["scope_values"],
            read_only_fields=tuple(options["read_only_fields"] or ()),
            perform_write=options["perform_write"],
            registered_at=where,
        )
        self.invalidate_urls()
        return []

    def _problems(self, model: Any, options: dict[str, Any]) -> list[CheckMessage]:
        if hasattr(model, "_meta") and _label(model) in self._registrations:
            first = self._registrations[_label(model)]
            return [checks.message("persistence_sync.E007", obj=model, model=model._meta.label,
                                   where=first.registered_at)]
        uri = _uri(model, options)
        if hasattr(model, "_meta") and not uri:
            return [checks.message("persistence_sync.E008", obj=model, model=model._meta.label,
                                   uri=options["uri"], default=default_uri(model))]
        return registration_problems(model, uri, options["fields"], options["exclude"],
                                     others=self._registrations.values(),
                                     **_scope_options(options))

    def _resolve_pending_if_ready(self) -> None:
        if apps.ready:
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


def _caller() -> str:
    """The ``file:line`` of the code that called register(), for error messages."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "unknown"


def _label(model: type[Model] | str) -> str:
    return model.lower() if isinstance(model, str) else model._meta.label_lower


def _uri(model: Any, options: dict[str, Any]) -> str:
    uri = options["uri"] or (default_uri(model) if hasattr(model, "_meta") else "")
    return uri.lstrip("/")


def _watermelon_table(value: Any) -> Any:
    from persistence_sync.watermelon import WatermelonTable

    if value is None or isinstance(value, WatermelonTable):
        return value
    if isinstance(value, str) and value:
        return WatermelonTable(name=value)
    raise RegistrationError(f"watermelon= must be a table name or a WatermelonTable, not {value!r}.")


def _scope_options(options: dict[str, Any]) -> dict[str, Any]:
    return {key: options[key] for key in ("owner", "scope", "scope_values", "read_only_fields")}


def _tuple(value: Iterable[type] | None) -> tuple[type, ...] | None:
    return None if value is None else tuple(value)


def default_uri(model: type[Model]) -> str:
    """``"<modelName>Changes"``: the URI of a model registered without ``uri=``."""
    name = model._meta.object_name or model.__name__
    return f"{name[0].lower()}{name[1:]}Changes"


def default_fields(model: type[Model]) -> tuple[str, ...]:
    """The fields synced by default: every concrete field the protocol can carry."""
    from persistence_sync.serializers import unsupported_reason

    return tuple(
        f.name
        for f in model._meta.concrete_fields
        if not f.primary_key and f.name != "last_change" and unsupported_reason(f) is None
    )


def registration_problems(model: Any, uri: str, fields: Sequence[str] | None,
                          exclude: Sequence[str] | None = None,
                          others: Iterable[Registration] = (), owner: str | None = None,
                          scope: str | None = None, scope_values: Any = None,
                          read_only_fields: Sequence[str] = ()) -> list[CheckMessage]:
    """Everything wrong with registering ``model`` beside ``others``, as check messages."""
    from persistence_sync.models import SyncableModel
    from persistence_sync.serializers import unsupported_reason

    name = model._meta.label if hasattr(model, "_meta") else repr(model)
    if not (isinstance(model, type) and issubclass(model, SyncableModel)):
        return [checks.message("persistence_sync.E001", obj=model, model=name)]
    if model._meta.abstract:
        return [checks.message("persistence_sync.E006", obj=model, model=name)]
    errors = [
        checks.message("persistence_sync.E002", obj=model, model=name, uri=uri,
                       other=other.model._meta.label, where=other.registered_at)
        for other in others
        if other.uri == uri and other.model is not model
    ]
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
    errors += _scope_problems(model, name, owner, scope, scope_values, read_only_fields, synced)
    return errors


def _is_user_link(model_field: Any) -> bool:
    """Whether ``model_field`` is a ForeignKey to the user model (also before models load)."""
    from django.conf import settings

    if not model_field.many_to_one:
        return False
    target = model_field.remote_field.model
    label = target if isinstance(target, str) else target._meta.label
    return label.lower() == settings.AUTH_USER_MODEL.lower()


def _scope_problems(model: Any, name: str, owner: str | None, scope: str | None,
                    scope_values: Any, read_only_fields: Sequence[str],
                    synced: Sequence[str]) -> list[CheckMessage]:
    """What is wrong with the owner= / scope= / scope_values= / read_only_fields= options."""
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
    for field_name in read_only_fields or ():
        if field_name not in synced:
            errors.append(checks.message("persistence_sync.E017", obj=model, model=name,
                                         field=field_name, synced=", ".join(synced)))
    return errors


def _exposure_problems(reg: Registration) -> list[CheckMessage]:
    """Open by default is loud: anonymous access, or per-user data synced to everyone."""
    from django.contrib.auth import get_user_model

    warnings = []
    name = reg.model._meta.label
    if _anonymous_allowed(reg):
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
    """A model synced by owner= or scope= wants an index that starts (that field, id).

    A page of a scoped pull is the rows of the request's scope after an id,
    in id order: a range of that index. MySQL and MariaDB need none (InnoDB
    ends every secondary index with the primary key), so their sites are
    not warned.
    """
    from django.db import connections, router

    try:
        field = reg.scope_field
    except FieldDoesNotExist:  # E012 says so
        return []
    if (field is None or not field.concrete
            or connections[router.db_for_read(reg.model)].vendor == "mysql"):
        return []
    opts = reg.model._meta
    pk = opts.pk
    wanted = ({field.name, field.attname}, {pk.name, pk.attname, "pk"})
    candidates = [list(index.fields) for index in opts.indexes]
    candidates += [list(fields) for fields in opts.unique_together]
    candidates += [list(getattr(constraint, "fields", ())) for constraint in opts.constraints]
    for fields in candidates:
        names = [name.lstrip("-") for name in fields[:2]]
        if len(names) == 2 and names[0] in wanted[0] and names[1] in wanted[1]:
            return []
    return [checks.message("persistence_sync.W004", obj=reg.model, model=opts.label,
                           field=field.name, pk=pk.name, class_name=reg.model.__name__)]


def _anonymous_allowed(reg: Registration) -> bool:
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


def _manager_problems(model: type[Model]) -> list[CheckMessage]:
    from persistence_sync.models import SyncableQuerySet

    queryset = model._default_manager.get_queryset()
    if isinstance(queryset, SyncableQuerySet):
        return []
    return [checks.message("persistence_sync.W001", obj=model, model=model._meta.label,
                           queryset=type(queryset).__name__)]


def _related_models(reg: Registration) -> Iterator[type[Model]]:
    for name in reg.fields:
        try:
            model_field = reg.model._meta.get_field(name)
        except FieldDoesNotExist:
            continue  # reported by the system checks
        # A relation to a model that does not exist stays a string; Django's
        # own checks report it (fields.E300), so it must not break the URLs.
        if model_field.is_relation and isinstance(model_field.related_model, type):
            yield model_field.related_model


def _reset_resolvers_serving(stale: list[URLPattern],
                             fresh: Callable[[], list[URLPattern]]) -> None:
    """Reset every loaded URL resolver whose patterns are ``stale``.

    A resolver made by ``include("persistence_sync.urls")`` reads the module
    again; one made by ``include(some_registry.urls)`` holds the list itself
    and is given ``fresh()``. Before the URLs are first used (registrations at
    import time) nothing holds them and nothing is loaded here.
    """
    from django.conf import settings
    from django.urls import get_resolver
    from django.urls.resolvers import URLResolver

    if getattr(settings, "ROOT_URLCONF", None) not in sys.modules:
        return
    pending = list(get_resolver().url_patterns)
    while pending:
        pattern = pending.pop()
        if not isinstance(pattern, URLResolver):
            continue
        # Only loaded resolvers can hold the patterns; others are left unloaded.
        loaded = pattern.__dict__.get("url_patterns")
        if loaded is stale:
            for cached in ("url_patterns", "urlconf_module"):
                pattern.__dict__.pop(cached, None)
            urlconf = fresh() if pattern.urlconf_name is stale else pattern.urlconf_name
            URLResolver.__init__(pattern, pattern.pattern, urlconf, pattern.default_kwargs,
                                 pattern.app_name, pattern.namespace)
        elif loaded:
            pending.extend(loaded)


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
