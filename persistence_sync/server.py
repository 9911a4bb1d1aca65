"""The server side of the protocol against the database: a model's pull and push.

The view (:mod:`persistence_sync.views`) parses the request and calls
:func:`pull` or :func:`push`; both are set-based.

:func:`pull` answers ``{"now", "updates"}`` with a fixed number of queries
(the clock, the objects, the tombstones) whatever the number of objects.
:func:`push` stores a whole batch under one stamp with a fixed number of
queries per ``BATCH_SIZE`` objects, or stores nothing.

Both take an ``access`` (:class:`persistence_sync.scoping.Access`) for
registrations with a scope: it limits the tombstones to the request's scope
values, adds what a change of those values brings, and enforces the write
rule, the owner and read-only fields and the ``perform_write`` hook.
"""

import json
from operator import itemgetter

import orjson
from django.db import connections, models, transaction

from persistence_sync import clock
from persistence_sync.conf import sync_settings
from persistence_sync.db import chunks, run_with_retries
from persistence_sync.exceptions import PUSH_REFUSED, HistoryPruned, ProtocolError
from persistence_sync.models import Tombstone, delete_at, upsert_at
from persistence_sync.serializers import ID, LAST_CHANGE, REMOVED, USE_DEFAULT, raise_item_errors


class Page:
    """Which slice of the changes a pull answers.

    A classic pull answers everything changed in ``(since, now]``, with ``now``
    the clock's committed value. A paged pull (an extension, see
    ``docs/protocol.md``) answers at most ``limit`` objects of that window in
    ascending id order; its next pages name the same ``now`` and the last id
    they hold (``after``), so every page of one sync reads the same window.
    """

    def __init__(self, since=0, limit=None, now=None, after=None):
        self.since, self.limit, self.now, self.after = since, limit, now, after

    @property
    def paged(self):
        return self.limit is not None


def pull(registration, queryset, since, using, page=None, access=None):
    """The whole pull answer as a dict (tests, small callers); see :func:`pull_chunks`."""
    return orjson.loads(b"".join(
        pull_chunks(registration, queryset, page or Page(since), using, access=access)))


def pull_chunks(registration, queryset, page, using, on_done=None, access=None):
    """The pull answer's JSON, as bytes chunks written while the rows are read.

    The clock and every row come from one database snapshot (the ``now`` rule,
    :mod:`persistence_sync.clock`), which stays open until the last chunk is
    produced: memory is bounded by ``BATCH_SIZE`` rows, whatever the answer's
    size. Objects and tombstones come merged by the database, in ascending id
    order, so a client that pulls again from scratch rebuilds its rows in the
    same order, and pages can continue ``after`` an id.

    Raises :class:`HistoryPruned` (410) when ``since`` is older than the
    model's tombstone horizon (:mod:`persistence_sync.retention`).
    ``on_done(now, count)`` is called once the last chunk is produced.

    ``access`` (for a scoped registration; ``queryset`` is then its
    ``access.queryset``) limits the tombstones to the request's scope values
    and adds what a change of those values since ``page.since`` brings
    (:mod:`persistence_sync.scoping`): objects of a granted value join the
    streamed window; removals for a revoked value exist only in memory, so
    the rare pull that carries one is answered whole, sorted by id, with
    ``more: false`` even when paged.
    """
    scoped = access is not None and access.scope_attname is not None
    if scoped:
        access.refresh_grants(using)  # before the snapshot: this pull answers it
    with clock.read_snapshot(using):
        now, horizon = clock.committed_now_and_horizon(registration.model, using)
        if 0 < page.since < horizon:
            # Deletions in (since, horizon] are gone: an answer would let the
            # client keep objects deleted here. since=0 needs no deletions.
            raise HistoryPruned(page.since, horizon)
        if page.now is not None:
            if page.now > now:
                raise ProtocolError(
                    f"now={page.now} is ahead of the server's clock ({now}); send the now "
                    "that the first page of this sync answered."
                )
            now = page.now
        # A pull from 0 gets everything visible and holds nothing to remove.
        granted, revoked = (access.grant_changes(page.since, now, using)
                            if scoped and page.since > 0 else ([], []))
        paged = page.paged
        if revoked:
            page = Page(page.since, after=page.after)  # answered whole: see above
        window = Window(registration, queryset, page, now, using, access if scoped else None,
                        granted)
        sent = [0]  # items written so far, counted by _encoded_items
        yield b'{"now":%d,"updates":[' % now
        if revoked:
            rows = _with_revocations(window, access.revoked_removals(revoked, page.since, using))
        else:
            rows = window.changes()
        more = yield from _encoded_items(registration, rows, page, sent)
        if paged:
            yield b'],"more":%s}' % (b"true" if more else b"false")
        else:
            yield b"]}"
    if on_done is not None:
        on_done(now, sent[0])


def window_objects(queryset, since, now, using):
    """The objects of ``queryset`` stamped in the window ``(since, now]``."""
    # Rows that never went through the clock (fixtures, data migrations with
    # historical models) keep the default stamp 0: a first sync includes them.
    return queryset.using(using).filter(last_change__gt=since if since > 0 else -1,
                                        last_change__lte=now)


def window_tombstones(registration, since, now, using):
    """The tombstones of ``registration``'s model stamped in ``(since, now]``."""
    return Tombstone.objects.using(using).filter(
        model=registration.label, last_change__gt=since, last_change__lte=now
    )


class Window:
    """What one pull answers: the objects and the tombstones of ``(since, now]``, scoped.

    With ``access`` (a scoped registration), ``queryset`` is what the request
    sees; objects of the ``granted`` values (granted after ``since``) join the
    window whatever their stamp, and only the tombstones of the request's
    scope values are answered, never one of an object it sees (an object that
    moved between two of its scopes, or came back).
    """

    def __init__(self, registration, queryset, page, now, using, access=None, granted=()):
        self.registration, self.page, self.now, self.using = registration, page, now, using
        self.queryset, self.access, self.granted = queryset, access, list(granted)

    def objects(self):
        objects = window_objects(self.queryset, self.page.since, self.now, self.using)
        if self.granted:
            # One query for the window and the granted values: no id twice.
            in_granted = models.Q(**{f"{self.access.scope_attname}__in": self.granted})
            since = self.page.since if self.page.since > 0 else -1
            objects = self.queryset.using(self.using).filter(
                models.Q(last_change__gt=since) | in_granted, last_change__lte=self.now)
        if self.page.after is not None:
            objects = objects.filter(pk__gt=self.page.after)
        return objects

    def tombstones(self):
        tombstones = window_tombstones(self.registration, self.page.since, self.now, self.using)
        if self.page.after is not None:
            tombstones = tombstones.filter(object_id__gt=self.page.after)
        if self.access is None:
            # Unscoped: recreating an id forgets its tombstone, so a tombstone
            # and a live object never share an id, and an id has one tombstone.
            return tombstones.order_by(), "last_change"
        visible = self.queryset.using(self.using).order_by().values("pk")
        # A scoped object has one tombstone per scope it left: answer the
        # latest of those the request may learn of, once.
        tombstones = (self.access.tombstones(tombstones).exclude(object_id__in=visible)
                      .order_by().values("object_id").annotate(stamp=models.Max("last_change")))
        return tombstones, "stamp"

    def changes(self):
        """One query: ``(id, stamp, removed, *values)`` of the window, in ascending id order."""
        codecs = self.registration.codecs
        marker = models.IntegerField()
        # The union is ordered by the database, in its own collation: the order
        # that ``id > after`` follows too, so pages never skip or repeat an id.
        changes = self.objects().order_by().values_list(
            "pk", "last_change", models.Value(0, output_field=marker),
            *(codec.attname for codec in codecs),
        )
        tombstones, stamp = self.tombstones()
        changes = changes.union(
            tombstones.values_list(
                "object_id", stamp, models.Value(1, output_field=marker),
                *(models.Value(None, output_field=codec.field.target_field
                               if codec.field.is_relation else codec.field)
                  for codec in codecs),
            ),
            all=True,
        ).order_by("pk")
        if self.page.paged:
            changes = changes[: self.page.limit + 1]  # one more says whether more follow
        return changes.iterator(chunk_size=sync_settings.BATCH_SIZE)


def _with_revocations(window, removals):
    """The whole window plus ``removals`` (``{pk: stamp}``), in memory, in ascending id order.

    Objects the request still sees win over a removal; an object answered
    removed by both the tombstones and a revocation gets the latest stamp.
    """
    # Keyed by the id as text: tombstones and revocations store ids as text.
    rows = {str(row[0]): row for row in window.changes()}
    padding = (None,) * len(window.registration.codecs)
    visible = {str(pk) for pk in window.access.visible(list(removals), window.using)}
    after = window.page.after
    for pk, stamp in removals.items():
        key = str(pk)
        if key in visible or (after is not None and key <= str(after)):
            continue
        row = rows.get(key)
        if row is None:
            rows[key] = (pk, stamp, 1, *padding)
        elif row[2]:
            rows[key] = (row[0], max(stamp, row[1]), 1, *padding)
    return [rows[key] for key in sorted(rows)]


def _encoded_items(registration, rows, page, sent):
    """Yield the items' JSON, comma-separated, a batch at a time; return whether more follow.

    ``sent[0]`` counts the items written.
    """
    names = [codec.name for codec in registration.codecs]
    converters = [codec.to_wire for codec in registration.codecs]
    batch, first = [], True
    for row in rows:
        if page.paged and sent[0] == page.limit:
            break
        sent[0] += 1
        if row[2]:
            batch.append({ID: row[0], REMOVED: True, LAST_CHANGE: row[1]})
        else:
            item = {ID: row[0]}
            for name, convert, value in zip(names, converters, row[3:]):
                item[name] = None if value is None else convert(value)  # hot loop: no call
            item[LAST_CHANGE] = row[1]
            batch.append(item)
        if len(batch) == sync_settings.BATCH_SIZE:
            yield (b"" if first else b",") + encode_items(batch)
            batch, first = [], False
    else:
        if batch:
            yield (b"" if first else b",") + encode_items(batch)
        return False
    if batch:
        yield (b"" if first else b",") + encode_items(batch)
    return True


def encode_items(items):
    """``items`` as JSON array members (no brackets), by orjson: written a batch at a time."""
    try:
        return orjson.dumps(items)[1:-1]
    except (orjson.JSONEncodeError, TypeError):
        # A value orjson refuses (a lone surrogate stored before values were
        # checked, an integer beyond 64 bits in a JSON field): the standard
        # library escapes it, so the answer stays valid JSON.
        return json.dumps(items, separators=(",", ":"))[1:-1].encode()


def push(registration, queryset, changes, using, access=None):
    """Store ``changes`` (from :func:`serializers.parse_push`) whole; return the stamp.

    ``access`` (a :class:`persistence_sync.scoping.Access`) enforces the write
    rule, the owner and read-only fields and the ``perform_write`` hook.
    """
    return push_many([(registration, queryset, changes, access)], using)[registration.label]


def push_many(batches, using, check=None):
    """Store the changes of several models in one transaction; ``{label: stamp}``.

    ``batches`` holds ``(registration, queryset, changes, access)`` (``access``
    as for :func:`push`, or None). The clocks are
    ticked in label order, so two multi-model pushes cannot deadlock on them.
    ``check(stamps)``, when given, runs once every clock is held and before
    anything is written: a refusal it raises leaves nothing stored, and no
    other writer of these models can change what it read.
    """

    def apply():
        stamps = {}
        for registration, *_ in sorted(batches, key=lambda batch: batch[0].label):
            stamps[registration.label] = clock.tick(registration.model, using)
        if check is not None:
            check(stamps)
        for registration, queryset, changes, access in batches:
            _apply(registration, queryset.using(using), changes, stamps[registration.label], using,
                   access)
        return stamps

    if any(batch[3] is not None for batch in batches) and connections[using].in_atomic_block:
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
