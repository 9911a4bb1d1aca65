"""The server side of the protocol against the database: a model's pull and push.

The view (:mod:`persistence_sync.views`) parses the request and calls
:func:`pull` or :func:`push`; both are set-based.

:func:`pull` answers ``{"now", "updates"}`` with a fixed number of queries
(the clock, the objects, the tombstones) whatever the number of objects.
:func:`push` stores a whole batch under one stamp with a fixed number of
queries per ``BATCH_SIZE`` objects, or stores nothing.
"""

from operator import itemgetter

from django.db import connections, models, transaction

from persistence_sync import clock
from persistence_sync.db import chunks, run_with_retries
from persistence_sync.exceptions import PUSH_REFUSED, ProtocolError
from persistence_sync.models import Tombstone, delete_at, upsert_at
from persistence_sync.serializers import ID, LAST_CHANGE, REMOVED, USE_DEFAULT, raise_item_errors


def pull(registration, queryset, since, using, access=None):
    """The protocol's pull answer for objects of ``queryset`` changed after ``since``.

    ``access`` (a :class:`persistence_sync.scoping.Access`) limits the
    tombstones to the request's scope and adds what a change of the request's
    scope values brings (see :mod:`persistence_sync.scoping`).
    """
    codecs = registration.codecs
    # Rows that never went through the clock (fixtures, data migrations with
    # historical models) keep the default stamp 0: a first sync includes them.
    after = since if since > 0 else -1
    columns = ("pk", "last_change", *(codec.attname for codec in codecs))
    if access is not None:
        access.refresh_grants(using)
    with clock.read_snapshot(using):
        now = clock.committed_now(registration.model, using)
        rows = list(
            queryset.using(using)
            .filter(last_change__gt=after, last_change__lte=now)
            .values_list(*columns)
        )
        tombstones = Tombstone.objects.using(using).filter(
            model=registration.label, last_change__gt=since, last_change__lte=now
        )
        if access is not None and access.scope_attname is not None:
            # An object that moved between two of the request's scopes, or
            # came back, is visible: no removal of it may be sent.
            tombstones = access.tombstones(tombstones).exclude(
                object_id__in=queryset.using(using).values("pk"))
        removed = list(tombstones.values_list("object_id", "last_change"))
        if access is not None and access.scope_attname is not None:
            extra_rows, extra_removed = access.pull_extras(since, now, columns, using)
            seen = {row[0] for row in rows}
            rows += [row for row in extra_rows if row[0] not in seen]
            alive = access.visible({pk for pk, _ in extra_removed}, using)
            removed += [(pk, stamp) for pk, stamp in extra_removed if pk not in alive]
            # One removal per object: it may have left several of the scopes.
            latest = {}
            for pk, stamp in removed:
                latest[pk] = max(stamp, latest.get(pk, stamp))
            removed = list(latest.items())
    names = [codec.name for codec in codecs]
    converters = [codec.to_wire for codec in codecs]
    # Ascending _lastChange, then id, by Python's ordering, so the order does
    # not depend on the database's collation.
    entries = [(row[1], row[0], row) for row in rows]
    entries += [(stamp, pk, None) for pk, stamp in removed]
    entries.sort(key=itemgetter(0, 1))
    updates = []
    for stamp, pk, row in entries:
        if row is None:
            updates.append({ID: pk, REMOVED: True, LAST_CHANGE: stamp})
            continue
        update = {ID: pk}
        for name, convert, value in zip(names, converters, row[2:]):
            update[name] = None if value is None else convert(value)  # hot loop: no call
        update[LAST_CHANGE] = stamp
        updates.append(update)
    return {"now": now, "updates": updates}


def push(registration, queryset, changes, using, access=None):
    """Store ``changes`` (from :func:`serializers.parse_push`) whole; return the stamp.

    ``access`` (a :class:`persistence_sync.scoping.Access`) enforces the write
    rule, the owner and read-only fields and the ``perform_write`` hook.
    """

    def apply():
        stamp = clock.tick(registration.model, using)
        _apply(registration, queryset.using(using), changes, stamp, using, access)
        return stamp

    if access is not None and connections[using].in_atomic_block:
        # Inside the caller's transaction run_with_retries opens none, and the
        # write rule may refuse after writing: a savepoint undoes the push.
        def apply_in_savepoint(apply=apply):
            with transaction.atomic(using=using):
                return apply()

        apply = apply_in_savepoint

    return run_with_retries(apply, using)


def _apply(registration, queryset, changes, stamp, using, access=None):
    model = registration.model
    base = model._base_manager.db_manager(using)
    concrete = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
    stored = {}
    for chunk in chunks(changes):
        for row in base.filter(pk__in=chunk).values_list("pk", *concrete):
            stored[row[0]] = dict(zip(concrete, row[1:]))
    if access is None:
        _check_visibility(registration, queryset, changes, stored)
    else:
        changes = dict(changes)  # check_before drops removals of hidden objects
        access.check_before(changes, stored, using)
        access.server_values(changes, stored, registration.codecs)
    _check_relations(registration, changes, stored, using, access)

    codecs = {codec.attname: codec for codec in registration.codecs}
    # Values the server sets on new objects (the owner), given to the
    # constructor so that no field default runs for them.
    initial = {} if access is None else access.initial_values()
    writes, removals, errors = [], [], []
    for pk, change in changes.items():
        if change.removed:
            if pk in stored:
                removals.append(pk)
            continue
        defaulted = [name for name, value in change.values.items() if value is USE_DEFAULT]
        if defaulted and pk in stored:
            errors += [{"index": change.index, "id": pk, "field": codecs[name].name,
                        "message": "may not be null"} for name in defaulted]
            continue
        for name in defaulted:
            del change.values[name]  # a new object: the model's default applies
        if pk in stored:
            old = stored[pk]
            if all(
                codecs[name].wire(value) == codecs[name].wire(old[name])
                for name, value in change.values.items()
            ):
                continue  # nothing changes: the object keeps its stamp
            obj = model(pk=pk, **{**old, **change.values})
            obj._state.adding = False
            writes.append(obj)
        else:
            writes.append(model(pk=pk, **{**initial, **change.values}))

    if errors:
        raise_item_errors(PUSH_REFUSED, errors)
    update_fields = [codec.attname for codec in registration.codecs]
    if access is not None:
        access.prepare(writes)
        access.check_scope(changes, writes)
        # perform_write may set fields that are not synced; old values of
        # the rest were read above under the clock's lock, so writing every
        # column changes only what the push or the hook changed.
        update_fields = [name for name in concrete if name != "last_change"]
    if writes:
        relinks = []
        if not connections[using].features.can_defer_constraint_checks:
            writes, relinks = _parents_first(registration, writes, stored)
        upsert_at(base.all(), writes, stamp, update_fields)
        if relinks:  # links inside a cycle of new objects, set once all exist
            models.QuerySet.bulk_update(base.all(), [obj for obj, _ in relinks],
                                        sorted({attname for _, attname in relinks}))
        if access is not None:
            access.check_after(changes, writes, using)
    for chunk in chunks(removals):
        delete_at(base.filter(pk__in=chunk), stamp)


def _parents_first(registration, writes, stored):
    """Order ``writes`` so a parent created in the batch is written before its children.

    For databases that check foreign keys row by row (MySQL/MariaDB): a batch
    may name a parent that comes later in it. Links inside a cycle of new
    objects are written as NULL first; returns ``(writes, [(obj, attname)])``
    for the caller to set them once every object exists.
    """
    model = registration.model
    links = [codec.attname for codec in registration.codecs if codec.related_model is model]
    if not links:
        return writes, []
    pending = {obj.pk: obj for obj in writes if obj.pk not in stored}
    ordered, relinks, state = [], [], {}
    for root in writes:  # depth-first, without recursion: chains may be long
        if root.pk in state:
            continue
        state[root.pk] = "visiting"
        stack = [(root, iter(links))]
        while stack:
            obj, remaining = stack[-1]
            for attname in remaining:
                parent = pending.get(getattr(obj, attname))
                if parent is None or state.get(parent.pk) == "done":
                    continue
                if state.get(parent.pk) == "visiting":  # a cycle: link it afterwards
                    relinks.append((model(pk=obj.pk, **{attname: parent.pk}), attname))
                    setattr(obj, attname, None)
                    continue
                state[parent.pk] = "visiting"
                stack.append((parent, iter(links)))
                break
            else:
                stack.pop()
                state[obj.pk] = "done"
                ordered.append(obj)
    return ordered, relinks


def _check_visibility(registration, queryset, changes, stored):
    """Refuse changes to stored objects this request may not touch."""
    if registration.queryset is None and registration.get_queryset is None:
        return
    visible = set()
    for chunk in chunks(stored):
        visible.update(queryset.filter(pk__in=chunk).values_list("pk", flat=True))
    errors = [
        {"index": changes[pk].index, "id": pk, "field": None,
         "message": "you may not change this object"}
        for pk in stored
        if pk not in visible
    ]
    if errors:
        raise_item_errors(PUSH_REFUSED, errors, status_code=403)


def _check_relations(registration, changes, stored, using, access=None):
    """Every pushed relation must name an object that exists (or is created here).

    With ``access``, one the request may see: a hidden object gets the same
    answer as a missing one.
    """
    errors = []
    for codec in registration.codecs:
        target = codec.related_model
        if target is None:
            continue
        if access is not None and codec.attname == access.scope_attname:
            # Checked against the request's scope values instead: a value
            # outside them is refused (403) whether it exists or not.
            continue
        targets = target._base_manager.db_manager(using).all()
        if access is not None:
            targets = access.related(target, using)
        wanted = {}
        for pk, change in changes.items():
            value = change.values.get(codec.attname) if not change.removed else None
            if value is not None:
                wanted.setdefault(value, []).append(pk)
        if not wanted:
            continue
        found = set()
        to_field = codec.field.target_field.attname
        for chunk in chunks(wanted):
            found.update(
                targets.filter(**{f"{to_field}__in": chunk}).values_list(to_field, flat=True)
            )
        if target is registration.model:  # a parent created in the same batch
            found.update(pk for pk, change in changes.items() if not change.removed)
        for value, pks in wanted.items():
            if value not in found:
                for pk in pks:
                    errors.append({
                        "index": changes[pk].index, "id": pk, "field": codec.name,
                        "message": f"no {target._meta.object_name} with id {value!r}",
                    })
    if errors:
        errors.sort(key=itemgetter("index"))
        raise_item_errors(PUSH_REFUSED, errors)


__all__ = ["ProtocolError", "pull", "push"]
