// Driver of the aggregations benchmark (bench/aggregations/run starts the server and stores the
// events first; this script measures):
//
//   node aggregations.mjs --grpc HOST:PORT --http HOST:PORT --nodata BIN --load BIN --query-bin BIN
//        --data DIR --topic T --events N --wasm FILE --machine FILE --json OUT --markdown OUT
//        [--users 100000] [--lateness 0s] [--duckdb-repeat 3] [--live-rate 500000]
//        [--live-secs 10] [--query-rate 10000] [--query-low-rate 2000] [--query-secs 10]
//        [--query-conns 16] [--watch-updates 1000]
//        [--watch-rate 100] [--server-pid PID] [--perf PREFIX]
//
// Phases, one after the other so each has the machine to itself:
//   duckdb    DuckDB's GROUP BY over read_parquet of the topic's own files, into a table, best of
//             `duckdb-repeat` runs; first, while no aggregation exists (an idle aggregation costs
//             the server CPU, see BENCHMARKS.md).
//   backfill  `aggregation add` of count() and sum($.amount) by $.user in 1-minute tumbling
//             windows from earliest with `--lateness` (0s: the watermark follows the slowest
//             partition still behind its end, so no record is late however the partitions are
//             read; the run fails if any is) with built-in measures, timed until GET
//             /v1/aggregations/{name} shows state RUNNING, lag 0 and the backfill done (polled
//             every 20 ms; with --perf, under `perf record -g` into PREFIX-<name>). Its windows
//             are checked against DuckDB's groups (per window: number of
//             keys, sum of n, sum of total; exactly, window by window, for 500 random users).
//   query     on that aggregation: GET /v1/aggregations/{name}/keys/{key} for random existing
//             users by nodata_agg_query, open loop at `query-rate` requests/s (agg_query.cc;
//             up to `query-conns` keep-alive connections, one request in flight on each),
//             then at `query-low-rate`.
//             Then it is removed, and the backfill and its check are repeated with the C
//             WebAssembly reducer (sdk/component/c/examples/count_sum.c: values count and sum),
//             twice: first added (the module starts on the interpreter while it is compiled in
//             the background), then again once the compiled module is in the cache.
//   live      a built-in aggregation from latest on a second topic while nodata_agg_load
//             publishes at `live-rate` events/s (event time = ingest time) for `live-secs`;
//             `lag` sampled every 100 ms; lag in seconds = lag / the achieved ingest rate.
//   watch     GET /v1/aggregations/{name}/watch?key=K (Server-Sent Events) while single events
//             of K are published with Publish at `watch-rate`/s (20 of warmup, then
//             `watch-updates`); latency = the update showing the record received - its publish
//             acknowledged (negative when the update came first). Twice: on the live
//             aggregation right after its ingest, then on a new topic and aggregation, the only
//             one left.
// Prints a Markdown table and writes the JSON and Markdown results.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, 'package.json'));
const { DuckDBInstance } = await import(require.resolve('@duckdb/node-api'));
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const run = promisify(execFile);

function parseArgs(argv) {
  const o = {
    grpc: '', http: '', nodata: '', load: '', 'query-bin': '', data: '', topic: '', events: 0, wasm: '',
    machine: '', json: '', markdown: '', users: 100000, 'duckdb-repeat': 3, 'live-rate': 500000,
    'live-secs': 10, 'query-rate': 10000, 'query-low-rate': 2000, 'query-secs': 10, 'query-conns': 16,
    'watch-updates': 1000, 'watch-rate': 100, 'server-pid': 0, perf: '', lateness: '0s',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    o[k] = typeof o[k] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return o;
}

const o = parseArgs(process.argv.slice(2));
const log = (s) => process.stderr.write(`[bench] ${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms, monotonic
const r3 = (x) => Math.round(x * 1000) / 1000;

function stats(values) {
  const xs = Float64Array.from(values).sort();
  const at = (q) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))];
  return { count: xs.length, p50: r3(at(0.5)), p90: r3(at(0.9)), p99: r3(at(0.99)),
           max: r3(xs[xs.length - 1]) };
}

// --- HTTP on raw sockets: one request per connection (Connection: close; the end of the response
// is the end of the connection).
function httpGet(urlPath, { timeoutMs = 30000 } = {}) {
  const [host, port] = [o.http.slice(0, o.http.lastIndexOf(':')), Number(o.http.slice(o.http.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const chunks = [];
    const s = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => s.destroy(new Error(`GET ${urlPath}: timeout`)), timeoutMs);
    s.on('connect', () => s.write(`GET ${urlPath} HTTP/1.1\r\nHost: ${o.http}\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => chunks.push(d));
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
    s.on('end', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const head = text.indexOf('\r\n\r\n');
      const status = Number(text.slice(9, 12));
      resolve({ status, body: head >= 0 ? text.slice(head + 4) : '' });
    });
  });
}

async function getJson(urlPath) {
  const r = await httpGet(urlPath);
  if (r.status !== 200) throw new Error(`GET ${urlPath}: ${r.status} ${r.body}`);
  return JSON.parse(r.body);
}

async function cli(args) {
  const { stdout } = await run(o.nodata, [...args, '--server', o.grpc], { maxBuffer: 1 << 26 });
  return stdout;
}

// --- Backfill.
// The watermark follows the slowest partition that is still behind its end, so a backfill with
// no lateness drops nothing however out of step it reads the partitions; a late record fails the
// run (its windows would no longer equal DuckDB's).
const keyArgs = ['--input', o.topic, '--key', '$.user', '--window', 'tumbling:60s', '--from', 'earliest',
  '--lateness', o.lateness];

async function backfill(name, reducerArgs) {
  let perf = null;
  if (o.perf) {
    perf = spawn('perf', ['record', '-g', '-o', `${o.perf}-${name}`, '-p', String(o['server-pid'])], { stdio: 'ignore' });
    await sleep(500);
  }
  const t0 = now();
  await cli(['aggregation', 'add', name, ...keyArgs, ...reducerArgs]);
  let a;
  const tiers = [];
  for (;;) {
    a = await getJson(`/v1/aggregations/${name}`);
    if (a.tier && tiers[tiers.length - 1] !== a.tier) tiers.push(a.tier);
    if (a.state === 'FAILED') throw new Error(`aggregation ${name} failed: ${a.last_error}`);
    if (a.state === 'RUNNING' && a.lag === 0 && a.backfill.done === a.backfill.total) break;
    await sleep(20);
  }
  const seconds = (now() - t0) / 1000;
  if (perf) {
    perf.kill('SIGINT');
    await new Promise((r) => perf.on('exit', r));
  }
  if (a.records_in !== o.events) throw new Error(`${name}: ${a.records_in} records in, want ${o.events}`);
  if (a.late !== 0) throw new Error(`${name}: ${a.late} records late (--lateness ${o.lateness})`);
  return { seconds, rows_per_s: o.events / seconds, keys: a.keys, late: a.late, skipped: a.skipped,
           tier: tiers.join(' -> '), records_in: a.records_in };
}

// --- DuckDB.
const files = path.join(o.data, 'topics', o.topic, '**', '*.parquet');
const duckdb = await DuckDBInstance.create(':memory:');
const con = await duckdb.connect();
const rows = async (sql) => (await con.runAndReadAll(sql)).getRowObjectsJson();
const groupBy = `
  SELECT json_extract_string(decode(data), '$.user') AS u,
         epoch_us(time_bucket(INTERVAL '1 minute', "timestamp")) AS w,
         count(*) AS n, sum(CAST(json_extract(decode(data), '$.amount') AS BIGINT)) AS total
  FROM read_parquet('${files}') GROUP BY ALL`;

async function duckdbRun() {
  const all = [];
  for (let i = 0; i < o['duckdb-repeat']; ++i) {
    await con.run('DROP TABLE IF EXISTS g');
    const t0 = now();
    await con.run(`CREATE TABLE g AS ${groupBy}`);
    all.push((now() - t0) / 1000);
  }
  const seconds = Math.min(...all);
  const [{ n }] = await rows(`SELECT count(*) AS n FROM read_parquet('${files}')`);
  if (Number(n) !== o.events) throw new Error(`DuckDB reads ${n} records from ${files}, want ${o.events}`);
  const version = (await rows('SELECT version() AS v'))[0].v;
  const threads = Number((await rows("SELECT current_setting('threads') AS v"))[0].v);
  const parquetFiles = Number((await rows(`SELECT count(*) AS n FROM glob('${files}')`))[0].n);
  return { seconds, rows_per_s: o.events / seconds, all_seconds: all, duckdb: version, threads,
           parquet_files: parquetFiles, groups: Number((await rows('SELECT count(*) AS n FROM g'))[0].n) };
}

// The aggregation's windows against DuckDB's groups (table g).
async function verify(name, nField, totalField) {
  const want = await rows('SELECT w, count(*) AS keys, sum(n) AS n, sum(total) AS total FROM g GROUP BY w ORDER BY w');
  let windows = 0;
  for (const w of want) {
    const start = new Date(Number(BigInt(w.w) / 1000n)).toISOString();
    let keys = 0, n = 0, total = 0, after = '';
    for (;;) {
      const page = await getJson(`/v1/aggregations/${name}/windows/${encodeURIComponent(start)}?limit=100000` +
        (after ? `&after=${encodeURIComponent(after)}` : ''));
      for (const k of page.keys) {
        keys++;
        n += k.values[nField];
        total += k.values[totalField];
      }
      if (page.next == null) break;
      after = page.next;
    }
    const got = { keys, n, total };
    const exp = { keys: Number(w.keys), n: Number(w.n), total: Number(w.total) };
    if (JSON.stringify(got) !== JSON.stringify(exp)) {
      throw new Error(`${name}, window ${start}: nodata ${JSON.stringify(got)}, DuckDB ${JSON.stringify(exp)}`);
    }
    windows++;
  }
  const sample = await rows('SELECT u FROM (SELECT DISTINCT u FROM g) USING SAMPLE 500 ROWS');
  for (const { u } of sample) {
    const exp = (await rows(`SELECT w, n, total FROM g WHERE u = '${u}' ORDER BY w`))
      .map((r) => `${new Date(Number(BigInt(r.w) / 1000n)).toISOString()} ${r.n} ${r.total}`);
    const got = (await getJson(`/v1/aggregations/${name}/keys/${encodeURIComponent(u)}`)).windows
      .map((x) => `${new Date(x.start).toISOString()} ${x.values[nField]} ${x.values[totalField]}`);
    if (JSON.stringify(got) !== JSON.stringify(exp)) {
      throw new Error(`${name}, user ${u}: nodata ${JSON.stringify(got)}, DuckDB ${JSON.stringify(exp)}`);
    }
  }
  return { windows, sampled_keys: sample.length };
}

// --- Query: nodata_agg_query, open loop over up to `query-conns` keep-alive connections.
async function query(name, users, rate) {
  const keys = path.join(path.dirname(o.data), 'users.txt');
  fs.writeFileSync(keys, `${users.map((u) => encodeURIComponent(u)).join('\n')}\n`);
  const { stdout } = await run(o['query-bin'], ['--http', o.http, '--prefix', `/v1/aggregations/${name}/keys/`,
    '--keys', keys, '--rate', String(rate), '--seconds', String(o['query-secs']), '--warmup', '1',
    '--conns', String(o['query-conns'])]).catch((e) => { throw new Error(`nodata_agg_query: ${e.stdout} ${e.stderr}`); });
  return JSON.parse(stdout);
}

// --- Live.
async function live() {
  await cli(['topic', 'create', 'live', '--partitions', '4']);
  await cli(['aggregation', 'add', 'live', '--input', 'live', '--key', '$.user', '--window', 'tumbling:60s',
    '--from', 'latest', '--measure', 'n=count()', '--measure', 'total=sum($.amount)']);
  while ((await getJson('/v1/aggregations/live')).state !== 'RUNNING') await sleep(20);
  const events = Math.round(o['live-rate'] * o['live-secs']);
  const load = spawn(o.load, ['--server', o.grpc, '--topic', 'live', '--events', String(events),
    '--users', String(o.users), '--rate', String(o['live-rate']), '--event-rate', '0'],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  load.stdout.on('data', (d) => { out += d; });
  let running = true;
  const exited = new Promise((r) => load.on('exit', (code) => { running = false; r(code); }));
  const samples = [];
  const t0 = now();
  while (running) {
    const t = now();
    const a = await getJson('/v1/aggregations/live');
    samples.push({ t: (t - t0) / 1000, lag: a.lag });
    await sleep(Math.max(0, 100 - (now() - t)));
  }
  if ((await exited) !== 0) throw new Error('nodata_agg_load failed in the live phase');
  const ingest = JSON.parse(out.trim().split('\n').pop());
  // After the load stops: time until the aggregation reflects every record.
  const tEnd = now();
  let a;
  for (;;) {
    a = await getJson('/v1/aggregations/live');
    if (a.lag === 0) break;
    await sleep(20);
  }
  const drain = (now() - tEnd) / 1000;
  const lags = samples.map((s) => s.lag);
  const ls = stats(lags);
  return { target_rate: o['live-rate'], achieved_rate: ingest.events_per_s, events: ingest.events,
           ingest_seconds: ingest.seconds, samples: samples.length,
           lag_records: { p50: ls.p50, p99: ls.p99, max: ls.max },
           lag_seconds: { p50: ls.p50 / ingest.events_per_s, p99: ls.p99 / ingest.events_per_s,
                          max: ls.max / ingest.events_per_s },
           drain_seconds: drain, records_in: a.records_in, late: a.late };
}

// --- Watch.
async function watch(topic, name) {
  const def = protoLoader.loadSync(path.join(here, '../../proto/nodata/v1/nodata.proto'),
    { keepCase: true, longs: Number, defaults: true, oneofs: true });
  const v1 = grpc.loadPackageDefinition(def).nodata.v1;
  const ingest = new v1.IngestService(o.grpc, grpc.credentials.createInsecure());
  const key = 'watched-user';
  const n = o['watch-updates'];
  const warm = 20;
  const total = n + warm;
  const acked = new Float64Array(total);
  const seen = new Float64Array(total);
  // Record i: its window and its position in that window, known before it is sent.
  const windowOf = new Array(total);
  const posOf = new Int32Array(total);
  const byWindow = new Map();  // window start ms -> [record index by position-1]
  let dropped = 0;
  const [host, port] = [o.http.slice(0, o.http.lastIndexOf(':')), Number(o.http.slice(o.http.lastIndexOf(':') + 1))];
  const s = net.connect({ host, port, noDelay: true });
  let buf = '';
  let opened = false;
  s.on('connect', () => s.write(`GET /v1/aggregations/${name}/watch?key=${key} HTTP/1.1\r\nHost: ${o.http}\r\n\r\n`));
  s.on('data', (d) => {
    const t = now();
    buf += d.toString('utf8');
    for (let end; (end = buf.indexOf('\n\n')) >= 0;) {
      const msg = buf.slice(0, end);
      buf = buf.slice(end + 2);
      if (msg.includes(': watching')) opened = true;
      if (msg.includes('event: dropped')) dropped++;
      const m = msg.match(/^event: update\ndata: (.*)$/m);
      if (!m) continue;
      const u = JSON.parse(m[1]);
      const list = byWindow.get(Date.parse(u.start)) ?? [];
      for (let p = 0; p < Math.min(u.values.n, list.length); ++p) if (seen[list[p]] === 0) seen[list[p]] = t;
    }
  });
  while (!opened) await sleep(5);
  const t0 = now();
  const pending = [];
  for (let i = 0; i < total; ++i) {
    const due = t0 + (i / o['watch-rate']) * 1000;
    while (now() < due) await sleep(1);
    const ms = Date.now();
    const w = ms - (ms % 60000);
    if (!byWindow.has(w)) byWindow.set(w, []);
    byWindow.get(w).push(i);
    windowOf[i] = w;
    posOf[i] = byWindow.get(w).length;
    const data = Buffer.from(JSON.stringify({ user: key, amount: i, seq: i }));
    pending.push(new Promise((resolve, reject) => {
      ingest.Publish({ event: { topic, data, timestamp: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 } } },
        (e) => { if (e) reject(e); else { acked[i] = now(); resolve(); } });
    }));
  }
  await Promise.all(pending);
  const deadline = now() + 10000;
  while (now() < deadline && seen.some((x) => x === 0)) await sleep(10);
  s.destroy();
  ingest.close();
  const lat = [];
  let missing = 0;
  for (let i = warm; i < total; ++i) {
    if (seen[i] === 0) missing++; else lat.push(seen[i] - acked[i]);
  }
  return { updates: lat.length, missing, dropped, rate: o['watch-rate'], latency_ms: stats(lat) };
}

// --- The run. DuckDB first: an aggregation that exists costs CPU even when idle, and DuckDB's
// time should not pay for it.
const result = { events: o.events, users: o.users };
log(`DuckDB GROUP BY over ${files}, best of ${o['duckdb-repeat']}`);
result.duckdb = await duckdbRun();
log(`  ${JSON.stringify(result.duckdb)}`);
log(`backfill, built-in measures: ${o.events} events`);
result.builtin = await backfill('builtin', ['--measure', 'n=count()', '--measure', 'total=sum($.amount)']);
log(`  ${JSON.stringify(result.builtin)}`);
result.builtin.check = await verify('builtin', 'n', 'total');
log(`  built-in equals DuckDB: ${JSON.stringify(result.builtin.check)}`);
const users = (await rows('SELECT DISTINCT u FROM g')).map((r) => r.u);
log(`query: GET keys/{key} at ${o['query-rate']}/s for ${o['query-secs']} s`);
result.query = await query('builtin', users, o['query-rate']);
log(`  ${JSON.stringify(result.query)}`);
log(`query: the same at ${o['query-low-rate']}/s`);
result.query_low = await query('builtin', users, o['query-low-rate']);
log(`  ${JSON.stringify(result.query_low)}`);
await cli(['aggregation', 'remove', 'builtin']);
log('backfill, WebAssembly reducer (count_sum.c)');
result.wasm = await backfill('wasm', ['--wasm', o.wasm]);
log(`  ${JSON.stringify(result.wasm)}`);
result.wasm.check = await verify('wasm', 'count', 'sum');
log(`  WebAssembly equals DuckDB: ${JSON.stringify(result.wasm.check)}`);
await cli(['aggregation', 'remove', 'wasm']);
// Again once the background compilation has put the module in the data directory's cache (up to
// 120 s): the new aggregation's reducer loads it from there and runs native from its first batch.
for (let i = 0; i < 1200 && !(fs.readdirSync(o.data).includes('wasm-cache') &&
  fs.readdirSync(path.join(o.data, 'wasm-cache')).length > 0); ++i) await sleep(100);
log('backfill, WebAssembly reducer, module cached');
result.wasm_cached = await backfill('wasm-cached', ['--wasm', o.wasm]);
log(`  ${JSON.stringify(result.wasm_cached)}`);
result.wasm_cached.check = await verify('wasm-cached', 'count', 'sum');
await cli(['aggregation', 'remove', 'wasm-cached']);
log(`live: ${o['live-rate']} events/s for ${o['live-secs']} s`);
result.live = await live();
log(`  ${JSON.stringify(result.live)}`);
log(`watch right after the live ingest: ${o['watch-updates']} single events at ${o['watch-rate']}/s`);
result.watch_after_burst = await watch('live', 'live');
log(`  ${JSON.stringify(result.watch_after_burst)}`);
await cli(['aggregation', 'remove', 'live']);
await cli(['topic', 'create', 'watch', '--partitions', '1']);
await cli(['aggregation', 'add', 'watched', '--input', 'watch', '--key', '$.user', '--window', 'tumbling:60s',
  '--from', 'latest', '--measure', 'n=count()', '--measure', 'total=sum($.amount)']);
while ((await getJson('/v1/aggregations/watched')).state !== 'RUNNING') await sleep(20);
log(`watch, the only aggregation: ${o['watch-updates']} single events at ${o['watch-rate']}/s`);
result.watch = await watch('watch', 'watched');
log(`  ${JSON.stringify(result.watch)}`);

// --- Report.
const machine = Object.fromEntries(fs.readFileSync(o.machine, 'utf8').trim().split('\n')
  .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
machine.loadavg_end = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
result.machine = machine;
const int = (x) => Math.round(x).toLocaleString('en-US');
const met = (ok) => (ok ? 'met' : '**not met**');
const b = result.builtin, w = result.wasm, d = result.duckdb, q = result.query, l = result.live, wa = result.watch;
const wb = result.watch_after_burst;
const lines = [];
lines.push(`Run at ${machine.date} on ${machine.cpu}, ${machine.cores} cores (${machine.hypervisor || 'bare metal'}), ` +
  `${(Number(machine.mem_bytes) / 2 ** 30).toFixed(1)} GiB RAM, ${machine.os}, kernel ${machine.kernel}; ` +
  `data on ${machine.device} (${machine.fstype}). nodata ${machine.nodata_rev}` +
  `${machine.nodata_dirty !== '0' ? ' + uncommitted changes' : ''}, ${d.duckdb}, node ${machine.node}, ` +
  `fsync ${machine.fsync}. Load average ${machine.loadavg_start} at start, ${machine.loadavg_end} at end.`);
lines.push('');
lines.push(`${int(o.events)} events (${int(o.users)} users, ~100 B of JSON each, event time 10,000 events/s), ` +
  `4 partitions, ${d.parquet_files} Parquet files; ${int(d.groups)} (window, user) groups. ` +
  `Both nodata aggregations equal DuckDB's GROUP BY (per window: keys, sum of n, sum of total; ` +
  `${b.check.sampled_keys} random users window by window).`);
lines.push('');
lines.push('| backfill: count() and sum($.amount) by user, 1-minute windows | rows/s | seconds | x DuckDB | target |');
lines.push('| --- | ---: | ---: | ---: | --- |');
lines.push(`| nodata, built-in measures | ${int(b.rows_per_s)} | ${b.seconds.toFixed(2)} | ${(b.rows_per_s / d.rows_per_s).toFixed(2)}x | >= 1.0x: ${met(b.rows_per_s >= d.rows_per_s)} |`);
const wc = result.wasm_cached;
lines.push(`| nodata, C WebAssembly reducer, first add (tier ${w.tier || '-'}) | ${int(w.rows_per_s)} | ${w.seconds.toFixed(2)} | ${(w.rows_per_s / d.rows_per_s).toFixed(2)}x | |`);
lines.push(`| nodata, C WebAssembly reducer, module cached (tier ${wc.tier || '-'}) | ${int(wc.rows_per_s)} | ${wc.seconds.toFixed(2)} | ${(wc.rows_per_s / d.rows_per_s).toFixed(2)}x | >= 0.7x: ${met(wc.rows_per_s >= 0.7 * d.rows_per_s)} |`);
lines.push(`| DuckDB GROUP BY over read_parquet (${d.threads} threads, best of ${d.all_seconds.length}) | ${int(d.rows_per_s)} | ${d.seconds.toFixed(2)} | 1.00x | |`);
lines.push('');
lines.push('| serving | target rate | achieved rate | p50 | p99 | max | target |');
lines.push('| --- | ---: | ---: | ---: | ---: | ---: | --- |');
lines.push(`| GET keys/{key} (ms, open loop, ${q.connections} keep-alive connections) | ${int(q.target_rate)}/s | ${int(q.achieved_rate)}/s | ${q.latency_ms.p50} | ${q.latency_ms.p99} | ${q.latency_ms.max} | p99 <= 1 ms: ${met(q.latency_ms.p99 <= 1 && q.achieved_rate >= 0.95 * q.target_rate)} |`);
const ql = result.query_low;
lines.push(`| GET keys/{key}, lower rate (ms) | ${int(ql.target_rate)}/s | ${int(ql.achieved_rate)}/s | ${ql.latency_ms.p50} | ${ql.latency_ms.p99} | ${ql.latency_ms.max} | |`);
lines.push(`| live lag while ingesting (records) | ${int(l.target_rate)}/s | ${int(l.achieved_rate)}/s | ${int(l.lag_records.p50)} | ${int(l.lag_records.p99)} | ${int(l.lag_records.max)} | |`);
lines.push(`| live lag (seconds = records / achieved rate) | | | ${l.lag_seconds.p50.toFixed(3)} | ${l.lag_seconds.p99.toFixed(3)} | ${l.lag_seconds.max.toFixed(3)} | < 1 s: ${met(l.lag_seconds.max < 1 && l.achieved_rate >= 0.95 * l.target_rate)} |`);
lines.push(`| Watch (SSE): ack -> update (ms) | ${wa.rate}/s | | ${wa.latency_ms.p50} | ${wa.latency_ms.p99} | ${wa.latency_ms.max} | p99 <= 50 ms: ${met(wa.latency_ms.p99 <= 50 && wa.missing === 0)} |`);
lines.push(`| Watch, right after the live ingest (ms) | ${wb.rate}/s | | ${wb.latency_ms.p50} | ${wb.latency_ms.p99} | ${wb.latency_ms.max} | |`);
lines.push('');
lines.push(`Query: ${int(q.requests)} requests after 1 s of warmup, ${q.errors} errors, at most ${q.connections} connections open (${q.connects} opened, ${q.resent} requests sent again after a close). ` +
  `Live: ${int(l.events)} events in ${l.ingest_seconds.toFixed(1)} s, ${l.samples} lag samples, lag 0 ${l.drain_seconds.toFixed(2)} s after the last ack. ` +
  `Watch: ${wa.updates} updates, ${wa.missing} missing, ${wa.dropped} dropped notices ` +
  `(right after the live ingest: ${wb.updates}, ${wb.missing}, ${wb.dropped}). ` +
  `Query client CPU: ${q.client_cpu.toFixed(2)} of a core.`);
const md = lines.join('\n');
console.log(md);
fs.writeFileSync(o.json, `${JSON.stringify(result, null, 2)}\n`);
fs.writeFileSync(o.markdown, `${md}\n`);
process.exit(0);
