"""Who may see and touch what: scope values, the write rule, scoped removals, revocation.

A registration with ``owner="owner"`` or ``scope="team", scope_values=...``
(see :class:`persistence_sync.registry.SyncOptions`) names one concrete field
whose value decides who sees an object. Everything else follows from it:

* **reads**: the queryset is limited to the request's values; tombstones
  carry the scope value the object had when it was deleted or moved away
  (``Tombstone.scope``), and a pull returns only those of the request's values;
* **writes** (:meth:`Access.check_before` and after): every object a push
  creates, changes or deletes must be visible to the request before the
  write, and every object it creates or changes after it; foreign keys must
  name objects the request may see; a hidden object answers exactly like a
  missing one;
* **moves**: an object whose scope value changes (by any write path) leaves a
  tombstone for its old value, stamped like the move, so the old scope's
  devices drop it while the new scope's devices receive it;
* **grants and revocations**: the values a user was served are remembered
  per model (:class:`~persistence_sync.models.ScopeGrant`); when
  ``scope_values(request)`` changes, a pull whose ``since`` is older than the
  change gets every object of a granted value, and a removal for every object
  the lost value held then: a *revocation*, a tombstone that names the user
  (``Tombstone.user``), paged and streamed like every other removal.

``get_queryset=`` / ``queryset=`` without a scope remain the escape hatch:
reads and the write rule follow the queryset, but the server cannot tell
which tombstones or moves concern whom, so every pull carries every
tombstone of the model and an object leaving the queryset is not removed
from devices that hold it.

One :class:`RequestScopes` per request makes one :class:`Access` per model,
so that the project's ``scope_values`` hook runs once per model and request.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from django.db import models

from persistence_sync import clock, compiled
from persistence_sync.conf import sync_settings
from persistence_sync.db import chunks, is_in, lock_timeout, run_with_retries
from persistence_sync.exceptions import PUSH_REFUSED
from persistence_sync.models import ScopeGrant, Tombstone, scope_key
from persistence_sync.registry import Registration, SyncRegistry
from persistence_sync.serializers import USE_DEFAULT, raise_item_errors

# One answer for a hidden object and a missing one, so no push can probe ids.
NOT_YOURS = "you may not change this object"


class ScopeValues:
    """The scope values a request may see: ``raw`` for queries, ``keys`` (strings) for tombstones."""

    def __init__(self, values):
        raw = []
        for value in values:
            if isinstance(value, models.Model):
                value = value.pk
            if value is not None and value not in raw:
                raw.append(value)
        self.raw = raw
        self.keys = frozenset(str(value) for value in raw)

    def __contains__(self, value):
        return value is not None and str(value) in self.keys

    def __repr__(self):
        return f"ScopeValues({sorted(self.keys)!r})"


def user_key(request):
    """The requester's primary key as grants and revocations store it, or None."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return str(user.pk)


class RequestScopes:
    """What one request may see of each model of ``registry``: one :class:`Access` each."""

    def __init__(self, request, registry: SyncRegistry):
        self.request = request
        self.registry = registry
        self._accesses: dict[str, Access] = {}

    def access(self, registration: Registration) -> Access:
        if registration.label not in self._accesses:
            self._accesses[registration.label] = Access(registration, self.request, self)
        return self._accesses[registration.label]

    def related(self, target, to_field, values, using):
        """Those of ``values`` (of ``target``'s field ``to_field``) that a pushed foreign key may name."""
        if self.registry.is_registered(target):
            return self.access(self.registry.get_registration(target)).having(
                to_field, values, using)
        return _having(target, to_field, values, using)


class Access:
    """What one request may see and touch of one registered model.

    ``values``: the request's :class:`ScopeValues` (None when the model has
    no scope), computed once; ``queryset``: what the request sees. Code of the
    project's that stores a push itself (:func:`persistence_sync.pushes.push`)
    without a request may pass the ``queryset`` it is allowed instead.
    """

    def __init__(self, registration: Registration, request, scopes: RequestScopes | None = None,
                 queryset=None):
        self.registration = registration
        self.request = request
        self.scopes = scopes
        self.user = user_key(request)
        self.values = self._scope_values()
        self.scope_attname: str | None = registration.scope_attname
        if queryset is not None:
            self.queryset = queryset
        # Whether what the request sees is the registration's own queryset (or
        # manager) narrowed to its scope values, the same for every request
        # but for those values: then its queries are compiled once (fetch()).
        self.compilable = (queryset is None and registration.get_queryset is None
                           and (registration.queryset is not None
                                or compiled.static_manager(registration.model._default_manager)))

    @functools.cached_property
    def queryset(self):
        """What the request sees: built when first needed (compiled queries need no queryset)."""
        return self._queryset()

    def _scope_values(self) -> ScopeValues | None:
        reg = self.registration
        if reg.owner:
            return ScopeValues(() if self.user is None else [self.request.user.pk])
        if reg.scope:
            return ScopeValues(reg.scope_values(self.request) or ())  # type: ignore[misc]
        return None

    def _queryset(self):
        reg = self.registration
        if reg.get_queryset is not None:
            queryset = reg.get_queryset(self.request)
        elif reg.queryset is not None:
            queryset = reg.queryset.all()
        else:
            queryset = reg.model._default_manager.all()
        if self.values is not None:
            queryset = queryset.filter(**{f"{self.scope_attname}__in": self.values.raw})
        return queryset

    def fetch(self, using, key, refine, *args):
        """The rows of ``refine(visible queryset, *args)`` (a ``values_list()``).

        Compiled once per registration and ``key`` where :attr:`compilable`
        (:mod:`persistence_sync.compiled`): ``key`` must name what ``refine``
        does besides its arguments.
        """
        values = self.values
        if not self.compilable or (values is not None and not values.raw):
            return list(refine(self.queryset.using(using), *args))
        if values is None:
            def build(*marked):
                return refine(self.queryset.using(using), *marked)

            return compiled.fetch(using, (self.registration, *key), build, *args)

        def build_scoped(raw, *marked):
            return refine(self.marked(raw).queryset.using(using), *marked)

        return compiled.fetch(using, (self.registration, "scoped", *key), build_scoped,
                              list(values.raw), *args)

    def marked(self, raw, keys=None, user=None):
        """A copy seeing the scope values ``raw`` (markers of :mod:`persistence_sync.compiled`)."""
        marked = copy.copy(self)
        marked.values = ScopeValues(raw)
        if keys is not None:
            marked.values.keys = frozenset(keys)
        if user is not None:
            marked.user = user
        marked.queryset = marked._queryset()
        return marked

    # --- pulls -------------------------------------------------------------

    def refresh_grants(self, using):
        """Record a change of the request's scope values (before the pull's snapshot).

        Stamped by a tick of the model's clock (waiting at most
        ``LOCK_TIMEOUT``), so that the pull that follows answers a ``now`` at
        or after the change, and a device whose ``since`` predates it,
        whichever device it is, gets the whole change: the objects of a
        granted value, and a revocation of each object a lost value holds.
        """
        if not self.registration.scope or self.user is None:
            return
        grants = ScopeGrant.objects.using(using).filter(model=self.registration.label,
                                                        user=self.user)
        assert self.values is not None  # a scope= registration has values
        wanted = set(self.values.keys)
        if {value for value, active in grants.values_list("value", "active") if active} == wanted:
            return

        def write():
            with lock_timeout(using, sync_settings.LOCK_TIMEOUT):
                stamp = clock.tick(self.registration.model, using)
            rows = {value: (pk, active) for pk, value, active in
                    grants.values_list("pk", "value", "active")}
            added = [value for value in wanted if not rows.get(value, (None, False))[1]]
            regranted = [rows[value][0] for value in added if value in rows]
            if regranted:
                grants.filter(pk__in=regranted).update(active=True, last_change=stamp)
            # A revocation of a value held again is answered by the grant itself.
            Tombstone.objects.using(using).filter(
                model=self.registration.label, user=self.user, scope__in=added).delete()
            lost = [(pk, value) for value, (pk, active) in rows.items()
                    if active and value not in wanted]
            for pk, value in lost:
                grants.filter(pk=pk).update(active=False, last_change=stamp)
                self._revoke(value, stamp, using)
            ScopeGrant.objects.using(using).bulk_create([
                ScopeGrant(model=self.registration.label, user=self.user, value=value,
                           active=True, last_change=stamp)
                for value in added if value not in rows
            ])

        run_with_retries(write, using)

    def _revoke(self, value, stamp, using):
        """A revocation for each object ``value`` holds: exactly what the user's devices may hold."""
        model = self.registration.model._base_manager.db_manager(using)
        assert self.scope_attname is not None  # only a scope= registration revokes
        pks = list(model.filter(**{self.scope_attname: value}).values_list("pk", flat=True))
        Tombstone.record(self.registration.model, pks, stamp, using,
                         scopes=dict.fromkeys(pks, scope_key(value)), user=self.user)

    def grant_changes(self, since, now, using):
        """``(granted, revoked)``: changes of the request's scope values in ``(since, now]``.

        ``granted``: values granted in that window that the request holds now
        (the pull answers every object of them, whatever its stamp);
        ``revoked``: ``(value, stamp)`` of values lost in it (their deletions
        up to ``stamp`` are still the request's to learn of).
        """
        if not self.registration.scope or self.user is None or since <= 0:
            return [], []  # a first sync gets everything visible, and holds nothing to remove
        assert self.values is not None  # a scope= registration has values
        changed = list(
            ScopeGrant.objects.using(using)
            .filter(model=self.registration.label, user=self.user,
                    last_change__gt=since, last_change__lte=now)
            .values_list("value", "active", "last_change")
        )
        granted = [value for value, active, _ in changed if active and value in self.values]
        revoked = [(value, stamp) for value, active, stamp in changed
                   if not active and value not in self.values]
        return granted, revoked

    def removals(self, tombstones, revoked=()):
        """The tombstones (of a pull's window) this request may learn of.

        Unscoped: every tombstone (nothing tells whose they were). Scoped: the
        removals from the request's scope values, those from a value it lost
        (``revoked``) up to the moment it lost it, and its own revocations.
        """
        if self.values is None:
            return tombstones.filter(user__isnull=True)
        mine = models.Q(user__isnull=True, scope__in=self.values.keys)
        for value, stamp in revoked:
            mine |= models.Q(user__isnull=True, scope=value, last_change__lte=stamp)
        if self.user is not None:
            mine |= models.Q(user=self.user)
        return tombstones.filter(mine)

    def sees(self, value) -> bool:
        """Whether ``value`` is one of the request's scope values."""
        return self.values is not None and value in self.values

    def visible(self, pks, using):
        """Those of ``pks`` the request sees now."""
        return self.having("pk", pks, using)

    def having(self, name, values, using):
        """Those of ``values`` that the objects the request sees hold in field ``name``."""
        found: set = set()
        refine = functools.partial(_having_values, name=name)
        for chunk in chunks(values):
            found.update(row[0] for row in self.fetch(using, ("having", name), refine, chunk))
        return found

    # --- pushes ------------------------------------------------------------

    def check_before(self, changes, stored, using):
        """The write rule's first half; drops removals of hidden objects (as if missing).

        Raises 403 when a pushed change names an object the request may not
        see, or re-creates an id deleted (or moved away) from another scope.
        """
        if not self.registration.is_scoped:
            return
        visible = self.visible(list(stored), using)
        errors = []
        for pk in list(changes):
            change = changes[pk]
            if pk in stored and pk not in visible:
                if change.removed:
                    del changes[pk]  # like a removal of an id that never existed
                else:
                    errors.append(self._refusal(change, pk))
        errors += self._foreign_tombstones(changes, stored, using)
        if errors:
            errors.sort(key=lambda error: error["index"])
            raise_item_errors(PUSH_REFUSED, errors, status_code=403)

    def _foreign_tombstones(self, changes, stored, using):
        if self.values is None:
            return []
        new = [pk for pk, change in changes.items() if pk not in stored and not change.removed]
        errors = []

        def build(ids, label):
            return (Tombstone.objects.using(using)
                    .filter(is_in("object_id", ids), model=label, scope__isnull=False,
                            user__isnull=True)
                    .values_list("object_id", "scope"))

        by_key = {str(pk): pk for pk in new}  # tombstones name ids as text
        for chunk in chunks(by_key):
            for object_id, scope in compiled.fetch(using, ("scoped-tombstones",), build, chunk,
                                                   self.registration.label):
                if scope not in self.values.keys:
                    # A database that compares ids loosely (MySQL's usual
                    # collations) may return the tombstone of "A1" for "a1".
                    loose = object_id.rstrip(" ").casefold()
                    errors += [self._refusal(changes[pk], pk) for key, pk in by_key.items()
                               if key == object_id or key.rstrip(" ").casefold() == loose]
        return errors

    def server_values(self, changes, stored):
        """Take the owner and read-only fields out of the pushed values (or refuse).

        A pushed owner is accepted only when it names the requester (clients
        send back what they pulled) or is null (a new object); any other value
        is refused like a hidden object. A read-only field may be sent
        unchanged (or null for a new object), never changed.
        """
        registration = self.registration
        by_attname = {codec.attname: codec for codec in registration.codecs}
        owner = self.scope_attname if registration.owner else None
        read_only = [codec.attname for codec in registration.codecs
                     if codec.name in registration.read_only_fields]
        forbidden, errors = [], []
        for pk, change in changes.items():
            if change.removed:
                continue
            values = change.values
            if owner in values:
                value = values.pop(owner)
                if value is not USE_DEFAULT and value is not None and not self.sees(value):
                    forbidden.append(self._refusal(change, pk))
            for attname in read_only:
                if attname not in values:
                    continue
                value = values.pop(attname)
                codec = by_attname[attname]
                if pk in stored:
                    unchanged = codec.wire(None if value is USE_DEFAULT else value) == codec.wire(
                        stored[pk][attname])
                else:
                    unchanged = value is None or value is USE_DEFAULT
                if not unchanged:
                    errors.append({"index": change.index, "id": pk, "field": codec.name,
                                   "message": "read-only: set by the server"})
        if forbidden:
            raise_item_errors(PUSH_REFUSED, forbidden, status_code=403)
        if errors:
            raise_item_errors(PUSH_REFUSED, errors)

    def initial_values(self):
        """Values every object a push creates starts with: its owner, the requester."""
        if not self.registration.owner:
            return {}
        return {self.scope_attname: self.request.user.pk}

    def prepare(self, writes):
        """Run the registration's ``perform_write`` hook on the objects about to be written."""
        if self.registration.perform_write is not None and writes:
            self.registration.perform_write(self.request, writes)

    def check_scope(self, changes, writes):
        """The write rule's second half for the scope, before writing: 403 if any leaves it."""
        if self.values is None:
            return
        attname = self.scope_attname
        assert attname is not None  # scope values come with the scope's field
        hidden = [obj.pk for obj in writes if not self.sees(getattr(obj, attname))]
        if hidden:
            raise_item_errors(PUSH_REFUSED, [self._refusal(changes[pk], pk) for pk in hidden],
                              status_code=403)

    def check_after(self, changes, writes, using):
        """The write rule's second half: every object written is still visible (403 otherwise).

        Runs after the rows are written, inside the push's transaction, so a
        refusal stores nothing: the only way to apply a queryset's own filter.
        """
        if not writes or not self.registration.has_queryset:
            return  # no queryset of the project's: check_scope decided already
        visible = self.visible([obj.pk for obj in writes], using)
        hidden = [obj.pk for obj in writes if obj.pk not in visible]
        if hidden:
            raise_item_errors(PUSH_REFUSED, [self._refusal(changes[pk], pk) for pk in hidden],
                              status_code=403)

    def related(self, target, to_field, values, using):
        """Those of ``values`` (of ``target``'s field ``to_field``) a pushed foreign key may name."""
        if self.scopes is not None:
            return self.scopes.related(target, to_field, values, using)
        return _having(target, to_field, values, using)

    @staticmethod
    def _refusal(change, pk) -> dict[str, Any]:
        return {"index": change.index, "id": pk, "field": None, "message": NOT_YOURS}


def _having_values(queryset, values, name):
    return queryset.filter(is_in(name, values)).values_list(name)


def _having(model, name, values, using):
    """Those of ``values`` that objects of ``model`` (not registered) hold in field ``name``."""
    manager = model._base_manager

    def build(marked):
        return _having_values(manager.db_manager(using).all(), marked, name)

    found: set = set()
    for chunk in chunks(values):
        if compiled.static_manager(manager):
            rows = compiled.fetch(using, ("having", model, name), build, chunk)
        else:
            rows = build(chunk)
        found.update(row[0] for row in rows)
    return found
