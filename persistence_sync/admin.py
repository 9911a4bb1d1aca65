"""The admin: readable ``_lastChange`` for synced models, read-only pages for the app's tables.

For your own synced models, one line gives the admin a "Last change" column
(date and time, with the raw milliseconds) and a read-only field on the
change form::

    from persistence_sync.admin import SyncableAdminMixin

    @admin.register(Task)
    class TaskAdmin(SyncableAdminMixin, admin.ModelAdmin):
        list_display = ["name", "done"]

or, without the mixin, ``list_display = ["name", last_change_display]``.

Registered here, read-only (they are written by the sync machinery only):
tombstones (filter by model and age), the sync client's state per model and
remote (``syncall``: last pull, last push, last success) and the clock per
model (its value and the tombstone horizon of ``prunetombstones``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from persistence_sync.clock import Clock, format_stamp, wall_ms
from persistence_sync.models import SyncState, Tombstone


def stamp_display(field: str, description: str) -> Callable[[Model], str]:
    """A list_display/readonly callable showing ``field`` through :func:`format_stamp`."""

    @admin.display(description=description, ordering=field)
    def display(obj: Model) -> str:
        return format_stamp(getattr(obj, field))

    display.__name__ = f"{field}_display"
    return display


last_change_display = stamp_display("last_change", "last change (_lastChange)")

# The mixin goes before admin.ModelAdmin; type checkers take that as its base to check super().
if TYPE_CHECKING:
    _MixinBase = admin.ModelAdmin
else:
    _MixinBase = object


class SyncableAdminMixin(_MixinBase):
    """ModelAdmin mixin for SyncableModel: ``_lastChange`` readable in the list and the form."""

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        columns = [c for c in super().get_list_display(request) if c != "last_change"]
        return [*columns, last_change_display]

    # django-stubs types readonly fields as names only; Django also takes callables.
    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Sequence[Any]:  # type: ignore[override]
        return [*super().get_readonly_fields(request, obj), last_change_display]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by whoever may view the model; nobody adds, edits or deletes here."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "older_than_days"
    DAYS = (1, 7, 30, 90, 365)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(str(days), f"older than {days} day{'s' if days > 1 else ''}") for days in self.DAYS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value in {str(days) for days in self.DAYS}:
            return queryset.filter(last_change__lt=wall_ms() - int(value) * 86_400_000)
        return queryset


@admin.register(Tombstone)
class TombstoneAdmin(ReadOnlyAdmin):
    list_display = ["object_id", "model", last_change_display]
    list_filter = ["model", AgeFilter]
    search_fields = ["object_id"]
    ordering = ["-last_change"]
    fields = ["model", "object_id", last_change_display]  # type: ignore[list-item]
    readonly_fields = fields  # type: ignore[assignment]  # callables too: see the mixin


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyAdmin):
    """Where ``manage.py syncall`` stands with each remote, per model."""

    last_pull = stamp_display("server_date", "last pull (remote's now)")
    last_push = stamp_display("server_push_date", "last push (remote's now)")
    local_point = stamp_display("local_date", "local changes synced up to")
    list_display = ["model", "remote", "last_success", last_pull, last_push]
    list_filter = ["model", "remote"]
    ordering = ["model", "remote"]
    fields = ["model", "remote", "last_success", last_pull, last_push, "push_stamps", local_point,  # type: ignore[list-item]
              "applied_stamp"]
    readonly_fields = fields  # type: ignore[assignment]  # callables too: see the mixin

    @admin.display(description="last success", ordering="synced_at")
    def last_success(self, obj: SyncState) -> object:
        return obj.synced_at or "never"


@admin.register(Clock)
class ClockAdmin(ReadOnlyAdmin):
    """Each model's server clock and the horizon up to which tombstones were pruned."""

    value_display = stamp_display("value", "clock (latest stamp)")
    horizon_display = stamp_display("tombstones_pruned_to", "tombstones pruned up to")
    list_display = ["model", value_display, horizon_display]
    ordering = ["model"]
    fields = ["model", value_display, horizon_display]  # type: ignore[list-item]
    readonly_fields = fields  # type: ignore[assignment]  # callables too: see the mixin
