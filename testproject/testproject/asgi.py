"""The example site as an ASGI application: every page, the sync endpoints and the change feed.

``./dev demo`` serves it with uvicorn (``uvicorn testproject.asgi:application``),
static files included while ``DEBUG`` is on, as ``runserver`` would.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

from django.conf import settings  # noqa: E402

from persistence_sync.feed.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()

if settings.DEBUG:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)
