"""The real WatermelonDB client (npm, in Node) syncing with a live example site.

Each device is its own in-memory WatermelonDB database; the site runs under
pytest-django's ``live_server`` on the suite's database, so a change made
with the ORM or through persistence.sync's endpoints is seen by both. The
example site's to-do models are per user: devices sign in with HTTP Basic,
as the demo user unless a test says otherwise.

Live sync needs the change feed, which pytest-django's server does not
stream: its test serves the example site with uvicorn on a scratch
database of its own (as ``./dev demo`` does), and writes from other
processes.
"""

import base64
import json
import subprocess
import sys
import time
import urllib.request

import pytest
from django.contrib.auth.models import User
from todo.models import Project, Task

from persistence_sync.models import Tombstone
from tests import databases
from tests.fakes import AnswerDroppingProxy
from tests.integration import browser, feed, live
from tests.integration.watermelon import WatermelonDevice

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def basic(username, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


DEMO = basic("demo", "demo")


@pytest.fixture
def device(live_server):
    browser.demo_user_with_password()
    devices = []

    def new_device(headers=DEMO, url=None):
        devices.append(WatermelonDevice(url or live_server.url + "/watermelon", headers=headers))
        return devices[-1]

    yield new_device
    for each in devices:
        each.close()


def push_classic(live_server, uri, items):
    request = urllib.request.Request(f"{live_server.url}/{uri}", data=json.dumps(items).encode(),
                                     headers={"Content-Type": "application/json", **DEMO})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def pull_classic(live_server, uri):
    request = urllib.request.Request(f"{live_server.url}/{uri}?since=0", headers=DEMO)
    with urllib.request.urlopen(request) as response:
        return {u["id"]: u for u in json.load(response)["updates"]}


def server_tasks():
    return {t.pk: {"name": t.name, "done": t.done, "project_id": t.project_id}
            for t in Task.objects.all()}


def device_tasks(device):
    return {pk: {"name": r["name"], "done": r["done"], "project_id": r["project_id"] or None}
            for pk, r in device.dump()["tasks"].items()}


def test_first_sync_then_changes_both_ways(device):
    home = Project.objects.create(name="Home")
    dishes = Task.objects.create(name="Dishes", project=home)
    phone = device()
    assert phone.sync() == {"ok": True, "pages": 1}
    assert phone.dump()["projects"] == {home.pk: {"id": home.pk, "name": "Home"}}
    assert device_tasks(phone) == server_tasks()

    made = phone.create("tasks", name="Laundry", done=False, project_id=home.pk)
    phone.update("tasks", dishes.pk, done=True)
    assert phone.sync()["ok"]
    assert Task.objects.get(pk=made).project_id == home.pk
    assert Task.objects.get(pk=dishes.pk).done is True

    Task.objects.filter(pk=made).update(name="Laundry, folded")
    Task.objects.get(pk=dishes.pk).delete()
    assert phone.sync()["ok"]
    assert device_tasks(phone) == server_tasks() == {
        made: {"name": "Laundry, folded", "done": False, "project_id": home.pk}}

    phone.delete("tasks", made)
    assert phone.sync()["ok"]
    assert not Task.objects.exists()
    assert Tombstone.objects.filter(model="todo.task", object_id=made).exists()
    assert device_tasks(phone) == {}


def test_a_persistence_sync_change_reaches_watermelondb_and_back(live_server, device):
    phone = device()
    assert phone.sync() == {"ok": True, "pages": 1}
    push_classic(live_server, "taskUpdates", [{"id": "CLASSIC1", "name": "from persistence.js",
                                               "done": False}])
    assert phone.sync()["ok"]
    assert device_tasks(phone)["CLASSIC1"]["name"] == "from persistence.js"
    phone.update("tasks", "CLASSIC1", name="edited on the phone")
    assert phone.sync()["ok"]
    assert pull_classic(live_server, "taskUpdates")["CLASSIC1"]["name"] == "edited on the phone"


def test_two_devices_editing_one_record_keep_both_changes(device):
    task = Task.objects.create(name="Shared", done=False)
    phone, laptop = device(), device()
    assert phone.sync()["ok"] and laptop.sync()["ok"]
    phone.update("tasks", task.pk, name="renamed on the phone")
    laptop.update("tasks", task.pk, done=True)
    assert phone.sync()["ok"]
    # The laptop pulls the phone's change first, keeps its own changed column
    # and pushes it; the server refuses nothing because the pull came first.
    assert laptop.sync()["ok"]
    assert phone.sync()["ok"]
    expected = {task.pk: {"name": "renamed on the phone", "done": True, "project_id": None}}
    assert server_tasks() == device_tasks(phone) == device_tasks(laptop) == expected


def test_a_push_of_a_record_changed_meanwhile_is_refused_and_the_next_sync_merges(
        live_server, device):
    task = Task.objects.create(name="Shared", done=False)
    phone = device()
    assert phone.sync()["ok"]
    phone.update("tasks", task.pk, done=True)
    # A change lands between the phone's pull and its push: WatermelonDB's
    # synchronize() pulls, then pushes; emulate the race with a push that
    # claims the old last_pulled_at.
    timestamp = json.load(urllib.request.urlopen(urllib.request.Request(
        f"{live_server.url}/watermelon?last_pulled_at=null", headers=DEMO)))["timestamp"]
    Task.objects.filter(pk=task.pk).update(name="changed on the server")
    stale = {"tasks": {"created": [], "updated": [{"id": task.pk, "name": "Shared", "done": True,
                                                    "project_id": None}], "deleted": []}}
    request = urllib.request.Request(f"{live_server.url}/watermelon?last_pulled_at={timestamp}",
                                     data=json.dumps(stale).encode(),
                                     headers={"Content-Type": "application/json", **DEMO})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 409
    assert Task.objects.get(pk=task.pk).done is False  # nothing stored
    assert phone.sync()["ok"]
    assert server_tasks() == device_tasks(phone) == {
        task.pk: {"name": "changed on the server", "done": True, "project_id": None}}


def test_a_paged_first_sync_brings_everything_once(device):
    home = Project.objects.create(name="Home")
    Task.objects.bulk_create([Task(id=f"T{n:03d}", name=str(n), project=home) for n in range(25)])
    Task.objects.create(id="GONE", name="x").delete()
    phone = device()
    answer = phone.sync(page_size=7)
    assert answer["ok"] and answer["pages"] == 4
    assert device_tasks(phone) == server_tasks()
    assert len(device_tasks(phone)) == 25


def test_an_object_moved_to_another_user_leaves_the_device_and_reaches_theirs(device):
    bob = User.objects.create_user("bob", password="bob-pw")
    home = Project.objects.create(name="Home")
    dishes = Task.objects.create(name="Dishes", project=home)
    laundry = Task.objects.create(name="Laundry")
    phone, bobs_phone = device(), device(basic("bob", "bob-pw"))
    assert phone.sync()["ok"] and bobs_phone.sync()["ok"]
    assert set(device_tasks(phone)) == {dishes.pk, laundry.pk}
    assert bobs_phone.dump()["tasks"] == bobs_phone.dump()["projects"] == {}

    laundry.owner = bob  # the admin gives the task to bob
    laundry.save()
    assert phone.sync()["ok"] and bobs_phone.sync()["ok"]
    assert set(device_tasks(phone)) == {dishes.pk}  # revoked: gone from the device
    assert device_tasks(bobs_phone) == {
        laundry.pk: {"name": "Laundry", "done": False, "project_id": None}}

    # bob's device edits and creates; the demo device never sees any of it.
    bobs_phone.update("tasks", laundry.pk, done=True)
    made = bobs_phone.create("tasks", name="bob's own", done=False)
    assert bobs_phone.sync()["ok"] and phone.sync()["ok"]
    assert Task.objects.get(pk=made).owner == bob and Task.objects.get(pk=laundry.pk).done
    assert set(device_tasks(phone)) == {dishes.pk}
    assert set(device_tasks(bobs_phone)) == {laundry.pk, made}


def test_a_push_whose_answer_was_lost_never_overwrites_a_later_change(device, live_server):
    """The real client and the docs' pushChanges: a push id, and the unanswered ones named.

    WatermelonDB keeps a change whose push failed and pushes it again after
    its next pull. Had the lost push been stored, that repeat would overwrite
    what another client wrote and was told was stored in between.
    """
    proxy = AnswerDroppingProxy(int(live_server.url.rsplit(":", 1)[1]))
    try:
        phone = device(url=proxy.address + "/watermelon")
        task = Task.objects.create(name="Dishes")
        assert phone.sync()["ok"]
        phone.update("tasks", task.pk, name="Dishes, done")
        proxy.drop_posts = 1
        assert phone.sync()["ok"] is False and proxy.dropped == 1
        assert Task.objects.get(pk=task.pk).name == "Dishes, done"  # stored; the phone cannot know
        later = push_classic(live_server, "taskUpdates", [{"id": task.pk, "name": "Dishes, by Bob"}])
        assert later["status"] == "ok"  # acknowledged after the lost push
        assert phone.sync()["ok"]  # pulls Bob's name, keeps its own change, pushes it again
        assert Task.objects.get(pk=task.pk).name == "Dishes, by Bob"
        assert phone.sync()["ok"]  # and pulls the server's value back: both sides agree
        assert device_tasks(phone)[task.pk]["name"] == "Dishes, by Bob"
    finally:
        proxy.close()


# --- live sync: a device that syncs when the change feed says so -------------------

ORM_RENAME = """
import sys
import django
django.setup()
from todo.models import Task
Task.objects.filter(pk=sys.argv[1]).update(name=sys.argv[2])
"""


@pytest.fixture(scope="module")
def feed_site():
    """The example site under uvicorn (pages, endpoints and the feed) on a scratch database."""
    live.require_uvicorn()
    vendor = databases.vendor()
    if vendor != "sqlite":
        databases.require_server_db(vendor)
    with live.scratch_database(vendor, purpose="watermelon_feed") as env:
        tokens = feed.create_users(env, ["eve"])
        with live.uvicorn(env) as site:
            yield env, site, {"Authorization": f"Token {tokens['eve']}"}


def eventually(check, timeout=10.0):
    """``check()``'s first true value, asked every 50 ms; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            assert found, f"not within {timeout} s"
            return found
        time.sleep(0.05)


def test_a_following_device_gets_other_writers_changes_without_being_asked(feed_site):
    env, site, eve_headers = feed_site
    follower = WatermelonDevice(site.url + "/watermelon", headers=DEMO)
    other = WatermelonDevice(site.url + "/watermelon", headers=DEMO)
    eve = WatermelonDevice(site.url + "/watermelon", headers=eve_headers)
    try:
        for device in (follower, eve):
            device.follow(site.url + "/events")
            # The feed's first answer names every table: one sync, then quiet.
            eventually(lambda device=device: device.following()["syncs"] == 1)

        # Another device's push (through the site) reaches the follower unasked.
        made = other.create("tasks", name="From the other device", done=False)
        assert other.sync()["ok"]
        eventually(lambda: made in follower.dump()["tasks"])

        # So does the ORM in another process (QuerySet.update(): no signal, a clock tick).
        subprocess.run([sys.executable, "-c", ORM_RENAME, made, "Renamed by the ORM"], cwd=live.SITE,
                       env=live.process_env(env), check=True)
        eventually(lambda: follower.dump()["tasks"][made]["name"] == "Renamed by the ORM")

        state = follower.following()
        assert state["overlaps"] == 0 and state["errors"] == [], state
        assert 3 <= state["syncs"] <= state["answers"], state  # at most a sync per answer
        # Eve's device heard nothing of demo's changes, and never synced again.
        time.sleep(0.5)
        assert eve.following() == {"syncs": 1, "answers": 1, "overlaps": 0, "errors": []}
        assert eve.dump()["tasks"] == {}
    finally:
        for device in (follower, other, eve):
            device.close()
