"""The real persistence.js client syncs with the example site in headless Chromium.

Each test opens a fresh page (a fresh in-browser database) on pytest-django's
``live_server`` of the example site plus ``tests.testapp``. The page loads,
from that live server, sql.js and the Web SQL polyfill, the unmodified
persistence.js 0.3.0 stores, and its sync plug-in with the patches of
``todo.clientlib`` (``/vendor/<name>``, as the to-do page does). The page
itself is served to the browser by Playwright on the live server's origin,
so the client's requests are same-origin requests to the real endpoints.

The browser models mirror the server's: ``Project(name)``,
``Task(name, done BOOL, hasOne project)``, ``Gadget`` with every wire type,
and ``Node`` with ``hasOne parent``. ``sync(name, handler)`` runs
``Entity.syncAll`` with ``persistence.sync.<handler>`` and answers the
conflicts the client handed to the handler and the items it pushed;
``rows(table)`` reads the browser's stored rows with plain SQL.
"""

import datetime

import pytest

from tests.integration import browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UTC = datetime.timezone.utc
PAGE_PATH = "/__browser_sync_test__"
PAGE = browser.CLIENT_PAGE

SETUP_JS = """async () => {
  await webSqlReady;
  persistence.store.websql.config(persistence, "synctest", "browser sync test", 5 * 1024 * 1024);
  window.Project = persistence.define("Project", {name: "TEXT"});
  window.Task = persistence.define("Task", {
    name: "TEXT", done: "BOOL", due: "DATE", priority: "INT", estimate: "REAL", notes: "JSON",
  });
  Task.hasOne("project", Project);
  window.Gadget = persistence.define("Gadget", {
    name: "TEXT", count: "INT", price: "NUMERIC", ratio: "REAL", active: "BOOL",
    due: "DATE", day: "DATE", data: "JSON"});
  window.Node = persistence.define("Node", {label: "TEXT"});
  Node.hasOne("parent", Node);
  Project.enableSync("/projectUpdates");
  Task.enableSync("/taskUpdates");
  Gadget.enableSync("/gadgets");
  Node.enableSync("/nodes");

  // Record every push and its answer, leaving the client's own postJSON in charge.
  window.pushes = [];
  const postJSON = persistence.sync.postJSON;
  persistence.sync.postJSON = function (uri, data, callback) {
    const push = {uri, items: JSON.parse(data), answer: null};
    pushes.push(push);
    postJSON(uri, data, function (answer) { push.answer = answer; callback(answer); });
  };

  // What the server refused, with its answer (the client itself drops it).
  window.refused = [];
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    this.addEventListener("loadend", () => {
      if (this.status !== 200) refused.push({status: this.status, body, answer: this.responseText});
    });
    return send.call(this, body);
  };

  window.sync = (name, handler) => new Promise((resolve, reject) => {
    const conflicts = [];
    const first = pushes.length;
    // The classic client has no error path for a push: without an answer it
    // never calls back, so give up instead of hanging the test.
    const timer = setTimeout(() => reject(new Error(
      "sync of " + name + " never finished; refused: " + JSON.stringify(refused))), 10000);
    window[name].syncAll(
      (found, updatesToPush, next) => {
        found.forEach((c) => conflicts.push({id: c.local.id, properties: c.properties.slice()}));
        persistence.sync[handler || "preferRemoteConflictHandler"](found, updatesToPush, next);
      },
      () => {
        clearTimeout(timer);
        const mine = pushes.slice(first);
        resolve({conflicts, pushed: mine.flatMap((p) => p.items), pushes: mine.length});
      },
      (xhr) => { clearTimeout(timer); reject(new Error("pull failed: " + xhr.status)); });
  });

  window.rows = (table) => new Promise((resolve, reject) => {
    openDatabase("synctest", "1.0", "", 0).readTransaction((tx) => {
      tx.executeSql("SELECT * FROM `" + table + "` ORDER BY id", [], (tx, result) => {
        const out = [];
        for (let i = 0; i < result.rows.length; i++) {
          const row = Object.assign({}, result.rows.item(i));
          delete row._lastChange;
          out.push(row);
        }
        resolve(out);
      });
    }, (error) => reject(new Error(error.message)));
  });

  // A local edit in a later millisecond than the last sync's end, so the
  // client counts it as "changed since the last sync" (it compares ms).
  window.later = () => new Promise((resolve) => setTimeout(resolve, 5));
  window.flush = () => new Promise((resolve) => persistence.flush(resolve));
  window.load = (name, id) => new Promise((resolve) => window[name].load(id, resolve));
  await new Promise((resolve) => persistence.schemaSync(resolve));
}"""


@pytest.fixture
def page(chromium, live_server):
    """A fresh page on the live server's origin, with the browser models set up.

    It syncs as the demo user (HTTP Basic): the to-do models are per user.
    """
    browser.demo_user_with_password()
    context = chromium.new_context()
    context.add_init_script(browser.BASIC_AUTH_SCRIPT)
    url = live_server.url + PAGE_PATH
    context.route(url, lambda route: route.fulfill(body=PAGE, content_type="text/html"))
    page = context.new_page()
    errors, failed = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda r: failed.append(f"{r.request.method} {r.url} -> {r.status}") if r.status >= 400 else None,
    )
    page.goto(url)
    page.evaluate(SETUP_JS)
    yield page
    context.close()
    assert errors == [], "uncaught errors in the page"
    assert failed == [], "requests the server refused"


def sync(page, name, handler="preferRemoteConflictHandler"):
    return page.evaluate("([name, handler]) => sync(name, handler)", [name, handler])


def rows(page, table):
    return page.evaluate("(table) => rows(table)", table)


def server_tasks():
    from todo.models import Task

    return {t.id: (t.name, t.done, t.project_id) for t in Task.objects.all()}


def browser_tasks(page):
    return {r["id"]: (r["name"], bool(r["done"]), r["project"]) for r in rows(page, "Task")}


@pytest.fixture
def home():
    """A project with three tasks on the server, one of them done, one without project."""
    from todo.models import Project, Task

    project = Project.objects.create(name="Home")
    tasks = [
        Task.objects.create(name="Paint", project=project),
        Task.objects.create(name="Shop", done=True, project=project),
        Task.objects.create(name="Loose end"),
    ]
    return project, tasks


def sync_all(page, handler="preferRemoteConflictHandler"):
    """Projects before tasks, as the client must (a task names its project)."""
    return [sync(page, "Project", handler), sync(page, "Task", handler)]


def test_initial_sync_brings_objects_values_and_relation_ids(page, home):
    project, (paint, shop, loose) = home
    projects, tasks = sync_all(page)

    assert rows(page, "Project") == [{"id": project.id, "name": "Home"}]
    assert browser_tasks(page) == {
        paint.id: ("Paint", False, project.id),
        shop.id: ("Shop", True, project.id),
        loose.id: ("Loose end", False, None),
    }
    # The relation resolves to the synced object in the browser.
    assert (
        page.evaluate(
            """async (id) => {
          const task = await load("Task", id);
          return await new Promise((resolve) => task.fetch("project", (p) => resolve(p.name)));
        }""",
            shop.id,
        )
        == "Home"
    )
    # Nothing was in conflict and nothing the server sent is pushed back.
    assert projects == {"conflicts": [], "pushed": [], "pushes": 1}
    assert tasks == {"conflicts": [], "pushed": [], "pushes": 1}


def test_objects_created_in_the_browser_arrive_with_the_browser_ids(page):
    from todo.models import Project, Task

    made = page.evaluate(
        """async () => {
          const work = new Project({name: "Work"});
          persistence.add(work);
          persistence.add(new Task({name: "Report", done: true, project: work}));
          persistence.add(new Task({name: "Call", project: work}));
          await flush();
          return {project: work.id, tasks: (await rows("Task")).map((t) => [t.id, t.name])};
        }"""
    )
    projects, tasks = sync_all(page)

    assert [p.id for p in Project.objects.all()] == [made["project"]]
    ids = dict((name, task_id) for task_id, name in made["tasks"])
    assert server_tasks() == {
        ids["Report"]: ("Report", True, made["project"]),
        ids["Call"]: ("Call", False, made["project"]),
    }
    assert all(len(i) == 32 and i == i.upper() for i in [made["project"], *ids.values()])
    assert len(tasks["pushed"]) == 2 and tasks["conflicts"] == []
    # The push's stamp is the stored _lastChange of what it created.
    answer = page.evaluate("() => pushes[pushes.length - 1].answer")
    assert answer["status"] == "ok"
    assert {t.last_change for t in Task.objects.all()} == {answer["now"]}


def test_a_change_made_through_the_orm_reaches_the_browser_on_its_next_sync(page, home):
    from todo.models import Project, Task

    project, (paint, shop, loose) = home
    sync_all(page)
    paint.name = "Paint the fence"
    paint.save()
    Task.objects.filter(pk=loose.pk).update(done=True)  # the queryset path stamps too
    office = Project.objects.create(name="Office")
    Task.objects.filter(pk=shop.pk).update(project=office)

    projects, tasks = sync_all(page)

    assert browser_tasks(page) == {
        paint.id: ("Paint the fence", False, project.id),
        shop.id: ("Shop", True, office.id),
        loose.id: ("Loose end", True, None),
    }
    assert sorted(r["name"] for r in rows(page, "Project")) == ["Home", "Office"]
    assert tasks["conflicts"] == [] and tasks["pushed"] == []


def make_conflicts(page, home):
    """Four tasks, edited as the client's decision table distinguishes them.

    ``Paint``: name changed on both sides (a conflict on ``name``).
    ``Shop``: ``done`` changed in the browser, ``name`` on the server. The
    classic client keeps no per-property history, so it sees both differing
    properties of an object it changed as conflicts.
    ``Loose end``: changed only in the browser (pushed, no conflict).
    ``Extra``: changed only on the server (taken, no conflict).
    """
    from todo.models import Task

    project, (paint, shop, loose) = home
    extra = Task.objects.create(name="Extra", project=project)
    sync_all(page)
    page.evaluate(
        """async ([paint, shop, loose]) => {
          await later();
          (await load("Task", paint)).name = "Paint (browser)";
          (await load("Task", shop)).done = false;
          (await load("Task", loose)).name = "Loose end (browser)";
          await flush();
        }""",
        [paint.id, shop.id, loose.id],
    )
    for task, name in [(paint, "Paint (server)"), (shop, "Shop (server)"), (extra, "Extra (server)")]:
        task.name = name
        task.save()
    return project, paint, shop, loose, extra


def assert_settled(page, expected):
    """Both sides hold ``expected``, and the next sync (which only pulls the
    client's own push back) raises no conflict and changes nothing."""
    assert server_tasks() == expected
    assert browser_tasks(page) == expected
    assert sync(page, "Task")["conflicts"] == []
    assert server_tasks() == browser_tasks(page) == expected


def test_conflicts_resolved_by_prefer_local(page, home):
    project, paint, shop, loose, extra = make_conflicts(page, home)

    result = sync(page, "Task", "preferLocalConflictHandler")

    assert sorted(result["conflicts"], key=lambda c: len(c["properties"])) == [
        {"id": paint.id, "properties": ["name"]},
        {"id": shop.id, "properties": ["name", "done"]},
    ]
    assert sorted(result["pushed"], key=lambda item: item["name"]) == [
        {"id": loose.id, "name": "Loose end (browser)", "done": False, "project": None,
         "due": None, "priority": 0, "estimate": None, "notes": None},
        {"id": paint.id, "name": "Paint (browser)"},
        {"id": shop.id, "name": "Shop", "done": False},  # the server's rename is undone
    ]
    expected = {
        paint.id: ("Paint (browser)", False, project.id),
        shop.id: ("Shop", False, project.id),
        loose.id: ("Loose end (browser)", False, None),
        extra.id: ("Extra (server)", False, project.id),
    }
    assert_settled(page, expected)


def test_conflicts_resolved_by_prefer_remote(page, home):
    project, paint, shop, loose, extra = make_conflicts(page, home)

    result = sync(page, "Task", "preferRemoteConflictHandler")

    assert sorted(result["conflicts"], key=lambda c: len(c["properties"])) == [
        {"id": paint.id, "properties": ["name"]},
        {"id": shop.id, "properties": ["name", "done"]},
    ]
    assert result["pushed"] == [
        {"id": loose.id, "name": "Loose end (browser)", "done": False, "project": None,
         "due": None, "priority": 0, "estimate": None, "notes": None},
    ]
    expected = {
        paint.id: ("Paint (server)", False, project.id),
        shop.id: ("Shop (server)", True, project.id),  # the browser's done=false is dropped
        loose.id: ("Loose end (browser)", False, None),
        extra.id: ("Extra (server)", False, project.id),
    }
    assert_settled(page, expected)


def test_removal_in_both_directions(page, home):
    from todo.models import Task

    from persistence_sync.models import Tombstone

    project, (paint, shop, loose) = home
    sync_all(page)

    # Browser -> server.
    page.evaluate("async (id) => { persistence.remove(await load('Task', id)); await flush(); }", paint.id)
    result = sync(page, "Task")
    assert result["pushed"] == [{"id": paint.id, "_removed": True}]
    assert not Task.objects.filter(pk=paint.pk).exists()
    assert Tombstone.objects.filter(model="todo.task", object_id=paint.id).exists()

    # Server -> browser.
    Task.objects.get(pk=shop.pk).delete()
    result = sync(page, "Task")
    assert set(browser_tasks(page)) == {loose.id} == set(server_tasks())
    assert result["conflicts"] == []
    assert rows(page, "_SyncRemovedObject") == []  # the browser's own deletion was sent once


def test_a_second_sync_right_after_a_first_changes_nothing(page, home):
    from todo.models import Project, Task

    project, tasks = home
    sync_all(page)
    page.evaluate(
        """async (projectId) => {
          await later();
          persistence.add(new Task({name: "From the browser", project: projectId}));
          (await load("Project", projectId)).name = "Home (browser)";
          await flush();
        }""",
        project.id,
    )
    first = sync_all(page)
    assert [len(result["pushed"]) for result in first] == [1, 1]
    server_before = {t.id: (t.name, t.done, t.project_id, t.last_change) for t in Task.objects.all()}
    projects_before = list(Project.objects.values_list("id", "name", "last_change"))
    browser_before = browser_tasks(page)

    projects, again = sync_all(page)

    assert projects["conflicts"] == [] and projects["pushed"] == []
    assert again["conflicts"] == [] and again["pushed"] == []
    assert {t.id: (t.name, t.done, t.project_id, t.last_change) for t in Task.objects.all()} == server_before
    assert list(Project.objects.values_list("id", "name", "last_change")) == projects_before
    assert browser_tasks(page) == browser_before
    assert len(browser_before) == 4


DUE = datetime.datetime(2024, 1, 15, 10, 30, 0, tzinfo=UTC)
DAY = datetime.date(2024, 2, 29)
DUE_S = int(DUE.timestamp())
DAY_S = int(datetime.datetime(2024, 2, 29, tzinfo=UTC).timestamp())


def gadget_state():
    from tests.testapp.models import Gadget

    return {g.name: (g.active, g.due, g.day) for g in Gadget.objects.all()}


def browser_gadgets(page):
    # The SQL store keeps DATE as whole seconds and BOOL as 0/1.
    return {r["name"]: (r["active"], r["due"], r["day"]) for r in rows(page, "Gadget")}


def test_bool_date_and_has_one_round_trip_unchanged(page, settings):
    """BOOL, DATE and hasOne values survive server -> browser -> server.

    What the client does with DATE: the SQL store keeps whole seconds; the
    entity's ``_data`` holds ``Date`` objects, which ``cacheAndFindUpdates``
    compares with ``!==`` against the number on the wire, so it sees every
    non-null DATE as changed on every pull (it re-takes the remote value when
    the object is unchanged locally, and reports a conflict on it when the
    object was changed locally). An object new to the client is stored
    without converting the wire number, so seconds would land in January
    1970 (see the next test); with ``DATES_IN_MILLISECONDS`` the server sends
    ms, which the client reads right everywhere. The client pushes seconds,
    or, where it pushes ``_data`` as is (the echo of its own push, and
    ``preferLocalConflictHandler``), a ``Date`` that JSON makes an ISO 8601
    string; the server accepts both.
    """
    from tests.testapp.models import Gadget, Node

    settings.PERSISTENCE_SYNC = {"DATES_IN_MILLISECONDS": True}
    Gadget.objects.create(name="server-on", active=True, due=DUE, day=DAY)
    Gadget.objects.create(name="server-off", active=False, due=None, day=None)
    root = Node.objects.create(label="root")
    leaf = Node.objects.create(label="leaf", parent=root)

    # Server -> browser.
    assert sync(page, "Gadget")["conflicts"] == []
    assert sync(page, "Node")["conflicts"] == []
    assert browser_gadgets(page) == {
        "server-on": (1, DUE_S, DAY_S),
        "server-off": (0, None, None),
    }
    # Objects created by a pull hold the wire number in memory until they are
    # read back from the database (here: after persistence.clean()).
    assert page.evaluate(
        """async () => {
          persistence.clean();
          return (await new Promise((r) => Gadget.all().order("name", true).list(r))).map(
            (g) => [g.name, g.active, g.due && g.due.toISOString(), g.day && g.day.getTime()]);
        }"""
    ) == [
        ["server-off", False, None, None],
        ["server-on", True, "2024-01-15T10:30:00.000Z", DAY_S * 1000],
    ]
    assert {r["id"]: r["parent"] for r in rows(page, "Node")} == {root.id: None, leaf.id: root.id}

    # Browser -> server: new objects, and edits of pulled ones (which push
    # every field of the object, dates included).
    made = page.evaluate(
        """async ([onId, offId, leafId]) => {
          await later();
          // price is set because persistence.js defaults NUMERIC to null and
          // pushes it, which the server refuses for a NOT NULL column.
          persistence.add(new Gadget({name: "browser-on", active: true, price: 0,
            due: new Date(Date.UTC(2024, 0, 15, 10, 30)), day: new Date(Date.UTC(2024, 1, 29))}));
          persistence.add(new Gadget({name: "browser-off", active: false, price: 0}));
          (await load("Gadget", onId)).count = 7;
          (await load("Gadget", offId)).count = 8;
          const branch = new Node({label: "branch"});
          persistence.add(branch);
          persistence.add(new Node({label: "twig", parent: branch}));
          (await load("Node", leafId)).label = "leaf 2";
          await flush();
          return branch.id;
        }""",
        [
            Gadget.objects.get(name="server-on").id,
            Gadget.objects.get(name="server-off").id,
            leaf.id,
        ],
    )
    gadgets = sync(page, "Gadget")
    nodes = sync(page, "Node")
    assert gadgets["conflicts"] == [] and len(gadgets["pushed"]) == 4
    assert nodes["conflicts"] == [] and len(nodes["pushed"]) == 3
    expected = {
        "server-on": (True, DUE, DAY),
        "server-off": (False, None, None),
        "browser-on": (True, DUE, DAY),
        "browser-off": (False, None, None),
    }
    assert gadget_state() == expected
    assert sorted(Gadget.objects.values_list("name", "count")) == [
        ("browser-off", 0), ("browser-on", 0), ("server-off", 8), ("server-on", 7),
    ]  # fmt: skip
    parents = {n.label: n.parent_id for n in Node.objects.all()}
    assert parents == {"root": None, "leaf 2": root.id, "branch": None, "twig": made}

    # Edit again: the pull now holds the client's own push, so the client
    # pushes _data as is, the Dates as ISO strings.
    page.evaluate(
        """async () => {
          await later();
          const all = await new Promise((r) => Gadget.all().list(r));
          all.forEach((g) => { g.count = g.count + 1; });
          await flush();
        }"""
    )
    gadgets = sync(page, "Gadget")
    assert gadgets["conflicts"] == []
    iso = {i.get("due") for i in gadgets["pushed"] if isinstance(i.get("due"), str)}
    assert iso == {"2024-01-15T10:30:00.000Z"}
    assert gadget_state() == expected
    assert sync(page, "Gadget")["conflicts"] == []
    assert browser_gadgets(page) == {
        "server-on": (1, DUE_S, DAY_S),
        "server-off": (0, None, None),
        "browser-on": (1, DUE_S, DAY_S),
        "browser-off": (0, None, None),
    }


def test_dates_in_seconds_land_in_1970_for_objects_new_to_the_client(page, settings):
    """Why browser sites set ``PERSISTENCE_SYNC["DATES_IN_MILLISECONDS"]``.

    With the protocol's seconds (the default), persistence.sync.js 0.3.0
    creates a pulled object it lacks with ``new Entity(remoteItem)``, which
    keeps the number and the SQL store then reads it as milliseconds: the
    date lands in January 1970. An update of an object it already has goes
    through ``jsonToEntityVal`` and is read right, but only once the object
    was read back from the database: while the session still holds the
    object the pull created, its in-memory value is the wire number itself,
    equal to the next pull's, so the wrong date stays. A page reload starts
    from an empty database and pulls everything as new again. The server
    cannot tell which of these the client will do, so sites with browser
    clients and date fields set the option.
    """
    from tests.testapp.models import Gadget

    settings.PERSISTENCE_SYNC = {"DATES_IN_MILLISECONDS": False}
    gadget = Gadget.objects.create(name="g", due=DUE)
    sync(page, "Gadget")
    assert browser_gadgets(page)["g"][1] == round(DUE_S / 1000)  # 1970-01-20

    gadget.name = "g2"
    gadget.save()
    sync(page, "Gadget")
    assert browser_gadgets(page)["g2"][1] == round(DUE_S / 1000)  # still 1970

    page.evaluate("() => persistence.clean()")
    gadget.name = "g3"
    gadget.save()
    sync(page, "Gadget")
    assert browser_gadgets(page)["g3"][1] == DUE_S


def test_a_classic_client_behind_the_tombstone_horizon_gets_410_in_its_error_callback(
        chromium, live_server, home, monkeypatch):
    """What docs/protocol.md says of an unmodified client after prunetombstones."""
    from persistence_sync import retention

    project, (paint, shop, loose) = home
    browser.demo_user_with_password()
    context = chromium.new_context()
    context.add_init_script(browser.BASIC_AUTH_SCRIPT)  # as the page fixture: the demo user
    url = live_server.url + PAGE_PATH
    context.route(url, lambda route: route.fulfill(body=PAGE, content_type="text/html"))
    page = context.new_page()
    page.goto(url)
    page.evaluate(SETUP_JS)
    try:
        sync_all(page)
        shop_id = shop.id
        shop.delete()
        later = retention.wall_ms() + 2 * 86_400_000
        monkeypatch.setattr(retention, "wall_ms", lambda: later)
        retention.prune_tombstones(datetime.timedelta(days=1))
        failure = "() => sync('Task').then(() => 'synced', (error) => error.message)"
        assert page.evaluate(failure) == "pull failed: 410"
        assert page.evaluate(failure) == "pull failed: 410"  # and on every later sync
        assert set(browser_tasks(page)) == {paint.id, shop_id, loose.id}  # nothing changed
        [answer] = {r["answer"] for r in page.evaluate("() => refused")}
        assert '"resync":true' in answer
    finally:
        context.close()
