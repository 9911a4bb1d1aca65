from django.apps import AppConfig
from django.db.models.signals import post_delete, pre_delete


class PersistenceSyncConfig(AppConfig):
    name = "persistence_sync"
    verbose_name = "Persistence sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: the app's models (and the modules that import them)
        # cannot be imported before Django has loaded every app's config.
        from django.apps import apps
        from django.core.checks import Tags, register
        from django.db.backends.signals import connection_created

        from persistence_sync import checks, registry, setting_values
        from persistence_sync.db import use_wal
        from persistence_sync.models import (
            SyncableModel,
            record_deletion,
            relations_reset_on_delete,
            stamp_before_set_on_delete,
        )

        # Under the app's own tag, so that commands can require them
        # (syncall does: it refuses to run with a broken registration).
        register(setting_values.check_settings, checks.TAG)
        register(registry.check_registrations, checks.TAG)
        # Tags.database only: see checks.py (Django 6.1 runs a tagged database
        # check against every database when its other tag is asked for).
        register(checks.check_sqlite_journal, Tags.database)
        register(registry.address_keyed_throttle_problems, checks.TAG, Tags.security, deploy=True)
        connection_created.connect(use_wal, dispatch_uid="persistence_sync:use_wal")

        # Every syncable model, registered or not, so that a model registered
        # later has a complete history.
        for model in apps.get_models():
            uid = f"persistence_sync:{model._meta.label}"
            if issubclass(model, SyncableModel):
                post_delete.connect(record_deletion, sender=model, dispatch_uid=uid)
            if relations_reset_on_delete(model):
                pre_delete.connect(stamp_before_set_on_delete, sender=model, dispatch_uid=uid)
