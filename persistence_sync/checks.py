"""System checks for what can be caught at start-up.

=========================  ====================================================
persistence_sync.E001      a registered model is not a (concrete) SyncableModel
persistence_sync.E002      two registrations on one URI
persistence_sync.E003      a synced (or excluded) field name does not exist
persistence_sync.E004      a synced field the protocol cannot carry
persistence_sync.E005      a model registered by label is not installed
persistence_sync.W001      a registered model's default manager bypasses the clock
=========================  ====================================================
"""

from django.core import checks

from persistence_sync import registry


@checks.register()
def check_registrations(app_configs=None, **kwargs):
    registry.registrations()  # resolve registrations given by label
    errors = list(registry._failed)
    regs = list(registry._registry.values())
    for index, reg in enumerate(regs):
        # Registrations made by class were checked by register(); check again
        # in case something changed them since (a field removed, say).
        errors += registry.problems(reg.model, reg.uri, reg.fields, others=regs[:index],
                                    owner=reg.owner, scope=reg.scope,
                                    scope_values=reg.scope_values,
                                    read_only_fields=reg.read_only_fields)
        errors += _check_manager(reg.model)
    return errors


def _check_manager(model):
    from persistence_sync.models import SyncableQuerySet

    queryset = model._default_manager.get_queryset()
    if isinstance(queryset, SyncableQuerySet):
        return []
    return [checks.Warning(
        f"{model._meta.label}'s default manager returns a {type(queryset).__name__}, "
        "so QuerySet.update(), bulk_create() and deletes bypass the sync clock.",
        hint="Build the manager on persistence_sync.models.SyncableQuerySet "
        "(e.g. SyncableQuerySet.as_manager()).",
        obj=model, id="persistence_sync.W001",
    )]
