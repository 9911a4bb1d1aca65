"""The to-do page syncs by itself when the change feed pokes it: real pages, real uvicorn.

The example site runs as ``./dev demo`` serves it (one uvicorn process: pages,
sync endpoints and the feed) on a scratch database of its own; three
browser contexts sign in through the login form: two as demo (two windows
with their own local copies), one as eve. A task added and synced in one of
demo's windows appears in the other without anyone pressing Sync; eve's
page hears nothing of it and does not sync.
"""

import concurrent.futures
import json
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests import databases
from tests.integration import feed, live
from tests.integration.browser import TodoPage

pytestmark = [pytest.mark.browser, pytest.mark.live]

EVE = ("eve", "eve-password-1")
CREATE_EVE = """
import sys
import django
django.setup()
from django.contrib.auth import get_user_model
get_user_model().objects.create_user(sys.argv[1], password=sys.argv[2])
"""
# A change reaches the other window within this (the feed answers in ms; a sync takes ~0.1 s).
LIVE_WITHIN_MS = 5_000


@pytest.fixture(scope="module")
def site(chromium):
    live.require_uvicorn()
    vendor = databases.vendor()
    if vendor != "sqlite":
        databases.require_server_db(vendor)
    with live.scratch_database(vendor, purpose="pages") as env:
        subprocess.run([sys.executable, "-c", CREATE_EVE, *EVE], cwd=live.SITE,
                       env=live.process_env(env), check=True)
        # demo's other devices push with a token (HTTP Basic hashes the password on every request).
        server_token = feed.create_users(env, ["demo"])["demo"]
        # DEBUG as in ./dev demo: the ASGI application then serves the page's static files.
        with live.uvicorn(env, extra_env={"DJANGO_DEBUG": "1"}) as server:
            server.demo_headers = {"Authorization": f"Token {server_token}"}
            yield server


@pytest.fixture
def open_window(chromium, site):
    contexts = []

    def open_window(username, password):
        """A new browser (its own cookies and local copy) signed in, on the to-do page, following the feed."""
        context = chromium.new_context()
        context.set_default_timeout(10_000)
        contexts.append(context)
        tab = context.new_page()
        page = TodoPage(tab)
        tab.goto(f"{site.url}/accounts/login/?next=/")
        tab.fill("#id_username", username)
        tab.fill("#id_password", password)
        tab.press("#id_password", "Enter")
        tab.wait_for_url(f"{site.url}/")
        page.wait_for_sync(1)
        tab.wait_for_function("() => todoApp.live.state === 'open'")
        settle(page)
        return page

    yield open_window
    for context in contexts:
        context.close()


def live_state(page):
    return page.page.evaluate("() => ({syncs: todoApp.syncs, notices: todoApp.live.notices,"
                              " syncing: todoApp.syncing})")


def settle(page, quiet=1.0):
    """Wait until the page has not synced for ``quiet`` seconds (a feed's first notice may sync once)."""
    before = live_state(page)
    while True:
        time.sleep(quiet)
        now = live_state(page)
        if now == before and not now["syncing"]:
            return now
        before = now


def push_tasks(site, names, project):
    """Push each task alone through the site, all at once, as many devices of demo's would."""
    def push(name):
        answer = requests.post(f"{site.url}/taskUpdates", headers=site.demo_headers, timeout=30, json=[
            {"id": uuid.uuid4().hex.upper(), "name": name, "done": False, "project": project}])
        assert answer.status_code == 200, answer.text

    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(push, names))


def demo_project(site):
    answer = requests.get(f"{site.url}/projectUpdates?since=0", headers=site.demo_headers, timeout=30)
    [project] = answer.json()["updates"]
    return project["id"]


def test_a_task_synced_in_one_window_appears_in_the_other_without_pressing_sync(open_window, site):
    first = open_window("demo", "demo")
    second = open_window("demo", "demo")
    eve = open_window(*EVE)
    # Each window's first sync may poke the others: every window quiet before the test.
    settle(first)
    second_before, eve_before = settle(second), settle(eve)

    first.add("Written in the first window")
    assert first.sync()["tasks"]["sent"] == 1

    started = time.monotonic()
    second.page.wait_for_selector("#tasks li:has-text('Written in the first window')",
                                  timeout=LIVE_WITHIN_MS)
    print(f"reached the second window in {time.monotonic() - started:.2f} s")
    after = live_state(second)
    assert after["notices"] > second_before["notices"] and after["syncs"] > second_before["syncs"]

    # And back: ticked in the second window, synced there, shown ticked in the first.
    second.tick("Written in the first window")
    second.sync()
    first.page.wait_for_selector("#tasks li.done:has-text('Written in the first window')",
                                 timeout=LIVE_WITHIN_MS)

    # Eve heard nothing of demo's changes, and pulled nothing because of them.
    assert settle(eve) == eve_before
    assert eve.tasks() == {}
    assert first.errors == second.errors == eve.errors == []


def test_a_burst_of_changes_makes_few_syncs_never_two_at_once(open_window, site):
    window = open_window("demo", "demo")
    # Watch every pull of tasks the page makes: two at once would overlap here.
    window.page.evaluate("""() => {
      const open = XMLHttpRequest.prototype.open;
      window.pulls = {running: 0, most: 0, total: 0};
      XMLHttpRequest.prototype.open = function (method, url, ...rest) {
        if (method === "GET" && url.includes("taskUpdates")) {
          pulls.total += 1;
          pulls.running += 1;
          pulls.most = Math.max(pulls.most, pulls.running);
          this.addEventListener("loadend", () => { pulls.running -= 1; });
        }
        return open.call(this, method, url, ...rest);
      };
    }""")
    before = settle(window)
    names = [f"Burst {n:02d}" for n in range(20)]

    started = time.monotonic()
    push_tasks(site, names, demo_project(site))
    pushed_in = time.monotonic() - started

    # The last push's notice may come during a sync: one more sync brings it.
    window.page.wait_for_function(
        "(names) => names.every((name) => [...document.querySelectorAll('#tasks .name')]"
        ".some((el) => el.textContent === name))", arg=names, timeout=LIVE_WITHIN_MS)
    after = settle(window)
    pulls = window.page.evaluate("() => pulls")
    print(json.dumps({"pushed in": round(pushed_in, 2), "syncs": after["syncs"] - before["syncs"],
                      "notices": after["notices"] - before["notices"], **pulls}))
    assert pulls["most"] == 1, pulls
    assert after["syncs"] - before["syncs"] == pulls["total"]
    assert pulls["total"] < len(names) / 2, pulls  # bursts gathered, not one sync per change
    assert window.errors == []
