"""The sync client: makes this site a replica of a remote persistence.sync server.

It decides exactly like the classic persistence.js client (``docs/protocol.md``,
"How the classic client decides") for each registered model::

    from persistence_sync import client

    results = client.sync_all(server_url="https://central.example.com/sync/")
    for result in results:
        print(result.summary())        # or result.as_dict(); result.ok

``manage.py syncall`` is a thin command over :func:`sync_all`; a Celery task
or a view may call it directly.

The package's rooms: :mod:`~persistence_sync.client.sync` (the orchestrator:
one sync, step by step, and why it loses no write),
:mod:`~persistence_sync.client.planner` (the decisions, writes nothing),
:mod:`~persistence_sync.client.local` (reading local changes and applying a
plan), :mod:`~persistence_sync.client.transport` (HTTP),
:mod:`~persistence_sync.client.resync` (after the remote pruned deletions),
:mod:`~persistence_sync.client.conflicts` (the conflict handler contract) and
:mod:`~persistence_sync.client.results` (:class:`ModelResult`).
"""

from persistence_sync.client.conflicts import (
    Conflict,
    get_conflict_handler,
    prefer_local,
    prefer_remote,
)
from persistence_sync.client.results import ModelResult
from persistence_sync.client.sync import endpoint_url, groups, sync_all, sync_model
from persistence_sync.client.transport import HttpTransport
from persistence_sync.exceptions import SyncClientError, TransportError

__all__ = [
    "Conflict",
    "HttpTransport",
    "ModelResult",
    "SyncClientError",
    "TransportError",
    "endpoint_url",
    "get_conflict_handler",
    "groups",
    "prefer_local",
    "prefer_remote",
    "sync_all",
    "sync_model",
]
