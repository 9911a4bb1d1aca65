"""How far a big push and a big pull are from the database's own floor.

Runs on the example site's Task model in a throw-away database and prints,
for N objects, the time of

* a push of N new objects through the view vs. a plain ``bulk_create`` of
  the same rows (the floor: the inserts alone);
* a push updating all N vs. the same plain ``bulk_create`` floor;
* a pull of all N through the view vs. a plain ``values_list`` of the rows.

Only ratios measured in the same run are meaningful; absolute times depend
on the machine. Usage, from the repository root::

    python benchmarks/bulk_sync.py [--objects 100000] [--db sqlite|postgresql|mysql]

The throw-away database is a scratch database of ``tests/integration/live.py``
(on a server: ``<PS_DB_NAME>_bulk_<pid>``, or ``ps_bulk_<pid>``), so the
benchmark needs a repository checkout (the directory above this one is put on
``sys.path``) and, on a server, the right to create a database.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # `python benchmarks/bulk_sync.py` puts only benchmarks/ on the path.
    sys.path.insert(0, str(ROOT))

from tests.integration import live  # noqa: E402


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--db", choices=live.VENDORS, default=os.environ.get("PS_DB", "sqlite"))
    args = parser.parse_args()

    with live.scratch_database(args.db, purpose="bulk") as env:
        live.setup_django(env)
        measure(args.objects)


def measure(n):
    """Time the pushes and the pull of ``n`` Tasks against their floors; print the ratios."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import QuerySet
    from django.test import Client
    from todo.models import Task, demo_owner

    client = Client()
    # The to-do models are per user: push and pull as the demo account.
    client.force_login(get_user_model()._default_manager.get(pk=demo_owner()))
    rows = [{"id": f"{i:032X}", "name": f"task {i}", "done": i % 2 == 0} for i in range(n)]

    floor, _ = timed(lambda: QuerySet(Task).bulk_create(
        [Task(id=r["id"], name=r["name"], done=r["done"]) for r in rows], batch_size=2000))
    QuerySet(Task).all()._raw_delete(connection.alias)

    body = json.dumps(rows)
    push_new, response = timed(lambda: client.post("/taskUpdates", body, "application/json"))
    assert response.status_code == 200, response.content[:300]

    changed = json.dumps([{**r, "done": not r["done"]} for r in rows])
    push_update, response = timed(lambda: client.post("/taskUpdates", changed, "application/json"))
    assert response.status_code == 200, response.content[:300]

    pull_floor, _ = timed(lambda: list(Task.objects.values_list("id", "name", "done", "project",
                                                                 "last_change")))
    pull, response = timed(lambda: client.get("/taskUpdates", {"since": 0}))
    assert len(response.json()["updates"]) == n
    connection.close()  # before the scratch database is dropped

    print(f"{n} objects on {connection.vendor} ({settings.DATABASES['default']['ENGINE']})")
    print(f"  floor: bulk_create {floor:.2f}s, values_list {pull_floor:.2f}s")
    print(f"  push of new objects  {push_new:.2f}s = {push_new / floor:.1f} x bulk_create")
    print(f"  push updating them   {push_update:.2f}s = {push_update / floor:.1f} x bulk_create")
    print(f"  pull of all of them  {pull:.2f}s = {pull / pull_floor:.1f} x values_list")

if __name__ == "__main__":
    main()
