"""The example site's to-do page at ``/``, clicked through in headless Chromium.

The page (``todo/templates/todo/index.html`` + ``todo/static/todo/app.js``)
runs the real persistence.js client on the live server of the example site;
these tests use it as a person would (typing, ticking, pressing Sync) and
check the server's database through the ORM.

Set ``TODO_PAGE_SCREENSHOT=<file.png>`` to save a 900x600 screenshot of the
page with a few tasks (docs/todo-page.png is made that way).
"""

import datetime
import os

import pytest

from tests.conftest import demo_user
from tests.integration import browser
from tests.integration.browser import TodoPage

VIEWPORT = {"width": 900, "height": 600}

@pytest.fixture
def context(chromium, live_server):
    """A browser signed in as the demo user (the to-do page needs a user), without EventSource.

    These tests press Sync and count syncs; the change feed would start
    syncs of its own. Without EventSource the page syncs only when asked, as
    in a browser that lacks it (live sync: test_todo_page_live.py).
    """
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    context.add_init_script("delete window.EventSource;")
    browser.log_in(context, live_server.url, demo_user())
    yield context
    context.close()


def open_page(context, url):
    page = TodoPage(context.new_page())
    page.page.goto(url)
    page.wait_for_sync(1)  # the page syncs once when it opens
    return page


def server_tasks():
    from todo.models import Task

    return {t.name: (t.done, t.project.name if t.project else None) for t in Task.objects.all()}


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_add_complete_and_sync_reach_the_server(context, live_server):
    from todo.models import Project
    from todo.views import DEFAULT_PROJECT_NAME

    page = open_page(context, live_server.url + "/")
    # The page made the default project on the server and synced it down.
    assert list(Project.objects.values_list("name", flat=True)) == [DEFAULT_PROJECT_NAME]
    assert page.page.text_content("#project option:checked") == DEFAULT_PROJECT_NAME
    assert page.page.text_content("#username") == "demo"

    page.add("Buy milk")
    page.add("Write the report")
    page.add("Water the plants")
    page.tick("Buy milk")
    assert server_tasks() == {}  # nothing leaves the browser before Sync

    result = page.sync()

    assert result["tasks"] == {"received": 0, "sent": 3} and result["conflicts"] == 0
    assert server_tasks() == {
        "Buy milk": (True, DEFAULT_PROJECT_NAME),
        "Write the report": (False, DEFAULT_PROJECT_NAME),
        "Water the plants": (False, DEFAULT_PROJECT_NAME),
    }
    assert "3 sent" in page.status() and "0 conflicts" in page.status()
    if os.environ.get("TODO_PAGE_SCREENSHOT"):
        page.page.screenshot(path=os.environ["TODO_PAGE_SCREENSHOT"])

    # The next pull brings the three tasks back, stamped with the page's own
    # push: its echo, not something received.
    result = page.sync()
    assert result["tasks"] == {"received": 0, "sent": 0}
    assert "tasks 0 received, 0 sent" in page.status()
    assert page.errors == []
    # persistence.js's debug logging (every SQL statement) is off by default.
    assert page.console == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_orm_changes_and_deletions_travel_both_ways(context, live_server):
    from todo.models import Project, Task

    home = Project.objects.create(name="Home")
    paint = Task.objects.create(name="Paint the fence", project=home)
    shop = Task.objects.create(name="Shop", project=home)
    Task.objects.create(name="Call mum", project=home)

    page = open_page(context, live_server.url + "/")
    assert page.tasks() == {"Call mum": False, "Paint the fence": False, "Shop": False}

    # The site's own code changes and deletes tasks: the page follows on Sync.
    paint.name = "Paint the fence green"
    paint.save()
    Task.objects.filter(pk=shop.pk).update(done=True)
    Task.objects.filter(name="Call mum").delete()
    result = page.sync()
    assert result["tasks"]["received"] == 3
    assert page.tasks() == {"Paint the fence green": False, "Shop": True}

    # Deleted on the page: gone from the server after Sync.
    page.delete("Shop")
    result = page.sync()
    assert result["tasks"]["sent"] == 1
    assert server_tasks() == {"Paint the fence green": (False, "Home")}
    assert page.tasks() == {"Paint the fence green": False}

    # The browser's copy survives a reload (localStorage) and syncs on from it.
    page.page.reload()
    result = page.wait_for_sync(1)
    assert page.tasks() == {"Paint the fence green": False}
    assert result["tasks"]["sent"] == 0 and result["conflicts"] == 0
    assert page.errors == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_wire_type_of_a_task_is_shown_and_kept(context, live_server, settings):
    """Due date-time, priority, estimate and JSON notes reach the page and survive its push."""
    import datetime

    from todo.models import Project, Task

    # As the example site: the classic client reads dates new to it as ms.
    settings.PERSISTENCE_SYNC = {**settings.PERSISTENCE_SYNC, "DATES_IN_MILLISECONDS": True}
    due = datetime.datetime(2030, 5, 17, 9, 30, tzinfo=datetime.timezone.utc)
    notes = {"labels": ["outside", "weekend"], "text": "green"}
    home = Project.objects.create(name="Home")
    Task.objects.create(name="Paint", project=home, due=due, priority=3, estimate=2.5, notes=notes)

    page = open_page(context, live_server.url + "/")
    assert page.row("Paint").locator("small.detail").all_text_contents() == [
        "#outside", "#weekend", "priority 3", "2.5 h", "due 2030-05-17 09:30 UTC"]

    page.tick("Paint")
    assert page.sync()["tasks"]["sent"] == 1
    task = Task.objects.get(name="Paint")
    assert (task.done, task.due, task.priority, task.estimate, task.notes) == (True, due, 3, 2.5, notes)
    assert page.errors == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_logged_in_user_syncs_with_csrf_enforced(context, live_server, django_user_model):
    django_user_model.objects.create_superuser("ada", "ada@example.com", "secret-pass")
    tab = context.new_page()
    tab.goto(live_server.url + "/admin/login/?next=/")
    tab.fill("#id_username", "ada")
    tab.fill("#id_password", "secret-pass")
    tab.click("input[type=submit]")
    tab.wait_for_url(live_server.url + "/")
    page = TodoPage(tab)
    page.wait_for_sync(1)
    assert page.page.text_content("#username") == "ada"

    # Without the token DRF refuses a logged-in session's push...
    refused = tab.evaluate(
        """async (uri) => (await fetch(uri, {method: "POST", body: "[]",
            headers: {"Content-Type": "application/json"}})).status""",
        "/taskUpdates",
    )
    assert refused == 403

    # ...and the page's push carries it.
    page.add("Signed task")
    with tab.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/taskUpdates")) as push:
        result = page.sync()
    assert push.value.status == 200
    assert push.value.request.headers.get("x-csrftoken")
    assert result["tasks"]["sent"] == 1
    assert list(server_tasks()) == ["Signed task"]
    assert page.errors == []


@pytest.mark.django_db
def test_the_page_says_how_to_enable_the_client_when_npm_is_missing(client, monkeypatch):
    from todo import clientlib

    def unavailable():
        raise clientlib.ClientLibUnavailable(f"npm is not on PATH. {clientlib.HOW_TO_ENABLE}")

    monkeypatch.setattr(clientlib, "ensure_installed", unavailable)
    client.force_login(demo_user())
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="client-unavailable"' in html
    assert "apt-get install npm" in html and clientlib.CACHE_ENV_VAR in html
    assert "/vendor/persistence.js" not in html  # no scripts that cannot load


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_debug_logging_only_when_asked_for(context, live_server):
    page = open_page(context, live_server.url + "/?debug=1")
    page.add("Logged")
    page.sync()
    assert any("SELECT" in line for line in page.console)
    assert any(line.startswith("New items:") for line in page.console)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_page_resyncs_after_the_server_pruned_deletions(context, live_server, monkeypatch):
    """Deleted and pruned on the server while the page was away; local edits survive."""
    from todo.models import Project, Task

    from persistence_sync import retention

    home = Project.objects.create(name="Home")
    Task.objects.create(name="Keep", project=home)
    Task.objects.create(name="Deleted on the server", project=home)
    page = open_page(context, live_server.url + "/")
    page.add("Pushed, then deleted on the server")
    page.sync()

    Task.objects.exclude(name="Keep").delete()
    later = retention.wall_ms() + 2 * 86_400_000
    monkeypatch.setattr(retention, "wall_ms", lambda: later)
    report = retention.prune_tombstones(datetime.timedelta(days=1))
    assert report["todo.task"].removed == 2

    page.add("Written while away")
    page.tick("Keep")
    result = page.sync()

    assert page.tasks() == {"Keep": True, "Written while away": False}
    assert server_tasks() == {"Keep": (True, "Home"), "Written while away": (False, "Home")}
    assert result["tasks"] == {"received": 2, "sent": 2}
    assert "Full resync of Task" in page.status()
    # Back to ordinary syncs, with nothing left to do and nothing pushed back.
    result = page.sync()
    assert result["tasks"] == {"received": 0, "sent": 0} and result["resynced"] == []
    page.page.reload()
    page.wait_for_sync(1)
    assert page.tasks() == {"Keep": True, "Written while away": False}
    assert page.errors == []
