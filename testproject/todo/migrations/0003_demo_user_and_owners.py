"""Per-user to-do data: a demo account (demo / demo) and an owner on every object.

Existing projects, tasks and tags go to the demo user, who can sign in at
/accounts/login/ right after ``migrate`` (docs/index.md, "Try the example site").
The example site only: never deploy an account with a known password.
"""

import django.db.models.deletion
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import migrations, models

import todo.models


def create_demo_user(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    if not User._default_manager.filter(username=todo.models.DEMO_USERNAME).exists():
        User._default_manager.create(username=todo.models.DEMO_USERNAME,
                                     password=make_password("demo"))


def owner_field():
    return models.ForeignKey(default=todo.models.demo_owner,
                             on_delete=django.db.models.deletion.CASCADE, related_name="+",
                             to=settings.AUTH_USER_MODEL)


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("todo", "0002_task_due_priority_estimate_notes"),
    ]

    operations = [
        migrations.RunPython(create_demo_user, migrations.RunPython.noop),
        migrations.AddField(model_name="project", name="owner", field=owner_field()),
        migrations.AddField(model_name="tag", name="owner", field=owner_field()),
        migrations.AddField(model_name="task", name="owner", field=owner_field()),
    ]
