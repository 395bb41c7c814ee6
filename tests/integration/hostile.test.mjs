// Hostile input the server must survive without harm to anyone else: a WebAssembly component
// that loops, recurses without end, eats memory and emits huge outputs; malformed gRPC (garbage
// bytes, broken HTTP/2, undecodable and oversized messages); malformed and slow HTTP requests;
// a client opening thousands of streams. After each: the server is up, answers others at once,
// and lost nothing.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { describeRun, runCli } from './lib/cli.mjs';
import { Api, Code, grpc } from './lib/grpc.mjs';
import { httpGet, makeTempDir, startServer } from './lib/server.mjs';
import { ev, memoryBound, sleep, topicName } from './lib/util.mjs';

const T = { timeout: 300000 };

/** Peak resident memory of the server process (VmHWM), in bytes. */
function peakRss(srv) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${srv.child.pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

async function recordsOf(srv, topic, n, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = await srv.api.readTopic(topic);
    if (records.length >= n || Date.now() > deadline) return records;
    await sleep(200);
  }
}

// Per record, by the first byte of its data: 'L' loops forever, 'R' recurses without end, 'M'
// grows memory until refused (touching every page) and fails, 'H' emits one 8 MiB output, 'N'
// emits 60 KiB outputs until refused; any other record goes to output 0 unchanged. Keys and
// headers are empty: a record is 32 bytes plus its data, the data at +28.
const HOSTILE_WAT = `(module
  (import "nodata" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (import "nodata" "emit" (func $emit (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1100)
  (global $out i32 (i32.const 62914560))
  (func (export "nodata_component_v1"))
  (func $deep (param $x i32) (result i32)
    (i32.add (call $deep (i32.add (local.get $x) (i32.const 1))) (i32.const 1)))
  ;; An output of input record $i with $len data bytes at $out+20 (filled by the caller).
  (func $header (param $i i32) (param $len i32)
    (i32.store (global.get $out) (local.get $i))
    (i64.store offset=4 (global.get $out) (i64.const -1))
    (i32.store offset=12 (global.get $out) (i32.const 0))
    (i32.store offset=16 (global.get $out) (local.get $len))
    (i32.store (i32.add (i32.add (global.get $out) (i32.const 20)) (local.get $len)) (i32.const 0)))
  (func (export "nd_process") (param $n i32) (result i32)
    (local $count i32) (local $i i32) (local $p i32) (local $len i32) (local $c i32)
    (local $k i32) (local $j i32)
    (drop (call $batch_read (i32.const 0) (local.get $n)))
    (local.set $count (i32.load (i32.const 0)))
    (local.set $p (i32.const 4))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (local.set $len (i32.load (i32.add (local.get $p) (i32.const 24))))
      (local.set $c (i32.load8_u (i32.add (local.get $p) (i32.const 28))))
      (if (i32.eq (local.get $c) (i32.const 76)) (then (loop $forever (br $forever))))
      (if (i32.eq (local.get $c) (i32.const 82)) (then (drop (call $deep (i32.const 0)))))
      (if (i32.eq (local.get $c) (i32.const 77)) (then
        (block $full (loop $grow
          (local.set $k (memory.grow (i32.const 16)))
          (br_if $full (i32.eq (local.get $k) (i32.const -1)))
          (local.set $j (i32.const 0))
          (loop $touch
            (i32.store8 (i32.mul (i32.add (local.get $k) (local.get $j)) (i32.const 65536)) (i32.const 1))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $touch (i32.lt_u (local.get $j) (i32.const 16))))
          (br $grow)))
        (return (i32.const 7))))
      (if (i32.eq (local.get $c) (i32.const 72)) (then
        (call $header (local.get $i) (i32.const 8388608))
        (local.set $k (call $emit (i32.const 0) (global.get $out) (i32.const 8388632)))
        (if (local.get $k) (then (return (i32.sub (i32.const 100) (local.get $k)))))))
      (if (i32.eq (local.get $c) (i32.const 78)) (then
        (call $header (local.get $i) (i32.const 61440))
        (loop $many
          (local.set $k (call $emit (i32.const 0) (global.get $out) (i32.const 61464)))
          (br_if $many (i32.eqz (local.get $k))))
        (return (i32.sub (i32.const 100) (local.get $k)))))
      (if (i32.eqz (i32.or (i32.or (i32.eq (local.get $c) (i32.const 72)) (i32.eq (local.get $c) (i32.const 78)))
                           (i32.const 0))) (then
        (call $header (local.get $i) (local.get $len))
        (local.set $j (i32.const 0))
        (block $copied (loop $copy
          (br_if $copied (i32.ge_u (local.get $j) (local.get $len)))
          (i32.store8 (i32.add (i32.add (global.get $out) (i32.const 20)) (local.get $j))
            (i32.load8_u (i32.add (i32.add (local.get $p) (i32.const 28)) (local.get $j))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $copy)))
        (if (call $emit (i32.const 0) (global.get $out) (i32.add (local.get $len) (i32.const 24)))
          (then (return (i32.const 9))))))
      (local.set $p (i32.add (local.get $p) (i32.add (i32.const 32) (local.get $len))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.const 0)))
`;

test('a hostile component: loops, runaway recursion, memory and huge outputs fail alone', T, async (t) => {
  const srv = await startServer(t);
  const a = topicName('in');
  const b = topicName('out');
  await srv.api.createTopic(a, 2);
  await srv.api.createTopic(b, 1);
  const wat = path.join(makeTempDir(), 'hostile.wat');
  writeFileSync(wat, HOSTILE_WAT);
  const name = topicName('hostile');
  const args = ['component', 'add', name, '--wasm', wat, '--transform', `${a}:${b}`, '--fuel-per-record', '50000000',
    '--server', srv.grpcAddr];
  const r = await runCli(args, { timeoutMs: 150000 });
  assert.equal(r.code, 0, describeRun(args, r));
  const kinds = { L: /fuel/, R: /call stack exhausted/, M: /returned 7|code 7|\b7\b/, H: /103|\b-3\b/, N: /103|\b-3\b/ };
  const events = [];
  for (let i = 0; i < 300; ++i) {
    const kind = Object.keys(kinds)[i % 60] ?? null;
    events.push(ev(a, { data: kind ? `${kind} hostile ${i}` : `fine ${i}` }));
  }
  await srv.api.publishBatch(events);
  const hostile = events.filter((e) => /^[LRMHN] /.test(e.data.toString()));
  const fine = events.filter((e) => e.data.toString().startsWith('fine'));
  const letters = await recordsOf(srv, `${name}.dead-letter`, hostile.length, 120000);
  assert.deepEqual(letters.map((l) => l.event.data.toString()).sort(), hostile.map((e) => e.data.toString()).sort(),
    'each hostile record dead-lettered, alone');
  for (const l of letters) {
    const kind = l.event.data.toString()[0];
    assert.match(l.event.headers['nodata-error'], kinds[kind], `the error of a '${kind}' record`);
  }
  const out = await recordsOf(srv, b, fine.length);
  assert.deepEqual(out.map((o) => o.event.data.toString()).sort(), fine.map((e) => e.data.toString()).sort(),
    'every other record went through, once');
  const c = await srv.api.getComponent(name);
  assert.equal(c.state, 'COMPONENT_STATE_RUNNING');
  const peak = peakRss(srv);
  t.diagnostic(`server peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
  assert.ok(peak < memoryBound(1.5 * 2 ** 30), `server peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
});

/** Sends `bytes` on a fresh TCP connection; resolves with what came back once it closed (or after 3 s). */
function rawExchange(addr, bytes) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const chunks = [];
    const s = net.connect(port, host, () => s.write(bytes));
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, 3000);
    s.on('data', (d) => chunks.push(d));
    s.on('close', done);
    s.on('error', done);
  });
}

/** A unary call of `method` with `body` as the raw message bytes (no protobuf encoding). */
function rawUnary(addr, method, body) {
  const client = new grpc.Client(addr, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(method, (x) => x, (x) => x, body, (err) => {
      client.close();
      resolve(err);
    });
  });
}

test('malformed gRPC: garbage, broken HTTP/2 and bad messages get errors, not a crash', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('m');
  await srv.api.createTopic(topic, 1);
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  // A frame header: 24-bit length, type, flags, 31-bit stream id.
  const frame = (len, type, flags, stream, payload = Buffer.alloc(0)) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(len, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream, 5);
    return Buffer.concat([h, payload]);
  };
  const garbage = [
    Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 0xff)),
    Buffer.concat([preface, frame(16, 4, 0, 0, Buffer.alloc(16, 0xff))]),  // SETTINGS with junk values
    Buffer.concat([preface, frame(0, 4, 0, 0), frame(0xffffff, 0, 0, 1)]),  // a DATA frame of 16 MiB announced
    Buffer.concat([preface, frame(0, 4, 0, 0), frame(40, 1, 4, 1, Buffer.alloc(40, 0xbe))]),  // HEADERS that are no HPACK
    Buffer.concat([preface, frame(0, 4, 0, 0), frame(4, 8, 0, 0, Buffer.from([0x7f, 0xff, 0xff, 0xff]))]),  // WINDOW_UPDATE overflow
  ];
  for (const g of garbage) await rawExchange(srv.grpcAddr, g);
  // Messages that are not the method's protobuf: gRPC C++ answers a request it cannot parse with
  // UNIMPLEMENTED and no message (grpc/grpc#30454), before any of our code runs.
  for (const body of [Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from('\x0a\xff\xff\xff\xff\x0f'), Buffer.alloc(1000, 0x12)]) {
    const err = await rawUnary(srv.grpcAddr, '/nodata.v1.IngestService/Publish', body);
    assert.ok(err && [Code.UNIMPLEMENTED, Code.INTERNAL, Code.INVALID_ARGUMENT].includes(err.code),
      `undecodable message: ${err?.code} ${err?.details}`);
  }
  // A message announcing 2 GiB, from Node's own HTTP/2 client.
  // The server may answer at once or wait for the rest (flow control bounds what it buffers):
  // either way, not OK.
  const session = http2.connect(`http://${srv.grpcAddr}`);
  session.on('error', () => {});
  const status = await new Promise((resolve) => {
    setTimeout(() => resolve('waiting'), 5000);
    const req = session.request({ ':method': 'POST', ':path': '/nodata.v1.IngestService/PublishBatch', 'content-type': 'application/grpc', te: 'trailers' });
    let grpcStatus = null;
    req.on('response', (h) => (grpcStatus = h['grpc-status'] ?? grpcStatus));
    req.on('trailers', (h) => (grpcStatus = h['grpc-status'] ?? grpcStatus));
    req.on('close', () => resolve(grpcStatus));
    req.on('error', () => resolve(grpcStatus));
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(0x7fffffff, 1);
    req.write(Buffer.concat([prefix, Buffer.alloc(65536, 1)]));
  });
  session.destroy();
  assert.ok(status === null || status === 'waiting' || Number(status) !== 0, `a 2 GiB message was not accepted (grpc-status ${status})`);
  // The server is up and serves others at once.
  const ack = await srv.api.publish(ev(topic), { timeoutMs: 2000 });
  assert.equal(ack.offset, 0);
  srv.assertNoCrash();
});

test('malformed and slow HTTP requests: 4xx answers, and a stuck client does not block /healthz', T, async (t) => {
  const srv = await startServer(t);
  const bad = [
    'GARBAGE\r\n\r\n',
    'GET /v1/aggregations/%zz HTTP/1.1\r\nHost: x\r\n\r\n',
    `GET /v1/aggregations?${'a='.repeat(20000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(200000)}\r\n\r\n`,
    'POST /v1/aggregations HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nabc',
    'GET /v1/aggregations/\x00\x01 HTTP/1.1\r\nHost: x\r\n\r\n',
  ];
  for (const b of bad) {
    const reply = (await rawExchange(srv.httpAddr, Buffer.from(b, 'latin1'))).toString('latin1');
    const code = Number(/^HTTP\/1\.[01] (\d{3})/.exec(reply)?.[1] ?? 0);
    assert.ok(code === 0 || (code >= 400 && code < 500), `${JSON.stringify(b.slice(0, 60))}: answered ${reply.slice(0, 80)}`);
  }
  // Slow clients: more connections than the HTTP server has threads (64), each sending half a
  // request; a request must arrive within 3 s.
  const [host, port] = srv.httpAddr.split(':');
  const slow = [];
  for (let i = 0; i < 100; ++i) {
    const s = net.connect(Number(port), host, () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'));
    s.on('error', () => {});
    slow.push(s);
  }
  t.after(() => slow.forEach((s) => s.destroy()));
  await sleep(500);
  const started = Date.now();
  const health = await httpGet(srv, '/healthz');
  const ms = Date.now() - started;
  assert.equal(health.status, 200);
  assert.ok(ms < 5000, `/healthz took ${ms} ms behind 100 stalled requests`);
  t.diagnostic(`/healthz answered in ${ms} ms behind 100 stalled requests`);
  srv.assertNoCrash();
});

test('a client opening thousands of streams is held to its quota and gives them back', T, async (t) => {
  const srv = await startServer(t, { args: ['--quota-streams', '2000'] });
  const topic = topicName('s');
  await srv.api.createTopic(topic, 1);
  const apis = Array.from({ length: 3 }, () => new Api(srv.grpcAddr, { separateConnection: true }));
  t.after(() => apis.forEach((a) => a.close()));
  const calls = [];
  const outcomes = { refused: 0, other: [] };
  for (const api of apis) {
    for (let i = 0; i < 900; ++i) {
      const call = api.consume.Subscribe({ topic }, new grpc.Metadata());
      call.records = 0;
      call.on('data', (msg) => (call.records += msg.records?.records?.length ?? 0));
      call.on('error', (err) => {
        call.failed = true;
        if (err.code === Code.RESOURCE_EXHAUSTED) ++outcomes.refused;
        else if (err.code !== Code.CANCELLED) outcomes.other.push(`${err.code} ${err.details}`);
      });
      calls.push(call);
    }
  }
  // The streams past the quota are refused as they arrive; then no more are.
  const deadline0 = Date.now() + 60000;
  while (outcomes.refused < calls.length - 2000 && Date.now() < deadline0) await sleep(100);
  await sleep(1000);
  const open = calls.filter((c) => !c.failed);
  t.diagnostic(`streams: ${open.length} open, ${outcomes.refused} refused`);
  assert.deepEqual(outcomes.other, []);
  assert.equal(open.length, 2000, 'the quota\'s worth of streams open');
  assert.equal(outcomes.refused, calls.length - 2000);
  // Meanwhile another call goes through at once, and its record reaches every open stream.
  await srv.api.publish(ev(topic), { timeoutMs: 2000 });
  const deadline = Date.now() + 30000;
  while (open.some((c) => c.records === 0) && Date.now() < deadline) await sleep(100);
  assert.equal(open.filter((c) => c.records === 1).length, open.length, 'the record reached every open stream');
  for (const c of calls) c.cancel();
  await sleep(1000);
  // Given back: a new stream opens.
  const sub = srv.api.subscribe({ topic });
  await sub.waitFor((s) => s.records.length === 1, { what: 'the record', timeoutMs: 10000 });
  sub.cancel();
  srv.assertNoCrash();
});
