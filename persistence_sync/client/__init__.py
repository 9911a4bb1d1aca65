"""The sync client: makes this site a replica of a remote persistence.sync server.

It decides exactly like the classic persistence.js client (``docs/protocol.md``,
"How the classic client decides"), one registered model at a time, parents
before children::

    from persistence_sync import client

    results = client.sync_all(server_url="https://central.example.com/sync/")
    for result in results:
        print(result.summary())        # or result.as_dict(); result.ok

``manage.py syncall`` is a thin command over :func:`sync_all`; a Celery task
or a view may call it directly.

The package's rooms: :mod:`~persistence_sync.client.planner` (the decisions,
writes nothing), :mod:`~persistence_sync.client.local` (reading local changes
and applying a plan), :mod:`~persistence_sync.client.transport` (HTTP),
:mod:`~persistence_sync.client.conflicts` (the conflict handler contract) and
:mod:`~persistence_sync.client.results` (:class:`ModelResult`).

How local changes are told apart, without wall time
---------------------------------------------------

Every local write is stamped by the local clock (:mod:`persistence_sync.clock`).
A sync of one model:

1. pulls ``since`` the last pull's ``now`` (nothing is written yet);
2. reads the local clock's committed value ``C`` and, in the same snapshot,
   the objects and tombstones stamped in ``(local_date, C]``: the local
   changes. A write committed later is stamped above ``C`` and is a local
   change of the next run;
3. decides (echo, conflict, take remote), lets the conflict handler resolve
   conflicts, and pushes (nothing is written locally before the push
   succeeded, so a failed push leaves the model's local state unchanged);
4. in one local transaction, writes what it took from the remote under one
   fresh stamp ``A`` and records the new state (``local_date = C``,
   ``applied_stamp = A``). Objects still stamped ``A`` next time are not local
   changes, so a second run pushes nothing. The transaction first ticks the
   clock, so local writers of that model wait for it; an object another
   process changed after step 2 keeps the fields it changed (and is pushed
   next run) instead of being overwritten.

Local deletions are the tombstones of the same window; they are "forgotten"
by advancing ``local_date`` past them, which happens only after the push
succeeded. The tombstone rows themselves stay: the site's own sync endpoints
still serve them to its clients.
"""

from __future__ import annotations

import urllib.parse

from django.db import DEFAULT_DB_ALIAS, DatabaseError

from persistence_sync.client import local
from persistence_sync.client.conflicts import (
    Conflict,
    get_conflict_handler,
    prefer_local,
    prefer_remote,
)
from persistence_sync.client.planner import Planner, parse_remote
from persistence_sync.client.results import ModelResult
from persistence_sync.client.transport import HttpTransport
from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import SyncClientError, TransportError

__all__ = [
    "Conflict",
    "HttpTransport",
    "ModelResult",
    "SyncClientError",
    "TransportError",
    "endpoint_url",
    "get_conflict_handler",
    "prefer_local",
    "prefer_remote",
    "sync_all",
    "sync_model",
]


# --- the API ------------------------------------------------------------------------


def endpoint_url(registration, server_url=None):
    """The remote endpoint of ``registration``: ENDPOINTS, else its URI under the server URL."""
    endpoints = {label.lower(): url for label, url in (sync_settings.ENDPOINTS or {}).items()}
    if registration.label in endpoints:
        return endpoints[registration.label]
    base = server_url or sync_settings.SERVER_URL
    if not base:
        raise SyncClientError(
            "No remote server: pass --server URL (server_url=...) or set "
            "PERSISTENCE_SYNC['SERVER_URL']."
        )
    return urllib.parse.urljoin(base.rstrip("/") + "/", registration.uri)


def sync_model(registration, url, transport, handler, using=DEFAULT_DB_ALIAS, dry_run=False,
               progress=None):
    """Sync one model with its remote endpoint; returns a :class:`ModelResult`.

    Raises :class:`SyncClientError` (or a DatabaseError) when it fails, with
    nothing of this model changed locally.
    """
    result = ModelResult(model=registration.label, url=url, dry_run=dry_run)
    state = local.get_state(registration, url, using)
    _report(progress, result, "pulling")
    answer = transport.pull(url, state.server_date)
    result.received = len(answer["updates"])
    remote = parse_remote(registration, answer["updates"])
    _report(progress, result, "deciding")
    snapshot = local.collect_local(registration, state, remote, using)
    plan = Planner(registration, state, remote, snapshot, handler, result).decide()
    result.pushed = len(plan.push)
    if dry_run:
        result.created, result.removed = len(plan.creates), len(plan.deletes)
        result.updated = len(plan.updates)
        return result
    push_now = state.server_push_date
    if plan.push:
        _report(progress, result, "pushing")
        push_now = transport.push(url, plan.push)
    _report(progress, result, "saving")
    local.apply_plan(registration, state, plan, answer["now"], push_now, snapshot, using, result)
    return result


def _report(progress, result, stage):
    if progress is not None:
        progress(result, stage)


def _select(models):
    from persistence_sync import registry

    ordered = registry.registrations()
    if models is None:
        return ordered
    wanted = set()
    for model in models:
        if isinstance(model, registry.Registration):
            wanted.add(model.label)
        else:
            wanted.add(registry.get_registration(model).label)
    return [reg for reg in ordered if reg.label in wanted]


def sync_all(server_url=None, models=None, conflict_handler=None, using=None, dry_run=False,
             progress=None, transport=None):
    """Sync the registered models (all, or ``models``) with the remote, parents first.

    ``models``: model classes, ``"app_label.Model"`` labels or registrations.
    ``conflict_handler``: a callable, ``"prefer-local"``, ``"prefer-remote"`` or
    a dotted path (default: ``PERSISTENCE_SYNC["CONFLICT_HANDLER"]``).
    ``progress(result, stage)`` is called as each model advances.
    Returns one :class:`ModelResult` per model; a failed model has ``error``
    set (naming the model and URL), its local state unchanged, and the
    other models are still synced.
    """
    using = using or DEFAULT_DB_ALIAS
    source = "conflict_handler" if conflict_handler else "PERSISTENCE_SYNC['CONFLICT_HANDLER']"
    handler = get_conflict_handler(conflict_handler or sync_settings.CONFLICT_HANDLER, source)
    transport = transport or HttpTransport.from_settings()
    results = []
    for registration in _select(models):
        url = None
        try:
            url = endpoint_url(registration, server_url)
            result = sync_model(registration, url, transport, handler, using, dry_run, progress)
        except (SyncClientError, DatabaseError) as exc:
            result = ModelResult(model=registration.label, url=url, dry_run=dry_run,
                                 error=f"{registration.label} ({url or 'no URL'}): {exc}")
        results.append(result)
        _report(progress, result, "done")
    return results
