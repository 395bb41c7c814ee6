// Client of the components latency benchmark (bench/components/latency starts the server and the
// transform):
//
//   node latency.mjs --server HOST:PORT [--rate 10000] [--seconds 20] [--warmup 2] [--payload 100]
//                    [--in in] [--out out]
//
// Subscribes (no group, from latest) to the input topic and to the transform's output topic, then
// publishes `payload`-byte records at `rate` records/s with PublishBatch: every millisecond (as
// often as Node's timers allow, ~1 ms) one batch holding the records due by then, so the rate
// holds whatever the timer's jitter (about 10 records per batch at 10k/s). Records of the first
// `warmup` seconds carry "w"; the measured ones carry their sequence number, padded with spaces.
// Per measured record, on this process's monotonic clock:
//   output  latency = the output is received by the subscriber - the input's publish was acked
//   raw     latency = the input itself is received by the subscriber - its publish was acked
// (the floor: the subscription path without the transform), and the same two from the send of
// the batch instead of its ack. A record can be received before its ack has reached this
// process: such latencies are negative and count as they are.
// Checks that every measured record came out exactly once on both subscriptions (exit 1 if not).
// Prints a table and one JSON line.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const o = { server: '', rate: 10000, seconds: 20, warmup: 2, payload: 100, in: 'in', out: 'out' };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    o[k] = typeof o[k] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!o.server) throw new Error('--server HOST:PORT is required');
  return o;
}

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms, monotonic
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function clients(server) {
  const def = protoLoader.loadSync(path.join(here, '../../proto/nodata/v1/nodata.proto'), {
    keepCase: true, longs: Number, defaults: true, oneofs: true,
  });
  const v1 = grpc.loadPackageDefinition(def).nodata.v1;
  const opts = { 'grpc.max_receive_message_length': -1 };
  // The publisher and each subscriber on their own connection, as separate clients would be.
  const own = { 'grpc.use_local_subchannel_pool': 1, ...opts };
  return {
    ingest: new v1.IngestService(server, grpc.credentials.createInsecure(), own),
    consumeIn: new v1.ConsumeService(server, grpc.credentials.createInsecure(), own),
    consumeOut: new v1.ConsumeService(server, grpc.credentials.createInsecure(), own),
  };
}

// Receive times of a subscription, by sequence number; warmup records only counted.
function subscribe(client, topic, n, state) {
  const received = new Float64Array(n);
  const copies = new Uint32Array(n);
  const s = { received, copies, warm: 0, measured: 0, stray: 0, error: null };
  const call = client.Subscribe({ topic, start: { latest: true } });
  call.on('data', (m) => {
    if (!m.records) return;
    const t = now();
    for (const r of m.records.records) {
      const data = Buffer.from(r.event.data);
      if (data[0] === 0x77 /* w */) {
        s.warm++;
        continue;
      }
      const seq = Number(data.toString('latin1').trimEnd());
      if (!Number.isInteger(seq) || seq < 0 || seq >= state.published) {
        s.stray++;
        continue;
      }
      if (copies[seq]++ === 0) {
        received[seq] = t;
        s.measured++;
      }
    }
  });
  call.on('error', (e) => {
    if (e.code !== grpc.status.CANCELLED) s.error = e;
  });
  s.cancel = () => call.cancel();
  return s;
}

function stats(values) {
  const xs = Float64Array.from(values).sort();
  const at = (q) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))];
  const r3 = (x) => Math.round(x * 1000) / 1000;
  return { count: xs.length, p50_ms: r3(at(0.5)), p90_ms: r3(at(0.9)), p99_ms: r3(at(0.99)),
           max_ms: r3(xs[xs.length - 1]), min_ms: r3(xs[0]) };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const n = Math.ceil(o.rate * o.seconds);
  const c = clients(o.server);
  const state = { published: n };
  const sent = new Float64Array(n);
  const acked = new Float64Array(n);
  const subIn = subscribe(c.consumeIn, o.in, n, state);
  const subOut = subscribe(c.consumeOut, o.out, n, state);
  const data = (text) => Buffer.from(text.padEnd(o.payload, ' '));
  const warmData = data('w');
  let inflight = 0;
  let failed = null;
  let batches = 0;

  // `count` records from sequence number `first` (or warmup records when first < 0).
  const publish = (first, count) => {
    const t = now();
    const events = new Array(count);
    for (let i = 0; i < count; ++i) {
      events[i] = { topic: o.in, key: Buffer.from(`k${(first < 0 ? i : first + i) % 64}`),
                    data: first < 0 ? warmData : data(String(first + i)) };
      if (first >= 0) sent[first + i] = t;
    }
    inflight++;
    batches++;
    c.ingest.PublishBatch({ events }, (e) => {
      const ta = now();
      inflight--;
      if (e) {
        failed = e;
        return;
      }
      if (first >= 0) acked.fill(ta, first, first + count);
    });
  };

  // Paced publishing of `total` records (or for `ms` milliseconds of warmup).
  const paced = async (total, ms, first) => {
    const start = now();
    let done = 0;
    for (;;) {
      const elapsed = now() - start;
      if (first < 0 && elapsed >= ms) break;
      const due = Math.min(total, Math.floor((elapsed / 1000) * o.rate));
      if (due > done) {
        publish(first < 0 ? -1 : done, due - done);
        done = due;
      }
      if (done >= total) break;
      await sleep(1);
    }
    return now() - start;
  };

  // Warmup: until both subscriptions have delivered warmup records (they are live) and at least
  // `warmup` seconds.
  const warmStart = now();
  while (now() - warmStart < o.warmup * 1000 || subIn.warm === 0 || subOut.warm === 0) {
    await paced(Infinity, 100, -1);
    if (now() - warmStart > 120_000) throw new Error('no warmup record came out within 120 s');
    if (failed) throw failed;
  }
  while (inflight > 0) await sleep(1);
  batches = 0;

  const publishMs = await paced(n, 0, 0);
  const deadline = now() + 60_000;
  while ((inflight > 0 || subIn.measured < n || subOut.measured < n) && now() < deadline) {
    if (failed) throw failed;
    await sleep(5);
  }
  await sleep(500); // late duplicates, if any
  subIn.cancel();
  subOut.cancel();
  c.ingest.close();
  c.consumeIn.close();
  c.consumeOut.close();
  if (failed) throw failed;

  const lastAck = acked.reduce((m, x) => Math.max(m, x), 0);
  const firstSent = sent[0];
  const rows = [];
  const check = {};
  for (const [name, sub] of [['output', subOut], ['raw', subIn]]) {
    const fromAck = [];
    const fromSend = [];
    let missing = 0;
    let duplicates = 0;
    for (let i = 0; i < n; ++i) {
      if (sub.copies[i] === 0) {
        missing++;
        continue;
      }
      duplicates += sub.copies[i] - 1;
      fromAck.push(sub.received[i] - acked[i]);
      fromSend.push(sub.received[i] - sent[i]);
    }
    check[name] = { missing, duplicates, stray: sub.stray, error: sub.error?.message ?? null };
    rows.push({ latency: `${name}: ack -> received`, ...stats(fromAck) });
    rows.push({ latency: `${name}: send -> received`, ...stats(fromSend) });
  }
  const result = {
    records: n, payload: o.payload, target_rate: o.rate, batches, mean_batch: Math.round((n / batches) * 10) / 10,
    input_rate: Math.round(n / ((lastAck - firstSent) / 1000)),
    publish_seconds: Math.round(publishMs) / 1000, check, rows,
  };

  const pad = (s, w) => String(s).padStart(w);
  console.log(`${'latency (ms)'.padEnd(26)}${pad('count', 8)}${pad('p50', 9)}${pad('p90', 9)}${pad('p99', 9)}${pad('max', 9)}`);
  for (const r of rows) {
    console.log(`${r.latency.padEnd(26)}${pad(r.count, 8)}${pad(r.p50_ms.toFixed(2), 9)}` +
                `${pad(r.p90_ms.toFixed(2), 9)}${pad(r.p99_ms.toFixed(2), 9)}${pad(r.max_ms.toFixed(2), 9)}`);
  }
  console.log(`input: ${n} records of ${o.payload} B in ${batches} PublishBatch calls (mean ${result.mean_batch}), ` +
              `acked at ${result.input_rate} records/s (target ${o.rate})`);
  let ok = true;
  for (const [name, ch] of Object.entries(check)) {
    const good = ch.missing === 0 && ch.duplicates === 0 && ch.stray === 0 && ch.error === null;
    ok &&= good;
    console.log(`${name}: ${good ? 'every record exactly once' : `MISMATCH missing ${ch.missing}, duplicates ${ch.duplicates}, stray ${ch.stray}${ch.error ? `, error ${ch.error}` : ''}`}`);
  }
  console.log(JSON.stringify(result));
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(`latency.mjs: ${e.stack ?? e}`);
  process.exit(1);
});
