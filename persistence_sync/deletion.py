"""What deleting some rows deletes and resets, found set-based: Django's collector without instances.

Django's deletion collector builds a model instance for every row it
deletes and sends ``pre_delete``/``post_delete`` for each, which a model
with this app's receivers cannot skip: a push removing tens of thousands of
objects spent seconds there, holding the model's clock (and SQLite's write
lock). :func:`collect` finds the same rows with a query per relation and
per batch of ids, and :func:`persistence_sync.models.delete_at` deletes
them with one statement per batch, writing their tombstones itself.

It follows ``on_delete`` as Django does for ``CASCADE``, ``SET_NULL`` and
``DO_NOTHING``, and through many-to-many tables. Where Django's own
collector must decide (a receiver of the project's for a model it would
delete, ``PROTECT``/``RESTRICT``/``SET_DEFAULT``/``SET()`` with rows to act
on, multi-table inheritance, generic relations), :func:`collect` returns
None and the caller hands the delete to Django.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import signals
from django.db.models.deletion import get_candidate_relations_to_delete

from persistence_sync.db import chunks, is_in


@dataclass
class Deletion:
    """The rows a delete removes (children before parents) and the links it resets."""

    deletes: list[tuple[type[models.Model], list]] = field(default_factory=list)
    # (child model, its foreign key, the ids of the deleted rows it names)
    resets: list[tuple[type[models.Model], Any, list]] = field(default_factory=list)


def collect(model: type[models.Model], pks: list, using: str,
            own_receivers: Iterable[Callable] = ()) -> Deletion | None:
    """What deleting ``model``'s rows ``pks`` deletes and resets; None if Django must do it.

    ``own_receivers``: the ``pre_delete``/``post_delete`` receivers whose work
    the caller does itself (this app's); any other receiver for a model to
    delete sends the delete to Django's collector, so that it runs.
    """
    deletion = Deletion()
    if not _collect(model, pks, using, set(own_receivers), deletion, set()):
        return None
    return deletion


def _collect(model, pks, using, own, deletion, seen) -> bool:
    """Add ``model``'s ``pks`` and what they cascade to; False when only Django can delete them."""
    pks = [pk for pk in pks if (model, pk) not in seen]
    if not pks:
        return True
    if not _plain(model, own):
        return False
    seen.update((model, pk) for pk in pks)
    for relation in _relations_to(model):
        child, link = relation.related_model, relation.field
        on_delete = link.remote_field.on_delete
        if on_delete is models.DO_NOTHING:
            continue
        if on_delete is models.CASCADE:
            if not _collect(child, _children(child, link, pks, using), using, own, deletion, seen):
                return False
        elif on_delete is models.SET_NULL:
            deletion.resets.append((child, link, pks))
        elif _children(child, link, pks, using):
            return False  # PROTECT, RESTRICT, SET_DEFAULT, SET(): Django's to decide
    deletion.deletes.append((model, pks))
    return True


def _plain(model, own) -> bool:
    """Whether rows of ``model`` can be deleted by a plain statement (no one else to tell)."""
    opts = model._meta
    if opts.parents or any(getattr(relation.field.remote_field, "parent_link", False)
                           for relation in _relations_to(model)):
        return False  # multi-table inheritance: Django deletes both rows
    if any(hasattr(private, "bulk_related_objects") for private in opts.private_fields):
        return False  # a generic relation
    return all(receiver in own for signal in (signals.pre_delete, signals.post_delete)
               for receiver in _receivers(signal, model))


def _relations_to(model) -> list[Any]:
    """The reverse one-to-many and one-to-one relations whose rows a delete of ``model`` acts on."""
    return list(get_candidate_relations_to_delete(model._meta))


def _receivers(signal, sender) -> list:
    """The live receivers of ``signal`` for ``sender`` (Django 5 splits sync and async ones)."""
    live = signal._live_receivers(sender)
    if isinstance(live, tuple):
        return [receiver for group in live for receiver in group]
    return list(live)


def _children(child, link, pks, using) -> list:
    """The primary keys of ``child``'s rows whose ``link`` names one of ``pks``."""
    base = child._base_manager.db_manager(using)
    found: list = []
    for chunk in chunks(pks):  # the link's column holds the value of the field it points at
        found += base.filter(is_in(link.attname, chunk)).values_list("pk", flat=True)
    return found


def raw_delete(model, pks, using) -> int:
    """Delete ``model``'s rows ``pks`` by primary key, one statement per batch; the count."""
    base = model._base_manager.db_manager(using)
    return sum(base.filter(is_in("pk", chunk))._raw_delete(using) for chunk in chunks(pks))
