"""The to-do models in the admin: each user manages their own, a superuser everyone's.

The demo account is staff (migration todo.0006) so that the to-do page's
"edit them in the admin" works for it: it sees, adds, changes and deletes
its own projects, tasks and tags only, picks among its own projects and
tags, and never sees an owner or another user's name. A change made here is
stamped like any other write, so the page's next sync brings it.
"""

from django.contrib import admin

from persistence_sync.admin import SyncableAdminMixin
from todo.models import Project, Tag, Task


def sees_everyone(request):
    return request.user.is_superuser


class OwnedAdminMixin:
    """A staff user's own objects only; a superuser's admin is Django's as usual."""

    def get_queryset(self, request):
        objects = super().get_queryset(request)
        return objects if sees_everyone(request) else objects.filter(owner=request.user)

    def owns(self, request, obj):
        return obj is None or sees_everyone(request) or obj.owner_id == request.user.pk

    def allowed(self, request, obj, permission):
        """Django's ``permission`` for a superuser; a staff user's own objects for the others."""
        if sees_everyone(request):
            return permission(request, obj)
        return request.user.is_active and request.user.is_staff and self.owns(request, obj)

    def has_module_permission(self, request):
        return sees_everyone(request) or (request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request, obj=None):
        return self.allowed(request, obj, super().has_view_permission)

    def has_add_permission(self, request, *obj):  # an inline's gets the parent object
        if sees_everyone(request):
            return super().has_add_permission(request, *obj)
        return self.allowed(request, obj[0] if obj else None, None)

    def has_change_permission(self, request, obj=None):
        return self.allowed(request, obj, super().has_change_permission)

    def has_delete_permission(self, request, obj=None):
        return self.allowed(request, obj, super().has_delete_permission)

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        return exclude if sees_everyone(request) else [*exclude, "owner"]

    def get_list_display(self, request):
        columns = super().get_list_display(request)
        return columns if sees_everyone(request) else [c for c in columns if c != "owner"]

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        return filters if sees_everyone(request) else [f for f in filters if f != "owner"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "project" and not sees_everyone(request):
            kwargs["queryset"] = Project.objects.filter(owner=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "tags" and not sees_everyone(request):
            kwargs["queryset"] = Tag.objects.filter(owner=request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change and not sees_everyone(request):
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        for obj in formset.save(commit=False):
            if obj._state.adding and not sees_everyone(request):
                obj.owner = request.user
            obj.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()


class TaskInline(OwnedAdminMixin, admin.TabularInline):
    model = Task
    fields = ["name", "done"]
    extra = 0


@admin.register(Project)
class ProjectAdmin(OwnedAdminMixin, SyncableAdminMixin, admin.ModelAdmin):
    list_display = ["name", "owner", "id"]
    inlines = [TaskInline]


@admin.register(Task)
class TaskAdmin(OwnedAdminMixin, SyncableAdminMixin, admin.ModelAdmin):
    list_display = ["name", "owner", "done", "project"]
    list_filter = ["owner", "done", "project"]
    filter_horizontal = ["tags"]

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        # The project filter lists every project: a staff user's own only.
        return filters if sees_everyone(request) else [f for f in filters if f != "project"]


@admin.register(Tag)
class TagAdmin(OwnedAdminMixin, SyncableAdminMixin, admin.ModelAdmin):
    list_display = ["name", "owner", "id"]
