"""The server side of the protocol against the database: a model's pull and push.

The view (:mod:`persistence_sync.views`) parses the request and calls
:func:`pull` or :func:`push`; both are set-based.

:func:`pull` answers ``{"now", "updates"}`` with a fixed number of queries
(the clock, the objects, the tombstones) whatever the number of objects.
:func:`push` stores a whole batch under one stamp with a fixed number of
queries per ``BATCH_SIZE`` objects, or stores nothing.
"""

import datetime
import json
from operator import itemgetter

import orjson
from django.db import connections, models
from django.utils import timezone

from persistence_sync import clock
from persistence_sync.conf import sync_settings
from persistence_sync.db import chunks, run_with_retries
from persistence_sync.exceptions import PUSH_REFUSED, HistoryPruned, ProtocolError
from persistence_sync.models import PushReceipt, Tombstone, delete_at, upsert_at
from persistence_sync.serializers import ID, LAST_CHANGE, REMOVED, USE_DEFAULT, raise_item_errors

# Expired push receipts deleted by one push, at most.
RECEIPTS_PRUNED_PER_PUSH = 100


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


def pull(registration, queryset, since, using, page=None):
    """The whole pull answer as a dict (tests, small callers); see :func:`pull_chunks`."""
    return orjson.loads(b"".join(pull_chunks(registration, queryset, page or Page(since), using)))


def pull_chunks(registration, queryset, page, using, on_done=None):
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
    """
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
        sent = [0]  # items written so far, counted by _encoded_items
        yield b'{"now":%d,"updates":[' % now
        more = yield from _encoded_items(registration, queryset, page, now, using, sent)
        if page.paged:
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


def _changes(registration, queryset, page, now, using):
    """One query: ``(id, stamp, removed, *values)`` of the window, in ascending id order."""
    attnames = [codec.attname for codec in registration.codecs]
    objects = window_objects(queryset, page.since, now, using)
    tombstones = window_tombstones(registration, page.since, now, using)
    if page.after is not None:
        objects = objects.filter(pk__gt=page.after)
        tombstones = tombstones.filter(object_id__gt=page.after)
    # The union is ordered by the database, in its own collation: the order
    # that ``id > after`` follows too, so pages never skip or repeat an id.
    # (A tombstone and a live object never share an id: recreating forgets it.)
    marker = models.IntegerField()
    changes = objects.order_by().values_list(
        "pk", "last_change", models.Value(0, output_field=marker), *attnames
    ).union(
        tombstones.order_by().values_list(
            "object_id", "last_change", models.Value(1, output_field=marker),
            *(models.Value(None, output_field=codec.field.target_field
                           if codec.field.is_relation else codec.field)
              for codec in registration.codecs),
        ),
        all=True,
    ).order_by("pk")
    if page.paged:
        changes = changes[: page.limit + 1]  # one more says whether more follow
    return changes.iterator(chunk_size=sync_settings.BATCH_SIZE)


def _encoded_items(registration, queryset, page, now, using, sent):
    """Yield the items' JSON, comma-separated, a batch at a time; return whether more follow.

    ``sent[0]`` counts the items written.
    """
    names = [codec.name for codec in registration.codecs]
    converters = [codec.to_wire for codec in registration.codecs]
    batch, first = [], True
    for row in _changes(registration, queryset, page, now, using):
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


def push(registration, queryset, changes, using, push_id=None, replay=False):
    """Store ``changes`` (from :func:`serializers.parse_push`) whole; return the stamp.

    ``push_id`` makes the push idempotent (``docs/protocol.md``, "Idempotent
    pushes"): a push id seen before returns the stamp it got the first time
    and stores nothing. A ``replay`` of an id never seen stores nothing either
    and returns None: the client abandoned that push, and a late copy of it
    is refused (409).
    """

    def apply():
        # Ticking first takes the model's clock lock, so two requests with one
        # push id run one after the other and the second finds the receipt.
        stamp = clock.tick(registration.model, using)
        if push_id is not None:
            receipt = PushReceipt.objects.using(using).filter(
                model=registration.label, push_id=push_id).first()
            if receipt is not None:
                return _answer_repeated(receipt, replay)
            if replay:
                _remember(registration, push_id, None, using)
                return None
        _apply(registration, queryset.using(using), changes, stamp, using)
        if push_id is not None:
            _remember(registration, push_id, stamp, using)
        return stamp

    return run_with_retries(apply, using)


def push_many(batches, using, check=None):
    """Store the changes of several models in one transaction; ``{label: stamp}``.

    ``batches`` holds ``(registration, queryset, changes)``. The clocks are
    ticked in label order, so two multi-model pushes cannot deadlock on them.
    ``check(stamps)``, when given, runs once every clock is held and before
    anything is written: a refusal it raises leaves nothing stored, and no
    other writer of these models can change what it read.
    """

    def apply():
        stamps = {}
        for registration, _, _ in sorted(batches, key=lambda batch: batch[0].label):
            stamps[registration.label] = clock.tick(registration.model, using)
        if check is not None:
            check(stamps)
        for registration, queryset, changes in batches:
            _apply(registration, queryset.using(using), changes, stamps[registration.label], using)
        return stamps

    return run_with_retries(apply, using)


def _answer_repeated(receipt, replay):
    if receipt.stamp is None and not replay:
        raise ProtocolError(
            f"Push {receipt.push_id!r} was abandoned by its client (it replayed the push "
            "before this copy arrived); nothing was stored.", status_code=409,
        )
    return receipt.stamp


def _remember(registration, push_id, stamp, using):
    """Record a push id, and forget receipts older than PUSH_RECEIPT_DAYS."""
    now = timezone.now()
    receipts = PushReceipt.objects.using(using)
    receipts.create(model=registration.label, push_id=push_id, stamp=stamp, received_at=now)
    cutoff = now - datetime.timedelta(days=sync_settings.PUSH_RECEIPT_DAYS)
    # Find first, then delete by primary key (as Tombstone.forget does), a
    # bounded number per push so that no push pays for a long backlog.
    old = list(receipts.filter(model=registration.label, received_at__lt=cutoff)
               .values_list("pk", flat=True)[:RECEIPTS_PRUNED_PER_PUSH])
    if old:
        receipts.filter(pk__in=old).delete()


def _apply(registration, queryset, changes, stamp, using):
    model = registration.model
    base = model._base_manager.db_manager(using)
    concrete = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
    stored = {}
    for chunk in chunks(changes):
        for row in base.filter(pk__in=chunk).values_list("pk", *concrete):
            stored[row[0]] = dict(zip(concrete, row[1:]))
    _check_visibility(registration, queryset, changes, stored)
    _check_relations(registration, changes, stored, using)

    codecs = {codec.attname: codec for codec in registration.codecs}
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
            writes.append(model(pk=pk, **{**old, **change.values}))
        else:
            writes.append(model(pk=pk, **change.values))

    if errors:
        raise_item_errors(PUSH_REFUSED, errors)
    if writes:
        relinks = []
        if not connections[using].features.can_defer_constraint_checks:
            writes, relinks = _parents_first(registration, writes, stored)
        upsert_at(base.all(), writes, stamp, [codec.attname for codec in registration.codecs])
        if relinks:  # links inside a cycle of new objects, set once all exist
            models.QuerySet.bulk_update(base.all(), [obj for obj, _ in relinks],
                                        sorted({attname for _, attname in relinks}))
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


def _check_relations(registration, changes, stored, using):
    """Every pushed relation must name an object that exists (or is created here)."""
    errors = []
    for codec in registration.codecs:
        target = codec.related_model
        if target is None:
            continue
        wanted: dict[object, list[str]] = {}  # value -> ids of the pushed objects naming it
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
                target._base_manager.db_manager(using)
                .filter(**{f"{to_field}__in": chunk})
                .values_list(to_field, flat=True)
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
