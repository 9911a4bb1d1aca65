from django.contrib import admin

from todo.models import Project, Tag, Task


class TaskInline(admin.TabularInline):
    model = Task
    fields = ["name", "done"]
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "id", "last_change"]
    inlines = [TaskInline]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "done", "project", "last_change"]
    list_filter = ["owner", "done", "project"]
    filter_horizontal = ["tags"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "id", "last_change"]
