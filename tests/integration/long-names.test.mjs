// The longest topic name (249 characters) through every operation: create, publish, flush,
// export, retention, delete and restart, by gRPC and the CLI, with the files on disk checked.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { describeRun, parseJsonOut, runCli } from './lib/cli.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';
import { ev, sleep, sum } from './lib/util.mjs';

const T = { timeout: 180000 };
const NAME = `long-${'n'.repeat(244)}`;

async function cli(srv, args, { json = true } = {}) {
  const full = [...args, '--server', srv.grpcAddr, ...(json ? ['--json'] : [])];
  const r = await runCli(full);
  assert.equal(r.code, 0, describeRun(full, r));
  return json ? parseJsonOut(full, r) : r;
}

test('a 249-character topic name works through create, publish, flush, export, retention, delete and restart', T, async (t) => {
  assert.equal(NAME.length, 249);
  const srv = await startServer(t, {
    args: ['--parquet-roll-bytes', '2000', '--maintenance-ms', '50', '--dedupe-window-ms', '100'],
  });
  const created = await cli(srv, ['topic', 'create', NAME, '--partitions', '2']);
  assert.equal(created.name, NAME);

  const events = Array.from({ length: 300 }, (_, i) => ev(NAME, { key: `k${i % 7}`, data: `event ${i} ${'x'.repeat(40)}` }));
  await srv.api.publishBatch(events);
  const one = await cli(srv, ['publish', '--topic', NAME, '--id', 'via-cli', 'hello']);
  assert.equal(one.topic, NAME);
  const total = events.length + 1;

  // Flush: Parquet files under DATA/topics/<name>, readable by DuckDB.
  const flushed = await cli(srv, ['topic', 'flush', NAME]);
  assert.ok(flushed.partitions.every((p) => p.parquet_file_count > 0), JSON.stringify(flushed.partitions));
  const coldDir = path.join(srv.dataDir, 'topics', NAME);
  const con = await (await DuckDBInstance.create(':memory:')).connect();
  const stored = (await con.runAndReadAll(
    `SELECT count(*)::INTEGER AS n FROM read_parquet('${coldDir}/**/*.parquet', hive_partitioning = true)`)).getRowObjects()[0];
  assert.equal(stored.n, total);

  // Export: JSONL and Parquet.
  const out = makeTempDir('nodata-long-');
  t.after(() => fs.rmSync(out, { recursive: true, force: true }));
  const jsonl = path.join(out, 'all.jsonl');
  await cli(srv, ['topic', 'export', NAME, '--format', 'jsonl', '--out', jsonl], { json: false });
  const lines = fs.readFileSync(jsonl, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, total);
  assert.deepEqual(new Set(lines.map((l) => l.id)), new Set([...events.map((e) => e.id), 'via-cli']));
  const pq = path.join(out, 'pq');
  await cli(srv, ['topic', 'export', NAME, '--format', 'parquet', '--out', `${pq}/`], { json: false });
  const exported = (await con.runAndReadAll(
    `SELECT count(DISTINCT id)::INTEGER AS n FROM read_parquet('${pq}/**/*.parquet', hive_partitioning = true)`)).getRowObjects()[0];
  assert.equal(exported.n, total);
  const single = path.join(out, 'all.parquet');
  await cli(srv, ['topic', 'export', NAME, '--format', 'parquet', '--out', single], { json: false });
  const exportedOne = (await con.runAndReadAll(
    `SELECT count(DISTINCT id)::INTEGER AS n FROM read_parquet('${single}')`)).getRowObjects()[0];
  assert.equal(exportedOne.n, total);

  // Restart keeps everything.
  await srv.restart();
  let info = await srv.api.getTopic(NAME);
  assert.equal(sum(info.partitions.map((p) => p.end_offset)), total);
  assert.equal((await srv.api.readTopic(NAME)).length, total);

  // Retention: a 1-byte limit drops every file of both partitions.
  await cli(srv, ['topic', 'update', NAME, '--retention-bytes', '1']);
  for (let i = 0; i < 200; i++) {
    info = await srv.api.getTopic(NAME);
    if (info.partitions.every((p) => p.parquet_file_count === 0 && p.start_offset === p.end_offset)) break;
    await sleep(50);
  }
  assert.ok(info.partitions.every((p) => p.parquet_file_count === 0 && p.start_offset === p.end_offset), JSON.stringify(info.partitions));
  assert.equal((await srv.api.readTopic(NAME)).length, 0);
  await cli(srv, ['topic', 'update', NAME, '--retention-bytes', '-1']);
  const after = await srv.api.publish(ev(NAME, { id: 'after-retention' }));
  assert.equal(after.topic, NAME);

  // Delete: all of it, and it stays deleted after a restart.
  const deleted = await cli(srv, ['topic', 'delete', NAME]);
  assert.deepEqual(deleted, { deleted: NAME });
  const listed = await cli(srv, ['topic', 'list']);
  assert.ok(!listed.some((x) => x.name === NAME), 'gone from topic list');
  assert.ok(!fs.existsSync(path.join(srv.dataDir, 'log', NAME)), 'hot files gone');
  assert.ok(!fs.existsSync(coldDir), 'cold files gone');
  assert.deepEqual(fs.readdirSync(path.join(srv.dataDir, 'trash')), [], 'nothing left in the trash');
  await srv.restart();
  assert.ok(!(await srv.api.listTopics()).some((x) => x.name === NAME), 'still gone after a restart');
  // The name is free again.
  const again = await srv.api.createTopic(NAME, 1);
  assert.equal(again.partitions[0].end_offset, 0);
});
