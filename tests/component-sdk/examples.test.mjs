// The component SDKs' examples (sdk/component/{c,rust}/examples) run on Node's V8 through the
// independent ABI v1 host in abi-host.mjs. `make component-sdk` builds them into
// build-component-sdk/ (COMPONENT_SDK_DIR overrides) and runs this file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  loadComponent, encodeBatch, decodeBatch, NODATA_IMPORTS, WASI_PROVIDED,
} from './abi-host.mjs';
import { rng } from './prng.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const DIR = process.env.COMPONENT_SDK_DIR ?? join(repo, 'build-component-sdk');
// c: the C examples; cxx: the same sources compiled as C++; rust: the Rust crate's examples.
export const LANGS = ['c', 'cxx', 'rust'];
const EXAMPLES = ['filter', 'field_map', 'router'];

const ND_ERR_NO_OUTPUT = -1;
const ND_ERR_TOO_LARGE = -3;
const ND_ERR_BAD_BATCH = -5;
const ND_ERR_BAD_INPUT = -6;

const modules = new Map();
function wasmOf(lang, name) {
  const path = join(DIR, lang, `${name}.wasm`);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`make component-sdk\``);
  if (!modules.has(path)) modules.set(path, new WebAssembly.Module(readFileSync(path)));
  return modules.get(path);
}
const load = (lang, name, opts) => loadComponent(wasmOf(lang, name), opts);

const pick = (r, xs) => xs[Math.floor(r() * xs.length)];
const word = (r, n) => Array.from({ length: n }, () => pick(r, 'abcdefghij-_ é'.split(''))).join('');

function randomRecords(r, n, dataOf = () => word(r, Math.floor(r() * 40))) {
  return Array.from({ length: n }, (_, i) => ({
    partition: Math.floor(r() * 8),
    offset: BigInt(1000 + i),
    timestampUs: BigInt(1_700_000_000_000_000 + Math.floor(r() * 1e9)),
    key: pick(r, ['eu-1', 'eu-22', 'us-3', 'apac-4', '', 'x', word(r, 5)]),
    data: dataOf(i),
    headers: Array.from({ length: Math.floor(r() * 3) }, (_, k) => [`h${k}`, word(r, 4)]),
  }));
}

const buf = (v) => Buffer.from(v);
// An output that must be the input record unchanged (timestamp inherited).
function assertForwarded(emit, input, index, output) {
  assert.equal(emit.output, output);
  assert.equal(emit.inputIndex, index);
  assert.equal(emit.rawTimestampUs, -1n, 'timestamp inherited');
  assert.equal(emit.timestampUs, input.timestampUs);
  assert.deepEqual(emit.key, buf(input.key));
  assert.deepEqual(emit.data, buf(input.data));
  assert.deepEqual(emit.headers, input.headers.map(([n, v]) => [buf(n), buf(v)]));
}

function fnv1a32(bytes) {
  let h = 2166136261;
  for (const b of bytes) h = Math.imul(h ^ b, 16777619) >>> 0;
  return h >>> 0;
}

for (const lang of LANGS) {
  test(`${lang}: every example exports the ABI v1 surface and imports only what the ABI provides`, () => {
    for (const name of EXAMPLES) {
      const module = wasmOf(lang, name);
      const exports = Object.fromEntries(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
      assert.equal(exports.memory, 'memory', name);
      assert.equal(exports.nodata_component_v1, 'function', name);
      assert.equal(exports.nd_process, 'function', name);
      for (const imp of WebAssembly.Module.imports(module)) {
        const known = imp.module === 'nodata' ? NODATA_IMPORTS.includes(imp.name)
          : imp.module === 'wasi_snapshot_preview1'
            && (WASI_PROVIDED.includes(imp.name) || imp.name.startsWith('fd_'));
        assert.ok(known, `${lang}/${name} imports ${imp.module}.${imp.name}`);
      }
    }
  });

  test(`${lang}: filter keeps exactly the records whose data contains the configured bytes`, async () => {
    const c = await load(lang, 'filter', { config: 'needle' });
    const r = rng(1);
    const records = randomRecords(r, 300, () => (r() < 0.3 ? `${word(r, 3)}needle${word(r, 3)}`
      : r() < 0.5 ? 'needl' : word(r, 20)));
    records[0].data = 'needle';
    records[1].data = '';
    const res = c.process(records);
    assert.equal(res.rc, 0);
    assert.equal(res.trap, null);
    const kept = records.map((rec, i) => [rec, i]).filter(([rec]) => buf(rec.data).includes('needle'));
    assert.ok(kept.length > 50 && kept.length < 200, `${kept.length} kept`);
    assert.equal(res.emits.length, kept.length);
    kept.forEach(([rec, i], k) => assertForwarded(res.emits[k], rec, i, 0));

    const all = await load(lang, 'filter');
    const res2 = all.process(records);
    assert.equal(res2.rc, 0);
    assert.equal(res2.emits.length, records.length, 'an empty configuration keeps everything');
    assert.deepEqual(c.process([]), { rc: 0, trap: null, emits: [], logs: [] });
  });

  test(`${lang}: field map outputs the configured field's value, decoded strings and raw JSON text`, async () => {
    const c = await load(lang, 'field_map', { config: 'name' });
    const cases = [
      ['{"name":"plain"}', 'plain'],
      ['  {"a":1, "name" : "q\\"b\\\\s\\/\\b\\f\\n\\r\\t" }\n', 'q"b\\s/\b\f\n\r\t'],
      ['{"name":"\\u00e9\\u20ac\\ud83d\\ude00 é"}', 'é€😀 é'],
      ['{"name":"nul\\u0000x"}', 'nul\u0000x'],
      ['{"name":-1.5e+3}', '-1.5e+3'],
      ['{"name":0}', '0'],
      ['{"name":12.25E-2,"x":[1,{"y":null}]}', '12.25E-2'],
      ['{"name":true}', 'true'],
      ['{"name":false}', 'false'],
      ['{"name":null}', 'null'],
      ['{"name":{"a":[1, 2, {"b":"}"}]} }', '{"a":[1, 2, {"b":"}"}]}'],
      ['{"name":[ ]}', '[ ]'],
      ['{"n\\u0061me":"escaped key"}', 'escaped key'],
      ['{"name":"first","name":"last"}', 'last'],
      ['{"name":""}', ''],
    ];
    const records = cases.map(([data], i) => ({ offset: BigInt(i), timestampUs: 5n, key: `k${i}`, data,
      headers: [['h', `${i}`]] }));
    const res = c.process(records);
    assert.equal(res.rc, 0);
    assert.equal(res.emits.length, cases.length);
    cases.forEach(([, want], i) => {
      const e = res.emits[i];
      assert.equal(e.inputIndex, i);
      assert.equal(e.output, 0);
      assert.deepEqual(e.data, buf(want), `case ${i}: ${cases[i][0]}`);
      assert.deepEqual(e.key, buf(`k${i}`));
      assert.deepEqual(e.headers, [[buf('h'), buf(`${i}`)]]);
      assert.equal(e.rawTimestampUs, -1n);
    });

    // Records without the field are skipped; the others still come out, with the right index.
    const skip = c.process([{ data: '{}' }, { data: '{"other":"name"}' }, { data: '{"name":7}' },
      { data: '{"x":{"name":1}}' }]);
    assert.equal(skip.rc, 0);
    assert.deepEqual(skip.emits.map((e) => [e.inputIndex, e.data.toString()]), [[2, '7']]);

    // Property: random objects agree with JSON.parse (strings decoded, numbers as written).
    const r = rng(7);
    const values = Array.from({ length: 400 }, () => (r() < 0.5 ? word(r, Math.floor(r() * 12))
      : r() < 0.5 ? Math.floor(r() * 1e6) - 5e5 : Math.round(r() * 1e6) / 1e3));
    const objects = values.map((v, i) => {
      const o = { a: word(r, 3), [`f${i}`]: [1, 'x'] };
      if (i % 7 !== 3) o.name = v;
      o.z = { name: 'nested' };
      return JSON.stringify(o, null, i % 2 ? 1 : 0);
    });
    const res2 = c.process(objects.map((data) => ({ data })));
    assert.equal(res2.rc, 0);
    const want = objects.map((o, i) => [i, JSON.parse(o).name]).filter(([, v]) => v !== undefined);
    assert.equal(res2.emits.length, want.length);
    want.forEach(([i, v], k) => {
      assert.equal(res2.emits[k].inputIndex, i);
      assert.deepEqual(res2.emits[k].data, buf(typeof v === 'string' ? v : JSON.stringify(v)));
    });
  });

  test(`${lang}: field map fails a record that is not one JSON object, without trapping`, async () => {
    const c = await load(lang, 'field_map', { config: 'name' });
    const bad = ['', 'not json', '[1,2]', '"name"', '42', '{"name":1', '{"name":1}x', '{"name":01}',
      '{"name":1.}', '{"name":-}', '{"name":tru}', '{"name":"\\x"}', '{"name":"\\ud800"}',
      '{"name":"\\udc00x"}', '{"name":"a\nb"}', '{name:1}', '{"a":1,}', '{"name" 1}', '{"a":[1,]}',
      `{"name":${'['.repeat(64)}${']'.repeat(64)}}`, '{"name":"unterminated'];
    for (const data of bad) {
      const res = c.process([{ data: '{"name":"ok"}' }, { data }]);
      assert.equal(res.trap, null, data);
      assert.equal(res.rc, ND_ERR_BAD_INPUT, `rc for ${JSON.stringify(data)}`);
    }
    // Nesting up to 64 levels (the object itself is the first) is accepted.
    const deep = `{"name":${'['.repeat(63)}${']'.repeat(63)}}`;
    assert.equal(c.process([{ data: deep }]).rc, 0);
  });

  test(`${lang}: router emits each record twice, to output 0 and to its routed output`, async () => {
    const outputs = 6;
    const c = await load(lang, 'router', { config: 'eu-=1,us-=2,hash=3', outputs });
    const records = randomRecords(rng(3), 500);
    const res = c.process(records);
    assert.equal(res.rc, 0);
    assert.equal(res.emits.length, 2 * records.length);
    records.forEach((rec, i) => {
      const key = buf(rec.key);
      const routed = key.subarray(0, 3).equals(buf('eu-')) ? 1 : key.subarray(0, 3).equals(buf('us-')) ? 2
        : 1 + (fnv1a32(key) % 3);
      assertForwarded(res.emits[2 * i], rec, i, 0);
      assertForwarded(res.emits[2 * i + 1], rec, i, routed);
    });
    const used = new Set(res.emits.map((e) => e.output));
    assert.deepEqual([...used].sort(), [0, 1, 2, 3]);

    // Default: everything also goes to output 1.
    const d = await load(lang, 'router', { outputs: 2 });
    assert.deepEqual(d.process(records.slice(0, 4)).emits.map((e) => e.output), [0, 1, 0, 1, 0, 1, 0, 1]);

    // A route to an output that does not exist fails the batch with the host's answer.
    const few = await load(lang, 'router', { config: 'hash=9', outputs: 2 });
    const failed = few.process(records);
    assert.equal(failed.trap, null);
    assert.equal(failed.rc, ND_ERR_NO_OUTPUT);
    const small = await load(lang, 'router', { outputs: 2, maxRecordBytes: 40 });
    const big = small.process([{ key: 'k', data: 'x'.repeat(10) }, { key: 'k', data: 'x'.repeat(20) }]);
    assert.equal(big.trap, null);
    assert.equal(big.rc, ND_ERR_TOO_LARGE, 'the host\'s size limit comes back as the batch result');
    assert.equal(big.emits.length, 2, 'the first record went out before the second was refused');

    // A configuration that does not parse fails nd_init, with a log line saying why.
    for (const config of ['hash=0', 'eu-', 'x=70000', 'hash=abc']) {
      await assert.rejects(load(lang, 'router', { config, outputs }), /nd_init returned -6/, config);
    }
  });

  test(`${lang}: a malformed batch makes nd_process return non-zero without trapping`, async () => {
    const records = randomRecords(rng(11), 3);
    records[1].headers = [['a', 'b'], ['c', '']];
    const good = encodeBatch(records);
    const corrupt = [];
    for (let n = 0; n < good.length; ++n) corrupt.push({ raw: good.subarray(0, n), what: `cut at ${n}` });
    corrupt.push({ raw: Buffer.concat([good, Buffer.from([0])]), what: 'trailing byte' });
    const set = (off, v) => { const b = Buffer.from(good); b.writeUInt32LE(v, off); return b; };
    corrupt.push({ raw: set(0, 0xffffffff), what: 'count 2^32-1' });
    corrupt.push({ raw: set(0, 4), what: 'count one too many' });
    corrupt.push({ raw: set(0, 2), what: 'count one too few' });
    corrupt.push({ raw: set(24, 0xffffffff), what: 'key_len 2^32-1' });
    corrupt.push({ raw: set(24, 0x7ffffff0), what: 'key_len large' });
    const keyLen = good.readUInt32LE(24);
    const dataLen = good.readUInt32LE(28 + keyLen);
    corrupt.push({ raw: set(32 + keyLen + dataLen, 0xffffffff), what: 'header_count 2^32-1' });
    corrupt.push({ raw: good, batchBytes: good.length + 1, what: 'batch_bytes past the batch' });
    corrupt.push({ raw: good, batchBytes: -1, what: 'batch_bytes -1' });
    corrupt.push({ raw: good, batchBytes: 3, what: 'batch_bytes 3' });
    corrupt.push({ raw: good, batchBytes: 0x7fffffff, what: 'batch_bytes 2^31-1' });
    for (const name of EXAMPLES) {
      const c = await load(lang, name, { config: name === 'field_map' ? 'name' : '', outputs: 4 });
      for (const bad of corrupt) {
        const res = c.process(bad);
        assert.equal(res.trap, null, `${name}: ${bad.what}: ${res.trap}`);
        assert.ok(res.rc !== 0 && res.rc !== null, `${name}: ${bad.what}: rc ${res.rc}`);
        if (bad.batchBytes !== 0x7fffffff) assert.equal(res.rc, ND_ERR_BAD_BATCH, `${name}: ${bad.what}`);
        assert.equal(res.emits.length, 0, `${name}: ${bad.what}: nothing is emitted`);
      }
      // Random bytes never trap; the instance keeps working afterwards.
      const r = rng(99);
      for (let i = 0; i < 300; ++i) {
        const raw = Buffer.from(Array.from({ length: Math.floor(r() * 80) }, () => Math.floor(r() * 256)));
        if (r() < 0.5 && raw.length >= 4) raw.writeUInt32LE(Math.floor(r() * 3), 0);
        const res = c.process({ raw });
        assert.equal(res.trap, null, `${name}: random batch ${raw.toString('hex')}`);
        let valid = true;
        try { decodeBatch(raw); } catch { valid = false; }
        if (!valid) assert.equal(res.rc, ND_ERR_BAD_BATCH, `${name}: ${raw.toString('hex')}`);
      }
      const ok = c.process(records.map((rec) => ({ ...rec, data: '{"name":1}' })));
      assert.equal(ok.rc, 0, name);
      assert.ok(ok.emits.length >= 3, name);
    }
  });

  test(`${lang}: memory stays bounded over many batches`, async () => {
    for (const name of EXAMPLES) {
      const config = { filter: 'a', field_map: 'name', router: '' }[name];
      const c = await load(lang, name, { config, outputs: 4 });
      const r = rng(5);
      const batches = Array.from({ length: 3 }, () => randomRecords(r, 200, () => JSON.stringify({ name: word(r, 50) })));
      for (let i = 0; i < 10; ++i) assert.equal(c.process(batches[i % 3]).rc, 0);
      const size = c.exports.memory.buffer.byteLength;
      for (let i = 0; i < 300; ++i) assert.equal(c.process(batches[i % 3]).rc, 0);
      assert.equal(c.exports.memory.buffer.byteLength, size, `${name}: memory grew`);
    }
  });
}

for (const lang of ['c', 'rust']) {
  test(`${lang} probe: explicit timestamps, built headers, header lookup, emit and logs`, async () => {
    const c = await load(lang, 'probe', { outputs: 2 });
    const records = [
      { partition: 3, offset: 42n, timestampUs: 100n, key: 'k', data: 'd', headers: [['trace', 't-1']] },
      { partition: 0, offset: 2n ** 63n + 5n, timestampUs: -7n, key: '', data: 'copy me',
        headers: [['copy', ''], ['x', 'y']] },
    ];
    const res = c.process(records);
    assert.equal(res.rc, 0);
    assert.deepEqual(res.emits.map((e) => ({ ...e, key: e.key.toString(), data: e.data.toString(),
      headers: e.headers.map(([n, v]) => [n.toString(), v.toString()]) })), [
      { output: 0, inputIndex: 0, key: 'k', data: 'p=3 o=42', rawTimestampUs: 101n, timestampUs: 101n,
        headers: [['index', '0'], ['trace', 't-1']] },
      { output: 0, inputIndex: 1, key: '', data: `p=0 o=${2n ** 63n + 5n}`, rawTimestampUs: -1n,
        timestampUs: -7n, headers: [['index', '1'], ['trace', 'none']] },
      { output: 1, inputIndex: 1, key: 'copy', data: 'copy me', rawTimestampUs: -1n, timestampUs: -7n,
        headers: [] },
    ]);
    assert.deepEqual(res.logs, [{ level: 1, text: 'record 0' }, { level: 1, text: 'record 1' }]);
  });
}

// What an output looks like for comparing languages (rc, and every emit in order).
const comparable = (res) => ({ rc: res.rc, trap: res.trap && String(res.trap), emits: res.emits });

test('the Rust and C examples produce identical outputs for the same input', async () => {
  const r = rng(2024);
  const json = (i) => (i % 11 === 5 ? '{"name": tru}' : i % 13 === 0 ? '{"other":1}'
    : JSON.stringify({ name: r() < 0.5 ? word(r, 8) : Math.floor(r() * 1e6) - 5e5, a: [1, { b: 'c' }] }));
  const batches = [
    ...Array.from({ length: 20 }, (_, b) => randomRecords(r, 1 + b * 7, (i) => (r() < 0.6 ? json(i) : word(r, 30)))),
    [], randomRecords(r, 1), randomRecords(r, 300, (i) => json(i + 1)),
  ];
  const setups = [
    ['filter', { config: 'a' }], ['filter', { config: '' }], ['filter', { config: 'é' }],
    ['field_map', { config: 'name' }], ['field_map', { config: 'a' }], ['field_map', { config: 'zz' }],
    ['router', { config: 'eu-=1,us-=2,hash=3', outputs: 6 }], ['router', { config: 'x=3,hash=40', outputs: 5 }],
    ['router', { outputs: 2 }], ['probe', { outputs: 2 }],
  ];
  let emitted = 0;
  let failed = 0;
  for (const [name, opts] of setups) {
    const c = await load('c', name, opts);
    const rust = await load('rust', name, opts);
    const cxx = name === 'probe' ? null : await load('cxx', name, opts);
    for (const [i, batch] of batches.entries()) {
      const want = comparable(c.process(batch));
      assert.deepEqual(comparable(rust.process(batch)), want, `${name} ${JSON.stringify(opts)} batch ${i}`);
      if (cxx) assert.deepEqual(comparable(cxx.process(batch)), want, `C++ ${name} batch ${i}`);
      emitted += want.emits.length;
      if (want.rc !== 0) failed += 1;
    }
    // Malformed batches too.
    for (let n = 0; n < 60; n += 3) {
      const raw = encodeBatch(batches[3]).subarray(0, n);
      assert.deepEqual(comparable(rust.process({ raw })), comparable(c.process({ raw })), `${name} cut ${n}`);
    }
  }
  assert.ok(emitted > 5000, `${emitted} outputs compared`);
  assert.ok(failed > 5, `${failed} failing batches compared`);

  // The same configurations are refused by both.
  for (const config of ['hash=0', ',a=1', 'a=1,,b=2', 'a=99999', '=']) {
    const outcome = async (lang) => load(lang, 'router', { config }).then(() => 'ok', (e) => e.message);
    assert.equal(await outcome('rust'), await outcome('c'), config);
  }
  for (const config of ['a=1,', 'a=1,b=2,hash=7', '=3']) {
    const c = await load('c', 'router', { config, outputs: 8 });
    const rust = await load('rust', 'router', { config, outputs: 8 });
    assert.deepEqual(comparable(rust.process(batches[5])), comparable(c.process(batches[5])), config);
  }
});

// The import lists the SDK READMEs record ("- `name.wasm`: a.b, c.d", continued on indented
// lines), so that a host knows exactly which functions must exist.
export function readmeImports(readme) {
  const text = readFileSync(readme, 'utf8').split('## Imports of the built modules')[1] ?? '';
  const out = new Map();
  for (const m of text.matchAll(/^- `(\w+)\.wasm`: ((?:.|\n  )*)/gm)) {
    out.set(m[1], m[2].split(/[,\s]+/).filter(Boolean).sort());
  }
  return out;
}

test('the C README lists exactly the imports of the built C and C++ examples', () => {
  const listed = readmeImports(join(repo, 'sdk', 'component', 'c', 'README.md'));
  assert.deepEqual([...listed.keys()].sort(), [...EXAMPLES].sort());
  for (const lang of ['c', 'cxx']) {
    for (const name of EXAMPLES) {
      const actual = WebAssembly.Module.imports(wasmOf(lang, name)).map((i) => `${i.module}.${i.name}`).sort();
      assert.deepEqual(actual, listed.get(name), `${lang}/${name}`);
    }
  }
});

test('the Rust README lists exactly the imports of the built Rust examples', () => {
  const listed = readmeImports(join(repo, 'sdk', 'component', 'rust', 'README.md'));
  assert.deepEqual([...listed.keys()].sort(), [...EXAMPLES].sort());
  for (const name of EXAMPLES) {
    const actual = WebAssembly.Module.imports(wasmOf('rust', name)).map((i) => `${i.module}.${i.name}`).sort();
    assert.deepEqual(actual, listed.get(name), `rust/${name}`);
  }
});

test('the host refuses a module without the nodata_component_v1 marker', async () => {
  // (module (memory (export "memory") 1) (func (export "nd_process") (param i32) (result i32) i32.const 0))
  const bytes = Buffer.from('0061736d0100000001060160017f017f030201000503010001071702066d656d6f727902000a6e645f70726f6365737300000a0601040041000b', 'hex');
  await assert.rejects(loadComponent(bytes), /not a nodata component/);
});
