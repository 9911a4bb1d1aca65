"""Who a window of one model's stamps concerns, and whether one subscriber missed anything.

A feed process learns from the clock table that model ``m`` moved from ``P``
(the committed value it handled last) to ``C``. By the clock rule
(:mod:`persistence_sync.clock`) every stamp ``<= C`` has committed, so the
rows, removals and grants stamped in ``(P, C]`` are all readable now, and
:func:`concerned` reads, once per moved model and process (not per
connection), whom they concern:

* a model registered with ``owner=``/``scope=``: the distinct scope values of
  its rows stamped in the window (through the index on ``last_change``, so
  the cost follows the rows changed), of its removals from a scope
  (tombstones), and the users of its revocations and of its grants
  (:class:`~persistence_sync.models.ScopeGrant`, stamped by the same clock);
* any other model: whether anything at all changed; every subscriber that
  may read it is concerned.

A row stamped in the window but changed again before the query carries a
newer stamp and is found in the next window; a removal undone meanwhile (the
object written again) likewise. So no snapshot is needed here.

:func:`missed` answers the other question, for one subscriber reconnecting:
did anything it may see change in ``(since, until]``?
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models

from persistence_sync.clock import clock_key
from persistence_sync.models import ScopeGrant, Tombstone, scope_key
from persistence_sync.registry import Registration
from persistence_sync.scoping import ScopeValues


@dataclass
class Concerned:
    """Whom one model's window concerns: scope keys, users (grants, revocations), or anyone."""

    scopes: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    anything: bool = False  # the window holds any change (what unscoped subscribers need)


@dataclass(frozen=True)
class Model:
    """What the feed must know of one clock key: its model, labels and scope column."""

    model: type[models.Model]
    labels: tuple[str, ...]  # registered labels sharing the clock (tombstones name them)
    scope_attname: str | None  # the owner=/scope= column, None when unscoped
    grants: bool  # registered with scope= (grants and revocations are recorded)

    @property
    def key(self) -> str:
        return clock_key(self.model)

    @classmethod
    def of(cls, registrations: list[Registration]) -> Model:
        """The clock key's model from the registrations sharing it (same scope: check E018)."""
        first = registrations[0]
        return cls(first.model, tuple(sorted({reg.label for reg in registrations})),
                   first.scope_attname, any(reg.scope for reg in registrations))


def _window(queryset: models.QuerySet, since: int, until: int) -> models.QuerySet:
    return queryset.filter(last_change__gt=since, last_change__lte=until)


def concerned(model: Model, since: int, until: int, using: str) -> Concerned:
    """Whom the changes of ``model`` stamped in ``(since, until]`` concern."""
    rows = _window(model.model._base_manager.db_manager(using).all(), since, until)
    removals = _window(Tombstone.objects.using(using).filter(model__in=model.labels), since, until)
    found = Concerned()
    if model.scope_attname is None:
        found.anything = rows.exists() or removals.exists()
        return found
    for value in rows.order_by().values_list(model.scope_attname, flat=True).distinct():
        if value is not None:
            found.scopes.add(scope_key(value))
    for scope, user in removals.order_by().values_list("scope", "user").distinct():
        if user is not None:
            found.users.add(user)
        elif scope is not None:
            found.scopes.add(scope)
    if model.grants:
        grants = _window(ScopeGrant.objects.using(using).filter(model__in=model.labels), since, until)
        found.users.update(grants.order_by().values_list("user", flat=True).distinct())
    found.anything = bool(found.scopes or found.users) or (rows.exists() or removals.exists())
    return found


def missed(model: Model, values: ScopeValues | None, user: str | None, since: int, until: int,
           using: str) -> bool:
    """Whether a subscriber seeing ``values`` of ``model`` (None: every object) missed a change.

    ``user``: its user's key, whose revocations and grants count too.
    """
    if since >= until:
        return False
    rows = _window(model.model._base_manager.db_manager(using).all(), since, until)
    removals = _window(Tombstone.objects.using(using).filter(model__in=model.labels), since, until)
    if values is None:
        return rows.exists() or removals.exists()
    assert model.scope_attname is not None  # values come with a scope
    mine = models.Q(user__isnull=True, scope__in=values.keys)
    if user is not None:
        mine |= models.Q(user=user)
    if rows.filter(**{f"{model.scope_attname}__in": values.raw}).exists() or removals.filter(mine).exists():
        return True
    if model.grants and user is not None:
        grants = ScopeGrant.objects.using(using).filter(model__in=model.labels, user=user)
        return _window(grants, since, until).exists()
    return False


def grants_outdated(model: Model, values: ScopeValues, user: str, using: str) -> bool:
    """Whether the user's scope values differ from those their pulls recorded last.

    Their next pull then records the change (a grant or a revocation) and
    answers it: something changed for them that no window shows yet.
    """
    active = ScopeGrant.objects.using(using).filter(model__in=model.labels, user=user, active=True)
    return set(active.values_list("value", flat=True)) != set(values.keys)
