"""Test settings: the example site plus a test app with every synced field type."""

from testproject.settings import *  # noqa: F403

from tests import databases

# Without the chosen server's driver, Django could not even start; the suite
# then skips with a hint instead (see tests/databases.py).
DATABASES = databases.without_missing_driver(DATABASES)  # noqa: F405

# docsapp: the app whose modules the documentation's Python blocks run as.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp", "tests.docsapp"]  # noqa: F405

# Fast password hashing for tests that log users in.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The suite asserts the protocol's own date unit (seconds) and pushes far more
# often than the example site's throttle allows; tests that need either set it.
PERSISTENCE_SYNC = {**PERSISTENCE_SYNC, "THROTTLE_RATES": None,  # noqa: F405
                    "DATES_IN_MILLISECONDS": False}
