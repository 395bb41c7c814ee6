// The C++ client SDK (sdk/cpp) over the real server, through its two examples: publish_example
// (Publisher: batched, pipelined PublishStream with retries) and consume_example (Consumer in a
// group, committing). The examples are built by `make sdk` (sdk/cpp/test.sh) into
// build-sdk/examples/, or wherever SDK_EXAMPLES_DIR points; without them these tests fail.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { runProgram } from './lib/cli.mjs';
import { sdkExample } from './lib/sdk.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';
import { sleep, topicName } from './lib/util.mjs';

const T = { timeout: 300000 };
const example = sdkExample;

// Runs a binary to completion; resolves { code, signal, stdout, stderr }. Fails after timeoutMs.
function run(bin, args, { timeoutMs = 120000 } = {}) {
  return runProgram(bin, args, { timeoutMs });
}

function jsonLines(text) {
  return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

// Asserts the publish example exited 0 with every event acked; returns its summary.
function assertPublished(res, count, what) {
  assert.equal(res.code, 0, `${what}: publish_example exit code (stderr: ${res.stderr.slice(-2000)})`);
  const summary = jsonLines(res.stdout).at(-1);
  assert.equal(summary.published, count, `${what}: published`);
  assert.equal(summary.acked, count, `${what}: acked`);
  assert.equal(summary.failed, 0, `${what}: failed`);
  return summary;
}

// Asserts that the topic holds exactly the acked events, once each, where their acks said.
async function assertStoredOnce(api, topic, acks, what) {
  const records = await api.readTopic(topic);
  const byId = new Map();
  for (const r of records) {
    assert.ok(!byId.has(r.event.id), `${what}: id ${r.event.id} stored twice`);
    byId.set(r.event.id, r);
  }
  assert.equal(records.length, acks.length, `${what}: stored record count`);
  for (const a of acks) {
    const r = byId.get(a.id);
    assert.ok(r, `${what}: acked id ${a.id} is not stored`);
    assert.equal(r.partition, a.partition, `${what}: partition of ${a.id}`);
    assert.equal(r.offset, a.offset, `${what}: offset of ${a.id}`);
  }
  return records;
}

test('the SDK publishes 10,000 events and a group consumer reads and commits every one', T, async (t) => {
  const publish = example('publish_example');
  const consume = example('consume_example');
  const srv = await startServer(t);
  const topic = topicName('sdk-pub');
  await srv.api.createTopic(topic, 4);
  const n = 10000;
  const dir = makeTempDir('nodata-sdk-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const acksFile = path.join(dir, 'acks.jsonl');

  const res = await run(publish, ['--address', srv.grpcAddr, '--topic', topic, '--count', String(n),
    '--id-prefix', `${topic}-e`, '--size', '48', '--acks-out', acksFile]);
  const summary = assertPublished(res, n, 'publish');
  assert.equal(summary.duplicates, 0, 'fresh ids are no duplicates');
  t.diagnostic(`publish_example: ${summary.events_per_second} events/s`);

  // Exactly those events: ids, payloads, keys, headers, at the offsets their acks named.
  const acks = jsonLines(fs.readFileSync(acksFile, 'utf8'));
  assert.equal(acks.length, n, 'one ack line per event');
  const records = await assertStoredOnce(srv.api, topic, acks, 'publish');
  for (const r of records) {
    const i = Number(r.event.id.slice(`${topic}-e-`.length));
    assert.equal(r.event.id, `${topic}-e-${i}`);
    assert.equal(Buffer.from(r.event.data).toString(), `{"n":${i}}`.padEnd(48, ' '), `data of event ${i}`);
    assert.equal(Buffer.from(r.event.key).toString(), `k${i % 64}`, `key of event ${i}`);
    assert.deepEqual({ ...r.event.headers }, { n: String(i) }, `headers of event ${i}`);
  }
  assert.deepEqual(new Set(records.map((r) => r.event.id)), new Set(Array.from({ length: n }, (_, i) => `${topic}-e-${i}`)));

  // A group consumer prints every record once, in offset order per partition, and commits.
  const group = 'sdk-group';
  const c = await run(consume, ['--address', srv.grpcAddr, '--topic', topic, '--group', group,
    '--consumer-id', 'sdk-c1', '--max-batch', '500', '--idle-exit-ms', '5000']);
  assert.equal(c.code, 0, `consume_example exit code (stderr: ${c.stderr.slice(-2000)})`);
  const printed = jsonLines(c.stdout);
  assert.equal(printed.length, n, 'consume_example printed every record');
  const stored = new Map(records.map((r) => [`${r.partition}/${r.offset}`, r]));
  const last = new Map();
  for (const p of printed) {
    const r = stored.get(`${p.partition}/${p.offset}`);
    assert.ok(r, `printed record ${p.partition}/${p.offset} is not stored`);
    assert.equal(p.id, r.event.id);
    assert.equal(p.data, Buffer.from(r.event.data).toString());
    assert.equal(p.key, Buffer.from(r.event.key).toString());
    assert.deepEqual(p.headers, { ...r.event.headers });
    assert.ok((last.get(p.partition) ?? -1) < p.offset, `partition ${p.partition} in offset order`);
    last.set(p.partition, p.offset);
  }
  assert.equal(new Set(printed.map((p) => p.id)).size, n, 'no record printed twice');
  const assignments = jsonLines(c.stderr).filter((l) => l.assignment);
  assert.ok(assignments.length >= 1, `an assignment was reported (stderr: ${c.stderr.slice(-1000)})`);
  assert.deepEqual([...assignments.at(-1).assignment].sort(), [0, 1, 2, 3]);

  let g = await srv.api.getGroup(group, topic);
  // The server drops the member once it sees the stream cancelled, a moment after the exit.
  for (let i = 0; i < 100 && g.members.length > 0; i++) {
    await sleep(50);
    g = await srv.api.getGroup(group, topic);
  }
  assert.equal(g.partitions.length, 4);
  for (const p of g.partitions) {
    assert.ok(p.has_committed, `partition ${p.partition} committed`);
    assert.equal(p.committed_offset, p.end_offset, `partition ${p.partition} committed to its end`);
    assert.equal(p.lag, 0, `partition ${p.partition} lag`);
  }
  assert.equal(g.members.length, 0, 'the consumer left the group when it closed');

  // Started again, the group resumes from its committed offsets: nothing left to print.
  const again = await run(consume, ['--address', srv.grpcAddr, '--topic', topic, '--group', group,
    '--idle-exit-ms', '1500']);
  assert.equal(again.code, 0, `second consume_example (stderr: ${again.stderr.slice(-2000)})`);
  assert.equal(jsonLines(again.stdout).length, 0, 'a committed group reads nothing again');
});

// A TCP proxy on a fixed loopback port to the server's current address: the server gets new
// ports on every restart, the publisher keeps one address.
async function startProxy(t, target) {
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(target());
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = {
    addr: `127.0.0.1:${server.address().port}`,
    dropAll() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
  };
  t.after(() => {
    proxy.dropAll();
    server.close();
  });
  return proxy;
}

function parseAddr(addr) {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

test('the SDK publisher rides out a dropped connection and server restarts: every event stored once', T, async (t) => {
  const publish = example('publish_example');
  const srv = await startServer(t);
  const topic = topicName('sdk-retry');
  await srv.api.createTopic(topic, 4);
  const proxy = await startProxy(t, () => parseAddr(srv.grpcAddr));
  const dir = makeTempDir('nodata-sdk-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const acksFile = path.join(dir, 'acks.jsonl');
  const n = 60000;

  // SDK-assigned ids (no --id-prefix): the retry dedupe relies on the ids the Publisher assigns
  // before the first attempt. Paced (about 20 s) so that every fault lands mid-stream.
  const running = run(publish, ['--address', proxy.addr, '--topic', topic, '--count', String(n),
    '--rate', '3000', '--acks-out', acksFile], { timeoutMs: 240000 });
  // The file grows in stdio-buffer steps (about 50 acks), fine for pacing.
  const ackedSoFar = () => (fs.existsSync(acksFile) ? fs.readFileSync(acksFile, 'utf8').split('\n').length - 1 : 0);
  const waitAcked = async (k) => {
    const until = Date.now() + 60000;
    while (ackedSoFar() < k) {
      if (Date.now() > until) throw new Error(`fewer than ${k} acks after 60 s (${ackedSoFar()})`);
      await sleep(20);
    }
  };
  await waitAcked(4000);
  proxy.dropAll(); // the connection drops under batches in flight
  t.diagnostic(`connection dropped after ${ackedSoFar()} acks`);
  await waitAcked(8000);
  // SIGTERM with the stream live: the server serves it through its shutdown grace period, then
  // cancels it; the Publisher resends what was unanswered to the restarted server.
  let t0 = Date.now();
  await srv.restart();
  t.diagnostic(`restart (SIGTERM) at ${ackedSoFar()} acks took ${Date.now() - t0} ms`);
  const afterTerm = ackedSoFar();
  await waitAcked(afterTerm + 4000);
  t0 = Date.now();
  await srv.restart({ how: 'kill' }); // batches in flight lose their answers
  t.diagnostic(`restart (SIGKILL) at ${ackedSoFar()} acks took ${Date.now() - t0} ms`);
  assert.ok(ackedSoFar() < n, 'the publisher was still running at the SIGKILL');

  const res = await running;
  const summary = assertPublished(res, n, 'publish across faults');
  t.diagnostic(`publish_example: ${JSON.stringify(summary)}`);
  const acks = jsonLines(fs.readFileSync(acksFile, 'utf8'));
  assert.equal(acks.length, n, 'one ack per event');
  assert.equal(new Set(acks.map((a) => a.id)).size, n, 'the ids the SDK assigned are unique');
  assert.equal(new Set(acks.map((a) => `${a.partition}/${a.offset}`)).size, n, 'no two acks share an offset');
  await assertStoredOnce(srv.api, topic, acks, 'after the faults');
  const ends = await srv.api.endOffsets(topic);
  assert.equal(ends.reduce((a, b) => a + b, 0), n, 'end offsets add up to exactly n records');
});

test('the SDK consumer reconnects after a server restart and resumes its group with nothing lost', T, async (t) => {
  const consume = example('consume_example');
  const srv = await startServer(t);
  const topic = topicName('sdk-resume');
  await srv.api.createTopic(topic, 3);
  const proxy = await startProxy(t, () => parseAddr(srv.grpcAddr));
  const group = 'sdk-resume-group';
  const child = spawn(consume, ['--address', proxy.addr, '--topic', topic, '--group', group,
    '--max-batch', '100', '--idle-exit-ms', '6000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  const printed = [];
  let buf = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      printed.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const waitPrinted = async (k) => {
    const until = Date.now() + 60000;
    while (printed.length < k) {
      if (Date.now() > until) throw new Error(`consume_example printed ${printed.length} of ${k}; stderr:\n${stderr.slice(-2000)}`);
      await sleep(20);
    }
  };
  const publishSome = async (from, count) => {
    const ids = [];
    for (let i = from; i < from + count; i += 500) {
      const events = Array.from({ length: Math.min(500, from + count - i) }, (_, j) => ({
        topic, id: `${topic}-${i + j}`, key: Buffer.from(`k${(i + j) % 17}`), data: Buffer.from(`${i + j}`),
      }));
      await srv.api.publishBatch(events);
      ids.push(...events.map((e) => e.id));
    }
    return ids;
  };

  const ids = await publishSome(0, 3000);
  await waitPrinted(3000);
  await srv.restart({ how: 'kill' });
  proxy.dropAll();
  ids.push(...(await publishSome(3000, 3000)));
  await waitPrinted(6000);
  const code = await exited;
  assert.equal(code, 0, `consume_example exit code; stderr:\n${stderr.slice(-2000)}`);
  assert.ok(jsonLines(stderr).filter((l) => l.assignment).length >= 2, 'assigned again after the reconnect');
  assert.equal(printed.length, ids.length, 'every record printed once (none again after the reconnect)');
  assert.deepEqual(new Set(printed.map((p) => p.id)), new Set(ids));
  const g = await srv.api.getGroup(group, topic);
  for (const p of g.partitions) {
    assert.equal(p.committed_offset, p.end_offset, `partition ${p.partition} committed to its end`);
    assert.equal(p.lag, 0);
  }
});
