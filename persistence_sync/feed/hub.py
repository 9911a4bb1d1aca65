"""One feed process: its subscribers, its snapshots of the clocks, the fan-out, and why no notice is missed.

A :class:`Hub` per database serves every feed connection of the process. Its
watcher (:mod:`persistence_sync.feed.watch`) reads the whole clock table in
one statement -- a *snapshot*: every model's committed value -- whenever
PostgreSQL notifies it, or every ``FEED_INTERVAL`` elsewhere, and for each
model that moved computes once whom the window concerns
(:func:`~persistence_sync.feed.changes.concerned`). :meth:`Hub.publish` then
hands a notice to the subscribers of those scope values and users only,
through a per-model index (scope key -> subscribers): the cost of a change
follows the users it concerns, not the connections.

Positions and why a reconnecting client misses nothing
------------------------------------------------------

A notice's ``id`` is its snapshot's *position*: the largest clock value in
it, the ``now`` a pull of every model would answer. It says "every change
you may see, stamped up to this snapshot's value of its model, was
announced to you (or is in a notice on its way)". But clocks are per model,
so a position alone does not say which snapshot it was: a change of model A
committed after a notice for B at position ``L`` may carry a stamp ``<= L``
(a writer of A that took its stamp in the same millisecond, or before B's
clock ran ahead, commits after the snapshot). "Visible rows stamped after
``L``" would miss it. Two facts make the check exact:

1. **Snapshots form a chain.** Each is one read of committed counters, and
   a counter only grows, so of any two snapshots (of any process, on one
   database) one is at or below the other in every model.
2. Hence, for a snapshot ``W`` this process took, ``max(W) < L`` implies
   ``W <= V`` for the snapshot ``V`` behind ``L`` (were ``W`` at or above
   ``V``, its largest value would be at least ``L``). And a snapshot's sum
   identifies it (a later one has a larger sum): ``sum(W) < sum(V)`` implies
   ``W <= V`` the same way, ``sum(W) == sum(V)`` means ``W == V``.

A reconnecting client names ``L`` (``Last-Event-ID``), or ``L.S`` (the
long-poll's ``since``: position and sum). :meth:`History.baseline` finds the
snapshot of sum ``S`` or else the latest one below ``L`` (below ``S``); a
client has been told of everything up to that baseline, model by model, so
the feed asks the database whether anything it may see changed in
``(baseline[m], now[m]]`` for each model ``m``
(:func:`~persistence_sync.feed.changes.missed`). A baseline before the
client's true one only costs a notice for something it already knew. When
no snapshot is old enough (another process's ``L`` older than this one's
history, a restart, a first connection), the client gets one notice naming
everything it may see: a resync hint, which reveals nothing and costs one
pull per endpoint.

A subscriber is added to the index and given the current snapshot under one
lock with :meth:`Hub.publish`, so every window after that snapshot reaches
it through the index, and everything before through the check above.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from persistence_sync.conf import sync_settings
from persistence_sync.feed.changes import Concerned, Model
from persistence_sync.scoping import ScopeValues

# Snapshots a process remembers for reconnects: one per change of the clocks
# (every FEED_INTERVAL at most), minutes of a busy site.
HISTORY_SIZE = 4096


class Snapshot(NamedTuple):
    """One read of every clock: ``position`` (the largest value), ``total`` (the sum), ``clocks``."""

    position: int
    total: int
    clocks: dict[str, int]

    @classmethod
    def of(cls, clocks: dict[str, int]) -> Snapshot:
        return cls(max(clocks.values(), default=0), sum(clocks.values()), clocks)

    @property
    def token(self) -> str:
        """``"<position>.<total>"``: the long-poll's ``since``, naming this very snapshot."""
        return f"{self.position}.{self.total}"


class History:
    """The snapshots this process took recently, in order; see :meth:`baseline`."""

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self.snapshots: deque[Snapshot] = deque(maxlen=size)

    def add(self, snapshot: Snapshot) -> None:
        if not self.snapshots or snapshot.total > self.snapshots[-1].total:
            self.snapshots.append(snapshot)

    def baseline(self, position: int, total: int | None = None) -> Snapshot | None:
        """The latest snapshot at or below the client's, or None (then: a resync hint).

        With ``total``: the snapshot of that sum, else the latest of a smaller
        sum; with the position alone, the latest of a smaller position
        (module docstring). Only a snapshot older than the client's own can
        show it what it may have missed.
        """
        snapshots = list(self.snapshots)
        if total is not None:
            totals = [snapshot.total for snapshot in snapshots]
            at = bisect.bisect_right(totals, total)
            if at and totals[at - 1] == total:
                return snapshots[at - 1]
        else:
            at = bisect.bisect_left([snapshot.position for snapshot in snapshots], position)
        # Only when the history reaches back past the client's snapshot: an older
        # one of this process then exists; the first one recorded may be newer.
        return snapshots[at - 1] if at else None


@dataclass(frozen=True)
class Interest:
    """One registration a subscriber may read: what names a notice of it, and which objects."""

    model: Model
    endpoint: str  # the classic URI as the router serves it, e.g. "taskUpdates"
    table: str  # the WatermelonDB table, e.g. "tasks"
    values: ScopeValues | None  # its scope values; None: every change of the model (unscoped)
    registration: Any = None  # the Registration (scope values are read again from it)

    def matches(self, concerned: Concerned, user: str | None) -> bool:
        if self.values is None:
            return concerned.anything
        return bool(concerned.scopes & self.values.keys) or (user is not None and user in concerned.users)


class Notice(NamedTuple):
    endpoints: frozenset[str]
    tables: frozenset[str]
    snapshot: Snapshot


class Subscriber:
    """One feed connection: what it may read, and the notice waiting for it (coalesced).

    :meth:`deliver` never blocks: a notice not yet sent just gains names and
    the newer snapshot, so a client that stops reading costs one pending
    notice, and the fan-out never waits for it.
    """

    def __init__(self, user: str | None, interests: list[Interest], request: Any = None) -> None:
        self.user = user
        self.interests: dict[str, list[Interest]] = {}
        for interest in interests:
            self.interests.setdefault(interest.model.key, []).append(interest)
        # The request, kept only to read scope_values= again (refresh_scopes).
        self.request = request if any(i.model.grants for i in interests) else None
        self._lock = threading.Lock()
        self._endpoints: set[str] = set()
        self._tables: set[str] = set()
        self._snapshot: Snapshot | None = None
        self.closed = False

    def everything(self) -> tuple[set[str], set[str]]:
        """Every endpoint and table it may read: the names of a resync hint."""
        every = [interest for interests in self.interests.values() for interest in interests]
        return {i.endpoint for i in every}, {i.table for i in every}

    def deliver(self, endpoints: Iterable[str], tables: Iterable[str], snapshot: Snapshot) -> None:
        with self._lock:
            was_empty = self._snapshot is None
            self._endpoints.update(endpoints)
            self._tables.update(tables)
            if self._snapshot is None or snapshot.total > self._snapshot.total:
                self._snapshot = snapshot
        if was_empty:
            self.wake()

    def take(self) -> Notice | None:
        """The pending notice, now handed over (None when there is none)."""
        with self._lock:
            if self._snapshot is None:
                return None
            notice = Notice(frozenset(self._endpoints), frozenset(self._tables), self._snapshot)
            self._endpoints, self._tables, self._snapshot = set(), set(), None
            return notice

    def wake(self) -> None:
        raise NotImplementedError


class ThreadSubscriber(Subscriber):
    """A subscriber served by a thread (WSGI): waits on a condition."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for a notice; whether one is pending."""
        self._event.wait(timeout)
        self._event.clear()
        with self._lock:
            return self._snapshot is not None


class AsyncSubscriber(Subscriber):
    """A subscriber served by an event loop (ASGI): woken from any thread, never blocking it.

    Bound to the loop of its first wait: the view that makes it runs in a
    worker thread, which knows no loop. An idle stream waits with no timer of
    its own: one :class:`Pacer` per loop wakes those due a heartbeat (a timer
    and a task per connection, alive for seconds, made Python's collector walk
    every connection again and again, pausing the loop for a second at 5,000).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self.quiet_since = time.monotonic()  # when it last sent something

    def wake(self) -> None:
        loop, event = self.loop, self._event
        if loop is None or event is None:
            return  # not waiting yet: the waits look at the pending notice first
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # the loop is closed: the connection is gone
            pass

    def _bind(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
            self.loop = asyncio.get_running_loop()
        return self._event

    def _pending(self) -> bool:
        with self._lock:
            return self._snapshot is not None

    async def next_wake(self) -> bool:
        """Wait for a notice (True) or a heartbeat due (False), as the loop's pacer says."""
        event = self._bind()
        if not self._pending():
            pacer = Pacer.of(asyncio.get_running_loop())
            pacer.members.add(self)
            try:
                await event.wait()
            finally:
                pacer.members.discard(self)
        event.clear()
        self.quiet_since = time.monotonic()
        return self._pending()

    async def wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for a notice (a long-poll); whether one is pending."""
        event = self._bind()
        if not self._pending():
            # asyncio.wait, not wait_for: before Python 3.12 wait_for can swallow a
            # cancellation (the client gone), as handler.send_within explains.
            waiting = asyncio.ensure_future(event.wait())
            try:
                await asyncio.wait({waiting}, timeout=timeout)
            finally:
                waiting.cancel()
        event.clear()
        return self._pending()


class Pacer:
    """Wakes the idle streams of one event loop when their heartbeat is due, once a second."""

    _pacers: dict[asyncio.AbstractEventLoop, Pacer] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.members: set[AsyncSubscriber] = set()
        self.task = loop.create_task(self.run())

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Pacer:
        pacer = cls._pacers.get(loop)
        if pacer is None or pacer.task.done():
            pacer = cls._pacers[loop] = cls(loop)
        return pacer

    async def run(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, sync_settings.FEED_HEARTBEAT / 4))
            due = time.monotonic() - sync_settings.FEED_HEARTBEAT
            for member in [member for member in self.members if member.quiet_since <= due]:
                if member._event is not None:
                    member._event.set()


@dataclass
class _KeyIndex:
    """The subscribers of one clock key, by what a window of it must hold to concern them."""

    by_scope: dict[str, set[Subscriber]] = field(default_factory=dict)
    by_user: dict[str, set[Subscriber]] = field(default_factory=dict)
    everyone: set[Subscriber] = field(default_factory=set)

    def entries(self, subscriber: Subscriber, interest: Interest) -> list[set[Subscriber]]:
        if interest.values is None:
            return [self.everyone]
        found = [self.by_scope.setdefault(key, set()) for key in interest.values.keys]
        if subscriber.user is not None:
            found.append(self.by_user.setdefault(subscriber.user, set()))
        return found

    def concerned(self, concerned: Concerned) -> set[Subscriber]:
        found: set[Subscriber] = set(self.everyone) if concerned.anything else set()
        for key in concerned.scopes:
            found.update(self.by_scope.get(key, ()))
        for user in concerned.users:
            found.update(self.by_user.get(user, ()))
        return found

    def prune(self) -> None:
        for index in (self.by_scope, self.by_user):
            for key in [key for key, members in index.items() if not members]:
                del index[key]


class Hub:
    """The feed of one database in this process: subscribers, snapshots, fan-out."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.lock = threading.Lock()
        self.current: Snapshot | None = None
        self.history = History()
        self.models: dict[str, Model] = {}  # clock key -> model, of every served registration
        self._index: dict[str, _KeyIndex] = {}
        self._subscribers: set[Subscriber] = set()
        self._refresh_due: list[tuple[float, int, Subscriber]] = []  # heap
        self._refresh_users: set[str] = set()
        self.watcher: Any = None  # persistence_sync.feed.watch.Watcher, once started

    # --- subscribers ---------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Snapshot:
        """Add ``subscriber``; every window after the snapshot returned will reach it."""
        with self.lock:
            assert self.current is not None, "the hub's watcher reads the clocks before serving"
            self._subscribers.add(subscriber)
            self._index_add(subscriber)
            for key, interests in subscriber.interests.items():
                self.models.setdefault(key, interests[0].model)
            if subscriber.request is not None:
                due = time.monotonic() + sync_settings.FEED_SCOPE_REFRESH
                heapq.heappush(self._refresh_due, (due, id(subscriber), subscriber))
            return self.current

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            subscriber.closed = True
            if subscriber in self._subscribers:
                self._subscribers.discard(subscriber)
                self._index_remove(subscriber)

    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _index_add(self, subscriber: Subscriber) -> None:
        for key, interests in subscriber.interests.items():
            index = self._index.setdefault(key, _KeyIndex())
            for interest in interests:
                for members in index.entries(subscriber, interest):
                    members.add(subscriber)

    def _index_remove(self, subscriber: Subscriber) -> None:
        for key, interests in subscriber.interests.items():
            index = self._index.get(key)
            if index is None:
                continue
            for interest in interests:
                for members in index.entries(subscriber, interest):
                    members.discard(subscriber)
            index.prune()

    # --- the watcher's side --------------------------------------------------

    def publish(self, snapshot: Snapshot, windows: dict[str, Concerned], moved: Iterable[str]) -> set[str]:
        """Record ``snapshot`` and hand each concerned subscriber its notice.

        ``windows``: whom each moved model's window concerns. Returns, without
        publishing anything, the moved keys that subscribers read and that
        ``windows`` lacks (a subscriber of a model new to the hub came
        meanwhile): the watcher computes them and publishes again.
        """
        with self.lock:
            lacking = {key for key in moved if key in self._index and key not in windows}
            if lacking:
                return lacking
            notices: dict[Subscriber, tuple[set[str], set[str]]] = {}
            for key in moved:
                index = self._index.get(key)
                if index is None:
                    continue
                window = windows[key]
                for member in index.concerned(window):
                    for interest in member.interests.get(key, ()):
                        if interest.matches(window, member.user):
                            names = notices.setdefault(member, (set(), set()))
                            names[0].add(interest.endpoint)
                            names[1].add(interest.table)
                model = self.models.get(key)
                if window.users and model is not None and model.grants:
                    self._refresh_users.update(window.users)  # their scope values changed
            self.current = snapshot
            self.history.add(snapshot)
        for member, (endpoints, tables) in notices.items():
            member.deliver(endpoints, tables, snapshot)
        return set()

    def start_at(self, snapshot: Snapshot) -> None:
        with self.lock:
            self.current = snapshot
            self.history.add(snapshot)

    # --- scope values that change (scope_values= registrations) --------------

    def due_refreshes(self, limit: int = 100) -> list[Subscriber]:
        """Subscribers whose scope values are to be read again now: those whose grants
        moved in the last windows, and those not read for ``FEED_SCOPE_REFRESH``."""
        now = time.monotonic()
        with self.lock:
            users, self._refresh_users = self._refresh_users, set()
            due = [subscriber for subscriber in self._subscribers
                   if users and subscriber.user in users and subscriber.request is not None]
            while self._refresh_due and self._refresh_due[0][0] <= now and len(due) < limit:
                _, _, subscriber = heapq.heappop(self._refresh_due)
                if subscriber.closed:
                    continue
                due.append(subscriber)
                heapq.heappush(self._refresh_due, (now + sync_settings.FEED_SCOPE_REFRESH,
                                                   id(subscriber), subscriber))
        return due

    def rescope(self, subscriber: Subscriber, interests: list[Interest]) -> None:
        """Give ``subscriber`` its scope values read again; a notice if any changed."""
        before = {id(old.registration): _keys(old.values)
                  for olds in subscriber.interests.values() for old in olds}
        changed = [new for new in interests if before.get(id(new.registration)) != _keys(new.values)]
        if not changed:
            return
        with self.lock:
            if subscriber.closed:
                return
            self._index_remove(subscriber)
            subscriber.interests = {}
            for interest in interests:
                subscriber.interests.setdefault(interest.model.key, []).append(interest)
            self._index_add(subscriber)
            snapshot = self.current
        assert snapshot is not None
        subscriber.deliver({i.endpoint for i in changed}, {i.table for i in changed}, snapshot)


def _keys(values: ScopeValues | None) -> frozenset[str] | None:
    return None if values is None else values.keys


# One hub per database alias in this process, made by persistence_sync.feed.watch.hub_for().
hubs: dict[str, Hub] = {}
hubs_lock = threading.Lock()
