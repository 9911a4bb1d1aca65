from django.apps import AppConfig


class TodoConfig(AppConfig):
    name = "todo"
    default_auto_field = "django.db.models.BigAutoField"
