from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TodoConfig(AppConfig):
    name = "todo"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from todo.models import forget_demo_owner

        # A flush (a test's teardown) or a migration may remove the demo user.
        post_migrate.connect(forget_demo_owner, dispatch_uid="todo.forget_demo_owner")
