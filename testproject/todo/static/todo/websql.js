/*
 * websql.js: window.openDatabase (Web SQL) on top of sql.js, for persistence.js.
 *
 * Why: persistence.js 0.3.0 stores its data through Web SQL
 * (persistence.store.websql.js), which Chromium removed in version 119. This
 * file provides the part of the Web SQL API that persistence.js uses, backed
 * by sql.js (SQLite compiled to WebAssembly), so the unmodified client runs
 * in a modern browser. It is demo and test support, not a complete Web SQL.
 *
 * Usage (scripts in this order):
 *
 *   <script src="/vendor/sql-wasm.js"></script>
 *   <script src="/static/todo/websql.js"
 *           data-wasm-url="/vendor/sql-wasm.wasm"
 *           data-persist="localStorage"></script>
 *   <script src="/vendor/persistence.js"></script>
 *   <script src="/vendor/persistence.store.sql.js"></script>
 *   <script src="/vendor/persistence.store.websql.js"></script>
 *   <script src="/vendor/persistence.sync.js"></script>
 *   <script>
 *     webSqlReady.then(function () {
 *       persistence.store.websql.config(persistence, "todo", "To-do list", 5 * 1024 * 1024);
 *       // define entities, schemaSync, ...
 *     });
 *   </script>
 *
 * Options, as attributes of this script tag:
 *   data-wasm-url   where sql-wasm.wasm is served (default /vendor/sql-wasm.wasm)
 *   data-persist    "localStorage" to keep each database across reloads under
 *                   the key "websql:<name>" (base64 of the SQLite file, saved
 *                   after every committed transaction that wrote something).
 *                   Off by default: databases then live as long as the page.
 *
 * Semantics kept from Web SQL: transactions of one database run one at a
 * time; statements run in the order queued, including ones queued from
 * callbacks of the same transaction, and never before executeSql returns; a
 * failed statement rolls its transaction back unless its error callback
 * returns false (the spec's wording; old WebKit/Chromium rolled back only when
 * it returned true); an exception in any callback rolls back; the success
 * callback runs after COMMIT. Not provided: changeVersion, version checks,
 * size quotas, insertId on statements that are not INSERT/REPLACE.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var options = {
    wasmUrl: (script && script.dataset.wasmUrl) || "/vendor/sql-wasm.wasm",
    persist: !!script && script.dataset.persist === "localStorage",
    storagePrefix: "websql:",
  };

  var SQL = null; // the sql.js module, once loaded
  var loadError = null; // why it could not be loaded
  var databases = {}; // name -> Database: every openDatabase(name) shares one file and one queue

  // Web SQL callbacks run in later tasks, never inside the caller's stack.
  // A MessageChannel gives a task without setTimeout's 4 ms clamping.
  var channel = new MessageChannel();
  var deferred = [];
  channel.port1.onmessage = function () {
    deferred.shift()();
  };
  function defer(fn) {
    deferred.push(fn);
    channel.port2.postMessage(null);
  }

  // An exception from the application's transaction callbacks must not break
  // our queue, but must not vanish either.
  function report(error) {
    setTimeout(function () {
      throw error;
    });
  }

  // SQLError codes of the Web SQL spec.
  var DATABASE_ERR = 1, SYNTAX_ERR = 5, CONSTRAINT_ERR = 6;

  function sqlError(exception) {
    var message = String((exception && exception.message) || exception);
    var code = /syntax error|no such|incomplete input/i.test(message) ? SYNTAX_ERR
      : /constraint/i.test(message) ? CONSTRAINT_ERR
      : DATABASE_ERR;
    return { code: code, message: message };
  }

  // Web SQL binds numbers, strings and null as such, anything else as its string.
  function toSqlValue(value) {
    if (value === null || value === undefined) return null;
    if (typeof value === "number" || typeof value === "string") return value;
    return String(value);
  }

  function scalar(db, sql) {
    return db.exec(sql)[0].values[0][0];
  }

  // --- localStorage persistence (opt-in) -------------------------------------

  function load(name) {
    var text = options.persist && localStorage.getItem(options.storagePrefix + name);
    if (!text) return undefined;
    var binary = atob(text);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function save(name, db) {
    var bytes = db.export();
    var binary = "";
    for (var i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    try {
      localStorage.setItem(options.storagePrefix + name, btoa(binary));
    } catch (e) {
      console.warn("websql.js: could not save database " + name + " to localStorage", e);
    }
  }

  // --- Database: one sql.js database and its transaction queue ---------------

  function Database(name) {
    this.name = name;
    this.db = new SQL.Database(load(name));
    this.queue = [];
    this.busy = false;
  }

  Database.prototype.enqueue = function (transaction) {
    this.queue.push(transaction);
    this.next();
  };

  Database.prototype.next = function () {
    if (this.busy || this.queue.length === 0) return;
    this.busy = true;
    var transaction = this.queue.shift();
    defer(function () {
      transaction._run();
    });
  };

  Database.prototype.release = function () {
    this.busy = false;
    this.next();
  };

  // --- Transaction: what callbacks receive as `tx` ---------------------------

  function Transaction(database, callback, errorCallback, successCallback, readOnly) {
    this._database = database;
    this._callback = callback;
    this._errorCallback = errorCallback;
    this._successCallback = successCallback;
    this._readOnly = readOnly;
    this._statements = [];
    this._finished = false;
  }

  Transaction.prototype.executeSql = function (sql, args, successCallback, errorCallback) {
    if (this._finished) {
      throw new Error("InvalidStateError: executeSql() on a transaction that has finished");
    }
    this._statements.push({
      sql: sql,
      args: (args || []).map(toSqlValue),
      success: successCallback,
      error: errorCallback,
    });
  };

  Transaction.prototype._run = function () {
    var db = this._database.db;
    try {
      // query_only makes writes fail in readTransaction, as Web SQL requires.
      db.exec(this._readOnly ? "PRAGMA query_only = ON; BEGIN" : "BEGIN");
      this._changes = this._changesAtStart = scalar(db, "SELECT total_changes()");
      if (this._callback) this._callback(this);
    } catch (e) {
      return this._rollback(sqlError(e));
    }
    // Statements queued by callbacks join the end of the queue; the
    // transaction commits once a callback returns with nothing left queued.
    while (this._statements.length > 0) {
      var statement = this._statements.shift();
      var result, error = null;
      try {
        result = this._execute(statement.sql, statement.args);
      } catch (e) {
        error = sqlError(e);
      }
      try {
        if (!error) {
          if (statement.success) statement.success(this, result);
        } else if (!statement.error || statement.error(this, error) !== false) {
          return this._rollback(error);
        }
      } catch (e) {
        return this._rollback(sqlError(e));
      }
    }
    this._commit();
  };

  Transaction.prototype._execute = function (sql, args) {
    var db = this._database.db;
    var rows = [];
    var statement = db.prepare(sql);
    try {
      statement.bind(args);
      while (statement.step()) rows.push(statement.getAsObject());
    } finally {
      statement.free();
    }
    // sqlite's changes() keeps the count of the last write, even after a
    // SELECT, so trust it only when the total moved.
    var total = scalar(db, "SELECT total_changes()");
    var rowsAffected = total !== this._changes ? db.getRowsModified() : 0;
    this._changes = total;
    var resultSet = {
      rowsAffected: rowsAffected,
      insertId: undefined,
      rows: {
        length: rows.length,
        item: function (i) {
          return i >= 0 && i < rows.length ? rows[i] : null;
        },
      },
    };
    if (rowsAffected > 0 && /^\s*(INSERT|REPLACE)\b/i.test(sql)) {
      resultSet.insertId = scalar(db, "SELECT last_insert_rowid()");
    }
    return resultSet;
  };

  Transaction.prototype._commit = function () {
    var database = this._database;
    try {
      database.db.exec("COMMIT");
    } catch (e) {
      return this._rollback(sqlError(e));
    }
    this._end();
    if (options.persist && this._changes !== this._changesAtStart) {
      save(database.name, database.db);
    }
    database.release();
    if (this._successCallback) {
      try {
        this._successCallback();
      } catch (e) {
        report(e);
      }
    }
  };

  Transaction.prototype._rollback = function (error) {
    var database = this._database;
    try {
      database.db.exec("ROLLBACK");
    } catch (e) {
      // SQLite already rolled back by itself (e.g. after a full disk).
    }
    this._end();
    database.release();
    if (this._errorCallback) {
      try {
        this._errorCallback(error);
      } catch (e) {
        report(e);
      }
    }
  };

  Transaction.prototype._end = function () {
    this._finished = true;
    this._statements = [];
    if (this._readOnly) this._database.db.exec("PRAGMA query_only = OFF");
  };

  // --- The public API ----------------------------------------------------------

  function openDatabase(name, version, displayName, estimatedSize, creationCallback) {
    if (!SQL) {
      throw loadError || new Error(
        "websql.js: sql.js is still loading; wait for window.webSqlReady before openDatabase()"
      );
    }
    var isNew = !databases.hasOwnProperty(name) && !load(name);
    var database = databases[name] || (databases[name] = new Database(name));
    var handle = {
      version: version || "",
      transaction: function (callback, errorCallback, successCallback) {
        database.enqueue(new Transaction(database, callback, errorCallback, successCallback, false));
      },
      readTransaction: function (callback, errorCallback, successCallback) {
        database.enqueue(new Transaction(database, callback, errorCallback, successCallback, true));
      },
    };
    if (isNew && creationCallback) {
      defer(function () {
        creationCallback(handle);
      });
    }
    return handle;
  }

  // Replace any native Web SQL too, so that every browser runs the same code.
  window.openDatabase = openDatabase;
  window.webSqlPolyfill = { options: options };

  window.webSqlReady = (
    typeof initSqlJs !== "function"
      ? Promise.reject(new Error("websql.js: load sql-wasm.js (sql.js) before websql.js"))
      : initSqlJs({ locateFile: function () { return options.wasmUrl; } }).catch(function (error) {
          loadError = new Error("websql.js: could not start sql.js with " + options.wasmUrl + ": " + error);
          throw loadError;
        })
  ).then(function (module) {
    SQL = module;
  });
})();
