"""Hand-written plausible bugs in the core, one per entry, for mutants/run.py.

Each mutant names a file, an exact snippet that occurs once in it, its
replacement, and why a developer could plausibly write it. Keep them as
data: when code moves, repoint ``file`` (and the snippet, if it changed);
the runner reports a mutant it cannot find as stale.

``server_db``: also run on a server database (``--server``, PostgreSQL by
default) when SQLite alone cannot tell (snapshots, isolation levels); a
vendor name (``"mysql"``) when only that one can tell: the mutant is then
skipped, unscored, unless ``--server`` names it.
``equivalent``: why the change cannot alter behaviour; not run, not scored.
``tests``: test files run first, so that most mutants die in seconds.

Homes: the constants below name each core module once; a mutant's name
starts with its area (``clock-``, ``pull-``, ``push-``, ``receipt-``,
``scope-``, ``wire-``, ``models-``, ``chunks-``, ``view-``, ``endpoint-``,
``classic-``, ``watermelon-``, ``deletion-``, ``limits-``, ``retention-``,
``client-``, ``transport-``, ``resync-``, ``compiled-`` (queries compiled once),
``auth-`` (token authentication), ``db-`` (lock timeouts), ``feed-`` (the change
feed)). An area is the behaviour, not the
file: a mutant keeps its name when its code moves (``watermelon-page-full-at-the-limit``
now lives in pulls.py, which pages both protocols).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    original: str
    replacement: str
    why: str
    server_db: bool | str = False
    equivalent: str = ""
    tests: tuple = ()


CLOCK = "persistence_sync/clock.py"
PULLS = "persistence_sync/pulls.py"
PUSHES = "persistence_sync/pushes.py"
RECEIPTS = "persistence_sync/receipts.py"
ENDPOINTS = "persistence_sync/endpoints.py"
CLASSIC = "persistence_sync/classic.py"
DELETION = "persistence_sync/deletion.py"
BULK = "persistence_sync/bulk.py"
SCOPING = "persistence_sync/scoping.py"
SERIALIZERS = "persistence_sync/serializers.py"
MODELS = "persistence_sync/models.py"
DB = "persistence_sync/db.py"
CLIENT = "persistence_sync/client/sync.py"  # the sync's steps
CLIENT_DECISIONS = "persistence_sync/client/planner.py"
CLIENT_LOCAL = "persistence_sync/client/local.py"
CONFLICTS = "persistence_sync/client/conflicts.py"
WATERMELON = "persistence_sync/watermelon.py"
LIMITS = "persistence_sync/limits.py"
RETENTION = "persistence_sync/retention.py"
TRANSPORT = "persistence_sync/client/transport.py"
RESYNC = "persistence_sync/client/resync.py"
COMPILED = "persistence_sync/compiled.py"
AUTHENTICATION = "persistence_sync/authentication.py"
FEED_ANNOUNCE = "persistence_sync/feed/announce.py"
FEED_CHANGES = "persistence_sync/feed/changes.py"
FEED_VIEWS = "persistence_sync/feed/views.py"
FEED_HANDLER = "persistence_sync/feed/handler.py"
FEED_SUBSCRIPTIONS = "persistence_sync/feed/subscriptions.py"

T_CLOCK = ("tests/test_clock.py",)
T_CLIENT = ("tests/test_client.py", "tests/test_lost_writes.py", "tests/test_split_push.py")
T_PULL = ("tests/test_pull.py", "tests/test_pull_paging.py", "tests/test_concurrency.py")
T_PAGING = ("tests/test_pull_paging.py",)
T_PUSH = ("tests/test_push.py", "tests/test_push_errors.py")
T_PREPARED = ("tests/test_concurrency.py",)
T_RECEIPTS = ("tests/test_idempotent_push.py", "tests/test_concurrency.py")
T_SCOPING = ("tests/test_scoping.py",)
T_MODELS = ("tests/test_models.py",)
T_VALUES = ("tests/test_values.py",)
T_WATERMELON = ("tests/test_watermelon.py",)
T_LIMITS = ("tests/test_limits.py", "tests/test_hostile_input.py")
T_RETENTION = ("tests/test_retention.py",)
T_WIRE = ("tests/test_client_wire.py", "tests/test_client_secrets.py", "tests/test_client.py")
T_RESYNC = ("tests/test_resync.py",)
T_HOSTILE = ("tests/test_hostile_input.py",)
T_COMPILED = ("tests/test_compiled.py",)
T_AUTH = ("tests/test_authentication.py",)
T_DB = ("tests/test_db.py",)
T_FEED = ("tests/test_feed.py",)

MUTANTS = [
    # --- clock.py: stamps and the snapshot ---------------------------------------------
    # The ORM's tick: the fallback of a database with no raw tick statement
    # (tests run it through the `tick_by` fixture).
    Mutant("clock-tick-without-increment", CLOCK,
           'Greatest(F("value") + 1, Value(wall_ms()))', 'Greatest(F("value"), Value(wall_ms()))',
           "two writes in one millisecond share a stamp", tests=T_CLOCK),
    Mutant("clock-tick-wall-clock-only", CLOCK,
           'Greatest(F("value") + 1, Value(wall_ms()))', "Value(wall_ms())",
           "the wall clock going back (NTP) gives a stamp below an earlier one", tests=T_CLOCK),
    # The raw tick (SQLite, PostgreSQL, MySQL): one UPDATE ... RETURNING, or UPDATE and SELECT.
    Mutant("clock-raw-tick-without-increment", CLOCK,
           "SET value = {greatest}(value + 1, %s) WHERE", "SET value = {greatest}(value, %s) WHERE",
           "the tick does not advance past the committed value: two writes in one "
           "millisecond share a stamp, and one client takes the other's batch for its echo",
           tests=T_CLOCK),
    Mutant("clock-raw-tick-wall-clock-only", CLOCK,
           "SET value = {greatest}(value + 1, %s) WHERE", "SET value = %s WHERE",
           "the wall clock taken as the stamp: NTP stepping back gives a stamp below an "
           "earlier one, below a `now` some client already pulled", tests=T_CLOCK),
    Mutant("clock-raw-first-tick-not-advanced", CLOCK,
           "            Clock.objects.using(using).bulk_create([Clock(model=key, value=0)],\n"
           "                                                   ignore_conflicts=True)\n",
           "            Clock.objects.using(using).bulk_create([Clock(model=key, value=wall)],\n"
           "                                                   ignore_conflicts=True)\n"
           "            return wall\n",
           "the row created at the wall clock looks like a first tick: a second first writer, "
           "whose insert waited for the first's, returns its own wall clock without the "
           "row's lock, and the counter stays below its stamp",
           server_db=True, tests=("tests/test_concurrency.py",)),
    Mutant("clock-tick-outside-atomic-allowed", CLOCK,
           "if not connections[using].in_atomic_block:", "if False:",
           "forgetting that the lock only orders writers inside a transaction", tests=T_MODELS),
    Mutant("clock-first-tick-not-advanced", CLOCK,  # the ORM's tick
           "Clock(model=key, value=0)], ignore_conflicts=True)\n        counter.update(**advance)",
           "Clock(model=key, value=wall_ms())], ignore_conflicts=True)",
           "the first write of a model takes the wall clock without the row lock",
           server_db=True, tests=("tests/test_concurrency.py",)),
    Mutant("clock-key-ignores-proxies", CLOCK,
           "concrete = model._meta.concrete_model or model", "concrete = model",
           "a proxy model gets a counter of its own, so its writes and the concrete "
           "model's no longer wait for each other", tests=T_CLOCK),
    Mutant("clock-committed-now-latest-row", CLOCK,
           "return rows[0] if rows else (0, 0)", "return rows[-1] if rows else (0, 0)",
           "the first and the last row look interchangeable on a one-row filter",
           equivalent="the filter is on the primary key: at most one row"),
    Mutant("clock-snapshot-read-committed-postgresql", CLOCK,
           '"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"',
           '"SET TRANSACTION READ ONLY"',
           "READ COMMITTED is PostgreSQL's default and looks enough for a read",
           server_db=True, tests=T_PULL),
    Mutant("clock-snapshot-no-transaction", CLOCK,
           "    if connection.in_atomic_block:\n        yield\n        return\n",
           "    if True:\n        yield\n        return\n",
           "a read-only pull seems not to need a transaction", server_db=True, tests=T_PULL),
    Mutant("clock-remote-block-ticks-again", CLOCK,
           "    if remote_stamps is not None and key in remote_stamps:\n"
           "        return remote_stamps[key]\n", "",
           "every tick advances the counter: a cascade of a sync's deletion gets a stamp "
           "of its own and is pushed back as a local change", tests=T_CLIENT),
    Mutant("clock-fresh-tick-takes-remote-stamp", CLOCK,
           "remote_stamps = None if fresh else _remote_stamps.get()",
           "remote_stamps = _remote_stamps.get()",
           "the `fresh` flag looks redundant inside the sync's block: a merged local "
           "change is then stamped as taken from the remote and never pushed", tests=T_CLIENT),
    Mutant("clock-catch-up-skipped", CLOCK,
           "    if lagging:\n        with transaction.atomic(using=using), lock_timeout(using, timeout):",
           "    if False:\n        with transaction.atomic(using=using), lock_timeout(using, timeout):",
           "the latest clock looks enough for a multi-model pull: an idle model's "
           "writer may still commit a stamp below it", tests=("tests/test_watermelon.py",)),

    # --- pulls.py: pull: the window, paging, the order -----------------------------------
    Mutant("pull-clock-read-before-snapshot", PULLS,
           "        with clock.read_snapshot(self.using):\n"
           "            clocks = [clock.committed_now_and_horizon(source.registration.model, self.using)\n"
           "                      for source in self.sources]\n",
           "        clocks = [clock.committed_now_and_horizon(source.registration.model, self.using)\n"
           "                  for source in self.sources]\n"
           "        with clock.read_snapshot(self.using):\n",
           "reading `now` first looks harmless: a row re-stamped between the clock read and "
           "the snapshot is in neither this pull nor the next one's window",
           server_db=True, tests=T_PULL),
    Mutant("pull-tombstones-since-inclusive", PULLS,
           "model=self.registration.label, last_change__gt=self.since, last_change__lte=self.now)",
           "model=self.registration.label, last_change__gte=self.since, last_change__lte=self.now)",
           "an off-by-one on the window's lower bound", tests=T_PULL),
    Mutant("pull-rows-since-inclusive", PULLS,
           'joined = models.Q(**{f"{stamp}__gt": since})', 'joined = models.Q(**{f"{stamp}__gte": since})',
           "an off-by-one on the window's lower bound", tests=T_PULL),
    Mutant("pull-zero-stamps-skipped", PULLS,
           "self.since = source.since if source.since > 0 else -1",
           "self.since = source.since",
           "forgetting rows written past the clock (fixtures) keep stamp 0", tests=T_PULL),
    Mutant("pull-rows-above-now", PULLS,
           'return queryset.filter(joined, **{f"{stamp}__lte": self.now})',
           "return queryset.filter(joined)",
           "the upper bound looks redundant: it is not for a page, whose `now` is the "
           "first page's", tests=T_PULL),
    Mutant("pull-tombstones-above-now", PULLS,
           "model=self.registration.label, last_change__gt=self.since, last_change__lte=self.now)",
           "model=self.registration.label, last_change__gt=self.since)",
           "the upper bound looks redundant: it is not for a page, whose `now` is the "
           "first page's", tests=T_PULL),
    Mutant("pull-ignores-visibility", PULLS,
           "        queryset = self.access.queryset.using(self.using)\n        stamp = ",
           "        queryset = self.registration.model._base_manager.using(self.using)\n        stamp = ",
           "the model's table read directly, past get_queryset and the scope",
           tests=("tests/test_registry.py",)),
    Mutant("pull-order-by-stamp", PULLS,
           'changes = objects.union(tombstones, all=True).order_by("ps_id")',
           'changes = objects.union(tombstones, all=True).order_by("ps_stamp", "ps_id")',
           "ordering by change looks natural, but pages continue `after` an id",
           tests=T_PULL),
    Mutant("pull-union-unordered", PULLS,
           'changes = objects.union(tombstones, all=True).order_by("ps_id")',
           "changes = objects.union(tombstones, all=True)",
           "the database's order looks stable enough", tests=T_PULL),
    Mutant("pull-page-after-inclusive", PULLS,
           'queryset.filter(**{f"{column}__gt": after})', 'queryset.filter(**{f"{column}__gte": after})',
           "an off-by-one on the page's continuation: the last id repeated", tests=T_PAGING),
    Mutant("pull-page-after-objects-only", PULLS,
           "tombstones = self._after(tombstones, object_id, after).annotate(",
           "tombstones = tombstones.annotate(",
           "`after` applied to the objects only: removals of earlier ids come again on "
           "every page", tests=T_PAGING),
    Mutant("pull-page-now-ahead-accepted", PULLS,
           "                if self.now_asked > now:\n", "                if False:\n",
           "a client's `now` (or a WatermelonDB cursor's timestamp) trusted: a page then "
           "names a window whose writes may not have committed", tests=T_PAGING),
    Mutant("pull-page-now-ignored", PULLS,
           "                now = self.now_asked\n", "                pass\n",
           "every page reads the clock afresh: a change between pages lands in the "
           "current `now` and is skipped by the next sync", tests=T_PAGING),
    Mutant("pull-page-no-lookahead", PULLS,
           "return None if self.left is None else self.left + 1",
           "return None if self.left is None else self.left",
           "exactly `limit` rows read: `more` is then never true", tests=T_PAGING),
    Mutant("pull-horizon-inclusive", PULLS,
           "source.pruned = 0 < source.since < horizon", "source.pruned = 0 < source.since <= horizon",
           "an off-by-one on the pruning horizon: a client at the horizon resyncs for "
           "nothing", tests=("tests/test_retention.py",)),
    Mutant("pull-horizon-unchecked", PULLS,
           "source.pruned = 0 < source.since < horizon", "source.pruned = False",
           "pruned deletions forgotten: the client keeps objects deleted here",
           tests=("tests/test_retention.py",)),
    Mutant("pull-removed-flag-false", PULLS,
           "items.append({id_key: row[0], REMOVED: True, stamp_key: row[-2]})",
           "items.append({id_key: row[0], REMOVED: 1, stamp_key: row[-2]})",
           "1 and true look alike in JSON", tests=T_PULL),
    Mutant("pull-null-converted", PULLS,
           "                if value is not None:\n                    item[key] = conversion(value)",
           "                item[key] = conversion(value)",
           "dropping the None shortcut in the hot loop",
           equivalent="every database converter maps None to None, and _converted never "
           "hands None to the face's conversion"),

    # --- pulls.py + scoping.py: scoped pulls and pushes -----------------------------------
    Mutant("scope-tombstones-of-every-scope", SCOPING,
           "mine = models.Q(user__isnull=True, scope__in=self.values.keys)",
           "mine = models.Q(user__isnull=True)",
           "a removal looks harmless to send to everyone: it leaks ids and, for a moved "
           "object, removes it from its new scope's devices", tests=T_SCOPING),
    Mutant("scope-tombstone-of-visible-object", PULLS,
           "tombstones = (tombstones.filter(~models.Exists(visible)).order_by()",
           "tombstones = (tombstones.order_by()",
           "a tombstone of an object that moved between two of the request's scopes "
           "answered beside the object (and, in a WatermelonDB push, taken for a deletion)",
           tests=(*T_SCOPING, "tests/test_watermelon.py")),
    Mutant("scope-grant-not-pulled", PULLS,
           "        if self.source.granted:\n", "        if False:\n",
           "a newly granted value's old objects are never sent", tests=T_SCOPING),
    Mutant("scope-revocation-ignored", SCOPING,
           "        if self.user is not None:\n            mine |= models.Q(user=self.user)\n",
           "",
           "devices keep the objects of a value they lost", tests=T_SCOPING),
    Mutant("scope-revocation-removes-visible", PULLS,
           "tombstones = (tombstones.filter(~models.Exists(visible)).order_by()",
           "tombstones = (tombstones.filter(~models.Exists(visible) | models.Q(user__isnull=False))"
           ".order_by()",
           "a revocation names exactly what the user lost, so it looks exempt from the "
           "visibility rule: a record that moved from the lost team to another of the user's "
           "arrives both as a record and as a removal (issue 22's first survivor)",
           tests=(*T_SCOPING, "tests/test_watermelon.py", "tests/test_protocols.py")),
    Mutant("scope-grant-drops-the-window", PULLS,
           'joined |= models.Q(**{f"{self.access.scope_attname}__in": self.source.granted})',
           'joined = models.Q(**{f"{self.access.scope_attname}__in": self.source.granted})',
           "the pull after a grant answers the granted values only: the other changes of "
           "its window are skipped", tests=T_SCOPING),
    Mutant("scope-tombstone-oldest-stamp", PULLS,
           'annotate(latest=models.Max("last_change"))', 'annotate(latest=models.Min("last_change"))',
           "one removal per object, but the stamp of the first scope it left", tests=T_SCOPING),
    Mutant("scope-grant-window-inclusive", SCOPING,
           "last_change__gt=since, last_change__lte=now)\n            .values_list(\"value\"",
           "last_change__gte=since, last_change__lte=now)\n            .values_list(\"value\"",
           "an off-by-one on the grants' window: the whole value sent again",
           tests=T_SCOPING),
    Mutant("scope-push-foreign-tombstone-accepted", SCOPING,
           "                if scope not in self.values.keys:\n",
           "                if False:\n",
           "re-creating an id deleted in another scope looks like a fresh object",
           tests=T_SCOPING),
    Mutant("scope-push-move-out-accepted", SCOPING,
           "hidden = [obj.pk for obj in writes if not self.sees(getattr(obj, attname))]",
           "hidden = []",
           "the write rule checked before the write only: an object pushed into someone "
           "else's scope", tests=T_SCOPING),
    Mutant("scope-push-forged-owner-ignored", SCOPING,
           "if value is not USE_DEFAULT and value is not None and not self.sees(value):",
           "if False:",
           "a pushed owner silently dropped instead of refused", tests=T_SCOPING),

    # --- models.py: scoped tombstones and departures --------------------------------------
    Mutant("scope-save-move-no-departure", MODELS,
           "            result = super().save(*args, **kwargs)\n"
           "            record_departures(model, before, after, stamp, using)\n",
           "            result = super().save(*args, **kwargs)\n",
           "a move by save() (the admin) looks like any update", tests=T_SCOPING),
    Mutant("scope-update-move-no-departure", MODELS,
           "            self._record_departures(before, attname, stamp)\n            return count\n\n"
           "    # Django's flags",
           "            return count\n\n    # Django's flags",
           "QuerySet.update() of the scope column looks like any update", tests=T_SCOPING),
    Mutant("scope-push-move-no-departure", MODELS,
           "        if attname is not None:\n"
           "            record_departures(self.model, before, after, stamp, self.using)\n",
           "",
           "a push that moves an object looks like any update", tests=T_SCOPING),
    Mutant("scope-departure-for-every-update", MODELS,
           "if pk in after and after[pk] != old}", "if pk in after}",
           "every write of a scoped object leaves a removal for its own scope",
           tests=T_SCOPING),
    Mutant("scope-forget-every-scope", MODELS,
           "if scope is None or scope == keys.get(object_id)]", "]",
           "an object entering a scope forgets its removals from every scope",
           tests=T_SCOPING),

    # --- pushes.py: push -----------------------------------------------------------------
    Mutant("push-unchanged-object-restamped", PUSHES,
           "            continue  # nothing changes: the object keeps its stamp\n",
           "            pass\n",
           "restamping unchanged objects echoes them to every client", tests=T_PUSH),
    Mutant("push-partial-update-drops-fields", PUSHES,
           "obj = model(**{pk_attname: pk, **old, **values})",
           "obj = model(**{pk_attname: pk, **values})",
           "a partial update resets the fields it did not send", tests=T_PUSH),
    Mutant("push-partial-update-old-wins", PUSHES,
           "pk, **old, **values}", "pk, **values, **old}",
           "merge order of two dicts", tests=T_PUSH),
    Mutant("push-null-default-on-existing", PUSHES,
           "if defaulted and pk in stored:", "if defaulted and pk not in stored:",
           "null means the default for new objects only", tests=T_VALUES),
    Mutant("push-same-batch-parent-not-found", PUSHES,
           "        found.update(written.get(target._meta.label_lower, ()))  # a parent of the same push\n",
           "",
           "a relation to an object created later in the same push (or in another table "
           "of one WatermelonDB push)", tests=T_PUSH),
    Mutant("push-visibility-not-checked", SCOPING,
           "            if pk in stored and pk not in visible:\n",
           "            if pk in stored and pk not in visible and False:\n",
           "changes to invisible objects slip through", tests=("tests/test_registry.py",)),
    Mutant("push-removal-of-unstored", PUSHES,
           "            if pk in stored:\n                plan.removals.append(pk)",
           "            if True:\n                plan.removals.append(pk)",
           "removing an absent id",
           equivalent="delete_at lists the pks that exist first: an absent id deletes nothing"),
    Mutant("push-parents-first-skipped", PUSHES,
           "if plan.writes and not connections[using].features.can_defer_constraint_checks:",
           "if False:",
           "SQLite and PostgreSQL defer foreign keys, so ordering looks unneeded",
           server_db="mysql", tests=T_PUSH),
    Mutant("push-prepared-not-rechecked", PUSHES,
           "            if not all(_unchanged(plan, self.using) for plan in plans):\n"
           "                raise _Stale\n",
           "",
           "rows read before the clock trusted under it: a change made meanwhile is "
           "reverted by the push", tests=T_PREPARED),
    Mutant("push-recheck-ids-only", PUSHES,
           "    return seen == plan.versions\n", "    return seen.keys() == plan.versions.keys()\n",
           "checking that the rows still exist, not that they are unchanged", tests=T_PREPARED),
    Mutant("push-recheck-written-only", PUSHES,
           "    return seen == plan.versions\n",
           "    return all(seen.get(obj.pk) == plan.versions.get(obj.pk) for obj in plan.writes)\n",
           "only the rows the plan writes re-checked: a push of the stored value loses to "
           "a change made while it was prepared", tests=T_PREPARED),

    # --- pushes.py + receipts.py: idempotent push receipts -------------------------------
    Mutant("receipt-not-recorded", PUSHES,
           "        self.receipt.record(max(stamps.values(), default=0))\n", "",
           "the receipt written only on the slow path: a repeated push is stored twice",
           tests=T_RECEIPTS),
    Mutant("receipt-not-rechecked-under-clock", PUSHES,
           "            if self.receipt.known():  # another copy of this push was stored meanwhile\n"
           "                return self.answered()\n", "",
           "the receipt looked up once, before the clock: two copies racing are both "
           "stored (the second fails on the unique receipt instead of answering)",
           tests=T_RECEIPTS),
    Mutant("receipt-replay-not-abandoned", RECEIPTS,
           "        self._remember(self.push_id, None)  # a replay of an id never stored: abandon it\n",
           "",
           "a replay of an unknown id answers 'never stored' but leaves the id open: a "
           "late copy is then stored after the client decided it again", tests=T_RECEIPTS),
    Mutant("receipt-abandoned-copy-accepted", RECEIPTS,
           "            if stamp is None and not self.replay:\n", "            if False:\n",
           "a late copy of an abandoned push answered like a repeat", tests=T_RECEIPTS),
    Mutant("receipt-per-server-not-per-model", RECEIPTS,  # the lookup that answers a repeat
           "PushReceipt.objects.filter(endpoint=endpoint, user=user,",
           "PushReceipt.objects.filter(user=user,",
           "push ids taken as global: one model's push answered with another's stamp",
           tests=T_RECEIPTS),

    # --- db.py: chunks and retries -------------------------------------------------------
    Mutant("chunks-slice-from-zero", DB,
           "yield items[start : start + size]", "yield items[start:size]",
           "a slicing slip that only shows above BATCH_SIZE", tests=T_PUSH),
    Mutant("chunks-first-only", DB,
           "for start in range(0, len(items), size):", "for start in range(0, min(len(items), 1), size):",
           "only the first chunk is processed", tests=T_PUSH),
    Mutant("push-retry-swallows-last-error", DB,
           "if attempt == attempts - 1 or not is_transient(exc, connection):",
           "if not is_transient(exc, connection):",
           "the last transient failure is swallowed and the push answers ok with no stamp",
           tests=("tests/test_db.py",)),
    Mutant("push-retry-never", DB,
           "attempts = max(1, sync_settings.TRANSIENT_RETRIES)", "attempts = 1",
           "a deadlock answered as an error instead of being retried",
           tests=("tests/test_db.py",)),

    # --- endpoints.py: database errors ---------------------------------------------------
    Mutant("view-pull-database-error-is-500", ENDPOINTS,
           "        except DatabaseError as exc:\n"
           '            self.log_database_error("pull", exc)\n',
           "        except ZeroDivisionError as exc:\n"
           '            self.log_database_error("pull", exc)\n',
           "only pushes were thought to meet a database outage", tests=T_PULL),

    # --- serializers.py: wire values -----------------------------------------------------
    Mutant("wire-ms-microseconds-undivided", SERIALIZERS,
           "return seconds * 1000 + microseconds // 1000", "return seconds * 1000 + microseconds",
           "microseconds taken for milliseconds", tests=T_VALUES),
    Mutant("wire-ms-drops-fraction", SERIALIZERS,
           "return seconds * 1000 + microseconds // 1000", "return seconds * 1000",
           "whole seconds times 1000", tests=T_VALUES),
    Mutant("wire-ms-threshold", SERIALIZERS,
           "abs(number) > 10**12", "abs(number) > 10**13",
           "a wrong magnitude for 'this is milliseconds'", tests=T_VALUES),
    Mutant("wire-ms-integer-division", SERIALIZERS,
           "return number / 1000 if", "return number // 1000 if",
           "integer division drops the milliseconds", tests=T_VALUES),
    Mutant("wire-removed-false-removes", SERIALIZERS,
           "if item.get(REMOVED) is True or item.get(REMOVED) == 1:", "if REMOVED in item:",
           "the key's presence taken for removal", tests=T_PUSH),
    Mutant("wire-naive-iso-local-time", SERIALIZERS,
           "            parsed = parsed.replace(tzinfo=datetime.timezone.utc)\n",
           "            pass\n",
           "a date-time without offset left naive (Django then reads it in TIME_ZONE)",
           tests=T_VALUES),
    Mutant("wire-bool-any-int", SERIALIZERS,
           "if type(value) is int and value in (0, 1):", "if type(value) is int:",
           "truthiness of any integer", tests=T_PUSH),
    Mutant("wire-int-accepts-bool", SERIALIZERS,
           "def _check_int(value):\n    if type(value) is int:",
           "def _check_int(value):\n    if isinstance(value, int):",
           "isinstance lets true through as 1", tests=T_VALUES),
    Mutant("wire-int-no-range", SERIALIZERS,
           "        low, high = self.integer_range\n"
           "        if (low is not None and value < low) or (high is not None and value > high):",
           "        low, high = self.integer_range\n        if False:",
           "SQLite stores any integer, so the range looks unneeded", tests=T_VALUES),
    Mutant("wire-column-no-max-length", SERIALIZERS,
           "return (longest <= limit and (max_length is None or longest <= max_length)",
           "return (longest <= limit",
           "the column check of pulled strings forgets the field's own max_length",
           tests=("tests/test_client_paging.py",)),
    Mutant("wire-column-surrogates-unchecked", SERIALIZERS,
           "                    and all(map(str.isascii, values))  # no lone surrogate\n",
           "",
           "a quick column check of strings that skips the text check",
           tests=("tests/test_client_paging.py",)),
    Mutant("wire-column-int-no-range", SERIALIZERS,
           "and (high is None or max(values, default=high) <= high))",
           ")",
           "integers of a column checked for type only",
           tests=("tests/test_client_paging.py",)),
    Mutant("wire-passes-no-max-length", SERIALIZERS,
           "if max_length is not None and (type(value) is not str or len(value) > max_length):",
           "if False:",
           "the inline validator check forgets max_length, so run_validators never runs",
           tests=T_VALUES),
    Mutant("wire-decimal-from-float", SERIALIZERS,
           "decimal.Decimal(repr(_check_number(value)))", "decimal.Decimal(_check_number(value))",
           "Decimal(float) looks exact", tests=T_VALUES),
    Mutant("wire-datetime-as-date", SERIALIZERS,
           "    (models.DateTimeField, _datetime_to_wire, _datetime_from_wire),\n"
           "    (models.DateField, _date_to_wire, _date_from_wire),\n",
           "    (models.DateField, _date_to_wire, _date_from_wire),\n"
           "    (models.DateTimeField, _datetime_to_wire, _datetime_from_wire),\n",
           "DateTimeField subclasses DateField: the order of the table matters", tests=T_VALUES),
    Mutant("wire-null-never-default", SERIALIZERS,
           "            if field.has_default():\n                return USE_DEFAULT\n", "",
           "null refused for every non-null field", tests=T_VALUES),
    Mutant("wire-repeated-id-first-wins", SERIALIZERS,
           "values = {**previous.values, **values}", "values = {**values, **previous.values}",
           "merge order of a repeated id", tests=T_PUSH),
    Mutant("wire-lastchange-unknown", SERIALIZERS,
           "if key in (ID, LAST_CHANGE, REMOVED):", "if key in (ID, REMOVED):",
           "_lastChange taken for a field", tests=T_PUSH),
    Mutant("wire-validators-skipped", SERIALIZERS,
           "            field.run_validators(result)\n", "            pass\n",
           "type checks look enough (max_length, max_digits are validators)", tests=T_PUSH),
    Mutant("wire-unchanged-compare-python", PUSHES,
           "codecs[name].wire(value) == codecs[name].wire(old[name])", "value == old[name]",
           "comparing Python values, where a stored datetime has sub-second precision",
           tests=T_VALUES),
    Mutant("wire-id-length-off-by-one", SERIALIZERS,
           "if len(obj_id) > self.id_max_length:", "if len(obj_id) >= self.id_max_length:",
           "an off-by-one on the id column's length", tests=T_PUSH),

    # --- models.py: write paths ----------------------------------------------------------
    Mutant("models-update-fields-unstamped", MODELS,
           'kwargs["update_fields"] = {*update_fields, "last_change"}', "pass",
           "save(update_fields=...) writes only the fields named", tests=T_MODELS),
    Mutant("models-orm-recreate-keeps-tombstone", MODELS,
           "            if self._state.adding:\n", "            if False:\n",
           "only pushes were thought to re-create deleted ids", tests=T_MODELS),
    Mutant("models-bulk-create-keeps-tombstone", MODELS,
           "        Tombstone.forget(queryset.model, [obj.pk for obj in objs], queryset.db)\n", "",
           "bulk_create looks like it only creates new ids", tests=T_MODELS),
    Mutant("models-upsert-unstamped", MODELS,
           'kwargs["update_fields"] = [*kwargs["update_fields"], "last_change"]', "pass",
           "an upsert's update_fields list only the synced fields", tests=T_PUSH),
    Mutant("models-prepared-upsert-keeps-tombstone", MODELS,
           "            Tombstone.forget(self.model, [pk for pk in pks if stored is None or pk not in "
           "stored],\n                             self.using)\n",
           "            pass\n",
           "a push re-creating a deleted id keeps its tombstone: pulls carry both",
           tests=T_PUSH),
    Mutant("models-queryset-update-unstamped", MODELS,
           'kwargs["last_change"] = stamp = clock.tick(self.model, self.db)',
           "stamp = clock.tick(self.model, self.db)",
           "ticking without stamping", tests=T_MODELS),
    Mutant("models-bulk-update-unstamped", MODELS,
           'return plain.bulk_update(objs, [*fields, "last_change"], batch_size=batch_size)',
           "return plain.bulk_update(objs, fields, batch_size=batch_size)",
           "bulk_update writes only the fields named", tests=T_MODELS),
    Mutant("models-bulk-update-ticks-per-batch", MODELS,
           "return plain.bulk_update(", "return super().bulk_update(",
           "Django's bulk_update writes through our update(), which ticks again",
           tests=T_MODELS),
    Mutant("models-delete-no-tombstone", MODELS,
           "        if victim is model:\n"
           "            Tombstone.record(model, pks, stamp, using, scopes=scopes, live=True)\n",
           "        if victim is model:\n            pass\n",
           "a set-based delete sends no post_delete for the tombstone", tests=T_MODELS),
    Mutant("models-tombstoned-never-reset", MODELS,
           "        _tombstoned.reset(token)\n", "        pass\n",
           "the context variable looks scoped to the delete", tests=T_MODELS),
    Mutant("models-delete-tombstone-twice", MODELS,
           "    if (label, instance.pk) in _tombstoned.get():\n        return\n", "",
           "the receiver records every deletion", tests=T_MODELS),
    Mutant("models-set-null-unstamped", MODELS,
           ".filter(**{field.name: instance}).update()", ".filter(**{field.name: instance})",
           "Django's collector resets the relation itself, with no signal", tests=T_MODELS),
    Mutant("models-set-null-kept", MODELS,
           "kept = {models.CASCADE, models.PROTECT, models.RESTRICT, models.DO_NOTHING}",
           "kept = {models.CASCADE, models.PROTECT, models.RESTRICT, models.DO_NOTHING, models.SET_NULL}",
           "SET_NULL does not delete the child", tests=T_MODELS),
    Mutant("models-forget-one-chunk", MODELS,
           "for chunk in chunks([str(pk) for pk in pks]):",
           "for chunk in list(chunks([str(pk) for pk in pks]))[:1]:",
           "forgetting the tombstones of the first BATCH_SIZE ids only", tests=T_MODELS),
    Mutant("models-record-keeps-old-tombstone", MODELS,
           "            cls.forget(model, pks, using, scopes=scopes, user=user)\n",
           "            pass\n",
           "a fresh deletion looks like it cannot have a tombstone yet",
           equivalent="every way of re-creating an id forgets its tombstone (save, "
           "bulk_create_at, upserts, insert_at); a regained value's revocations are deleted "
           "(Access.refresh_grants); only raw SQL or a plain QuerySet (check W001) leaves one, "
           "and a pull answers an id's latest tombstone once"),
    Mutant("models-tombstone-old-stamp", MODELS,
           "Tombstone.record(sender, [instance.pk], clock.tick(sender, using), using, scopes=scopes)",
           "Tombstone.record(sender, [instance.pk], instance.last_change, using, scopes=scopes)",
           "the deleted object's own stamp looks like the right one", tests=T_MODELS),
    Mutant("models-empty-update-fields-stamps", MODELS,
           "        if update_fields is not None and not update_fields:\n"
           "            return super().save(*args, **kwargs)  # Django saves nothing\n", "",
           "save(update_fields=[]) then writes last_change: a change clients pull for nothing",
           tests=T_MODELS),

    # --- the client's decisions (client/planner.py) --------------------------------------
    Mutant("client-echo-taken-for-conflict", CLIENT_DECISIONS,
           "        elif item.stamp in self.echoes:\n", "        elif False:\n",
           "our own push's echo looks like a remote change", tests=T_CLIENT),
    Mutant("client-remote-change-taken-for-conflict", CLIENT_DECISIONS,
           "        if pk not in self.local.changed:\n", "        if False:\n",
           "every remote change of an object we hold handed to the conflict handler",
           tests=T_CLIENT),
    Mutant("client-replayed-echo-ignored", CLIENT_DECISIONS,
           "self.echoes = {state.server_push_date, *(state.push_stamps or ()), *(echoes or ())} - {0}",
           "self.echoes = {state.server_push_date, *(state.push_stamps or ())} - {0}",
           "only the last sync's stamps taken for echoes: a replayed push's own values "
           "come back as someone else's change", tests=T_CLIENT),
    Mutant("client-split-push-echo-forgotten", CLIENT_DECISIONS,
           "self.echoes = {state.server_push_date, *(state.push_stamps or ()), *(echoes or ())} - {0}",
           "self.echoes = {state.server_push_date, *(echoes or ())} - {0}",
           "serverPushDate alone taken for the last sync's echo: the parts after the first "
           "come back as someone else's change (issue 20)", tests=T_CLIENT),
    Mutant("client-remote-deletion-ignored", CLIENT_DECISIONS,
           "        self.plan.deletes[pk] = row.stamp\n        if pk in self.local.changed:",
           "        if pk in self.local.changed:",
           "a remote deletion of an object we have", tests=T_CLIENT),
    Mutant("client-handler-gets-a-copy", CLIENT_DECISIONS,
           "self.handler(self.conflicts, updates_to_push)",
           "self.handler(self.conflicts, list(updates_to_push))",
           "the handler's additions to the push are lost", tests=T_CLIENT),
    Mutant("client-handler-local-change-not-pushed", CLIENT_DECISIONS,
           "            if missing:  # kept here but not pushed by the handler: push it\n"
           "                self.push({ID: pk, **missing})\n", "",
           "the handler is trusted to push what it changed", tests=T_CLIENT),
    Mutant("client-handler-result-not-saved", CLIENT_DECISIONS,
           "            if changes:\n                self.plan.updates[pk] = (row, changes)\n", "",
           "the handler's local changes are not saved", tests=T_CLIENT),
    Mutant("client-local-changes-not-pushed", CLIENT_DECISIONS,
           "        for pk in sorted(self.local.changed - set(self.remote)):\n"
           "            self.push({ID: pk, **wire_values(self.registration, self.local.rows[pk].values)})\n",
           "",
           "only conflicts are pushed", tests=T_CLIENT),
    Mutant("client-local-deletion-not-pushed", CLIENT_DECISIONS,
           "            if item is None or not item.removed:\n                self.push(",
           "            if item is not None and not item.removed:\n                self.push(",
           "local deletions pushed only when the remote mentions them", tests=T_CLIENT),
    Mutant("client-conflict-for-equal-values", CLIENT_DECISIONS,
           "        if not differing:\n            return\n", "",
           "an object changed on both sides to the same values taken for a conflict",
           tests=T_CLIENT),
    Mutant("client-push-merge-replaces", CLIENT_DECISIONS,
           "            previous.update(item)", "            self.pushed[item[ID]] = dict(item)",
           "a second push item for one id replaces the first instead of merging",
           tests=T_CLIENT),
    Mutant("client-pulled-removed-false-deletes", CLIENT_DECISIONS,
           "    flags = [value is True or value == 1\n",
           "    flags = [value is not None\n",
           "the key's presence taken for removal", tests=T_CLIENT),
    Mutant("client-deletion-conflict-unreported", CLIENT_DECISIONS,
           "        if pk in self.local.changed:\n            self.conflict(pk, [], \"deleted\")\n"
           "\n    def take_new",
           "\n    def take_new",
           "a local change silently loses to a remote deletion", tests=T_CLIENT),
    Mutant("client-handler-removal-kept-here", CLIENT_DECISIONS,
           "        if entry.get(REMOVED):\n            self.plan.deletes[pk] = row.stamp\n        else:",
           "        if entry.get(REMOVED):\n            pass\n        else:",
           "a removal the handler pushes is not applied locally", tests=T_CLIENT),
    Mutant("client-orphan-pushed-with-gone-parent", CLIENT_DECISIONS,
           "            for pk, item in list(self.pushed.items()):\n"
           "                if item.get(REMOVED) or item.get(codec.name) not in gone:",
           "            for pk, item in []:\n"
           "                if item.get(REMOVED) or item.get(codec.name) not in gone:",
           "a local child of a parent the remote deleted pushed as is: the push is refused",
           tests=T_CLIENT),

    # --- the client's local side (client/local.py) --------------------------------------
    Mutant("client-applied-deletions-pushed-back", CLIENT_LOCAL,
           "            removed_qs = removed_qs.exclude(last_change=state.applied_stamp)\n", "",
           "deletions taken from the remote look like local ones", tests=T_CLIENT),
    Mutant("client-applied-values-pushed-back", CLIENT_LOCAL,
           "            changed_qs = changed_qs.exclude(last_change=state.applied_stamp)\n", "",
           "values taken from the remote look like local changes", tests=T_CLIENT),
    Mutant("client-applied-stamp-not-saved", CLIENT_LOCAL,
           "    state.applied_stamp = applied_stamp\n", "",
           "the stamp of what a sync took from the remote forgotten: the next run pushes "
           "it all back", tests=T_CLIENT),
    Mutant("client-departure-taken-for-deletion", CLIENT_LOCAL,
           "        for chunk in chunks(list(removed)):\n            removed -= {",
           "        for chunk in []:\n            removed -= {",
           "every tombstone of the window taken for a deletion: an object moved to "
           "another scope here is deleted on the remote", tests=T_CLIENT),
    Mutant("client-replayed-changes-pushed-again", CLIENT_LOCAL,
           "changed = {pk for pk, row in rows.items() if row.stamp > delivered.get(pk, 0)}",
           "changed = set(rows)",
           "a change a replayed push delivered still taken for a local change",
           tests=T_CLIENT),
    Mutant("client-window-inclusive", CLIENT_LOCAL,
           'window = {"last_change__gt": state.local_date, "last_change__lte": now}',
           'window = {"last_change__gte": state.local_date, "last_change__lte": now}',
           "an off-by-one on the local window", tests=T_CLIENT),
    Mutant("client-delete-changed-meanwhile", CLIENT_LOCAL,
           "if pk in current and current[pk].stamp == seen]", "if pk in current]",
           "syncall deletes an object changed locally while it ran", tests=T_CLIENT),
    Mutant("client-update-changed-meanwhile", CLIENT_LOCAL,
           "        if now.stamp == seen.stamp:\n", "        if True:\n",
           "syncall overwrites an object changed locally while it ran", tests=T_CLIENT),
    Mutant("client-create-deleted-meanwhile", CLIENT_LOCAL,
           "if pk not in current and pk not in late_deletions]", "if pk not in current]",
           "syncall re-creates an id deleted locally while it ran", tests=T_CLIENT),
    Mutant("client-state-local-date-not-advanced", CLIENT_LOCAL,
           "    state.local_date = run.local.now\n", "",
           "local changes are pushed again every run", tests=T_CLIENT),
    Mutant("client-merge-overwrites-local-change", CLIENT_LOCAL,
           "if now.values[name] == seen.values[name]}", "}",
           "the remote's values overwrite fields changed here while syncall ran", tests=T_CLIENT),
    Mutant("client-merged-stamped-as-applied", CLIENT_LOCAL,
           "upsert_at(base.all(), merged, clock.tick(model, using, fresh=True), attnames, ID_CHUNK)",
           "upsert_at(base.all(), merged, stamp, attnames, ID_CHUNK)",
           "one stamp for everything written: the merged local change is then never pushed",
           tests=T_CLIENT),
    Mutant("client-push-stamps-not-saved", CLIENT_LOCAL,
           "    state.push_stamps = echoes_to_keep(state, run.echoes)\n", "",
           "the parts' stamps kept for this run only (issue 20)", tests=T_CLIENT),
    Mutant("client-push-stamps-kept-below-the-pull", CLIENT_LOCAL,
           "                  if stamp > state.server_date)", "                  if stamp)",
           "every stamp kept for ever",
           equivalent="a stamp at or below the pull's now is never pulled again (pulls answer "
                      "what is stamped after since): keeping it changes no decision"),
    Mutant("client-server-date-is-push-date", CLIENT_LOCAL,
           "    state.server_date = run.pull_now\n", "    state.server_date = run.push_now or run.pull_now\n",
           "the push's `now` looks later, so pulling from it looks safe", tests=T_CLIENT),

    # --- the client's steps (client/sync.py) and conflicts ---------------------------
    Mutant("client-dry-run-writes", CLIENT,
           "            if not self.dry_run:\n                self.push()",
           "            if True:\n                self.push()",
           "dry_run only skips the report", tests=T_CLIENT),
    Mutant("client-failed-push-applies", CLIENT,
           "            stamp = self.transport.push(run.url, items, push_id=push_id)\n",
           "            try:\n                stamp = self.transport.push(run.url, items, push_id=push_id)\n"
           "            except Exception:\n                return\n",
           "a failed push is not allowed to stop the local writes", tests=T_CLIENT),
    Mutant("client-page-probe-skipped", CLIENT_LOCAL,
           "only_pulled = run.only_pulled or not base.exists()", "only_pulled = True",
           "a page's ids taken as new without looking: true of a first sync only",
           tests=("tests/test_client_paging.py",)),
    Mutant("client-ahead-columns-of-other-rows", MODELS,
           "    if columns is None or columns.pks != list(rows):\n",
           "    if columns is None:\n",
           "the columns computed ahead trusted though the plan creates other objects",
           tests=("tests/test_client_paging.py", "tests/test_client.py")),
    Mutant("client-callable-default-once", BULK,
           "    make = field.default\n",
           "    make = (lambda value: lambda: value)(field.default())\n",
           "a callable default called once for a whole insert, not per object",
           tests=("tests/test_client_paging.py",)),
    Mutant("client-take-remote-ignores-names", CONFLICTS,
           "for name in self.properties if names is None else names:\n"
           "            setattr(self.local",
           "for name in self.properties:\n            setattr(self.local",
           "take_remote(names) takes every conflicting property",
           tests=("tests/test_conflicts.py",)),

    # --- WatermelonDB's pull, its pages, its pushes (issue 21; now in the core too) -------
    Mutant("watermelon-page-full-at-the-limit", PULLS,
           "        if len(rows) > self.left:\n", "        if len(rows) >= self.left:\n",
           "a page that exactly fills `limit` says hasMore (or more): the client asks again "
           "for nothing", tests=(*T_WATERMELON, "tests/test_protocols.py")),
    Mutant("watermelon-deletions-start-over", WATERMELON,
           'self.stopped = Cursor(now, name, "deleted", last, resynced)',
           'self.stopped = Cursor(now, name, "deleted", "", resynced)',
           "a page that stops inside the deletions starts them over: more tombstones than "
           "`limit` bring the same page for ever", tests=T_WATERMELON),
    Mutant("watermelon-batch-not-reset", PULLS,
           "    for rows in compiled.batches(using, query, sync_settings.BATCH_SIZE):\n        items = []\n",
           "    items = []\n    for rows in compiled.batches(using, query, sync_settings.BATCH_SIZE):\n",
           "the batch list made once, outside the loop: more records than BATCH_SIZE send "
           "earlier ones again with every batch",
           tests=T_WATERMELON),
    Mutant("watermelon-max-items-counts-tables", LIMITS,
           "                    if count == max_items:\n", "                    if position == max_items:\n",
           "enumerate's position taken for the count: MAX_ITEMS bounds each list of each "
           "table, not the push", tests=T_WATERMELON),
    Mutant("watermelon-throttle-per-table", ENDPOINTS,
           "                if throttle not in classes:\n                    classes.append(throttle)\n",
           "                classes.append(throttle)\n",
           "each registration's throttles instantiated: one WatermelonDB sync counts once "
           "per table", tests=(*T_WATERMELON, "tests/test_protocols.py")),
    Mutant("watermelon-conflict-at-last-pulled-at", WATERMELON,
           "last_change__gt=last_pulled_at)", "last_change__gte=last_pulled_at)",
           "an off-by-one: a record stamped at the pull's timestamp, which the device has, "
           "refused as changed since", tests=T_WATERMELON),
    Mutant("watermelon-revocation-paged", WATERMELON,
           'start = after[1] if after and after[0] == "deleted" else ""',
           'start = after[1] if after else ""',
           "the cursor's id taken as where the deletions resume too: a page after one that "
           "stopped in the records loses every removal (a revocation's too) with a smaller id",
           tests=T_WATERMELON),
    Mutant("watermelon-ms-integer-division", WATERMELON,
           "fromtimestamp(value / 1000, tz=datetime.timezone.utc)",
           "fromtimestamp(value // 1000, tz=datetime.timezone.utc)",
           "integer division drops a pushed date's milliseconds", tests=T_WATERMELON),
    Mutant("watermelon-new-table-hidden-at-its-version", WATERMELON,
           "table_of(reg).added_in <= query.schema_version]",
           "table_of(reg).added_in < query.schema_version]",
           "an off-by-one on schema versions: a client at a table's version never gets it",
           tests=T_WATERMELON),

    # --- scoping.py: grants and revocations (issue 21) ------------------------------------
    Mutant("scope-regrant-not-reactivated", SCOPING,
           "            regranted = [rows[value][0] for value in added if value in rows]\n",
           "            regranted = []\n",
           "a value granted again looked like a new one: its row stays revoked, and a user "
           "who left a team and rejoins never gets its objects back", tests=T_SCOPING),
    Mutant("scope-revoked-removals-of-every-scope", SCOPING,
           "mine |= models.Q(user__isnull=True, scope=value, last_change__lte=stamp)",
           "mine |= models.Q(user__isnull=True, last_change__lte=stamp)",
           "leaving a team also names what was deleted in other teams: their ids leak",
           tests=T_SCOPING),
    Mutant("scope-revoked-removals-after-revocation", SCOPING,
           "mine |= models.Q(user__isnull=True, scope=value, last_change__lte=stamp)",
           "mine |= models.Q(user__isnull=True, scope=value)",
           "a lost team's deletions made after the user left are named to them too",
           tests=T_SCOPING),
    Mutant("scope-hidden-removal-refused", SCOPING,
           "                if change.removed:\n                    del changes[pk]",
           "                if False:\n                    del changes[pk]",
           "a removal of another scope's object refused (403) instead of answering like a "
           "missing id: pushes can probe ids", tests=T_SCOPING),
    Mutant("scope-read-only-set-on-create", SCOPING,
           "                    unchanged = value is None or value is USE_DEFAULT\n",
           "                    unchanged = True\n",
           "a new object may set a read-only field: only updates were thought to need the check",
           tests=T_SCOPING),

    # --- limits.py: each limit where the README puts it (issue 21) -------------------------
    Mutant("limits-values-count-commas-only", LIMITS,
           'values = structure.count(b",") + 1 + len(brackets) // 2',
           'values = structure.count(b",") + 1',
           "MAX_VALUES counts values by their commas: `[[],[],...]` costs twice the bound",
           tests=T_LIMITS),
    Mutant("limits-string-at-the-limit-refused", LIMITS,
           "    if len(value) > limit:\n", "    if len(value) >= limit:\n",
           "a string of exactly MAX_STRING_LENGTH refused", tests=T_LIMITS),
    Mutant("limits-depth-at-the-limit-refused", LIMITS,
           "    if depth > max_depth:\n", "    if depth >= max_depth:\n",
           "a body nested exactly MAX_DEPTH deep refused", tests=T_LIMITS),
    Mutant("limits-one-item-too-many", LIMITS,
           "                if count == max_items:\n                    raise too_many_items(max_items)\n"
           "                item, index",
           "                if count > max_items:\n                    raise too_many_items(max_items)\n"
           "                item, index",
           "an off-by-one: MAX_ITEMS + 1 objects accepted", tests=T_LIMITS),

    # --- retention.py (issue 21) ------------------------------------------------------------
    Mutant("retention-horizon-oldest-of-the-batch", RETENTION,
           "                top = batch[-1][1]\n", "                top = batch[0][1]\n",
           "the horizon below the newest pruned deletion: pulls from between the two are "
           "answered, and their devices keep deleted objects", tests=T_RETENTION),
    Mutant("retention-zero-prunes-everything", RETENTION,
           "    if period <= datetime.timedelta(0):\n", "    if period < datetime.timedelta(0):\n",
           "TOMBSTONE_RETENTION=0, read as \"off\", prunes every tombstone at each run and "
           "sends every client into a full resync", tests=T_RETENTION),
    Mutant("retention-cutoff-in-the-future", RETENTION,
           "cutoff = wall_ms() - int(older_than.total_seconds() * 1000)",
           "cutoff = wall_ms() + int(older_than.total_seconds() * 1000)",
           "a sign slip: every tombstone is older than the cutoff", tests=T_RETENTION),
    Mutant("retention-dry-run-horizon-unreported", RETENTION,
           'result.horizon = max(result.horizon, old.aggregate(top=Max("last_change"))["top"] or 0)',
           "pass",
           "a dry run reports today's horizon, not the one pruning would set",
           tests=T_RETENTION),

    # --- client/transport.py: the client on the wire (issue 21) ----------------------------
    Mutant("transport-page-without-now", TRANSPORT,
           "query.update(now=int(now), after=after)", "query.update(after=after)",
           "`after` looks enough to continue: every page after the first gets 400",
           tests=T_WIRE),
    Mutant("transport-push-id-on-replays-only", TRANSPORT,
           "        if push_id is not None:\n            headers[PUSH_ID_HEADER] = push_id\n"
           "            if replay:\n",
           "        if push_id is not None and replay:\n            headers[PUSH_ID_HEADER] = push_id\n"
           "            if True:\n",
           "the push id thought needed only to replay: a retry after a lost answer stores "
           "the batch twice", tests=T_WIRE),
    Mutant("transport-replay-header-true", TRANSPORT,
           'headers[PUSH_REPLAY_HEADER] = "1"', 'headers[PUSH_REPLAY_HEADER] = "true"',
           "a boolean header spelled like JSON: every replay gets 400", tests=T_WIRE),
    Mutant("transport-redact-first-at", TRANSPORT,
           'netloc = parts.netloc.rpartition("@")[2]', 'netloc = parts.netloc.partition("@")[2]',
           "the first `@` taken for the end of the credentials: a password holding a raw "
           "`@` is partly shown", tests=T_WIRE),
    Mutant("transport-password-not-unquoted", TRANSPORT,
           "{urllib.parse.unquote(parts.password or '')}", "{parts.password or ''}",
           "a percent-encoded password (`%40` for `@`) sent as typed: every request 401",
           tests=T_WIRE),
    Mutant("transport-4xx-retried", TRANSPORT,
           "transient=exc.code >= 500,", "transient=exc.code >= 400,",
           "every HTTP error taken as transient: a refused push is sent again and again",
           tests=T_WIRE),

    # --- client/resync.py: the full resync (issue 21) ---------------------------------------
    Mutant("resync-seen-at-now-taken-as-change", RESYNC,
           "item.stamp > last_pull_now", "item.stamp >= last_pull_now",
           "an off-by-one: the object stamped at the last pull's now taken for a remote "
           "change; a local edit of it becomes a conflict, and prefer-remote loses it",
           tests=T_RESYNC),
    Mutant("resync-reconcile-deletes-late-creations", RESYNC,
           'base.filter(last_change__lte=local.now).values_list("pk", "last_change")',
           'base.values_list("pk", "last_change")',
           "every local object the full pull lacks looks deleted remotely: one created while "
           "syncall decides is deleted and never pushed", tests=T_RESYNC),
    Mutant("resync-reconcile-deletes-local-changes", RESYNC,
           "        if pk not in present and pk not in local.changed:\n",
           "        if pk not in present:\n",
           "a local edit of an object the remote lacks deleted instead of pushed", tests=T_RESYNC),
    Mutant("resync-from-zero-keeps-the-cursor", RESYNC,
           "    return transport.pull(url, 0, limit=limit), True\n",
           "    return transport.pull(url, 0, limit=limit, now=now, after=after), True\n",
           "an interrupted paged pull resynced from 0 after its old cursor: the ids before "
           "it are missing, and reconcile deletes their local copies for good",
           tests=T_RESYNC),
    Mutant("resync-any-410", RESYNC,
           '        and exc.answer.get("resync") is True\n', "",
           "every 410 taken for a pruned horizon: a gone endpoint resyncs, and deletes "
           "everything local", tests=T_RESYNC),

    # --- endpoints.py: throttles and bodies (issue 21) -------------------------------------
    Mutant("view-throttle-per-address", ENDPOINTS,
           '"ident": ident if ident is not None else self.get_ident(request),',
           '"ident": self.get_ident(request),',
           "DRF's AnonRateThrottle keys by address: users behind one NAT share one bucket",
           tests=T_HOSTILE),
    Mutant("view-429-without-retry-after", ENDPOINTS,
           '        if wait:\n            response["Retry-After"] = str(max(1, round(wait)))\n', "",
           "the 429 thought to speak for itself: no Retry-After, which the README promises",
           tests=T_HOSTILE),
    Mutant("view-body-read-uncapped", ENDPOINTS,
           "        if len(body) > limit:\n            raise body_too_large(limit)\n        return body\n",
           "        return body\n",
           "Content-Length checked, so the read looks safe: under ASGI a body longer than it "
           "says is read whole", tests=T_HOSTILE),
    Mutant("view-throttle-one-bucket", ENDPOINTS,
           'self.scope = "push" if request.method == "POST" else "pull"', 'self.scope = "pull"',
           "pushes and pulls counted together: a client polling often can no longer push",
           tests=T_HOSTILE),

    # --- client/local.py: the sync state (issue 21) -----------------------------------------
    Mutant("client-state-keyed-with-credentials", CLIENT_LOCAL,
           "    parts = urllib.parse.urlsplit(redact(url))\n",
           "    parts = urllib.parse.urlsplit(url)\n",
           "the URL as given keys the state: the password is stored and shown in the admin, "
           "and a new password starts the sync over", tests=T_WIRE),
    Mutant("client-state-key-drops-the-port", CLIENT_LOCAL,
           "parts._replace(netloc=parts.netloc.lower())",
           'parts._replace(netloc=parts.hostname or "")',
           "urlsplit's hostname is lower-cased already, so it looks like the key: two servers "
           "on one host share one state", tests=T_WIRE),
    # --- endpoints.py: the one request pipeline (issue 22) ------------------------------
    Mutant("endpoint-auth-database-error-is-500", ENDPOINTS,
           "    if isinstance(exc, DatabaseError) and not isinstance(exc, (IntegrityError, DataError)):\n",
           "    if False:\n",
           "database errors mapped where the faces query (pull_answer, store) only: one met "
           "by authentication, a permission or a throttle is a 500 HTML page",
           tests=("tests/test_database_unreachable.py",)),
    Mutant("endpoint-pre-push-not-sent", ENDPOINTS,
           "            if batch.changes:\n                signals.pre_push.send(",
           "            if False:\n                signals.pre_push.send(",
           "the signals thought to be the classic view's business: a pre_push receiver that "
           "refuses is bypassed", tests=("tests/test_protocols.py", "tests/test_signals.py")),
    Mutant("endpoint-pre-push-after-storing", ENDPOINTS,
           "        for batch in batches:\n"
           "            if batch.changes:\n"
           "                signals.pre_push.send(sender=batch.registration.model, request=self.request,\n"
           "                                      registration=batch.registration, changes=batch.changes)\n"
           "        using = receipt.using\n"
           "        try:\n"
           "            stamps = pushes.push(batches, using, receipt, check)\n",
           "        using = receipt.using\n"
           "        try:\n"
           "            stamps = pushes.push(batches, using, receipt, check)\n"
           "            for batch in batches:\n"
           "                if batch.changes:\n"
           "                    signals.pre_push.send(sender=batch.registration.model, "
           "request=self.request,\n"
           "                                          registration=batch.registration, "
           "changes=batch.changes)\n",
           "pre_push sent once the push is known to be valid: a receiver's refusal answers 403 "
           "for a push that was stored", tests=("tests/test_protocols.py", "tests/test_signals.py")),
    Mutant("endpoint-post-push-before-commit", ENDPOINTS,
           "                    transaction.on_commit(partial(\n"
           "                        signals.send_robust, signals.post_push, "
           "sender=batch.registration.model,\n"
           "                        request=self.request, registration=batch.registration,\n"
           "                        changes=batch.changes, stamp=stamps[batch.label]), using=using)\n",
           "                    signals.send_robust(\n"
           "                        signals.post_push, sender=batch.registration.model,\n"
           "                        request=self.request, registration=batch.registration,\n"
           "                        changes=batch.changes, stamp=stamps[batch.label])\n",
           "push() committed already, so on_commit looks redundant: inside a caller's "
           "transaction post_push then announces a push that may still roll back",
           tests=("tests/test_signals.py", "tests/test_protocols.py")),
    Mutant("endpoint-post-pull-before-the-answer", ENDPOINTS,
           "            pull.prepare()\n"
           "            yield from chunks\n"
           "            for source in pull.sources:\n"
           "                signals.send_robust(\n"
           "                    signals.post_pull, sender=source.registration.model, request=self.request,\n"
           "                    registration=source.registration, since=source.since, now=pull.now,\n"
           "                    count=source.count)\n",
           "            pull.prepare()\n"
           "            for source in pull.sources:\n"
           "                signals.send_robust(\n"
           "                    signals.post_pull, sender=source.registration.model, request=self.request,\n"
           "                    registration=source.registration, since=source.since, now=pull.now,\n"
           "                    count=source.count)\n"
           "            yield from chunks\n",
           "post_pull sent as the answer starts: its now and count are not yet known",
           tests=("tests/test_protocols.py", "tests/test_signals.py")),
    Mutant("endpoint-no-table-permitted-answered", ENDPOINTS,
           "if denied is not None and (not self.partial_permissions or not self.permitted):",
           "if denied is not None and not self.partial_permissions:",
           "a face serving the tables a request may use answers 200 with no table at all "
           "instead of the refusal", tests=T_WATERMELON),
    Mutant("endpoint-anonymous-scope-served", ENDPOINTS,
           "if (reg.owner or reg.scope) and not request.user.is_authenticated:",
           "if reg.owner and not request.user.is_authenticated:",
           "only owner= looked tied to a user: an anonymous request to a scope= model runs "
           "the project's scope_values hook with AnonymousUser, and answers it empty",
           tests=T_SCOPING),
    Mutant("endpoint-stamp-isdigit", ENDPOINTS,
           "if not DIGITS_RE.fullmatch(value) or int(value) > MAX_STAMP:",
           "if not value.isdigit() or int(value) > MAX_STAMP:",
           "str.isdigit looks like the test for digits: it takes '²', which int() refuses: a 500",
           tests=("tests/test_protocols.py",)),
    Mutant("endpoint-stamp-beyond-bigint", ENDPOINTS,
           "if not DIGITS_RE.fullmatch(value) or int(value) > MAX_STAMP:",
           "if not DIGITS_RE.fullmatch(value):",
           "19 digits look bounded: 9999999999999999999 overflows the BIGINT column",
           tests=("tests/test_protocols.py",)),
    Mutant("endpoint-page-size-uncapped", ENDPOINTS,
           "return min(int(value), sync_settings.MAX_PAGE_SIZE)", "return int(value)",
           "the client's limit trusted: one page as large as it asks", tests=(*T_PAGING, *T_WATERMELON)),
    Mutant("endpoint-replay-without-push-id", ENDPOINTS,
           "            if push_id is None and given:\n", "            if False:\n",
           "a replay or an unanswered list without a push id taken as a plain push",
           tests=T_RECEIPTS),
    Mutant("endpoint-unanswered-unbounded", ENDPOINTS,
           "        if len(unanswered) > MAX_UNANSWERED:\n", "        if False:\n",
           "X-Sync-Unanswered trusted whatever its length: one push reads any number of receipts",
           tests=T_RECEIPTS),
    Mutant("endpoint-integrity-error-is-503", ENDPOINTS,
           "        except IntegrityError as exc:\n            self.log_database_error(\"push\", exc)\n",
           "        except ZeroDivisionError as exc:\n            self.log_database_error(\"push\", exc)\n",
           "every database error of a push taken for an outage: a unique constraint is "
           "retried for ever instead of refused (409)", tests=("tests/test_push_errors.py",)),
    Mutant("endpoint-content-type-unchecked", ENDPOINTS,
           'if content_type != "application/json":', "if False:",
           "the body parsed whatever its type: a form post is taken for a push",
           tests=T_HOSTILE),

    # --- classic.py: the classic face (issue 22) -----------------------------------------
    Mutant("classic-horizon-unchecked", CLASSIC,
           "            if source.pruned:\n", "            if False:\n",
           "the horizon left to the core: the classic answer then forgets to resync, and "
           "devices keep objects deleted here", tests=("tests/test_retention.py",)),
    Mutant("classic-more-never-true", CLASSIC,
           'b"true" if pull.budget.full else b"false"', 'b"false"',
           "`more` written as the end of the answer: a paged client stops after one page",
           tests=T_PAGING),
    Mutant("classic-after-without-now", CLASSIC,
           "            if now is None:\n                raise ProtocolError(\"after= needs",
           "            if False:\n                raise ProtocolError(\"after= needs",
           "`after` looks enough to continue: the page then reads a window of its own",
           tests=T_PAGING),
    Mutant("classic-push-ids-shared-by-models", CLASSIC,
           "        return self.registration.label\n", '        return "classic"\n',
           "one key for the protocol, as WatermelonDB's endpoint has: a push id used for two "
           "models answers the second push with the first's stamp", tests=T_RECEIPTS),
    Mutant("classic-values-not-converted", CLASSIC,
           "return codec.to_wire if codec.converts_to_wire else None", "return None",
           "the database's values look like wire values: dates travel as Python reprs",
           tests=T_PULL),

    # --- watermelon.py: the WatermelonDB face (issue 22) ---------------------------------
    Mutant("watermelon-cursor-restarts-table", WATERMELON,
           "after, cursor = (cursor.part, cursor.after), None", "after, cursor = None, None",
           "the cursor's table found, its place forgotten: the page starts the table over, "
           "and a table larger than `limit` never ends (issue 22)", tests=T_WATERMELON),
    Mutant("watermelon-cursor-records-taken-for-deletions", WATERMELON,
           'if after is None or after[0] == "objects":', "if after is None:",
           "a later page taken to resume in the deletions: the rest of the table's records "
           "is lost", tests=T_WATERMELON),
    Mutant("watermelon-cursor-timestamp-ignored", WATERMELON,
           "now=query.cursor.timestamp if query.cursor else None)", "now=None)",
           "every page reads the clocks afresh: a change between two pages, with an id "
           "before the cursor, is in neither this sync nor the next",
           tests=(*T_WATERMELON, "tests/test_protocols.py")),
    Mutant("watermelon-conflicts-uncapped", WATERMELON,
           '"Pull, then push again.", conflicts[:50], status_code=409)',
           '"Pull, then push again.", conflicts, status_code=409)',
           "every conflict reported: a push of 100,000 stale records answers megabytes of "
           "errors (issue 22)", tests=T_WATERMELON),
    Mutant("watermelon-conflict-of-every-scope", WATERMELON,
           "            removals, object_id, _ = Window(source, stamps[batch.label], using).removals()\n",
           "            from persistence_sync.models import Tombstone\n"
           "            removals, object_id = Tombstone.objects.using(using).filter(\n"
           "                model=batch.label, last_change__lte=stamps[batch.label]), \"object_id\"\n",
           "a conflict read from the model's tombstones, whoever's: a record that moved in from "
           "another team, or between the user's own teams, is refused as deleted (issue 22)",
           tests=T_WATERMELON),
    Mutant("watermelon-deletion-no-conflict", WATERMELON,
           "live = [pk for pk in chunk if not batch.changes[pk].removed]", "live = []",
           "only changed records taken for conflicts: a record deleted on the server is "
           "brought back by a device that edited it", tests=T_WATERMELON),
    Mutant("watermelon-timestamp-zero", WATERMELON,
           "timestamp = max(1, now)", "timestamp = now",
           "the clock's value as it is: a server nobody wrote to answers 0, which "
           "WatermelonDB refuses", tests=T_WATERMELON),
    Mutant("watermelon-pruned-table-not-whole", WATERMELON,
           "            if name in resynced:\n", "            if False:\n",
           "the table named for replacement but answered from last_pulled_at: the device "
           "replaces its copy with the changes only, losing every other record",
           tests=T_RETENTION),
    Mutant("watermelon-pruned-later-page-answered", WATERMELON,
           "            elif source.pruned and name not in resynced:\n", "            elif False:\n",
           "a horizon that moved between two pages ignored: the later pages answer a window "
           "whose deletions were pruned", tests=T_RETENTION),
    Mutant("watermelon-forbidden-table-pushed", WATERMELON,
           "        if registration.label not in self.permitted:\n", "        if False:\n",
           "permissions checked for the request, not for each table pushed", tests=T_WATERMELON),

    # --- pulls.py: the protocol-neutral pull (issue 22) -----------------------------------
    Mutant("pull-now-max-of-clocks", PULLS,
           "now = min((value for value, _ in clocks), default=0)",
           "now = max((value for value, _ in clocks), default=0)",
           "the latest clock taken for a multi-model pull's now: a lagging model's writer "
           "commits a stamp below it after the pull, and the next pull skips it",
           server_db=True, tests=("tests/test_concurrency.py",)),
    Mutant("pull-catch-up-without-timeout", PULLS,
           "                           timeout=sync_settings.LOCK_TIMEOUT)",
           "                           timeout=None)",
           "catch_up thought to write only idle clocks: a pull behind a large push waits "
           "for it, however long, and never answers 503", server_db=True,
           tests=T_WATERMELON),
    Mutant("pull-grants-never-refreshed", PULLS,
           "                source.access.refresh_grants(self.using)\n", "                pass\n",
           "scope changes recorded only by pushes: a user who leaves a team keeps its objects",
           tests=T_SCOPING),

    # --- pushes.py: the protocol-neutral push (issue 22) ----------------------------------
    Mutant("push-check-not-run", PUSHES,
           "            if self.check is not None:\n                self.check(stamps)\n"
           "            if not all(",
           "            if not all(",
           "the face's check run on the slow path only: a WatermelonDB push overwrites "
           "records changed after last_pulled_at", tests=T_WATERMELON),
    Mutant("push-no-savepoint-in-callers-transaction", PUSHES,
           "return run_with_retries(run.in_savepoint, using)",
           "return run_with_retries(run.prepare_and_write, using)",
           "the caller's transaction looks enough: a refusal after writing (a queryset's "
           "write rule) leaves the rows it wrote",
           equivalent="run_with_retries itself runs the step in a savepoint inside a caller's "
           "atomic block (db.py): in_savepoint nests a second one"),
    Mutant("push-relation-to-hidden-object", PUSHES,
           "        found = access.related(target, codec.field.target_field.attname, list(wanted), using)\n",
           "        found = set(target._base_manager.db_manager(using).filter(**{\n"
           "            f\"{codec.field.target_field.attname}__in\": list(wanted)}).values_list(\n"
           "            codec.field.target_field.attname, flat=True))\n",
           "a foreign key checked for existence only: a push may link to an object it may "
           "not see, and learn that it exists", tests=(*T_SCOPING, "tests/test_protocols.py")),
    Mutant("push-unanswered-values-written", PUSHES,
           "        if again:\n", "        if False:\n",
           "the values of an unanswered push written again: a later change another client "
           "made, and had acknowledged, is overwritten (issue 22)", tests=T_RECEIPTS),
    Mutant("push-perform-write-not-called", PUSHES,
           "    access.prepare(plan.writes)\n", "",
           "perform_write thought to be for the classic face", tests=T_SCOPING),
    Mutant("push-check-after-skipped", PUSHES,
           "        access.check_after(plan.changes, plan.writes, using)  # the write rule's second half\n",
           "",
           "the write rule checked before writing only: an object pushed out of the "
           "request's queryset", tests=("tests/test_registry.py",)),
    Mutant("push-loose-ids-unchecked", PUSHES,
           "    _check_same_ids(batch.changes, stored)\n", "",
           "ids compared by the database as Python does: 'a1' overwrites the stored 'A1'",
           server_db="mysql", tests=T_HOSTILE),

    # --- receipts.py: idempotent pushes (issue 22) ------------------------------------------
    Mutant("receipt-per-endpoint-not-per-user", RECEIPTS,  # the lookup that answers a repeat
           "PushReceipt.objects.filter(endpoint=endpoint, user=user,",
           "PushReceipt.objects.filter(endpoint=endpoint,",
           "push ids taken as the client's: another user's push with the same id is "
           "answered as a repeat and never stored (issue 22)",
           tests=(*T_RECEIPTS, "tests/test_protocols.py")),
    Mutant("receipt-unanswered-never-abandoned", RECEIPTS,
           "                if abandon:\n                    self._remember(push_id, None)\n", "",
           "an unanswered id never stored left open: its late copy is stored after the "
           "client pushed its changes again", tests=T_RECEIPTS),
    Mutant("receipt-digests-not-kept", RECEIPTS,
           "written=(self.written or None) if stamp else None", "written=None",
           "the receipt keeps the stamp only: a push naming it unanswered writes its values "
           "again", tests=T_RECEIPTS),
    Mutant("receipt-pruned-at-once", RECEIPTS,
           "cutoff = now - datetime.timedelta(", "cutoff = now + datetime.timedelta(",
           "a sign slip: every receipt is older than the cutoff, so a retried push is "
           "stored twice", tests=T_RECEIPTS),

    # --- deletion.py: set-based deletes (issue 22) -----------------------------------------
    Mutant("deletion-set-null-ignored", DELETION,
           "            deletion.resets.append((child, link, pks))\n", "            pass\n",
           "SET_NULL children are not deleted, so they look like nothing to do: their links "
           "dangle, and the delete fails on the foreign key", tests=T_MODELS),
    Mutant("deletion-protect-ignored", DELETION,
           "        elif _children(child, link, pks, using):\n", "        elif False:\n",
           "PROTECT checked by the database anyway: a push deleting a protected parent gets "
           "a constraint error instead of Django's refusal", tests=T_MODELS),
    Mutant("deletion-project-receivers-skipped", DELETION,
           "    return all(receiver in own for signal in (signals.pre_delete, signals.post_delete)\n",
           "    return True or all(receiver in own for signal in (signals.pre_delete, signals.post_delete)\n",
           "this app's receivers are the only ones that matter: a project's post_delete "
           "(a file removed, a cache cleared) no longer runs for pushed deletions",
           tests=T_MODELS),
    Mutant("deletion-cascade-one-level", DELETION,
           "            if not _collect(child, _children(child, link, pks, using), using, own, "
           "deletion, seen):\n"
           "                return False\n",
           "            deletion.deletes.append((child, _children(child, link, pks, using)))\n",
           "a cascade's children deleted, not what they cascade to", tests=T_MODELS),
    Mutant("models-cascade-no-tombstone", MODELS,
           "        elif issubclass(victim, SyncableModel):\n"
           "            _tombstones_of_cascade(victim, victim_pks, using)\n", "",
           "the deleted model's tombstones written, not its cascade's: devices keep the children",
           tests=T_MODELS),

    # --- pulls.py: the stamp as an expression (by_id reads) ------------------------------
    Mutant("pull-stamp-alias-32-bit", PULLS,
           "output_field=models.BigIntegerField()))\n            stamp = \"ps_stamp_value\"",
           "output_field=models.IntegerField()))\n            stamp = \"ps_stamp_value\"",
           "Django types F() + Value(0) as an IntegerField, so leaving it so looks right: "
           "PostgreSQL then drops `stamp > since` as always false for any real since "
           "(beyond 32 bits), and a pull bringing a granted value skips the window's other "
           "changes (SQLite cannot tell: any integer fits)",
           server_db=True, tests=(*T_SCOPING, *T_PAGING)),

    # --- compiled.py: queries compiled once per process -------------------------------------
    Mutant("compiled-key-ignores-database", COMPILED,
           "cache_key = (using, tuple(map(_hashed, key)), shape)",
           "cache_key = (tuple(map(_hashed, key)), shape)",
           "the key names the query, so the database looks implied: a project with two "
           "databases of different kinds reads the second with the first's SQL and converters",
           server_db=True, tests=T_COMPILED),
    Mutant("compiled-key-ignores-padded-length", COMPILED,
           "cache_key = (using, tuple(map(_hashed, key)), shape)",
           "cache_key = (using, tuple(map(_hashed, key)), tuple(kind for kind, _ in shape))",
           "the kinds of the values look like the query's shape: a list of 3 ids then reads "
           "with the template of a list of 2, and the third object is never found",
           tests=T_COMPILED),
    Mutant("compiled-padding-with-a-blank", COMPILED,
           "padded.append([*value, *[value[-1]] * (size - len(value))])",
           "padded.append([*value, *[item_kind()] * (size - len(value))])",
           "a list padded with the kind's empty value (\"\" or 0) looks neutral: a row whose "
           "value is empty is read for a list that does not name it",
           tests=T_COMPILED),
    Mutant("compiled-markers-swapped", COMPILED,
           "    if kind is int:\n        return _INT_MARKER",
           "    if kind is str:\n        return _INT_MARKER",
           "int and str markers confused: no marker comes out as it went in, so every hot "
           "query is compiled again on every request (the poll's cost doubles)",
           tests=T_COMPILED),
    Mutant("compiled-int-marker-zero", COMPILED,
           "_INT_MARKER = -2_100_000_000", "_INT_MARKER = 0",
           "any integer looks fine as a marker: markers 0, 1, ... meet the query's own "
           "constants (a pull's removed flag), which are then bound to the request's values",
           tests=(*T_COMPILED, *T_PULL)),
    Mutant("compiled-converters-skipped", COMPILED,
           "        if not self.converters:\n            return list(rows)\n",
           "        return list(rows)\n",
           "the raw rows look like the ORM's: decimals, dates and JSON come back as the "
           "database's strings", tests=T_COMPILED),
    Mutant("compiled-every-marker-assumed-found", COMPILED,
           "    if found != set(markers):  # a value went through a conversion, or was left out\n"
           "        return None\n",
           "",
           "every marker assumed to come out as a parameter: one a lookup transformed "
           "(contains wraps it in %) stays in the template as a constant, and the query "
           "answers the first request's value for ever", tests=T_COMPILED),

    # --- authentication.py: the token lookup, compiled ----------------------------------------
    Mutant("auth-inactive-user-accepted", AUTHENTICATION,
           "        if not user.is_active:\n"
           "            raise exceptions.AuthenticationFailed(_(\"User inactive or deleted.\"))\n",
           "",
           "the token found looks enough: a deactivated user's devices keep syncing",
           tests=T_AUTH),
    Mutant("auth-unknown-token-anonymous", AUTHENTICATION,
           "            raise exceptions.AuthenticationFailed(_(\"Invalid token.\"))\n",
           "            return None  # type: ignore[return-value]\n",
           "an unknown token answered like no header (anonymous) rather than DRF's 401: "
           "a device whose token was revoked is served as anonymous", tests=T_AUTH),

    # --- db.py: lock timeouts --------------------------------------------------------------
    Mutant("db-timeout-cache-ignores-new-connection", DB,
           "    if known is not None and known[0] is raw:\n", "    if known is not None:\n",
           "the session's timeout cached per alias, not per connection: kept across a "
           "reconnection",
           equivalent="every connection of an alias opens with the same session timeout "
           "(Django applies the alias's OPTIONS on each connect, lock_timeout always restores "
           "it, PostgreSQL's is SET LOCAL and never read), so the old connection's value is "
           "the new one's"),
    Mutant("db-lock-timeout-outlives-the-transaction", DB,
           "\"SELECT set_config('lock_timeout', %s, true)\"",
           "\"SELECT set_config('lock_timeout', %s, false)\"",
           "set_config's third argument read as 'apply now': the push's short lock timeout "
           "stays on the connection, and the project's own later transactions on it give up "
           "on locks after LOCK_TIMEOUT", server_db=True, tests=T_DB),

    # --- feed/: the change feed ------------------------------------------------------------
    Mutant("feed-scoped-model-followed-as-a-whole", FEED_SUBSCRIPTIONS,
           "table_name(registration), access.values, registration))",
           "table_name(registration), None, registration))",
           "every model followed as a whole, as a get_queryset= one is: an owner='s change "
           "is announced to every user, who learns that someone else's objects changed",
           tests=T_FEED),
    Mutant("feed-revocation-told-to-the-scope", FEED_CHANGES,
           "        elif scope is not None:\n            found.scopes.add(scope)\n",
           "        if scope is not None:\n            found.scopes.add(scope)\n",
           "a removal's scope always counted: a user's revocation (leaving a team) is "
           "announced to every member of the team, who learns of a change they cannot see",
           tests=T_FEED),
    Mutant("feed-window-since-inclusive", FEED_CHANGES,
           "    return queryset.filter(last_change__gt=since, last_change__lte=until)\n",
           "    return queryset.filter(last_change__gte=since, last_change__lte=until)\n",
           "an off-by-one on the window: the change a client heard last is announced again "
           "with the next change of the model, whoever's (the client learns that someone "
           "else's object changed), and again when it reconnects from that position",
           tests=T_FEED),
    Mutant("feed-missed-removal-unreported", FEED_CHANGES,
           "if rows.filter(**{f\"{model.scope_attname}__in\": values.raw}).exists() or "
           "removals.filter(mine).exists():",
           "if rows.filter(**{f\"{model.scope_attname}__in\": values.raw}).exists():",
           "the rows looked like the whole change: a client away while its object was "
           "deleted is not told on reconnecting, and keeps it until something else changes",
           tests=T_FEED),
    Mutant("feed-notice-id-is-the-sum", FEED_VIEWS,
           "% (notice.snapshot.position, data)", "% (notice.snapshot.total, data)",
           "the snapshot's sum names it exactly (the long-poll's since), so it looks like the "
           "better id: the id is then no pull's now, and a client comparing it with its pulls "
           "never catches up", tests=T_FEED),
    Mutant("feed-long-poll-answers-at-once", FEED_VIEWS,
           "            subscriber.wait(wait)\n            return self.answer()\n",
           "            return self.answer()\n",
           "the pending notice looks like the whole answer: a long-poll with nothing to tell "
           "answers at once, and every WSGI client polls in a busy loop", tests=T_FEED),
    Mutant("feed-stalled-client-not-dropped", FEED_HANDLER,
           "                    await send_within(\n"
           "                        send, {\"type\": \"http.response.body\", \"body\": chunk, "
           "\"more_body\": True}, timeout)\n",
           "                    await send({\"type\": \"http.response.body\", \"body\": chunk, "
           "\"more_body\": True})\n",
           "send() looks non-blocking: a client that stops reading holds its connection, its "
           "task and its subscriber for ever", tests=T_FEED),
    Mutant("feed-announced-before-commit", FEED_ANNOUNCE,
           "    connection = connections[using]\n    if notifies(connection.vendor):\n"
           "        with connection.cursor() as cursor:\n",
           "    connection = connections[using]\n    if notifies(connection.vendor):\n"
           "        with connections.create_connection(using).cursor() as cursor:\n",
           "NOTIFY sent on a connection of its own so that a long transaction does not delay it: "
           "it goes out at once, before the rows are visible, and for a write that rolls back",
           server_db=True, tests=T_FEED),
]
