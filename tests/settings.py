"""Test settings: the example site plus a test app with every synced field type."""

from testproject.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405

# Fast password hashing for tests that log users in.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
