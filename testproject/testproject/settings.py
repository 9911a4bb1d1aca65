"""Settings of the example site (also used by the test suite).

The database comes from environment variables, SQLite by default:

=====================  ==========================================================
PS_DB                  ``sqlite`` (default), ``postgresql`` or ``mysql``
PS_DB_NAME             database name (SQLite: a file path; default ``db.sqlite3``
                       next to manage.py; servers: ``persistence_sync``)
PS_DB_HOST / PS_DB_PORT  server address (default 127.0.0.1 and the usual port)
PS_DB_USER / PS_DB_PASSWORD  credentials (default ``root`` and empty)
PS_THROTTLE            ``0`` turns the sync endpoints' throttle off (load tests)
=====================  ==========================================================
"""

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-site-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "persistence_sync",
    "todo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "testproject.wsgi.application"


def database_from_environment():
    engine = os.environ.get("PS_DB", "sqlite").lower()
    # Persistent connections: a sync client pulls often and each pull is a few
    # small queries, so opening a connection per request dominated it (3.5x
    # the small-pull rate on PostgreSQL; on SQLite a new connection costs more
    # CPU than a one-object push: docs/deployment.md).
    persistent = {"CONN_MAX_AGE": int(os.environ.get("PS_DB_CONN_MAX_AGE", "60")),
                  "CONN_HEALTH_CHECKS": True}
    if engine == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("PS_DB_NAME", str(BASE_DIR / "db.sqlite3")),
            # Concurrent writers wait for the database lock instead of failing,
            # as long as a push waits (PERSISTENCE_SYNC["LOCK_TIMEOUT"]).
            "OPTIONS": {"timeout": 10},
            **persistent,
            # A file, not memory, so that test threads and server processes
            # share it; one per test process, so parallel runs do not collide.
            "TEST": {"NAME": os.environ.get(
                "PS_DB_TEST_NAME",
                os.path.join(tempfile.gettempdir(), f"persistence_sync_test_{os.getpid()}.sqlite3"),
            )},
        }
    common = {
        **persistent,
        "NAME": os.environ.get("PS_DB_NAME", "persistence_sync"),
        "HOST": os.environ.get("PS_DB_HOST", "127.0.0.1"),
        "USER": os.environ.get("PS_DB_USER", "root"),
        "PASSWORD": os.environ.get("PS_DB_PASSWORD", ""),
    }
    if engine in ("postgresql", "postgres"):
        return {"ENGINE": "django.db.backends.postgresql",
                "PORT": os.environ.get("PS_DB_PORT", "5432"), **common}
    if engine in ("mysql", "mariadb"):
        return {"ENGINE": "django.db.backends.mysql",
                "PORT": os.environ.get("PS_DB_PORT", "3306"),
                "OPTIONS": {"charset": "utf8mb4"},
                "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_bin"},
                **common}
    raise ValueError(f"PS_DB must be sqlite, postgresql or mysql, not {engine!r}")


DATABASES = {"default": database_from_environment()}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    # The to-do page syncs as the logged-in user (session + CSRF); scripts and
    # syncall may use HTTP Basic, or better a token (``manage.py
    # drf_create_token demo``, then PERSISTENCE_SYNC_TOKEN for syncall): Basic
    # checks the password hash on every request, a quarter of a second here,
    # once per page of a large sync. The to-do models are registered with owner=,
    # which refuses anonymous requests whatever the permission classes; the
    # test suite's own models stay open to anonymous requests.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        # DRF's token authentication with its query compiled once (a device signs
        # every poll and push with its token).
        "persistence_sync.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
}

PERSISTENCE_SYNC = {
    # The budgets of one request are the app's defaults (MAX_BODY_SIZE 32 MiB,
    # MAX_ITEMS 100,000, MAX_DEPTH 32, MAX_STRING_LENGTH 1,000,000); the
    # throttle is the one line a production site adds (per user, or per IP
    # when anonymous; the cache must be shared by all workers).
    "THROTTLE_RATES": (
        {"pull": "600/min", "push": "120/min"} if os.environ.get("PS_THROTTLE") != "0" else None
    ),
    # The to-do page's classic client reads dates new to it as milliseconds.
    "DATES_IN_MILLISECONDS": True,
}

# The change feed over Redis pub/sub (docs/deployment.md), when PS_FEED_REDIS_URL
# names the server: every process of the site, writers and feed, must say the same.
if os.environ.get("PS_FEED_REDIS_URL"):
    PERSISTENCE_SYNC.update(FEED_BACKEND="redis", FEED_REDIS_URL=os.environ["PS_FEED_REDIS_URL"])
if os.environ.get("PS_FEED_INTERVAL"):
    PERSISTENCE_SYNC["FEED_INTERVAL"] = float(os.environ["PS_FEED_INTERVAL"])
