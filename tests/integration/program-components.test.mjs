// Program components on the real server: `nodata component add NAME --exec PATH [-- ARGS]` with
// --source/--sink/--transform. The server runs the program with NODATA_ADDR, NODATA_COMPONENT,
// NODATA_INPUTS, NODATA_OUTPUTS and NODATA_CONFIG in its environment, captures its stdout and
// stderr into the component log (TailComponentLog, `nodata component logs [-f]`), starts it
// again with backoff when it exits, and stops it on remove and shutdown. The programs here are
// shell scripts, so that what is checked is the supervision alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Code, expectStatus } from './lib/grpc.mjs';
import { describeRun, parseJsonOut, runCli } from './lib/cli.mjs';
import { sdkExample } from './lib/sdk.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';
import { sleep, topicName } from './lib/util.mjs';

const T = { timeout: 120000 };

/** An executable shell script `name` in `dir` with `body`; returns its absolute path. */
function script(dir, name, body) {
  const p = path.join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}`);
  chmodSync(p, 0o755);
  return p;
}

async function cli(srv, args, { expectCode = 0 } = {}) {
  // --server goes before a `--`: what follows it is the program's.
  const dash = args.indexOf('--');
  const full = dash < 0 ? [...args, '--server', srv.grpcAddr] : [...args.slice(0, dash), '--server', srv.grpcAddr, ...args.slice(dash)];
  const r = await runCli(full, { timeoutMs: 60000 });
  assert.equal(r.code, expectCode, describeRun(full, r));
  return { ...r, args: full };
}

async function cliJson(srv, args) {
  const dash = args.indexOf('--');
  const r = await cli(srv, dash < 0 ? [...args, '--json'] : [...args.slice(0, dash), '--json', ...args.slice(dash)]);
  return parseJsonOut(r.args, r);
}

/** `component logs NAME --json`: the lines kept. */
async function logLines(srv, name) {
  const r = await cli(srv, ['component', 'logs', name, '--json']);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

async function waitUntil(check, { timeoutMs = 30000, what = () => 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`not reached in ${timeoutMs} ms: ${await what()}`);
    await sleep(100);
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped by its new parent) counts as gone.
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

test('a program source runs with its environment, its output goes to the log, and it is started again after it dies', T, async (t) => {
  const srv = await startServer(t);
  const dir = makeTempDir();
  const out = topicName('out');
  await srv.api.createTopic(out, 2);
  const prog = script(dir, 'source.sh', [
    'echo "component=$NODATA_COMPONENT addr=$NODATA_ADDR inputs=[$NODATA_INPUTS] outputs=[$NODATA_OUTPUTS] config=[$NODATA_CONFIG] args=[$1|$2]"',
    'echo "cwd=$(pwd)"',
    'echo "to stderr" >&2',
    'exec sleep 600',
    '',
  ].join('\n'));

  const added = await cliJson(srv, ['component', 'add', 'src1', '--exec', prog, '--source', out, '--config', 'some text', '--', 'first', '--second']);
  assert.equal(added.kind, 'program');
  assert.equal(added.exec, prog);
  assert.deepEqual(added.args, ['first', '--second']);
  assert.equal(added.input, '');
  assert.deepEqual(added.outputs, [out]);

  const running = await waitUntil(async () => {
    const c = await srv.api.getComponent('src1');
    return c.state === 'COMPONENT_STATE_RUNNING' && c.pid > 0 ? c : null;
  });
  const lines = await waitUntil(async () => {
    const l = await logLines(srv, 'src1');
    return l.some((x) => x.stream === 'stderr') ? l : null;
  });
  const stdout = lines.find((l) => l.stream === 'stdout');
  assert.equal(stdout.text, `component=src1 addr=${srv.grpcAddr} inputs=[] outputs=[${out}] config=[some text] args=[first|--second]`);
  assert.equal(stdout.level, 'info');
  // Its working directory is its own, in the data directory.
  assert.ok(lines.some((l) => l.stream === 'stdout' && l.text === `cwd=${path.join(srv.dataDir, 'programs', 'src1')}`), JSON.stringify(lines));
  const stderr = lines.find((l) => l.stream === 'stderr');
  assert.equal(stderr.text, 'to stderr');
  assert.equal(stderr.level, 'warn');
  assert.ok(lines.some((l) => l.stream === 'server' && l.text === `started ${prog} (pid ${running.pid})`), JSON.stringify(lines));
  for (let i = 1; i < lines.length; i++) assert.equal(lines[i].seq, lines[i - 1].seq + 1, 'seqs are consecutive');

  // A crash: the server notices, says so in the log, and runs the program again.
  process.kill(running.pid, 'SIGKILL');
  const again = await waitUntil(async () => {
    const c = await srv.api.getComponent('src1');
    return c.state === 'COMPONENT_STATE_RUNNING' && c.pid > 0 && c.pid !== running.pid ? c : null;
  });
  assert.equal(Number(again.restarts), 1);
  const after = await logLines(srv, 'src1');
  assert.ok(after.some((l) => l.stream === 'server' && /^killed by signal 9; starting again in /.test(l.text)), JSON.stringify(after));

  // Listed with the others; the table shows the kind.
  const table = await cli(srv, ['component', 'list']);
  assert.match(table.stdout, /src1\s+program\s+RUNNING/);
  const details = await cli(srv, ['component', 'get', 'src1']);
  assert.match(details.stdout, new RegExp(`exec: ${prog} first --second`));

  // Remove stops it.
  await cli(srv, ['component', 'remove', 'src1']);
  await waitUntil(() => !alive(again.pid), { what: () => `pid ${again.pid} still runs` });
  await expectStatus(srv.api.getComponent('src1'), Code.NOT_FOUND, 'removed component');
  await cli(srv, ['component', 'logs', 'src1'], { expectCode: 1 });
  srv.assertNoCrash();
});

test('logs -f streams lines as they come and ends when the component is removed', T, async (t) => {
  const srv = await startServer(t);
  const dir = makeTempDir();
  const out = topicName('out');
  await srv.api.createTopic(out, 1);
  const prog = script(dir, 'ticker.sh', 'i=0\nwhile :; do echo "tick $i"; i=$((i+1)); sleep 0.05; done\n');
  await srv.api.addComponent({ name: 'ticker', exec: prog, outputs: [out] });

  const got = [];
  const call = srv.api.components.TailComponentLog({ name: 'ticker', follow: true, tail: 1 });
  const ended = new Promise((resolve, reject) => {
    call.on('data', (m) => got.push(...m.lines));
    call.on('error', reject);
    call.on('end', resolve);
  });
  await waitUntil(() => got.filter((l) => l.stream === 'stdout').length >= 20, { what: () => `${got.length} lines` });
  await srv.api.removeComponent('ticker');
  await ended; // the stream finishes with OK once the component is gone
  const ticks = got.filter((l) => l.stream === 'stdout').map((l) => Number(l.text.split(' ')[1]));
  for (let i = 1; i < ticks.length; i++) assert.equal(ticks[i], ticks[i - 1] + 1, 'no line lost or repeated');
  for (let i = 1; i < got.length; i++) assert.equal(Number(got[i].seq), Number(got[i - 1].seq) + 1);

  // Without follow, the stream ends after the lines kept; an unknown component is NOT_FOUND.
  await expectStatus(
    new Promise((resolve, reject) => {
      const c = srv.api.components.TailComponentLog({ name: 'nope' });
      c.on('data', () => {});
      c.on('error', reject);
      c.on('end', resolve);
    }),
    Code.NOT_FOUND,
    'TailComponentLog of an unknown component',
  );
  srv.assertNoCrash();
});

test('bad program registrations get clear errors', T, async (t) => {
  const srv = await startServer(t);
  const dir = makeTempDir();
  const a = topicName('a');
  const b = topicName('b');
  await srv.api.createTopic(a, 1);
  await srv.api.createTopic(b, 1);
  const prog = script(dir, 'ok.sh', 'exec sleep 600\n');
  const plain = path.join(dir, 'plain.txt');
  writeFileSync(plain, 'not a program');
  mkdirSync(path.join(dir, 'subdir'));

  const cases = [
    [{ name: 'p', exec: 'relative/prog', outputs: [b] }, Code.INVALID_ARGUMENT, /is not an absolute path/],
    [{ name: 'p', exec: plain, outputs: [b] }, Code.INVALID_ARGUMENT, /is not an executable file/],
    [{ name: 'p', exec: path.join(dir, 'subdir'), outputs: [b] }, Code.INVALID_ARGUMENT, /is not an executable file/],
    [{ name: 'p', exec: path.join(dir, 'missing'), outputs: [b] }, Code.INVALID_ARGUMENT, /is not an executable file/],
    [{ name: 'p', exec: prog }, Code.INVALID_ARGUMENT, /needs an input \(a sink\), outputs \(a source\) or both/],
    [{ name: 'p', exec: prog, input: a, outputs: [a] }, Code.INVALID_ARGUMENT, /both the input and an output/],
    [{ name: 'p', exec: prog, outputs: [b], config: Buffer.from('a\0b') }, Code.INVALID_ARGUMENT, /cannot hold a NUL byte/],
    [{ name: 'p', exec: prog, outputs: [b], wasm: Buffer.from([0, 0x61, 0x73, 0x6d]) }, Code.INVALID_ARGUMENT, /not both/],
    [{ name: 'p', input: a, outputs: [b] }, Code.INVALID_ARGUMENT, /needs a WebAssembly module \(wasm\) or a program \(exec\)/],
    [{ name: 'p', exec: prog, input: 'no-such-topic' }, Code.NOT_FOUND, /no-such-topic/],
    [{ name: '../p', exec: prog, outputs: [b] }, Code.INVALID_ARGUMENT, /name/],
  ];
  for (const [request, code, message] of cases) {
    const err = await expectStatus(srv.api.addComponent(request), code, JSON.stringify({ ...request, wasm: undefined, config: undefined }));
    assert.match(err.details, message);
  }
  assert.equal((await srv.api.listComponents()).length, 0, 'nothing was registered');

  await srv.api.addComponent({ name: 'src', exec: prog, outputs: [b] });
  await expectStatus(srv.api.addComponent({ name: 'src', exec: prog, outputs: [b] }), Code.ALREADY_EXISTS, 'same name');
  const reset = await expectStatus(srv.api.resetComponent('src', { earliest: {} }), Code.FAILED_PRECONDITION, 'reset of a source');
  assert.match(reset.details, /is a source: it has no input to reset/);
  const upd = await expectStatus(srv.api.updateComponent({ name: 'src', wasm: Buffer.from([0, 0x61, 0x73, 0x6d]) }), Code.INVALID_ARGUMENT, 'a module for a program');
  assert.match(upd.details, /is a program: update it with exec, not a module/);

  // The CLI: one of --wasm and --exec, one of --transform, --source and --sink.
  const both = await cli(srv, ['component', 'add', 'x', '--exec', prog, '--wasm', prog, '--source', b], { expectCode: 1 });
  assert.match(both.stderr, /give one of --wasm FILE and --exec PATH/);
  const shapes = await cli(srv, ['component', 'add', 'x', '--exec', prog, '--source', b, '--sink', a], { expectCode: 1 });
  assert.match(shapes.stderr, /give one of --transform IN:OUT, --source OUT and --sink IN/);
  const wasmSink = await cli(srv, ['component', 'add', 'x', '--wasm', prog, '--sink', a], { expectCode: 1 });
  assert.match(wasmSink.stderr, /a WebAssembly component is a transform/);
  srv.assertNoCrash();
});

test('update restarts a program with its new executable and configuration; the log goes on', T, async (t) => {
  const srv = await startServer(t);
  const dir = makeTempDir();
  const out = topicName('out');
  await srv.api.createTopic(out, 1);
  const v1 = script(dir, 'v1.sh', 'echo "v1 config=$NODATA_CONFIG"\nexec sleep 600\n');
  const v2 = script(dir, 'v2.sh', 'echo "v2 config=$NODATA_CONFIG args=$*"\nexec sleep 600\n');
  await cli(srv, ['component', 'add', 'up', '--exec', v1, '--source', out, '--config', 'one']);
  await waitUntil(async () => (await logLines(srv, 'up')).some((l) => l.text === 'v1 config=one'));
  const before = await srv.api.getComponent('up');

  await cli(srv, ['component', 'update', 'up', '--config', 'two']);
  await waitUntil(async () => (await logLines(srv, 'up')).some((l) => l.text === 'v1 config=two'));
  await cli(srv, ['component', 'update', 'up', '--exec', v2, '--', 'x', 'y']);
  const lines = await waitUntil(async () => {
    const l = await logLines(srv, 'up');
    return l.some((x) => x.text === 'v2 config=two args=x y') ? l : null;
  });
  assert.ok(lines.some((l) => l.text === 'v1 config=one'), 'the log keeps the earlier lines');
  assert.equal(lines.filter((l) => l.stream === 'server' && l.text.startsWith('stopped: ')).length, 2);
  const after = await srv.api.getComponent('up');
  assert.equal(after.exec, v2);
  assert.deepEqual(after.args, ['x', 'y']);
  assert.equal(Number(after.restarts), 2);
  assert.ok(!alive(before.pid), 'the first process is gone');
  srv.assertNoCrash();
});

test('programs stop with the server, none outlives a SIGKILL of it, and they start again with it', T, async (t) => {
  const srv = await startServer(t);
  const dir = makeTempDir();
  const out = topicName('out');
  await srv.api.createTopic(out, 1);
  const marker = path.join(dir, 'terms');
  const prog = script(dir, 'svc.sh', `trap 'echo term >> ${marker}; exit 0' TERM\necho up\nwhile :; do sleep 0.05; done\n`);
  await cli(srv, ['component', 'add', 'svc', '--exec', prog, '--source', out]);
  const first = await waitUntil(async () => {
    const c = await srv.api.getComponent('svc');
    return c.pid > 0 ? c : null;
  });

  await srv.kill(); // SIGKILL: the program is killed with it (PR_SET_PDEATHSIG)
  await waitUntil(() => !alive(first.pid), { what: () => `pid ${first.pid} outlived the server` });
  assert.ok(!existsSync(marker), 'a SIGKILLed server sends no SIGTERM');

  await srv.start();
  const second = await waitUntil(async () => {
    const c = await srv.api.getComponent('svc');
    return c.state === 'COMPONENT_STATE_RUNNING' && c.pid > 0 ? c : null;
  });
  assert.notEqual(second.pid, first.pid);

  await srv.stop(); // SIGTERM: the server stops its programs first, with SIGTERM
  assert.equal(readFileSync(marker, 'utf8'), 'term\n');
  assert.ok(!alive(second.pid));
});

// The C++ SDK's example programs (sdk/cpp/examples, built by `make sdk` into build-sdk/examples/
// or SDK_EXAMPLES_DIR), run by the server as components.

/** Waits until component `name` runs with a process other than `notPid`; returns it. */
async function runningPid(srv, name, notPid = 0) {
  return waitUntil(async () => {
    const c = await srv.api.getComponent(name);
    return c.state === 'COMPONENT_STATE_RUNNING' && c.pid > 0 && c.pid !== notPid ? c.pid : null;
  }, { what: async () => JSON.stringify(await srv.api.getComponent(name)) });
}

/** True once component `name`'s group has committed every record of its input. */
async function caughtUp(srv, name) {
  const c = await srv.api.getComponent(name);
  return c.lag.length > 0 && c.lag.every((l) => Number(l.committed) === Number(l.end));
}

test('an SDK source and sink run by the server are started again after each SIGKILL; nothing is lost or doubled in the topic', T, async (t) => {
  const srv = await startServer(t);
  const dir = makeTempDir();
  const mid = topicName('mid');
  await srv.api.createTopic(mid, 2);
  const n = 20000;
  const file = path.join(dir, 'sink.jsonl');
  await cli(srv, ['component', 'add', 'src', '--exec', sdkExample('counter_source'), '--source', mid, '--config', String(n)]);
  await cli(srv, ['component', 'add', 'snk', '--exec', sdkExample('file_sink_component'), '--sink', mid, '--config', file]);

  // Each program killed twice while records flow.
  let srcPid = await runningPid(srv, 'src');
  let snkPid = await runningPid(srv, 'snk');
  for (let i = 0; i < 2; i++) {
    await sleep(150);
    process.kill(srcPid, 'SIGKILL');
    await sleep(100);
    process.kill(snkPid, 'SIGKILL');
    srcPid = await runningPid(srv, 'src', srcPid);
    snkPid = await runningPid(srv, 'snk', snkPid);
  }
  await waitUntil(async () => (await srv.api.endOffsets(mid)).reduce((a, b) => a + Number(b), 0) >= n && caughtUp(srv, 'snk'), {
    timeoutMs: 90000,
    what: async () => `mid ends ${await srv.api.endOffsets(mid)}, sink ${JSON.stringify((await srv.api.getComponent('snk')).lag)}`,
  });

  const records = await srv.api.readTopic(mid);
  assert.equal(records.length, n, 'the source published each record once (ids deduped across its restarts)');
  const seen = new Set(records.map((r) => JSON.parse(r.event.data.toString()).n));
  assert.equal(seen.size, n);
  // The sink is at-least-once: every stored record is in its file, some twice after a crash.
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const written = new Set(lines.map((l) => `${l.partition}/${l.offset}`));
  assert.equal(written.size, n, `the sink wrote every record (${lines.length} lines)`);
  for (const r of records) assert.ok(written.has(`${r.partition}/${r.offset}`));

  assert.ok(Number((await srv.api.getComponent('src')).restarts) >= 2);
  assert.ok(Number((await srv.api.getComponent('snk')).restarts) >= 2);
  const logs = await logLines(srv, 'snk');
  assert.ok(logs.filter((l) => l.stream === 'server' && /^killed by signal 9;/.test(l.text)).length >= 2, JSON.stringify(logs.slice(-10)));
  srv.assertNoCrash();
});

test('an SDK transform run by the server publishes each output once, in input order, across SIGKILLs of it and of the server', T, async (t) => {
  const srv = await startServer(t);
  const a = topicName('in');
  const b = topicName('out');
  await srv.api.createTopic(a, 4);
  await srv.api.createTopic(b, 2);
  const n = 8000;
  const inputs = [];
  for (let i = 0; i < n; i++) {
    inputs.push({ topic: a, id: `in-${i}`, key: `k${i % 16}`, data: Buffer.from(`${i % 3 === 0 ? 'keep' : 'drop'} ${i}`) });
  }
  for (let i = 0; i < n; i += 1000) await srv.api.publishBatch(inputs.slice(i, i + 1000));

  await cli(srv, ['component', 'add', 'flt', '--exec', sdkExample('filter_component'), '--transform', `${a}:${b}`, '--config', 'keep']);
  const pid = await runningPid(srv, 'flt');
  await sleep(200);
  process.kill(pid, 'SIGKILL');
  await runningPid(srv, 'flt', pid);
  await sleep(200);
  await srv.kill();
  await srv.start();
  await waitUntil(() => caughtUp(srv, 'flt'), { timeoutMs: 90000, what: async () => JSON.stringify((await srv.api.getComponent('flt')).lag) });

  const stored = await srv.api.readTopic(a);
  const expected = stored.filter((r) => r.event.data.toString().startsWith('keep'));
  const outputs = await srv.api.readTopic(b);
  const ids = outputs.map((r) => r.event.id);
  assert.equal(new Set(ids).size, ids.length, 'no output twice');
  assert.deepEqual(new Set(ids), new Set(expected.map((r) => `flt:${r.partition}:${r.offset}:0`)));
  // Per output partition, the outputs of one input partition come in input offset order.
  const last = new Map();
  for (const r of outputs) {
    const [, p, o] = r.event.id.split(':');
    const k = `${r.partition}/${p}`;
    assert.ok(!last.has(k) || last.get(k) < Number(o), `order in output partition ${r.partition} from input partition ${p}`);
    last.set(k, Number(o));
  }
  srv.assertNoCrash();
});

test('a WebAssembly component\'s log lines (the log import, stdout through WASI) are in its log', T, async (t) => {
  const srv = await startServer(t);
  const dir = makeTempDir();
  const a = topicName('in');
  const b = topicName('out');
  await srv.api.createTopic(a, 1);
  await srv.api.createTopic(b, 1);
  // Logs at init (level 2) and writes one line to stdout per batch.
  const wat = path.join(dir, 'talker.wat');
  writeFileSync(wat, `(module
  (import "nodata" "log" (func $log (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ready to talk")
  (data (i32.const 64) "a batch came\\n")
  (func (export "nodata_component_v1"))
  (func (export "nd_init") (result i32)
    (call $log (i32.const 2) (i32.const 16) (i32.const 13))
    (i32.const 0))
  (func (export "nd_process") (param i32) (result i32)
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 13))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.const 0)))
`);
  await cli(srv, ['component', 'add', 'talker', '--wasm', wat, '--transform', `${a}:${b}`]);
  await srv.api.publish({ topic: a, id: 'x', data: Buffer.from('hello') });
  const lines = await waitUntil(async () => {
    const l = await logLines(srv, 'talker');
    return l.some((x) => x.text === 'a batch came') ? l : null;
  }, { what: async () => JSON.stringify(await logLines(srv, 'talker')) });
  assert.ok(lines.some((l) => l.stream === 'log' && l.level === 'warn' && l.text === 'ready to talk'), JSON.stringify(lines));
  assert.ok(lines.some((l) => l.stream === 'log' && l.text === 'a batch came'), JSON.stringify(lines));
  srv.assertNoCrash();
});
