"""How far a big push and a big pull are from the database's own floor.

Runs on the example site's Task model in a throw-away database and prints,
for N objects, the time of

* a push of N new objects through the view vs. a plain ``bulk_create`` of
  the same rows (the floor: the inserts alone);
* a push updating all N vs. the same plain ``bulk_create`` floor;
* a pull of all N through the view vs. a plain ``values_list`` of the rows.

Only ratios measured in the same run are meaningful; absolute times depend
on the machine. Usage::

    python benchmarks/bulk_sync.py [--objects 100000] [--db sqlite|postgresql|mysql]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--db", default=os.environ.get("PS_DB", "sqlite"))
    args = parser.parse_args()

    os.environ["PS_DB"] = args.db
    if args.db == "sqlite":
        os.environ.setdefault("PS_DB_NAME", str(Path(tempfile.mkdtemp()) / "bench.sqlite3"))
    sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.db.models import QuerySet
    from django.test import Client
    from todo.models import Task

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        n = args.objects
        client = Client()
        # The to-do models are per user: push and pull as the demo account.
        from django.contrib.auth import get_user_model
        from todo.models import demo_owner

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

        print(f"{n} objects on {connection.vendor} ({settings.DATABASES['default']['ENGINE']})")
        print(f"  floor: bulk_create {floor:.2f}s, values_list {pull_floor:.2f}s")
        print(f"  push of new objects  {push_new:.2f}s = {push_new / floor:.1f} x bulk_create")
        print(f"  push updating them   {push_update:.2f}s = {push_update / floor:.1f} x bulk_create")
        print(f"  pull of all of them  {pull:.2f}s = {pull / pull_floor:.1f} x values_list")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
