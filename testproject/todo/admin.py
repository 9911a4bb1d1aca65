from django.contrib import admin

from persistence_sync.admin import SyncableAdminMixin
from todo.models import Project, Tag, Task


class TaskInline(admin.TabularInline):
    model = Task
    fields = ["name", "done"]
    extra = 0


@admin.register(Project)
class ProjectAdmin(SyncableAdminMixin, admin.ModelAdmin):
    list_display = ["name", "owner", "id"]
    inlines = [TaskInline]


@admin.register(Task)
class TaskAdmin(SyncableAdminMixin, admin.ModelAdmin):
    list_display = ["name", "owner", "done", "project"]
    list_filter = ["owner", "done", "project"]
    filter_horizontal = ["tags"]


@admin.register(Tag)
class TagAdmin(SyncableAdminMixin, admin.ModelAdmin):
    list_display = ["name", "owner", "id"]
