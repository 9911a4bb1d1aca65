"""Following a remote: keep this site a replica within about a second, until stopped.

``manage.py syncall --follow`` is a thin command over :class:`Follower`::

    follower = Follower(sync, registrations, server_url, transport, using="default")
    follower.run(stop)        # until stop (a threading.Event) is set; returns the Stats

What it does, and why it loses no write
---------------------------------------

Every sync it runs is ``sync(models)``, i.e. :func:`~persistence_sync.client.sync_all`
for those models: the same code, with the same guarantees, as a plain
``syncall`` run (:mod:`~persistence_sync.client.sync`). Following only
decides *when* to sync and *which* models:

1. **Remote changes: the change feed's long-poll.** A thread asks
   ``GET <server>/events?since=<since>&wait=25`` (docs/events.md) through the
   sync's own :class:`~persistence_sync.client.transport.HttpTransport`: the
   same credentials, TLS context, proxies, redirect rules (no credential to
   another origin), retries and error texts as the pulls. The long-poll
   rather than the SSE stream: it is one JSON request like a pull, so it
   needs no new dependency or parser, works behind WSGI-only deployments
   too, and a cut connection is an ordinary transient error. The first
   request (``wait=0``, no ``since``) is made *before* the initial full
   sync, so every change after the snapshot it names is announced, and
   every change before it is pulled by that sync. Each answer's ``since`` is
   sent back next time: a reconnect (the feed process restarted, the network
   cut) resumes from it, and the feed tells at once of anything missed, or
   names everything when it cannot tell (a resync hint: every followed
   model is synced).
2. **Local changes: the local clocks.** Every write path of a synced model
   ticks its clock (:mod:`persistence_sync.clock`), in any process (the
   admin, a view, another worker). The main loop reads the clock table
   every :data:`LOCAL_CHECK` seconds (one small query); when a model's clock
   moved, it asks whether the model has a local change a sync would push
   (:func:`.local.has_local_changes`: the values a sync took from the remote
   carry its applied stamp and do not count), so its own syncs do not
   trigger syncs.
3. **A floor: every ``interval`` seconds**, every followed model is synced
   anyway. It is also the whole schedule against a remote without the feed
   (HTTP 404 or 405 at ``events``: the classic node.js server): following
   then polls every ``interval`` seconds, and says so once.

Syncs are single-flight (one at a time, in the main thread) and coalesced:
notices and local changes that arrive while a sync runs are gathered in a
:class:`Pending` set and synced together next. A model whose sync fails
stays pending and is tried again after a jittered, capped
:class:`Backoff`; what it had not delivered is still a local change or a
recorded push, as after a failed ``syncall`` run. Stopping (the event set,
by SIGINT or SIGTERM in the command) lets the current sync finish and ends
the loop; nothing is ever half-applied, since each sync commits its writes
in one transaction.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connections

from persistence_sync.client import local
from persistence_sync.client.results import ModelResult
from persistence_sync.client.sync import endpoint_url
from persistence_sync.client.transport import redact
from persistence_sync.clock import Clock, clock_key
from persistence_sync.exceptions import SyncClientError, TransportError
from persistence_sync.registry import Registration

# Seconds a long-poll waits for a change (the feed lowers it to FEED_MAX_WAIT).
FEED_WAIT = 25
# Seconds the transport waits for a long-poll's answer beyond ``FEED_WAIT``.
FEED_TIMEOUT_MARGIN = 10
# Seconds between two reads of the local clocks.
LOCAL_CHECK = 0.2
# The first delay after a failure, and the cap, in seconds.
BACKOFF_START, BACKOFF_CAP = 0.5, 30.0
# Statuses of a remote that has no change feed: follow by polling instead.
NO_FEED = (404, 405)


class FollowError(SyncClientError):
    """Following cannot go on (the feed refuses these credentials): the command exits non-zero."""


class Backoff:
    """Delays after consecutive failures: doubling from ``start`` up to ``cap``, jittered.

    The n-th failure in a row waits ``min(cap, start * 2**(n-1))`` times a
    random factor in ``[0.5, 1]``: replicas that lost the same remote do not
    come back at the same instant, and none waits longer than ``cap``.
    """

    def __init__(self, start: float = BACKOFF_START, cap: float = BACKOFF_CAP,
                 rand: Callable[[float, float], float] = random.uniform) -> None:
        self.start, self.cap, self.rand = start, cap, rand
        self.failures = 0

    def failed(self) -> float:
        """Count a failure; the seconds to wait before trying again."""
        self.failures += 1
        return min(self.cap, self.start * 2 ** min(self.failures - 1, 30)) * self.rand(0.5, 1.0)

    def succeeded(self) -> None:
        self.failures = 0


class Pending:
    """The models due for a sync: notices and local changes gathered until the next one.

    ``everything`` stands for every followed model (a resync hint, the
    interval's floor); :meth:`take` hands over all that is due at once, so a
    burst of notices costs one sync, not one each.
    """

    def __init__(self) -> None:
        self.labels: set[str] = set()
        self.everything = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.labels)

    def add(self, labels: Iterable[str]) -> None:
        self.labels.update(labels)

    def add_everything(self) -> None:
        self.everything = True

    def take(self) -> set[str] | None:
        """What is due (None: every model), emptied."""
        due = None if self.everything else set(self.labels)
        self.labels, self.everything = set(), False
        return due


@dataclass
class Stats:
    """What a follow run did, for its summary line."""

    started: float = field(default_factory=time.monotonic)
    syncs: int = 0
    failed: int = 0
    written: int = 0  # local objects created, updated or removed
    pushed: int = 0
    notices: int = 0
    last_error: str | None = None

    def summary(self, clock: Callable[[], float] = time.monotonic) -> str:
        seconds = round(clock() - self.started)
        failed = f" ({self.failed:,} failed, last: {self.last_error})" if self.failed else ""
        return (f"followed for {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}: "
                f"{self.syncs:,} syncs{failed}, {self.notices:,} notices, {self.written:,} objects "
                f"written here, {self.pushed:,} pushed")


def feed_url(server_url: str) -> str:
    """The remote's change feed: ``events`` next to the endpoints under the server URL."""
    return urllib.parse.urljoin(server_url.rstrip("/") + "/", "events")


class Follower:
    """Keeps the followed models synced with the remote until stopped (module docstring).

    ``sync(labels)`` runs one sync of those models (None: all followed) and
    returns its :class:`ModelResult` list: :func:`~persistence_sync.client.sync_all`
    in the command. ``log(text)`` says what a person should know (the feed
    missing or back, a failure); ``report(results)`` hears every sync.
    """

    def __init__(self, sync: Callable[[set[str] | None], Sequence[ModelResult]],
                 registrations: Sequence[Registration], server_url: str | None, transport: Any,
                 using: str, interval: float = 30.0, feed_wait: int = FEED_WAIT,
                 log: Callable[[str], None] = print,
                 report: Callable[[Sequence[ModelResult]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[float, float], float] = random.uniform) -> None:
        self.sync, self.registrations = sync, list(registrations)
        self.server_url, self.transport, self.using = server_url, transport, using
        self.interval, self.feed_wait = interval, feed_wait
        self.log, self.report, self.clock = log, report, clock
        self.urls = {reg.label: endpoint_url(reg, server_url) for reg in self.registrations}
        # A notice names the remote's endpoints: the last part of each model's URL.
        self.by_endpoint: dict[str, set[str]] = {}
        for label, url in self.urls.items():
            name = urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
            self.by_endpoint.setdefault(name, set()).add(label)
        self.feed = feed_url(server_url) if server_url else None
        self.pending = Pending()
        self.stats = Stats(started=clock())
        self.since: str | None = None  # the feed's position we have been told up to
        self.feed_missing = self.feed is None
        self.fatal: FollowError | None = None
        self.wake = threading.Event()  # a notice, a local change, stopping
        self.lock = threading.Lock()  # the pending set, between the feed thread and the loop
        self.sync_backoff = Backoff(rand=rand)
        self.feed_backoff = Backoff(rand=rand)
        self.retry_at = 0.0  # no sync before this (monotonic), after a failure
        self.next_floor = clock() + interval
        self.clocks: dict[str, int] | None = None  # the local clocks at the last check
        self.keys = {clock_key(reg.model): reg.label for reg in self.registrations}

    # --- decisions ---------------------------------------------------------------

    def on_answer(self, answer: Any, asked_since: str | None) -> None:
        """A long-poll's answer: the models it names become due; its ``since`` is kept.

        An answer to a request without ``since`` names everything the
        account may read (the feed knows nothing of us): every followed
        model is due. Names of endpoints this site does not follow are left.
        """
        if not isinstance(answer, dict) or not isinstance(answer.get("since"), str) or \
                not isinstance(answer.get("endpoints"), list):
            raise TransportError('the feed\'s answer is not {"since": "...", "endpoints": [...]}')
        self.since = answer["since"]
        self.feed_backoff.succeeded()
        named = [name for name in answer["endpoints"] if isinstance(name, str)]
        if not named:
            return
        with self.lock:
            self.stats.notices += 1
            if asked_since is None:
                self.pending.add_everything()
            else:
                for name in named:
                    self.pending.add(self.by_endpoint.get(name, ()))
        self.wake.set()

    def on_feed_error(self, exc: TransportError) -> float | None:
        """Seconds to wait before asking the feed again; None: stop asking (no feed, or fatal).

        404/405: the remote has no feed; the floor's polling takes over. 400:
        the feed does not take our ``since`` (not one of its answers): ask
        without it, which names everything. 401/403: the credentials are
        refused; following stops with the remote's reason (:attr:`fatal`).
        Anything else (the feed restarting, a cut connection, a 5xx) is
        tried again after a backoff, from the same ``since``.
        """
        if exc.status in NO_FEED:
            self.feed_missing = True
            self.log(f"The remote has no change feed at {redact(self.feed)} (HTTP {exc.status}): "
                     f"syncing every {self.interval:g} s instead, and at once after local writes.")
            return None
        if exc.status in (401, 403):
            self.fatal = FollowError(f"the change feed at {redact(self.feed)} refuses this "
                                     f"account: {exc}")
            self.wake.set()
            return None
        if exc.status == 400:
            self.since = None
        delay = self.feed_backoff.failed()
        if self.feed_backoff.failures == 1:
            self.log(f"The change feed at {redact(self.feed)} failed ({exc}): trying again, "
                     f"backing off up to {self.feed_backoff.cap:g} s.")
        return delay

    def check_local(self) -> None:
        """Models whose clock moved and that hold a local change become due."""
        try:
            clocks = dict(Clock.objects.using(self.using).filter(
                model__in=list(self.keys)).values_list("model", "value"))
        except DatabaseError:
            connections[self.using].close()  # a restarted database: a new connection next time
            return
        previous, self.clocks = self.clocks, clocks
        if previous is None:
            return
        moved = [key for key, value in clocks.items() if value != previous.get(key)]
        changed = []
        for key in moved:
            label = self.keys[key]
            registration = next(reg for reg in self.registrations if reg.label == label)
            try:
                state = local.get_state(registration, self.urls[label], self.using)
                if local.has_local_changes(registration, state, clocks[key] + 1, self.using):
                    changed.append(label)
            except DatabaseError:
                connections[self.using].close()
                self.clocks = previous  # look again next time
                return
        if changed:
            with self.lock:
                self.pending.add(changed)

    def due(self) -> bool:
        """Whether a sync should start now (something pending, no backoff running)."""
        now = self.clock()
        if now >= self.next_floor:
            with self.lock:
                self.pending.add_everything()
        return bool(self.pending) and now >= self.retry_at

    def sync_pending(self) -> Sequence[ModelResult]:
        """One sync of everything due; what fails is due again after a backoff."""
        with self.lock:
            due = self.pending.take()
        if due is None:
            self.next_floor = self.clock() + self.interval
        try:
            results = self.sync(due)
        except Exception as exc:  # noqa: BLE001 - a local database away, say: try again
            connections[self.using].close()
            results = [ModelResult(model=label, url=None, error=str(exc), cause=str(exc))
                       for label in (due if due is not None else self.urls)]
        failed = {result.model for result in results if not result.ok}
        self.stats.syncs += 1
        for result in results:
            self.stats.written += result.created + result.updated + result.removed
            self.stats.pushed += result.pushed
        if failed:
            self.stats.failed += 1
            first = next(result for result in results if not result.ok)
            error = first.cause or first.error
            if error != self.stats.last_error:
                self.log(f"Sync failed ({error}): trying again, backing off up to "
                         f"{self.sync_backoff.cap:g} s.")
            self.stats.last_error = error
            with self.lock:
                if due is None:
                    self.pending.add_everything()
                else:
                    self.pending.add(failed)
            self.retry_at = self.clock() + self.sync_backoff.failed()
        else:
            if self.sync_backoff.failures:
                self.log("Syncing again.")
            self.sync_backoff.succeeded()
            self.retry_at = 0.0
        if self.report is not None:
            self.report(results)
        return results

    # --- the loops ----------------------------------------------------------------

    def ask_feed(self, wait: int) -> None:
        """One long-poll; its answer goes to :meth:`on_answer`. Raises TransportError."""
        assert self.feed is not None
        asked = self.since
        query = {"wait": wait, **({"since": asked} if asked is not None else {})}
        answer = self.transport.request(
            "GET", f"{self.feed}?{urllib.parse.urlencode(query)}",
            timeout=wait + FEED_TIMEOUT_MARGIN)
        self.on_answer(answer, asked)

    def start_feed(self) -> bool:
        """Ask the feed where it stands, before the first sync; False without a feed."""
        if self.feed is None:
            self.log("No server URL to find a change feed at: syncing every "
                     f"{self.interval:g} s, and at once after local writes.")
            return False
        try:
            self.ask_feed(0)
        except TransportError as exc:
            if self.on_feed_error(exc) is None:
                return False
        with self.lock:  # the full sync that follows covers what this first answer names
            self.pending.take()
        return True

    def feed_loop(self, stop: threading.Event) -> None:
        """The feed thread: long-poll after long-poll, backing off after failures."""
        while not stop.is_set():
            try:
                self.ask_feed(self.feed_wait)
            except TransportError as exc:
                delay = self.on_feed_error(exc)
                if delay is None:
                    return
                stop.wait(delay)
            except Exception as exc:  # noqa: BLE001 - a bug here must not end live sync silently
                self.log(f"The change feed's client failed ({exc!r}): trying again.")
                stop.wait(self.feed_backoff.failed())

    def run(self, stop: threading.Event) -> Stats:
        """Sync everything, then follow until ``stop`` is set; the :class:`Stats`.

        Raises :class:`FollowError` when the feed refuses the credentials.
        """
        feed_ok = self.start_feed()
        if self.fatal is not None:
            raise self.fatal
        self.check_local()  # the clocks before the first sync: writes after it are seen
        with self.lock:
            self.pending.add_everything()
        if feed_ok:
            threading.Thread(target=self.feed_loop, args=(stop,), name="persistence-sync-feed",
                             daemon=True).start()
        while not stop.is_set():
            if self.due():
                self.sync_pending()
                continue  # what came meanwhile is synced next, together
            if self.fatal is not None:
                raise self.fatal
            self.wake.wait(self.wait_time())
            self.wake.clear()
            if not stop.is_set():
                self.check_local()
        return self.stats

    def wait_time(self) -> float:
        """Seconds to sleep at most: until the next local check, floor or retry."""
        now = self.clock()
        until = min(self.next_floor, self.retry_at if self.pending else self.next_floor) - now
        return max(0.0, min(LOCAL_CHECK, until))
