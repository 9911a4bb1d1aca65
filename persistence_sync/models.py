"""SyncableModel, the mixin that makes a model syncable, and the app's own tables.

Every write path stamps the object through the server clock
(:mod:`persistence_sync.clock`), so a write done by the site's own code
reaches clients exactly like a push does:

* ``save()`` (also with ``update_fields``), hence the admin and ``create()``;
* ``QuerySet.update()``, ``bulk_create()`` and ``bulk_update()``;
* ``delete()`` and ``QuerySet.delete()`` leave a :class:`Tombstone` that later
  pulls return as ``{"id": ..., "_removed": true}``.

What cannot be intercepted: raw SQL, and writes through a plain
``QuerySet`` (a custom default manager not built on :class:`SyncableQuerySet`,
reported by check W001).
"""

import contextvars
import uuid
from typing import Any

from django.db import connections, models, router, transaction

from persistence_sync import bulk, clock, compiled, deletion
from persistence_sync.clock import Clock  # noqa: F401  (the app's table; defined beside its writer)
from persistence_sync.db import chunks, is_in
from persistence_sync.serializers import USE_DEFAULT


def new_id():
    """A fresh id in persistence.js's format: 32 upper-case hex digits."""
    return uuid.uuid4().hex.upper()


# (model label, pk) of objects whose tombstone a bulk delete already wrote, so
# the post_delete receiver does not write it again, one query per object.
_tombstoned: contextvars.ContextVar[frozenset[tuple[str, object]]] = contextvars.ContextVar(
    "persistence_sync_tombstoned", default=frozenset())


# The column deciding who sees each registered model's objects, by the model's
# label: the registry (persistence_sync.registry, a floor above) publishes it
# here whenever a registration changes, so that every write path below knows
# which scope an object leaves or enters without asking the registry.
_scope_attnames: dict[str, str] = {}


def scope_attname(model):
    """The column deciding who sees ``model``'s objects (its registration's scope), or None."""
    return _scope_attnames.get(model._meta.label_lower)


def publish_scopes(attnames):
    """Set the scope column of every registered model: ``{label: attname}`` (the registry's)."""
    _scope_attnames.clear()
    _scope_attnames.update(attnames)


def scope_key(value):
    """A scope value as tombstones store it: a string, or None."""
    return None if value is None else str(value)


def _scopes(model, pks, attname, using):
    """``{pk: scope_key}`` of the stored objects among ``pks``."""
    found: dict[Any, str | None] = {}
    for chunk in chunks(pks):
        rows = models.QuerySet(model, using=using).filter(is_in("pk", chunk)).values_list(
            "pk", attname)
        found.update((pk, scope_key(value)) for pk, value in rows)
    return found


def record_departures(model, before, after, stamp, using):
    """Leave a removal for each scope an object left: ``before``/``after`` map pk -> scope key.

    The object lives on in its new scope; devices of the old one must drop it.
    """
    departed = {pk: old for pk, old in before.items() if pk in after and after[pk] != old}
    if departed:
        Tombstone.record(model, list(departed), stamp, using, scopes=departed, live=True)


def bulk_create_at(queryset, objs, stamp, **kwargs):
    """``bulk_create`` with every object stamped ``stamp`` (already ticked)."""
    for obj in objs:
        obj.last_change = stamp
    if kwargs.get("update_fields"):
        kwargs["update_fields"] = [*kwargs["update_fields"], "last_change"]
    attname = scope_attname(queryset.model)
    if attname is None:
        Tombstone.forget(queryset.model, [obj.pk for obj in objs], queryset.db)
        return models.QuerySet.bulk_create(queryset, objs, **kwargs)
    after = {obj.pk: scope_key(getattr(obj, attname)) for obj in objs}
    before = {}
    if kwargs.get("update_conflicts") and attname in {
        queryset.model._meta.get_field(name).attname for name in kwargs.get("update_fields") or ()
    }:
        before = _scopes(queryset.model, list(after), attname, queryset.db)
    # An object (re)entering a scope: a removal of it from that scope is void.
    Tombstone.forget(queryset.model, list(after), queryset.db, scopes=after)
    created = models.QuerySet.bulk_create(queryset, objs, **kwargs)
    record_departures(queryset.model, before, after, stamp, queryset.db)
    return created


def upsert_at(queryset, objs, stamp, fields, batch_size=None):
    """Insert ``objs`` or update ``fields`` of those that exist, all stamped ``stamp``.

    The one upsert of the app: the server stores pushes with it and the sync
    client stores what it pulled. Set-based (one statement per batch), on
    every backend Django ships (``ON CONFLICT`` / ``ON DUPLICATE KEY``).
    """
    prepare_upsert(queryset, objs, fields, batch_size).execute(stamp)


def prepare_upsert(queryset, objs, fields, batch_size=None):
    """:func:`upsert_at` in two steps: compile now, ``.execute(stamp)`` under the clock.

    Compiling the statements is most of the ORM's cost of a large insert
    (:func:`persistence_sync.bulk.upsert_statements`); done before the clock
    is taken, the clock is held only to run them.
    """
    return _PreparedUpsert(queryset, list(objs), list(fields), batch_size)


class _PreparedUpsert:
    def __init__(self, queryset, objs, fields, batch_size):
        self.model, self.using, self.objs = queryset.model, queryset.db, objs
        self.statements = bulk.upsert_statements(self.model, self.using, objs, fields, batch_size)

    def execute(self, stamp, stored=None):
        """Run the statements with ``stamp``; must run under the model's clock.

        As :func:`bulk_create_at` does: tombstones of the ids written are
        forgotten (of a scoped model, only those of the scope each object
        now has) and an object moved to another scope leaves a removal for
        the old one. ``stored``: ``{pk: scope key}`` of the objects that
        exist (None for an unscoped model), when the caller read them and
        knows them unchanged: an object that stays in its scope has no
        tombstone there to forget (every write path forgets it on entering).
        """
        attname = scope_attname(self.model)
        pks = [obj.pk for obj in self.objs]
        if attname is None:
            Tombstone.forget(self.model, [pk for pk in pks if stored is None or pk not in stored],
                             self.using)
        else:
            after = {obj.pk: scope_key(getattr(obj, attname)) for obj in self.objs}
            before = stored if stored is not None else _scopes(self.model, pks, attname, self.using)
            entering = {pk: scope for pk, scope in after.items()
                        if stored is None or pk not in stored or stored[pk] != scope}
            Tombstone.forget(self.model, list(entering), self.using, scopes=entering)
        bulk.run_statements(self.statements, stamp, self.using)
        if attname is not None:
            record_departures(self.model, before, after, stamp, self.using)
        for obj in self.objs:
            obj.last_change = stamp
            obj._state.adding, obj._state.db = False, self.using


def insert_at(model, rows, stamp, using, batch_size=None, columns=None):
    """Insert new objects ``rows`` (``{pk: {attname: value}}``), all stamped ``stamp``.

    For objects known to be absent (the caller read them under the model's
    clock): plain multi-row ``INSERT`` statements, the values converted column
    by column; no model instance, no per-object compilation. Other fields get
    their defaults; the ids' tombstones are forgotten, as :func:`upsert_at` does.

    ``columns``: :func:`new_columns` of these ``rows``, if the caller had them
    computed ahead (a sync client, while it waited for its database); they
    are used only when they are of the same ids in the same order.
    """
    connection = connections[using]
    opts = model._meta
    fields = bulk.insert_fields(opts)
    if fields is None:
        # Defaults the database computes: Django's INSERT knows how to leave them out.
        objs = [model(**{opts.pk.attname: pk, **{name: value for name, value in values.items()
                                                 if value is not USE_DEFAULT}})
                for pk, values in rows.items()]
        names = sorted({name for values in rows.values() for name in values})
        if objs:
            upsert_at(models.QuerySet(model, using=using), objs, stamp, names, batch_size)
        return
    if columns is None or columns.pks != list(rows):
        columns = bulk.new_columns(model, rows, using)
    insert = bulk.BulkInsert(model, fields, connection, len(rows), batch_size)
    # A model with no tombstone (a first sync's) spares a probe per chunk.
    tombstones = Tombstone.objects.using(using).filter(model=opts.label_lower).exists()
    with connection.cursor() as cursor:
        for start in range(0, len(columns.pks), insert.size):
            chunk = columns.pks[start:start + insert.size]
            tombstoned = tombstones and bulk.existing_ids(Tombstone, "object_id", chunk, using,
                                                          equal={"model": opts.label_lower})
            if tombstoned:
                Tombstone.forget(model, tombstoned, using)
            insert.write(cursor, [[stamp] * len(chunk) if column is None
                                  else column[start:start + insert.size] for column in columns.values])


def delete_at(queryset, stamp):
    """Delete ``queryset``'s objects, leaving tombstones stamped ``stamp``; returns what
    ``QuerySet.delete()`` does.

    Cascades follow ``on_delete`` as Django's collector would, set-based
    where :mod:`persistence_sync.deletion` can (a statement per batch of
    ids, tombstones of cascaded syncable objects written here, reset links
    stamped), by Django's collector otherwise (this app's receivers then
    write the cascades' tombstones).
    """
    model, using = queryset.model, queryset.db
    attname = scope_attname(model)
    if attname is None:
        pks, scopes = list(queryset.values_list("pk", flat=True)), None
    else:
        scopes = {pk: scope_key(value) for pk, value in queryset.values_list("pk", attname)}
        pks = list(scopes)
    if not pks:
        return 0, {}
    found = deletion.collect(model, pks, using, (record_deletion, stamp_before_set_on_delete))
    if found is None:
        return _delete_by_collector(model, pks, scopes, stamp, using)
    for child, link, parent_pks in found.resets:
        _reset_links(child, link, parent_pks, using)
    counts: dict[str, int] = {}
    for victim, victim_pks in found.deletes:  # children first
        if victim is model:
            Tombstone.record(model, pks, stamp, using, scopes=scopes, live=True)
        elif issubclass(victim, SyncableModel):
            _tombstones_of_cascade(victim, victim_pks, using)
        label = victim._meta.label
        counts[label] = counts.get(label, 0) + deletion.raw_delete(victim, victim_pks, using)
    return sum(counts.values()), counts


def _tombstones_of_cascade(model, pks, using):
    """Tombstones for a cascade's objects: stamped by their own model's clock, as a delete of theirs."""
    attname = scope_attname(model)
    scopes = None if attname is None else _scopes(model, pks, attname, using)
    Tombstone.record(model, pks, clock.tick(model, using), using, scopes=scopes, live=True)


def _reset_links(child, link, parent_pks, using):
    """``SET_NULL``: ``child``'s links to the deleted rows become null, stamped if syncable."""
    queryset_class = SyncableQuerySet if issubclass(child, SyncableModel) else models.QuerySet
    for chunk in chunks(parent_pks):
        queryset_class(child, using=using).filter(is_in(link.attname, chunk)).update(
            **{link.name: None})


def _delete_by_collector(model, pks, scopes, stamp, using):
    """The delete by Django's collector (signals of the project's, PROTECT, inheritance ...)."""
    Tombstone.record(model, pks, stamp, using, scopes=scopes)
    label = model._meta.label_lower
    token = _tombstoned.set(_tombstoned.get() | {(label, pk) for pk in pks})
    try:
        # Delete by pk so that a filter on related rows cannot change the set
        # between the listing above and the delete.
        return models.QuerySet.delete(models.QuerySet(model, using=using).filter(is_in("pk", pks)))
    finally:
        _tombstoned.reset(token)


class SyncableQuerySet(models.QuerySet):
    """A QuerySet whose bulk write paths stamp ``_lastChange`` and leave tombstones."""

    def update(self, **kwargs):
        with transaction.atomic(using=self.db, savepoint=False):
            kwargs["last_change"] = stamp = clock.tick(self.model, self.db)
            attname = scope_attname(self.model)
            if attname is None or not self._changes_field(attname, kwargs):
                return super().update(**kwargs)
            before = dict(self.values_list("pk", attname))
            count = super().update(**kwargs)
            self._record_departures(before, attname, stamp)
            return count

    # Django's flags on methods (no template calls them); stubs cannot type them.
    update.alters_data = True  # type: ignore[attr-defined]

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        if not objs:
            return objs
        if args:  # batch_size, ignore_conflicts, ... given positionally
            names = ["batch_size", "ignore_conflicts", "update_conflicts", "update_fields"]
            kwargs.update(zip(names, args))
        with transaction.atomic(using=self.db, savepoint=False):
            return bulk_create_at(self, objs, clock.tick(self.model, self.db), **kwargs)

    def bulk_update(self, objs, fields, batch_size=None):
        objs = list(objs)
        if not objs:
            return 0
        with transaction.atomic(using=self.db, savepoint=False):
            stamp = clock.tick(self.model, self.db)
            for obj in objs:
                obj.last_change = stamp
            # Django's bulk_update writes through update(): a plain QuerySet's,
            # or each batch would tick again and the instances would not hold
            # the stamp that is stored.
            plain: models.QuerySet = models.QuerySet(self.model, using=self.db)
            attname = scope_attname(self.model)
            if attname is None or not self._changes_field(attname, dict.fromkeys(fields)):
                return plain.bulk_update(objs, [*fields, "last_change"], batch_size=batch_size)
            before = _scopes(self.model, [obj.pk for obj in objs], attname, self.db)
            count = plain.bulk_update(objs, [*fields, "last_change"], batch_size=batch_size)
            self._record_departures(before, attname, stamp)
            return count

    def _changes_field(self, attname, names):
        opts = self.model._meta
        # update() and bulk_update() accept only concrete fields, never the
        # reverse relations get_field() may also return.
        return any(opts.get_field(name).attname == attname  # type: ignore[union-attr]
                   for name in names)

    def _record_departures(self, before, attname, stamp):
        """Removals for objects a bulk write moved out of their scope (read back: F() values)."""
        before = {pk: scope_key(value) for pk, value in before.items()}
        after = _scopes(self.model, list(before), attname, self.db)
        record_departures(self.model, before, after, stamp, self.db)

    bulk_update.alters_data = True  # type: ignore[attr-defined]

    def delete(self):
        with transaction.atomic(using=self.db, savepoint=False):
            return delete_at(self, clock.tick(self.model, self.db))

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]


# Named at module level so that django-stubs' plugin can type its methods.
_SyncableManagerBase = models.Manager.from_queryset(SyncableQuerySet)


class SyncableManager(_SyncableManagerBase):
    """The default manager of syncable models; subclass it for your own."""


class SyncableModel(models.Model):
    """Mixin for a model that persistence.js clients (and ``syncall``) sync.

    Adds two fields:

    ``id``
        The primary key: a string that fits persistence.js. New objects get 32
        upper-case hex digits (:func:`new_id`); ids received from clients are
        stored and echoed exactly.
    ``last_change``
        ``_lastChange`` on the wire: integer milliseconds, the server clock's
        stamp of the object's latest change (column ``last_change``).
        Set by every write path; never edit it by hand.

    A model with its own manager should build it on :class:`SyncableQuerySet`
    (``SyncableManager`` or ``SyncableQuerySet.as_manager()``), or
    ``QuerySet.update()`` and bulk writes bypass the clock (check W001).
    """

    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    last_change = models.BigIntegerField(
        default=0,
        db_index=True,
        editable=False,
        help_text="_lastChange: the server clock's stamp (ms) of the latest change.",
    )

    objects = SyncableManager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and not update_fields:
            return super().save(*args, **kwargs)  # Django saves nothing
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        model = type(self)
        with transaction.atomic(using=using, savepoint=False):
            self.last_change = stamp = clock.tick(model, using)
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "last_change"}
            attname = scope_attname(model)
            if attname is None:
                if self._state.adding:
                    # An id that was deleted and is now created again.
                    Tombstone.forget(model, [self.pk], using)
                return super().save(*args, **kwargs)
            # The scope before the write: moving an object to another scope
            # (the admin giving B's note to A) must reach B's devices as a removal.
            before = {} if self._state.adding else _scopes(model, [self.pk], attname, using)
            after = {self.pk: scope_key(getattr(self, attname))}
            Tombstone.forget(model, [self.pk], using, scopes=after)
            result = super().save(*args, **kwargs)
            record_departures(model, before, after, stamp, using)
            return result

    save.alters_data = True  # type: ignore[attr-defined]


def stamp_before_set_on_delete(sender, instance, using, **kwargs):
    """pre_delete receiver: stamp syncable objects whose relation Django will reset.

    For ``on_delete=SET_NULL``, ``SET_DEFAULT`` or ``SET(...)`` Django's
    deletion collector updates the children with no signal and past any
    manager. Stamping them here, in the same transaction and before the
    collector's update, gives that change a stamp that clients pull.
    """
    for field in relations_reset_on_delete(sender):
        SyncableQuerySet(field.model, using=using).filter(**{field.name: instance}).update()


def relations_reset_on_delete(parent):
    """Foreign keys of syncable models to ``parent`` that deleting it resets."""
    kept = {models.CASCADE, models.PROTECT, models.RESTRICT, models.DO_NOTHING}
    return [
        field
        for field in parent._meta.get_fields(include_hidden=True)
        if field.one_to_many or field.one_to_one
        if field.auto_created and not field.concrete
        if issubclass(field.related_model, SyncableModel)
        and field.on_delete not in kept
        for field in [field.remote_field]
    ]


def record_deletion(sender, instance, using, **kwargs):
    """post_delete receiver: leave a tombstone for a deleted syncable object."""
    label = sender._meta.label_lower
    if (label, instance.pk) in _tombstoned.get():
        return
    attname = scope_attname(sender)
    scopes = None if attname is None else {instance.pk: scope_key(getattr(instance, attname))}
    with transaction.atomic(using=using, savepoint=False):
        Tombstone.record(sender, [instance.pk], clock.tick(sender, using), using, scopes=scopes)


class Tombstone(models.Model):
    """An object gone from a scope (or, unscoped, gone), returned by pulls as ``_removed``.

    ``scope`` is the object's scope value when it was deleted or moved away,
    for models registered with ``owner=`` or ``scope=`` (NULL otherwise): a
    pull returns only the tombstones of the requester's scope values. A moved
    object keeps living in its new scope; its row says "no longer in
    ``scope``" and is cleared when the object comes back.

    A tombstone with a ``user`` is a *revocation*: the object was in
    ``scope`` when that user lost the scope value, so that user's devices
    must drop it; only that user's pulls return it
    (:mod:`persistence_sync.scoping`).
    """

    model = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255)
    last_change = models.BigIntegerField()
    # NULL, not "": unscoped models, whose tombstones every pull returns.
    scope = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    user = models.CharField(  # noqa: DJ001
        max_length=255, null=True, blank=True,
        help_text="Set on a revocation: the user (primary key) whose devices must drop the object.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "object_id", "scope", "user"],
                                    name="persistence_sync_tomb_uniq")
        ]
        indexes = [
            models.Index(fields=["model", "last_change"], name="persistence_sync_tomb_ts"),
            models.Index(fields=["model", "scope", "last_change"], name="persistence_sync_tomb_scope"),
            models.Index(fields=["model", "user", "last_change"], name="persistence_sync_tomb_user"),
        ]

    def __str__(self):
        where = "" if self.scope is None else f" from {self.scope}"
        whom = "" if self.user is None else f" for user {self.user}"
        return f"{self.model} {self.object_id} removed{where}{whom} @ {self.last_change}"

    @classmethod
    def record(cls, model, pks, stamp, using, scopes=None, user=None, live=False):
        """Tombstones for ``pks`` stamped ``stamp``; ``scopes``: ``{pk: scope key}`` if scoped.

        ``user``: revocations of that user's (``scopes`` then names the value lost).
        ``live``: the objects were live in ``scopes`` until now, so they have no
        tombstone there to replace (every write path forgets it on entering).
        """
        label = model._meta.label_lower
        if not live:
            cls.forget(model, pks, using, scopes=scopes, user=user)
        # A plain column-wise insert: a push removing thousands of objects
        # spent more in bulk_create's instances and compiler than storing.
        connection = connections[using]
        fields = [cls._meta.get_field(name) for name in ("model", "object_id", "last_change",
                                                         "scope", "user")]
        insert = bulk.BulkInsert(cls, fields, connection, len(pks))
        with connection.cursor() as cursor:
            for chunk in chunks(list(pks), insert.size):
                insert.write(cursor, [[label] * len(chunk), [str(pk) for pk in chunk],
                                      [stamp] * len(chunk),
                                      [None] * len(chunk) if scopes is None
                                      else [scopes[pk] for pk in chunk],
                                      [user] * len(chunk)])

    @classmethod
    def forget(cls, model, pks, using, scopes=None, user=None):
        """Drop the tombstones of ``pks``.

        All of them; with ``scopes`` (objects entering ``scopes[pk]``), their
        removals from that scope and unscoped ones, not revocations; with
        ``user``, that user's revocations of them.
        """
        label = model._meta.label_lower
        tombstones = cls.objects.using(using)
        keys = {} if scopes is None else {str(pk): scope for pk, scope in scopes.items()}

        def build(ids, label, *user):
            rows = tombstones.filter(is_in("object_id", ids), model=label)
            if user:
                return rows.filter(user=user[0]).values_list("pk")
            if scopes is None:
                return rows.values_list("pk")
            return rows.filter(user__isnull=True).values_list("pk", "object_id", "scope")

        shape = "user" if user is not None else "all" if scopes is None else "scopes"
        for chunk in chunks([str(pk) for pk in pks]):
            # Find first, then delete by primary key: a DELETE by (model,
            # object_id) of absent rows takes InnoDB gap locks, on which
            # writers of *other* models (sharing this table) would deadlock.
            # A plain read is exact here: the caller holds the model's clock.
            rows = compiled.fetch(using, ("forget", shape), build, chunk, label,
                                  *([] if user is None else [user]))
            if shape == "scopes":
                found = [row_pk for row_pk, object_id, scope in rows
                         if scope is None or scope == keys.get(object_id)]
            else:
                found = [row[0] for row in rows]
            if found:
                tombstones.filter(is_in("pk", found)).delete()


class ScopeGrant(models.Model):
    """The scope values a user was last served for a model, and when each was granted or lost.

    Written by pulls of models registered with ``scope=``: when
    ``scope_values(request)`` differs from the active rows, the added values
    become active and the lost ones inactive, stamped by the model's clock.
    A pull whose ``since`` is older than a grant gets every object of that
    value; older than a revocation, a removal for every object it had then
    (a :class:`Tombstone` naming the user; :mod:`persistence_sync.scoping`).
    """

    model = models.CharField(max_length=100)
    user = models.CharField(max_length=255, help_text="The user's primary key.")
    value = models.CharField(max_length=255)
    active = models.BooleanField(default=True)
    last_change = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "user", "value"],
                                    name="persistence_sync_grant_uniq")
        ]

    def __str__(self):
        state = "granted" if self.active else "revoked"
        return f"{self.model} {self.value} {state} to user {self.user} @ {self.last_change}"


class SyncState(models.Model):
    """Where the sync client (``syncall``) stands with one model and one remote.

    persistence.js's ``_Sync`` record, kept per (model, remote endpoint) and
    advanced only when a sync of that model both pulled and pushed. The local
    side is measured with the local clock (:mod:`persistence_sync.clock`), not
    wall time, so that a local write committed while a sync runs is never
    taken for synced.
    """

    model = models.CharField(max_length=100, help_text="Label of the synced model.")
    remote = models.CharField(max_length=500, help_text="The remote endpoint URL.")
    server_date = models.BigIntegerField(
        default=0, help_text="serverDate: the remote's `now` of the last pull."
    )
    server_push_date = models.BigIntegerField(
        default=0, help_text="serverPushDate: the remote's `now` of the last push."
    )
    push_stamps = models.JSONField(
        default=list, blank=True,
        help_text="The remote's `now` of each push of this replica newer than its last pull (every "
        "part of a split push, replays too): an object a later pull brings with one of them "
        "is this replica's own echo, not another client's change.",
    )
    local_date = models.BigIntegerField(
        default=0,
        help_text="localDate: the local clock's committed value read before the last sync "
        "collected local changes; later stamps are local changes.",
    )
    applied_stamp = models.BigIntegerField(
        default=0,
        help_text="The local stamp of the values the last sync took from the remote; "
        "objects still carrying it are not local changes.",
    )
    page_now = models.BigIntegerField(
        default=0,
        help_text="The `now` of a paged pull in progress (0: none); with page_after, where "
        "an interrupted pull resumes.",
    )
    page_after = models.CharField(
        max_length=255, blank=True, default="",
        help_text="The id of the last object of the last page applied of that pull.",
    )
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "remote"], name="persistence_sync_state_uniq")
        ]

    def __str__(self):
        return f"{self.model} with {self.remote}"


class PushReceipt(models.Model):
    """The server's memory of an idempotent push: its id and the stamp it got.

    A client that sends ``X-Sync-Push-Id`` (``docs/protocol.md``, "Idempotent
    pushes") gets the same answer for the same id, and the batch is stored
    once (:mod:`persistence_sync.receipts`). Ids are the user's and the
    endpoint's own. A receipt without a stamp is a push its client abandoned:
    a late copy of it is refused. Receipts older than
    ``PERSISTENCE_SYNC["PUSH_RECEIPT_DAYS"]`` are pruned by later pushes.
    """

    endpoint = models.CharField(
        max_length=100, help_text="The pushed model's label, or the protocol's endpoint "
        "(watermelon) for pushes of several models.")
    user = models.CharField(max_length=255, blank=True, default="",
                            help_text="The pushing user's primary key; empty: anonymous.")
    push_id = models.CharField(max_length=64, help_text="The client's X-Sync-Push-Id.")
    stamp = models.BigIntegerField(
        null=True, blank=True,
        help_text="The push's _lastChange; empty: abandoned by its client, never stored.",
    )
    written = models.JSONField(
        null=True, blank=True,
        help_text="A digest of each value the push wrote, by model and id, for a later push "
        "that names this one unanswered.",
    )
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "user", "push_id"],
                                    name="persistence_sync_receipt_uniq")
        ]

    def __str__(self):
        return f"{self.endpoint} push {self.push_id} by {self.user or 'anonymous'} @ {self.stamp}"


class OutgoingPush(models.Model):
    """A push of the sync client, recorded before it is sent and kept until applied.

    If the answer never arrives (a kill, a network cut, a local failure
    after it), the next run sends it again with the same id and so learns the
    stamp the remote gave it (see :mod:`persistence_sync.client.sync`).
    """

    model = models.CharField(max_length=100, help_text="Label of the synced model.")
    remote = models.CharField(max_length=500, help_text="The remote endpoint URL.")
    push_id = models.CharField(max_length=64, unique=True)
    items = models.JSONField(help_text="The pushed array, as sent.")
    decided_at = models.BigIntegerField(
        help_text="The local clock's committed value the push was decided from: local "
        "stamps up to it are in the push, later ones are newer than it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self):
        return f"{self.model} push {self.push_id} to {self.remote}"
