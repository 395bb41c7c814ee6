// The aggregations' checks shared by the tests: the CLI, their state over HTTP, and the same
// GROUP BY recomputed by DuckDB over the input topic's Parquet lake.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describeRun, runCli } from './cli.mjs';
import { duck } from './parquet.mjs';
import { sleep } from './util.mjs';

/** Runs `nodata aggregation ...args` against `srv`; asserts exit 0. */
export async function aggregation(srv, args) {
  const full = ['aggregation', ...args, '--server', srv.grpcAddr];
  const r = await runCli(full, { timeoutMs: 150000 });
  assert.equal(r.code, 0, describeRun(full, r));
  return r;
}

/** GET `urlPath` on the server's HTTP listener; asserts 200 and returns the JSON body. */
export async function getJson(srv, urlPath) {
  const res = await fetch(`http://${srv.httpAddr}${urlPath}`, { signal: AbortSignal.timeout(10000) });
  const body = await res.json();
  assert.equal(res.status, 200, `${urlPath}: ${JSON.stringify(body)}`);
  return body;
}

/** Waits until the aggregation reflects every input record. */
export async function caughtUp(srv, name, { timeoutMs = 120000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let a;
  while (Date.now() < deadline) {
    a = await getJson(srv, `/v1/aggregations/${name}`);
    if (a.lag === 0 && a.state === 'RUNNING') return a;
    await sleep(50);
  }
  assert.fail(`aggregation ${name} did not catch up: ${JSON.stringify(a)}`);
}

/**
 * DuckDB: count and sum of `$.amount` by `$.user` and minute of the event time over the topic's
 * Parquet files, keyed "windowStartMicros|user".
 */
async function expected(srv, topic) {
  const files = path.join(srv.dataDir, 'topics', topic, '**', '*.parquet');
  const db = await duck();
  const reader = await db.runAndReadAll(`
    SELECT json_extract_string(decode(data), '$.user') AS u,
           epoch_us(time_bucket(INTERVAL '1 minute', "timestamp")) AS w,
           count(*) AS n, sum(CAST(json_extract(decode(data), '$.amount') AS BIGINT)) AS total
    FROM read_parquet('${files}') GROUP BY ALL`);
  const out = new Map();
  for (const r of reader.getRowObjects()) out.set(`${r.w}|${r.u}`, { n: Number(r.n), total: Number(r.total) });
  return out;
}

/** The aggregation's state, window by window, over HTTP. */
async function actual(srv, name, starts) {
  const out = new Map();
  for (const w of starts) {
    const start = new Date(Number(w / 1000n)).toISOString();
    const page = await getJson(srv, `/v1/aggregations/${name}/windows/${encodeURIComponent(start)}?limit=100000`);
    for (const k of page.keys) out.set(`${w}|${k.key}`, { n: k.values.n, total: k.values.total });
  }
  return out;
}

/**
 * Flushes `topic` to Parquet and asserts that aggregation `name` (measures n=count() and
 * total=sum($.amount) by $.user, tumbling 60 s) holds DuckDB's groups exactly; returns them.
 */
export async function assertEqualsDuckDB(srv, topic, name) {
  await srv.api.flushTopic(topic);
  const want = await expected(srv, topic);
  const starts = [...new Set([...want.keys()].map((k) => BigInt(k.split('|')[0])))];
  const got = await actual(srv, name, starts);
  assert.ok(want.size > 0);
  assert.equal(got.size, want.size, 'one (window, key) per DuckDB group');
  for (const [k, v] of want) assert.deepEqual(got.get(k), v, `window|key ${k}`);
  return want;
}
