/*
 * app.js: the example site's to-do page, on the real persistence.js client.
 *
 * Tasks live in the browser: persistence.js 0.3.0 with its SQL store on the
 * Web SQL polyfill (websql.js, kept in localStorage). Sync pulls and pushes
 * them with the classic persistence.sync.js plug-in: projects first, then
 * tasks (a pushed task names its project, which the server must have).
 *
 * What the page adds around the unmodified client:
 *  - persistence.sync.postJSON is replaced by the same request plus the
 *    X-CSRFToken header. Django REST framework's SessionAuthentication
 *    refuses a logged-in user's POST without it; anonymous pushes pass
 *    either way.
 *  - Failed requests are reported on the page. The classic client has no
 *    error path for a push (and the pull's is optional): without this the
 *    page would wait for ever.
 *  - The sync summary counts what the pull brought that this browser did
 *    not already have: the server's echo of the page's own last push (items
 *    stamped with that push's `now`) is not "received".
 *  - A full resync when the server pruned deletions this browser has not
 *    pulled yet (410 with "resync": true, docs/protocol.md "Tombstone
 *    retention"): the model's serverDate is reset to 0 and it syncs again,
 *    so local changes made since the last sync are kept and pushed; local
 *    objects the server no longer has, and that were not changed here, are
 *    then deleted. The unmodified client would only report the 410 to its
 *    error callback, sync after sync.
 *  - persistence.js logs every SQL statement to the console unless
 *    persistence.debug is false: it is, unless the page's URL has ?debug=1.
 *  - Live sync: an EventSource on the site's change feed (docs/events.md)
 *    runs the same sync as the Sync button whenever a notice names one of
 *    the page's endpoints. One sync at a time: notices during a sync make
 *    one more sync after it, however many came. Without EventSource, or
 *    when the feed refuses the page, the page syncs when asked, as before.
 *  - Edits made while a sync runs wait for its end: the client pushes what
 *    changed after its previous sync ended, so an edit made during a sync
 *    would never be pushed.
 *
 * Options, as attributes of this script tag: data-project-uri,
 * data-task-uri (the sync endpoints), data-events-uri (the change feed;
 * absent: no live sync), data-database (the local database).
 * State for tests and curious users: window.todoApp.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var options = {
    projectUri: script.dataset.projectUri || "/projectUpdates",
    taskUri: script.dataset.taskUri || "/taskUpdates",
    eventsUri: script.dataset.eventsUri || "",
    database: script.dataset.database || "todo",
  };
  // Notices that come this close together make one sync (a push of many
  // objects, a cascade of deletions, a script saving in a loop).
  var NOTICE_BURST_MS = 100;
  var SELECTED_PROJECT_KEY = "todo:project";

  var $ = function (id) { return document.getElementById(id); };
  var statusLine = $("sync-status");
  // results: the last syncs' results by number, for scripts (and the tests) that
  // must tell their own sync from one the change feed started right after it.
  var app = (window.todoApp = {syncs: 0, lastSync: null, results: {}, syncing: false,
                               live: {state: "off", notices: 0}});

  function recordSync(result) {
    app.syncs += 1;
    app.lastSync = app.results[app.syncs] = result;
    delete app.results[app.syncs - 20];
  }
  var Project, Task;
  var current = null; // the selected Project

  function setStatus(text, state) {
    statusLine.textContent = text;
    statusLine.className = state || "";
    statusLine.dataset.state = state || "";
    statusLine.dataset.syncs = String(app.syncs);
  }

  function csrfToken() {
    // The cookie first: logging in rotates the token after this page was made.
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    var field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  // --- what the page wraps around the client's requests -------------------

  var failSync = null; // set while a sync runs: reports a failed request

  function describe(xhr, what) {
    var detail = xhr.responseText || "";
    try {
      var body = JSON.parse(detail);
      detail = body.error || body.detail || detail;
      if (body.errors && body.errors.length) {
        detail += " " + body.errors.map(function (e) {
          return (e.field ? e.field + ": " : "") + e.message;
        }).join("; ");
      }
    } catch (e) { /* not JSON: show it as it is */ }
    return what + " failed: HTTP " + (xhr.status || "error (no answer)") +
      (detail ? " — " + detail.slice(0, 300) : "");
  }

  var counts = {}; // uri -> {received, sent} of the running sync
  var entities = {}; // sync uri -> Entity
  var resyncs = {}; // uri -> {since, present} while that model resyncs from 0

  function findSync(Entity) {
    return new Promise(function (resolve) {
      persistence.sync.Sync.findBy("entity", Entity.meta.name, resolve);
    });
  }

  persistence.sync.postJSON = function (uri, data, callback) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", uri, true);
    xhr.setRequestHeader("Content-Type", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) return;
      if (xhr.status === 200) {
        (counts[uri] = counts[uri] || {}).sent = JSON.parse(data).length;
        callback(JSON.parse(xhr.responseText));
      } else if (failSync) {
        failSync(describe(xhr, "Sending changes to " + uri));
      }
    };
    xhr.send(data);
  };

  var getJSON = persistence.sync.getJSON;
  persistence.sync.getJSON = function (uri, callback, errorCallback) {
    var path = uri.split("?")[0];
    getJSON(uri, function (answer) {
      findSync(entities[path]).then(function (sync) {
        var ownPush = sync ? sync.serverPushDate : null;
        var resync = resyncs[path];
        if (resync) {
          // A pull from 0: note every id the server has, and set aside what
          // the last pull already brought (else each local edit since would
          // look like a conflict with an unchanged server copy).
          resync.present = {};
          answer.updates.forEach(function (u) { if (!u._removed) resync.present[u.id] = true; });
          answer.updates = answer.updates.filter(function (u) {
            return u._removed || !(u._lastChange <= resync.since);
          });
        }
        (counts[path] = counts[path] || {}).received = answer.updates.filter(function (u) {
          return u._lastChange !== ownPush;
        }).length;
        callback(answer);
      });
    }, errorCallback);
  };

  function resyncRequested(xhr) {
    try {
      return xhr.status === 410 && JSON.parse(xhr.responseText).resync === true;
    } catch (e) {
      return false;
    }
  }

  // --- the model ------------------------------------------------------------

  function list(collection) {
    return new Promise(function (resolve) { collection.list(resolve); });
  }

  function flush() {
    return new Promise(function (resolve) { persistence.flush(resolve); });
  }

  function syncOnce(Entity, handler) {
    return new Promise(function (resolve, reject) {
      var conflicts = 0;
      failSync = reject;
      Entity.syncAll(
        function (found, updatesToPush, next) {
          conflicts += found.length;
          persistence.sync[handler](found, updatesToPush, next);
        },
        function () { resolve(conflicts); },
        function (xhr) {
          reject(resyncRequested(xhr) ? {resync: true}
                                      : describe(xhr, "Fetching " + Entity.meta.syncUri));
        }
      );
    });
  }

  function syncEntity(Entity, handler, result) {
    return syncOnce(Entity, handler).catch(function (error) {
      if (!error || !error.resync) throw error;
      return resync(Entity, handler, result);
    });
  }

  // The server pruned deletions newer than our last pull: sync from 0, then
  // drop what it no longer has unless it changed here.
  function resync(Entity, handler, result) {
    var uri = Entity.meta.syncUri, localDate, conflicts;
    return findSync(Entity).then(function (sync) {
      localDate = sync.localDate;
      resyncs[uri] = {since: sync.serverDate, present: null};
      sync.serverDate = 0;
      return flush();
    }).then(function () {
      return syncOnce(Entity, handler);
    }).then(function (n) {
      conflicts = n;
      var present = resyncs[uri].present;
      return list(Entity.all()).then(function (all) {
        return all.filter(function (obj) {
          return !present[obj.id] && !(obj._lastChange > localDate);
        }).map(function (obj) { return obj.id; });
      });
    }).then(function (stale) {
      counts[uri].received += stale.length;
      result.resynced.push(Entity.meta.name);
      if (!stale.length) return;
      return new Promise(function (resolve) {
        Entity.all().filter("id", "in", stale).destroyAll(function () {
          // Deleted because the server did: nothing to push back.
          persistence.sync.RemovedObject.all().filter("objectId", "in", stale).destroyAll(resolve);
        });
      });
    }).then(function () {
      return conflicts;
    }).finally(function () {
      delete resyncs[uri];
    });
  }

  function sync() {
    if (app.syncing) return Promise.resolve();
    app.syncing = true;
    counts = {};
    var handler = $("conflicts").value;
    var started = performance.now();
    var result = {conflicts: 0, resynced: []};
    enable(false);
    setStatus("Syncing…", "syncing");
    return syncEntity(Project, handler, result)
      .then(function (n) { result.conflicts += n; return syncEntity(Task, handler, result); })
      .then(function (n) {
        result.conflicts += n;
        var p = counts[options.projectUri] || {}, t = counts[options.taskUri] || {};
        result.projects = {received: p.received || 0, sent: p.sent || 0};
        result.tasks = {received: t.received || 0, sent: t.sent || 0};
        result.ms = Math.round(performance.now() - started);
        result.at = new Date();
        result.ok = true;
        recordSync(result);
        $("pending").textContent = "";
        setStatus(
          "Synced at " + result.at.toLocaleTimeString() + " in " + result.ms + " ms: tasks " +
          result.tasks.received + " received, " + result.tasks.sent + " sent; projects " +
          result.projects.received + " received, " + result.projects.sent + " sent; " +
          result.conflicts + (result.conflicts === 1 ? " conflict" : " conflicts") +
          (result.conflicts ? " (" + $("conflicts").selectedOptions[0].text + ")" : "") + "." +
          (result.resynced.length ? " Full resync of " + result.resynced.join(", ") +
            ": the server had pruned older deletions." : ""),
          "ok");
      }, function (error) {
        recordSync({ok: false, error: String(error)});
        setStatus("Sync failed. " + String(error), "error");
      })
      .then(function () {
        failSync = null;
        return render();
      })
      .then(applyWaitingEdits)
      .then(function () {
        app.syncing = false;
        enable(true);
        if (syncAgain) {
          syncAgain = false;
          return sync();
        }
      });
  }

  // Run ``edit`` (which returns a promise) now, or once the running sync has
  // ended (see the top).
  function whenIdle(edit) {
    if (app.syncing) whenIdle.waiting.push(edit);
    else edit();
  }
  whenIdle.waiting = [];

  // The edits made during the sync that just ended, stored before another sync
  // may start (its push must find them).
  function applyWaitingEdits() {
    var edits = whenIdle.waiting.splice(0);
    if (!edits.length) return;
    return Promise.all(edits.map(function (edit) { return edit(); })).then(applyWaitingEdits);
  }

  // --- live sync: the change feed says when ------------------------------------

  var syncAgain = false; // a notice came during a sync: one more after it
  var burst = null; // the timer that gathers a burst of notices into one sync

  function syncSoon() {
    if (burst) return;
    burst = setTimeout(function () {
      burst = null;
      if (app.syncing) syncAgain = true;
      else sync();
    }, NOTICE_BURST_MS);
  }

  // Whether a notice's endpoint ("taskUpdates", as the router names it) is one of ours.
  function isOurs(endpoint) {
    return [options.projectUri, options.taskUri].some(function (uri) {
      return uri.split("/").pop() === endpoint;
    });
  }

  // The smallest `now` of the page's last pulls: the feed then tells at once
  // of anything the page missed since, and of nothing else.
  function lastPulled() {
    return Promise.all([findSync(Project), findSync(Task)]).then(function (syncs) {
      var dates = syncs.map(function (s) { return s ? s.serverDate : 0; });
      return Math.min.apply(null, dates);
    });
  }

  function followChanges() {
    if (!options.eventsUri || typeof window.EventSource !== "function") return;
    return lastPulled().then(function (since) {
      var feed = new EventSource(options.eventsUri + (since ? "?since=" + since : ""));
      app.live.state = "connecting";
      feed.onopen = function () { app.live.state = "open"; };
      // A cut connection: EventSource reconnects by itself (after the feed's
      // retry:, with Last-Event-ID). A refusal (signed out, no feed) ends it.
      feed.onerror = function () {
        app.live.state = feed.readyState === EventSource.CLOSED ? "closed" : "connecting";
      };
      feed.addEventListener("change", function (event) {
        if (!JSON.parse(event.data).endpoints.some(isOurs)) return;
        app.live.notices += 1;
        if (app.syncing) syncAgain = true;
        else syncSoon();
      });
      app.live.feed = feed;
    });
  }

  // --- the page ---------------------------------------------------------------

  function enable(on) {
    $("sync").disabled = !on;
    // Typing goes on during a sync (live syncs come unasked); adding waits for its end.
    $("new-task").disabled = !current;
    $("add").disabled = !on || !current;
  }

  function changed() {
    $("pending").textContent = "Changes not synced yet: press Sync.";
    return flush().then(render);
  }

  function render() {
    return list(Project.all().order("name", true)).then(function (projects) {
      var wanted = current ? current.id : localStorage.getItem(SELECTED_PROJECT_KEY);
      current = projects.filter(function (p) { return p.id === wanted; })[0] || projects[0] || null;
      var select = $("project");
      select.textContent = "";
      projects.forEach(function (p) {
        var option = document.createElement("option");
        option.value = p.id;
        option.textContent = p.name;
        option.selected = p === current;
        select.appendChild(option);
      });
      if (!current) {
        $("tasks").innerHTML = '<li class="empty">No project yet: press Sync.</li>';
        return;
      }
      localStorage.setItem(SELECTED_PROJECT_KEY, current.id);
      var tasks = Task.all().filter("project", "=", current.id).order("done", true)
        .order("priority", false).order("name", true);
      return list(tasks).then(renderTasks);
    });
  }

  // What the page shows of a task's other synced fields (edited in the admin).
  function details(task) {
    var shown = [];
    var labels = task.notes && Array.isArray(task.notes.labels) ? task.notes.labels : [];
    labels.forEach(function (label) { shown.push("#" + label); });
    if (task.priority) shown.push("priority " + task.priority);
    if (typeof task.estimate === "number") shown.push(task.estimate + " h");
    // A Date once loaded from the local database; as pulled, the wire's number
    // (seconds, or milliseconds above 10^12, as persistence.js reads them).
    var due = task.due;
    if (typeof due === "number") due = new Date(due > 1e12 ? due : due * 1000);
    if (due instanceof Date && !isNaN(due)) {
      shown.push("due " + due.toISOString().slice(0, 16).replace("T", " ") + " UTC");
    }
    return shown;
  }

  function renderTasks(tasks) {
    var ul = $("tasks");
    ul.textContent = "";
    if (!tasks.length) {
      ul.innerHTML = '<li class="empty">Nothing to do.</li>';
    }
    tasks.forEach(function (task) {
      var li = document.createElement("li");
      li.dataset.id = task.id;
      li.className = task.done ? "done" : "";
      var box = document.createElement("input");
      box.type = "checkbox";
      box.checked = !!task.done;
      box.title = "done";
      box.addEventListener("change", function () {
        var done = box.checked;
        whenIdle(function () {
          task.done = done;
          return changed();
        });
      });
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = task.name;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "delete";
      remove.title = "delete";
      remove.textContent = "×";
      remove.addEventListener("click", function () {
        whenIdle(function () {
          persistence.remove(task);
          return changed();
        });
      });
      li.appendChild(box);
      li.appendChild(name);
      details(task).forEach(function (text) {
        var badge = document.createElement("small");
        badge.className = "detail";
        badge.textContent = text;
        li.appendChild(badge);
      });
      li.appendChild(remove);
      ul.appendChild(li);
    });
  }

  function start() {
    persistence.debug = /[?&]debug=1(&|$)/.test(location.search);
    persistence.store.websql.config(persistence, options.database, "To-do", 5 * 1024 * 1024);
    Project = persistence.define("Project", {name: "TEXT"});
    // The same fields as the server's Task (todo/models.py): DATE travels as
    // seconds (or ms), JSON as any JSON value, REAL as a number.
    Task = persistence.define("Task", {
      name: "TEXT", done: "BOOL", due: "DATE", priority: "INT", estimate: "REAL", notes: "JSON",
    });
    Task.hasOne("project", Project);
    Project.enableSync(options.projectUri);
    Task.enableSync(options.taskUri);
    entities[options.projectUri] = Project;
    entities[options.taskUri] = Task;
    app.Project = Project;
    app.Task = Task;

    $("sync").addEventListener("click", sync);
    $("project").addEventListener("change", function () {
      current = null;
      localStorage.setItem(SELECTED_PROJECT_KEY, $("project").value);
      render();
    });
    $("add-task").addEventListener("submit", function (event) {
      event.preventDefault();
      var name = $("new-task").value.trim(), project = current;
      if (!name || !project) return;
      $("new-task").value = "";
      whenIdle(function () {
        persistence.add(new Task({name: name, done: false, project: project}));
        return changed();
      });
    });
    $("forget").addEventListener("click", function () {
      localStorage.removeItem("websql:" + options.database);
      localStorage.removeItem(SELECTED_PROJECT_KEY);
      location.reload();
    });
    return new Promise(function (resolve) { persistence.schemaSync(resolve); })
      .then(render)
      .then(sync) // the first visit finds the server's projects and tasks
      .then(followChanges);
  }

  app.ready = window.webSqlReady.then(start, function (error) {
    setStatus("The local database could not start: " + error.message, "error");
  });
})();
