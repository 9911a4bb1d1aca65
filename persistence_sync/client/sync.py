"""The sync client's orchestrator: one sync of a group of models, step by step.

:func:`sync_all` (re-exported by :mod:`persistence_sync.client`) syncs every
registered model, a group of models tied by foreign keys at a time, each
group by one :class:`Sync`. The steps below say what a sync does and why it
neither loses nor duplicates a write; the decisions themselves are the
:mod:`~persistence_sync.client.planner`'s, the local database's side is
:mod:`~persistence_sync.client.local`'s and HTTP is
:mod:`~persistence_sync.client.transport`'s.

One sync, for a group of models
-------------------------------

Models tied by foreign keys (either way) are synced together, as one group
(:func:`groups`): a child needs its parents, and a parent's deletion cascades
into its children. A sync of a group:

1. sends again any push of an earlier run whose sync never completed (see
   below);
2. pulls every model, parents first, ``since`` its last pull's ``now``, in
   pages (see "Large pulls" below); a parent model is pulled again when a
   child pulled after it names a parent nobody has;
3. reads, in one database snapshot, each model's local clock value ``C`` and
   the objects and tombstones stamped in ``(local_date, C]``: the local
   changes. A write committed later is stamped above ``C`` and is a local
   change of the next run;
4. decides each model (:class:`~persistence_sync.client.planner.Planner`:
   echo, conflict, take remote), with the conflict handler;
5. pushes each model's changes, parents first, in pushes of at most
   ``PUSH_BATCH_SIZE`` items (halved after a 413), each recorded in the
   local database (:class:`~persistence_sync.models.OutgoingPush`) before it
   is sent. Each part gets a stamp of its own, and the next pull brings its
   objects back with it: every part's stamp (replays' too) is kept as this
   replica's echo (``SyncState.push_stamps``, until a pull has brought it
   back), so a local edit of an object of any part, made after the sync, is
   pushed next run instead of taken for a conflict with its own older value;
6. in one local transaction, writes what it took from the remote, upserts
   parents first and deletions children first, and records each model's new
   state (``local_date = C``, ``applied_stamp = A``). Every write of that
   transaction, the cascades and ``SET_NULL`` of Django's deletion collector
   included, is stamped with the model's one stamp ``A``
   (:func:`persistence_sync.clock.applying_remote`), so objects still stamped
   ``A`` next time are not local changes: a second run pushes nothing, and a
   remote deletion never comes back as a local one. The transaction ticks
   each clock first, so local writers of those models wait for it; an object
   another process changed after step 3 keeps the fields it changed (and is
   pushed next run) instead of being overwritten.

Apart from the pages of step 2 written as they came (below), nothing is
written locally before step 6, so a failed run leaves every model of its
group as it was, apart from the record of a push already sent.
Local deletions are the tombstones of the window; they are "forgotten" by
advancing ``local_date`` past them. The tombstone rows themselves stay: the
site's own sync endpoints still serve them to its clients.

Large pulls: pages written as they come, and resumed
----------------------------------------------------

A pull asks for pages of ``PULL_PAGE_SIZE`` objects (docs/protocol.md,
"Extensions"): the first page answers ``now``; each next one sends that
``now`` and ``after`` = the last id of the page before. While a model has
no local change, each page is written at once
(:func:`.local.apply_page`), so the memory of a first sync is bounded by the
page size, not by the model:

* in one transaction, the page ticks the model's clock (stamp ``P``; local
  writers now wait), checks that no object or tombstone is stamped in
  ``(local_date, P)`` other than the last applied stamp (no local change;
  every stamp below ``P`` has committed, since stamps commit in order) and
  that the parents the page names are here, writes the page stamped ``P``
  and saves the state with ``local_date = applied_stamp = P`` and the cursor
  ``page_now, page_after`` = (the pull's ``now``, the page's last id).
  ``server_date`` stays at ``since`` until the whole sync completes.
* Nothing local is lost by advancing ``local_date`` to ``P``: below it are
  only values already synced and the page just written; a local write made
  after the page is stamped above ``P`` and is a local change of step 3 (or
  of the next run).
* A model's pages are written this way only if its parents' were (parents
  first: the objects a page names are then here), and not when the page
  deletes objects that another model of the group names (only step 6 can
  stamp such cascades for that model), nor during a full resync, a dry run,
  or a run that learnt a replayed push was stored. From the first page
  that fails a check, the rest of the pull is kept in memory and decided in
  step 4 as usual, with ``local_date`` where the last written page left it.

The next page is asked for, its values checked and its insert's database
values computed in a thread while a page is written (:func:`pages`,
:func:`.local.parse_page`; no writes there): the remote's time, the
client's own work and the local database's overlap. It changes nothing above:
pages are still written one after the other, in order, by the caller.

An interrupted run (killed, a network failure) keeps its written pages and
their cursor; the next run continues that pull: ``since`` = ``server_date``,
``now`` = ``page_now``, ``after`` = ``page_after``. This neither skips nor
repeats a change: every page of one pull, resumed or not, reads the same
window ``(since, now]`` by ascending id, and the pages written hold exactly
its ids up to ``after``. A change made on the remote meanwhile, to an id on
either side of ``after``, is stamped above ``now``: it is not in this pull's
pages, and the next sync (``since`` = this ``now``) brings it. Step 6 clears
the cursor when it records ``server_date = now``.

Pushes whose answer was lost
----------------------------

A push stored by the remote whose answer never came back (a kill, a network
cut, a local failure in step 6) would come back in the next pull with a
``_lastChange`` that matches no push we know of, and our own values would be
taken for someone else's change. So each push carries a client-chosen id
(``X-Sync-Push-Id``, docs/protocol.md "Idempotent pushes") and is recorded
before it is sent; step 1 of the next run sends it again with that id and
``X-Sync-Push-Replay``. The remote answers the stamp it gave the push, or
that it never stored it (and now never will: a late copy is refused).

* Stored: its stamp is recognised as our echo, and the local changes it
  delivered (its objects and deletions, as they stood at the recorded
  ``decided_at``) are no longer local changes: for them the run goes on as if
  the interrupted one had completed (its remote changes are pulled again,
  since its state never advanced). Local writes made after it are newer and
  pushed as usual; local changes it did not deliver (another push of that
  run, never sent) stay local changes.
* Never stored: the record is dropped; its local changes are still in the
  local window, and are decided and pushed afresh against the current
  remote.

Why this neither loses nor duplicates a write: the remote stores a push id
at most once (the id's receipt is written in the push's own transaction,
under the model's clock lock), so a retried or replayed push is never stored
twice, and after a replay's "never stored" it can no longer be stored. The
client keeps the record until the run that learnt the push's fate has
committed its state, in the same transaction; so every local write is, at
every moment, either inside the local window (still to push) or inside a
push whose stamp the client will learn. A remote without the extension
ignores the headers: a replay is then stored again (the local values of an
interrupted run are delivered late, not lost) and its fresh stamp is the echo.
"""

from __future__ import annotations

import contextlib
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from persistence_sync import registry as registries
from persistence_sync.client import local, resync
from persistence_sync.client.conflicts import get_conflict_handler
from persistence_sync.client.owners import LocalOwner, Owners
from persistence_sync.client.planner import Plan, Planner
from persistence_sync.client.results import ModelResult
from persistence_sync.client.transport import HttpTransport, check_url, redact
from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import SyncClientError, TransportError
from persistence_sync.registry import Registration, SyncRegistry, related_models
from persistence_sync.serializers import ID, REMOVED

if TYPE_CHECKING:
    from persistence_sync.models import SyncState



# --- the API ------------------------------------------------------------------------


def endpoint_url(registration, server_url=None):
    """The remote endpoint of ``registration``: ENDPOINTS, else its URI under the server URL."""
    endpoints = {label.lower(): url for label, url in (sync_settings.ENDPOINTS or {}).items()}
    if registration.label in endpoints:
        check_url(endpoints[registration.label])
        return endpoints[registration.label]
    base = server_url or sync_settings.SERVER_URL
    if not base:
        raise SyncClientError(
            "No remote server: give its URL (syncall --server URL) or set "
            "PERSISTENCE_SYNC['SERVER_URL']."
        )
    check_url(base)
    return urllib.parse.urljoin(base.rstrip("/") + "/", registration.uri)


@dataclass(eq=False)
class ModelRun:
    """One model's part of a sync: where it stands and what was decided."""

    registration: Registration
    result: ModelResult
    url: str | None = None
    state: SyncState | None = None
    remote: dict = field(default_factory=dict)  # id -> RemoteItem
    pull_now: int = 0
    local: local.LocalSnapshot | None = None
    plan: Plan = field(default_factory=Plan)
    push_now: int = 0
    delivered: dict = field(default_factory=dict)  # pk -> decided_at, of replayed pushes
    # Stamps of this run's answered pushes: replays (known before the pull), then every
    # part; saved as SyncState.push_stamps, the echoes of the next run's pull.
    echoes: set = field(default_factory=set)
    acknowledged: list = field(default_factory=list)  # OutgoingPush pks answered this run
    resyncing: bool = False  # the remote pruned deletions since the last pull: pulled from 0
    streaming: bool = False  # pages are applied as they come (see Sync.pull)
    streamed: dict = field(default_factory=dict)  # counters of the pages applied so far
    # Every row of the model's table was written by this run's pages (see .local.apply_page)
    only_pulled: bool = False
    owner: LocalOwner | None = None  # whose objects of an owner= model this run syncs (.owners)


class Sync:
    """One sync of a group of models tied by relations (see :func:`sync_all`)."""

    def __init__(self, registrations, server_url, transport, handler, using, dry_run, progress,
                 owners=None):
        self.runs = [ModelRun(reg, ModelResult(model=reg.label, url=None, dry_run=dry_run))
                     for reg in registrations]
        self.owners = owners or Owners(using=using)
        self.server_url = server_url
        self.transport = transport
        self.handler = handler
        self.using = using
        self.dry_run = dry_run
        self.progress = progress
        self.current: ModelRun | None = None  # the model being worked on, for errors

    def run(self) -> list[ModelResult]:
        try:
            self.prepare()
            self.pull()
            self.decide()
            if not self.dry_run:
                self.push()
                self.report("saving")
                self.current = None
                local.apply_all(self.runs, self.using)
        except (SyncClientError, DatabaseError) as exc:
            self.fail(exc)
        for run in self.runs:
            _report(self.progress, run.result, "done")
        return [run.result for run in self.runs]

    def each(self, runs=None):
        for run in self.runs if runs is None else runs:
            self.current = run
            yield run

    def report(self, stage):
        for run in self.runs:
            _report(self.progress, run.result, stage)

    def prepare(self) -> None:
        """Endpoints and states; pushes of earlier runs that were never answered."""
        for run in self.each():
            run.url = endpoint_url(run.registration, self.server_url)
            run.result.url = redact(run.url)  # what is shown: no user:password@
            run.state = local.get_state(run.registration, run.url, self.using)
            # Was the model's last sync with another URL? (State is kept per URL.)
            run.result.previous_url = local.previous_remote(run.registration, run.url,
                                                            self.using)
            run.push_now = run.state.server_push_date
            if not self.dry_run:
                self.replay(run)

    def replay(self, run: ModelRun) -> None:
        """Send each unanswered push again, with its id, to learn what became of it.

        See "Pushes whose answer was lost" in this module's docstring.
        """
        for push in local.unanswered_pushes(run.registration, run.url, self.using):
            _report(self.progress, run.result, "replaying an unanswered push")
            stamp = self.transport.push(run.url, push.items, push_id=push.push_id, replay=True)
            if stamp is None:  # never stored, and now never will be
                local.forget_pushes([push.pk], self.using)
                continue
            run.echoes.add(stamp)
            run.acknowledged.append(push.pk)
            run.push_now = max(run.push_now, stamp)
            for item in push.items:
                run.delivered[item[ID]] = max(run.delivered.get(item[ID], 0), push.decided_at)

    def pull(self) -> None:
        """Pull every model, parents first; large pulls page by page.

        Pages are applied as they come while the model has no local change
        (:func:`.local.apply_page`), so memory is bounded by the page size and
        a pull interrupted after some pages resumes after the last one
        applied. Otherwise, or from the first page where that no longer
        holds, pulled objects are kept for :meth:`decide`, as usual.
        """
        previous_streamed = True
        if self.owners.needs_probe(self.runs):
            self.own(next(run for run in self.each() if run.registration.owner))
        for run in self.each():
            # Parents first: a model is applied page by page only once its
            # parents were, so the parents a page names are here already.
            run.streaming = (previous_streamed and not self.dry_run
                             and not run.echoes and not run.delivered)
            cursor = None
            if run.state.page_now:
                cursor = (run.state.page_now, run.state.page_after)
                run.result.resumed = True
            self.pull_model(run, run.state.server_date, cursor)
            previous_streamed = run.streaming
        # A child pulled after its parents may name a parent created in between:
        # pull that parent model again, from where its pull ended.
        # (A parent deleted here is named too: stop when a pull brings nothing.)
        for _ in self.runs:
            wanting = [run for run in self.runs if self.missing_parents(run)]
            for run in wanting:
                run.streaming = False
            if not sum(self.pull_model(run, run.pull_now) for run in self.each(wanting)):
                break

    def own(self, run: ModelRun, answer=None) -> None:
        """Give every ``owner=`` model of the sync its local owner, learnt from ``answer``
        (a pull of ``run``'s model) or a one-item page of it (:mod:`.owners`)."""
        owners = self.owners
        owner = (owners.learn(run.registration, answer) if answer is not None
                 else owners.probe(run, self.transport))
        for each in self.runs:
            if each.registration.owner:
                each.owner = owner

    def pull_model(self, run: ModelRun, since: int, cursor=None) -> int:
        """Pull ``run``'s model ``since``, page by page; returns how many items came.

        ``cursor``: ``(now, after)`` of an interrupted paged pull to go on with.
        Every page of one pull reads the same window ``(since, now]`` (``now``
        of its first page) in ascending id order, and asks for the ids after
        the last one of the page before: a change made meanwhile is stamped
        above ``now`` and comes with the next sync; so the pages, resumed or
        not, hold each change of the window exactly once. A remote that pruned
        deletions newer than ``since`` answers 410: the model is then pulled
        from 0 and reconciled (:mod:`.resync`).
        """
        limit = sync_settings.PULL_PAGE_SIZE
        now, after = cursor or (None, None)
        progress = run.result.progress
        progress.stage, progress.total, progress.bytes_total = "pulling", None, None
        progress.done = progress.bytes = 0  # this pull's (a parent may be pulled twice)
        _report(self.progress, run.result, "pulling")
        answers = pages(self.transport, run.url, since, limit, now, after,
                        parse=lambda updates: local.parse_page(run, updates, self.using))
        with contextlib.closing(answers):  # a failed page stops the next one's request
            return self._pull_pages(run, answers, now, after)

    def _pull_pages(self, run: ModelRun, answers, now, after) -> int:
        """Apply or keep each page of ``answers`` (see :meth:`pull_model`); how many items came."""
        progress = run.result.progress
        count = 0
        for answer, resyncing, (items, ahead) in answers:
            if answer.get("total") is not None:  # a first page: the whole window's count
                progress.total, progress.done, progress.bytes = answer["total"], 0, 0
            if resyncing:  # from 0, first page again; decided with every local object
                run.resyncing = run.result.resynced = True
                run.streaming = False
                after = None
            if after is None or now is None:
                now = answer["now"]
            run.pull_now = int(now)
            if run.registration.owner:  # before anything of it is written
                self.own(run, answer)
                local.own(run, items)
            updates = answer["updates"]
            count += len(updates)
            run.result.received += len(updates)
            run.result.bytes_received += answer.get("size", 0)
            progress.done += len(updates)
            progress.bytes += answer.get("size", 0)
            last = updates[-1][ID] if updates else after
            if run.streaming and items:
                run.streaming = local.apply_page(
                    run, items, (now, last), self.using,
                    lambda snapshot, result, items=items: self.plan(run, items, snapshot, result),
                    self.has_children(run), ahead)
            if not run.streaming:
                for pk, item in items.items():
                    run.remote.pop(pk, None)  # a repeated id counts where it last appears
                    run.remote[pk] = item
            _report(self.progress, run.result, "pulling")
            if not answer.get("more"):
                break
            if last == after:
                raise SyncClientError(f"the remote's next page did not move past {after!r}")
            after = last
        return count

    def has_children(self, parent: ModelRun) -> bool:
        """Whether another model of this sync has a relation to ``parent``'s model."""
        model = parent.registration.model
        return any(codec.related_model is model for run in self.runs if run is not parent
                   for codec in run.registration.codecs)

    def missing_parents(self, parent: ModelRun) -> bool:
        """Whether pulled objects of other models name a ``parent`` object nobody has."""
        model = parent.registration.model
        named: set = set()
        for run in self.runs:
            if run is not parent:
                named |= local.named_parents(run.registration, run.remote.values()).get(model, set())
        return local.missing_parents({model: named}, {model: parent.remote}, self.using)

    def plan(self, run: ModelRun, remote, snapshot, result: ModelResult, gone=None) -> Plan:
        """Decide ``run``'s model given what was pulled and the local rows: the one place
        a sync decides (:class:`~persistence_sync.client.planner.Planner`)."""
        return Planner(run.registration, run.state, remote, snapshot, self.handler, result,
                       echoes=run.echoes, gone=gone).decide()

    def decide(self) -> None:
        self.report("deciding")
        self.current = None
        local.collect_all(self.runs, self.using)
        gone = {run.registration.model: {pk for pk, item in run.remote.items() if item.removed}
                for run in self.runs}
        for run in self.each():
            remote, present = run.remote, None
            if run.resyncing:  # what the last pull brought already is no remote change
                remote, present = resync.unseen(run.remote, run.state.server_date)
            run.plan = self.plan(run, remote, run.local, run.result, gone)
            if run.resyncing:
                resync.reconcile(run.registration, present, run.local, run.plan, run.result,
                                 self.using, run.owner)
            if self.dry_run:
                result, plan = run.result, run.plan
                result.pushed, result.created = len(plan.push), len(plan.creates)
                result.updated, result.removed = len(plan.updates), len(plan.deletes)

    def push(self) -> None:
        """Push each model's changes, each push recorded before it is sent.

        Changes go parents first and deletions children first, in two pushes
        per model when it has both: a parent's deletion reaching the remote
        before its children's moves would cascade into them there.
        """
        for run in self.each():
            self.send(run, [item for item in run.plan.push if not item.get(REMOVED)])
        for run in self.each(reversed(self.runs)):
            self.send(run, [item for item in run.plan.push if item.get(REMOVED)])

    def send(self, run: ModelRun, items: list) -> None:
        """Push ``items`` in parts of at most ``PUSH_BATCH_SIZE``, each idempotent on its own."""
        items = local.without_owner(run.registration, items)
        if not items:
            return
        progress = run.result.progress
        progress.stage, progress.done, progress.total = "pushing", 0, len(items)
        progress.bytes, progress.bytes_total = 0, body_size(items)
        size = max(1, sync_settings.PUSH_BATCH_SIZE)
        for start in range(0, len(items), size):
            self.send_part(run, items[start:start + size])

    def send_part(self, run: ModelRun, items: list) -> None:
        """One push, recorded before it is sent; halved and sent again after a 413.

        A remote that refuses a push as too large stored none of it: its
        record is dropped and each half is pushed (and recorded) on its own.
        The halves shrink, so this ends; one object still too large fails.
        """
        _report(self.progress, run.result, "pushing")
        push_id = uuid.uuid4().hex
        recorded = local.record_push(run, items, push_id, self.using)
        try:
            stamp = self.transport.push(run.url, items, push_id=push_id)
        except TransportError as exc:
            if exc.status != 413:
                raise
            local.forget_pushes([recorded.pk], self.using)
            if len(items) == 1:
                raise SyncClientError(
                    f"the remote refuses object {items[0][ID]!r} as too large (HTTP 413), "
                    "even pushed alone; raise the remote's MAX_BODY_SIZE") from None
            half = len(items) // 2
            self.send_part(run, items[:half])
            self.send_part(run, items[half:])
            return
        run.acknowledged.append(recorded.pk)
        # Each part comes back in the next pull with its own stamp: every one
        # is our echo, not only the first (see .local.save_state).
        run.echoes.add(stamp)
        run.push_now = max(run.push_now, stamp)
        run.result.pushed += len(items)
        sent = body_size(items)
        run.result.bytes_sent += sent
        run.result.progress.done += len(items)
        run.result.progress.bytes += sent

    def fail(self, exc) -> None:
        """Every model of the group fails: nothing of the sync was applied locally."""
        culprit = self.current
        for run in self.runs:
            run.result.cause = str(exc)
        if culprit is not None:
            culprit.result.error = f"{culprit.registration.label} ({culprit.result.url or 'no URL'}): {exc}"
        for run in self.runs:
            if run is culprit:
                continue
            where = f"{run.registration.label} ({run.result.url or 'no URL'})"
            run.result.error = (f"{where}: not synced, since {culprit.result.error}" if culprit
                                else f"{where}: {exc}")
            run.result.stopped_by = culprit.registration.label if culprit else None
        for run in self.runs:
            # Counters of a plan that was not applied would mislead; pages
            # applied during the pull stay applied.
            for counter in ("created", "updated", "removed"):
                setattr(run.result, counter, run.streamed.get(counter, 0))



def pages(transport, url, since, limit, now=None, after=None, parse=None):
    """``(answer, resyncing, parse(updates))`` of each page of one pull (see :meth:`Sync.pull_model`).

    With a transport that allows it (``transport.prefetch``), the next page
    is asked for and parsed in a thread while the caller writes this one: a
    large first sync then waits for the remote, checks pulled values and
    waits for its own database at the same time (the thread runs while the
    caller waits on its database), not one after the other. An error of the
    thread's request or parse is raised here, when its page is due.
    """
    executor = ThreadPoolExecutor(1, "persistence-sync-pull") if getattr(
        transport, "prefetch", False) else None

    def fetch(since, now, after):
        answer, resyncing = resync.pull(transport, url, since, limit=limit, now=now, after=after)
        return answer, resyncing, parse(answer["updates"]) if parse else None

    def fetch_in_thread(since, now, after):
        try:
            return fetch(since, now, after)
        finally:  # a field validator may have used the database: this thread's connection
            connections.close_all()

    def request(since, now, after):
        """The page, from the thread when there is one: the caller's own connection stays."""
        return executor.submit(fetch_in_thread, since, now, after) if executor else None

    try:
        first = request(since, now, after)
        answer, resyncing, parsed = first.result() if first else fetch(since, now, after)
        while True:
            if resyncing:
                since, after = 0, None
            if after is None or now is None:
                now = answer["now"]
            updates = answer["updates"]
            last = updates[-1][ID] if updates else after
            more = answer.get("more") and last != after
            upcoming = request(since, now, last) if more else None
            yield answer, resyncing, parsed
            if not more:
                return
            after = last
            answer, resyncing, parsed = (upcoming.result() if upcoming
                                         else fetch(since, now, after))
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def body_size(items) -> int:
    """The size of a push body of ``items``, as the transport sends it (compact JSON)."""
    return len(orjson.dumps(items))


def _report(progress, result, stage):
    if progress is not None:
        progress(result, stage)


def groups(models=None, registry: SyncRegistry | None = None) -> list[list[Registration]]:
    """The registrations to sync, in groups tied by relations, parents first in each.

    ``models`` (default: all of ``registry``, by default the default one) is
    completed with every registered model tied to one of them by a foreign
    key, either way: a child's sync needs its parents, and a parent's
    deletion cascades into its children. Models of one group are synced
    together; independent groups one after the other.
    """
    registry = registry or registries.default
    ordered = registry.registrations()
    by_model = {reg.model: reg for reg in ordered}
    group_of = {reg.label: {reg.label} for reg in ordered}
    for reg in ordered:
        for related in related_models(reg.model):
            if related in by_model:
                merged = group_of[reg.label] | group_of[by_model[related].label]
                for label in merged:
                    group_of[label] = merged
    wanted = None if models is None else {_label(model, registry) for model in models}
    result: list[list[Registration]] = []
    for reg in ordered:
        members = group_of[reg.label]
        if (wanted is None or members & wanted) and not any(reg in g for g in result):
            result.append([other for other in ordered if other.label in members])
    return result


def _label(model, registry: SyncRegistry) -> str:
    if isinstance(model, Registration):
        return model.label
    return registry.get_registration(model).label


def sync_all(server_url=None, models=None, conflict_handler=None, using=None, dry_run=False,
             progress=None, transport=None, registry: SyncRegistry | None = None,
             local_user=None) -> list[ModelResult]:
    """Sync the registered models (all, or ``models``) with the remote, parents first.

    ``models``: model classes, ``"app_label.Model"`` labels or registrations;
    the models tied to them by foreign keys are synced with them (see
    :func:`groups`).
    ``conflict_handler``: a callable, ``"prefer-local"``, ``"prefer-remote"`` or
    a dotted path (default: ``PERSISTENCE_SYNC["CONFLICT_HANDLER"]``).
    ``progress(result, stage)`` is called as each model advances.
    ``registry``: whose registrations (default: ``persistence_sync.registry.default``).
    ``local_user``: the local user (a username or a user) who owns what is
    pulled for models registered with ``owner=``; by default the local user
    with the remote account's username, asked once per run
    (:mod:`~persistence_sync.client.owners`). When that user cannot be
    found, every model fails with the reason and nothing is written.
    Returns one :class:`ModelResult` per model. When a model fails, every
    model of its group has ``error`` set (naming the model and URL) and
    nothing of the group is written locally, except the record of a push
    already sent (``pushed`` says how much), which the next run completes;
    the other groups are still synced.
    """
    registry = registry or registries.default
    using = using or DEFAULT_DB_ALIAS
    source = "conflict_handler" if conflict_handler else "PERSISTENCE_SYNC['CONFLICT_HANDLER']"
    handler = get_conflict_handler(conflict_handler or sync_settings.CONFLICT_HANDLER, source)
    transport = transport or HttpTransport.from_settings()
    # Groups with owner= models first: their local owner is learnt before anything is written.
    synced = sorted(groups(models, registry), key=lambda group: not any(r.owner for r in group))
    results = []
    owners = Owners(local_user, using, [r.label for group in synced for r in group if r.owner])
    for group in synced:
        if owners.failure is not None:  # every group stops for the one cause, nothing written
            cause = str(owners.failure)
            results += [ModelResult(model=reg.label, url=None, dry_run=dry_run, error=cause,
                                    cause=cause) for reg in group]
            continue
        results += Sync(group, server_url, transport, handler, using, dry_run, progress,
                        owners).run()
    order = {reg.label: index for index, reg in enumerate(registry.registrations())}
    return sorted(results, key=lambda result: order[result.model])  # parents first, as always


def sync_model(model, **options) -> ModelResult:
    """Sync one model (with the models tied to it, see :func:`groups`); returns its result.

    ``options`` are those of :func:`sync_all`.
    """
    label = _label(model, options.get("registry") or registries.default)
    return next(result for result in sync_all(models=[model], **options) if result.model == label)
