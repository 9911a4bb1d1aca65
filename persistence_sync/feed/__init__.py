"""The change feed: a notice to every connected client when a change it may see commits.

``GET <sync root>/events`` (served by the router next to the endpoints) is
``text/event-stream``: for each committed change that the signed-in user may
see, an event named ``change`` whose ``id`` is the feed's position (the
``now`` a pull of every model would answer) and whose data names what
changed, in each client's terms::

    event: change
    id: 1714000000123
    data: {"endpoints": ["taskUpdates"], "tables": ["tasks"]}

The client then pulls through its usual endpoints; notices carry no object
data. ``GET events?since=<position>&wait=<seconds>`` is the long-poll form,
for WSGI-only deployments. docs/events.md is the user's guide; the parts:

* :mod:`~persistence_sync.feed.announce`: what a write sends (PostgreSQL NOTIFY, or a
  Redis message after commit);
* :mod:`~persistence_sync.feed.changes`: who a window of a model's stamps concerns;
* :mod:`~persistence_sync.feed.hub`: the process's subscribers, its
  snapshots of the clocks and the fan-out (and why no notice is missed);
* :mod:`~persistence_sync.feed.watch`: the thread that reads the clocks
  (polling, LISTEN on PostgreSQL, or a Redis subscription);
* :mod:`~persistence_sync.feed.subscriptions`: what a connection may read
  (the endpoints' scoping), and what it missed while away;
* :mod:`~persistence_sync.feed.views`: the ``events`` endpoint (SSE and
  long-poll), served by WSGI or ASGI;
* :mod:`~persistence_sync.feed.asgi` (and its :mod:`~persistence_sync.feed.handler`):
  the ASGI application that holds thousands of idle connections per process.

This package root imports nothing: the clock imports
:mod:`~persistence_sync.feed.announce` from below every other floor.
"""
