"""The ASGI application for the change feed: Django's, holding thousands of idle connections.

In ``asgi.py`` of the project, instead of Django's ``get_asgi_application()``::

    from persistence_sync.feed.asgi import get_asgi_application

    application = get_asgi_application()

and serve it with uvicorn (``uvicorn myproject.asgi:application
--timeout-graceful-shutdown 5``: feed connections never end by themselves,
so a shutdown must not wait for them). Every request goes through Django as
usual; a request for the feed (the ``events`` path of a router) is served
differently, for it stays open for hours:

* its Django part -- middleware, authentication, permissions, the scope
  values -- runs in Django's one thread for synchronous code, without the
  per-request thread (and database connection) that Django's own handler
  keeps for the life of a request: a connection costs no thread;
* the request object is dropped once the connection has joined the feed, and
  nothing else of Django's is kept but the subscriber (a few hundred bytes;
  the request too for ``scope_values=`` registrations, to read them again);
* a client that disconnects ends its connection at once (on every Django
  version: Django 4.2's own handler never notices while a stream is idle);
* a notice or heartbeat that cannot be sent within ``FEED_SEND_TIMEOUT``
  (a client that stopped reading) drops that connection; nothing else waits
  for it, as the fan-out only leaves notices with the connections
  (:mod:`persistence_sync.feed.hub`).

Django's own ASGI handler serves the feed too (an async stream), with a
thread per connection and, on Django 4.2, streams that outlive their clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import django

if TYPE_CHECKING:
    from persistence_sync.feed.handler import FeedASGIHandler


def get_asgi_application() -> FeedASGIHandler:
    """Django's ``get_asgi_application()``, with the feed served as this module says."""
    django.setup(set_prefix=False)
    from persistence_sync.feed.handler import FeedASGIHandler  # needs the apps loaded

    return FeedASGIHandler()
