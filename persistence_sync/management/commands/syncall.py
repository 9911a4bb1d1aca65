"""``manage.py syncall``: make this site a replica of a remote persistence.sync server.

A thin command over :func:`persistence_sync.client.sync_all`::

    python manage.py syncall                           # every registered model
    python manage.py syncall todo todo.Task --server https://central.example.com/
    python manage.py syncall --conflicts prefer-local --dry-run --json
"""

from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from persistence_sync import client, registry
from persistence_sync.client.results import ModelResult
from persistence_sync.exceptions import ConflictHandlerError
from persistence_sync.registry import Registration


class Command(BaseCommand):
    help = (
        "Sync registered models with a remote persistence.sync server, parents first: "
        "pull its changes, resolve conflicts, push local changes. A push whose answer "
        "was lost is completed by the next run."
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
            "--database", default=DEFAULT_DB_ALIAS, help="Local database alias (default: default).",
        )
        parser.add_argument(
            "--dry-run", action="store_true",
            help="Pull and report what would happen; write nothing locally or remotely.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print a machine-readable summary on stdout.",
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
        show_progress = (self.verbosity >= 1 and not options["json"]
                         and self.stderr.isatty())
        try:
            results = client.sync_all(
                server_url=options["server"], models=models, conflict_handler=handler,
                using=options["database"], dry_run=options["dry_run"],
                progress=ProgressLine(self.stderr) if show_progress else None,
            )
        except ConflictHandlerError as exc:  # a bad CONFLICT_HANDLER setting
            raise CommandError(str(exc)) from None
        self.report(results, options["json"])
        failed = [result for result in results if not result.ok]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} models failed: "
                + ", ".join(result.model for result in failed)
            )

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

    def report(self, results: Sequence[ModelResult], as_json: bool) -> None:
        for result in results:
            if not result.ok:  # errors are shown even at -v 0
                self.stderr.write(result.summary())
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


class ProgressLine:
    """The progress of a sync as one line on a terminal, rewritten in place.

    Objects and bytes done and the rate; the share done and an ETA when the
    total is known (pushes: a pull cannot know how many pages follow). Plain
    text, not the error style of ``self.stderr``: progress is no error.
    """

    def __init__(self, stream: Any, clock: Callable[[], float] = time.monotonic,
                 interval: float = 0.2) -> None:
        self.stream = stream  # an OutputWrapper (a command's self.stderr)
        self.clock = clock
        self.interval = interval  # seconds between redraws of one stage
        self.current: tuple[str, str] | None = None  # (model, stage) shown
        self.started = self.shown = 0.0

    def __call__(self, result: ModelResult, stage: str) -> None:
        now = self.clock()
        if stage == "done":
            self.write("")
            self.current = None
            return
        if (result.model, stage) != self.current:
            self.current, self.started = (result.model, stage), now
        elif now - self.shown < self.interval:
            return
        self.shown = now
        self.write(describe(result.model, stage, result.progress, now - self.started))

    def write(self, line: str) -> None:
        self.stream.write(f"\r\033[K{line}", style_func=lambda text: text, ending="")
        self.stream.flush()


def describe(model: str, stage: str, progress: Any, elapsed: float) -> str:
    """``"todo.task: pulling 12,000 objects, 1.2 MB, 8,000/s"``, with an ETA when it can."""
    if progress.stage != stage or not (progress.done or progress.total):
        return f"{model}: {stage}..."
    parts = [f"{progress.done:,}" + (f"/{progress.total:,}" if progress.total else "")
             + " objects"]
    if progress.bytes:
        parts.append(_size(progress.bytes))
    if elapsed > 0 and progress.done:
        rate = progress.done / elapsed
        parts.append(f"{rate:,.0f}/s")
        if progress.total and progress.total > progress.done:
            left = round((progress.total - progress.done) / rate)
            parts.append(f"ETA {left // 60}:{left % 60:02d}")
    return f"{model}: {stage} " + ", ".join(parts)


def _size(count: float) -> str:
    unit = "B"
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            break
        count /= 1000
    return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
