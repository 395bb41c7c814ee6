// The cold tier over the real server: compaction into the Hive layout under DATA/topics, checked
// with DuckDB (hive_partitioning) and hyparquet; reads across both tiers; FlushTopic; retention;
// crashes during compaction; export through the CLI.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { Code, codeName, expectStatus, grpc } from './lib/grpc.mjs';
import { describeRun, parseJsonOut, runCli } from './lib/cli.mjs';
import { duck, parquetFiles } from './lib/parquet.mjs';
import { NodataServer, makeTempDir, startServer } from './lib/server.mjs';
import { newId, sleep, topicName } from './lib/util.mjs';

const T = { timeout: 180000 };

// Events with every field in use: binary data, keys (some empty), headers, producer timestamps.
function makeEvents(topic, n, seed = 0) {
  return Array.from({ length: n }, (_, i) => {
    const k = seed + i;
    const e = {
      topic,
      id: newId('cold'),
      data: Buffer.concat([Buffer.from(`event ${k} `), Buffer.from([0, 255, k % 256]), Buffer.alloc(k % 50, 'x')]),
      timestamp: { seconds: 1700000000 + k, nanos: (k % 1000) * 1000 },
      headers: k % 3 === 0 ? {} : { source: `s${k % 5}`, n: String(k) },
    };
    if (k % 4 !== 0) e.key = Buffer.from(`key-${k % 13}`);
    return e;
  });
}

async function publishAll(api, events, batch = 500) {
  const acks = [];
  for (let i = 0; i < events.length; i += batch) acks.push(...(await api.publishBatch(events.slice(i, i + batch))));
  return acks;
}

const utcDate = (micros) => new Date(Number(micros / 1000n)).toISOString().slice(0, 10);

// What a record read back must equal: the published event at its acked position.
function expectRecord(r, e, ack, what) {
  assert.equal(r.partition, ack.partition, `${what} partition`);
  assert.equal(r.offset, ack.offset, `${what} offset`);
  assert.equal(r.event.id, e.id, `${what} id`);
  assert.deepEqual(Buffer.from(r.event.data), e.data, `${what} data`);
  assert.deepEqual(Buffer.from(r.event.key), e.key ?? Buffer.alloc(0), `${what} key`);
  assert.deepEqual({ ...r.event.headers }, e.headers, `${what} headers`);
  assert.equal(r.event.timestamp.seconds, e.timestamp.seconds, `${what} timestamp`);
  assert.equal(r.event.timestamp.nanos, e.timestamp.nanos, `${what} timestamp nanos`);
}

test('FlushTopic writes the Hive layout and DuckDB with hive_partitioning sees every record', T, async (t) => {
  const srv = await startServer(t, { args: ['--parquet-roll-bytes', '40000'] });
  const name = topicName('cold-duck');
  await srv.api.createTopic(name, 3);
  const events = makeEvents(name, 2500);
  const acks = await publishAll(srv.api, events);
  const before = Date.now() * 1000;

  const topic = await srv.api.flushTopic(name);
  const root = path.join(srv.dataDir, 'topics', name);
  const files = parquetFiles(root);
  assert.ok(files.length > 3, `--parquet-roll-bytes 40000 cuts ~300 KB into several files per partition, got ${files.length}`);
  assert.equal(topic.partitions.reduce((n, p) => n + p.parquet_file_count, 0), files.length, 'parquet_file_count');
  // Names: partition=<p>/date=<YYYY-MM-DD>/<first 20 digits>-<last 20 digits>.parquet, contiguous.
  const ranges = new Map();
  for (const f of files) {
    const m = path.relative(root, f).match(/^partition=(\d+)\/date=(\d{4}-\d{2}-\d{2})\/(\d{20})-(\d{20})\.parquet$/);
    assert.ok(m, `file name ${path.relative(root, f)}`);
    const p = Number(m[1]);
    if (!ranges.has(p)) ranges.set(p, []);
    ranges.get(p).push([Number(m[3]), Number(m[4])]);
  }
  for (const [p, rs] of ranges) {
    rs.sort((a, b) => a[0] - b[0]);
    assert.equal(rs[0][0], 0, `partition ${p} starts at 0`);
    for (let i = 1; i < rs.length; i++) assert.equal(rs[i][0], rs[i - 1][1] + 1, `partition ${p} files are contiguous`);
    assert.equal(rs.at(-1)[1] + 1, topic.partitions[p].end_offset, `partition ${p} ends at its end offset`);
  }
  assert.ok(!fs.readdirSync(root, { recursive: true }).some((f) => f.endsWith('.tmp')), 'no temporary files left');

  const con = await duck();
  const rows = (await con.runAndReadAll(`
    SELECT partition::INTEGER AS p, "offset"::VARCHAR AS o, id, key, data, headers,
           epoch_us("timestamp")::VARCHAR AS ts, epoch_us(ingest_time)::VARCHAR AS ingest,
           strftime("date", '%Y-%m-%d') AS d
    FROM read_parquet('${root}/**/*.parquet', hive_partitioning = true)`)).getRowObjects();
  assert.equal(rows.length, events.length, 'DuckDB sees every record once');
  const byPos = new Map(rows.map((r) => [`${r.p}/${r.o}`, r]));
  events.forEach((e, i) => {
    const a = acks[i];
    const r = byPos.get(`${a.partition}/${a.offset}`);
    assert.ok(r, `record ${a.partition}/${a.offset} missing`);
    assert.equal(r.id, e.id);
    assert.deepEqual(Buffer.from(r.data.bytes), e.data, `data of ${e.id}`);
    if (e.key) assert.deepEqual(Buffer.from(r.key.bytes), e.key); else assert.equal(r.key, null);
    const headers = Object.fromEntries((r.headers?.entries ?? []).map(({ key, value }) => [key, value]));
    assert.deepEqual(headers, e.headers, `headers of ${e.id}`);
    assert.equal(r.ts, String(e.timestamp.seconds * 1000000 + e.timestamp.nanos / 1000));
    const ingest = BigInt(r.ingest);
    assert.ok(ingest <= BigInt(before) && ingest > BigInt(before) - 600_000_000n, 'ingest time is the server clock');
    assert.equal(r.d, utcDate(ingest), 'date partition is the UTC ingest date');
  });

  // hyparquet reads every file and sees the same ids.
  const ids = new Set();
  for (const f of files) {
    const objs = await parquetReadObjects({ file: await asyncBufferFromFile(f), compressors, columns: ['offset', 'id'] });
    for (const o of objs) ids.add(o.id);
  }
  assert.equal(ids.size, events.length);
  for (const e of events) assert.ok(ids.has(e.id), `hyparquet misses ${e.id}`);
});

test('background compaction moves records to Parquet; ReadTopic spans both tiers', T, async (t) => {
  const srv = await startServer(t, {
    args: ['--parquet-roll-interval', '1s', '--dedupe-window-ms', '500', '--maintenance-ms', '100'],
  });
  const name = topicName('cold-bg');
  await srv.api.createTopic(name, 2);
  const first = makeEvents(name, 600);
  const acks1 = await publishAll(srv.api, first, 100);

  // Within a few seconds the records are in Parquet and no longer in the hot tier.
  let topic;
  for (let i = 0; i < 100; i++) {
    topic = await srv.api.getTopic(name);
    if (topic.partitions.every((p) => p.parquet_file_count > 0 && p.hot_start_offset === p.end_offset)) break;
    await sleep(100);
  }
  for (const p of topic.partitions) {
    assert.ok(p.parquet_file_count > 0, `partition ${p.partition} compacted: ${JSON.stringify(p)}`);
    assert.equal(p.hot_start_offset, p.end_offset, `partition ${p.partition} hot tier emptied after the dedupe window`);
    assert.equal(p.start_offset, 0);
    assert.equal(p.record_count, p.end_offset);
  }
  // New records land after the compacted offsets.
  const second = makeEvents(name, 300, 600);
  const acks2 = await publishAll(srv.api, second, 100);
  const events = [...first, ...second];
  const acks = [...acks1, ...acks2];

  const records = await srv.api.readTopic(name, { max_batch: 77 });
  assert.equal(records.length, events.length);
  const byPos = new Map(records.map((r) => [`${r.partition}/${r.offset}`, r]));
  events.forEach((e, i) => expectRecord(byPos.get(`${acks[i].partition}/${acks[i].offset}`), e, acks[i], `record ${i}`));
  // Per partition in offset order, dense.
  let last = new Map();
  for (const r of records) {
    const prev = last.get(r.partition) ?? -1;
    assert.equal(r.offset, prev + 1, `partition ${r.partition} dense`);
    last.set(r.partition, r.offset);
  }
  // From an offset inside the cold tier of one partition.
  const mid = await srv.api.readTopic(name, { partitions: [1], start_offset: 123 });
  assert.equal(mid[0].offset, 123);
  assert.equal(mid.length, acks.filter((a) => a.partition === 1).length - 123);

  const metrics = await (await fetch(`http://${srv.httpAddr}/metrics`)).text();
  assert.match(metrics, /nodata_compaction_files_total [1-9]/);
  assert.match(metrics, new RegExp(`nodata_parquet_files\\{partition="0",topic="${name}"\\} [1-9]`));

  // The same after a restart: the cold tier is found again, offsets continue.
  await srv.restart({ how: 'kill' });
  const again = await srv.api.readTopic(name);
  assert.equal(again.length, events.length);
  const ends = await srv.api.endOffsets(name);
  const more = await srv.api.publishBatch(makeEvents(name, 10, 900));
  for (const a of more) assert.ok(a.offset >= ends[a.partition], 'offsets continue after a restart');
  const final = await srv.api.readTopic(name);
  assert.equal(final.length, events.length + 10);

});

test('SIGKILL during compaction loses and duplicates nothing', T, async (t) => {
  const srv = new NodataServer({
    args: ['--parquet-roll-interval', '100ms', '--parquet-roll-bytes', '20000', '--segment-bytes', '16384',
      '--dedupe-window-ms', '200', '--maintenance-ms', '10'],
  });
  t.after(() => srv.cleanup());
  await srv.start();
  const name = topicName('cold-crash');
  await srv.api.createTopic(name, 2);
  const acked = new Map(); // "p/o" => event
  const ids = new Set();
  for (let round = 0; round < 5; round++) {
    const stop = { v: false };
    const api = srv.api;
    const worker = (async () => {
      let k = round * 100000;
      while (!stop.v) {
        const events = makeEvents(name, 50, k);
        k += 50;
        let acks;
        try {
          acks = await api.publishBatch(events, { timeoutMs: 10000 });
        } catch (err) {
          // The kill: the call fails with a disconnect status (or the channel is already closed).
          if (stop.v || [grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.INTERNAL, grpc.status.UNKNOWN].includes(err.code)) return;
          throw err;
        }
        acks.forEach((a, i) => {
          const pos = `${a.partition}/${a.offset}`;
          assert.ok(!acked.has(pos), `position ${pos} acked twice`);
          acked.set(pos, events[i]);
          ids.add(events[i].id);
        });
      }
    })();
    await sleep(300 + Math.floor(Math.random() * 700));
    stop.v = true;
    await srv.kill();
    await worker;
    await srv.start();
  }
  const topic = await srv.api.flushTopic(name);
  assert.ok(topic.partitions.every((p) => p.parquet_file_count > 1), 'several compacted files per partition');
  const records = await srv.api.readTopic(name);
  const seen = new Map();
  for (const r of records) {
    const pos = `${r.partition}/${r.offset}`;
    assert.ok(!seen.has(pos), `${pos} read twice`);
    seen.set(pos, r);
  }
  for (const [pos, e] of acked) {
    const r = seen.get(pos);
    assert.ok(r, `acked record ${pos} lost`);
    assert.equal(r.event.id, e.id, `record at ${pos}`);
  }
  // Every id at most once (unacked events of a killed request may or may not be stored).
  const idCount = new Map();
  for (const r of records) idCount.set(r.event.id, (idCount.get(r.event.id) ?? 0) + 1);
  for (const [id, n] of idCount) assert.equal(n, 1, `id ${id} stored ${n} times`);
  // DuckDB agrees with ReadTopic.
  const con = await duck();
  const root = path.join(srv.dataDir, 'topics', name);
  const n = (await con.runAndReadAll(
    `SELECT count(*)::INTEGER AS n, count(DISTINCT (partition, "offset"))::INTEGER AS d
     FROM read_parquet('${root}/**/*.parquet', hive_partitioning = true)`)).getRowObjects()[0];
  assert.equal(n.n, records.length);
  assert.equal(n.d, records.length);
  assert.ok(acked.size > 1000, `the storm acked ${acked.size} records`);
});

test('retention deletes whole files by size and by age; start_offset follows', T, async (t) => {
  const srv = await startServer(t, { args: ['--parquet-roll-bytes', '10000', '--maintenance-ms', '50', '--dedupe-window-ms', '100'] });
  const name = topicName('cold-ret');
  await srv.api.createTopic(name, 1);
  const events = makeEvents(name, 1000);
  await publishAll(srv.api, events);
  let topic = await srv.api.flushTopic(name);
  const filesBefore = topic.partitions[0].parquet_file_count;
  assert.ok(filesBefore >= 5, `${filesBefore} files`);
  assert.equal(topic.retention_bytes, -1, 'unlimited by default, shown as -1');

  // By size: keep about 30 KB of the partition.
  topic = await srv.api.updateTopic({ name, retention_bytes: 30000 });
  assert.equal(topic.retention_bytes, 30000);
  for (let i = 0; i < 100 && (await srv.api.getTopic(name)).partitions[0].bytes_on_disk > 30000; i++) await sleep(50);
  topic = await srv.api.getTopic(name);
  const p = topic.partitions[0];
  assert.ok(p.bytes_on_disk <= 30000, `bytes_on_disk ${p.bytes_on_disk}`);
  assert.ok(p.parquet_file_count < filesBefore && p.parquet_file_count > 0);
  assert.ok(p.start_offset > 0, 'start_offset moved');
  assert.equal(p.record_count, p.end_offset - p.start_offset);
  const files = parquetFiles(path.join(srv.dataDir, 'topics', name));
  assert.equal(files.length, p.parquet_file_count);
  const firstFile = Number(path.basename(files[0]).slice(0, 20));
  assert.equal(firstFile, p.start_offset, 'start_offset is the first file\'s first offset');
  const rest = await srv.api.readTopic(name);
  assert.equal(rest.length, p.record_count);
  assert.equal(rest[0].offset, p.start_offset);
  assert.equal(rest[0].event.id, events[p.start_offset].id);

  // By age: everything older than 300 ms goes (once compacted), and stays gone after a restart.
  await srv.api.updateTopic({ name, retention_ms: 300, retention_bytes: -1 });
  await sleep(400);
  for (let i = 0; i < 100 && (await srv.api.getTopic(name)).partitions[0].parquet_file_count > 0; i++) await sleep(50);
  topic = await srv.api.getTopic(name);
  assert.equal(topic.partitions[0].parquet_file_count, 0);
  assert.equal(topic.partitions[0].start_offset, topic.partitions[0].end_offset);
  assert.equal(topic.retention_ms, 300);
  assert.equal(topic.retention_bytes, -1, '-1 is unlimited, shown as set');
  assert.equal((await srv.api.readTopic(name)).length, 0);
  await srv.restart({ how: 'term' });
  topic = await srv.api.getTopic(name);
  assert.equal(topic.retention_ms, 300, 'retention is durable');
  assert.equal(topic.partitions[0].start_offset, topic.partitions[0].end_offset);
  const ack = await srv.api.publish(makeEvents(name, 1, 5000)[0]);
  assert.equal(ack.offset, 1000, 'offsets continue after deleted history');
});

test('topic export writes JSONL and Parquet equal to the stored records', T, async (t) => {
  const srv = await startServer(t);
  const name = topicName('cold-export');
  await srv.api.createTopic(name, 2);
  const events = makeEvents(name, 700);
  const acks = await publishAll(srv.api, events);
  // Half in Parquet, half hot.
  const flushArgs = ['topic', 'flush', name, '--server', srv.grpcAddr, '--json'];
  const flushed = parseJsonOut(flushArgs, await runCli(flushArgs));
  assert.ok(flushed.partitions.every((p) => p.parquet_file_count === 1));
  const more = makeEvents(name, 300, 700);
  const acks2 = await publishAll(srv.api, more);
  const all = [...events, ...more];
  const allAcks = [...acks, ...acks2];
  const out = makeTempDir('nodata-export-');
  t.after(() => fs.rmSync(out, { recursive: true, force: true }));

  const jsonl = path.join(out, 'all.jsonl');
  let args = ['topic', 'export', name, '--format', 'jsonl', '--out', jsonl, '--server', srv.grpcAddr];
  let r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  const lines = fs.readFileSync(jsonl, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, all.length);
  const byPos = new Map(lines.map((l) => [`${l.partition}/${l.offset}`, l]));
  all.forEach((e, i) => {
    const l = byPos.get(`${allAcks[i].partition}/${allAcks[i].offset}`);
    assert.equal(l.id, e.id);
    assert.deepEqual(Buffer.from(l.data_base64, 'base64'), e.data, 'binary data is base64');
    assert.equal(l.key, e.key?.toString());
    assert.deepEqual(l.headers ?? {}, e.headers);
    assert.equal(Date.parse(l.timestamp), e.timestamp.seconds * 1000 + Math.floor(e.timestamp.nanos / 1e6));
  });

  // One partition to one Parquet file; DuckDB reads it.
  const one = path.join(out, 'p1.parquet');
  args = ['topic', 'export', name, '--format', 'parquet', '--partition', '1', '--out', one, '--server', srv.grpcAddr];
  r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  const con = await duck();
  const rows = (await con.runAndReadAll(`SELECT "offset"::INTEGER AS o, id FROM read_parquet('${one}') ORDER BY 1`)).getRowObjects();
  const expected = all.filter((_, i) => allAcks[i].partition === 1);
  assert.equal(rows.length, expected.length);
  rows.forEach((row, i) => assert.equal(row.o, i));
  assert.deepEqual(new Set(rows.map((x) => x.id)), new Set(expected.map((e) => e.id)));

  // Every partition into a directory (--out ends in '/'), which DuckDB reads with hive partitioning.
  const dir = path.join(out, 'dir');
  args = ['topic', 'export', name, '--format', 'parquet', '--out', `${dir}/`, '--server', srv.grpcAddr];
  r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  const n = (await con.runAndReadAll(
    `SELECT count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS d FROM read_parquet('${dir}/**/*.parquet', hive_partitioning = true)`)).getRowObjects()[0];
  assert.deepEqual(n, { n: all.length, d: all.length });

  // A bad format is refused.
  args = ['topic', 'export', name, '--format', 'csv', '--out', path.join(out, 'x'), '--server', srv.grpcAddr];
  r = await runCli(args);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--format must be jsonl or parquet/);
});

test('bad cold-tier requests get clean statuses', T, async (t) => {
  const srv = await startServer(t);
  const name = topicName('cold-bad');
  await srv.api.createTopic(name, 2);
  await expectStatus(srv.api.flushTopic('no-such-topic'), Code.NOT_FOUND, 'flush of a missing topic');
  await expectStatus(srv.api.flushTopic('../etc'), Code.INVALID_ARGUMENT, 'flush of a bad name');
  await expectStatus(srv.api.readTopic('no-such-topic'), Code.NOT_FOUND, 'read of a missing topic');
  await expectStatus(srv.api.readTopic(name, { partitions: [2] }), Code.INVALID_ARGUMENT, 'read of a partition out of range');
  await expectStatus(srv.api.readTopic(name, { max_batch: 1000000 }), Code.INVALID_ARGUMENT, 'absurd max_batch');
  await expectStatus(srv.api.createTopic(topicName('cold-bad2'), 1, undefined, { retention_ms: -5 }), Code.INVALID_ARGUMENT, 'negative retention');
  await expectStatus(srv.api.updateTopic({ name, retention_bytes: -2 }), Code.INVALID_ARGUMENT, 'retention below -1');
  await expectStatus(srv.api.updateTopic({ name: 'no-such-topic', retention_ms: 5 }), Code.NOT_FOUND, 'update of a missing topic');
  // An offset past the end reads nothing; the topic is unharmed.
  assert.deepEqual(await srv.api.readTopic(name, { start_offset: 1e12 }), []);
  // Deleting a topic removes its Parquet files; a new topic of that name starts empty.
  await srv.api.publishBatch(makeEvents(name, 20));
  await srv.api.flushTopic(name);
  assert.ok(parquetFiles(path.join(srv.dataDir, 'topics', name)).length > 0);
  await srv.api.deleteTopic(name);
  assert.equal(fs.existsSync(path.join(srv.dataDir, 'topics', name)), false);
  await srv.api.createTopic(name, 2);
  assert.deepEqual(await srv.api.readTopic(name), []);
  // Bad flags are refused at start.
  for (const bad of [['--parquet-roll-interval', '10 minutes'], ['--parquet-compression', 'lzo']]) {
    const s = new NodataServer({ args: bad });
    t.after(() => s.cleanup());
    await assert.rejects(s.start({ readyTimeoutMs: 10000 }), new RegExp(bad[0]), `serve ${bad.join(' ')}`);
  }
  void codeName;
});
