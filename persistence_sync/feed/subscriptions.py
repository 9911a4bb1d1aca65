"""What one feed connection may read, and what it missed while away.

:func:`interests` turns the registrations a request may pull (its
permission classes passed) into :class:`~persistence_sync.feed.hub.Interest`
objects, with the same scope values the endpoints use
(:class:`persistence_sync.scoping.Access`): ``owner=`` the user's own key,
``scope=`` the values of ``scope_values(request)``. A registration limited by
``queryset=``/``get_queryset=`` without a scope is followed as a whole: the
feed cannot tell whose rows a window holds without running each
connection's queryset, so every subscriber allowed on the endpoint is
notified of any change of the model. Such a notice reveals no more than a
pull's ``now`` does, which moves with every write of the model.
"""

from __future__ import annotations

from typing import Any

from persistence_sync.feed import changes
from persistence_sync.feed.hub import Interest, Snapshot, Subscriber
from persistence_sync.registry import Registration
from persistence_sync.scoping import Access
from persistence_sync.watermelon import table_name


def interests(registrations: list[Registration], request: Any) -> list[Interest]:
    """One :class:`Interest` per registration ``request`` may read."""
    found = []
    for registration in registrations:
        access = Access(registration, request)
        found.append(Interest(changes.Model.of([registration]), registration.uri,
                              table_name(registration), access.values, registration))
    return found


def reread(subscriber: Subscriber) -> list[Interest]:
    """The subscriber's interests with ``scope_values(request)`` read again (the hook may query)."""
    current = [interest for interests in subscriber.interests.values() for interest in interests]
    if subscriber.request is None:
        return current
    return [Interest(interest.model, interest.endpoint, interest.table,
                     Access(interest.registration, subscriber.request).values, interest.registration)
            if interest.model.grants else interest
            for interest in current]


def missed(subscriber: Subscriber, baseline: Snapshot | None, current: Snapshot,
           using: str) -> tuple[set[str], set[str]]:
    """The endpoints and tables in which the subscriber may have missed a change since ``baseline``.

    ``baseline`` None (nothing known of the client): all of them, a resync hint.
    """
    if baseline is None:
        return subscriber.everything()
    endpoints: set[str] = set()
    tables: set[str] = set()
    for key, key_interests in subscriber.interests.items():
        since, until = baseline.clocks.get(key, 0), current.clocks.get(key, 0)
        for interest in key_interests:
            model = interest.model
            if changes.missed(model, interest.values, subscriber.user, since, until, using) or (
                    model.grants and subscriber.user is not None and interest.values is not None
                    and changes.grants_outdated(model, interest.values, subscriber.user, using)):
                endpoints.add(interest.endpoint)
                tables.add(interest.table)
    return endpoints, tables
