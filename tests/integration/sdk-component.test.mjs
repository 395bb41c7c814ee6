// Program components built with the C++ SDK (sdk/cpp, nodata/component.h), run against the real
// server with the environment the server gives them (NODATA_ADDR, NODATA_COMPONENT,
// NODATA_INPUTS, NODATA_OUTPUTS, NODATA_CONFIG), started here directly: filter_component (a
// Transform), file_sink_component (a Sink) and counter_source (a Source), built by `make sdk`
// (sdk/cpp/test.sh) into build-sdk/examples/ or wherever SDK_EXAMPLES_DIR points.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Code } from './lib/grpc.mjs';
import { sdkExample, sdkTestProgram } from './lib/sdk.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';
import { sleep, topicName } from './lib/util.mjs';

const T = { timeout: 300000 };
const example = sdkExample;

// The test runner's own environment without any NODATA_* variable, so each test says exactly
// what the program sees.
function baseEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NODATA_')));
}

function componentEnv(srv, { name, inputs = [], outputs = [], config }) {
  const env = {
    ...baseEnv(),
    NODATA_ADDR: srv.grpcAddr,
    NODATA_COMPONENT: name,
    NODATA_INPUTS: inputs.join(','),
    NODATA_OUTPUTS: outputs.join(','),
  };
  if (config !== undefined) env.NODATA_CONFIG = config;
  return env;
}

// Starts a program component; `exited` resolves with { code, signal } once it is gone.
function startProgram(t, bin, env) {
  const child = spawn(bin, [], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stdout.resume();
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  t.after(() => child.kill('SIGKILL'));
  return { child, exited, stderr: () => stderr };
}

// Sends `signal` and waits for the exit (SIGKILL after 30 s, which fails the caller's assert).
async function stopProgram(prog, signal = 'SIGTERM') {
  prog.child.kill(signal);
  const timer = setTimeout(() => prog.child.kill('SIGKILL'), 30000);
  const res = await prog.exited;
  clearTimeout(timer);
  return res;
}

// Runs a program until it exits by itself; rejects after timeoutMs.
async function runToExit(bin, env, timeoutMs = 30000) {
  const child = spawn(bin, [], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stdout.resume();
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await new Promise((resolve) => child.on('close', (c, s) => resolve({ code: c, signal: s })));
  clearTimeout(timer);
  assert.equal(signal, null, `${path.basename(bin)} did not exit by itself within ${timeoutMs} ms; stderr:\n${stderr}`);
  return { code, stderr };
}

async function waitFor(what, pred, { timeoutMs = 60000, detail = () => '' } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${detail()}`);
    await sleep(50);
  }
}

// Waits until group component.<name> has committed every partition of `topic` to its end.
async function waitCommitted(srv, name, topic, prog) {
  let last;
  await waitFor(`component.${name} to commit ${topic} to its end`, async () => {
    try {
      last = await srv.api.getGroup(`component.${name}`, topic);
    } catch (err) {
      if (err.code === Code.NOT_FOUND) return false; // the program has not joined yet
      throw err;
    }
    return last.partitions.length > 0 && last.partitions.every((p) => p.committed_offset === p.end_offset);
  }, { detail: () => `; group: ${JSON.stringify(last?.partitions)}; stderr:\n${prog?.stderr().slice(-2000) ?? ''}` });
  return last;
}

async function publishInputs(srv, topic, from, count, keep) {
  const events = [];
  for (let i = from; i < from + count; i++) {
    events.push({
      topic,
      id: `${topic}-${i}`,
      key: Buffer.from(`k${i % 13}`),
      data: Buffer.from(keep(i) ? `{"i":${i},"level":"ERROR"}` : `{"i":${i},"level":"INFO"}`),
      headers: { i: String(i) },
    });
  }
  for (let i = 0; i < events.length; i += 1000) await srv.api.publishBatch(events.slice(i, i + 1000));
}

// Asserts `outputs` (records of the output topic) are the filter's outputs of `inputs`, once
// each: id <name>:<partition>:<offset>:0 for every kept input, the input's key, data, headers
// and event time, and per input partition in input order within each output partition.
function assertFilterOutputs(name, inputs, outputs, keep) {
  const expected = new Map();
  for (const r of inputs) {
    if (keep(r)) expected.set(`${name}:${r.partition}:${r.offset}:0`, r);
  }
  const seen = new Set();
  const lastInput = new Map(); // `${output partition}/${input partition}` -> last input offset
  for (const o of outputs) {
    const id = o.event.id;
    assert.ok(!seen.has(id), `output ${id} stored twice`);
    seen.add(id);
    const input = expected.get(id);
    assert.ok(input, `output ${id} derives from no kept input`);
    assert.deepEqual(o.event.data, input.event.data, `data of ${id}`);
    assert.deepEqual(o.event.key, input.event.key, `key of ${id}`);
    assert.deepEqual({ ...o.event.headers }, { ...input.event.headers }, `headers of ${id}`);
    assert.deepEqual(o.event.timestamp, input.event.timestamp, `event time of ${id}`);
    const order = `${o.partition}/${input.partition}`;
    assert.ok((lastInput.get(order) ?? -1) < input.offset,
      `outputs of input partition ${input.partition} in input order (output partition ${o.partition}, ${id})`);
    lastInput.set(order, input.offset);
  }
  assert.equal(outputs.length, expected.size, 'one output per kept input');
}

const keepEvery3 = (i) => i % 3 !== 0;
const isKept = (r) => r.event.data.includes('ERROR');

test('a program transform filters into its output once per kept record, commits, and stops on SIGTERM with 0', T, async (t) => {
  const bin = example('filter_component');
  const srv = await startServer(t);
  const input = topicName('pc-in');
  const output = topicName('pc-out');
  await srv.api.createTopic(input, 4);
  await srv.api.createTopic(output, 4);
  const name = topicName('filter');
  await publishInputs(srv, input, 0, 20000, keepEvery3);

  const started = Date.now();
  const prog = startProgram(t, bin, componentEnv(srv, { name, inputs: [input], outputs: [output], config: 'ERROR' }));
  const group = await waitCommitted(srv, name, input, prog);
  t.diagnostic(`20,000 inputs filtered and committed in ${Date.now() - started} ms`);
  assert.equal(group.partitions.length, 4);
  assert.ok(group.members.some((m) => m.consumer_id === `component.${name}`),
    `member component.${name} in the group: ${JSON.stringify(group.members)}`);

  // Records arriving while it runs flow through too.
  await publishInputs(srv, input, 20000, 3000, keepEvery3);
  await waitCommitted(srv, name, input, prog);

  const res = await stopProgram(prog, 'SIGTERM');
  assert.deepEqual(res, { code: 0, signal: null }, `exit on SIGTERM; stderr:\n${prog.stderr()}`);
  assert.doesNotMatch(prog.stderr(), /error/, 'no error logged');

  const inputs = await srv.api.readTopic(input);
  assert.equal(inputs.length, 23000);
  const outputs = await srv.api.readTopic(output);
  assertFilterOutputs(name, inputs, outputs, isKept);
  assert.equal(outputs.length, 23000 - Math.ceil(23000 / 3));

  // With an empty configuration every record passes.
  const all = topicName('pc-all');
  await srv.api.createTopic(all, 2);
  const name2 = topicName('filter-all');
  const prog2 = startProgram(t, bin, componentEnv(srv, { name: name2, inputs: [input], outputs: [all] }));
  await waitCommitted(srv, name2, input, prog2);
  assert.deepEqual(await stopProgram(prog2, 'SIGINT'), { code: 0, signal: null }, `exit on SIGINT; stderr:\n${prog2.stderr()}`);
  assertFilterOutputs(name2, inputs, await srv.api.readTopic(all), () => true);
});

test('a program transform SIGKILLed mid-stream and started again leaves every output exactly once', T, async (t) => {
  const bin = example('filter_component');
  const srv = await startServer(t);
  const input = topicName('pc-kill-in');
  const output = topicName('pc-kill-out');
  await srv.api.createTopic(input, 3);
  await srv.api.createTopic(output, 3);
  const name = topicName('filter-kill');
  const env = componentEnv(srv, { name, inputs: [input], outputs: [output], config: 'ERROR' });
  const total = 60000;

  // Inputs keep arriving while the program is killed and restarted three times.
  const publishing = (async () => {
    for (let i = 0; i < total; i += 2000) {
      await publishInputs(srv, input, i, 2000, keepEvery3);
      await sleep(30);
    }
  })();
  const outputCount = async () => (await srv.api.endOffsets(output)).reduce((a, b) => a + b, 0);
  let prog = startProgram(t, bin, env);
  for (let kill = 1; kill <= 3; kill++) {
    const before = await outputCount();
    await waitFor(`outputs beyond ${before}`, async () => (await outputCount()) > before + 2000,
      { detail: () => `; stderr:\n${prog.stderr().slice(-2000)}` });
    const res = await stopProgram(prog, 'SIGKILL');
    assert.equal(res.signal, 'SIGKILL');
    t.diagnostic(`SIGKILL ${kill} after ${await outputCount()} outputs`);
    prog = startProgram(t, bin, env);
  }
  await publishing;
  await waitCommitted(srv, name, input, prog);
  assert.deepEqual(await stopProgram(prog, 'SIGTERM'), { code: 0, signal: null }, `exit on SIGTERM; stderr:\n${prog.stderr()}`);

  const inputs = await srv.api.readTopic(input);
  assert.equal(inputs.length, total);
  assertFilterOutputs(name, inputs, await srv.api.readTopic(output), isKept);
});

test('a program transform rides out a server SIGKILL and restart: every output still exactly once', T, async (t) => {
  const bin = example('filter_component');
  const srv = await startServer(t);
  const input = topicName('pc-srv-in');
  const output = topicName('pc-srv-out');
  await srv.api.createTopic(input, 3);
  await srv.api.createTopic(output, 3);
  const name = topicName('filter-srv');
  // The server comes back on the same ports: the program keeps its NODATA_ADDR.
  const prog = startProgram(t, bin, componentEnv(srv, { name, inputs: [input], outputs: [output], config: 'ERROR' }));
  const outputCount = async () => (await srv.api.endOffsets(output)).reduce((a, b) => a + b, 0);
  await publishInputs(srv, input, 0, 20000, keepEvery3);
  await waitFor('outputs to flow', async () => (await outputCount()) > 1000, { detail: () => `; stderr:\n${prog.stderr()}` });
  await srv.restart({ how: 'kill', samePorts: true });
  t.diagnostic(`server SIGKILLed and restarted with ${await outputCount()} outputs stored`);
  await publishInputs(srv, input, 20000, 10000, keepEvery3);
  await waitCommitted(srv, name, input, prog);
  assert.deepEqual(await stopProgram(prog, 'SIGTERM'), { code: 0, signal: null }, `exit on SIGTERM; stderr:\n${prog.stderr()}`);
  const inputs = await srv.api.readTopic(input);
  assert.equal(inputs.length, 30000);
  assertFilterOutputs(name, inputs, await srv.api.readTopic(output), isKept);
});

test('a program transform fans out with one index per output, and a failing record ends the run without committing past it', T, async (t) => {
  const bin = sdkTestProgram('fanout_fail_transform');
  const srv = await startServer(t);
  const input = topicName('pc-fail-in');
  const outs = [topicName('pc-fail-a'), topicName('pc-fail-b')];
  await srv.api.createTopic(input, 2);
  for (const o of outs) await srv.api.createTopic(o, 2);
  const name = topicName('fanout');
  const n = 3000;
  const poison = 1700;
  const events = Array.from({ length: n }, (_, i) => ({
    topic: input, id: `${input}-${i}`, key: Buffer.from(`k${i % 7}`),
    data: Buffer.from(i === poison ? `${i} POISON` : `${i}`),
  }));
  for (let i = 0; i < n; i += 500) await srv.api.publishBatch(events.slice(i, i + 500));
  const inputs = await srv.api.readTopic(input);
  const bad = inputs.find((r) => r.event.data.toString().includes('POISON'));

  // Outputs must exist exactly for the inputs below the committed offsets, twice each (index 0
  // on the first output, 1 on the second), and for nothing else.
  const assertOutputsMatchCommits = async (what) => {
    const group = await srv.api.getGroup(`component.${name}`, input);
    const committed = new Map(group.partitions.map((p) => [p.partition, p.has_committed ? p.committed_offset : 0]));
    const expected = new Set();
    for (const r of inputs) {
      if (r.offset < committed.get(r.partition)) {
        for (let i = 0; i < outs.length; i++) expected.add(`${outs[i]} ${name}:${r.partition}:${r.offset}:${i}`);
      }
    }
    const got = [];
    for (const o of outs) got.push(...(await srv.api.readTopic(o)).map((r) => `${o} ${r.event.id}`));
    assert.equal(new Set(got).size, got.length, `${what}: no output twice`);
    assert.deepEqual(new Set(got), expected, `${what}: outputs are those of the committed inputs`);
    return committed;
  };

  const env = componentEnv(srv, { name, inputs: [input], outputs: outs, config: 'POISON' });
  for (const run of ['first run', 'run again']) {
    const res = await runToExit(bin, env, 60000);
    assert.equal(res.code, 1, `${run}: exit code; stderr:\n${res.stderr}`);
    assert.match(res.stderr, new RegExp(`component ${name}: error: INTERNAL: processing ${input}/${bad.partition}/${bad.offset}: poison record`),
      `${run}: the error names the record`);
    const committed = await assertOutputsMatchCommits(run);
    assert.equal(committed.get(bad.partition), bad.offset, `${run}: committed up to the failing record, not past it`);
  }

  // Without the poison it gets through: every input's two outputs, once.
  const fixed = startProgram(t, bin, { ...env, NODATA_CONFIG: '' });
  await waitCommitted(srv, name, input, fixed);
  assert.deepEqual(await stopProgram(fixed, 'SIGTERM'), { code: 0, signal: null }, `exit on SIGTERM; stderr:\n${fixed.stderr()}`);
  const committed = await assertOutputsMatchCommits('after the fix');
  assert.equal([...committed.values()].reduce((a, b) => a + b, 0), n, 'everything committed');
});

test('a program source killed and started again publishes each record once', T, async (t) => {
  const bin = example('counter_source');
  const srv = await startServer(t);
  const output = topicName('pc-count');
  await srv.api.createTopic(output, 4);
  const name = topicName('counter');
  const n = 50000;
  const env = componentEnv(srv, { name, outputs: [output], config: String(n) });
  const stored = async () => (await srv.api.endOffsets(output)).reduce((a, b) => a + b, 0);

  let prog = startProgram(t, bin, env);
  await waitFor('the first records', async () => (await stored()) >= 5000, { detail: () => `; stderr:\n${prog.stderr()}` });
  const res = await stopProgram(prog, 'SIGKILL');
  assert.equal(res.signal, 'SIGKILL');
  const atKill = await stored();
  t.diagnostic(`SIGKILL after ${atKill} records`);
  assert.ok(atKill < n, 'killed mid-stream');

  prog = startProgram(t, bin, env);
  await waitFor(`${n} records`, async () => (await stored()) >= n, { detail: () => `; stderr:\n${prog.stderr()}` });
  await sleep(500); // a duplicate would land now: the source idles after publishing
  assert.deepEqual(await stopProgram(prog, 'SIGTERM'), { code: 0, signal: null }, `exit on SIGTERM; stderr:\n${prog.stderr()}`);

  const records = await srv.api.readTopic(output);
  assert.equal(records.length, n, 'each record stored once');
  const ids = new Set(records.map((r) => r.event.id));
  assert.equal(ids.size, n);
  for (const r of records) {
    const i = Number(r.event.id.slice(name.length + 1));
    assert.equal(r.event.id, `${name}:${i}`);
    assert.ok(i >= 0 && i < n, `id ${r.event.id} in range`);
    assert.deepEqual(JSON.parse(r.event.data.toString()), { n: i });
  }
});

test('a program sink writes every record to its file and resumes after its committed offsets', T, async (t) => {
  const bin = example('file_sink_component');
  const srv = await startServer(t);
  const input = topicName('pc-sink');
  await srv.api.createTopic(input, 3);
  const name = topicName('sink');
  const dir = makeTempDir('nodata-sink-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'out.jsonl');
  const env = componentEnv(srv, { name, inputs: [input], config: file });
  // Every line of the file (all must be whole); `complete`: only those finished so far, for
  // reading while the sink writes.
  const lines = ({ complete = false } = {}) => {
    let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (complete) text = text.slice(0, text.lastIndexOf('\n') + 1);
    return text.split('\n').filter((l) => l).map((l) => JSON.parse(l));
  };
  const assertLinesMatch = (records, got, what) => {
    const byPlace = new Map(records.map((r) => [`${r.partition}/${r.offset}`, r]));
    for (const l of got) {
      const r = byPlace.get(`${l.partition}/${l.offset}`);
      assert.ok(r, `${what}: line for ${l.partition}/${l.offset} matches no record`);
      assert.equal(l.key, r.event.key.toString(), `${what}: key of ${l.partition}/${l.offset}`);
      assert.equal(l.data, r.event.data.toString(), `${what}: data of ${l.partition}/${l.offset}`);
    }
  };

  await publishInputs(srv, input, 0, 5000, () => true);
  let prog = startProgram(t, bin, env);
  await waitCommitted(srv, name, input, prog);
  assert.deepEqual(await stopProgram(prog, 'SIGTERM'), { code: 0, signal: null }, `exit on SIGTERM; stderr:\n${prog.stderr()}`);
  let records = await srv.api.readTopic(input);
  let got = lines();
  assert.equal(got.length, 5000, 'one line per record');
  assert.equal(new Set(got.map((l) => `${l.partition}/${l.offset}`)).size, 5000, 'no record written twice');
  assertLinesMatch(records, got, 'first run');

  // Started again, it resumes after what it committed: only the new records are appended.
  await publishInputs(srv, input, 5000, 3000, () => true);
  prog = startProgram(t, bin, env);
  await waitCommitted(srv, name, input, prog);
  assert.deepEqual(await stopProgram(prog, 'SIGTERM'), { code: 0, signal: null }, `exit on SIGTERM; stderr:\n${prog.stderr()}`);
  records = await srv.api.readTopic(input);
  got = lines();
  assert.equal(got.length, 8000, 'the second run appended only the new records');
  assert.equal(new Set(got.map((l) => `${l.partition}/${l.offset}`)).size, 8000, 'no record written twice');
  assertLinesMatch(records, got, 'second run');

  // SIGKILLed while writing: at-least-once, every record is in the file after a restart.
  const publishing = publishInputs(srv, input, 8000, 20000, () => true);
  prog = startProgram(t, bin, env);
  await waitFor('lines beyond 10000', () => lines({ complete: true }).length > 10000, { detail: () => `; stderr:\n${prog.stderr()}` });
  assert.equal((await stopProgram(prog, 'SIGKILL')).signal, 'SIGKILL');
  await publishing;
  // A write the kill cut short leaves an unfinished line; the sink cuts it off when it starts.
  fs.appendFileSync(file, '{"partition":0,"offs');
  prog = startProgram(t, bin, env);
  await waitCommitted(srv, name, input, prog);
  assert.deepEqual(await stopProgram(prog, 'SIGTERM'), { code: 0, signal: null }, `exit on SIGTERM; stderr:\n${prog.stderr()}`);
  records = await srv.api.readTopic(input);
  got = lines();
  assertLinesMatch(records, got, 'after SIGKILL');
  assert.equal(new Set(got.map((l) => `${l.partition}/${l.offset}`)).size, 28000, 'every record written');
});

test('a program component with a bad environment exits non-zero and says why', T, async (t) => {
  const filter = example('filter_component');
  const sink = example('file_sink_component');
  const counter = example('counter_source');
  const srv = await startServer(t);
  const input = topicName('pc-bad-in');
  const output = topicName('pc-bad-out');
  await srv.api.createTopic(input, 1);
  await srv.api.createTopic(output, 1);
  const good = componentEnv(srv, { name: 'bad-env', inputs: [input], outputs: [output] });
  const without = (key) => Object.fromEntries(Object.entries(good).filter(([k]) => k !== key));

  const cases = [
    [filter, without('NODATA_ADDR'), /NODATA_ADDR is not set/],
    [filter, { ...good, NODATA_ADDR: '' }, /NODATA_ADDR is not set/],
    [filter, without('NODATA_COMPONENT'), /NODATA_COMPONENT is not set/],
    [filter, { ...good, NODATA_INPUTS: '' }, /a transform reads exactly one input topic; NODATA_INPUTS has 0/],
    [filter, { ...good, NODATA_INPUTS: `${input},${output}` }, /a transform reads exactly one input topic; NODATA_INPUTS has 2/],
    [filter, { ...good, NODATA_OUTPUTS: '' }, /a transform needs an output topic/],
    [filter, { ...good, NODATA_OUTPUTS: `${output},,x` }, /NODATA_OUTPUTS=.*topic number 2 is empty/],
    [filter, { ...good, NODATA_INPUTS: 'no-such-topic' }, /NOT_FOUND.*no-such-topic/],
    [sink, { ...good, NODATA_CONFIG: '' }, /the configuration must name the file/],
    [sink, { ...good, NODATA_INPUTS: '' }, /a sink reads exactly one input topic/],
    [counter, { ...good, NODATA_OUTPUTS: '' }, /a source needs an output topic/],
    [counter, { ...good, NODATA_CONFIG: 'ten' }, /the configuration must be a record count, not "ten"/],
  ];
  for (const [bin, env, message] of cases) {
    const res = await runToExit(bin, env);
    const what = `${path.basename(bin)} with ${JSON.stringify(Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('NODATA_'))))}`;
    assert.equal(res.code, 1, `${what}: exit code; stderr:\n${res.stderr}`);
    assert.match(res.stderr, message, `${what}: stderr`);
    assert.match(res.stderr, /^component \S+: error: /m, `${what}: one error line`);
  }
});
