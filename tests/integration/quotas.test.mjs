// Limits per principal: --quota-requests, --quota-publish-bytes, --quota-streams. A unary call
// over a rate is RESOURCE_EXHAUSTED with google.rpc.RetryInfo in grpc-status-details-bin; a
// publish stream over its rate waits (HTTP/2 flow control holds the client back) instead of
// failing; and one principal flooding the server does not take the others' throughput.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Api, Code, codeName, expectStatus } from './lib/grpc.mjs';
import { describeRun, runCli } from './lib/cli.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';
import { ev, sleep, topicName } from './lib/util.mjs';

const T = { timeout: 120000 };

async function mint(dataDir, name, scopes) {
  const args = ['token', 'create', name, ...scopes.flatMap((s) => ['--scope', s]), '--data', dataDir];
  const r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  return r.stdout.trimEnd().split('\n').at(-1);
}

// Protobuf wire format, enough to read google.rpc.Status { code = 1; message = 2; repeated Any
// details = 3 }, Any { type_url = 1; value = 2 }, RetryInfo { Duration retry_delay = 1 } and
// Duration { seconds = 1; nanos = 2 }: field number -> list of values (numbers or Buffers).
function decodeFields(buf) {
  const out = new Map();
  let i = 0;
  const varint = () => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    let value;
    if ((key & 7) === 0) value = Number(varint());
    else if ((key & 7) === 2) {
      const n = Number(varint());
      value = buf.subarray(i, i + n);
      i += n;
    } else throw new Error(`unexpected wire type ${key & 7}`);
    if (!out.has(field)) out.set(field, []);
    out.get(field).push(value);
  }
  return out;
}

// The retry delay (ms) of a RESOURCE_EXHAUSTED error from grpc-js, read from its status details.
function retryDelayMs(err) {
  const [details] = err.metadata.get('grpc-status-details-bin');
  assert.ok(details, 'grpc-status-details-bin is set');
  const status = decodeFields(Buffer.from(details));
  assert.equal(status.get(1)[0], Code.RESOURCE_EXHAUSTED);
  assert.equal(status.get(2)[0].toString(), err.details);
  const any = decodeFields(status.get(3)[0]);
  assert.equal(any.get(1)[0].toString(), 'type.googleapis.com/google.rpc.RetryInfo');
  const duration = decodeFields(decodeFields(any.get(2)[0]).get(1)[0]);
  return (duration.get(1)?.[0] ?? 0) * 1000 + (duration.get(2)?.[0] ?? 0) / 1e6;
}

test('--quota-requests: a call over the rate is RESOURCE_EXHAUSTED with a retry delay', T, async (t) => {
  const srv = await startServer(t, { args: ['--quota-requests', '5'] });
  const topic = topicName('q');
  await srv.api.createTopic(topic, 1);  // one of the five
  for (let i = 0; i < 4; i++) await srv.api.listTopics();
  const err = await expectStatus(srv.api.listTopics(), Code.RESOURCE_EXHAUSTED, 'the sixth request');
  // With authentication off the principal is the client's address.
  assert.match(err.details, /^127\.0\.0\.1 is over its quota of 5 requests\/s; retry in \d+ ms$/);
  const delay = retryDelayMs(err);
  assert.ok(delay > 0 && delay <= 200, `a retry delay of one request at 5/s: ${delay} ms`);
  await expectStatus(srv.api.publishBatch([ev(topic)]), Code.RESOURCE_EXHAUSTED, 'a publish too');
  // HTTP counts against the same principal: 429 with Retry-After.
  const res = await fetch(`http://${srv.httpAddr}/v1/aggregations`);
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '1');
  assert.match((await res.json()).error.message, /^127\.0\.0\.1 is over its quota of 5 requests\/s/);
  await sleep(delay + 50);
  assert.equal((await srv.api.publishBatch([ev(topic)])).length, 1, 'after the delay it goes');
  const metrics = await (await fetch(`http://${srv.httpAddr}/metrics`)).text();
  assert.match(metrics, /nodata_quota_exceeded_total\{kind="requests"\} [2-9]/);
  srv.assertNoCrash();
});

test('--quota-publish-bytes: a publish stream over the rate is slowed, not failed', T, async (t) => {
  const rate = 200_000;
  const srv = await startServer(t, { args: ['--quota-publish-bytes', String(rate)] });
  const topic = topicName('qb');
  await srv.api.createTopic(topic, 1);
  const data = 'x'.repeat(20_000);
  const batches = 40;  // 800 KB: a second's burst, then three seconds at the rate
  const stream = srv.api.ingest.PublishStream();
  let acked = 0;
  const done = new Promise((resolve, reject) => {
    stream.on('data', (d) => { acked += d.acks.length; if (acked === batches) { stream.end(); } });
    stream.on('error', reject);
    stream.on('end', resolve);
  });
  const start = Date.now();
  for (let i = 0; i < batches; i++) {
    if (!stream.write({ events: [ev(topic, { id: `b${i}`, data: Buffer.from(data) })] })) {
      await new Promise((r) => stream.once('drain', r));
    }
  }
  await done;
  const seconds = (Date.now() - start) / 1000;
  assert.equal(acked, batches);
  const bytes = batches * (data.length + topic.length + 2 + 3);
  assert.ok(seconds >= (bytes - rate) / rate * 0.9, `${bytes} bytes at ${rate}/s took ${seconds} s`);
  assert.ok(seconds < 15, `and not much longer: ${seconds} s`);
  // A single publish over the rate is refused with the delay instead.
  await expectStatus(srv.api.publishBatch([ev(topic, { data: Buffer.from(data.repeat(5)) })]),
    Code.RESOURCE_EXHAUSTED, 'a unary publish over the rate');
  assert.equal((await srv.api.readTopic(topic)).length, batches, 'the refused batch stored nothing');
  srv.assertNoCrash();
});

test('--quota-streams bounds the streams a principal has open', T, async (t) => {
  const dataDir = path.join(makeTempDir(), 'data');
  const a = await mint(dataDir, 'a', ['admin']);
  const b = await mint(dataDir, 'b', ['admin']);
  const srv = await startServer(t, { dataDir, args: ['--auth', 'tokens', '--quota-streams', '3'] });
  const apiA = new Api(srv.grpcAddr, { token: a });
  const apiB = new Api(srv.grpcAddr, { token: b });
  t.after(() => [apiA, apiB].forEach((x) => x.close()));
  const topic = topicName('qs');
  await apiA.createTopic(topic, 1);
  await apiA.publishBatch([ev(topic)]);
  const subs = [];
  for (let i = 0; i < 3; i++) {
    const s = apiA.subscribe({ topic, start: { earliest: true } });
    await s.waitFor((x) => x.records.length >= 1, { what: `subscription ${i}` });
    subs.push(s);
  }
  const fourth = apiA.subscribe({ topic, start: { earliest: true } });
  await fourth.end;
  assert.equal(codeName(fourth.error?.code), 'RESOURCE_EXHAUSTED');
  assert.match(fourth.error.details, /a has 3 streams open, its limit \(--quota-streams\)/);
  await expectStatus(apiA.readTopic(topic), Code.RESOURCE_EXHAUSTED, 'a read is a stream too');
  assert.equal((await apiB.readTopic(topic)).length, 1, 'another principal has streams of its own');
  subs[0].cancel();
  await subs[0].end;
  const deadline = Date.now() + 10000;
  let read;
  while (Date.now() < deadline) {
    read = await apiA.readTopic(topic).catch((e) => e);
    if (Array.isArray(read)) break;
    await sleep(100);
  }
  assert.equal(read.length, 1, 'a closed stream gives its slot back');
  subs.slice(1).forEach((s) => s.cancel());
  srv.assertNoCrash();
});

// Publishes over PublishStream, as fast as flow control lets it, for `ms`; resolves with the
// bytes of data acknowledged. `streams` streams in parallel.
async function flood(api, topic, { ms, streams = 1, batchBytes = 32_000 }) {
  const data = Buffer.alloc(batchBytes, 'y');
  let ackedBytes = 0;
  const until = Date.now() + ms;
  await Promise.all(Array.from({ length: streams }, async () => {
    const stream = api.ingest.PublishStream();
    const ended = new Promise((resolve) => { stream.on('error', resolve); stream.on('end', resolve); });
    stream.on('data', (d) => { if (Date.now() <= until) ackedBytes += d.acks.length * batchBytes; });
    while (Date.now() < until) {
      if (!stream.write({ events: [ev(topic, { data })] })) {
        await Promise.race([new Promise((r) => stream.once('drain', r)), sleep(Math.max(0, until - Date.now()))]);
      }
    }
    stream.cancel();
    await ended;
  }));
  return ackedBytes;
}

test('a principal flooding the server is held to its quota; another keeps its throughput', { timeout: 180000 }, async (t) => {
  const rate = 1_000_000;
  const dataDir = path.join(makeTempDir(), 'data');
  const tokens = { a: await mint(dataDir, 'flooder', ['publish:*']), b: await mint(dataDir, 'steady', ['publish:*']) };
  const srv = await startServer(t, { dataDir, args: ['--auth', 'tokens', '--quota-publish-bytes', String(rate)] });
  const admin = new Api(srv.grpcAddr, { token: await mint(dataDir, 'ops', ['admin']) });
  const a = new Api(srv.grpcAddr, { token: tokens.a, separateConnection: true });
  const b = new Api(srv.grpcAddr, { token: tokens.b, separateConnection: true });
  t.after(() => [admin, a, b].forEach((x) => x.close()));
  const topic = topicName('flood');
  await admin.createTopic(topic, 4);

  const ms = 4000;
  // B alone (after its first second's burst is spent, so that both phases see the steady rate).
  await flood(b, topic, { ms: 1000 });
  const alone = await flood(b, topic, { ms });
  // B again while A floods: four streams, and unary batches as fast as they come back.
  let refused = 0;
  let stop = false;
  const unary = (async () => {
    const big = Buffer.alloc(64_000, 'z');
    while (!stop) {
      await a.publishBatch([ev(topic, { data: big })]).catch((e) => {
        if (codeName(e.code) === 'RESOURCE_EXHAUSTED') refused++;
        else throw e;
      });
    }
  })();
  const [flooded, withFlood] = await Promise.all([flood(a, topic, { ms, streams: 4 }), flood(b, topic, { ms })]);
  stop = true;
  await unary;
  t.diagnostic(`B alone ${alone} B, B beside the flood ${withFlood} B; the flooder's streams ${flooded} B, its unary batches refused ${refused} times`);
  assert.ok(withFlood >= 0.8 * alone, `B keeps its throughput within 20%: ${withFlood} vs ${alone}`);
  // A: a second's burst plus the rate over the run (its unary batches count against it too).
  assert.ok(flooded <= rate * (1 + ms / 1000) * 1.1, `the flooder is held to its quota: ${flooded} bytes in ${ms} ms`);
  assert.ok(refused > 0, 'the flooder\'s unary batches were refused');
  srv.assertNoCrash();
});
