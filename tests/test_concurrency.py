"""The `now` rule under concurrency, on the suite's database, with threads.

Writer threads push batches over the view and save through the ORM while
reader threads follow the since/now chain, as clients do. Every
acknowledged write must be in the answer of the pull whose window
(since, now] holds its stamp, and so reach every reader; no two pushes may
share a stamp. (tests/integration has the same proof with many server
processes over real HTTP.)

Those runs depend on timing; the tests below do not: they make the one
interleaving that matters happen (another connection committing right after
a pull read the clock, a second writer meeting a clock row being created)
and run on every database in the default run.
"""

import itertools
import json
import threading
import time
from contextlib import contextmanager
from unittest import mock

import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from todo.models import Task

from persistence_sync import clock, pushes
from persistence_sync.clock import Clock
from persistence_sync.models import PushReceipt
from tests.conftest import DemoClient, answer_bytes

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
            # A reader that fell behind gets a large answer, and large answers stream.
            body = answer_bytes(response)
            if response.status_code != 200:
                raise AssertionError(f"pull failed: {response.status_code} {body}")
            answer = json.loads(body)
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


def test_a_pull_reads_the_clock_and_the_rows_in_one_snapshot(sync, monkeypatch):
    """Another connection re-stamps a row and deletes one right after the pull read `now`.

    The pull must answer the row as it was when the clock was read: its new
    stamp is above `now`, so reading it in a later snapshot would drop it
    from this answer and, its old stamp being below `now`, from the next
    one's window too. On PostgreSQL the pull's REPEATABLE READ transaction
    fixes the snapshot at its first query, the clock read; on MariaDB
    (InnoDB's consistent read) likewise. On SQLite (rollback journal) the
    pull's transaction holds a shared lock from the clock read on, so the
    other connection's commit waits until the pull is done (in WAL mode it
    would commit and the pull's read snapshot, fixed by the clock read,
    would still not see it); the same assertions hold.
    """
    # Ids in pull order (ascending id), whatever the stamps.
    gone, kept = Task.objects.create(id="C3", name="gone"), Task.objects.create(id="A1", name="kept")
    gone.delete()
    since = sync.pull("taskUpdates")["now"]  # == the tombstone's stamp: not pulled again
    Task.objects.filter(pk=kept.pk).update(name="in the snapshot")
    stamp = Task.objects.get(pk=kept.pk).last_change
    other = Task.objects.create(id="B2", name="other")  # stamped before the pull: in the window
    other_stamp = other.last_change

    def write_from_another_connection():
        try:
            Task.objects.filter(pk=kept.pk).update(name="after the snapshot")
            Task.objects.filter(pk=other.pk).delete()
        finally:
            connections.close_all()

    real_committed_now = clock.committed_now_and_horizon
    writer = []

    def committed_now_then_write(model, using):
        value = real_committed_now(model, using)
        thread = threading.Thread(target=write_from_another_connection)
        thread.start()
        # Server databases let the writer commit now; SQLite makes it wait for the pull.
        thread.join(timeout=0.3 if connection.vendor == "sqlite" else 10)
        writer.append((thread, not thread.is_alive()))
        return value

    monkeypatch.setattr(clock, "committed_now_and_horizon", committed_now_then_write)
    answer = sync.pull("taskUpdates", since=since)
    monkeypatch.undo()
    [(thread, committed_during_pull)] = writer
    thread.join(timeout=30)
    assert not thread.is_alive()
    # Else this test would prove nothing on a server database.
    assert committed_during_pull or connection.vendor == "sqlite"
    assert answer == {"now": other_stamp, "updates": [
        {"id": kept.pk, "name": "in the snapshot", "done": False, "project": None,
         "due": None, "priority": 0, "estimate": None, "notes": None, "_lastChange": stamp},
        {"id": other.pk, "name": "other", "done": False, "project": None,
         "due": None, "priority": 0, "estimate": None, "notes": None, "_lastChange": other_stamp},
    ]}
    # Nothing is lost: the next pull carries what the other connection committed.
    later = sync.pull("taskUpdates", since=answer["now"])["updates"]
    assert [(u["id"], u.get("name"), u.get("_removed")) for u in later] == [
        (kept.pk, "after the snapshot", None), (other.pk, None, True)]


def test_the_first_writes_of_a_model_get_distinct_stamps(tick_by):
    """Two writers meet a model's clock row missing: the second waits for the first's row.

    The second must still advance the counter once the first commits, or
    both writes share a stamp (a client that pulled between them would miss
    the second). SQLite runs the writers one after the other anyway.
    """
    Clock.objects.filter(model="todo.task").delete()
    first_ticked, stamps, errors = threading.Event(), {}, []

    def write(name, hold):
        try:
            if name == "second":
                first_ticked.wait(10)
            with transaction.atomic():
                stamps[name] = clock.tick(Task, "default")
                if hold:
                    first_ticked.set()
                    time.sleep(0.3)  # the second writer now waits for this row
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=("first", True)),
               threading.Thread(target=write, args=("second", False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert stamps["second"] > stamps["first"]
    assert Clock.objects.get(model="todo.task").value == stamps["second"]


# --- the clock is held only for the writes (issue 10) -------------------------

@contextmanager
def blocked_while_preparing(first_id):
    """Make the push holding ``first_id`` wait inside its preparation (before the clock).

    Yields ``(entered, release)``: set when the push is blocked; set it free.
    Only its first preparation blocks.
    """
    entered, release = threading.Event(), threading.Event()
    real = pushes._check_relations

    def check_relations(registration, changes, *args):
        if first_id in changes and not entered.is_set():
            entered.set()
            assert release.wait(60), "the test never released the push"
        return real(registration, changes, *args)

    with mock.patch.object(pushes, "_check_relations", check_relations):
        yield entered, release


def push_in_thread(items, results, headers=None):
    def run():
        try:
            results["response"] = DemoClient().post(
                "/taskUpdates", json.dumps(items), content_type="application/json",
                headers=headers)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_push_being_validated_stalls_no_other_writer():
    """Another writer of the model commits while a large push is still being checked.

    Deterministic: the large push is held inside its validation until the
    other writers are done. Were it holding the model's clock, they could not
    commit and would give up after LOCK_TIMEOUT with 503.
    """
    big, results = [{"id": f"BIG{i}", "name": "big"} for i in range(3000)], {}
    with blocked_while_preparing("BIG0") as (entered, release):
        thread = push_in_thread(big, results)
        try:
            assert entered.wait(30)
            small = DemoClient().post("/taskUpdates", json.dumps([{"id": "SMALL", "name": "s"}]),
                                  content_type="application/json")
            saved = Task(id="SAVED", name="saved")
            saved.save()
        finally:
            release.set()
            thread.join(120)
    assert small.status_code == 200, small.content
    assert results["response"].status_code == 200, results["response"].content
    assert results["response"].json()["now"] > saved.last_change > small.json()["now"]
    assert Task.objects.filter(id__startswith="BIG").count() == 3000


def test_a_row_changed_while_a_push_is_prepared_is_not_reverted():
    """The push read the row before another writer changed it: it is prepared again."""
    Task.objects.create(id="T", name="old", done=False)
    results = {}
    with blocked_while_preparing("T") as (entered, release):
        thread = push_in_thread([{"id": "T", "name": "new"}], results)
        try:
            assert entered.wait(30)
            Task.objects.filter(id="T").update(done=True)  # a field the push does not send
        finally:
            release.set()
            thread.join(60)
    assert results["response"].status_code == 200, results["response"].content
    assert Task.objects.values_list("name", "done").get(id="T") == ("new", True)


@override_settings(PERSISTENCE_SYNC={"LOCK_TIMEOUT": 1})
def test_a_writer_stuck_behind_the_clock_gives_up_with_503():
    holding, release = threading.Event(), threading.Event()

    def hold_the_clock():
        try:
            with transaction.atomic():
                clock.tick(Task, "default")
                holding.set()
                release.wait(60)
        finally:
            connections.close_all()

    client = DemoClient()
    client.get("/taskUpdates")  # signs in now: SQLite could not write the session later
    holder = threading.Thread(target=hold_the_clock)
    holder.start()
    try:
        assert holding.wait(30)
        started = time.monotonic()
        response = client.post("/taskUpdates", json.dumps([{"id": "LATE", "name": "late"}]),
                               content_type="application/json")
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(60)
    assert response.status_code == 503, response.content
    assert response.json() == {"status": "error", "error": (
        "The model is busy with another push; nothing was stored, retry later.")}
    assert response["Retry-After"] == "1"
    assert waited < 10  # LOCK_TIMEOUT, not the default 30 s SQLite timeout or retries
    assert not Task.objects.filter(id="LATE").exists()


def test_a_push_of_the_stored_value_wins_over_a_change_made_while_it_was_prepared():
    """The push read "old", found nothing to change, but another writer changed it meanwhile."""
    Task.objects.create(id="T", name="old")
    results = {}
    with blocked_while_preparing("T") as (entered, release):
        thread = push_in_thread([{"id": "T", "name": "old"}], results)
        try:
            assert entered.wait(30)
            Task.objects.filter(id="T").update(name="changed meanwhile")
        finally:
            release.set()
            thread.join(60)
    assert results["response"].status_code == 200, results["response"].content
    task = Task.objects.get(id="T")
    assert (task.name, task.last_change) == ("old", results["response"].json()["now"])


def test_two_copies_of_one_push_racing_are_stored_once_with_one_answer():
    """A client resent a push (same X-Sync-Push-Id) while the first copy was being prepared.

    The second copy is stored first; the first, once it holds the clock, finds
    the receipt and answers the same stamp instead of storing the push again.
    """
    items, headers, results = [{"id": "R", "name": "r"}], {"X-Sync-Push-Id": "race-1"}, {}
    with blocked_while_preparing("R") as (entered, release):
        thread = push_in_thread(items, results, headers)
        try:
            assert entered.wait(30)
            second = DemoClient().post("/taskUpdates", json.dumps(items),
                                       content_type="application/json", headers=headers)
        finally:
            release.set()
            thread.join(60)
    assert second.status_code == 200, second.content
    assert results["response"].status_code == 200, results["response"].content
    assert results["response"].json() == second.json()
    assert PushReceipt.objects.get(push_id="race-1").stamp == second.json()["now"]
    assert Task.objects.get(id="R").last_change == second.json()["now"]


def test_a_repeated_push_id_outside_a_transaction_gets_the_first_answer():
    """As under a real server: the push is prepared before the clock, its receipt kept."""
    client, headers = DemoClient(), {"X-Sync-Push-Id": "again-1"}
    items = json.dumps([{"id": "A", "name": "a"}])
    first = client.post("/taskUpdates", items, content_type="application/json", headers=headers)
    Task.objects.filter(id="A").update(name="changed since")
    again = client.post("/taskUpdates", items, content_type="application/json", headers=headers)
    assert first.status_code == again.status_code == 200, again.content
    assert again.json() == first.json()
    assert Task.objects.get(id="A").name == "changed since"


# --- a slow reader costs only its own request (issue 23) -----------------------------


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "sqlite-default-journal"])
def test_a_pull_read_slowly_does_not_hold_up_pushes(wal):
    """A client reading a large pull slowly keeps the pull's read transaction open.

    In SQLite's default journal mode that blocks every writer of the file (the
    case this app's SQLITE_WAL=True, the default, puts away); in WAL mode, and
    on the server databases, writers go on. The pull still answers its own
    snapshot: what was pushed meanwhile comes with the next pull.
    """
    if connection.vendor != "sqlite" and not wal:
        pytest.skip("SQLite's journal modes")
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA journal_mode = {'WAL' if wal else 'DELETE'}")
    try:
        reader = DemoClient()
        reader.post("/taskUpdates", json.dumps([{"id": f"T{n:05d}", "name": "x"} for n in range(60)]),
                    content_type="application/json")
        with override_settings(PERSISTENCE_SYNC={"BATCH_SIZE": 5}):
            pull = reader.get("/taskUpdates", {"since": 0})
            assert pull.streaming
            chunks = iter(pull.streaming_content)
            head = next(chunks)  # the client reads a little, then stalls
            results = {}
            writer = push_in_thread([{"id": "LATE", "name": "pushed meanwhile"}], results)
            writer.join(timeout=1.5)
            stalled = writer.is_alive()
            body = head + b"".join(chunks)  # the reader goes on: its transaction ends
            writer.join()
        answer = json.loads(body)
        assert "LATE" not in {u["id"] for u in answer["updates"]}  # its own snapshot
        assert stalled is not wal  # in SQLite's default journal the push waited for the reader
        assert results["response"].status_code == 200
    finally:
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode = WAL")


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has one writer at a time: "
                    "the late writer would block the other one")
def test_a_pull_of_several_models_answers_the_oldest_clock_so_no_late_write_is_skipped(
        monkeypatch):
    """One WatermelonDB timestamp for every table: a writer of one model may still hold a
    stamp below another model's newer clock. The answer's timestamp is the smallest clock
    read in the snapshot, so that write comes with the next pull, not never."""
    from todo.models import Project

    device = DemoClient()

    def pull(last_pulled_at):
        response = device.get("/watermelon", {"last_pulled_at": last_pulled_at})
        assert response.status_code == 200, response.content
        body = json.loads(answer_bytes(response))
        return body, {record["id"] for changes in body["changes"].values()
                      for record in changes["created"] + changes["updated"]}

    Project.objects.create(id="P0", name="home")
    Task.objects.create(id="T0", name="first")
    since = pull("null")[0]["timestamp"]
    ticked, release = threading.Event(), threading.Event()

    def late_project():  # a push of projects, stamped but not committed yet
        try:
            with transaction.atomic():
                Project.objects.create(id="LATE", name="late")
                ticked.set()
                release.wait(10)
        finally:
            connections.close_all()

    late = threading.Thread(target=late_project)
    real_catch_up = clock.catch_up

    def catch_up_then_writes(models, using, timeout=None):
        latest = real_catch_up(models, using, timeout=timeout)
        late.start()
        assert ticked.wait(10)
        time.sleep(0.01)  # the task's stamp is then above the late project's
        Task.objects.create(id="NEW", name="committed")
        return latest

    monkeypatch.setattr(clock, "catch_up", catch_up_then_writes)
    try:
        answer, first = pull(since)
    finally:
        release.set()
        late.join()
    monkeypatch.setattr(clock, "catch_up", real_catch_up)
    second = pull(answer["timestamp"])[1]
    assert {"LATE", "NEW"} <= first | second

