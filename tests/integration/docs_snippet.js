// A WatermelonDB app around a docs snippet: docs/watermelon.md's synchronize()
// code, run as written by the real @nozbe/watermelondb client (LokiJS, in memory).
//
//   node docs_snippet.js <node_modules dir> '{"url": "http://127.0.0.1:PORT", "token": "...", "snippet": "..."}'
//
// The snippet gets what the page says an app has: `database` (the example
// site's tables), `token`, and its own imports; its https://example.com is the
// live site. The device makes a task, runs the snippet and prints
// {"created": id, "first": {id: name}}; after a line on stdin it renames its
// task, runs the snippet again and prints {"second": {id: name}}.
//
// With "sync": "<step 3's snippet>" in the config, the snippet is the live-sync
// one (step 6): it gets `sync()`, step 3's snippet as a function, and runs on
// by itself. The device makes a task and runs it; after each sync it prints
// {"synced": n, "overlaps": k, "created": id, "tasks": {id: name}}, k counting
// syncs that began while another ran. It ends when stdin closes.
const path = require('path')
const readline = require('readline')
// WatermelonDB logs to the console: keep stdout for the reports.
console.log = console.info = console.warn = (...args) => process.stderr.write(args.join(' ') + '\n')
const modules = process.argv[2]
const config = JSON.parse(process.argv[3])
const req = (name) => require(path.join(modules, name))
const { Database, Model, appSchema, tableSchema } = req('@nozbe/watermelondb')
const LokiJSAdapter = req('@nozbe/watermelondb/adapters/lokijs').default

const tables = {
  projects: { name: 'string' },
  tags: { name: 'string' },
  tasks: { name: 'string', done: 'boolean', project_id: 'string' },
}
const schema = appSchema({
  version: 1,
  tables: Object.entries(tables).map(([name, columns]) => tableSchema({
    name,
    columns: Object.entries(columns).map(([column, type]) => ({ name: column, type, isOptional: true })),
  })),
})
const modelClasses = Object.keys(tables).map((name) => class extends Model { static table = name })
const adapter = new LokiJSAdapter({
  schema, useWebWorker: false, useIncrementalIndexedDB: false, extraLokiOptions: { autosave: false },
})
const database = new Database({ adapter, modelClasses })

// The snippet's ES imports, as this CommonJS program loads the same modules.
const IMPORT = /^import\s*\{([^}]*)\}\s*from\s*'([^']+)'\s*;?\s*$/gm
const commonJS = (code) => code.replace(IMPORT, (_, names, module) => `const {${names}} = req('${module}')`)
const siteFetch = (url, options) => fetch(url.replace(/^https:\/\/example\.com/, config.url), options)
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor
const snippet = new AsyncFunction('database', 'token', 'fetch', 'req', commonJS(config.snippet))

async function tasks() {
  const out = {}
  for (const record of await database.get('tasks').query().fetch()) out[record.id] = record._raw.name
  return out
}

async function main() {
  let task
  await database.write(async () => {
    task = await database.get('tasks').create((record) => { record._setRaw('name', 'made on the device') })
  })
  await snippet(database, config.token, siteFetch, req)
  process.stdout.write(JSON.stringify({ created: task.id, first: await tasks() }) + '\n')
  await new Promise((resolve) => readline.createInterface({ input: process.stdin }).once('line', resolve))
  await database.write(async () => {
    await task.update((record) => { record._setRaw('name', 'renamed on the device') })
  })
  await snippet(database, config.token, siteFetch, req)
  process.stdout.write(JSON.stringify({ second: await tasks() }) + '\n')
}

async function follow() {
  let task
  await database.write(async () => {
    task = await database.get('tasks').create((record) => { record._setRaw('name', 'made on the device') })
  })
  const synchronizeOnce = new AsyncFunction('database', 'token', 'fetch', 'req', commonJS(config.sync))
  let running = 0
  let synced = 0
  let overlaps = 0
  const sync = async () => {
    running += 1
    if (running > 1) overlaps += 1
    try {
      await synchronizeOnce(database, config.token, siteFetch, req)
    } finally {
      running -= 1
    }
    synced += 1
    process.stdout.write(JSON.stringify({ synced, overlaps, created: task.id, tasks: await tasks() }) + '\n')
  }
  const live = new AsyncFunction('database', 'token', 'fetch', 'req', 'sync', commonJS(config.snippet))
  await live(database, config.token, siteFetch, req, sync)
  // The snippet's loop goes on by itself; stdin closing ends the device.
  await new Promise((resolve) => readline.createInterface({ input: process.stdin }).once('close', resolve))
}

;(config.sync ? follow : main)().then(() => process.exit(0), (error) => {
  process.stderr.write(String(error && error.stack || error) + '\n')
  process.stdout.write(JSON.stringify({ error: String(error && error.message || error) }) + '\n')
  process.exit(1)
})
