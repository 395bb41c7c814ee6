// WebAssembly components on the real server: registered with `nodata component add` (or
// AddComponent), they consume their input as group `component.<name>` and publish each output
// with the id `<name>:<input partition>:<input offset>:<index>` (docs/formats/component-abi.md,
// "Exactly-once output"); failing records are dead-lettered, skipped or stop the component
// ("Errors"). The modules are the C SDK's examples, built by `make component-sdk` into
// build-component-sdk/ (COMPONENT_SDK_DIR overrides).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Code, expectStatus } from './lib/grpc.mjs';
import { describeRun, parseJsonOut, runCli } from './lib/cli.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';
import { sleep, topicName } from './lib/util.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SDK_DIR = process.env.COMPONENT_SDK_DIR ?? path.join(REPO, 'build-component-sdk');
const T = { timeout: 240000 };

function sdkWasm(name) {
  const p = path.join(SDK_DIR, 'c', `${name}.wasm`);
  assert.ok(existsSync(p), `${p} is missing: run \`make component-sdk\` first`);
  return p;
}

/** A server for test `t` with an input topic `a` and an output topic `b`. */
async function withTopics(t, inPartitions, outPartitions, serverOptions = {}) {
  const srv = await startServer(t, serverOptions);
  const a = topicName('in');
  const b = topicName('out');
  await srv.api.createTopic(a, inPartitions);
  await srv.api.createTopic(b, outPartitions);
  return { srv, a, b };
}

/** The filter example's outputs (config `word`) for `inputs`: those whose data holds `word`. */
function filtered(name, inputs, word = 'keep') {
  return inputs.filter((e) => e.data.includes(word)).map((e) => ({ id: outputId(name, e), data: e.data, key: e.key }));
}

/** Runs `nodata component ...` against `srv`; asserts exit 0 unless `expectCode` says otherwise. */
async function component(srv, args, { expectCode = 0 } = {}) {
  const full = ['component', ...args, '--server', srv.grpcAddr];
  const r = await runCli(full, { timeoutMs: 150000 });
  assert.equal(r.code, expectCode, describeRun(full, r));
  return { ...r, args: full };
}

async function componentJson(srv, args) {
  const r = await component(srv, [...args, '--json']);
  return parseJsonOut(r.args, r);
}

/** Polls `check` (async, truthy when done) every 100 ms; fails with `what()` after timeoutMs. */
async function waitUntil(check, { timeoutMs = 60000, what = () => 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`not reached in ${timeoutMs} ms: ${await what()}`);
    await sleep(100);
  }
}

async function recordCount(api, topic) {
  const t = await api.getTopic(topic);
  return t.partitions.reduce((n, p) => n + (p.end_offset - p.start_offset), 0);
}

/** Waits until `topic` holds `n` records, then a while longer to see that no more come. */
async function waitForRecords(srv, topic, n, { settleMs = 1500 } = {}) {
  await waitUntil(async () => (await recordCount(srv.api, topic)) >= n, {
    what: async () => `${topic} has ${await recordCount(srv.api, topic)} of ${n} records`,
  });
  await sleep(settleMs);
  const records = await srv.api.readTopic(topic);
  assert.equal(records.length, n, `${topic}: exactly ${n} records (no extra, no duplicate)`);
  return records;
}

/** Waits until the component has read all its input (state RUNNING, lag 0 everywhere). */
async function waitCaughtUp(srv, name, inputCount) {
  let last;
  await waitUntil(async () => {
    last = await srv.api.getComponent(name);
    const lag = last.lag.reduce((n, l) => n + l.lag, 0);
    const committed = last.lag.reduce((n, l) => n + l.committed, 0);
    return last.state === 'COMPONENT_STATE_RUNNING' && lag === 0 && committed === inputCount;
  }, { what: () => `component ${name} caught up on ${inputCount} records: ${JSON.stringify(last)}` });
  return last;
}

/** Publishes events to `topic`; returns them with where they were stored (partition, offset). */
async function publish(api, topic, events) {
  const acks = await api.publishBatch(events.map((e) => ({
    topic,
    key: Buffer.from(e.key ?? ''),
    data: Buffer.from(e.data),
  })));
  return events.map((e, i) => ({ ...e, partition: acks[i].partition, offset: acks[i].offset }));
}

function outputId(name, input, index = 0) {
  return `${name}:${input.partition}:${input.offset}:${index}`;
}

/** Asserts `records` are exactly the outputs `expected` ({id, data, key}), each once. */
function assertOutputs(records, expected, what) {
  const byId = new Map();
  for (const r of records) {
    assert.ok(!byId.has(r.event.id), `${what}: output id ${r.event.id} appears twice`);
    byId.set(r.event.id, r);
  }
  assert.deepEqual([...byId.keys()].sort(), expected.map((e) => e.id).sort(), `${what}: output ids`);
  for (const e of expected) {
    const r = byId.get(e.id);
    assert.equal(r.event.data.toString(), e.data, `${what}: data of ${e.id}`);
    if (e.key !== undefined) assert.equal(r.event.key.toString(), e.key, `${what}: key of ${e.id}`);
  }
}

/** Per input partition, outputs appear in input offset order within each output partition. */
function assertInputOrder(records, what) {
  const last = new Map();
  for (const r of records) {
    const [, p, o] = r.event.id.split(':').slice(-4);
    const k = `${r.partition}/${p}`;
    assert.ok(!last.has(k) || last.get(k) < Number(o),
      `${what}: outputs of input partition ${p} out of input order in output partition ${r.partition}`);
    last.set(k, Number(o));
  }
}

const KEYS = ['eu-1', 'eu-2', 'us-1', 'apac-9', ''];
function makeEvents(n, prefix = 'e') {
  return Array.from({ length: n }, (_, i) => ({
    key: KEYS[i % KEYS.length],
    data: i % 3 === 0 ? `${prefix} ${i} keep` : `${prefix} ${i} drop`,
  }));
}

test('a WebAssembly transform A -> B: B gets exactly the matching records, ids name:partition:offset:0; list and get report it', T, async (t) => {
  const { srv, a, b } = await withTopics(t, 3, 2);
  const name = topicName('filter');
  const added = await component(srv, ['add', name, '--wasm', sdkWasm('filter'),
    '--transform', `${a}:${b}`, '--config', 'keep']);
  assert.match(added.stdout, new RegExp(`added component ${name}: ${a} -> ${b}`));

  const inputs = await publish(srv.api, a, makeEvents(300));
  const expected = filtered(name, inputs);
  const out = await waitForRecords(srv, b, expected.length);
  assertOutputs(out, expected, 'filter');
  assertInputOrder(out, 'filter');

  await waitCaughtUp(srv, name, inputs.length);
  const got = await componentJson(srv, ['get', name]);
  assert.equal(got.name, name);
  assert.equal(got.kind, 'wasm');
  assert.equal(got.state, 'RUNNING');
  assert.equal(got.input, a);
  assert.deepEqual(got.outputs, [b]);
  assert.equal(got.config, 'keep');
  assert.equal(got.on_error, 'dead-letter');
  assert.equal(got.records_in, inputs.length);
  assert.equal(got.records_out, expected.length);
  assert.equal(got.errors, 0);
  assert.equal(got.module_sha256, createHash('sha256').update(readFileSync(sdkWasm('filter'))).digest('hex'));
  assert.deepEqual(got.lag.map((l) => l.partition).sort(), [0, 1, 2]);
  const ends = await srv.api.endOffsets(a);
  for (const l of got.lag) {
    assert.equal(l.lag, 0, `partition ${l.partition} lag`);
    assert.equal(l.committed, ends[l.partition], `partition ${l.partition} committed`);
    assert.equal(l.end, ends[l.partition], `partition ${l.partition} end`);
  }
  const list = await componentJson(srv, ['list']);
  assert.equal(list.length, 1);
  assert.equal(list[0].name, name);
  assert.equal(list[0].state, 'RUNNING');
  assert.equal(list[0].records_out, expected.length);
  const table = await component(srv, ['list']);
  assert.match(table.stdout, new RegExp(`${name}\\s+wasm\\s+RUNNING\\s+${a}\\s+${b}\\s+300\\s+${expected.length}\\s+0\\s+0`));
  // The group it consumes as is an ordinary group on the input.
  const groups = await srv.api.listGroups(a);
  assert.ok(groups.some((g) => g.group === `component.${name}`), `group component.${name}: ${JSON.stringify(groups)}`);
});

test('a chain A -> B -> C: a filter then a field map, each output once', T, async (t) => {
  const srv = await startServer(t);
  const [a, b, c] = [topicName('a'), topicName('b'), topicName('c')];
  await srv.api.createTopic(a, 3);
  await srv.api.createTopic(b, 2);
  await srv.api.createTopic(c, 2);
  const flt = topicName('flt');
  const fm = topicName('fm');
  await component(srv, ['add', flt, '--wasm', sdkWasm('filter'), '--transform', `${a}:${b}`, '--config', 'keep']);
  await component(srv, ['add', fm, '--wasm', sdkWasm('field_map'), '--transform', `${b}:${c}`, '--config', 'name']);
  const events = Array.from({ length: 3000 }, (_, i) => ({
    key: KEYS[i % KEYS.length],
    data: JSON.stringify({ name: `n${i}`, tag: i % 4 === 0 ? 'keep' : 'drop' }),
  }));
  const inputs = await publish(srv.api, a, events);
  const kept = inputs.filter((e) => e.data.includes('keep'));
  const mid = await waitForRecords(srv, b, kept.length);
  assertOutputs(mid, kept.map((e) => ({ id: outputId(flt, e), data: e.data, key: e.key })), 'A -> B');
  const end = await waitForRecords(srv, c, kept.length);
  // C's outputs derive from B's records: ids name B's partition and offset.
  const expected = mid.map((r) => ({ id: `${fm}:${r.partition}:${r.offset}:0`, data: JSON.parse(r.event.data.toString()).name }));
  assertOutputs(end, expected, 'B -> C');
  assert.deepEqual(new Set(end.map((r) => r.event.data.toString())), new Set(kept.map((e) => JSON.parse(e.data).name)));
  assertInputOrder(end, 'B -> C');
  await waitCaughtUp(srv, fm, kept.length);
});

test('a runaway record is stopped by fuel and dead-lettered while the rest flow', T, async (t) => {
  const { srv, a, b } = await withTopics(t, 2, 1);
  // Forwards nothing; loops forever on a record whose data starts with "L" (keys are empty:
  // a record is 32 bytes plus its data, its data at +28).
  const wat = path.join(makeTempDir(), 'runaway.wat');
  writeFileSync(wat, `(module
  (import "nodata" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (memory (export "memory") 64)
  (func (export "nodata_component_v1"))
  (func (export "nd_process") (param $n i32) (result i32)
    (local $count i32) (local $i i32) (local $p i32) (local $len i32)
    (drop (call $batch_read (i32.const 0) (local.get $n)))
    (local.set $count (i32.load (i32.const 0)))
    (local.set $p (i32.const 4))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (local.set $len (i32.load (i32.add (local.get $p) (i32.const 24))))
      (if (i32.eq (i32.load8_u (i32.add (local.get $p) (i32.const 28))) (i32.const 76))
        (then (loop $forever (br $forever))))
      (local.set $p (i32.add (local.get $p) (i32.add (i32.const 32) (local.get $len))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.const 0)))
`);
  const name = topicName('runaway');
  await component(srv, ['add', name, '--wasm', wat, '--transform', `${a}:${b}`, '--fuel-per-record', '2000000']);
  const events = Array.from({ length: 400 }, (_, i) => ({ data: i % 100 === 42 ? `L${i}` : `ok ${i}` }));
  const inputs = await publish(srv.api, a, events);
  const loops = inputs.filter((e) => e.data.startsWith('L'));
  const letters = await waitForRecords(srv, `${name}.dead-letter`, loops.length);
  assert.deepEqual(letters.map((r) => r.event.data.toString()).sort(), loops.map((e) => e.data).sort());
  for (const r of letters) assert.match(r.event.headers['nodata-error'], /fuel of \d+ exhausted/);
  const got = await waitCaughtUp(srv, name, inputs.length);
  assert.equal(Number(got.errors), loops.length);
  assert.equal(got.state, 'COMPONENT_STATE_RUNNING', 'the component runs on');
  srv.assertNoCrash();
});

test('fan-out: the router example writes every record to output 0 and one routed output of three', T, async (t) => {
  const srv = await startServer(t);
  const a = topicName('in');
  const outs = [topicName('all'), topicName('eu'), topicName('us')];
  await srv.api.createTopic(a, 2);
  for (const o of outs) await srv.api.createTopic(o, 1);
  const name = topicName('router');
  const c = await srv.api.addComponent({
    name, input: a, outputs: outs, config: Buffer.from('eu-=1,us-=2'), wasm: readFileSync(sdkWasm('router')),
  });
  assert.deepEqual(c.outputs, outs);
  assert.equal(c.kind, 'wasm');

  const inputs = await publish(srv.api, a, makeEvents(200));
  // eu- keys to output 1, us- keys to output 2, any other key to output 1 (hash=1 by default).
  const routed = (e) => (e.key.startsWith('us-') ? 2 : 1);
  const expected = [
    inputs.map((e) => ({ id: outputId(name, e, 0), data: e.data, key: e.key })),
    inputs.filter((e) => routed(e) === 1).map((e) => ({ id: outputId(name, e, 1), data: e.data, key: e.key })),
    inputs.filter((e) => routed(e) === 2).map((e) => ({ id: outputId(name, e, 1), data: e.data, key: e.key })),
  ];
  for (let i = 0; i < 3; ++i) {
    const records = await waitForRecords(srv, outs[i], expected[i].length);
    assertOutputs(records, expected[i], `output ${i}`);
    assertInputOrder(records, `output ${i}`);
  }
  const got = await waitCaughtUp(srv, name, inputs.length);
  assert.equal(got.records_out, inputs.length * 2);
});

test('a module without the nodata_component_v1 marker is refused with INVALID_ARGUMENT', T, async (t) => {
  const { srv, a, b } = await withTopics(t, 1, 1);
  // Over gRPC: the smallest valid module, which exports nothing.
  const empty = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const err = await expectStatus(
    srv.api.addComponent({ name: 'no-marker', input: a, outputs: [b], wasm: empty }),
    Code.INVALID_ARGUMENT, 'AddComponent without the marker');
  assert.match(err.details, /not a nodata component/);
  // With the CLI: a module with everything but the marker, in the text format.
  const dir = makeTempDir();
  const wat = path.join(dir, 'no-marker.wat');
  writeFileSync(wat, `(module
    (memory (export "memory") 1)
    (func (export "nd_process") (param i32) (result i32) (i32.const 0)))`);
  const r = await component(srv, ['add', 'no-marker', '--wasm', wat, '--transform', `${a}:${b}`], { expectCode: 1 });
  assert.match(r.stderr, /INVALID_ARGUMENT: .*not a nodata component/);
  assert.deepEqual(await srv.api.listComponents(), [], 'nothing registered');
  await expectStatus(srv.api.getComponent('no-marker'), Code.NOT_FOUND, 'GetComponent of a refused component');
});

test('bad requests: errors name the problem, nothing is registered', T, async (t) => {
  const { srv, a, b } = await withTopics(t, 1, 1);
  const wasm = readFileSync(sdkWasm('filter'));
  const bad = (request, code, what) => expectStatus(srv.api.addComponent({ name: 'c', input: a, outputs: [b], wasm, ...request }), code, what);
  await bad({ on_error: 'retry' }, Code.INVALID_ARGUMENT, 'an unknown on_error');
  await bad({ outputs: [] }, Code.INVALID_ARGUMENT, 'no outputs');
  await bad({ outputs: [a] }, Code.INVALID_ARGUMENT, 'the input as an output');
  await bad({ name: 'bad name!' }, Code.INVALID_ARGUMENT, 'a bad name');
  await bad({ input: topicName('missing') }, Code.NOT_FOUND, 'a missing input');
  await bad({ outputs: [topicName('missing')] }, Code.NOT_FOUND, 'a missing output');
  assert.deepEqual(await srv.api.listComponents(), []);

  await component(srv, ['get', 'nope'], { expectCode: 1 }).then((r) => assert.match(r.stderr, /NOT_FOUND/));
  await component(srv, ['remove', 'nope'], { expectCode: 1 }).then((r) => assert.match(r.stderr, /NOT_FOUND/));
  const noColon = await component(srv, ['add', 'c', '--wasm', sdkWasm('filter'), '--transform', a], { expectCode: 1 });
  assert.match(noColon.stderr, /--transform wants IN:OUT/);
  const usage = await component(srv, ['add', 'c', '--wasm', sdkWasm('filter'), '--transform', `${a}:${b}`, '--on-error', 'retry'], { expectCode: 2 });
  assert.match(usage.stderr, /on-error/);

  await srv.api.addComponent({ name: 'c', input: a, outputs: [b], wasm });
  await expectStatus(srv.api.addComponent({ name: 'c', input: a, outputs: [b], wasm }), Code.ALREADY_EXISTS, 'a second add of one name');
  await expectStatus(srv.api.resetComponent('c', {}), Code.INVALID_ARGUMENT, 'a reset without a position');
  await expectStatus(srv.api.resetComponent('c', { committed: true }), Code.INVALID_ARGUMENT, 'a reset to committed');
  const badTo = await component(srv, ['reset', 'c', '--to', 'yesterday'], { expectCode: 1 });
  assert.match(badTo.stderr, /--to: /);
  await expectStatus(srv.api.resetComponent('nope', { earliest: true }), Code.NOT_FOUND, 'a reset of no component');
});

test('remove stops the component and drops its group; adding the name again starts anew', T, async (t) => {
  const { srv, a, b } = await withTopics(t, 2, 1);
  const name = topicName('filter');
  const add = ['add', name, '--wasm', sdkWasm('filter'), '--transform', `${a}:${b}`, '--config', 'keep'];
  await component(srv, add);
  const first = await publish(srv.api, a, makeEvents(60, 'first'));
  const keep = (inputs) => filtered(name, inputs);
  await waitForRecords(srv, b, keep(first).length);
  await waitCaughtUp(srv, name, first.length);

  const removed = await component(srv, ['remove', name]);
  assert.match(removed.stdout, new RegExp(`removed component ${name}`));
  await expectStatus(srv.api.getComponent(name), Code.NOT_FOUND, 'GetComponent after remove');
  assert.deepEqual(await srv.api.listComponents(), []);
  assert.ok(!(await srv.api.listGroups(a)).some((g) => g.group === `component.${name}`), 'the group is gone');

  // Records published while it is gone are not processed.
  const second = await publish(srv.api, a, makeEvents(60, 'second'));
  await sleep(1500);
  assert.equal(await recordCount(srv.api, b), keep(first).length, 'a removed component publishes nothing');

  // Added again, it has no position: it reads its input from the start. The outputs it had
  // published are duplicates by id; the new ones appear once.
  await component(srv, add);
  const out = await waitForRecords(srv, b, keep(first).length + keep(second).length);
  assertOutputs(out, [...keep(first), ...keep(second)], 'after add again');
  await waitCaughtUp(srv, name, first.length + second.length);
});

test('components persist across restarts and continue without duplicating outputs', T, async (t) => {
  const { srv, a, b } = await withTopics(t, 3, 2);
  const name = topicName('filter');
  await component(srv, ['add', name, '--wasm', sdkWasm('filter'), '--transform', `${a}:${b}`, '--config', 'keep',
    '--fuel-per-record', '5000000', '--parallelism', '2']);
  const keep = (inputs) => filtered(name, inputs);
  const inputs = await publish(srv.api, a, makeEvents(150, 'before'));
  await waitForRecords(srv, b, keep(inputs).length);
  const before = await waitCaughtUp(srv, name, inputs.length);

  for (const how of ['term', 'kill']) {
    await srv.restart({ how });
    const got = await componentJson(srv, ['get', name]);
    assert.equal(got.input, a, `after restart (${how})`);
    assert.deepEqual(got.outputs, [b]);
    assert.equal(got.config, 'keep');
    assert.equal(got.fuel_per_record, 5000000);
    assert.equal(got.parallelism, 2);
    assert.equal(got.module_sha256, before.module_sha256);
    const again = await srv.api.getComponent(name);
    assert.deepEqual(again.created_at, before.created_at, 'created_at is kept');
    inputs.push(...await publish(srv.api, a, makeEvents(90, `after-${how}`)));
    const out = await waitForRecords(srv, b, keep(inputs).length);
    assertOutputs(out, keep(inputs), `after restart (${how})`);
    assertInputOrder(out, `after restart (${how})`);
    await waitCaughtUp(srv, name, inputs.length);
  }
});

test('reset --to earliest reprocesses the input; the outputs are duplicates by id', T, async (t) => {
  const { srv, a, b } = await withTopics(t, 2, 1);
  const name = topicName('filter');
  await component(srv, ['add', name, '--wasm', sdkWasm('filter'), '--transform', `${a}:${b}`, '--config', 'keep']);
  const inputs = await publish(srv.api, a, makeEvents(120));
  const expected = filtered(name, inputs);
  await waitForRecords(srv, b, expected.length);
  const before = await waitCaughtUp(srv, name, inputs.length);

  const reset = await component(srv, ['reset', name, '--to', 'earliest']);
  assert.match(reset.stdout, new RegExp(`reset component ${name} to earliest`));
  // Every input record is read again (records_in counts them again), and B is unchanged.
  await waitUntil(async () => {
    const c = await srv.api.getComponent(name);
    return c.records_in >= before.records_in + inputs.length && c.lag.every((l) => l.lag === 0);
  }, { what: async () => `reprocessed: ${JSON.stringify(await srv.api.getComponent(name))}` });
  const out = await waitForRecords(srv, b, expected.length);
  assertOutputs(out, expected, 'after reset');

  // --to offset:N and latest move the position too.
  const atOffset = await componentJson(srv, ['reset', name, '--to', 'offset:1']);
  assert.equal(atOffset.name, name);
  await component(srv, ['reset', name, '--to', 'latest']);
  await waitCaughtUp(srv, name, inputs.length);
  assert.equal(await recordCount(srv.api, b), expected.length);
});

test('update swaps the module and configuration, keeping the position', T, async (t) => {
  const { srv, a, b } = await withTopics(t, 1, 1);
  const name = topicName('comp');
  await component(srv, ['add', name, '--wasm', sdkWasm('filter'), '--transform', `${a}:${b}`, '--config', 'keep']);
  const first = await publish(srv.api, a, makeEvents(30, 'first'));
  const kept = filtered(name, first);
  await waitForRecords(srv, b, kept.length);
  await waitCaughtUp(srv, name, first.length);

  const dir = makeTempDir();
  writeFileSync(path.join(dir, 'config'), 'drop');
  const updated = await componentJson(srv, ['update', name, '--wasm', sdkWasm('filter'), '--config', `@${path.join(dir, 'config')}`]);
  assert.equal(updated.config, 'drop');
  // Only records after the position are processed with the new configuration.
  const second = await publish(srv.api, a, makeEvents(30, 'second'));
  const dropped = filtered(name, second, 'drop');
  const out = await waitForRecords(srv, b, kept.length + dropped.length);
  assertOutputs(out, [...kept, ...dropped], 'after update');

  // A new configuration alone keeps the module.
  await waitCaughtUp(srv, name, first.length + second.length);
  const again = await componentJson(srv, ['update', name, '--config', 'keep']);
  assert.equal(again.config, 'keep');
  assert.equal(again.module_sha256, updated.module_sha256);
  const third = await publish(srv.api, a, makeEvents(30, 'third'));
  const keptAgain = filtered(name, third);
  assertOutputs(await waitForRecords(srv, b, kept.length + dropped.length + keptAgain.length),
    [...kept, ...dropped, ...keptAgain], 'after a configuration update');
  const nothing = await component(srv, ['update', name], { expectCode: 1 });
  assert.match(nothing.stderr, /nothing to update/);
});

test('poison records: dead-lettered with nodata-error while the rest flow; --on-error skip drops them', T, async (t) => {
  const srv = await startServer(t);
  const a = topicName('in');
  const users = topicName('users');
  const skipped = topicName('skipped');
  await srv.api.createTopic(a, 2);
  await srv.api.createTopic(users, 1);
  await srv.api.createTopic(skipped, 1);
  const dl = topicName('fieldmap');
  const skip = topicName('fieldmap-skip');
  await component(srv, ['add', dl, '--wasm', sdkWasm('field_map'), '--transform', `${a}:${users}`, '--config', 'user']);
  await component(srv, ['add', skip, '--wasm', sdkWasm('field_map'), '--transform', `${a}:${skipped}`, '--config', 'user',
    '--on-error', 'skip']);

  // field_map fails records whose data is not a JSON object (the poison).
  const events = Array.from({ length: 120 }, (_, i) => ({
    key: KEYS[i % KEYS.length],
    data: i % 10 === 7 ? `not json ${i}` : i % 10 === 3 ? JSON.stringify({ other: i }) : JSON.stringify({ user: `u${i}`, n: i }),
  }));
  const inputs = await publish(srv.api, a, events);
  const poison = inputs.filter((e) => e.data.startsWith('not json'));
  const good = (name) => inputs.filter((e) => e.data.includes('"user"'))
    .map((e) => ({ id: outputId(name, e), data: JSON.parse(e.data).user, key: e.key }));

  assertOutputs(await waitForRecords(srv, users, good(dl).length), good(dl), 'dead-letter policy: outputs');
  const deadLetter = `${dl}.dead-letter`;
  await waitUntil(async () => (await srv.api.listTopics()).some((x) => x.name === deadLetter),
    { what: () => `topic ${deadLetter} exists` });
  const letters = await waitForRecords(srv, deadLetter, poison.length);
  const bySource = new Map(letters.map((r) => [r.event.headers['nodata-source'], r]));
  for (const p of poison) {
    const r = bySource.get(`${a}/${p.partition}/${p.offset}`);
    assert.ok(r, `dead letter for ${a}/${p.partition}/${p.offset}: ${JSON.stringify([...bySource.keys()])}`);
    assert.equal(r.event.data.toString(), p.data, 'the input record unchanged');
    assert.equal(r.event.key.toString(), p.key);
    assert.ok(r.event.headers['nodata-error'], 'nodata-error names the error');
    assert.equal(r.event.headers['nodata-component'], dl);
  }
  const got = await waitCaughtUp(srv, dl, inputs.length);
  assert.equal(got.errors, poison.length);
  assert.equal(got.dead_lettered, poison.length);
  assert.equal(got.records_out, good(dl).length);
  assert.notEqual(got.last_error, '');

  assertOutputs(await waitForRecords(srv, skipped, good(skip).length), good(skip), 'skip policy: outputs');
  const s = await waitCaughtUp(srv, skip, inputs.length);
  assert.equal(s.errors, poison.length);
  assert.equal(s.dead_lettered, 0);
  assert.equal(s.on_error, 'skip');
  const skipLetters = (await srv.api.listTopics()).find((x) => x.name === `${skip}.dead-letter`);
  if (skipLetters) assert.equal(await recordCount(srv.api, skipLetters.name), 0, 'skip writes no dead letters');
});

test('--on-error stop: the component stops FAILED before the poison record', T, async (t) => {
  const { srv, a, b } = await withTopics(t, 1, 1);
  const name = topicName('stopper');
  await component(srv, ['add', name, '--wasm', sdkWasm('field_map'), '--transform', `${a}:${b}`, '--config', 'user',
    '--on-error', 'stop']);
  const good = await publish(srv.api, a, [{ data: '{"user":"a"}' }, { data: '{"user":"b"}' }]);
  await waitForRecords(srv, b, 2);
  await waitCaughtUp(srv, name, good.length);
  const [poison] = await publish(srv.api, a, [{ data: 'poison' }]);
  let c;
  await waitUntil(async () => (c = await srv.api.getComponent(name)).state === 'COMPONENT_STATE_FAILED',
    { what: () => `state FAILED: ${JSON.stringify(c)}` });
  assert.notEqual(c.last_error, '');
  assert.equal(c.lag[0].committed, poison.offset, 'not committed past the failing record');
});

// SIGKILL at arbitrary moments while records flow through a transform: after each restart the
// component goes on from its committed offsets, and every input's output exists exactly once,
// in input order per input partition. (A bounded slice; longer runs: NODATA_COMPONENT_CRASH_N.)
/**
 * Publishes `total` records to `a` in batches of 500 while SIGKILLing the server 4 times, every
 * `every` records (after `downMs` down); returns the acknowledged inputs. A publish cut by a
 * kill is not acknowledged and is sent again (these carry no ids, so only acknowledged ones
 * count as inputs).
 */
async function publishThroughKills(srv, a, { total, every, prefix, jitterMs, downMs = 0 }) {
  const inputs = [];
  let kills = 0;
  for (let sent = 0; sent < total;) {
    const events = makeEvents(Math.min(500, total - sent), `${prefix}${sent}`);
    try {
      inputs.push(...await publish(srv.api, a, events));
      sent += events.length;
    } catch {
      continue;
    }
    if (sent % every === 0 && kills < 4) {
      // Mid-flow: the transform is busy with what was just published.
      await sleep(Math.floor(Math.random() * jitterMs));
      await srv.kill();
      ++kills;
      if (downMs > 0) await sleep(downMs);
      await srv.start();
    }
  }
  assert.ok(kills >= 3, `the server was killed ${kills} times`);
  return inputs;
}

/** The filter component `name` (config "keep") wrote each output of `inputs` once, in order. */
async function assertFilteredOnce(srv, name, b, inputs) {
  const keep = filtered(name, inputs);
  const out = await waitForRecords(srv, b, keep.length, { settleMs: 2000 });
  assertOutputs(out, keep, 'after the kills');
  assertInputOrder(out, 'after the kills');
  await waitCaughtUp(srv, name, inputs.length);
}

test('SIGKILL while records flow through a transform: every output exactly once, in order', T, async (t) => {
  const { srv, a, b } = await withTopics(t, 3, 2);
  const name = topicName('crash');
  await component(srv, ['add', name, '--wasm', sdkWasm('filter'), '--transform', `${a}:${b}`, '--config', 'keep']);
  const total = Number(process.env.NODATA_COMPONENT_CRASH_N ?? 100000);
  const every = Math.max(3000, Math.floor(total / 5 / 500) * 500);
  const inputs = await publishThroughKills(srv, a, { total, every, prefix: 'c', jitterMs: 40 });
  await assertFilteredOnce(srv, name, b, inputs);
});

// The same with the server down longer than the dedupe window at every kill: the outputs of
// inputs published but not committed before a kill are no longer remembered by id, and the
// restarted component finds them from its scan-from positions instead.
test('SIGKILL and down longer than the dedupe window: every output exactly once, in order', T, async (t) => {
  const windowMs = 5;
  const { srv, a, b } = await withTopics(t, 3, 2, { args: ['--dedupe-window-ms', String(windowMs)] });
  const name = topicName('crashwin');
  await component(srv, ['add', name, '--wasm', sdkWasm('filter'), '--transform', `${a}:${b}`, '--config', 'keep']);
  const inputs = await publishThroughKills(srv, a, { total: 9000, every: 2000, prefix: 'w', jitterMs: 20, downMs: 20 * windowMs });
  await assertFilteredOnce(srv, name, b, inputs);
});
