"""``manage.py syncall``: make this site a replica of a remote persistence.sync server.

A thin command over :func:`persistence_sync.client.sync_all`::

    python manage.py syncall                           # every registered model
    python manage.py syncall todo todo.Task --server https://central.example.com/
    python manage.py syncall --conflicts prefer-local --dry-run --json
    python manage.py syncall --as-user ann             # ann owns what owner= models pull
    python manage.py syncall --follow --interval 30    # stay in sync until stopped

Output: on a terminal, a progress bar per model for its pull and its push
(:class:`ProgressBars`); otherwise a plain line per model and stage
(:class:`PlainProgress`); then a summary line per model on stdout, or with
``--json`` a list of :meth:`ModelResult.as_dict` (its fields are documented
there). A failure is said once, with the models it stopped.

Sync state is kept per remote URL (``SyncState``, its credentials left
out): another spelling of the same server (``localhost`` and ``127.0.0.1``,
another port) starts afresh and takes every local row for a local change,
so conflicts follow. The command warns when a model was last synced with
another URL; use one spelling.

``--follow`` runs a full sync, then keeps the replica in sync until SIGINT or
SIGTERM (:mod:`persistence_sync.client.follow`): a sync whenever the remote's
change feed names a followed model or a local write changes one, and every
``--interval`` seconds as a floor.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from argparse import ArgumentParser
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from persistence_sync import client, registry
from persistence_sync.client.follow import Follower, FollowError
from persistence_sync.client.results import ModelResult
from persistence_sync.client.sync import groups
from persistence_sync.client.transport import HttpTransport
from persistence_sync.conf import sync_settings
from persistence_sync.exceptions import ConflictHandlerError
from persistence_sync.registry import Registration


class Command(BaseCommand):
    help = (
        "Sync registered models with a remote persistence.sync server, parents first: "
        "pull its changes, resolve conflicts, push local changes. A push whose answer "
        "was lost is completed by the next run. Sync state is kept per remote URL: use one "
        "spelling of the server's URL (localhost and 127.0.0.1, or another port, start afresh "
        "and take every local row for a local change); the command warns when a model was "
        "last synced with another URL."
    )
    # The app's own checks too: syncing with a broken registration would
    # push or pull the wrong fields at the wrong URI.
    requires_system_checks = ["models", "database", "persistence_sync"]

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "labels", nargs="*", metavar="app_label[.Model]",
            help="Models to sync (default: every registered model); the models tied to "
                 "them by foreign keys are synced with them.",
        )
        parser.add_argument(
            "--server", help="Base URL of the remote (default: PERSISTENCE_SYNC['SERVER_URL']).",
        )
        parser.add_argument(
            "--conflicts", metavar="prefer-local|prefer-remote|dotted.path",
            help="Conflict handler (default: PERSISTENCE_SYNC['CONFLICT_HANDLER']).",
        )
        parser.add_argument(
            "--as-user", metavar="USERNAME", dest="as_user",
            help="The local user who owns what is pulled for models registered with owner= "
                 "(default: the local user with the remote account's username). The remote's "
                 "user ids are never written here.",
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="Local database alias (default: default).",
        )
        parser.add_argument(
            "--dry-run", action="store_true",
            help="Pull and report what would happen; write nothing locally or remotely.",
        )
        parser.add_argument(
            "--json", action="store_true",
            help="Print a JSON list on stdout, an object per model: model, url, ok, error, "
                 "cause (a failure's root cause, shared by the models it stopped), stopped_by, "
                 "dry_run, received (items the remote sent, echoes of our pushes and items "
                 "equal to ours included), pulled (of those, the ones that differed here), "
                 "created, updated, removed (local objects written), pushed (items sent), "
                 "conflicts ([{id, properties, resolution}]), resynced, resumed, "
                 "bytes_received, bytes_sent, previous_url (the URL of the model's last sync "
                 "when it differs from this run's).",
        )

        parser.add_argument(
            "--follow", action="store_true",
            help="After the sync, stay running and keep this replica in sync until SIGINT or "
                 "SIGTERM: sync when the remote's change feed (<server>/events) names a followed "
                 "model, when a local write changes one, and every --interval seconds. Exits 0 "
                 "with a summary once the current sync is done (a second signal abandons it).",
        )
        parser.add_argument(
            "--interval", type=float, default=30.0, metavar="SECONDS",
            help="With --follow: sync every followed model at least this often (default: 30); "
                 "the whole schedule when the remote has no change feed.",
        )

    def handle(self, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        models = self.get_models(options["labels"])
        handler = options["conflicts"]
        if handler:
            try:
                handler = client.get_conflict_handler(handler, "--conflicts")
            except ConflictHandlerError as exc:
                raise CommandError(str(exc)) from None
        if options["follow"]:
            self.follow(models, handler, options)
            return
        progress: ProgressBars | PlainProgress | None = None
        if self.verbosity >= 1 and not options["json"]:
            progress = (ProgressBars(self.stderr) if self.stderr.isatty()
                        else PlainProgress(self.stderr))
        try:
            results = client.sync_all(
                server_url=options["server"], models=models, conflict_handler=handler,
                using=options["database"], dry_run=options["dry_run"],
                local_user=options["as_user"], progress=progress,
            )
        except ConflictHandlerError as exc:  # a bad CONFLICT_HANDLER setting
            raise CommandError(str(exc)) from None
        finally:
            if progress is not None:
                progress.close()
        self.warn_of_other_urls(results)
        self.report(results, options["json"])
        failed = [result for result in results if not result.ok]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} models failed: "
                + ", ".join(result.model for result in failed)
            )

    def follow(self, models: list[Registration] | None, handler: Any, options: Any) -> None:
        """``--follow``: a full sync, then one whenever something changes, until a signal."""
        if options["dry_run"] or options["json"]:
            raise CommandError("--follow cannot be combined with --dry-run or --json.")
        if options["interval"] <= 0:
            raise CommandError("--interval must be a positive number of seconds.")
        transport = HttpTransport.from_settings()
        followed = [reg for group in groups(models) for reg in group]
        first = [True]

        def sync(labels: set[str] | None) -> list[ModelResult]:
            return client.sync_all(
                server_url=options["server"], models=models if labels is None else sorted(labels),
                conflict_handler=handler, using=options["database"], local_user=options["as_user"],
                transport=transport)

        def report(results: Sequence[ModelResult]) -> None:
            if first[0]:  # the initial full sync, reported as a plain run is
                first[0] = False
                self.warn_of_other_urls(results)
                self.report(results, as_json=False)
            elif self.verbosity >= 2:
                for result in results:
                    if result.ok and (result.created or result.updated or result.removed
                                      or result.pushed):
                        self.stdout.write(f"{time.strftime('%H:%M:%S')} {result.summary()}")

        try:
            follower = Follower(sync, followed, options["server"] or sync_settings.SERVER_URL,
                                transport, options["database"], interval=options["interval"],
                                log=self.stderr.write, report=report)
        except client.SyncClientError as exc:  # no server URL, a bad one
            raise CommandError(str(exc)) from None
        stop = threading.Event()
        with stopped_by_signals(stop, follower.wake):
            try:
                stats = follower.run(stop)
            except FollowError as exc:
                raise CommandError(str(exc)) from None
            except AbandonSync:
                stats = follower.stats
                self.stderr.write("Abandoned the sync in progress: nothing of it was applied "
                                  "here; a push already sent is completed by the next run.")
        if self.verbosity >= 1:
            self.stdout.write(f"Stopped: {stats.summary()}.")

    def get_models(self, labels: Sequence[str]) -> list[Registration] | None:
        """Registrations named by ``app_label`` or ``app_label.Model``; None means all."""
        if not labels:
            return None
        registered = registry.default.registrations()
        selected: list[Registration] = []
        for label in labels:
            app_label, _, model_name = label.partition(".")
            try:
                app_config = apps.get_app_config(app_label)
            except LookupError:
                raise CommandError(
                    f"Unknown app in {label!r}: no installed app {app_label!r}."
                ) from None
            if model_name:
                try:
                    model = app_config.get_model(model_name)
                except LookupError:
                    raise CommandError(
                        f"Unknown model {label!r}: {app_label} has no such model."
                    ) from None
                matches = [reg for reg in registered if reg.model is model]
                if not matches:
                    raise CommandError(f"{label!r} is not registered for sync.")
            else:
                matches = [reg for reg in registered if reg.model._meta.app_label == app_label]
                if not matches:
                    raise CommandError(f"App {label!r} has no model registered for sync.")
            selected.extend(reg for reg in matches if reg not in selected)
        return selected

    def warn_of_other_urls(self, results: Sequence[ModelResult]) -> None:
        """One warning per URL the models were last synced with, when this run's differs."""
        moved: dict[str, list[str]] = {}
        for result in results:
            if result.previous_url:  # an endpoint's URL: said by its server's part
                moved.setdefault(result.previous_url.rsplit("/", 1)[0] + "/", []).append(
                    result.model)
        for previous, labels in moved.items():
            self.stderr.write(
                f"Warning: {', '.join(labels)} were last synced with {previous}, not with this "
                "run's URL. Sync state is kept per URL: if it is the same server under another "
                "name, this run took every local row for a local change (conflicts follow); "
                "sync with the URL you used before.")

    def report(self, results: Sequence[ModelResult], as_json: bool) -> None:
        self.report_failures([result for result in results if not result.ok])
        if as_json:
            self.stdout.write(json.dumps([result.as_dict() for result in results], indent=2))
            return
        for result in results:
            if result.ok and self.verbosity >= 1:
                self.stdout.write(result.summary())
            if self.verbosity >= 2:
                for conflict in result.conflicts:
                    props = ", ".join(conflict["properties"]) or "deleted on one side"
                    self.stdout.write(
                        f"  conflict {conflict['id']} ({props}): {conflict['resolution']}"
                    )


    def report_failures(self, failed: Sequence[ModelResult]) -> None:
        """Each root cause once (shown even at -v 0), with the models it stopped."""
        causes: dict[str, list[ModelResult]] = {}
        for result in failed:
            causes.setdefault(result.cause or result.error or "", []).append(result)
        for cause, results in causes.items():
            culprits = [r for r in results if r.stopped_by is None and r.error != cause]
            stopped = [r for r in results if r not in culprits]
            if len(culprits) == 1:  # the model and URL where it happened, then the cause
                self.stderr.write(culprits[0].summary())
            else:  # one cause met by several groups (or before any model): said once
                self.stderr.write(f"error: {cause}")
                if culprits:
                    self.stderr.write("  failed: " + ", ".join(
                        f"{r.model} ({r.url or 'no URL'})" for r in culprits))
            if stopped:
                self.stderr.write(f"  not synced: {', '.join(r.model for r in stopped)}")
            for result in stopped:  # what a stopped model did before (pages written, a push)
                if result.done_before_failing():
                    self.stderr.write(f"  {result.model}: {result.done_before_failing()} "
                                      "before failing")


class AbandonSync(BaseException):
    """A second SIGINT or SIGTERM: abandon the sync in progress (its transaction rolls back).

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` of a
    sync takes it for a failure to report and go on from.
    """


@contextlib.contextmanager
def stopped_by_signals(stop: threading.Event, wake: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (the current sync finishes); a second one abandons it.

    Only the main thread may install signal handlers: elsewhere (a command
    called from a thread) ``stop`` is the caller's to set.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise AbandonSync()
        stop.set()
        wake.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class ProgressBars:
    """The progress of a sync on a terminal: a bar per model and stage, kept once done.

    ``todo.task pulling [#########-----------]  45%  9,000/20,000 items  3.1/~6.9 MB
    8,000 items/s  ETA 0:01``: items and bytes done out of the total, the rate
    and the time left. A pull's total is its first page's count (the remote's
    "total", docs/protocol.md "Extensions"): without it (an older remote, a
    resumed pull) the bar shows what came so far. The other stages (deciding,
    saving) show as a line that the next one replaces. Written by hand rather
    than with a progress-bar library: about sixty lines, one less dependency
    for every site that installs the app, and Django's output wrapper kept.
    """

    width = 24  # characters of the bar itself

    def __init__(self, stream: Any, clock: Callable[[], float] = time.monotonic,
                 interval: float = 0.2) -> None:
        self.stream = stream  # an OutputWrapper (a command's self.stderr)
        self.clock = clock
        self.interval = interval  # seconds between redraws of one bar
        self.current: tuple[str, str] | None = None  # (model, stage) of the bar shown
        self.last: ModelResult | None = None
        self.started = self.shown = 0.0
        self.transient = False  # a status line that the next line replaces
        encoding = (getattr(getattr(stream, "_out", stream), "encoding", "") or "").lower()
        self.fill, self.empty = ("\u2588", "\u2591") if encoding.startswith("utf") else ("#", "-")

    def __call__(self, result: ModelResult, stage: str) -> None:
        now = self.clock()
        if stage not in ("pulling", "pushing"):
            self.finish()
            if stage != "done":
                self.write(f"{result.model}: {stage}...", transient=True)
            return
        if (result.model, stage) != self.current:
            self.finish()
            self.current, self.started, self.shown = (result.model, stage), now, 0.0
        elif now - self.shown < self.interval:
            self.last = result
            return
        self.last, self.shown = result, now
        self.write(self.bar(result, now - self.started), transient=True)

    def finish(self) -> None:
        """Draw the bar shown in its final state and keep it; clear a status line."""
        if self.current is not None and self.last is not None:
            self.write(self.bar(self.last, self.clock() - self.started), transient=False)
        elif self.transient:  # a status line: cleared
            self.stream.write("\r\033[K", style_func=lambda text: text, ending="")
            self.transient = False
        self.current = self.last = None

    close = finish

    def bar(self, result: ModelResult, elapsed: float) -> str:
        progress = result.progress
        stage = "pulling" if progress.stage == "pulling" else "pushing"
        parts = [f"{result.model} {stage}"]
        if progress.total:
            share = min(1.0, progress.done / progress.total)
            filled = round(share * self.width)
            parts.append(f"[{self.fill * filled}{self.empty * (self.width - filled)}] "
                         f"{share:4.0%}")
        return "  ".join(parts + describe(progress, elapsed))

    def write(self, line: str, transient: bool) -> None:
        start = "\r\033[K" if self.transient else ""
        self.stream.write(start + line, style_func=lambda text: text,
                          ending="" if transient else "\n")
        self.stream.flush()
        self.transient = transient


class PlainProgress:
    """The progress of a sync when stderr is no terminal (a log, cron): a plain line per
    model and stage once it is done, e.g. ``todo.task: pulled 20,002 items, 6.9 MB in 2.5 s``."""

    def __init__(self, stream: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.clock = stream, clock
        self.current: tuple[str, str] | None = None
        self.last: ModelResult | None = None
        self.started = 0.0

    def __call__(self, result: ModelResult, stage: str) -> None:
        if (result.model, stage) != self.current:
            self.finish()
            if stage in ("pulling", "pushing"):
                self.current, self.started = (result.model, stage), self.clock()
        self.last = result

    def finish(self) -> None:
        # A stage that failed says nothing here: its error is reported once, at the end.
        if self.current is not None and self.last is not None and self.last.ok:
            model, stage = self.current
            progress = self.last.progress
            verb = "pulled" if stage == "pulling" else "pushed"
            self.stream.write(f"{model}: {verb} {progress.done:,} items, {_size(progress.bytes)} "
                              f"in {self.clock() - self.started:.1f} s",
                              style_func=lambda text: text)
        self.current = None

    close = finish


def describe(progress: Any, elapsed: float) -> list[str]:
    """``["9,000/20,000 items", "3.1/~6.9 MB", "8,000 items/s", "ETA 0:01"]``: what is known.

    A push knows its bytes; a pull's are estimated from the items so far (``~``).
    """
    total = f"/{progress.total:,}" if progress.total else ""
    parts = [f"{progress.done:,}{total} items"]
    if progress.bytes:
        size = _size(progress.bytes)
        if progress.bytes_total:
            size += f" of {_size(progress.bytes_total)}"
        elif progress.total and progress.done:
            size += f" of ~{_size(progress.bytes * progress.total / progress.done)}"
        parts.append(size)
    if elapsed > 0 and progress.done:
        rate = progress.done / elapsed
        parts.append(f"{rate:,.0f} items/s")
        if progress.total and progress.total > progress.done:
            left = round((progress.total - progress.done) / rate)
            parts.append(f"ETA {left // 60}:{left % 60:02d}")
    return parts


def _size(count: float) -> str:
    unit = "B"
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            break
        count /= 1000
    return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
