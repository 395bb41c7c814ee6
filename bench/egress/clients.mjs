// Clients for the egress benchmark, one system per run, the same client stack (Node) for all:
//
//   node clients.mjs latency --system nodata|jetstream|redis --server HOST:PORT [--rate 10000]
//                            [--seconds 10] [--warmup 2] [--payload 100]
//   node clients.mjs preload --system jetstream|redis --server HOST:PORT --count N [--payload 100]
//   node clients.mjs catchup --system nodata|jetstream|redis --server HOST:PORT --count N
//
// latency: one publisher sends `rate` events/s (a batch every millisecond, sized by the elapsed
//   time so the rate holds) while one subscriber in the same process receives them; each event
//   carries its send time, so publish -> receive latency is measured on one clock. nodata:
//   PublishBatch + Subscribe (latest); JetStream: async publish + a pull consumer (consume());
//   Redis Streams: pipelined XADD + XREAD BLOCK COUNT 1000 on a second connection.
// catchup: one reader reads `count` stored events from the start as fast as it can: nodata
//   Subscribe (earliest), JetStream pull consumer fetching 1000 at a time, Redis XREAD COUNT 1000.
// Prints one JSON line.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { AckPolicy, DeliverPolicy, connect, RetentionPolicy, StorageType } from 'nats';
import { createClient } from 'redis';

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const o = { mode: argv[0], system: 'nodata', server: '', rate: 10000, seconds: 10, warmup: 2, payload: 100, count: 1000000, topic: 'egress' };
  for (let i = 1; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o)) throw new Error(`unknown option ${argv[i]}`);
    o[k] = typeof o[k] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return o;
}

function percentiles(xs) {
  xs.sort((a, b) => a - b);
  const at = (q) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))];
  return { n: xs.length, p50_ms: at(0.5), p99_ms: at(0.99), p999_ms: at(0.999), max_ms: xs.at(-1) };
}

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
function payloadWith(sent, size) {
  return Buffer.from(String(sent).padEnd(size, ' '));
}
const sentOf = (buf) => Number(Buffer.from(buf).toString().trim());

function nodataClients(server) {
  const def = protoLoader.loadSync(path.join(here, '../../proto/nodata/v1/nodata.proto'), {
    keepCase: true, longs: Number, defaults: true, oneofs: true,
  });
  const v1 = grpc.loadPackageDefinition(def).nodata.v1;
  const opts = { 'grpc.max_receive_message_length': -1 };
  return {
    ingest: new v1.IngestService(server, grpc.credentials.createInsecure(), opts),
    consume: new v1.ConsumeService(server, grpc.credentials.createInsecure(), opts),
    topics: new v1.TopicService(server, grpc.credentials.createInsecure(), opts),
  };
}

// Drives `send(n)` at `rate` events/s for warmup + seconds; resolves when done.
async function paced(o, send) {
  const start = now();
  const end = start + (o.warmup + o.seconds) * 1000;
  let sent = 0;
  while (now() < end) {
    const due = Math.floor(((now() - start) / 1000) * o.rate);
    if (due > sent) {
      await send(due - sent);
      sent = due;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  return sent;
}

async function latency(o) {
  const lat = [];
  const warmEnd = now() + o.warmup * 1000;
  const record = (sent) => {
    const t = now();
    if (sent >= warmEnd) lat.push(t - sent);
  };
  let received = 0;
  let sent = 0;
  if (o.system === 'nodata') {
    const c = nodataClients(o.server);
    await new Promise((res, rej) => c.topics.CreateTopic({ name: o.topic, partitions: 1 }, (e) => (e && e.code !== grpc.status.ALREADY_EXISTS ? rej(e) : res())));
    const sub = c.consume.Subscribe({ topic: o.topic, start: { latest: true } });
    const ready = new Promise((r) => setTimeout(r, 300));
    sub.on('data', (m) => {
      if (!m.records) return;
      for (const r of m.records.records) {
        record(sentOf(r.event.data));
        received++;
      }
    });
    sub.on('error', () => {});
    await ready;
    sent = await paced(o, (n) => {
      const t = now();
      const events = Array.from({ length: n }, () => ({ topic: o.topic, data: payloadWith(t, o.payload) }));
      return new Promise((res, rej) => c.ingest.PublishBatch({ events }, (e) => (e ? rej(e) : res())));
    });
    await waitFor(() => received >= sent, 5000);
    sub.cancel();
  } else if (o.system === 'jetstream') {
    const nc = await connect({ servers: o.server });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: 'EGRESS', subjects: ['egress.>'], storage: StorageType.File, retention: RetentionPolicy.Limits });
    await jsm.consumers.add('EGRESS', { durable_name: 'lat', ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.New });
    const js = nc.jetstream();
    const consumer = await js.consumers.get('EGRESS', 'lat');
    const messages = await consumer.consume({ max_messages: 1000 });
    (async () => {
      for await (const m of messages) {
        record(sentOf(m.data));
        received++;
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    sent = await paced(o, async (n) => {
      const t = now();
      const data = payloadWith(t, o.payload);
      await Promise.all(Array.from({ length: n }, () => js.publish('egress.lat', data)));
    });
    await waitFor(() => received >= sent, 5000);
    messages.stop();
    await nc.close();
  } else if (o.system === 'redis') {
    const [host, port] = o.server.split(':');
    const w = createClient({ socket: { host, port: Number(port) } });
    const r = createClient({ socket: { host, port: Number(port) } });
    await w.connect();
    await r.connect();
    let stop = false;
    const reader = (async () => {
      let id = '$';
      while (!stop) {
        const res = await r.xRead({ key: 'egress', id }, { BLOCK: 500, COUNT: 1000 });
        if (!res) continue;
        for (const m of res[0].messages) {
          record(Number(m.message.d.trim()));
          received++;
          id = m.id;
        }
      }
    })();
    await new Promise((res) => setTimeout(res, 300));
    sent = await paced(o, async (n) => {
      const t = now();
      const d = payloadWith(t, o.payload).toString();
      const multi = w.multi();
      for (let i = 0; i < n; i++) multi.xAdd('egress', '*', { d });
      await multi.execAsPipeline();
    });
    await waitFor(() => received >= sent, 5000);
    stop = true;
    await reader;
    await w.quit();
    await r.quit();
  } else {
    throw new Error(`unknown system ${o.system}`);
  }
  return { system: o.system, mode: 'latency', rate: o.rate, sent, received, ...percentiles(lat) };
}

async function waitFor(pred, ms) {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
}

async function preload(o) {
  const data = Buffer.alloc(o.payload, 'x');
  if (o.system === 'jetstream') {
    const nc = await connect({ servers: o.server });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: 'CATCHUP', subjects: ['catchup.>'], storage: StorageType.File });
    const js = nc.jetstream();
    for (let i = 0; i < o.count; i += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, o.count - i) }, () => js.publish('catchup.x', data)));
    }
    await nc.close();
  } else if (o.system === 'redis') {
    const [host, port] = o.server.split(':');
    const w = createClient({ socket: { host, port: Number(port) } });
    await w.connect();
    const d = data.toString();
    for (let i = 0; i < o.count; i += 1000) {
      const multi = w.multi();
      for (let j = 0; j < Math.min(1000, o.count - i); j++) multi.xAdd('catchup', '*', { d });
      await multi.execAsPipeline();
    }
    await w.quit();
  } else {
    throw new Error(`preload: unknown system ${o.system}`);
  }
  return { system: o.system, mode: 'preload', count: o.count };
}

async function catchup(o) {
  let got = 0;
  let bytes = 0;
  const t0 = now();
  if (o.system === 'nodata') {
    const c = nodataClients(o.server);
    await new Promise((resolve, reject) => {
      const sub = c.consume.Subscribe({ topic: o.topic, start: { earliest: true }, max_batch: 10000 });
      sub.on('data', (m) => {
        if (!m.records) return;
        for (const r of m.records.records) {
          bytes += r.event.data.length;
          got++;
        }
        if (got >= o.count) {
          sub.cancel();
          resolve();
        }
      });
      sub.on('error', (e) => (got >= o.count ? resolve() : reject(e)));
    });
  } else if (o.system === 'jetstream') {
    const nc = await connect({ servers: o.server });
    const js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    await jsm.consumers.add('CATCHUP', { durable_name: 'catchup', ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All });
    const consumer = await js.consumers.get('CATCHUP', 'catchup');
    while (got < o.count) {
      const batch = await consumer.fetch({ max_messages: 1000, expires: 5000 });
      for await (const m of batch) {
        bytes += m.data.length;
        got++;
      }
    }
    await nc.close();
  } else if (o.system === 'redis') {
    const [host, port] = o.server.split(':');
    const r = createClient({ socket: { host, port: Number(port) } });
    await r.connect();
    let id = '0';
    while (got < o.count) {
      const res = await r.xRead({ key: 'catchup', id }, { COUNT: 1000 });
      if (!res) break;
      for (const m of res[0].messages) {
        bytes += m.message.d.length;
        got++;
        id = m.id;
      }
    }
    await r.quit();
  } else {
    throw new Error(`unknown system ${o.system}`);
  }
  const seconds = (now() - t0) / 1000;
  return { system: o.system, mode: 'catchup', client: 'node', records: got, seconds, records_per_s: Math.round(got / seconds), mb_per_s: +(bytes / seconds / 1e6).toFixed(1) };
}

const o = parseArgs(process.argv.slice(2));
const run = { latency, preload, catchup }[o.mode];
if (!run) {
  console.error('usage: node clients.mjs latency|preload|catchup --system S --server HOST:PORT ...');
  process.exit(2);
}
run(o).then((r) => {
  console.log(JSON.stringify(r));
  process.exit(0);
}, (e) => {
  console.error(e);
  process.exit(1);
});
