"""The demo account may use the admin for its own to-do data (todo/admin.py).

Staff without any model permission: the to-do admin shows a staff user their
own projects, tasks and tags only, and nothing else of the admin. The example
site only: never deploy an account with a known password.
"""

from django.conf import settings
from django.db import migrations

import todo.models


def demo_is_staff(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    User._default_manager.filter(username=todo.models.DEMO_USERNAME).update(is_staff=True)


def demo_is_not_staff(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    User._default_manager.filter(username=todo.models.DEMO_USERNAME).update(is_staff=False)


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("todo", "0005_owner_stamp_indexes"),
    ]

    operations = [migrations.RunPython(demo_is_staff, demo_is_not_staff)]
