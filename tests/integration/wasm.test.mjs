// `nodata wasm inspect` and `nodata wasm run` on both tiers, checked against V8 (Node's
// WebAssembly) running the same module bytes: results, traps, exports, refusals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, describeRun, parseJsonOut } from './lib/cli.mjs';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
let dir;
let computeWasm;
let simdWasm;
let v8;

// wat2wasm (wabt) assembles the fixtures; V8 then validates and runs the very same bytes.
function assemble(name) {
  const out = join(dir, `${name}.wasm`);
  execFileSync('wat2wasm', ['--enable-all', join(fixtures, `${name}.wat`), '-o', out]);
  return out;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nodata-wasm-it-'));
  computeWasm = assemble('compute');
  simdWasm = assemble('simd');
  v8 = (await WebAssembly.instantiate(readFileSync(computeWasm))).instance.exports;
});

after(() => rmSync(dir, { recursive: true, force: true }));

async function run(tier, fn, args, extra = []) {
  const argv = ['wasm', 'run', computeWasm, '--invoke', fn, '--tier', tier,
    '--cache-dir', join(dir, 'cache'), ...extra, ...args.map(String)];
  const r = await runCli(argv, { timeoutMs: 120000 });
  return { argv, r, out: r.stdout.trim() ? parseJsonOut(argv, r) : null };
}

// The value nodata prints, as V8 returns it (i64 → BigInt).
function value(result) {
  if (result.type === 'i64') return BigInt(result.value);
  const special = { inf: Infinity, '-inf': -Infinity, nan: NaN };
  return typeof result.value === 'string' ? special[result.value] : result.value;
}

const calls = [
  ['fib', [20]],
  ['fib', [27]],
  ['mix', [88172645463325252n, 1000]],
  ['mix', [-1n, 0]],
  ['memsum', [5000]],
  ['hypot', [3, 4]],
  ['hypot', [1.5e300, 2e300]],
  ['to_int', [-7.9]],
  ['div', [-7, 2]],
  ['peek', [64]],
  ['grow', [1]],
];

for (const tier of ['interp', 'native']) {
  test(`wasm run on the ${tier} tier returns what V8 returns`, async () => {
    for (const [fn, args] of calls) {
      const { argv, r, out } = await run(tier, fn, args);
      assert.equal(r.code, 0, describeRun(argv, r));
      assert.equal(out.tier, tier === 'interp' ? 'interpreter' : 'native');
      assert.ok(out.fuel_used > 0);
      assert.equal(out.results.length, 1);
      const expected = v8[fn](...args);
      // Each CLI call is a fresh instance; V8's instance keeps state (grow), so compare grow's
      // result to a fresh V8 instance's.
      if (fn === 'grow') {
        const fresh = (await WebAssembly.instantiate(readFileSync(computeWasm))).instance.exports;
        assert.equal(value(out.results[0]), fresh.grow(...args), `${fn}(${args})`);
      } else {
        assert.equal(value(out.results[0]), expected, `${fn}(${args}) on ${tier}`);
      }
    }
  });

  test(`wasm run on the ${tier} tier traps where V8 traps`, async () => {
    const cases = [
      ['div', [1, 0], /divide by zero/i, 'integer divide by zero'],
      ['div', [-2147483648, -1], /unrepresentable|overflow/i, 'integer overflow'],
      ['to_int', [3e10], /unrepresentable|overflow|conversion/i, 'integer overflow'],
      ['peek', [131070], /out of bounds/i, 'out of bounds memory or table access'],
      ['deep', [1], /call stack/i, 'call stack exhausted'],
    ];
    const fresh = (await WebAssembly.instantiate(readFileSync(computeWasm))).instance.exports;
    for (const [fn, args, v8Error, kind] of cases) {
      assert.throws(() => fresh[fn](...args), (err) => v8Error.test(err.message), `V8 ${fn}(${args})`);
      const { argv, r, out } = await run(tier, fn, args);
      assert.equal(r.code, 3, describeRun(argv, r));
      assert.equal(out.trap.kind, kind, describeRun(argv, r));
    }
  });

  test(`a runaway call on the ${tier} tier is stopped by fuel and by the deadline`, async () => {
    const fuel = await run(tier, 'forever', [], ['--fuel', '5000000']);
    assert.equal(fuel.r.code, 3, describeRun(fuel.argv, fuel.r));
    assert.equal(fuel.out.trap.kind, 'fuel exhausted');
    assert.equal(fuel.out.fuel_used, 5000000);
    // A budget far beyond the deadline: the watchdog stops it.
    const started = Date.now();
    const deadline = await run(tier, 'forever', [], ['--fuel', '1000000000000000', '--deadline-ms', '300']);
    const ms = Date.now() - started;
    assert.equal(deadline.r.code, 3, describeRun(deadline.argv, deadline.r));
    // Native code may prove the loop exhausts its budget and trap at once; otherwise the watchdog.
    assert.ok(['deadline exceeded', 'fuel exhausted'].includes(deadline.out.trap.kind), deadline.r.stdout);
    if (tier === 'interp') assert.equal(deadline.out.trap.kind, 'deadline exceeded');
    // Stopped by the clock, the call's fuel count is unknown: not reported as the whole budget.
    if (deadline.out.trap.kind === 'deadline exceeded') assert.equal(deadline.out.fuel_used, null, deadline.r.stdout);
    assert.ok(ms < 20000, `took ${ms} ms`);
  });
}

test('fuel used is the same on both tiers', async () => {
  for (const [fn, args] of [['fib', [15]], ['mix', [5n, 777]], ['memsum', [300]]]) {
    const a = await run('interp', fn, args);
    const b = await run('native', fn, args);
    assert.equal(a.r.code, 0, describeRun(a.argv, a.r));
    assert.equal(b.r.code, 0, describeRun(b.argv, b.r));
    assert.equal(a.out.fuel_used, b.out.fuel_used, `${fn}(${args})`);
  }
});

test('wasm inspect lists what V8 lists, and refuses SIMD that V8 runs', async () => {
  const argv = ['wasm', 'inspect', computeWasm];
  const r = await runCli(argv);
  assert.equal(r.code, 0, describeRun(argv, r));
  const info = parseJsonOut(argv, r);
  assert.equal(info.valid, true);
  const module = new WebAssembly.Module(readFileSync(computeWasm));
  const v8Exports = WebAssembly.Module.exports(module).map((e) => `${e.name}:${e.kind}`).sort();
  const ours = info.exports.map((e) => `${e.name}:${e.kind === 'function' ? 'function' : e.kind}`).sort();
  assert.deepEqual(ours, v8Exports);
  assert.deepEqual(info.memory, { initial_pages: 2, max_pages: 8 });
  const fib = info.exports.find((e) => e.name === 'fib');
  assert.deepEqual(fib.signature, { params: ['i32'], results: ['i64'] });

  const simd = readFileSync(simdWasm);
  const lanes = (await WebAssembly.instantiate(simd)).instance.exports.lanes();
  assert.equal(lanes, 9);
  const s = await runCli(['wasm', 'inspect', simdWasm]);
  assert.equal(s.code, 1, describeRun(['wasm', 'inspect', simdWasm], s));
  const refused = parseJsonOut(['wasm', 'inspect', simdWasm], s);
  assert.equal(refused.valid, false);
  assert.match(refused.error, /simd/);

  const garbage = join(dir, 'garbage.wasm');
  execFileSync('sh', ['-c', `head -c 300 /dev/urandom > ${garbage}`]);
  const g = await runCli(['wasm', 'inspect', garbage]);
  assert.equal(g.code, 1);
  assert.equal(parseJsonOut(['wasm', 'inspect', garbage], g).valid, false);

  // Bytes that are neither a binary module nor UTF-8 text, and text that is no module: a JSON
  // refusal either way (no NUL byte, so the random case above can be either).
  const noNul = join(dir, 'no-nul.wasm');
  writeFileSync(noNul, Buffer.from(Array.from({ length: 300 }, (_, i) => 0x80 + (i % 0x7f))));
  const notText = join(dir, 'not-a-module.wat');
  writeFileSync(notText, 'hello ü wörld\n');
  for (const file of [noNul, notText]) {
    const r = await runCli(['wasm', 'inspect', file]);
    assert.equal(r.code, 1, describeRun(['wasm', 'inspect', file], r));
    assert.equal(parseJsonOut(['wasm', 'inspect', file], r).valid, false);
  }
});

test('a second run loads native code from the cache', async () => {
  const cache = join(dir, 'cache-restart');
  const argv = ['wasm', 'run', computeWasm, '--invoke', 'fib', '--tier', 'native', '--cache-dir', cache, '10'];
  const first = await runCli(argv);
  assert.equal(first.code, 0, describeRun(argv, first));
  const files = () => execFileSync('sh', ['-c', `ls ${cache} | grep -c '\\.so$' || true`]).toString().trim();
  assert.equal(files(), '1');
  const second = await runCli(argv);
  assert.equal(second.code, 0, describeRun(argv, second));
  assert.equal(parseJsonOut(argv, second).results[0].value, '55');
  assert.equal(files(), '1');
});

test('--tier auto runs cached native code; without a cache entry it interprets', async () => {
  const cache = join(dir, 'cache-auto');
  const auto = ['wasm', 'run', computeWasm, '--invoke', 'fib', '--tier', 'auto', '--cache-dir', cache, '25'];
  const cold = await runCli(auto);
  assert.equal(cold.code, 0, describeRun(auto, cold));
  assert.equal(parseJsonOut(auto, cold).tier, 'interpreter');
  const native = ['wasm', 'run', computeWasm, '--invoke', 'fib', '--tier', 'native', '--cache-dir', cache, '25'];
  assert.equal((await runCli(native)).code, 0);
  const warm = await runCli(auto);
  assert.equal(warm.code, 0, describeRun(auto, warm));
  const out = parseJsonOut(auto, warm);
  assert.equal(out.tier, 'native', 'a cached module runs natively at once');
  assert.equal(out.results[0].value, String(v8.fib(25)));
});

test('modules in the text format run as written; the shipped examples run and match V8', async () => {
  const examples = join(dirname(fileURLToPath(import.meta.url)), '../../examples/wasm');
  const cases = { 'fib.wat': ['fib', [20]], 'sum.wat': ['sum_to', [1000]] };
  for (const [file, [fn, args]] of Object.entries(cases)) {
    const wat = join(examples, file);
    const bin = join(dir, file.replace('.wat', '.wasm'));
    execFileSync('wat2wasm', [wat, '-o', bin]);
    const expected = (await WebAssembly.instantiate(readFileSync(bin))).instance.exports[fn](...args);
    for (const tier of ['interp', 'native']) {
      const argv = ['wasm', 'run', wat, '--invoke', fn, '--tier', tier, '--cache-dir', join(dir, 'cache'), ...args.map(String)];
      const r = await runCli(argv, { timeoutMs: 120000 });
      assert.equal(r.code, 0, describeRun(argv, r));
      assert.equal(String(parseJsonOut(argv, r).results[0].value), String(expected), describeRun(argv, r));
    }
    const inspect = await runCli(['wasm', 'inspect', wat]);
    assert.equal(inspect.code, 0, describeRun(['wasm', 'inspect', wat], inspect));
    assert.ok(parseJsonOut(['wasm', 'inspect', wat], inspect).exports.some((e) => e.name === fn));
  }
  const broken = join(dir, 'broken.wat');
  execFileSync('sh', ['-c', `printf '(module (func' > ${broken}`]);
  const argv = ['wasm', 'run', broken, '--invoke', 'f'];
  const r = await runCli(argv);
  assert.equal(r.code, 1, describeRun(argv, r));
  assert.match(r.stderr, /broken\.wat:1:\d+: error: unexpected token/);
});
