// Builds the ingest benchmark report from the driver's results.jsonl and machine.env: prints a
// table (events/s, MB/s, p50, p99, nodata/peer ratios), writes the machine-readable JSON and a
// Markdown version of the table.
//
//   node report.mjs --results R.jsonl --machine M.env --json OUT.json [--markdown OUT.md]
import { readFileSync, writeFileSync } from "node:fs";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];

const lines = readFileSync(args.results, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const machine = {};
for (const l of readFileSync(args.machine, "utf8").split("\n")) {
  const i = l.indexOf("=");
  if (i > 0) machine[l.slice(0, i)] = l.slice(i + 1);
}

const SHAPES = ["c1", "c64", "batch"];
const SHAPE_TITLE = {
  c1: "1 in flight",
  c64: "64 in flight",
  batch: "batched / pipelined",
};
const SYSTEMS = ["nodata", "redis", "jetstream"];

function describe(l) {
  const r = l.result || {};
  if (l.system === "nodata") {
    if (r.mode === "stream")
      return `nodata PublishStream, ${r.batch}/batch, ${r.inflight} batches in flight x ${r.streams} stream${r.streams > 1 ? "s" : ""}`;
    return `nodata Publish, concurrency ${r.concurrency ?? "?"}`;
  }
  if (l.system === "redis") return `Redis XADD, redis-benchmark -c ${r.clients ?? "?"} -P ${r.pipeline ?? "?"}`;
  if (l.system === "jetstream") return `JetStream async publish, ${r.window ?? "?"} unacked${r.msg_id === false ? "" : ", Nats-Msg-Id"}`;
  return l.system;
}

function nodataInternals(l) {
  const b = l.metrics_before || {};
  const a = l.metrics_after || {};
  // A counter that did not exist before the scenario (a new topic's series) started at 0.
  const d = (k) => (a[k] !== undefined ? a[k] - (b[k] ?? 0) : undefined);
  const fs = d("fsync_count");
  const out = {};
  if (fs !== undefined && fs > 0) {
    out.fsyncs = fs;
    const sec = d("fsync_seconds");
    if (sec !== undefined) out.fsync_mean_ms = +((1000 * sec) / fs).toFixed(3);
    const rc = d("fsync_records_count");
    const rs = d("fsync_records_sum");
    if (rc > 0 && rs !== undefined) out.records_per_fsync = +(rs / rc).toFixed(1);
  }
  const ev = d("events_in");
  if (ev !== undefined) out.server_events_in = ev;
  const dup = d("duplicates");
  if (dup !== undefined) out.server_duplicates = dup;
  return out;
}

const rows = lines.map((l) => {
  const r = l.result || {};
  return {
    system: l.system,
    shape: l.shape,
    payload_bytes: l.payload,
    description: describe(l),
    events_per_s: r.events_per_s ?? null,
    mb_per_s: r.mb_per_s ?? null,
    p50_ms: r.p50_ms ?? null,
    p99_ms: r.p99_ms ?? null,
    latency_per: r.latency_per ?? null,
    client_cpu_pct: r.client_cpu_pct ?? null,
    server_cpu_pct: r.server_cpu_pct ?? null,
    machine_cpu_pct: r.machine_cpu_pct ?? null,
    errors: r.errors ?? (r.error ? 1 : 0),
    error: r.error || "",
    ...(l.system === "nodata"
      ? { server: nodataInternals(l), metrics_before: l.metrics_before ?? {}, metrics_after: l.metrics_after ?? {} }
      : {}),
    raw: r,
  };
});

const find = (system, shape, payload) => rows.find((x) => x.system === system && x.shape === shape && x.payload_bytes === payload);
const payloads = [...new Set(rows.map((r) => r.payload_bytes))];
const ratios = [];
for (const p of payloads)
  for (const s of SHAPES) {
    const n = find("nodata", s, p);
    if (!n || !n.events_per_s) continue;
    for (const peer of ["redis", "jetstream"]) {
      const q = find(peer, s, p);
      if (q && q.events_per_s) ratios.push({ payload_bytes: p, shape: s, peer, nodata_over_peer: +(n.events_per_s / q.events_per_s).toFixed(2) });
    }
  }
const ratioOf = (p, s, peer) => ratios.find((r) => r.payload_bytes === p && r.shape === s && r.peer === peer)?.nodata_over_peer;

const target = (() => {
  const n = find("nodata", "batch", 100);
  if (!n) return null;
  return { goal_events_per_s: 1000000, payload_bytes: 100, events_per_s: n.events_per_s, met: (n.events_per_s ?? 0) >= 1000000 };
})();

// --- text and markdown tables -------------------------------------------------------------------
const fmtInt = (v) => (v == null ? "-" : Math.round(v).toLocaleString("en-US"));
const fmt = (v, d = 1) => (v == null ? "-" : Number(v).toFixed(d));
const fmtRatio = (v) => (v == null ? "" : `${v.toFixed(2)}x`);
const payloadName = (p) => (p % 1024 === 0 ? `${p / 1024} KiB` : `${p} B`);

const header = ["payload", "shape", "system", "events/s", "MB/s", "p50 ms", "p99 ms", "latency of", "nodata/redis", "nodata/jetstream"];
const table = [];
for (const p of payloads)
  for (const s of SHAPES)
    for (const sys of SYSTEMS) {
      const r = find(sys, s, p);
      if (!r) continue;
      table.push([
        payloadName(p),
        SHAPE_TITLE[s],
        r.description + (r.error ? ` [ERROR: ${r.error}]` : ""),
        fmtInt(r.events_per_s),
        fmt(r.mb_per_s, 2),
        fmt(r.p50_ms, 2),
        fmt(r.p99_ms, 2),
        r.latency_per ?? "-",
        sys === "nodata" ? fmtRatio(ratioOf(p, s, "redis")) : "",
        sys === "nodata" ? fmtRatio(ratioOf(p, s, "jetstream")) : "",
      ]);
    }

const cpuHeader = ["payload", "shape", "system", "client CPU %", "server CPU %", "machine CPU %", "fsyncs", "records/fsync", "fsync mean ms"];
const cpuTable = [];
for (const p of payloads)
  for (const s of SHAPES)
    for (const sys of SYSTEMS) {
      const r = find(sys, s, p);
      if (!r) continue;
      cpuTable.push([
        payloadName(p),
        SHAPE_TITLE[s],
        sys,
        fmt(r.client_cpu_pct, 0),
        fmt(r.server_cpu_pct, 0),
        fmt(r.machine_cpu_pct, 0),
        r.server?.fsyncs != null ? fmtInt(r.server.fsyncs) : "",
        r.server?.records_per_fsync != null ? fmt(r.server.records_per_fsync, 1) : "",
        r.server?.fsync_mean_ms != null ? fmt(r.server.fsync_mean_ms, 3) : "",
      ]);
    }

function textTable(h, t) {
  const w = h.map((x, i) => Math.max(x.length, ...t.map((r) => String(r[i]).length)));
  const right = (i) => i >= 3;
  const line = (r) => r.map((c, i) => (right(i) ? String(c).padStart(w[i]) : String(c).padEnd(w[i]))).join("  ");
  return [line(h), w.map((x) => "-".repeat(x)).join("  "), ...t.map(line)].join("\n");
}
function mdTable(h, t) {
  const esc = (c) => String(c).replace(/\|/g, "\\|");
  return [`| ${h.join(" | ")} |`, `| ${h.map((_, i) => (i >= 3 ? "---:" : "---")).join(" | ")} |`, ...t.map((r) => `| ${r.map(esc).join(" | ")} |`)].join("\n");
}

const machineLine = `${machine.cpu}, ${machine.cores} cores${machine.hypervisor ? ` (${machine.hypervisor} VM)` : ""}, ${(Number(machine.mem_bytes) / 2 ** 30).toFixed(1)} GiB RAM, ${machine.os}, kernel ${machine.kernel}; data on ${machine.device} (${machine.fstype})`;
// dd's last line: "N bytes (...) copied, S s, R MB/s".
const ddSeconds = (line) => Number((line || "").match(/copied, ([0-9.]+) s/)?.[1]);
const diskLine = machine.dd_seq_write
  ? `sequential write ${machine.dd_seq_write.split(", ").pop()} (dd 1 GiB, O_DIRECT); ` +
    `4 KiB O_DSYNC write ${(ddSeconds(machine.dd_dsync_4k_x1000) * 1000).toFixed(0)} us each (dd 1000 x 4 KiB, oflag=dsync)`
  : "";
if (diskLine) machine.disk = diskLine;
const notes = [
  "MB/s counts payload bytes only (1 MB = 10^6 B). Latency: nodata Publish per call (= per event), PublishStream per batch (write -> its acks); Redis per command (with -P: pipeline write -> that reply); JetStream per message (publish -> PubAck).",
  "nodata runs with --fsync always (an ack means fdatasync'ed); Redis with appendonly yes, appendfsync always (fsync before replies, per event-loop round).",
  `JetStream (nats-server ${machine.nats_server}) file storage does not fsync before the PubAck: version 2.9 has no sync_interval option (rejected as unknown), the store writes to the page cache and syncs periodically. Its numbers are therefore not durable-on-ack like the other two.`,
  "CPU %: 100 = one core busy, measured over the timed window; client and server share the machine's cores. Machine CPU is everything on the machine in that window: well above client + server means something else was running.",
];
const text = [
  `nodata ingest benchmark — ${machine.date}`,
  `machine: ${machineLine}`,
  machine.dd_seq_write ? `disk: ${diskLine}` : "",
  "",
  textTable(header, table),
  "",
  textTable(cpuHeader, cpuTable),
  "",
  target ? `target: batched durable ingest of 100 B events >= 1,000,000 events/s: ${target.met ? "MET" : "NOT MET"} (${fmtInt(target.events_per_s)} events/s)` : "",
  ...notes.map((n) => `note: ${n}`),
].filter((x) => x !== undefined).join("\n");
console.log(text);

const out = {
  benchmark: "ingest",
  date: machine.date,
  machine,
  settings: {
    seconds_per_scenario: rows.find((r) => r.system === "nodata")?.raw?.seconds ?? null,
    warmup_s: rows.find((r) => r.system === "nodata")?.raw?.warmup_s ?? null,
  },
  results: rows,
  ratios,
  target,
  notes,
};
writeFileSync(args.json, JSON.stringify(out, null, 2) + "\n");
if (args.markdown) {
  const md = [
    `Run ${machine.date} on ${machineLine}.${diskLine ? ` Disk: ${diskLine}.` : ""}`,
    "",
    mdTable(header, table),
    "",
    mdTable(cpuHeader, cpuTable),
    "",
    target ? `Target (batched durable ingest, 100 B, >= 1,000,000 events/s): **${target.met ? "met" : "not met"}**, ${fmtInt(target.events_per_s)} events/s.` : "",
    "",
    ...notes.map((n) => `- ${n}`),
    "",
  ].join("\n");
  writeFileSync(args.markdown, md);
}
const bad = rows.filter((r) => r.errors || r.error);
if (bad.length) {
  console.error(`[bench] ${bad.length} scenario(s) had errors`);
  process.exitCode = 1;
}
