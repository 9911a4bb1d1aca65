"""``manage.py prunetombstones``: drop tombstones older than the retention period.

A thin command over :func:`persistence_sync.retention.prune_tombstones`, safe
to run from cron (it does nothing when no retention is set)::

    python manage.py prunetombstones                    # PERSISTENCE_SYNC["TOMBSTONE_RETENTION"]
    python manage.py prunetombstones --older-than 90d --dry-run
    python manage.py prunetombstones todo.task --older-than 12h
"""

from __future__ import annotations

import datetime
import re
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from persistence_sync import retention
from persistence_sync.clock import format_stamp

UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([dhms]?)")


def parse_duration(text: str) -> datetime.timedelta:
    """``"90"`` or ``"90d"`` (days), ``"12h"``, ``"30m"``, ``"45s"`` as a timedelta."""
    match = DURATION_RE.fullmatch(text.strip().lower())
    if not match:
        raise CommandError(
            f"--older-than must be a number of days or a duration like 90d, 12h, 30m, not {text!r}."
        )
    amount, unit = float(match[1]), UNITS[match[2] or "d"]
    period = datetime.timedelta(**{unit: amount})
    if period <= datetime.timedelta(0):
        raise CommandError(f"--older-than must be positive, not {text!r}.")
    return period


def describe(period: datetime.timedelta) -> str:
    """``30 days``, ``1 day``, or ``12:00:00`` for periods that are not whole days."""
    if period.seconds or period.microseconds:
        return str(period)
    return f"{period.days} day{'s' if period.days != 1 else ''}"


def horizon(stamp: int) -> str:
    """The horizon as a person reads it: clients that last pulled before it resync."""
    if not stamp:
        return "no horizon (no deletion was ever pruned)"
    return f"horizon {format_stamp(stamp)}: clients that last synced before it resync"


class Command(BaseCommand):
    help = (
        "Delete tombstones (records of deleted synced objects) older than "
        "PERSISTENCE_SYNC['TOMBSTONE_RETENTION'] or --older-than. Clients that last "
        "synced before a pruned deletion are told to resync from scratch."
    )
    requires_system_checks = ["models", "database"]

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "labels", nargs="*", metavar="app_label.Model",
            help="Models whose tombstones to prune (default: all).",
        )
        parser.add_argument(
            "--older-than", metavar="DURATION",
            help="Prune tombstones older than this: days (90, 90d) or 12h, 30m, 45s "
                 "(default: PERSISTENCE_SYNC['TOMBSTONE_RETENTION']).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be pruned; delete nothing.",
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: default).",
        )

    def handle(self, **options: Any) -> None:
        period: datetime.timedelta | None
        if options["older_than"]:
            period = parse_duration(options["older_than"])
        else:
            try:
                period = retention.retention_period()
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        if period is None:
            if options["verbosity"] >= 1:
                self.stdout.write(
                    "PERSISTENCE_SYNC['TOMBSTONE_RETENTION'] is None (keep for ever): nothing pruned. "
                    "Set it or pass --older-than."
                )
            return
        labels = [self.check_label(label) for label in options["labels"]] or None
        report = retention.prune_tombstones(
            period, labels=labels, using=options["database"], dry_run=options["dry_run"],
        )
        if options["verbosity"] < 1:
            return
        verb = "would remove" if options["dry_run"] else "removed"
        if not report:
            self.stdout.write("No tombstones.")
        for label, result in report.items():
            self.stdout.write(
                f"{label}: {verb} {result.removed} tombstone{'s' if result.removed != 1 else ''} "
                f"older than {describe(period)}; {horizon(result.horizon)}"
            )

    @staticmethod
    def check_label(label: str) -> str:
        from django.apps import apps

        try:
            return apps.get_model(label)._meta.label_lower
        except (LookupError, ValueError):
            raise CommandError(f"Unknown model {label!r}: give app_label.Model.") from None
