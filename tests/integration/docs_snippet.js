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
const body = config.snippet.replace(IMPORT, (_, names, module) => `const {${names}} = req('${module}')`)
const siteFetch = (url, options) => fetch(url.replace(/^https:\/\/example\.com/, config.url), options)
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor
const snippet = new AsyncFunction('database', 'token', 'fetch', 'req', body)

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

main().then(() => process.exit(0), (error) => {
  process.stderr.write(String(error && error.stack || error) + '\n')
  process.stdout.write(JSON.stringify({ error: String(error && error.message || error) }) + '\n')
  process.exit(1)
})
