"""``syncall`` at scale: paged pulls applied page by page and resumed, pushes split.

Against ``FakeServer`` (tests/fakes.py), which pages like the real
server: every page of one pull reads the window ``(since, now]`` of its first
page, in ascending id order, after the id the client names.
"""

import datetime
import decimal
import io
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import OutputWrapper
from django.test import override_settings
from todo.models import Project, Tag, Task

from persistence_sync.client import sync_all
from persistence_sync.client.results import Progress
from persistence_sync.client.transport import HttpTransport
from persistence_sync.exceptions import TransportError
from persistence_sync.management.commands.syncall import ProgressBars, describe
from persistence_sync.models import OutgoingPush, SyncState, Tombstone
from tests.fakes import PROJECTS, SERVER, TAGS, TASKS, FakeServer, run
from tests.testapp.models import Gadget, Node

pytestmark = pytest.mark.django_db(transaction=True)

N, PAGE = 2500, 300


@pytest.fixture
def server():
    return FakeServer()


def paging(page=PAGE, push=5000):
    return override_settings(PERSISTENCE_SYNC={"PULL_PAGE_SIZE": page, "PUSH_BATCH_SIZE": push})


def run_failing(server, models=("todo.tag",)):
    results = sync_all(server_url=SERVER, models=list(models), transport=server)
    return {result.model: result for result in results}


def fill_tags(server, n=N):
    for index in range(n):
        server.put(TAGS, f"tag{index:05d}", name=f"tag {index}")


def local_tags():
    return dict(Tag.objects.values_list("pk", "name"))


def remote_tags(server):
    return {pk: item["name"] for pk, item in server.objects.get(TAGS, {}).items()}


def test_a_first_sync_in_pages_brings_everything_once(server):
    fill_tags(server)
    with paging():
        result = run(server, models=["todo.tag"])["todo.tag"]
    assert (result.received, result.created, result.pushed) == (N, N, 0)
    assert local_tags() == remote_tags(server)
    tag_pages = [page for page in server.pages if page[0] == TAGS]
    assert len(tag_pages) == -(-N // PAGE)
    first_now = tag_pages[0][2]
    assert first_now is None and {page[2] for page in tag_pages[1:]} == {server.stamp}
    assert [page[3] for page in tag_pages[1:]] == [
        f"tag{index - 1:05d}" for index in range(PAGE, N, PAGE)]
    state = SyncState.objects.get(model="todo.tag")
    assert (state.server_date, state.page_now, state.page_after) == (server.stamp, 0, "")
    with paging():
        again = run(server, models=["todo.tag"])["todo.tag"]
    assert (again.received, again.pulled, again.pushed) == (0, 0, 0) and server.pushes == []


def test_parents_and_children_are_paged_together(server):
    for index in range(40):
        server.put(PROJECTS, f"P{index:03d}", name=f"project {index}")
    for index in range(700):
        server.put(TASKS, f"T{index:04d}", name=f"task {index}", done=False,
                   project=f"P{index % 40:03d}")
    with paging(page=64):
        results = run(server)
    assert results["todo.task"].created == 700 and results["todo.project"].created == 40
    assert Task.objects.filter(project__isnull=False).count() == 700
    with paging(page=64):
        assert all(r.pulled == r.pushed == 0 for r in run(server).values())


def test_a_classic_server_ignoring_limit_answers_everything_at_once(server):
    server.paging = False
    fill_tags(server)
    with paging():  # a classic server names no user: the replica's owner is given
        result = run(server, models=["todo.tag"], local_user="demo")["todo.tag"]
    assert result.created == N and local_tags() == remote_tags(server)
    assert server.pages == [] and server.pulls == [(TAGS, 0)]


def test_an_interrupted_first_sync_resumes_after_its_last_page(server):
    fill_tags(server)
    server.fail_after_pages = 4
    with paging():
        failed = run_failing(server)["todo.tag"]
    assert "went away" in failed.error
    assert "wrote 1,200 pulled objects; the next run resumes the pull" in failed.summary()
    assert Tag.objects.count() == 4 * PAGE and failed.created == 4 * PAGE
    state = SyncState.objects.get(model="todo.tag")
    assert state.server_date == 0  # the pull is not complete
    assert (state.page_now, state.page_after) == (server.stamp, f"tag{4 * PAGE - 1:05d}")
    # Meanwhile on the server: an applied tag and a tag still to come change,
    # one is deleted, one is created. All are stamped above the pull's now.
    server.put(TAGS, "tag00001", name="changed early")
    server.put(TAGS, "tag02000", name="changed late")
    server.delete(TAGS, "tag00002")
    server.put(TAGS, "tag99999", name="new")
    server.fail_after_pages = None
    first_page = len(server.pages)
    with paging():
        resumed = run(server, models=["todo.tag"])["todo.tag"]
    assert resumed.resumed and resumed.as_dict()["resumed"] is True
    assert "(resumed an interrupted pull)" in resumed.summary()
    assert server.pages[first_page] == (TAGS, 0, state.page_now, state.page_after)
    # The rest of the window, minus tag02000: re-stamped above now, it is in the next sync.
    assert resumed.received == N - 4 * PAGE - 1
    assert not Tag.objects.filter(pk="tag02000").exists()
    with paging():
        run(server, models=["todo.tag"])  # the changes made meanwhile
    assert local_tags() == remote_tags(server)
    assert Tag.objects.get(pk="tag02000").name == "changed late"
    assert server.pushes == []
    state.refresh_from_db()
    assert (state.page_now, state.page_after) == (0, "")


def test_pages_asked_for_ahead_are_written_in_order_and_a_failure_stops_at_its_page(server):
    """A transport with ``prefetch`` gets the next page's request from a thread
    while the page before is written; what was written and the resume point
    are those of the pages before the failing one, as without it."""
    fill_tags(server)
    server.prefetch = True
    server.fail_after_pages = 4
    threads = []
    pull = server.pull

    def recording_pull(url, since, **page):
        threads.append(threading.current_thread().name)
        return pull(url, since, **page)

    server.pull = recording_pull
    with paging():
        failed = run_failing(server)["todo.tag"]
    assert "went away" in failed.error
    assert all(name.startswith("persistence-sync-pull") for name in threads)
    assert Tag.objects.count() == 4 * PAGE and failed.created == 4 * PAGE
    state = SyncState.objects.get(model="todo.tag")
    assert (state.page_now, state.page_after) == (server.stamp, f"tag{4 * PAGE - 1:05d}")
    server.fail_after_pages = None
    with paging():
        resumed = run(server, models=["todo.tag"])["todo.tag"]
    assert resumed.resumed and resumed.received == N - 4 * PAGE
    assert local_tags() == remote_tags(server)


def test_a_local_write_between_pages_is_kept_and_pushed(server):
    fill_tags(server, 1000)
    real_pull = server.pull

    def pull(url, since, **page):
        if page.get("after") == f"tag{2 * PAGE - 1:05d}":
            Tag.objects.filter(pk="tag00000").update(name="local")  # a page already applied
        return real_pull(url, since, **page)

    server.pull = pull
    with paging():
        result = run(server, models=["todo.tag"])["todo.tag"]
    server.pull = real_pull
    assert result.created == 1000 and result.pushed == 1
    assert server.values(TAGS, "tag00000")["name"] == "local"
    assert local_tags() == remote_tags(server)
    with paging():
        again = run(server, models=["todo.tag"])["todo.tag"]
    assert (again.pulled, again.pushed, again.conflicts) == (0, 0, [])


def test_a_first_sync_with_local_objects_decides_as_always(server):
    fill_tags(server, 700)
    mine = Tag.objects.create(name="mine")
    with paging():
        result = run(server, models=["todo.tag"])["todo.tag"]
    assert result.created == 700 and result.pushed == 1
    assert server.values(TAGS, mine.pk)["name"] == "mine"
    assert local_tags() == remote_tags(server)


def test_a_push_over_the_item_limit_is_split(server):
    run(server, models=["todo.tag"])
    Tag.objects.bulk_create([Tag(name=f"local {index}") for index in range(250)])
    with paging(push=100):
        result = run(server, models=["todo.tag"])["todo.tag"]
    assert result.pushed == 250
    assert [len(items) for _, items in server.pushes] == [100, 100, 50]
    assert len(server.receipts) == 3  # each part an idempotent push of its own
    assert local_tags() == remote_tags(server) and not OutgoingPush.objects.exists()
    with paging(push=100):
        assert run(server, models=["todo.tag"])["todo.tag"].pushed == 0


def too_large_over(server, most):
    real_push = server.push
    refused = []

    def push(url, items, push_id=None, replay=False):
        if len(items) > most:
            refused.append(len(items))
            raise TransportError("HTTP 413 Payload Too Large", status=413)
        return real_push(url, items, push_id=push_id, replay=replay)

    server.push = push
    return refused


def test_a_push_refused_as_too_large_is_halved_until_it_fits(server):
    run(server, models=["todo.tag"])
    Tag.objects.bulk_create([Tag(name=f"local {index}") for index in range(250)])
    refused = too_large_over(server, 60)
    result = run(server, models=["todo.tag"])["todo.tag"]
    assert refused == [250, 125, 62, 63, 125, 62, 63]
    assert result.pushed == 250 and sorted(len(items) for _, items in server.pushes) == [
        31, 31, 31, 31, 31, 31, 32, 32]
    pushed_ids = [item["id"] for _, items in server.pushes for item in items]
    assert len(pushed_ids) == len(set(pushed_ids)) == 250
    assert local_tags() == remote_tags(server) and not OutgoingPush.objects.exists()


def test_one_object_too_large_fails_clearly_and_does_not_loop(server):
    run(server, models=["todo.tag"])
    Tag.objects.create(name="huge")
    refused = too_large_over(server, 0)
    result = run_failing(server)["todo.tag"]
    assert refused == [1]
    assert "too large (HTTP 413)" in result.error and "MAX_BODY_SIZE" in result.error
    assert not OutgoingPush.objects.exists() and server.pushes == []


def test_instances_are_built_without_computing_the_id_default(server, monkeypatch):
    calls = []
    monkeypatch.setattr(Project._meta.pk, "_get_default", lambda: calls.append(1) or "unused")
    for index in range(50):
        server.put(PROJECTS, f"P{index}", name="p")
    server.put(TASKS, "T", name="t", done=False, project="P1")
    with paging(page=20):
        run(server)
    server.put(PROJECTS, "P2", name="changed")
    Tag.objects.create(name="local")  # not a project: projects still have no local change
    run(server)  # the whole-sync path (one page of a classic server)
    assert Project.objects.count() == 50 and Project.objects.get(pk="P2").name == "changed"
    assert calls == []


# --- the progress display ------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self):
        return True


def syncall(server, monkeypatch, *args, stderr=None):
    monkeypatch.setattr(HttpTransport, "from_settings", classmethod(lambda cls: server))
    out, err = io.StringIO(), stderr if stderr is not None else Terminal()
    with paging(page=100):
        call_command("syncall", "todo.Tag", "--server", SERVER, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def bars_of(progress):
    """The lines a ProgressBars writes, as (text, kept): kept lines end with a newline."""
    lines = []
    real = progress.write
    progress.write = lambda line, transient: (lines.append((line, not transient)),
                                              real(line, transient))
    return lines


def test_a_bar_per_model_counts_items_and_bytes_out_of_the_first_pages_total(
        server, monkeypatch):
    fill_tags(server, 350)
    clock = iter(range(1000))
    progress = ProgressBars(OutputWrapper(Terminal()), clock=lambda: next(clock), interval=0)
    lines = bars_of(progress)
    with paging(page=100):
        sync_all(server_url=SERVER, models=["todo.tag"], transport=server, progress=progress)
    progress.close()
    bars = [line for line, kept in lines if line.startswith("todo.tag pulling")]
    # Every figure out of the window's count, from the first page (the "total" extension).
    assert "350/350 items" in bars[-1] and "100%" in bars[-1] and " kB of ~" in bars[-1]
    assert "items/s" in bars[-1] and "[" + "#" * ProgressBars.width + "]" in bars[-1]
    assert any("ETA" in bar and "/350 items" in bar for bar in bars[:-1])
    assert [line for line, kept in lines if kept] == [bars[-1]]  # the finished bar stays
    out, err = syncall(server, monkeypatch)
    assert err.startswith("todo.tag pulling") and "\033[31" not in err  # no error style
    assert "todo.tag: received 0 (0 differed here)" in out


def test_a_push_bar_counts_the_bytes_it_sent_out_of_the_whole_push(server, monkeypatch):
    run(server, models=["todo.tag"])
    Tag.objects.bulk_create([Tag(name=f"tag {n}") for n in range(250)])
    clock = iter(range(1000))
    progress = ProgressBars(OutputWrapper(Terminal()), clock=lambda: next(clock), interval=0)
    lines = bars_of(progress)
    with override_settings(PERSISTENCE_SYNC={"PUSH_BATCH_SIZE": 100}):
        sync_all(server_url=SERVER, models=["todo.tag"], transport=server, progress=progress)
    pushes = [line for line, _ in lines if line.startswith("todo.tag pushing")]
    assert pushes[0].startswith("todo.tag pushing  [") and "0/250 items" in pushes[0]
    sizes = [line.split("items  ")[1].split("  ")[0] for line in pushes if " B of " in line
             or " kB of " in line]
    # The bytes sent grow part by part, out of the whole push's size.
    assert len(set(sizes)) >= 3 and all(" of " in size for size in sizes)
    assert "250/250 items" in pushes[-1] and sizes[-1].split(" of ")[0] == sizes[-1].split(
        " of ")[1]


def test_the_eta_and_sizes_are_shown_when_the_totals_are_known():
    progress = Progress(stage="pushing", done=2_000, total=10_000, bytes=200_000,
                        bytes_total=1_000_000)
    assert describe(progress, elapsed=4.0) == [
        "2,000/10,000 items", "200.0 kB of 1.0 MB", "500 items/s", "ETA 0:16"]
    progress = Progress(stage="pulling", done=12_000, bytes=3_456_789)
    assert describe(progress, elapsed=2.0) == ["12,000 items", "3.5 MB", "6,000 items/s"]
    progress = Progress(stage="pulling", done=1_000, total=4_000, bytes=1_000_000)
    assert describe(progress, elapsed=1.0) == [
        "1,000/4,000 items", "1.0 MB of ~4.0 MB", "1,000 items/s", "ETA 0:03"]


def test_off_a_terminal_a_plain_line_per_model_and_stage(server, monkeypatch):
    fill_tags(server, 250)
    out, err = syncall(server, monkeypatch, stderr=io.StringIO())
    [line] = err.splitlines()
    assert line.startswith("todo.tag: pulled 250 items, ") and " kB in " in line
    assert "\r" not in err and "\033" not in err


@pytest.mark.parametrize("args", [("--json",), ("-v", "0")])
def test_no_progress_with_json_or_quiet(server, monkeypatch, args):
    fill_tags(server, 250)
    out, err = syncall(server, monkeypatch, *args, stderr=Terminal())
    assert err == "" and Tag.objects.count() == 250


def test_a_page_inserted_at_once_keeps_every_type_and_the_defaults_of_unsynced_fields(server):
    gadgets = SERVER + "gadgets"
    server.put(gadgets, "G1", name="g", count=3, price=9.5, ratio=0.25, active=False,
               due=1705314600, day=1705276800, data={"a": [1, None]})
    server.put(gadgets, "G2", name="nulls", count=0, price=0, ratio=None, active=True,
               due=None, day=None, data=None)
    nodes = SERVER + "nodes"
    for index in range(30):  # children before and after their parent, across pages
        server.put(nodes, f"N{index:02d}", label=f"n{index}",
                   parent=None if index == 15 else "N15")
    with paging(page=7):
        results = run(server, models=["testapp.gadget", "testapp.node"])
    assert results["testapp.gadget"].created == 2 and results["testapp.node"].created == 30
    g1, g2 = Gadget.objects.order_by("pk")
    assert (g1.count, g1.price, g1.ratio, g1.active, g1.data) == (
        3, decimal.Decimal("9.50"), 0.25, False, {"a": [1, None]})
    assert g1.due == datetime.datetime(2024, 1, 15, 10, 30, tzinfo=datetime.timezone.utc)
    assert g1.day == datetime.date(2024, 1, 15)
    assert (g2.ratio, g2.due, g2.day, g2.data) == (None, None, None, None)
    assert g1.secret == g2.secret == "hidden"  # not synced: its default
    assert Node.objects.filter(parent_id="N15").count() == 29
    with paging(page=7):
        again = run(server, models=["testapp.gadget", "testapp.node"])
    assert all((r.pulled, r.pushed) == (0, 0) for r in again.values())


def test_callable_defaults_of_unsynced_fields_are_called_per_object_as_django_does(
        server, monkeypatch, fresh_registry):
    from django.contrib.auth import get_user_model

    # Task without owner=: its owner is then an unsynced field with a default
    # (with owner=, syncall sets it to the local user, see test_owners.py).
    fresh_registry.unregister(Task)
    fresh_registry.register(Task, uri="taskUpdates",
                            fields=["name", "done", "project", "due", "priority", "estimate",
                                    "notes"])

    secrets = iter(range(100))
    monkeypatch.setattr(Gadget._meta.get_field("secret"), "default",
                        lambda: f"secret {next(secrets)}")
    for index in range(3):
        server.put(SERVER + "gadgets", f"G{index}", name="g", count=1, price=1, ratio=None,
                   active=True, due=None, day=None, data=None)
    # A foreign key's default may be an instance: the row gets its key.
    owner = get_user_model().objects.create(username="default owner")
    monkeypatch.setattr(Task._meta.get_field("owner"), "default", lambda: owner)
    server.put(TASKS, "T1", name="t", done=False, project=None)
    with paging(page=2):
        results = run(server, models=["testapp.gadget", "todo.task"])
    assert results["testapp.gadget"].created == 3 and results["todo.task"].created == 1
    assert sorted(Gadget.objects.values_list("secret", flat=True)) == [
        "secret 0", "secret 1", "secret 2"]
    assert Task.objects.get(pk="T1").owner_id == owner.pk


def test_a_model_with_database_defaults_is_inserted_through_djangos_insert(server, monkeypatch):
    from django.db.models import Value

    monkeypatch.setattr(Gadget._meta.get_field("secret"), "db_default", Value("hidden"),
                        raising=False)
    server.put(SERVER + "gadgets", "G1", name="g", count=1, price=1, ratio=None, active=True,
               due=None, day=None, data=None)
    with paging():
        result = run(server, models=["testapp.gadget"])["testapp.gadget"]
    assert result.created == 1 and Gadget.objects.get().secret == "hidden"


def test_an_id_deleted_here_and_created_again_remotely_loses_its_tombstone(server):
    tag = Tag.objects.create(name="short-lived")
    pk = tag.pk
    run(server, models=["todo.tag"])
    tag.delete()
    run(server, models=["todo.tag"])  # the deletion is pushed; its tombstone stays here
    assert Tombstone.objects.filter(object_id=pk).exists()
    server.put(TAGS, pk, name="back")
    fill_tags(server, 20)
    with paging(page=7):
        result = run(server, models=["todo.tag"])["todo.tag"]
    assert result.created == 21 and Tag.objects.get(pk=pk).name == "back"
    assert not Tombstone.objects.filter(object_id=pk).exists()  # not served as deleted
    assert SyncState.objects.get(model="todo.tag").page_now == 0


@pytest.mark.parametrize("page", [1, 5000])  # inserted at once, or decided with a local change
def test_a_null_pulled_for_a_field_with_a_default_takes_the_default(server, page):
    server.put(SERVER + "gadgets", "G1", name="g", count=None, price=None, ratio=None,
               active=None, due=None, day=None, data=None)
    if page == 5000:
        Gadget.objects.create(id="LOCAL", name="here")
    with paging(page=page):
        result = run(server, models=["testapp.gadget"])["testapp.gadget"]
    assert result.created == 1
    gadget = Gadget.objects.get(pk="G1")
    assert (gadget.count, gadget.price, gadget.active) == (0, 0, True)


def test_a_resumed_pull_with_a_local_change_meanwhile_is_decided_as_a_whole(server):
    fill_tags(server, 1000)
    server.fail_after_pages = 2
    with paging():
        run_failing(server)
    state = SyncState.objects.get(model="todo.tag")
    Tag.objects.filter(pk="tag00000").update(name="edited here")  # a page already written
    server.put(TAGS, "tag00900", name="edited there")  # above the pull's now: next sync
    server.fail_after_pages = None
    first_page = len(server.pages)
    with paging():
        resumed = run(server, models=["todo.tag"])["todo.tag"]
    assert server.pages[first_page] == (TAGS, 0, state.page_now, state.page_after)
    # tag00900, re-stamped above the pull's now, comes with the next sync.
    assert resumed.resumed and resumed.created == 1000 - 2 * PAGE - 1 and resumed.pushed == 1
    with paging():
        run(server, models=["todo.tag"])
    assert local_tags() == remote_tags(server)
    assert local_tags()["tag00000"] == "edited here" and local_tags()["tag00900"] == "edited there"


@pytest.mark.parametrize("field, value, problem", [
    ("name", "x" * 201, "at most 200 characters"),
    ("name", "bad \ud800", "lone surrogate"),
    ("name", 7, "expected a string"),
    ("done", 2, "expected true or false"),
    ("priority", 2**40, "out of range"),
    ("priority", 1.5, "expected an integer"),
])
def test_a_bad_pulled_value_among_good_ones_fails_the_sync_naming_it(server, field, value,
                                                                    problem):
    """Pulled values are checked a column at a time; one bad value among many
    is still found, named with its object, and nothing of the page is written."""
    # Every property in every item, as the server sends them: a page is then
    # checked a column at a time.
    every = dict(project=None, due=None, estimate=None, notes=None)
    for index in range(50):
        server.put(TASKS, f"T{index:03d}", name=f"task {index}", done=False, priority=index,
                   **every)
    server.put(TASKS, "T025", **{field: value})
    with paging(page=100):
        failed = run_failing(server, models=["todo.task"])["todo.task"]
    assert f"pulled object 'T025' has a bad '{field}'" in failed.error
    assert problem in failed.error
    assert not Task.objects.exists()


def test_pulled_values_that_need_converting_or_checking_one_by_one_are_kept(server):
    """Values outside the column checks' fast path (non-ASCII text, nulls,
    0/1 for a boolean, 3.0 for an integer) come through as before."""
    every = dict(project=None, due=None, notes=None)
    server.put(TASKS, "T1", name="naïve ☃", done=1, priority=3.0, estimate=None, **every)
    server.put(TASKS, "T2", name="plain", done=False, priority=-2, estimate=1.5, **every)
    with paging(page=100):
        run(server, models=["todo.task"])
    assert sorted(Task.objects.values_list("id", "name", "done", "priority", "estimate")) == [
        ("T1", "naïve ☃", True, 3, None), ("T2", "plain", False, -2, 1.5)]
