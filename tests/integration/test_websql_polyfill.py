"""The Web SQL polyfill (todo/static/todo/websql.js) runs the real persistence.js.

A page served by a throw-away http.server loads sql.js, the polyfill and the
unmodified persistence.js 0.3.0 stores plus the patched sync plug-in from the
npm cache of ``todo.clientlib``; headless Chromium (which has no Web SQL of its
own) then exercises persistence.js and the polyfill's transaction semantics.
No Django settings or database are involved.
"""

import http.server
import threading
from pathlib import Path

import pytest

from tests.integration import browser

pytestmark = pytest.mark.browser

POLYFILL = Path(__file__).resolve().parents[2] / "testproject/todo/static/todo/websql.js"

PAGE = browser.CLIENT_PAGE.encode()

# Defines the model every test uses and a helper that reads rows with plain
# Web SQL, bypassing persistence.js's session cache.
SETUP_JS = """async () => {
  await webSqlReady;
  persistence.store.websql.config(persistence, "test", "polyfill test", 5 * 1024 * 1024);
  window.Project = persistence.define("Project", {name: "TEXT"});
  window.Task = persistence.define("Task", {
    title: "TEXT", done: "BOOL", due: "DATE", priority: "INT"});
  Task.hasOne("project", Project);
  Project.enableSync("/projectChanges");
  Task.enableSync("/taskChanges");
  window.rawQuery = (sql, args) => new Promise((resolve, reject) => {
    openDatabase("test", "1.0", "", 0).readTransaction((tx) => {
      tx.executeSql(sql, args || [], (tx, result) => {
        const rows = [];
        for (let i = 0; i < result.rows.length; i++) rows.push(result.rows.item(i));
        resolve(rows);
      });
    }, (error) => reject(new Error(error.message)));
  });
  await new Promise((resolve) => persistence.schemaSync(resolve));
}"""


def serve(routes):
    """Start http.server on 127.0.0.1 in a thread; routes maps path -> (body, type)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            try:
                body, content_type = routes[self.path]
            except KeyError:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def base_url():
    browser.require_browser()
    from todo import clientlib

    paths = browser.require_client_files()
    routes = {
        f"/vendor/{name}": (path.read_bytes(), clientlib.CLIENT_FILES[name][2])
        for name, path in paths.items()
    }
    routes["/vendor/persistence.sync.js"] = (
        clientlib.patched_sync_js().encode(),
        "application/javascript; charset=utf-8",
    )
    routes["/static/todo/websql.js"] = (POLYFILL.read_bytes(), "application/javascript")
    routes["/"] = (PAGE, "text/html; charset=utf-8")
    routes["/persist"] = (
        PAGE.replace(b"data-wasm-url=", b'data-persist="localStorage" data-wasm-url='),
        "text/html; charset=utf-8",
    )
    server = serve(routes)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(chromium, base_url):
    """A fresh page (so a fresh in-memory database) with the model set up."""
    context = chromium.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base_url + "/")
    page.evaluate(SETUP_JS)
    yield page
    context.close()
    assert errors == [], "uncaught errors in the page"


def test_defines_adds_flushes_and_queries_back(page):
    result = page.evaluate(
        """async () => {
      const home = new Project({name: "Home"});
      persistence.add(home);
      [["Paint", 3, false], ["Shop", 1, false], ["Cook", 2, true], ["Read", 5, false]]
        .forEach(([title, priority, done]) =>
          persistence.add(new Task({title, priority, done, project: home})));
      await new Promise((resolve) => persistence.flush(resolve));
      persistence.clean();  // forget cached objects: read from the database
      const open = await new Promise((resolve) =>
        Task.all().filter("done", "=", false).order("priority", true).list(resolve));
      const urgentFirst = await new Promise((resolve) =>
        Task.all().filter("priority", ">=", 2).order("priority", false).list(resolve));
      const count = await new Promise((resolve) => Task.all().count(resolve));
      const tables = await rawQuery(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
      return {
        open: open.map((t) => t.title),
        urgentFirst: urgentFirst.map((t) => t.title),
        count,
        tables: tables.map((row) => row.name),
      };
    }"""
    )
    assert result == {
        "open": ["Shop", "Paint", "Read"],
        "urgentFirst": ["Read", "Paint", "Cook"],
        "count": 4,
        "tables": ["Project", "Task", "_Sync", "_SyncRemovedObject"],
    }


def test_destroy_all_on_a_filtered_collection_removes_exactly_those_rows(page):
    result = page.evaluate(
        """async () => {
      for (let priority = 1; priority <= 5; priority++) {
        persistence.add(new Task({title: "t" + priority, priority}));
      }
      await new Promise((resolve) => persistence.flush(resolve));
      await new Promise((resolve) =>
        Task.all().filter("priority", ">", 3).destroyAll(resolve));
      const rows = await rawQuery("SELECT title FROM Task ORDER BY title");
      // persistence.sync records the deletions at the next flush, for its next push.
      await new Promise((resolve) => persistence.flush(resolve));
      const removed = await rawQuery("SELECT entity FROM _SyncRemovedObject");
      return {left: rows.map((r) => r.title), removed: removed.length};
    }"""
    )
    assert result == {"left": ["t1", "t2", "t3"], "removed": 2}


def test_bool_date_and_has_one_come_back_unchanged(page):
    result = page.evaluate(
        """async () => {
      const due = new Date(Date.UTC(2024, 0, 15, 10, 30, 0));  // whole seconds: DATE is stored in s
      const work = new Project({name: "Work"});
      const done = new Task({title: "done", done: true, due, project: work});
      const open = new Task({title: "open", done: false, due: null});
      persistence.add(work); persistence.add(done); persistence.add(open);
      await new Promise((resolve) => persistence.flush(resolve));
      persistence.clean();
      const tasks = await new Promise((resolve) =>
        Task.all().prefetch("project").order("title", true).list(resolve));
      const [d, o] = tasks;
      return {
        done: [d.done, typeof d.done, o.done, typeof o.done],
        due: [d.due instanceof Date, d.due.getTime() === due.getTime(), o.due],
        dataHoldsDate: d._data.due instanceof Date,
        project: [d.project.id === work.id, d.project.name, d._data.project === work.id, o.project],
        stored: await rawQuery("SELECT done, due, project FROM Task ORDER BY title"),
      };
    }"""
    )
    assert result["done"] == [True, "boolean", False, "boolean"]
    assert result["due"] == [True, True, None]
    assert result["dataHoldsDate"] is True
    assert result["project"] == [True, "Work", True, None]
    due_seconds = 1705314600
    assert result["stored"][0]["done"] == 1 and result["stored"][0]["due"] == due_seconds
    assert result["stored"][1] == {"done": 0, "due": None, "project": None}


def test_a_failing_statement_rolls_back_its_persistence_transaction(page):
    result = page.evaluate(
        """async () => {
      persistence.add(new Task({title: "kept"}));
      await new Promise((resolve) => persistence.flush(resolve));
      const seen = await new Promise((resolve) => {
        persistence.transaction((tx) => {
          persistence.add(new Task({title: "doomed"}));
          persistence.flush(tx, () => {
            tx.executeSql("INSERT INTO no_such_table VALUES (1)", [], null,
              (_, error) => resolve(error.message));
          });
        });
      });
      // Transactions run one at a time, so this reads after the rollback.
      const rows = await rawQuery("SELECT title FROM Task");
      return {seen, titles: rows.map((r) => r.title)};
    }"""
    )
    assert "no such table" in result["seen"]
    assert result["titles"] == ["kept"]


def test_web_sql_transaction_semantics(page):
    result = page.evaluate(
        """async () => {
      const db = openDatabase("semantics", "1.0", "", 0);
      const log = [];
      const run = (method, body) => new Promise((resolve) => db[method](body,
        (error) => resolve("error: " + error.message), () => resolve("committed")));
      const rows = async (sql) => {
        let out;
        await run("readTransaction", (tx) => tx.executeSql(sql, [], (_, rs) => {
          out = [];
          for (let i = 0; i < rs.rows.length; i++) out.push(rs.rows.item(i));
        }));
        return out;
      };
      const outcome = {};
      outcome.create = await run("transaction", (tx) => {
        tx.executeSql("CREATE TABLE t (x INTEGER PRIMARY KEY, label TEXT)");
        tx.executeSql("INSERT INTO t (label) VALUES (?)", ["a"], (tx, rs) => {
          log.push(["insert", rs.insertId, rs.rowsAffected]);
          // Queued from a callback: runs after the statements already queued.
          tx.executeSql("SELECT COUNT(*) AS n FROM t", [], (tx, rs) =>
            log.push(["count", rs.rows.item(0).n, rs.rowsAffected]));
        });
        tx.executeSql("UPDATE t SET label = ?", [null], (tx, rs) =>
          log.push(["update", rs.rowsAffected]));
      });
      let ranSynchronously = false;
      db.transaction((tx) => { ranSynchronously = true; });
      outcome.asynchronous = !ranSynchronously;
      outcome.rolledBack = await run("transaction", (tx) => {
        tx.executeSql("INSERT INTO t (label) VALUES ('b')");
        tx.executeSql("INSERT INTO t (x) VALUES (1)");  // duplicate key, no error callback
        tx.executeSql("INSERT INTO t (label) VALUES ('never')");
      });
      outcome.continued = await run("transaction", (tx) => {
        tx.executeSql("INSERT INTO t (x) VALUES (1)", [], null, () => false);  // handled
        tx.executeSql("INSERT INTO t (label) VALUES ('c')");
      });
      outcome.thrown = await run("transaction", (tx) => {
        tx.executeSql("INSERT INTO t (label) VALUES ('d')", [], () => {
          throw new Error("callback failed");
        });
      });
      outcome.readOnly = await run("readTransaction", (tx) =>
        tx.executeSql("INSERT INTO t (label) VALUES ('e')"));
      outcome.rows = await rows("SELECT x, label FROM t ORDER BY x");
      outcome.log = log;
      return outcome;
    }"""
    )
    assert result["create"] == "committed"
    assert result["log"] == [["insert", 1, 1], ["update", 1], ["count", 1, 0]]
    assert result["asynchronous"] is True
    assert result["rolledBack"].startswith("error: ") and "UNIQUE" in result["rolledBack"]
    assert result["continued"] == "committed"
    assert result["thrown"] == "error: callback failed"
    assert result["readOnly"].startswith("error: ") and "readonly" in result["readOnly"]
    assert result["rows"] == [{"x": 1, "label": None}, {"x": 2, "label": "c"}]


def test_opt_in_local_storage_keeps_the_database_across_reloads(chromium, base_url):
    context = chromium.new_context()
    page = context.new_page()
    write = """async () => {
      await webSqlReady;
      await new Promise((resolve, reject) => openDatabase("kept", "1.0", "", 0).transaction(
        (tx) => {
          tx.executeSql("CREATE TABLE IF NOT EXISTS t (label TEXT)");
          tx.executeSql("INSERT INTO t VALUES ('survives')");
        }, reject, resolve));
    }"""
    read = """async () => {
      await webSqlReady;
      return await new Promise((resolve) => openDatabase("kept", "1.0", "", 0).readTransaction(
        (tx) => tx.executeSql("SELECT label FROM t", [], (_, rs) => resolve(rs.rows.length ?
          rs.rows.item(0).label : null)),
        (error) => resolve("error: " + error.message)));
    }"""
    page.goto(base_url + "/persist")
    page.evaluate(write)
    assert page.evaluate("() => localStorage.getItem('websql:kept') !== null")
    page.reload()
    assert page.evaluate(read) == "survives"
    page.goto(base_url + "/")  # without data-persist the database starts empty
    assert page.evaluate(read) == "error: no such table: t"
    context.close()
