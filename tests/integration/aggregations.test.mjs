// Aggregations against the real server, checked by DuckDB: the state after SIGKILLs during live
// ingest and during backfill equals a GROUP BY over the topic's own Parquet lake, and closed
// windows' results are published exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { aggregation, assertEqualsDuckDB, caughtUp, getJson } from './lib/aggregations.mjs';
import { duck } from './lib/parquet.mjs';
import { startServer } from './lib/server.mjs';
import { ev, sleep, topicName } from './lib/util.mjs';

const T = { timeout: 600000 };
const BASE_MS = Date.UTC(2026, 10, 26, 10, 0, 0);
const USERS = 150;

/** Events i in [from, to): user u(i*7 % USERS), amount i % 97, event time spread over ten minutes. */
function orders(topic, from, to, { ordered = false } = {}) {
  const out = [];
  for (let i = from; i < to; ++i) {
    const ms = ordered ? BASE_MS + i * 20 : BASE_MS + ((i * 7919) % 600000);
    out.push(ev(topic, {
      id: `o${i}`,
      data: JSON.stringify({ user: `u${(i * 7) % USERS}`, amount: i % 97, note: 'x'.repeat(30) }),
      timestamp: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 },
    }));
  }
  return out;
}

/** Publishes until every batch is acknowledged, retrying a batch the server died under. */
async function publishAll(srv, events, { batch = 500, onBatch } = {}) {
  for (let i = 0; i < events.length;) {
    const chunk = events.slice(i, i + batch);
    try {
      await srv.api.publishBatch(chunk);
    } catch {
      await sleep(50);
      continue;  // the same ids again: what was stored before the kill is deduped
    }
    i += chunk.length;
    if (onBatch) await onBatch(i);
  }
}

test('SIGKILLs during live ingest: state equals DuckDB GROUP BY, results exactly once', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('orders');
  const seq = topicName('seq');
  await srv.api.createTopic(topic, 3);
  await srv.api.createTopic(seq, 1);
  // Enough lateness for any interleaving of the partitions: nothing is late.
  await aggregation(srv, ['add', 'live', '--input', topic, '--key', '$.user', '--window', 'tumbling:60s',
    '--lateness', '1h', '--measure', 'n=count()', '--measure', 'total=sum($.amount)',
    '--checkpoint-interval', '100ms']);
  // One partition in event-time order and no lateness: windows close as the input moves on.
  await aggregation(srv, ['add', 'closing', '--input', seq, '--key', '$.user', '--window', 'tumbling:60s',
    '--measure', 'n=count()', '--measure', 'total=sum($.amount)', '--checkpoint-interval', '100ms']);
  const total = 24000;
  let kills = 0;
  const events = orders(topic, 0, total);
  const ordered = orders(seq, 0, total, { ordered: true });
  await publishAll(srv, events, {
    onBatch: async (done) => {
      await publishAll(srv, ordered.slice(done - 500, done));
      if (done % 5000 === 0 && kills < 4) {
        await sleep(Math.floor(Math.random() * 60));
        await srv.kill();
        ++kills;
        await srv.start();
      }
    },
  });
  assert.ok(kills >= 3, `killed ${kills} times`);
  await caughtUp(srv, 'live');
  await caughtUp(srv, 'closing');
  await assertEqualsDuckDB(srv, topic, 'live');
  const want = await assertEqualsDuckDB(srv, seq, 'closing');

  // Every window but the last (the watermark is inside it) closed, and published one result
  // per key, equal to DuckDB's group.
  // The results topic is a topic like any other: into the lake, and read by DuckDB.
  await srv.api.flushTopic('closing.results');
  const db = await duck();
  const files = path.join(srv.dataDir, 'topics', 'closing.results', '**', '*.parquet');
  const rows = (await db.runAndReadAll(`
    SELECT json_extract_string(decode(data), '$.key') AS k,
           json_extract_string(decode(data), '$.start') AS s,
           json_extract_string(decode(data), '$.end') AS e,
           CAST(json_extract(decode(data), '$.values.n') AS BIGINT) AS n,
           CAST(json_extract(decode(data), '$.values.total') AS BIGINT) AS total,
           decode(key) AS event_key
    FROM read_parquet('${files}')`)).getRowObjects();
  const results = new Map();
  for (const r of rows) {
    const w = BigInt(Date.parse(r.s)) * 1000n;
    assert.equal(Date.parse(r.e) - Date.parse(r.s), 60000);
    assert.equal(r.event_key, r.k, 'a result is keyed by its aggregation key');
    const k = `${w}|${r.k}`;
    assert.ok(!results.has(k), `one result for ${k}`);
    results.set(k, { n: Number(r.n), total: Number(r.total) });
  }
  const lastStart = [...want.keys()].map((k) => BigInt(k.split('|')[0])).reduce((a, b) => (a > b ? a : b));
  let closed = 0;
  for (const [k, v] of want) {
    if (BigInt(k.split('|')[0]) === lastStart) continue;
    ++closed;
    assert.deepEqual(results.get(k), v, `result of ${k}`);
  }
  assert.equal(results.size, closed, 'no result of an open window');
});

test('SIGKILLs during backfill: the recomputation equals DuckDB GROUP BY', T, async (t) => {
  await backfillThroughKills(await startServer(t));
});

test('state past --state-cache-bytes is evicted and loaded again, through SIGKILLs', T, async (t) => {
  // 64 KiB hold a few hundred of the windows: every checkpoint evicts, every restart loads a few.
  const a = await backfillThroughKills(await startServer(t, { args: ['--state-cache-bytes', '65536'] }));
  assert.ok(a.keys < USERS / 2, `${a.keys} of ${USERS} keys in memory`);
  assert.ok(a.open_windows > USERS, `${a.open_windows} windows open`);
});

async function backfillThroughKills(srv) {
  const topic = topicName('hist');
  await srv.api.createTopic(topic, 2);
  const total = 150000;
  await publishAll(srv, orders(topic, 0, total), { batch: 5000 });
  await srv.api.flushTopic(topic);  // history in Parquet: backfill reads the columnar files
  await aggregation(srv, ['add', 'back', '--input', topic, '--key', '$.user', '--window', 'tumbling:60s',
    '--lateness', '1h', '--measure', 'n=count()', '--measure', 'total=sum($.amount)',
    '--checkpoint-interval', '20ms']);
  let midway = 0;
  for (let round = 0; round < 3; ++round) {
    const a = await getJson(srv, '/v1/aggregations/back');
    if (a.state === 'BACKFILLING') ++midway;
    await srv.kill();
    await srv.start();
  }
  assert.ok(midway >= 1, 'killed at least once while backfilling');
  const done = await caughtUp(srv, 'back');
  assert.equal(Number(done.records_in ?? done.recordsIn ?? 0) <= total, true);
  await assertEqualsDuckDB(srv, topic, 'back');
  // A restart keeps the state: nothing is recomputed, nothing counted twice.
  await srv.stop();
  await srv.start();
  const a = await caughtUp(srv, 'back');
  await assertEqualsDuckDB(srv, topic, 'back');
  return a;
}
