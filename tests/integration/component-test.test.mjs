// `nodata component test`: the server's component host, run locally on a file of records, gives
// the same outputs as the independent ABI v1 host on Node's V8 (tests/component-sdk/abi-host.mjs)
// for the SDKs' examples in C and Rust. The examples are built by `make component-sdk` into
// build-component-sdk/ (COMPONENT_SDK_DIR overrides).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from './lib/cli.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';
import { loadComponent } from '../component-sdk/abi-host.mjs';
import { rng } from '../component-sdk/prng.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SDK_DIR = process.env.COMPONENT_SDK_DIR ?? path.join(REPO, 'build-component-sdk');

function wasmPath(lang, name) {
  const p = path.join(SDK_DIR, lang, `${name}.wasm`);
  assert.ok(existsSync(p), `${p} is missing: run \`make component-sdk\` first`);
  return p;
}


function rfc3339(us) {
  const ms = Number(us / 1000n);
  const frac = (((us % 1000000n) + 1000000n) % 1000000n).toString().padStart(6, '0');
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, `.${frac}Z`);
}

// Records in runs of one partition (as a component reads them), with JSON and non-JSON data.
function makeRecords(seed, n) {
  const r = rng(seed);
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const records = [];
  let partition = 0;
  const next = [0, 0, 0];
  for (let i = 0; i < n; ++i) {
    if (r() < 0.1) partition = Math.floor(r() * 3);
    const kind = r();
    const data = kind < 0.5 ? JSON.stringify({ user: pick(['ana', 'bo', 'cy']), n: Math.floor(r() * 1000), ok: r() < 0.5 })
      : kind < 0.8 ? `plain ${pick(['alpha', 'beta', 'gamma'])} ${i}`
        : JSON.stringify({ other: i });
    records.push({
      partition,
      offset: BigInt(next[partition]++),
      timestampUs: 1_700_000_000_000_000n + BigInt(Math.floor(r() * 1e9)),
      key: pick(['eu-1', 'eu-2', 'us-1', 'apac-9', '']),
      data,
      headers: r() < 0.3 ? [['trace', `t${i}`]] : [],
    });
  }
  return records;
}

function jsonl(records) {
  return records.map((rec) => JSON.stringify({
    partition: rec.partition,
    offset: Number(rec.offset),
    key: rec.key,
    data: rec.data,
    timestamp: rfc3339(rec.timestampUs),
    headers: Object.fromEntries(rec.headers),
  })).join('\n') + '\n';
}

// What `component test` should print, computed on V8: batches are runs of one partition of at
// most `batch` records; a batch that traps or returns non-zero is run again record by record,
// and the records that fail alone are reported instead of their outputs.
async function reference(wasm, records, { outputs, config, batch }) {
  let host = await loadComponent(readFileSync(wasm), { outputs, config });
  const out = [];
  const failed = [];
  const emitted = (recs, result) => {
    const index = new Map();
    for (const e of result.emits) {
      const input = recs[e.inputIndex];
      const k = index.get(e.inputIndex) ?? 0;
      index.set(e.inputIndex, k + 1);
      out.push({
        output: e.output,
        partition: input.partition,
        offset: Number(input.offset),
        index: k,
        key: e.key.toString(),
        data: e.data.toString(),
        timestamp: rfc3339(e.timestampUs),
        headers: Object.fromEntries(e.headers.map(([h, v]) => [h.toString(), v.toString()])),
      });
    }
  };
  for (let at = 0; at < records.length;) {
    const run = [records[at]];
    while (at + run.length < records.length && run.length < batch &&
           records[at + run.length].partition === records[at].partition) {
      run.push(records[at + run.length]);
    }
    at += run.length;
    const all = host.process(run);
    if (all.rc === 0) {
      emitted(run, all);
      continue;
    }
    if (all.trap) host = await loadComponent(readFileSync(wasm), { outputs, config });
    for (const rec of run) {
      const one = host.process([rec]);
      if (one.rc === 0) {
        emitted([rec], one);
      } else {
        failed.push({ partition: rec.partition, offset: Number(rec.offset) });
        if (one.trap) host = await loadComponent(readFileSync(wasm), { outputs, config });
      }
    }
  }
  return { out, failed };
}

function parseOutputs(stdout) {
  return stdout.split('\n').filter((l) => l).map((l) => {
    const o = JSON.parse(l);
    return { ...o, headers: o.headers ?? {} };
  });
}
function parseFailed(stderr) {
  return stderr.split('\n').filter((l) => l.startsWith('{"failed"')).map((l) => JSON.parse(l).failed);
}

const CASES = [
  { name: 'filter', config: 'a', outputs: 1 },
  { name: 'field_map', config: 'user', outputs: 1 },
  { name: 'router', config: 'eu-=1,us-=2,hash=3', outputs: 4 },
];

for (const lang of ['c', 'rust']) {
  for (const c of CASES) {
    test(`component test runs the ${lang} ${c.name} example as the V8 host does`, async () => {
      const wasm = wasmPath(lang, c.name);
      const records = makeRecords(c.name.length * 7 + lang.length, 400);
      const dir = makeTempDir('nodata-ct-');
      const input = path.join(dir, 'in.jsonl');
      writeFileSync(input, jsonl(records));
      const batch = 37;
      const res = await runCli(['component', 'test', wasm, '--input', input,
        '--outputs', String(c.outputs), '--config', c.config, '--batch', String(batch)]);
      const want = await reference(wasm, records, { outputs: c.outputs, config: c.config, batch });
      assert.ok(want.out.length > 0, 'the example emits something for this input');
      assert.equal(res.code, want.failed.length > 0 ? 3 : 0, res.stderr);
      assert.deepEqual(parseOutputs(res.stdout), want.out);
      assert.deepEqual(parseFailed(res.stderr), want.failed);
      if (c.name === 'field_map') {
        assert.ok(want.failed.length > 0, 'plain-text records fail the field map');
        assert.match(res.stderr, /records failed/);
      }
    });
  }
}

test('component test reads Parquet as topic export writes it, with the same outputs as JSONL', async (t) => {
  const srv = await startServer(t);
  const topic = `ct-${Date.now()}`;
  assert.equal((await runCli(['topic', 'create', topic, '--partitions', '2', '--server', srv.grpcAddr])).code, 0);
  const records = makeRecords(99, 120);
  const lines = records.map((r) => JSON.stringify({ key: r.key, data: r.data, timestamp: rfc3339(r.timestampUs) })).join('\n') + '\n';
  const dir = makeTempDir('nodata-ct-');
  writeFileSync(path.join(dir, 'events.jsonl'), lines);
  const pub = await runCli(['publish', '--topic', topic, '--file', path.join(dir, 'events.jsonl'), '--server', srv.grpcAddr]);
  assert.equal(pub.code, 0, pub.stderr);
  const asJsonl = path.join(dir, 'export.jsonl');
  const asParquet = path.join(dir, 'export.parquet');
  assert.equal((await runCli(['topic', 'export', topic, '--out', asJsonl, '--server', srv.grpcAddr])).code, 0);
  const exp = await runCli(['topic', 'export', topic, '--format', 'parquet', '--out', asParquet, '--server', srv.grpcAddr]);
  assert.equal(exp.code, 0, exp.stderr);
  const wasm = wasmPath('c', 'router');
  const args = ['--outputs', '3', '--config', 'eu-=1,hash=2'];
  const fromJsonl = await runCli(['component', 'test', wasm, '--input', asJsonl, ...args]);
  const fromParquet = await runCli(['component', 'test', wasm, '--input', asParquet, ...args]);
  assert.equal(fromJsonl.code, 0, fromJsonl.stderr);
  assert.equal(fromParquet.code, 0, fromParquet.stderr);
  const outputs = parseOutputs(fromJsonl.stdout);
  assert.equal(outputs.length, 2 * records.length, 'the router sends every record to two outputs');
  // The export orders records by partition, then offset, in both formats.
  assert.deepEqual(parseOutputs(fromParquet.stdout), outputs);
});

test('component test refuses a module that is not a component, and bad flags', async () => {
  const dir = makeTempDir('nodata-ct-');
  const input = path.join(dir, 'in.jsonl');
  writeFileSync(input, '{"data":"x"}\n');
  const plain = path.join(dir, 'plain.wat');
  writeFileSync(plain, '(module (memory (export "memory") 1) (func (export "nd_process") (param i32) (result i32) (i32.const 0)))');
  let res = await runCli(['component', 'test', plain, '--input', input]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /not a nodata component/);
  res = await runCli(['component', 'test', wasmPath('c', 'filter'), '--input', path.join(dir, 'missing.jsonl')]);
  assert.equal(res.code, 1);
  writeFileSync(path.join(dir, 'bad.jsonl'), '{"data": "ok"}\nnot json\n');
  res = await runCli(['component', 'test', wasmPath('c', 'filter'), '--input', path.join(dir, 'bad.jsonl')]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /line 2: not valid JSON/);
  res = await runCli(['component', 'test', wasmPath('c', 'filter'), '--input', input, '--outputs', '0']);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /--outputs must be at least 1/);
});
