"""Who may see and touch what: scope values, the write rule, scoped removals, revocation.

A registration with ``owner="owner"`` or ``scope="team", scope_values=...``
(see :func:`persistence_sync.registry.register`) names one concrete field
whose value decides who sees an object. Everything else follows from it:

* **reads**: the queryset is limited to the request's values; tombstones
  carry the scope value the object had when it was deleted or moved away
  (``Tombstone.scope``), and a pull returns only those of the request's values;
* **writes** (:meth:`Access.check_push`): every object a push creates,
  changes or deletes must be visible to the request before the write, and
  every object it creates or changes after it; foreign keys must name objects
  the request may see; a hidden object answers exactly like a missing one;
* **moves**: an object whose scope value changes (by any write path) leaves a
  tombstone for its old value, stamped like the move, so the old scope's
  devices drop it while the new scope's devices receive it;
* **grants and revocations**: the values a user was served are remembered
  per model (:class:`~persistence_sync.models.ScopeGrant`); when
  ``scope_values(request)`` changes, a pull whose ``since`` is older than the
  change gets every object of a granted value and a removal for every object
  of a lost one. Objects of a granted value join the pull's streamed (and
  paged) window; removals for a lost value exist only in memory, so the rare
  pull that carries one is answered whole, sorted by id (``more: false``).

``get_queryset=`` / ``queryset=`` without a scope remain the escape hatch:
reads and the write rule follow the queryset, but the server cannot tell
which tombstones or moves concern whom, so every pull carries every
tombstone of the model and an object leaving the queryset is not removed
from devices that hold it.
"""

from typing import Any

from django.db import models

from persistence_sync import clock
from persistence_sync.db import chunks, is_in, run_with_retries
from persistence_sync.exceptions import PUSH_REFUSED
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


def scope_values_for(registration, request):
    """The scope values ``request`` may see, or None when ``registration`` has no scope."""
    if registration.owner:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return ScopeValues(())
        return ScopeValues([user.pk])
    if registration.scope:
        return ScopeValues(registration.scope_values(request) or ())
    return None


def user_key(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return str(user.pk)


class Access:
    """What one request may see and touch of one registered model."""

    def __init__(self, registration, request, queryset=None):
        self.registration = registration
        self.request = request
        self.values = scope_values_for(registration, request)
        self.queryset = registration.queryset_for(request) if queryset is None else queryset
        field = registration.scope_field
        self.scope_attname: str | None = None if field is None else field.attname

    # --- pulls -------------------------------------------------------------

    def refresh_grants(self, using):
        """Record a change of the request's scope values (before the pull's snapshot).

        Stamped by a tick of the model's clock, so that the pull that follows
        answers a ``now`` at or after the change, and a device whose ``since``
        predates it, whichever device it is, gets the whole change.
        """
        from persistence_sync.models import ScopeGrant

        user = user_key(self.request)
        if not self.registration.scope or user is None:
            return
        scope_attname = self.scope_attname
        assert scope_attname is not None  # the registration has a scope
        label = self.registration.label
        grants = ScopeGrant.objects.using(using).filter(model=label, user=user)
        wanted = set(self.values.keys)
        if {value for value, active in grants.values_list("value", "active") if active} == wanted:
            return

        def write():
            stamp = clock.tick(self.registration.model, using)
            rows = {value: (pk, active) for pk, value, active in
                    grants.values_list("pk", "value", "active")}
            added = [value for value in wanted if not rows.get(value, (None, False))[1]]
            regranted = [rows[value][0] for value in added if value in rows]
            if regranted:
                grants.filter(pk__in=regranted).update(active=True, last_change=stamp)
            model = self.registration.model._base_manager.db_manager(using)
            for value, (pk, active) in rows.items():
                if active and value not in wanted:
                    revoked_ids = list(model.filter(**{scope_attname: value})
                                       .values_list("pk", flat=True))
                    grants.filter(pk=pk).update(active=False, last_change=stamp,
                                                revoked_ids=revoked_ids)
            ScopeGrant.objects.using(using).bulk_create([
                ScopeGrant(model=label, user=user, value=value, active=True, last_change=stamp)
                for value in added if value not in rows
            ])

        run_with_retries(write, using)

    def tombstones(self, tombstones):
        """The tombstones this request may learn of."""
        if self.values is None:
            return tombstones  # no scope: nothing tells whose they were
        return tombstones.filter(scope__in=self.values.keys)

    def grant_changes(self, since, now, using):
        """``(granted, revoked)``: changes of the request's scope values in ``(since, now]``.

        ``granted``: values granted in that window that the request holds now
        (the pull answers every object of them, whatever its stamp);
        ``revoked``: ``(value, stamp, revoked_ids)`` of values lost in it.
        """
        from persistence_sync.models import ScopeGrant

        user = user_key(self.request)
        if not self.registration.scope or user is None:
            return [], []
        changed = list(
            ScopeGrant.objects.using(using)
            .filter(model=self.registration.label, user=user,
                    last_change__gt=since, last_change__lte=now)
            .values_list("value", "active", "last_change", "revoked_ids")
        )
        granted = [value for value, active, _, _ in changed if active and value in self.values]
        revoked = [(value, stamp, revoked_ids) for value, active, stamp, revoked_ids in changed
                   if not active and value not in self.values]
        return granted, revoked

    def revoked_removals(self, revoked, since, using):
        """``{pk: stamp}``: a removal for every object a device may hold of a ``revoked`` value.

        What the value held when it was revoked, and what left it between the
        device's last pull (``since``) and then; nothing created since. These
        removals exist only in memory (the objects live on elsewhere, or were
        never the device's), so :func:`persistence_sync.server.pull_chunks`
        answers a pull that carries them whole, not streamed nor paged.
        """
        from persistence_sync.models import Tombstone

        removals: dict[Any, int] = {}  # pk -> the stamp of its removal

        def add(pk, stamp):
            removals[pk] = max(stamp, removals.get(pk, stamp))

        for value, stamp, revoked_ids in revoked:
            for pk in revoked_ids:
                add(pk, stamp)
            for pk, tombstone_stamp in (
                Tombstone.objects.using(using)
                .filter(model=self.registration.label, scope=value,
                        last_change__gt=since, last_change__lte=stamp)
                .values_list("object_id", "last_change")
            ):
                add(pk, tombstone_stamp)
        return removals

    def visible(self, pks, using):
        """Those of ``pks`` the request sees now."""
        found = set()
        for chunk in chunks(pks):
            found.update(self.queryset.using(using).filter(is_in("pk", chunk))
                         .values_list("pk", flat=True))
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
        from persistence_sync.models import Tombstone

        if self.values is None:
            return []
        new = [pk for pk, change in changes.items() if pk not in stored and not change.removed]
        errors = []
        for chunk in chunks(new):
            for object_id, scope in (
                Tombstone.objects.using(using)
                .filter(is_in("object_id", chunk), model=self.registration.label,
                        scope__isnull=False)
                .values_list("object_id", "scope")
            ):
                if scope not in self.values.keys:
                    errors.append(self._refusal(changes[object_id], object_id))
        return errors

    def server_values(self, changes, stored, codecs):
        """Take the owner and read-only fields out of the pushed values (or refuse).

        A pushed owner is accepted only when it names the requester (clients
        send back what they pulled) or is null (a new object); any other value
        is refused like a hidden object. A read-only field may be sent
        unchanged (or null for a new object), never changed.
        """
        registration = self.registration
        by_attname = {codec.attname: codec for codec in codecs}
        owner = registration.scope_field.attname if registration.owner else None
        read_only = [registration.model._meta.get_field(name).attname
                     for name in registration.read_only_fields]
        forbidden, errors = [], []
        for pk, change in changes.items():
            if change.removed:
                continue
            values = change.values
            if owner in values:
                value = values.pop(owner)
                if value is not USE_DEFAULT and value is not None and value not in self.values:
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
        return {self.registration.scope_field.attname: self.request.user.pk}

    def prepare(self, writes):
        """Run the registration's ``perform_write`` hook on the objects about to be written."""
        if self.registration.perform_write is not None and writes:
            self.registration.perform_write(self.request, writes)

    def check_scope(self, changes, writes):
        """The write rule's second half for the scope, before writing: 403 if any leaves it."""
        if self.values is None:
            return
        scope_attname = self.scope_attname
        assert scope_attname is not None  # scope values come with the scope's field
        hidden = [obj.pk for obj in writes if getattr(obj, scope_attname) not in self.values]
        if hidden:
            raise_item_errors(PUSH_REFUSED, [self._refusal(changes[pk], pk) for pk in hidden],
                              status_code=403)

    def check_after(self, changes, writes, using):
        """The write rule's second half: every object written is still visible (403 otherwise).

        Runs after the rows are written, inside the push's transaction, so a
        refusal stores nothing: the only way to apply a queryset's own filter.
        """
        reg = self.registration
        if not writes or (reg.queryset is None and reg.get_queryset is None):
            return  # no queryset of the project's: check_scope decided already
        visible = self.visible([obj.pk for obj in writes], using)
        hidden = [obj.pk for obj in writes if obj.pk not in visible]
        if hidden:
            raise_item_errors(PUSH_REFUSED, [self._refusal(changes[pk], pk) for pk in hidden],
                              status_code=403)

    def related(self, target, using):
        """The objects of ``target`` a pushed foreign key may name."""
        from persistence_sync import registry

        if registry.is_registered(target):
            return registry.get_registration(target).queryset_for(self.request).using(using)
        return target._base_manager.db_manager(using).all()

    @staticmethod
    def _refusal(change, pk):
        return {"index": change.index, "id": pk, "field": None, "message": NOT_YOURS}
