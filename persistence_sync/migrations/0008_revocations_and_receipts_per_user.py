"""Revocations become tombstones of a user (pulls page them), push ids become per user.

A user's lost scope value used to keep the ids of its objects in
ScopeGrant.revoked_ids, answered from memory; each is now a Tombstone with
``user`` set. Push receipts are keyed by (endpoint, user, push id): the
existing ones, whose user is unknown, keep an empty user.
"""

from django.db import migrations, models


def revocations_to_tombstones(apps, schema_editor):
    ScopeGrant = apps.get_model("persistence_sync", "ScopeGrant")
    Tombstone = apps.get_model("persistence_sync", "Tombstone")
    db = schema_editor.connection.alias
    for grant in ScopeGrant.objects.using(db).filter(active=False).iterator():
        Tombstone.objects.using(db).bulk_create(
            [Tombstone(model=grant.model, object_id=str(pk), last_change=grant.last_change,
                       scope=grant.value, user=grant.user) for pk in grant.revoked_ids or ()],
            batch_size=1000)


def tombstones_to_revocations(apps, schema_editor):
    ScopeGrant = apps.get_model("persistence_sync", "ScopeGrant")
    Tombstone = apps.get_model("persistence_sync", "Tombstone")
    db = schema_editor.connection.alias
    for grant in ScopeGrant.objects.using(db).filter(active=False).iterator():
        grant.revoked_ids = list(Tombstone.objects.using(db).filter(
            model=grant.model, user=grant.user, scope=grant.value).values_list("object_id", flat=True))
        grant.save(update_fields=["revoked_ids"])
    Tombstone.objects.using(db).filter(user__isnull=False).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("persistence_sync", "0007_syncstate_push_stamps"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="tombstone", name="persistence_sync_tomb_scope_uniq"),
        migrations.AddField(
            model_name="tombstone",
            name="user",
            field=models.CharField(blank=True, help_text="Set on a revocation: the user (primary key) whose devices must drop the object.", max_length=255, null=True),
        ),
        migrations.AddConstraint(
            model_name="tombstone",
            constraint=models.UniqueConstraint(fields=("model", "object_id", "scope", "user"), name="persistence_sync_tomb_uniq"),
        ),
        migrations.AddIndex(
            model_name="tombstone",
            index=models.Index(fields=["model", "user", "last_change"], name="persistence_sync_tomb_user"),
        ),
        migrations.RunPython(revocations_to_tombstones, tombstones_to_revocations),
        migrations.RemoveField(model_name="scopegrant", name="revoked_ids"),
        migrations.RemoveConstraint(model_name="pushreceipt", name="persistence_sync_receipt_uniq"),
        migrations.RenameField(model_name="pushreceipt", old_name="model", new_name="endpoint"),
        migrations.AlterField(
            model_name="pushreceipt",
            name="endpoint",
            field=models.CharField(help_text="The pushed model's label, or the protocol's endpoint (watermelon) for pushes of several models.", max_length=100),
        ),
        migrations.AddField(
            model_name="pushreceipt",
            name="user",
            field=models.CharField(blank=True, default="", help_text="The pushing user's primary key; empty: anonymous.", max_length=255),
        ),
        migrations.AddField(
            model_name="pushreceipt",
            name="written",
            field=models.JSONField(blank=True, help_text="A digest of each value the push wrote, by model and id, for a later push that names this one unanswered.", null=True),
        ),
        migrations.AddConstraint(
            model_name="pushreceipt",
            constraint=models.UniqueConstraint(fields=("endpoint", "user", "push_id"), name="persistence_sync_receipt_uniq"),
        ),
    ]
