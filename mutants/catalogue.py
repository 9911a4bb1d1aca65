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
``scope-``, ``wire-``, ``models-``, ``chunks-``, ``client-``).
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
SERVER = "persistence_sync/server.py"
SCOPING = "persistence_sync/scoping.py"
SERIALIZERS = "persistence_sync/serializers.py"
MODELS = "persistence_sync/models.py"
DB = "persistence_sync/db.py"
VIEWS = "persistence_sync/views.py"
CLIENT = "persistence_sync/client/__init__.py"  # the sync's steps
CLIENT_DECISIONS = "persistence_sync/client/planner.py"
CLIENT_LOCAL = "persistence_sync/client/local.py"
CONFLICTS = "persistence_sync/client/conflicts.py"

T_CLOCK = ("tests/test_clock.py",)
T_CLIENT = ("tests/test_client.py", "tests/test_lost_writes.py")
T_PULL = ("tests/test_pull.py", "tests/test_pull_paging.py", "tests/test_concurrency.py")
T_PAGING = ("tests/test_pull_paging.py",)
T_PUSH = ("tests/test_push.py", "tests/test_push_errors.py")
T_PREPARED = ("tests/test_concurrency.py",)
T_RECEIPTS = ("tests/test_idempotent_push.py", "tests/test_concurrency.py")
T_SCOPING = ("tests/test_scoping.py",)
T_MODELS = ("tests/test_models.py",)
T_VALUES = ("tests/test_values.py",)

MUTANTS = [
    # --- clock.py: stamps and the snapshot ---------------------------------------------
    Mutant("clock-tick-without-increment", CLOCK,
           'Greatest(F("value") + 1, Value(wall_ms()))', 'Greatest(F("value"), Value(wall_ms()))',
           "two writes in one millisecond share a stamp", tests=T_CLOCK),
    Mutant("clock-tick-wall-clock-only", CLOCK,
           'Greatest(F("value") + 1, Value(wall_ms()))', "Value(wall_ms())",
           "the wall clock going back (NTP) gives a stamp below an earlier one", tests=T_CLOCK),
    Mutant("clock-tick-outside-atomic-allowed", CLOCK,
           "if not connections[using].in_atomic_block:", "if False:",
           "forgetting that the lock only orders writers inside a transaction", tests=T_MODELS),
    Mutant("clock-first-tick-not-advanced", CLOCK,
           "Clock(model=key, value=0)], ignore_conflicts=True)\n        counter.update(**advance)",
           "Clock(model=key, value=wall_ms())], ignore_conflicts=True)",
           "the first write of a model takes the wall clock without the row lock",
           server_db=True, tests=("tests/test_concurrency.py",)),
    Mutant("clock-key-ignores-proxies", CLOCK,
           "concrete = model._meta.concrete_model or model", "concrete = model",
           "a proxy model gets a counter of its own, so its writes and the concrete "
           "model's no longer wait for each other", tests=T_CLOCK),
    Mutant("clock-committed-now-latest-row", CLOCK,
           '.values_list("value", "tombstones_pruned_to")\n        .first()',
           '.values_list("value", "tombstones_pruned_to")\n        .last()',
           "first()/last() look interchangeable on a one-row filter",
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
           "    if lagging:\n        with transaction.atomic(using=using):",
           "    if False:\n        with transaction.atomic(using=using):",
           "the latest clock looks enough for a multi-model pull: an idle model's "
           "writer may still commit a stamp below it", tests=("tests/test_watermelon.py",)),

    # --- server.py: pull: the window, paging, the order ----------------------------------
    Mutant("pull-clock-read-before-snapshot", SERVER,
           "    with clock.read_snapshot(using):\n"
           "        now, horizon = clock.committed_now_and_horizon(registration.model, using)\n",
           "    now, horizon = clock.committed_now_and_horizon(registration.model, using)\n"
           "    with clock.read_snapshot(using):\n",
           "reading `now` first looks harmless", server_db=True, tests=T_PULL),
    Mutant("pull-tombstones-since-inclusive", SERVER,
           "model=registration.label, last_change__gt=since, last_change__lte=now",
           "model=registration.label, last_change__gte=since, last_change__lte=now",
           "an off-by-one on the window's lower bound", tests=T_PULL),
    Mutant("pull-rows-since-inclusive", SERVER,
           "filter(last_change__gt=since if since > 0 else -1,",
           "filter(last_change__gte=since if since > 0 else -1,",
           "an off-by-one on the window's lower bound", tests=T_PULL),
    Mutant("pull-zero-stamps-skipped", SERVER,
           "filter(last_change__gt=since if since > 0 else -1,", "filter(last_change__gt=since,",
           "forgetting rows written past the clock (fixtures) keep stamp 0", tests=T_PULL),
    Mutant("pull-rows-above-now", SERVER,
           "                                        last_change__lte=now)",
           "                                        )",
           "the upper bound looks redundant: it is not for a page, whose `now` is the "
           "first page's", tests=T_PULL),
    Mutant("pull-tombstones-above-now", SERVER,
           "model=registration.label, last_change__gt=since, last_change__lte=now",
           "model=registration.label, last_change__gt=since",
           "the upper bound looks redundant: it is not for a page, whose `now` is the "
           "first page's", tests=T_PULL),
    Mutant("pull-ignores-visibility", SERVER,
           "objects = window_objects(self.queryset, self.page.since",
           "objects = window_objects(self.registration.model._base_manager.all(), self.page.since",
           "the model's table read directly, past get_queryset", tests=("tests/test_registry.py",)),
    Mutant("pull-order-by-stamp", SERVER,
           'all=True).order_by("ps_id")', 'all=True).order_by("ps_stamp", "ps_id")',
           "ordering by change looks natural, but pages continue `after` an id",
           tests=T_PULL),
    Mutant("pull-union-unordered", SERVER,
           'all=True).order_by("ps_id")', "all=True)",
           "the database's order looks stable enough", tests=T_PULL),
    Mutant("pull-page-after-inclusive", SERVER,
           "objects = objects.filter(pk__gt=self.page.after)",
           "objects = objects.filter(pk__gte=self.page.after)",
           "an off-by-one on the page's continuation: the last id repeated", tests=T_PAGING),
    Mutant("pull-page-after-objects-only", SERVER,
           '            tombstones = tombstones.filter(**{f"{object_id}__gt": self.page.after})\n',
           "            pass\n",
           "`after` applied to the objects only: removals of earlier ids come again on "
           "every page", tests=T_PAGING),
    Mutant("pull-page-now-ahead-accepted", SERVER,
           "            if page.now > now:\n", "            if False:\n",
           "a client's `now` trusted: a page then names a window whose writes may not "
           "have committed", tests=T_PAGING),
    Mutant("pull-page-now-ignored", SERVER,
           "            now = page.now\n", "            pass\n",
           "every page reads the clock afresh: a change between pages lands in the "
           "current `now` and is skipped by the next sync", tests=T_PAGING),
    Mutant("pull-page-no-lookahead", SERVER,
           "changes = changes[: self.page.limit + 1]", "changes = changes[: self.page.limit]",
           "exactly `limit` rows read: `more` is then never true", tests=T_PAGING),
    Mutant("pull-horizon-inclusive", SERVER,
           "if 0 < page.since < horizon:", "if 0 < page.since <= horizon:",
           "an off-by-one on the pruning horizon: a client at the horizon resyncs for "
           "nothing", tests=("tests/test_retention.py",)),
    Mutant("pull-horizon-unchecked", SERVER,
           "if 0 < page.since < horizon:", "if False:",
           "pruned deletions forgotten: the client keeps objects deleted here",
           tests=("tests/test_retention.py",)),
    Mutant("pull-removed-flag-false", SERVER,
           "items.append({ID: row[0], REMOVED: True, LAST_CHANGE: row[-2]})",
           "items.append({ID: row[0], REMOVED: 1, LAST_CHANGE: row[-2]})",
           "1 and true look alike in JSON", tests=T_PULL),
    Mutant("pull-null-converted", SERVER,
           "                    if value is not None:\n                        item[key] = convert(value)",
           "                    item[key] = convert(value)",
           "dropping the None shortcut in the hot loop",
           equivalent="every database converter and to_wire maps None to None"),

    # --- server.py + scoping.py: scoped pulls ---------------------------------------------
    Mutant("scope-tombstones-of-every-scope", SCOPING,
           "        return tombstones.filter(scope__in=self.values.keys)\n",
           "        return tombstones\n",
           "a removal looks harmless to send to everyone: it leaks ids and, for a moved "
           "object, removes it from its new scope's devices", tests=T_SCOPING),
    Mutant("scope-tombstone-of-visible-object", SERVER,
           ".filter(~models.Exists(visible))", "",
           "a tombstone of an object that moved between two of the request's scopes "
           "answered beside the object", tests=T_SCOPING),
    Mutant("scope-grant-not-pulled", SERVER,
           "access if scoped else None,\n                        granted)",
           "access if scoped else None,\n                        ())",
           "a newly granted value's old objects are never sent", tests=T_SCOPING),
    Mutant("scope-revocation-ignored", SERVER,
           "        if revoked:\n            batches = _with_revocations(",
           "        if False:\n            batches = _with_revocations(",
           "devices keep the objects of a value they lost", tests=T_SCOPING),
    Mutant("scope-revocation-removes-visible", SERVER,
           "if key in visible or (after is not None and key <= str(after)):",
           "if after is not None and key <= str(after):",
           "an object still visible through another value removed with the lost one",
           equivalent="an object the request sees that a revocation names left the lost "
           "value after the device's `since` (by a write stamped in the window), so the "
           "window holds it as a live row, which wins over a removal in _with_revocations"),
    Mutant("scope-grant-drops-the-window", SERVER,
           "models.Q(last_change__gt=since) | in_granted, last_change__lte=self.now)",
           "in_granted, last_change__lte=self.now)",
           "the pull after a grant answers the granted values only: the other changes of "
           "its window are skipped", tests=T_SCOPING),
    Mutant("scope-tombstone-oldest-stamp", SERVER,
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
           "hidden = [obj.pk for obj in writes if getattr(obj, scope_attname) not in self.values]",
           "hidden = []",
           "the write rule checked before the write only: an object pushed into someone "
           "else's scope", tests=T_SCOPING),
    Mutant("scope-push-forged-owner-ignored", SCOPING,
           "if value is not USE_DEFAULT and value is not None and value not in self.values:",
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

    # --- server.py: push -----------------------------------------------------------------
    Mutant("push-unchanged-object-restamped", SERVER,
           "                continue  # nothing changes: the object keeps its stamp\n",
           "                pass\n",
           "restamping unchanged objects echoes them to every client", tests=T_PUSH),
    Mutant("push-partial-update-drops-fields", SERVER,
           "obj = model(**{pk_attname: pk, **old, **values})",
           "obj = model(**{pk_attname: pk, **values})",
           "a partial update resets the fields it did not send", tests=T_PUSH),
    Mutant("push-partial-update-old-wins", SERVER,
           "pk, **old, **values}", "pk, **values, **old}",
           "merge order of two dicts", tests=T_PUSH),
    Mutant("push-null-default-on-existing", SERVER,
           "if defaulted and pk in stored:", "if defaulted and pk not in stored:",
           "null means the default for new objects only", tests=T_VALUES),
    Mutant("push-same-batch-parent-not-found", SERVER,
           "if target is registration.model:  # a parent created in the same batch",
           "if False:",
           "a relation to an object created later in the same batch", tests=T_PUSH),
    Mutant("push-visibility-not-checked", SERVER,
           "        if pk not in visible\n", "        if pk not in visible and False\n",
           "changes to invisible objects slip through", tests=("tests/test_registry.py",)),
    Mutant("push-removal-of-unstored", SERVER,
           "            if pk in stored:\n                removals.append(pk)",
           "            if True:\n                removals.append(pk)",
           "removing an absent id",
           equivalent="delete_at lists the pks that exist first: an absent id deletes nothing"),
    Mutant("push-parents-first-skipped", SERVER,
           "if writes and not connections[using].features.can_defer_constraint_checks:",
           "if False:",
           "SQLite and PostgreSQL defer foreign keys, so ordering looks unneeded",
           server_db="mysql", tests=T_PUSH),
    Mutant("push-prepared-not-rechecked", SERVER,
           "            if not _unchanged(registration, plan, using):\n                raise _Stale\n",
           "",
           "rows read before the clock trusted under it: a change made meanwhile is "
           "reverted by the push", tests=T_PREPARED),
    Mutant("push-recheck-ids-only", SERVER,
           "    return seen == plan.versions\n", "    return seen.keys() == plan.versions.keys()\n",
           "checking that the rows still exist, not that they are unchanged", tests=T_PREPARED),
    Mutant("push-recheck-written-only", SERVER,
           "    return seen == plan.versions\n",
           "    return all(seen.get(obj.pk) == plan.versions.get(obj.pk) for obj in plan.writes)\n",
           "only the rows the plan writes re-checked: a push of the stored value loses to "
           "a change made while it was prepared", tests=T_PREPARED),

    # --- server.py: idempotent push receipts ---------------------------------------------
    Mutant("receipt-not-recorded", SERVER,
           "            _write(registration, plan, stamp, using, access)\n"
           "            return receipt.record(stamp)\n",
           "            _write(registration, plan, stamp, using, access)\n"
           "            return stamp\n",
           "the receipt written only on the slow path: a repeated push is stored twice",
           tests=T_RECEIPTS),
    Mutant("receipt-not-rechecked-under-clock", SERVER,
           "            if receipt.known():  # another copy of this push was stored meanwhile\n"
           "                return receipt.answer(stamp)\n", "",
           "the receipt looked up once, before the clock: two copies racing are both "
           "stored (the second fails on the unique receipt instead of answering)",
           tests=T_RECEIPTS),
    Mutant("receipt-replay-not-abandoned", SERVER,
           "        _remember(self.registration, self.push_id, None, self.using)  # a replay: abandon it\n",
           "",
           "a replay of an unknown id answers 'never stored' but leaves the id open: a "
           "late copy is then stored after the client decided it again", tests=T_RECEIPTS),
    Mutant("receipt-abandoned-copy-accepted", SERVER,
           "    if receipt.stamp is None and not replay:\n", "    if False:\n",
           "a late copy of an abandoned push answered like a repeat", tests=T_RECEIPTS),
    Mutant("receipt-per-server-not-per-model", SERVER,
           "            model=self.registration.label, push_id=self.push_id).first()",
           "            push_id=self.push_id).first()",
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

    # --- views.py ------------------------------------------------------------------------
    Mutant("view-pull-database-error-is-500", VIEWS,
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
    Mutant("wire-unchanged-compare-python", SERVER,
           "codecs[name].wire(value) == codecs[name].wire(old[name])", "value == old[name]",
           "comparing Python values, where a stored datetime has sub-second precision",
           tests=T_VALUES),
    Mutant("wire-id-length-off-by-one", SERIALIZERS,
           "if len(obj_id) > id_max_length:", "if len(obj_id) >= id_max_length:",
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
           "        if attname is None:\n            Tombstone.forget(self.model, pks, self.using)\n",
           "        if attname is None:\n            pass\n",
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
           "    Tombstone.record(model, pks, stamp, queryset.db, scopes=scopes)\n", "",
           "a bulk delete sends no post_delete for the tombstone", tests=T_MODELS),
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
           "        cls.forget(model, pks, using, scopes=scopes)\n        cls.objects",
           "        cls.objects",
           "a fresh deletion looks like it cannot have a tombstone yet",
           equivalent="every way of re-creating an id forgets its tombstone (save, "
           "bulk_create_at); only raw SQL or a plain QuerySet (check W001) leaves one"),
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
           "self.echoes = {state.server_push_date, *(echoes or ())} - {0}",
           "self.echoes = {state.server_push_date} - {0}",
           "only the last push's stamp taken for an echo: a replayed push's own values "
           "come back as someone else's change", tests=T_CLIENT),
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
           "    if removed is True or removed == 1:\n",
           "    if REMOVED in item:\n",
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
    Mutant("client-server-date-is-push-date", CLIENT_LOCAL,
           "    state.server_date = run.pull_now\n", "    state.server_date = run.push_now or run.pull_now\n",
           "the push's `now` looks later, so pulling from it looks safe", tests=T_CLIENT),

    # --- the client's steps (client/__init__.py) and conflicts ---------------------------
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
    Mutant("client-take-remote-ignores-names", CONFLICTS,
           "for name in self.properties if names is None else names:\n"
           "            setattr(self.local",
           "for name in self.properties:\n            setattr(self.local",
           "take_remote(names) takes every conflicting property",
           tests=("tests/test_conflicts.py",)),
]
