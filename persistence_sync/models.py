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

from django.db import connections, models, router, transaction

from persistence_sync import clock
from persistence_sync.clock import Clock  # noqa: F401  (the app's table; defined beside its writer)


def new_id():
    """A fresh id in persistence.js's format: 32 upper-case hex digits."""
    return uuid.uuid4().hex.upper()


# (model label, pk) of objects whose tombstone a bulk delete already wrote, so
# the post_delete receiver does not write it again, one query per object.
_tombstoned = contextvars.ContextVar("persistence_sync_tombstoned", default=frozenset())


def bulk_create_at(queryset, objs, stamp, **kwargs):
    """``bulk_create`` with every object stamped ``stamp`` (already ticked)."""
    for obj in objs:
        obj.last_change = stamp
    if kwargs.get("update_fields"):
        kwargs["update_fields"] = [*kwargs["update_fields"], "last_change"]
    Tombstone.forget(queryset.model, [obj.pk for obj in objs], queryset.db)
    return models.QuerySet.bulk_create(queryset, objs, **kwargs)


def upsert_at(queryset, objs, stamp, fields, batch_size=None):
    """Insert ``objs`` or update ``fields`` of those that exist, all stamped ``stamp``.

    The one upsert of the app: the server stores pushes with it and the sync
    client stores what it pulled. Set-based (one statement per batch), on
    every backend Django ships (``ON CONFLICT`` / ``ON DUPLICATE KEY``).
    """
    from persistence_sync.db import chunks

    options = {"update_conflicts": True, "update_fields": list(fields)}
    if connections[queryset.db].features.supports_update_conflicts_with_target:
        options["unique_fields"] = [queryset.model._meta.pk.name]
    for chunk in chunks(objs, batch_size):
        bulk_create_at(queryset, chunk, stamp, **options)


def insert_at(model, rows, stamp, using, batch_size=None):
    """Insert new objects ``rows`` (``{pk: {attname: value}}``), all stamped ``stamp``.

    For objects known to be absent (the caller read them under the model's
    clock): plain multi-row ``INSERT`` statements, the values converted column
    by column; no model instance, no per-object compilation. Other fields get
    their defaults; the ids' tombstones are forgotten, as :func:`upsert_at` does.
    """
    from django.db.models.fields import NOT_PROVIDED

    from persistence_sync.conf import sync_settings
    from persistence_sync.db import chunks
    from persistence_sync.serializers import USE_DEFAULT

    connection = connections[using]
    opts = model._meta
    fields = [field for field in opts.concrete_fields if not getattr(field, "generated", False)]
    if any(getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED for field in fields):
        # Defaults the database computes: Django's INSERT knows how to leave them out.
        objs = [model(**{opts.pk.attname: pk, **{name: value for name, value in values.items()
                                                 if value is not USE_DEFAULT}})
                for pk, values in rows.items()]
        names = sorted({name for values in rows.values() for name in values})
        if objs:
            upsert_at(models.QuerySet(model, using=using), objs, stamp, names, batch_size)
        return
    columns, makers = [], []
    for field in fields:
        columns.append(connection.ops.quote_name(field.column))
        if field is opts.pk:
            makers.append(lambda pk, values: pk)
        elif field.attname == "last_change":
            makers.append(lambda pk, values: stamp)
        elif callable(field.default):
            makers.append(lambda pk, values, f=field: f.get_default()
                          if values.get(f.attname, USE_DEFAULT) is USE_DEFAULT
                          else values[f.attname])
        else:
            default = field.get_default()
            makers.append(lambda pk, values, name=field.attname, d=default:
                          d if (value := values.get(name, d)) is USE_DEFAULT else value)
    prepare = [_db_converter(field, connection) for field in fields]
    # Many rows per statement: one round trip each (executemany is one per row
    # on PostgreSQL), within the database's limit on parameters.
    size = min(batch_size or sync_settings.BATCH_SIZE, 65535 // len(fields),
               max(1, connection.ops.bulk_batch_size(fields, list(rows))))
    head = "INSERT INTO {} ({}) ".format(
        connection.ops.quote_name(opts.db_table), ", ".join(columns))
    row_sql = "({})".format(", ".join(["%s"] * len(columns)))
    # PostgreSQL: one array per column (as Django's bulk_create does), for
    # psycopg parses a statement's placeholders again each time it runs.
    unnest = connection.vendor == "postgresql" and all(
        (field.target_field if field.is_relation else field).get_internal_type() in _PLAIN_TYPES
        for field in fields)
    if unnest:
        size = min(batch_size or sync_settings.BATCH_SIZE, len(rows) or 1)
        head += "SELECT * FROM UNNEST({})".format(
            ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields))
    with connection.cursor() as cursor:
        for chunk in chunks(rows, size):
            tombstoned = existing_ids(Tombstone, "object_id", chunk, using,
                                      equal={"model": opts.label_lower})
            if tombstoned:
                Tombstone.forget(model, tombstoned, using)
            params = []
            for pk in chunk:
                values = rows[pk]
                params += [convert(make(pk, values)) for make, convert in zip(makers, prepare)]
            if unnest:
                cursor.execute(head, [params[index::len(fields)] for index in range(len(fields))])
            else:
                cursor.execute(head + "VALUES " + ", ".join([row_sql] * len(chunk)), params)


def existing_ids(model, attname, values, using, equal=None):
    """The ``values`` found in ``model``'s column ``attname`` (rows also matching ``equal``).

    One plain ``IN`` query per batch, the values converted once by the
    column's field: the ORM's lookup would prepare every value through its
    machinery, a large share of a first sync's time.
    """
    from persistence_sync.db import chunks

    connection = connections[using]
    opts = model._meta
    quote = connection.ops.quote_name
    column = opts.get_field(attname)
    convert = _db_converter(column, connection)
    equal = equal or {}
    conditions = [f"{quote(opts.get_field(name).column)} = %s" for name in equal]
    fixed = [_db_converter(opts.get_field(name), connection)(value)
             for name, value in equal.items()]
    found = []
    # PostgreSQL: one array, as psycopg parses each placeholder of a statement.
    array = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        for chunk in chunks(values):
            if array:
                match = f"{quote(column.column)} = ANY(%s::{column.db_type(connection)}[])"
                params = [*fixed, list(map(convert, chunk))]
            else:
                match = "{} IN ({})".format(quote(column.column), ", ".join(["%s"] * len(chunk)))
                params = [*fixed, *map(convert, chunk)]
            where = " AND ".join([*conditions, match])
            cursor.execute(f"SELECT {quote(column.column)} FROM {quote(opts.db_table)} "
                           f"WHERE {where}", params)
            found += [row[0] for row in cursor.fetchall()]
    return found


# Field types whose str, bool, int, float or None values every database
# driver takes as they are (a relation: the type of the field it points at).
_PLAIN_TYPES = {
    "CharField", "TextField", "SlugField", "EmailField", "URLField", "BooleanField",
    "IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField",
    "PositiveBigIntegerField", "PositiveSmallIntegerField", "FloatField",
}
_PLAIN_VALUES = (str, bool, int, float, type(None))


def _db_converter(field, connection):
    """``value -> database value`` for ``field``, skipping Django's conversions where idle."""
    target = field.target_field if field.is_relation else field
    convert = field.get_db_prep_save
    if target.get_internal_type() not in _PLAIN_TYPES:
        return lambda value: convert(value, connection)
    return lambda value: value if type(value) in _PLAIN_VALUES else convert(value, connection)


def delete_at(queryset, stamp):
    """Delete ``queryset``'s objects, leaving tombstones stamped ``stamp``."""
    model = queryset.model
    pks = list(queryset.values_list("pk", flat=True))
    if not pks:
        return 0, {}
    Tombstone.record(model, pks, stamp, queryset.db)
    label = model._meta.label_lower
    token = _tombstoned.set(_tombstoned.get() | {(label, pk) for pk in pks})
    try:
        # Delete by pk so that a filter on related rows cannot change the set
        # between the listing above and the delete.
        return models.QuerySet.delete(
            models.QuerySet(model, using=queryset.db).filter(pk__in=pks)
        )
    finally:
        _tombstoned.reset(token)


class SyncableQuerySet(models.QuerySet):
    """A QuerySet whose bulk write paths stamp ``_lastChange`` and leave tombstones."""

    def update(self, **kwargs):
        with transaction.atomic(using=self.db, savepoint=False):
            kwargs["last_change"] = clock.tick(self.model, self.db)
            return super().update(**kwargs)

    update.alters_data = True

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
            return super().bulk_update(objs, [*fields, "last_change"], batch_size=batch_size)

    bulk_update.alters_data = True

    def delete(self):
        with transaction.atomic(using=self.db, savepoint=False):
            return delete_at(self, clock.tick(self.model, self.db))

    delete.alters_data = True
    delete.queryset_only = True


class SyncableManager(models.Manager.from_queryset(SyncableQuerySet)):
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
        with transaction.atomic(using=using, savepoint=False):
            self.last_change = clock.tick(type(self), using)
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "last_change"}
            if self._state.adding:
                # An id that was deleted and is now created again.
                Tombstone.forget(type(self), [self.pk], using)
            return super().save(*args, **kwargs)

    save.alters_data = True


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
    with transaction.atomic(using=using, savepoint=False):
        Tombstone.record(sender, [instance.pk], clock.tick(sender, using), using)



class Tombstone(models.Model):
    """A deleted syncable object, returned by pulls as ``_removed``."""

    model = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255)
    last_change = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "object_id"], name="persistence_sync_tomb_uniq")
        ]
        indexes = [models.Index(fields=["model", "last_change"], name="persistence_sync_tomb_ts")]

    def __str__(self):
        return f"{self.model} {self.object_id} removed @ {self.last_change}"

    @classmethod
    def record(cls, model, pks, stamp, using):
        label = model._meta.label_lower
        cls.forget(model, pks, using)
        cls.objects.using(using).bulk_create(
            [cls(model=label, object_id=pk, last_change=stamp) for pk in pks],
            batch_size=1000,
        )

    @classmethod
    def forget(cls, model, pks, using):
        label = model._meta.label_lower
        tombstones = cls.objects.using(using)
        for start in range(0, len(pks), 1000):
            chunk = [str(pk) for pk in pks[start : start + 1000]]
            # Find first, then delete by primary key: a DELETE by (model,
            # object_id) of absent rows takes InnoDB gap locks, on which
            # writers of *other* models (sharing this table) would deadlock.
            # A plain read is exact here: the caller holds the model's clock.
            found = list(tombstones.filter(model=label, object_id__in=chunk).values_list("pk", flat=True))
            if found:
                tombstones.filter(pk__in=found).delete()


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
    once. A receipt without a stamp is a push its client abandoned: a late
    copy of it is refused. Receipts older than
    ``PERSISTENCE_SYNC["PUSH_RECEIPT_DAYS"]`` are pruned by later pushes.
    """

    model = models.CharField(max_length=100, help_text="Label of the pushed model.")
    push_id = models.CharField(max_length=64, help_text="The client's X-Sync-Push-Id.")
    stamp = models.BigIntegerField(
        null=True, blank=True,
        help_text="The push's _lastChange; empty: abandoned by its client, never stored.",
    )
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "push_id"], name="persistence_sync_receipt_uniq")
        ]

    def __str__(self):
        return f"{self.model} push {self.push_id} @ {self.stamp}"


class OutgoingPush(models.Model):
    """A push of the sync client, recorded before it is sent and kept until applied.

    If the answer never arrives (a kill, a network cut, a local failure
    after it), the next run sends it again with the same id and so learns the
    stamp the remote gave it (see :mod:`persistence_sync.client`).
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
