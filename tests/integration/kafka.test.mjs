// The Kafka listener (docs/kafka.md), driven by Kafka clients nobody here wrote: kcat (librdkafka)
// and kafkajs. Records cross between the Kafka protocol and gRPC field by field, reach the
// Parquet lake, and survive a SIGKILL once a Kafka producer has its acknowledgement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Kafka, CompressionTypes, logLevel } from 'kafkajs';
import { startServer, httpGet, makeTempDir } from './lib/server.mjs';
import { runProgram } from './lib/cli.mjs';
import { REPO_ROOT } from './lib/grpc.mjs';
import { parquetFiles, duck } from './lib/parquet.mjs';
import { sleep, topicName } from './lib/util.mjs';
import { aggregation, assertEqualsDuckDB, caughtUp } from './lib/aggregations.mjs';
import { describeRun, runCli } from './lib/cli.mjs';

const KCAT = 'kcat';

/** Runs kcat against the server; rejects on a non-zero exit. `input` goes to its stdin. */
async function kcat(srv, args, { input, timeoutMs = 30000 } = {}) {
  const r = await runProgram(KCAT, ['-b', srv.kafkaAddr, ...args], { input, timeoutMs });
  assert.equal(r.code, 0, `kcat ${args.join(' ')} exited ${r.code}\n${r.stderr}`);
  return r;
}

/** kcat's raw stdout as bytes (runProgram decodes as UTF-8). */
function kcatBytes(srv, args, { timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(KCAT, ['-b', srv.kafkaAddr, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    let err = '';
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`kcat exited ${code}: ${err}`));
    });
  });
}

/** Every record of `topic` as kcat -J sees it, read from the beginning to the end. */
async function consumeAll(srv, topic, extra = []) {
  const r = await kcat(srv, ['-C', '-t', topic, '-e', '-q', '-J', ...extra]);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function kafkaClient(srv) {
  return new Kafka({
    clientId: 'nodata-test',
    brokers: [srv.kafkaAddr],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
  });
}

test('kcat: metadata, produce from a file, consume from beginning, offset, end and time', async (t) => {
  const srv = await startServer(t, { kafka: true });
  const topic = topicName('kcat');
  await srv.api.createTopic(topic, 3);

  const meta = JSON.parse((await kcat(srv, ['-L', '-J'])).stdout);
  assert.equal(meta.brokers.length, 1);
  assert.equal(meta.brokers[0].name, srv.kafkaAddr);
  const listed = meta.topics.find((x) => x.topic === topic);
  assert.ok(listed, `${topic} in the metadata`);
  assert.equal(listed.partitions.length, 3);

  const dir = makeTempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'records.txt');
  const lines = Array.from({ length: 300 }, (_, i) => `key-${i % 17}:value-${i}`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  await kcat(srv, ['-P', '-t', topic, '-K:', '-l', file]);

  const all = await consumeAll(srv, topic);
  assert.equal(all.length, 300);
  assert.deepEqual(all.map((r) => r.payload).sort(), lines.map((l) => l.split(':')[1]).sort());
  // Offsets dense from 0 in each partition; a key stays in one partition.
  const byPartition = new Map();
  const partitionOfKey = new Map();
  for (const r of all) {
    if (!byPartition.has(r.partition)) byPartition.set(r.partition, []);
    byPartition.get(r.partition).push(r.offset);
    if (partitionOfKey.has(r.key)) assert.equal(partitionOfKey.get(r.key), r.partition, r.key);
    partitionOfKey.set(r.key, r.partition);
  }
  for (const [p, offsets] of byPartition) {
    assert.deepEqual(offsets, offsets.map((_, i) => i), `partition ${p} offsets`);
  }
  // The same records over gRPC, where kcat put them.
  const ends = await srv.api.endOffsets(topic);
  for (const [p, offsets] of byPartition) assert.equal(Number(ends[p]), offsets.length);

  // From an offset, and from the end (nothing).
  const p0 = byPartition.get(0).length;
  const fromTwo = await consumeAll(srv, topic, ['-p', '0', '-o', '2']);
  assert.equal(fromTwo.length, p0 - 2);
  assert.equal(fromTwo[0].offset, 2);
  const fromEnd = await consumeAll(srv, topic, ['-o', 'end']);
  assert.equal(fromEnd.length, 0);

  // By time: records produced after a moment are the ones read from it.
  await new Promise((r) => setTimeout(r, 50));
  const since = Date.now();
  await new Promise((r) => setTimeout(r, 50));
  await kcat(srv, ['-P', '-t', topic, '-K:'], { input: 'late-a:late-1\nlate-b:late-2\n' });
  const late = await consumeAll(srv, topic, ['-o', `s@${since}`]);
  assert.deepEqual(late.map((r) => r.payload).sort(), ['late-1', 'late-2']);
  for (const r of late) assert.ok(r.ts >= since, `timestamp ${r.ts} >= ${since}`);
  const offsets = await kcat(srv, ['-Q', '-t', `${topic}:0:${since}`]);
  assert.match(offsets.stdout, new RegExp(`${topic} \\[0\\] offset (\\d+|-1)`));
});

test('gRPC and Kafka read each other\'s records field by field', async (t) => {
  const srv = await startServer(t, { kafka: true });
  const topic = topicName('cross');
  await srv.api.createTopic(topic, 2);
  const binary = Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 13, 0x80]);
  const ack = await srv.api.publish({
    topic,
    id: 'grpc-1',
    key: Buffer.from('the-key'),
    data: binary,
    timestamp: { seconds: 1700000000, nanos: 123000000 },
    headers: { trace: 'abc', origin: 'grpc' },
  });
  // Kafka sees key, value (byte for byte), event time in ms, headers.
  const [rec] = await consumeAll(srv, topic, ['-p', String(ack.partition)]);
  assert.equal(rec.key, 'the-key');
  assert.equal(rec.ts, 1700000000123);
  assert.equal(rec.offset, Number(ack.offset));
  const headers = {};
  for (let i = 0; i < rec.headers.length; i += 2) headers[rec.headers[i]] = rec.headers[i + 1];
  assert.deepEqual(headers, { trace: 'abc', origin: 'grpc' });
  const raw = await kcatBytes(srv, ['-C', '-t', topic, '-p', String(ack.partition), '-o',
    String(ack.offset), '-c', '1', '-e', '-q', '-f', '%s']);
  assert.deepEqual(raw, binary);

  // kafkajs produces (gzip, binary value, headers, a chosen timestamp and partition); gRPC reads.
  const kafka = kafkaClient(srv);
  const producer = kafka.producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const value = Buffer.from([9, 0, 8, 0xff, 7]);
  const [meta] = await producer.send({
    topic,
    compression: CompressionTypes.GZIP,
    messages: [{ key: 'k2', value, partition: 1, timestamp: '1600000000456', headers: { h: 'v' } }],
  });
  assert.equal(meta.errorCode, 0);
  assert.equal(meta.partition, 1);
  const read = await srv.api.readTopic(topic, { partitions: [1] });
  const got = read.find((r) => Number(r.offset) === Number(meta.baseOffset));
  assert.ok(got, `offset ${meta.baseOffset} over gRPC`);
  assert.deepEqual(Buffer.from(got.event.key), Buffer.from('k2'));
  assert.deepEqual(Buffer.from(got.event.data), value);
  assert.equal(Number(got.event.timestamp.seconds), 1600000000);
  assert.equal(got.event.timestamp.nanos, 456000000);
  assert.equal(got.event.headers.h, 'v');
});

test('Kafka-produced records reach the Parquet lake', async (t) => {
  const srv = await startServer(t, { kafka: true });
  const topic = topicName('lake');
  const producer = kafkaClient(srv).producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const messages = Array.from({ length: 500 }, (_, i) => ({ key: `k${i % 7}`, value: `v${i}` }));
  await producer.send({ topic, messages });
  await srv.api.flushTopic(topic);
  const lake = path.join(srv.dataDir, 'topics', topic);
  const files = parquetFiles(lake);
  assert.ok(files.length > 0, 'Parquet files written');
  const db = await duck();
  const reader = await db.runAndReadAll(
    `SELECT count(*)::INTEGER AS n, count(DISTINCT decode(data))::INTEGER AS d ` +
      `FROM read_parquet('${lake}/**/*.parquet')`);
  const [row] = reader.getRowObjects();
  assert.equal(row.n, 500);
  assert.equal(row.d, 500);
});

test('Kafka-produced records feed a component and an aggregation', async (t) => {
  const srv = await startServer(t, { kafka: true });
  const [input, output] = [topicName('kin'), topicName('kout')];
  await srv.api.createTopic(input, 2);
  await srv.api.createTopic(output, 2);
  const sdkDir = process.env.COMPONENT_SDK_DIR ?? path.join(REPO_ROOT, 'build-component-sdk');
  const wasm = path.join(sdkDir, 'c', 'filter.wasm');
  assert.ok(fs.existsSync(wasm), `${wasm} is missing: run \`make component-sdk\` first`);
  const add = ['component', 'add', 'kfilter', '--wasm', wasm, '--transform', `${input}:${output}`,
    '--config', 'keep', '--server', srv.grpcAddr];
  const r = await runCli(add, { timeoutMs: 150000 });
  assert.equal(r.code, 0, describeRun(add, r));
  await aggregation(srv, ['add', 'kagg', '--input', input, '--key', '$.user', '--window',
    'tumbling:60s', '--lateness', '1h', '--measure', 'n=count()', '--measure',
    'total=sum($.amount)', '--checkpoint-interval', '100ms']);

  const producer = kafkaClient(srv).producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const messages = Array.from({ length: 400 }, (_, i) => ({
    key: `u${i % 5}`,
    value: JSON.stringify({ user: `u${i % 5}`, amount: i, tag: i % 4 === 0 ? 'keep' : 'drop' }),
  }));
  await producer.send({ topic: input, compression: CompressionTypes.GZIP, messages });
  // The filter's outputs: the kept records, each once.
  const kept = messages.filter((m) => m.value.includes('keep')).map((m) => m.value).sort();
  let out = [];
  for (let i = 0; i < 600 && out.length < kept.length; i++) {
    out = (await srv.api.readTopic(output)).map((x) => Buffer.from(x.event.data).toString());
    if (out.length < kept.length) await sleep(100);
  }
  assert.deepEqual(out.sort(), kept);
  // The aggregation's windows equal DuckDB's GROUP BY over the input's Parquet files.
  await caughtUp(srv, 'kagg');
  const groups = await assertEqualsDuckDB(srv, input, 'kagg');
  assert.ok(groups.size >= 5, `groups: ${groups.size}`);
});

test('SIGKILL: every record a Kafka producer had acknowledged is there, once', async (t) => {
  const srv = await startServer(t, { kafka: true });
  const topic = topicName('kill');
  await srv.api.createTopic(topic, 4);
  const producer = kafkaClient(srv).producer({ retry: { retries: 0 } });
  await producer.connect();
  const acked = new Set(); // values of batches the producer had acknowledged
  let killed = false;
  const sending = (async () => {
    for (let b = 0; !killed; b++) {
      const messages = Array.from({ length: 100 }, (_, i) => ({ key: `k${i % 13}`, value: `b${b}-${i}` }));
      try {
        const res = await producer.send({ topic, acks: -1, messages });
        if (res.every((r) => r.errorCode === 0)) for (const m of messages) acked.add(m.value);
      } catch {
        return;
      }
    }
  })();
  await new Promise((r) => setTimeout(r, 1500));
  killed = true;
  await srv.kill();
  await sending;
  await producer.disconnect().catch(() => {});
  assert.ok(acked.size >= 100, `some batches were acknowledged (${acked.size})`);
  await srv.start({ samePorts: true });
  const records = await consumeAll(srv, topic);
  const seen = new Map();
  for (const r of records) seen.set(r.payload, (seen.get(r.payload) ?? 0) + 1);
  for (const v of acked) assert.equal(seen.get(v), 1, `acknowledged ${v} stored once`);
  // Dense offsets survive the restart too.
  const ends = await srv.api.endOffsets(topic);
  assert.equal(ends.reduce((a, b) => a + Number(b), 0), records.length);
});

/** bench/kafka/rdkafka_client, next to the server binary's build (librdkafka, Debian's). */
function rdkafkaClient(srv) {
  const bin = path.join(path.dirname(srv.bin), 'bench', 'kafka', 'rdkafka_client');
  assert.ok(fs.existsSync(bin), `${bin} is missing: build the project (it needs librdkafka-dev)`);
  return bin;
}

/**
 * Runs the librdkafka client. `progress.lines` counts its output lines as they come; `done`
 * resolves { code, lines, stderr } once it exits.
 */
function runClient(bin, args) {
  const progress = { lines: 0, exited: false };
  progress.done = new Promise((resolve) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      for (const c of d) if (c === '\n') progress.lines++;
    });
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('close', (code) => {
      progress.exited = true;
      resolve({ code, lines: out.split('\n').filter(Boolean), stderr: err });
    });
  });
  return progress;
}

test('librdkafka: an idempotent producer and a group consumer through repeated SIGKILLs', async (t) => {
  const srv = await startServer(t, { kafka: true });
  const topic = topicName('rdk');
  await srv.api.createTopic(topic, 4);
  const bin = rdkafkaClient(srv);
  const count = 100000;
  const producing = runClient(bin, ['produce', srv.kafkaAddr, topic, String(count), 'r']);
  const consuming = runClient(bin, ['consume', srv.kafkaAddr, topic, `g-${topic}`, String(count), '90000']);
  // Kills at 5%, 35% and 65% of the acknowledgements: mid-stream, whatever the machine's speed.
  let killsWhileProducing = 0;
  for (const share of [0.05, 0.35, 0.65]) {
    while (!producing.exited && producing.lines < share * count) {
      await new Promise((r) => setTimeout(r, 1));
    }
    if (!producing.exited) killsWhileProducing++;
    await srv.kill();
    await srv.start({ samePorts: true });
  }
  assert.ok(killsWhileProducing >= 2, 'the server was killed while the producer was producing');
  const produced = await producing.done;
  assert.equal(produced.code, 0, `producer: ${produced.stderr.slice(-2000)}`);
  const acks = new Map();
  for (const l of produced.lines) {
    const [kind, value, partition, offset] = l.split(' ');
    if (kind === 'ack') acks.set(value, `${partition}/${offset}`);
  }
  assert.equal(acks.size, count, 'every record acknowledged');
  // Stored once each, where its acknowledgement said.
  const stored = new Map();
  for (const r of await srv.api.readTopic(topic)) {
    const v = Buffer.from(r.event.data).toString();
    assert.equal(stored.has(v), false, `${v} stored twice`);
    stored.set(v, `${r.partition}/${r.offset}`);
  }
  assert.equal(stored.size, count);
  for (const [v, at] of acks) assert.equal(stored.get(v), at, `${v} at its acknowledged place`);

  const consumed = await consuming.done;
  assert.equal(consumed.code, 0, `consumer: ${consumed.stderr.slice(-2000)}`);
  const seen = new Map();
  for (const l of consumed.lines) {
    const [kind, value] = l.split(' ');
    if (kind === 'msg') seen.set(value, (seen.get(value) ?? 0) + 1);
  }
  for (const v of acks.keys()) assert.ok(seen.has(v), `${v} consumed`);
  // Commits are synchronous per record: a kill replays at most what was in flight.
  const again = [...seen.values()].filter((n) => n > 1).length;
  t.diagnostic(`consumer re-read ${again} of ${count} records across 3 kills`);
  t.diagnostic(`${killsWhileProducing} of the kills came while the producer produced`);
  assert.ok(again <= 3 * 5000, `re-reads bounded (${again})`);
});

test('malformed frames close only their connection; unsupported versions get error 35', async (t) => {
  const srv = await startServer(t, { kafka: true });
  const [host, port] = [srv.kafkaAddr.split(':')[0], Number(srv.kafkaAddr.split(':')[1])];
  const exchange = (bytes) => new Promise((resolve) => {
    const sock = net.connect(port, host);
    const chunks = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('close', () => resolve({ closed: true, data: Buffer.concat(chunks) }));
    sock.on('error', () => {});
    sock.write(bytes);
    setTimeout(() => {
      sock.destroy();
      resolve({ closed: false, data: Buffer.concat(chunks) });
    }, 3000);
  });
  const frame = (body) => {
    const b = Buffer.alloc(4 + body.length);
    b.writeInt32BE(body.length, 0);
    body.copy(b, 4);
    return b;
  };
  const header = (key, version, correlation) => {
    const h = Buffer.alloc(10);
    h.writeInt16BE(key, 0);
    h.writeInt16BE(version, 2);
    h.writeInt32BE(correlation, 4);
    h.writeInt16BE(-1, 8); // null client id
    return h;
  };
  // An absurd length, an unknown API, a truncated Produce body: closed.
  const absurd = Buffer.alloc(4);
  absurd.writeInt32BE(0x7fffffff, 0);
  assert.equal((await exchange(absurd)).closed, true);
  assert.equal((await exchange(frame(header(999, 0, 1)))).closed, true);
  assert.equal((await exchange(frame(Buffer.concat([header(0, 7, 2), Buffer.from([0xff])])))).closed,
    true);
  // ApiVersions v9 (header v2: tagged fields; a body of two empty compact strings): a v0 answer
  // with UNSUPPORTED_VERSION and the versions served.
  const r = await exchange(frame(Buffer.concat([header(18, 9, 77), Buffer.from([0, 1, 1, 0])])));
  assert.ok(r.data.length >= 10, 'an answer');
  assert.equal(r.data.readInt32BE(4), 77);
  assert.equal(r.data.readInt16BE(8), 35);
  // The server is fine, and says what it closed.
  const topic = topicName('after');
  await kcat(srv, ['-P', '-t', topic], { input: 'still-here\n' });
  assert.deepEqual((await consumeAll(srv, topic)).map((x) => x.payload), ['still-here']);
  const metrics = (await httpGet(srv, '/metrics')).body;
  const closed = /nodata_kafka_connections_closed_total (\d+)/.exec(metrics);
  assert.ok(closed && Number(closed[1]) >= 3, `closed connections counted: ${closed?.[1]}`);
  // The reason is in the server's log (its stderr pipe may still be delivering it).
  for (let i = 0; i < 100 && !/API key 999 is not served/.test(srv.stderr); i++) await sleep(50);
  assert.match(srv.stderr, /API key 999 is not served/);
});
