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

CLIENT: the client mutants point at ``persistence_sync/client.py``; the client
is moving to a ``persistence_sync/client/`` package (planner.py for the
decisions, local.py for the local reads and writes): repoint their ``file``.
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
SERIALIZERS = "persistence_sync/serializers.py"
MODELS = "persistence_sync/models.py"
DB = "persistence_sync/db.py"
VIEWS = "persistence_sync/views.py"
CLIENT = "persistence_sync/client.py"  # CLIENT: repoint after the package move
CLIENT_DECISIONS = CLIENT  # CLIENT: client/planner.py after the move
CLIENT_LOCAL = CLIENT  # CLIENT: client/local.py after the move

T_CLOCK = ("tests/test_clock.py",)
T_CLIENT = ("tests/test_client.py",)
T_PULL = ("tests/test_pull.py", "tests/test_concurrency.py")
T_PUSH = ("tests/test_push.py", "tests/test_push_errors.py")
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
           "return model._meta.concrete_model._meta.label_lower", "return model._meta.label_lower",
           "a proxy model gets a counter of its own, so its writes and the concrete "
           "model's no longer wait for each other",
           equivalent="no model is registered through a proxy, and tick/committed_now take "
           "the registered (concrete) model everywhere; a proxy registration would need it"),
    Mutant("clock-snapshot-read-committed-postgresql", CLOCK,
           '"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"',
           '"SET TRANSACTION READ ONLY"',
           "READ COMMITTED is PostgreSQL's default and looks enough for a read",
           server_db=True, tests=T_PULL),
    Mutant("clock-snapshot-no-transaction", CLOCK,
           "    if connection.in_atomic_block:\n        yield\n        return\n",
           "    if True:\n        yield\n        return\n",
           "a read-only pull seems not to need a transaction", server_db=True, tests=T_PULL),
    Mutant("clock-committed-now-latest-row", CLOCK,
           ".values_list(\"value\", flat=True)\n        .first()",
           ".values_list(\"value\", flat=True)\n        .last()",
           "first()/last() look interchangeable on a one-row filter",
           equivalent="the filter is on the primary key: at most one row"),

    # --- server.py: pull -----------------------------------------------------------------
    Mutant("pull-clock-read-before-snapshot", SERVER,
           "    with clock.read_snapshot(using):\n"
           "        now = clock.committed_now(registration.model, using)\n",
           "    now = clock.committed_now(registration.model, using)\n"
           "    with clock.read_snapshot(using):\n",
           "reading `now` first looks harmless", server_db=True, tests=T_PULL),
    Mutant("pull-tombstones-since-inclusive", SERVER,
           "last_change__gt=since, last_change__lte=now)", "last_change__gte=since, last_change__lte=now)",
           "an off-by-one on the window's lower bound", server_db=True, tests=T_PULL),
    Mutant("pull-rows-since-inclusive", SERVER,
           "filter(last_change__gt=after, last_change__lte=now)",
           "filter(last_change__gte=after, last_change__lte=now)",
           "an off-by-one on the window's lower bound", tests=T_PULL),
    Mutant("pull-zero-stamps-skipped", SERVER,
           "after = since if since > 0 else -1", "after = since",
           "forgetting rows written past the clock (fixtures) keep stamp 0", tests=T_PULL),
    Mutant("pull-rows-above-now", SERVER,
           "filter(last_change__gt=after, last_change__lte=now)", "filter(last_change__gt=after)",
           "the upper bound looks redundant",
           equivalent="in the pull's snapshot no row is stamped above the committed clock: "
           "every stamp is ticked and committed with the clock row; raw SQL is out of contract"),
    Mutant("pull-tombstones-above-now", SERVER,
           "last_change__gt=since, last_change__lte=now)", "last_change__gt=since)",
           "the upper bound looks redundant",
           equivalent="as pull-rows-above-now: tombstones are stamped by the same clock"),
    Mutant("pull-ignores-visibility", SERVER,
           "            queryset.using(using)\n            .filter(last_change__gt=after",
           "            registration.model._base_manager.using(using)\n"
           "            .filter(last_change__gt=after",
           "the model's table read directly, past get_queryset", tests=("tests/test_registry.py",)),
    Mutant("pull-order-by-stamp-only", SERVER,
           "entries.sort(key=itemgetter(0, 1))", "entries.sort(key=itemgetter(0))",
           "objects of one push share a stamp; their order then depends on the database",
           tests=T_PULL),
    Mutant("pull-removed-flag-false", SERVER,
           "updates.append({ID: pk, REMOVED: True, LAST_CHANGE: stamp})",
           "updates.append({ID: pk, REMOVED: 1, LAST_CHANGE: stamp})",
           "1 and true look alike in JSON", tests=T_PULL),
    Mutant("pull-null-converted", SERVER,
           "update[name] = None if value is None else convert(value)",
           "update[name] = convert(value)",
           "dropping the None shortcut in the hot loop",
           equivalent="every to_wire converter maps None to None (identity or an explicit check)"),

    # --- server.py: push -----------------------------------------------------------------
    Mutant("push-unchanged-object-restamped", SERVER,
           "                continue  # nothing changes: the object keeps its stamp\n",
           "                pass\n",
           "restamping unchanged objects echoes them to every client", tests=T_PUSH),
    Mutant("push-partial-update-drops-fields", SERVER,
           "writes.append(model(pk=pk, **{**old, **change.values}))",
           "writes.append(model(pk=pk, **change.values))",
           "a partial update resets the fields it did not send", tests=T_PUSH),
    Mutant("push-partial-update-old-wins", SERVER,
           "**{**old, **change.values}", "**{**change.values, **old}",
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
           "if not connections[using].features.can_defer_constraint_checks:", "if False:",
           "SQLite and PostgreSQL defer foreign keys, so ordering looks unneeded",
           server_db="mysql", tests=T_PUSH),

    # --- db.py: chunks -------------------------------------------------------------------
    Mutant("chunks-slice-from-zero", DB,
           "yield values[start : start + size]", "yield values[start:size]",
           "a slicing slip that only shows above BATCH_SIZE", tests=T_PUSH),
    Mutant("chunks-first-only", DB,
           "for start in range(0, len(values), size):", "for start in range(0, min(len(values), 1), size):",
           "only the first chunk is processed", tests=T_PUSH),

    # --- views.py ------------------------------------------------------------------------
    Mutant("view-pull-database-error-is-500", VIEWS,
           "        except DatabaseError as exc:\n"
           '            raise ProtocolError(f"The database is unavailable, retry later',
           "        except ZeroDivisionError as exc:\n"
           '            raise ProtocolError(f"The database is unavailable, retry later',
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
           "    if type(value) is int:\n        return value\n    if type(value) is float",
           "    if isinstance(value, int):\n        return value\n    if type(value) is float",
           "isinstance lets true through as 1", tests=T_VALUES),
    Mutant("wire-int-no-range", SERIALIZERS,
           "if (low is not None and value < low) or (high is not None and value > high):",
           "if False:",
           "SQLite stores any integer, so the range looks unneeded", tests=T_VALUES),
    Mutant("wire-decimal-from-float", SERIALIZERS,
           "decimal.Decimal(str(_check_number(value)))", "decimal.Decimal(_check_number(value))",
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

    # --- models.py: write paths ----------------------------------------------------------
    Mutant("models-update-fields-unstamped", MODELS,
           'kwargs["update_fields"] = {*update_fields, "last_change"}', "pass",
           "save(update_fields=...) writes only the fields named", tests=T_MODELS),
    Mutant("models-orm-recreate-keeps-tombstone", MODELS,
           "            if self._state.adding:\n", "            if False:\n",
           "only pushes were thought to re-create deleted ids", tests=T_MODELS),
    Mutant("models-bulk-create-keeps-tombstone", MODELS,
           "    Tombstone.forget(queryset.model, [obj.pk for obj in objs], queryset.db)\n", "",
           "bulk_create looks like it only creates new ids", tests=T_MODELS),
    Mutant("models-upsert-unstamped", MODELS,
           'kwargs["update_fields"] = [*kwargs["update_fields"], "last_change"]', "pass",
           "an upsert's update_fields list only the synced fields", tests=T_PUSH),
    Mutant("models-queryset-update-unstamped", MODELS,
           'kwargs["last_change"] = clock.tick(self.model, self.db)', "clock.tick(self.model, self.db)",
           "ticking without stamping", tests=T_MODELS),
    Mutant("models-bulk-update-unstamped", MODELS,
           '[*fields, "last_change"], batch_size=batch_size)', "fields, batch_size=batch_size)",
           "bulk_update writes only the fields named", tests=T_MODELS),
    Mutant("models-bulk-update-ticks-per-batch", MODELS,
           "return plain.bulk_update(", "return super().bulk_update(",
           "Django's bulk_update writes through our update(), which ticks again",
           tests=T_MODELS),
    Mutant("models-delete-no-tombstone", MODELS,
           "    Tombstone.record(model, pks, stamp, queryset.db)\n", "",
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
           "        cls.forget(model, pks, using)\n        cls.objects", "        cls.objects",
           "a fresh deletion looks like it cannot have a tombstone yet",
           equivalent="every way of re-creating an id forgets its tombstone (save, "
           "bulk_create_at); only raw SQL or a plain QuerySet (check W001) leaves one"),

    Mutant("models-tombstone-old-stamp", MODELS,
           "Tombstone.record(sender, [instance.pk], clock.tick(sender, using), using)",
           "Tombstone.record(sender, [instance.pk], instance.last_change, using)",
           "the deleted object's own stamp looks like the right one", tests=T_MODELS),
    Mutant("models-empty-update-fields-stamps", MODELS,
           "        if update_fields is not None and not update_fields:\n"
           "            return super().save(*args, **kwargs)  # Django saves nothing\n", "",
           "save(update_fields=[]) then writes last_change: a change clients pull for nothing",
           tests=T_MODELS),
    Mutant("wire-id-length-off-by-one", SERIALIZERS,
           "if len(obj_id) > id_max_length:", "if len(obj_id) >= id_max_length:",
           "an off-by-one on the id column's length", tests=T_PUSH),
    Mutant("push-retry-swallows-last-error", DB,
           "if attempt == attempts - 1 or not is_transient(exc, connection):",
           "if not is_transient(exc, connection):",
           "the last transient failure is swallowed and the push answers ok with no stamp",
           tests=("tests/test_db.py",)),
    Mutant("push-retry-never", DB,
           "attempts = max(1, sync_settings.TRANSIENT_RETRIES)", "attempts = 1",
           "a deadlock answered as an error instead of being retried",
           tests=("tests/test_db.py",)),

    # --- the client's decisions (CLIENT: repoint after the package move) -----------------
    Mutant("client-echo-taken-for-conflict", CLIENT_DECISIONS,
           "if item.stamp is not None and item.stamp == echo_stamp:", "if False:",
           "our own push's echo looks like a remote change", tests=T_CLIENT),
    Mutant("client-remote-deletion-ignored", CLIENT_DECISIONS,
           "                plan.deletes[pk] = row.stamp\n                if pk in local.changed:",
           "                if pk in local.changed:",
           "a remote deletion of an object we have", tests=T_CLIENT),
    Mutant("client-handler-gets-a-copy", CLIENT_DECISIONS,
           "handler(conflicts, updates_to_push)", "handler(conflicts, list(updates_to_push))",
           "the handler's additions to the push are lost", tests=T_CLIENT),
    Mutant("client-handler-local-change-not-pushed", CLIENT_DECISIONS,
           "            if missing:  # kept here but not pushed by the handler: push it\n"
           "                push({ID: pk, **missing})\n", "",
           "the handler is trusted to push what it changed", tests=T_CLIENT),
    Mutant("client-handler-result-not-saved", CLIENT_DECISIONS,
           "            if changes:\n                plan.updates[pk] = (row, changes)\n", "",
           "the handler's local changes are not saved", tests=T_CLIENT),
    Mutant("client-local-changes-not-pushed", CLIENT_DECISIONS,
           "    for pk in sorted(local.changed - set(remote)):\n"
           "        push({ID: pk, **_wire_values(registration, local.rows[pk].values)})\n", "",
           "only conflicts are pushed", tests=T_CLIENT),
    Mutant("client-local-deletion-not-pushed", CLIENT_DECISIONS,
           "        if item is None or not item.removed:\n            push({ID: pk, REMOVED: True})",
           "        if item is not None and not item.removed:\n            push({ID: pk, REMOVED: True})",
           "local deletions pushed only when the remote mentions them", tests=T_CLIENT),
    Mutant("client-applied-deletions-pushed-back", CLIENT_LOCAL,
           "            removed_qs = removed_qs.exclude(last_change=state.applied_stamp)\n", "",
           "deletions taken from the remote look like local ones", tests=T_CLIENT),
    Mutant("client-applied-values-pushed-back", CLIENT_LOCAL,
           "            changed_qs = changed_qs.exclude(last_change=state.applied_stamp)\n", "",
           "values taken from the remote look like local changes", tests=T_CLIENT),
    Mutant("client-window-inclusive", CLIENT_LOCAL,
           'window = {"last_change__gt": state.local_date, "last_change__lte": now}',
           'window = {"last_change__gte": state.local_date, "last_change__lte": now}',
           "an off-by-one on the local window", tests=T_CLIENT),
    Mutant("client-delete-changed-meanwhile", CLIENT_LOCAL,
           "if pk in current and current[pk].stamp == seen]", "if pk in current]",
           "syncall deletes an object changed locally while it ran", tests=T_CLIENT),
    Mutant("client-update-changed-meanwhile", CLIENT_LOCAL,
           "                if now.stamp == seen.stamp:\n", "                if True:\n",
           "syncall overwrites an object changed locally while it ran", tests=T_CLIENT),
    Mutant("client-create-deleted-meanwhile", CLIENT_LOCAL,
           "if pk not in current and pk not in late_deletions:", "if pk not in current:",
           "syncall re-creates an id deleted locally while it ran", tests=T_CLIENT),
    Mutant("client-state-local-date-not-advanced", CLIENT_LOCAL,
           "        state.local_date = local.now\n", "",
           "local changes are pushed again every run", tests=T_CLIENT),
    Mutant("client-conflict-for-equal-values", CLIENT_DECISIONS,
           "        if not differing:\n            continue\n", "",
           "an object changed on both sides to the same values taken for a conflict",
           tests=T_CLIENT),
    Mutant("client-push-merge-replaces", CLIENT_DECISIONS,
           "            previous.update(item)", "            pushed[item[ID]] = dict(item)",
           "a second push item for one id replaces the first instead of merging",
           tests=T_CLIENT),
    Mutant("client-merge-overwrites-local-change", CLIENT_LOCAL,
           "if now.values[name] == seen.values[name]}", "}",
           "the remote's values overwrite fields changed here while syncall ran", tests=T_CLIENT),
    Mutant("client-merged-stamped-as-applied", CLIENT_LOCAL,
           "_upsert(registration, base, merged, clock.tick(model, using))",
           "_upsert(registration, base, merged, stamp)",
           "one stamp for everything written: the merged local change is then never pushed",
           tests=T_CLIENT),
    Mutant("client-server-date-is-push-date", CLIENT_LOCAL,
           "        state.server_date = pull_now\n", "        state.server_date = push_now or pull_now\n",
           "the push's `now` looks later, so pulling from it looks safe", tests=T_CLIENT),
    Mutant("client-dry-run-writes", CLIENT,
           "    if dry_run:\n", "    if dry_run and False:\n",
           "dry_run only skips the report", tests=T_CLIENT),
    Mutant("client-take-remote-ignores-names", "persistence_sync/conflicts.py",
           "for name in self.properties if names is None else names:\n"
           "            setattr(self.local",
           "for name in self.properties:\n            setattr(self.local",
           "take_remote(names) takes every conflicting property",
           tests=("tests/test_conflicts.py",)),
    Mutant("client-pulled-removed-false-deletes", CLIENT_DECISIONS,
           "        if item.get(REMOVED) is True or item.get(REMOVED) == 1:\n"
           "            remote.removed = True",
           "        if REMOVED in item:\n            remote.removed = True",
           "the key's presence taken for removal", tests=T_CLIENT),
    Mutant("client-deletion-conflict-unreported", CLIENT_DECISIONS,
           '                    result.conflicts.append({"id": pk, "properties": [], '
           '"resolution": "deleted"})\n', "",
           "a local deletion silently beats a remote change", tests=T_CLIENT),
    Mutant("client-handler-removal-kept-here", CLIENT_DECISIONS,
           "        if entry.get(REMOVED):\n            plan.deletes[pk] = row.stamp\n        else:",
           "        if entry.get(REMOVED):\n            pass\n        else:",
           "a removal the handler pushes is not applied locally", tests=T_CLIENT),
    Mutant("client-failed-push-applies", CLIENT,
           "        push_now = transport.push(url, plan.push)\n",
           "        try:\n            push_now = transport.push(url, plan.push)\n"
           "        except Exception:\n            pass\n",
           "a failed push is not allowed to stop the local writes", tests=T_CLIENT),
]
