"""The classic client's decisions for one model's sync, as a :class:`Planner`.

Given what the pull returned (:func:`parse_remote`) and the local changes
(:func:`persistence_sync.client.local.collect_local`), a planner decides,
exactly like persistence.js (``docs/protocol.md``, "How the classic client
decides"), what to take from the remote, what to push and which conflicts to
hand to the conflict handler. It writes nothing::

    planner = Planner(registration, state, remote, local, handler, result)
    plan = planner.decide()      # plan.creates / updates / deletes / push
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import models

from persistence_sync.client.conflicts import Conflict
from persistence_sync.client.results import ModelResult
from persistence_sync.exceptions import SyncClientError, WireTypeError
from persistence_sync.serializers import ID, LAST_CHANGE, REMOVED, is_integral


@dataclass(slots=True)
class RemoteItem:
    id: str
    raw: dict  # as received
    stamp: int | None = None  # _lastChange, when sent
    removed: bool = False
    python: dict = field(default_factory=dict)  # attname -> Python value
    codecs: tuple = ()  # of the properties sent, for :attr:`wire`
    _wire: dict | None = field(default=None, repr=False)

    @property
    def wire(self) -> dict:
        """``{name: normalised wire value}`` of the properties sent, for comparisons.

        Computed when first asked for: an object new here is never compared.
        """
        if self._wire is None:
            self._wire = {codec.name: codec.wire(self.python[codec.attname])
                          for codec in self.codecs}
        return self._wire


@dataclass
class Plan:
    creates: dict = field(default_factory=dict)  # pk -> {attname: value}
    updates: dict = field(default_factory=dict)  # pk -> (LocalRow seen, {attname: value})
    deletes: dict = field(default_factory=dict)  # pk -> stamp seen
    push: list = field(default_factory=list)

    @property
    def writes(self) -> bool:
        return bool(self.creates or self.updates or self.deletes)


def parse_remote(registration, updates) -> dict[str, RemoteItem]:
    """Normalise pulled items; raise SyncClientError naming a value that does not fit.

    Values are checked a column at a time (``FieldCodec.from_wire_column``):
    a page of plain strings, booleans and integers is checked by a few passes
    over each column, not a call per value; the items are then built by
    ``map``, not a loop of Python statements (a first sync parses every
    object once).
    """
    codecs = tuple(registration.codecs)
    flags = [value is True or value == 1
             for value in map(operator.methodcaller("get", REMOVED), updates)]
    live = list(itertools.compress(updates, [not flag for flag in flags]))
    try:
        wire = [list(map(operator.itemgetter(codec.name), live)) for codec in codecs]
    except KeyError:  # some items leave properties out: item by item
        pythons = [_python(codecs, item) for item in live]
        sent: Iterable[tuple] = [codecs if len(python) == len(codecs) else tuple(
            codec for codec in codecs if codec.attname in python) for python in pythons]
    else:  # a column at a time, then a dict per item, built in C
        columns = [_column(codec, values, live) for codec, values in zip(codecs, wire)]
        attnames = [codec.attname for codec in codecs]
        pythons = list(map(dict, map(zip, itertools.repeat(attnames), zip(*columns))))
        sent = itertools.repeat(codecs)
    ids = [item[ID] for item in updates]
    stamps = [item.get(LAST_CHANGE) for item in updates]
    if not set(map(type, stamps)) <= {int}:  # floats such as 3.0, or absent
        stamps = [int(stamp) if is_integral(stamp) else None for stamp in stamps]
    if any(flags):
        properties = zip(pythons, sent)
        remotes = [RemoteItem(pk, item, stamp, True) if flag
                   else RemoteItem(pk, item, stamp, False, *next(properties))
                   for pk, item, stamp, flag in zip(ids, updates, stamps, flags)]
    else:
        remotes = list(map(RemoteItem, ids, updates, stamps, itertools.repeat(False),
                           pythons, sent))
    items = dict(zip(ids, remotes))
    if len(items) < len(remotes):  # a repeated id counts where it last appears
        items = {}
        for remote in remotes:
            items.pop(remote.id, None)
            items[remote.id] = remote
    return items


def _column(codec, values, items) -> list:
    """The Python values of ``values``, ``codec``'s property in each of ``items``."""
    try:
        return codec.from_wire_column(values)
    except WireTypeError:
        for item in items:  # which one: the error names it
            _python((codec,), item)
        raise


def _python(codecs, item) -> dict:
    """``{attname: Python value}`` of the properties ``item`` has."""
    python = {}
    # Other properties (id, _lastChange, one this site does not sync) are skipped.
    for codec in codecs:
        if codec.name in item:
            try:
                python[codec.attname] = codec.from_wire(item[codec.name])
            except WireTypeError as exc:
                raise SyncClientError(
                    f"pulled object {item[ID]!r} has a bad {codec.name!r}: {exc}") from None
    return python


def wire_values(registration, values) -> dict:
    """``{attname: python}`` as ``{wire name: wire value}``, for comparisons and pushes."""
    return {codec.name: codec.wire(values[codec.attname]) for codec in registration.codecs}


class Planner:
    """The decisions of one model's sync: the :class:`Plan`, the push, the result.

    ``remote``: the pulled items by id; ``local``: the
    :class:`~persistence_sync.client.local.LocalSnapshot`; ``result``: the
    :class:`ModelResult` whose counters and conflicts the planner fills.
    """

    def __init__(self, registration, state, remote, local, handler, result: ModelResult,
                 echoes=None, gone=None):
        self.registration = registration
        self.remote = remote
        self.local = local
        self.handler = handler
        self.result = result
        # Stamps of our own pushes: those of the last sync that a pull may still
        # bring back (every part of a split push), and any replayed this run.
        self.echoes = {state.server_push_date, *(state.push_stamps or ()), *(echoes or ())} - {0}
        # {model: ids the remote deleted}, from this sync's pulls of every model.
        self.gone = gone or {}
        self.plan = Plan()
        self.pushed: dict[str, dict] = {}  # pk -> push item, merged in order
        self.conflicts: list[Conflict] = []

    def decide(self) -> Plan:
        """Decide everything; returns the plan (nothing is written)."""
        for pk, item in self.remote.items():
            self.take(pk, item)
        self.push_local_changes()
        if self.conflicts:
            self.resolve_conflicts()
        self.drop_orphans()
        self.plan.push = list(self.pushed.values())
        return self.plan

    def push(self, item: dict) -> None:
        """Add ``item`` to the push; the node server keeps one item per id, so merge."""
        previous = self.pushed.get(item[ID])
        if previous is None or item.get(REMOVED) or previous.get(REMOVED):
            self.pushed[item[ID]] = dict(item)
        else:
            previous.update(item)

    def conflict(self, pk, properties, resolution) -> None:
        self.result.conflicts.append(
            {"id": pk, "properties": list(properties), "resolution": resolution})

    # --- one pulled item -------------------------------------------------------------

    def take(self, pk, item: RemoteItem) -> None:
        row = self.local.rows.get(pk)
        if item.removed:
            self.take_removal(pk, row)
        elif row is None:
            self.take_new(pk, item)
        else:
            self.take_change(pk, item, row)

    def take_removal(self, pk, row) -> None:
        # An id we do not have: deleted here too, never here, or the node
        # sample server's tombstone id. Nothing to do.
        if row is None:
            return
        self.result.pulled += 1
        self.plan.deletes[pk] = row.stamp
        if pk in self.local.changed:
            self.conflict(pk, [], "deleted")

    def take_new(self, pk, item: RemoteItem) -> None:
        if pk in self.local.removed:  # deleted here since the last sync: the deletion wins
            if item.stamp not in self.echoes:
                self.result.pulled += 1
                self.conflict(pk, [], "deleted")
            return  # it is pushed by push_local_changes()
        self.result.pulled += 1
        self.plan.creates[pk] = item.python

    def take_change(self, pk, item: RemoteItem, row) -> None:
        local_wire = wire_values(self.registration, row.values)
        differing = [name for name, value in item.wire.items() if local_wire[name] != value]
        if not differing:
            return
        self.result.pulled += 1
        if pk not in self.local.changed:
            attnames = {codec.name: codec.attname for codec in self.registration.codecs}
            self.plan.updates[pk] = (row, {attnames[name]: item.python[attnames[name]]
                                           for name in differing})
        elif item.stamp in self.echoes:
            # The remote holds our own push; the local value is newer.
            self.push({ID: pk, **{name: local_wire[name] for name in differing}})
        else:
            self.conflicts.append(Conflict(
                local=self.local.instance(self.registration.model, pk), remote=item.raw,
                properties=differing, registration=self.registration,
            ))

    def push_local_changes(self) -> None:
        """Local changes the pull did not bring, and local deletions."""
        for pk in sorted(self.local.changed - set(self.remote)):
            self.push({ID: pk, **wire_values(self.registration, self.local.rows[pk].values)})
        for pk in sorted(self.local.removed):
            item = self.remote.get(pk)
            if item is None or not item.removed:
                self.push({ID: pk, REMOVED: True})

    def drop_orphans(self) -> None:
        """Objects that name a parent the remote deleted: the deletion wins.

        Pulled ones are not written (a later pull says what the remote's
        deletion did to them). Pushed ones would be refused (no such parent):
        with ``CASCADE`` the local copy goes with the parent when this sync
        applies its deletion; with ``SET_NULL`` (or another reset) the object
        is pushed without the link, as the remote's deletion left its copies.
        """
        for codec in self.registration.codecs:
            gone = self.gone.get(codec.related_model)
            if not gone:
                continue
            for changes in (self.plan.creates, self.plan.updates):
                for pk, values in list(changes.items()):
                    values = values[1] if changes is self.plan.updates else values
                    if values.get(codec.attname) in gone:
                        del changes[pk]
            cascades = codec.field.remote_field.on_delete is models.CASCADE
            for pk, item in list(self.pushed.items()):
                if item.get(REMOVED) or item.get(codec.name) not in gone:
                    continue
                if cascades:
                    del self.pushed[pk]
                    self.conflict(pk, [], "deleted")
                else:
                    item[codec.name] = None

    # --- conflicts -------------------------------------------------------------------

    def resolve_conflicts(self) -> None:
        """Run the handler, then make the local object and the remote end up equal."""
        updates_to_push = list(self.pushed.values())
        self.handler(self.conflicts, updates_to_push)
        # The handler may have appended to (or edited) the list: take it as the push.
        self.pushed.clear()
        for item in updates_to_push:
            if not isinstance(item, dict) or not isinstance(item.get(ID), str):
                raise SyncClientError(f"the conflict handler pushed a bad item: {item!r}")
            self.push(item)
        for conflict in self.conflicts:
            self.settle(conflict)

    def settle(self, conflict: Conflict) -> None:
        """Plan the local write and the extra push that one resolved conflict needs."""
        pk = conflict.local.pk
        row = self.local.rows[pk]
        entry = self.pushed.get(pk) or {}
        before = wire_values(self.registration, row.values)
        final = self.final_values(conflict, entry)
        after = wire_values(self.registration, final)
        if entry.get(REMOVED):
            self.plan.deletes[pk] = row.stamp
        else:
            remote_wire = {codec.name: None for codec in self.registration.codecs}
            remote_wire.update(self.remote[pk].wire)
            missing = {name: value for name, value in after.items()
                       if value != remote_wire[name] and name not in entry}
            if missing:  # kept here but not pushed by the handler: push it
                self.push({ID: pk, **missing})
            changes = {codec.attname: final[codec.attname] for codec in self.registration.codecs
                       if after[codec.name] != before[codec.name]}
            if changes:
                self.plan.updates[pk] = (row, changes)
        self.conflict(pk, conflict.properties, self.resolution(conflict, before, after))

    def final_values(self, conflict: Conflict, entry: dict) -> dict:
        """``{attname: value}`` the replica keeps: the pushed values, else the handler's."""
        final = {}
        for codec in self.registration.codecs:
            if codec.name not in entry or entry.get(REMOVED):
                final[codec.attname] = getattr(conflict.local, codec.attname)
                continue
            try:
                final[codec.attname] = codec.from_wire(entry[codec.name])
            except WireTypeError as exc:
                raise SyncClientError(
                    f"the conflict handler pushed a bad {codec.name!r} for "
                    f"{conflict.local.pk!r}: {exc}"
                ) from None
        return final

    def resolution(self, conflict: Conflict, before: dict, after: dict) -> str:
        remote_values = self.remote[conflict.local.pk].wire
        if all(after[name] == before[name] for name in conflict.properties):
            return "local"
        if all(after[name] == remote_values.get(name) for name in conflict.properties):
            return "remote"
        return "custom"
