// JetStream peer for the ingest benchmark: publishes to a file-storage stream on a running
// nats-server with up to --window publishes awaiting their PubAck (async publish with acks), and
// prints one JSON line: msgs/s, MB/s (payload bytes, 1 MB = 10^6 B), ack latency percentiles (per
// message: publish -> PubAck), client CPU (100 = one core).
//
//   node jetstream.mjs --server 127.0.0.1:4222 --payload 100 --window 4096 --seconds 10 --warmup 2
//
// Each message carries a unique Nats-Msg-Id (JetStream's dedupe, like nodata's event ids) unless
// --no-msg-id is given.
import { readFileSync } from "node:fs";
import os from "node:os";
import { connect, createInbox, headers, StorageType, RetentionPolicy } from "nats";

function parseArgs(argv) {
  const o = {
    server: "127.0.0.1:4222", payload: 100, window: 64, seconds: 10, warmup: 2,
    stream: "BENCH", subject: "bench.ingest", msgId: true, label: "", serverPid: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    if (a === "--server") o.server = v();
    else if (a === "--payload") o.payload = Number(v());
    else if (a === "--window") o.window = Number(v());
    else if (a === "--seconds") o.seconds = Number(v());
    else if (a === "--warmup") o.warmup = Number(v());
    else if (a === "--stream") o.stream = v();
    else if (a === "--subject") o.subject = v();
    else if (a === "--label") o.label = v();
    else if (a === "--server-pid") o.serverPid = Number(v());
    else if (a === "--no-msg-id") o.msgId = false;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

function cpuSecondsOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // f[0] is field 3 (state): utime is field 14, stime field 15.
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return -1;
  }
}

// Busy and total jiffies of the whole machine, from /proc/stat.
function machineJiffies() {
  try {
    const v = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1, 9).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    return [total - v[3] - v[4], total];
  } catch {
    return [0, 0];
  }
}

const o = parseArgs(process.argv.slice(2));
const nc = await connect({ servers: o.server, maxReconnectAttempts: 0 });
const jsm = await nc.jetstreamManager();
await jsm.streams.add({
  name: o.stream,
  subjects: [o.subject],
  storage: StorageType.File,
  retention: RetentionPolicy.Limits,
  num_replicas: 1,
  duplicate_window: 120 * 1e9, // ns; JetStream's default
});

const payload = new Uint8Array(o.payload);
for (let i = 0; i < payload.length; i++) payload[i] = 97 + (i % 26);
const runId = Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, "0");

// Async publish with acks, done the way the Go client's PublishAsync does it: a plain PUB with a
// reply subject under one wildcard inbox subscription, at most --window unacknowledged. (nats.js's
// js.publish() allocates a promise, a timer and a request per message and cost the client 5-8x
// more CPU than this on the benchmark machine, making the client the bottleneck.) The PubAck's
// JSON is only scanned for "error" and "duplicate".
const now = () => performance.now(); // ms
const t0 = now();
const measureStart = t0 + o.warmup * 1000;
const measureEnd = measureStart + o.seconds * 1000;
const inbox = createInbox();
const sentAt = new Map();
let seq = 0;
let active = 0;
let events = 0;
let errors = 0;
let firstError = "";
let duplicates = 0;
let stopping = false;
const lat = [];
let resolveDone;
const done = new Promise((r) => (resolveDone = r));

function publishOne() {
  const s = seq++;
  const opts = { reply: `${inbox}.${s}` };
  if (o.msgId) {
    const h = headers();
    h.set("Nats-Msg-Id", `${runId}-${s}`);
    opts.headers = h;
  }
  sentAt.set(s, now());
  active++;
  nc.publish(o.subject, payload, opts);
}

nc.subscribe(`${inbox}.*`, {
  callback: (err, m) => {
    if (err) {
      errors++;
      firstError ||= String(err.message || err);
      stopping = true;
      return resolveDone();
    }
    const s = Number(m.subject.slice(inbox.length + 1));
    const sent = sentAt.get(s);
    sentAt.delete(s);
    active--;
    const t = now();
    const body = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.length);
    if (body.includes('"error"')) {
      errors++;
      firstError ||= body.toString();
      stopping = true;
    } else if (t >= measureStart && t <= measureEnd) {
      events++;
      if (body.includes('"duplicate"')) duplicates++;
      lat.push(t - sent);
    }
    if (t >= measureEnd) stopping = true;
    if (!stopping) publishOne();
    else if (active === 0) resolveDone();
  },
});
await nc.flush();

let cpu0, scpu0, w0, m0;
setTimeout(() => {
  cpu0 = process.cpuUsage();
  scpu0 = o.serverPid ? cpuSecondsOf(o.serverPid) : -1;
  m0 = machineJiffies();
  w0 = now();
}, Math.max(0, measureStart - now()));
let cpu1, scpu1, w1, m1;
setTimeout(() => {
  cpu1 = process.cpuUsage(cpu0);
  scpu1 = o.serverPid ? cpuSecondsOf(o.serverPid) : -1;
  m1 = machineJiffies();
  w1 = now();
}, Math.max(0, measureEnd - now()));

setTimeout(() => {
  errors++;
  firstError ||= `timed out waiting for ${active} PubAcks`;
  resolveDone();
}, (o.warmup + o.seconds + 30) * 1000).unref();

for (let i = 0; i < o.window; i++) publishOne();
await done;
// Timers may not have fired if everything failed early.
if (!cpu1) {
  cpu0 ??= process.cpuUsage();
  w0 ??= now();
  cpu1 = process.cpuUsage(cpu0);
  w1 = now();
}
const info = await jsm.streams.info(o.stream);
await nc.close();

lat.sort((a, b) => a - b);
const pct = (q) => (lat.length ? lat[Math.min(lat.length - 1, Math.round(q * (lat.length - 1)))] : 0);
const wall = (w1 - w0) / 1000;
const secs = o.seconds;
const eps = events / secs;
const out = {
  tool: "jetstream.mjs",
  label: o.label,
  server: o.server,
  payload_bytes: o.payload,
  window: o.window,
  msg_id: o.msgId,
  seconds: secs,
  warmup_s: o.warmup,
  events,
  duplicates,
  errors,
  events_per_s: Math.round(eps * 10) / 10,
  mb_per_s: Math.round((eps * o.payload) / 1e4) / 100,
  latency_per: "message",
  p50_ms: +pct(0.5).toFixed(3),
  p90_ms: +pct(0.9).toFixed(3),
  p99_ms: +pct(0.99).toFixed(3),
  p999_ms: +pct(0.999).toFixed(3),
  max_ms: +(lat.length ? lat[lat.length - 1] : 0).toFixed(3),
  client_cpu_pct: wall > 0 ? +((100 * (cpu1.user + cpu1.system)) / 1e6 / wall).toFixed(1) : 0,
  server_cpu_pct: scpu0 >= 0 && scpu1 >= 0 && wall > 0 ? +((100 * (scpu1 - scpu0)) / wall).toFixed(1) : -1,
  machine_cpu_pct: m0 && m1 && m1[1] > m0[1] ? +((100 * os.cpus().length * (m1[0] - m0[0])) / (m1[1] - m0[1])).toFixed(1) : -1,
  stream_messages: info.state.messages,
  stream_bytes: info.state.bytes,
  error: firstError,
};
console.log(JSON.stringify(out));
process.exit(errors === 0 && events > 0 ? 0 : 1);
