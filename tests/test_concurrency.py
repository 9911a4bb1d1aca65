"""The `now` rule under concurrency, on the suite's database, with threads.

Writer threads push batches over the view and save through the ORM while
reader threads follow the since/now chain, as clients do. Every
acknowledged write must be in the answer of the pull whose window
(since, now] holds its stamp, and so reach every reader; no two pushes may
share a stamp. (tests/integration has the same proof with many server
processes over real HTTP.)
"""

import itertools
import json
import threading
import time

import pytest
from django.db import connection, connections
from todo.models import Task

from tests.conftest import DemoClient

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS, READERS, SECONDS = 3, 3, 4.0


class Log:
    def __init__(self):
        self.lock = threading.Lock()
        self.writes = []  # (id, stamp) of every acknowledged write
        self.push_stamps = []
        self.errors = []

    def add(self, writes, push_stamp=None):
        with self.lock:
            self.writes.extend(writes)
            if push_stamp is not None:
                self.push_stamps.append(push_stamp)


def writer(number, log, stop):
    client, counter = DemoClient(), itertools.count()
    try:
        while not stop.is_set():
            n = next(counter)
            if n % 2:
                ids = [f"w{number}-{n}-{i}" for i in range(5)]
                response = client.post(
                    "/taskUpdates",
                    json.dumps([{"id": i, "name": "pushed"} for i in ids]),
                    content_type="application/json",
                )
                if response.status_code != 200:
                    raise AssertionError(f"push failed: {response.status_code} {response.content}")
                stamp = response.json()["now"]
                log.add([(i, stamp) for i in ids], stamp)
            else:
                task = Task(id=f"w{number}-{n}", name="saved")
                task.save()
                log.add([(task.pk, task.last_change)])
    except Exception as exc:  # reported by the test
        log.errors.append(repr(exc))
    finally:
        connections.close_all()


def reader(pulls, log, stop):
    client, since = DemoClient(), 0
    try:
        while True:
            finished = stop.is_set()
            response = client.get("/taskUpdates", {"since": since})
            if response.status_code != 200:
                raise AssertionError(f"pull failed: {response.status_code} {response.content}")
            answer = response.json()
            seen = {u["id"]: u["_lastChange"] for u in answer["updates"]}
            pulls.append((since, answer["now"], seen))
            since = answer["now"]
            if finished:
                break  # one last pull after every writer stopped
    except Exception as exc:
        log.errors.append(repr(exc))
    finally:
        connections.close_all()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="threads prove it on SQLite; "
                    "tests/integration proves it with server processes on PostgreSQL and MariaDB")
def test_no_reader_misses_an_acknowledged_write():
    log, writers_done, readers_done = Log(), threading.Event(), threading.Event()
    reader_pulls = [[] for _ in range(READERS)]
    writers = [threading.Thread(target=writer, args=(n, log, writers_done)) for n in range(WRITERS)]
    readers = [threading.Thread(target=reader, args=(p, log, readers_done)) for p in reader_pulls]
    for thread in writers + readers:
        thread.start()
    time.sleep(SECONDS)
    writers_done.set()
    for thread in writers:
        thread.join()
    readers_done.set()
    for thread in readers:
        thread.join()

    assert log.errors == []
    assert len(log.writes) > 50, "the writers barely ran"
    assert len(set(log.push_stamps)) == len(log.push_stamps), "two pushes shared a stamp"
    for pulls in reader_pulls:
        assert len(pulls) > 5, "the reader barely ran"
        missed = []
        for obj_id, stamp in log.writes:
            # The pull whose window holds the stamp must carry the object.
            window = [seen for since, now, seen in pulls if since < stamp <= now]
            if not window or window[0].get(obj_id) != stamp:
                missed.append((obj_id, stamp))
        assert missed == [], f"{len(missed)} of {len(log.writes)} writes missed, e.g. {missed[:5]}"
