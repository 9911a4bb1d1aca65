// A WatermelonDB device for the tests: the real @nozbe/watermelondb client on
// its LokiJS adapter, in memory, driven by one JSON command per stdin line.
//
//   node watermelon_client.js <node_modules dir> '<config JSON>'
//
// config: {"url": "http://127.0.0.1:8000/watermelon", "headers": {...},
//          "schema": {"version": 1, "tables": {"tasks": {"name": "string", ...}}}}
// commands: {"op": "create", "table": "tasks", "values": {...}}   -> {"id": ...}
//           {"op": "update", "table": "tasks", "id": ..., "values": {...}}
//           {"op": "delete", "table": "tasks", "id": ...}
//           {"op": "sync", "pageSize": null | N}                   -> {"ok": true} | {"ok": false, "error"}
//           {"op": "dump"}      -> {"tasks": {id: raw record}, ...} (deleted ones left out)
//           {"op": "follow", "eventsUrl": ".../events"}   -> {} (syncs on its own from then on)
//           {"op": "following"} -> {"syncs", "answers", "overlaps", "errors"} of the follow loop
// Each answer is one JSON line on stdout.
const path = require('path')
// WatermelonDB logs to the console: keep stdout for the answers.
console.log = console.info = console.warn = (...args) => process.stderr.write(args.join(' ') + '\n')
const modules = process.argv[2]
const config = JSON.parse(process.argv[3])
const req = (name) => require(path.join(modules, name))
const { Database, Model, appSchema, tableSchema } = req('@nozbe/watermelondb')
const LokiJSAdapter = req('@nozbe/watermelondb/adapters/lokijs').default
const { synchronize } = req('@nozbe/watermelondb/sync')
const { randomId } = req('@nozbe/watermelondb/utils/common')

const tableNames = Object.keys(config.schema.tables)
const schema = appSchema({
  version: config.schema.version,
  tables: tableNames.map((name) => tableSchema({
    name,
    columns: Object.entries(config.schema.tables[name]).map(([column, type]) => (
      { name: column, type, isOptional: true })),
  })),
})
const modelClasses = tableNames.map((name) => class extends Model { static table = name })
const adapter = new LokiJSAdapter({
  schema, useWebWorker: false, useIncrementalIndexedDB: false,
  extraLokiOptions: { autosave: false },
})
const database = new Database({ adapter, modelClasses })

async function call(url, options) {
  const response = await fetch(url, { ...options, headers: { ...config.headers, ...(options || {}).headers } })
  const text = await response.text()
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${text}`)
  return JSON.parse(text)
}

// A paged first sync: the app's pullChanges follows the server's pages and
// hands WatermelonDB their union (WatermelonDB takes one answer per sync).
async function pullPages(query, pageSize) {
  const merged = { changes: {}, timestamp: null }
  let cursor = null
  for (;;) {
    const page = await call(`${config.url}?${query}&limit=${pageSize}` + (cursor ? `&cursor=${cursor}` : ''))
    for (const [table, parts] of Object.entries(page.changes)) {
      const into = merged.changes[table] || (merged.changes[table] = { created: [], updated: [], deleted: [] })
      for (const part of ['created', 'updated', 'deleted']) into[part].push(...parts[part])
    }
    merged.timestamp = page.timestamp
    merged.experimentalStrategy = page.experimentalStrategy
    merged.pages = (merged.pages || 0) + 1
    if (!page.hasMore) return merged
    cursor = page.cursor
  }
}

let lastPages = 0
async function sync(pageSize) {
  await synchronize({
    database,
    sendCreatedAsUpdated: true,
    pullChanges: async ({ lastPulledAt, schemaVersion, migration }) => {
      const query = `last_pulled_at=${lastPulledAt}&schema_version=${schemaVersion}` +
        `&migration=${encodeURIComponent(JSON.stringify(migration))}`
      const answer = pageSize ? await pullPages(query, pageSize) : await call(`${config.url}?${query}`)
      lastPages = answer.pages || 1
      // A table whose deletions the server pruned comes whole, to replace the device's copy.
      const { changes, timestamp, experimentalStrategy } = answer
      return { changes, timestamp, experimentalStrategy }
    },
    // As docs/watermelon.md tells apps: each push carries an id, and names the pushes
    // whose answer never came, so that the server does not store their values again.
    pushChanges: async ({ changes, lastPulledAt }) => {
      const unanswered = (await database.localStorage.get('syncUnanswered')) || []
      const pushId = randomId()
      await database.localStorage.set('syncUnanswered', [...unanswered, pushId].slice(-20))
      const headers = { 'Content-Type': 'application/json', 'X-Sync-Push-Id': pushId }
      if (unanswered.length) headers['X-Sync-Unanswered'] = unanswered.join(',')
      await call(`${config.url}?last_pulled_at=${lastPulledAt}`, {
        method: 'POST', body: JSON.stringify(changes), headers,
      })
      await database.localStorage.set('syncUnanswered', [])
    },
  })
}

// Live sync, as docs/watermelon.md step 6 tells apps: the feed's long-poll
// names the tables that changed; a notice naming one of ours syncs. One sync
// at a time: a notice during a sync makes one more after it. A device that
// follows is not sent "sync" commands by the tests (WatermelonDB refuses two
// synchronize() at once).
const following = { syncs: 0, answers: 0, overlaps: 0, errors: [] }
let running = null
let again = false
let inSync = 0

function syncNow() {
  if (running) { again = true; return running }
  running = (async () => {
    try {
      do {
        again = false
        inSync += 1
        if (inSync > 1) following.overlaps += 1
        try { await sync() } finally { inSync -= 1 }
        following.syncs += 1
      } while (again)
    } finally { running = null }
  })()
  return running
}

async function follow(eventsUrl) {
  let since = ''  // nothing known yet: the first answer names every table
  for (;;) {
    try {
      const answer = await call(`${eventsUrl}?wait=30&since=${since}`, { signal: AbortSignal.timeout(45000) })
      following.answers += 1
      if (answer.tables.some((table) => tableNames.includes(table))) await syncNow()
      since = answer.since  // only once synced: a failed sync is tried again at once
    } catch (error) {
      following.errors.push(String(error && error.message || error))
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
  }
}

const commands = {
  async create({ table, values }) {
    let id
    await database.write(async () => {
      const record = await database.get(table).create((r) => {
        for (const [k, v] of Object.entries(values)) r._setRaw(k, v)
      })
      id = record.id
    })
    return { id }
  },
  async update({ table, id, values }) {
    await database.write(async () => {
      const record = await database.get(table).find(id)
      await record.update((r) => { for (const [k, v] of Object.entries(values)) r._setRaw(k, v) })
    })
    return {}
  },
  async delete({ table, id }) {
    await database.write(async () => { await (await database.get(table).find(id)).markAsDeleted() })
    return {}
  },
  async sync({ pageSize }) {
    try {
      await sync(pageSize)
      return { ok: true, pages: lastPages }
    } catch (error) {
      return { ok: false, error: String(error && error.message || error) }
    }
  },
  async follow({ eventsUrl }) {
    follow(eventsUrl)  // runs until the process ends
    return {}
  },
  async following() {
    return following
  },
  async dump() {
    const out = {}
    for (const table of tableNames) {
      out[table] = {}
      for (const record of await database.get(table).query().fetch()) {
        const { _status, _changed, ...raw } = record._raw
        out[table][record.id] = raw
      }
    }
    return out
  },
}

const readline = require('readline')
const lines = readline.createInterface({ input: process.stdin })
let queue = Promise.resolve()
lines.on('line', (line) => {
  queue = queue.then(async () => {
    let answer
    try {
      const command = JSON.parse(line)
      answer = await commands[command.op](command)
    } catch (error) {
      answer = { fatal: String(error && error.stack || error) }
    }
    process.stdout.write(JSON.stringify(answer) + '\n')
  })
})
lines.on('close', () => queue.then(() => process.exit(0)))
process.stdout.write(JSON.stringify({ ready: true }) + '\n')
