// The ABI v1 host of abi-host.mjs itself: its encodings and the wasi_snapshot_preview1 subset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadComponent, encodeBatch, decodeBatch, decodeOutput, ProcExit } from './abi-host.mjs';

const here = dirname(fileURLToPath(import.meta.url));

function assemble(wat) {
  const dir = mkdtempSync(join(tmpdir(), 'nodata-abi-host-'));
  try {
    execFileSync('wat2wasm', [wat, '-o', join(dir, 'm.wasm')]);
    return readFileSync(join(dir, 'm.wasm'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a batch encodes to the ABI layout and decodes back', () => {
  const records = [
    { partition: 7, offset: 2n ** 64n - 1n, timestampUs: -5n, key: 'k', data: Buffer.from([0, 255]),
      headers: [['a', 'b'], ['', '']] },
    { partition: 0, offset: 0n, timestampUs: 0n, key: '', data: '', headers: [] },
  ];
  const b = encodeBatch(records);
  // u32 count, then u32 partition, u64 offset, i64 timestamp_us, u32 key_len, key ...
  assert.equal(b.readUInt32LE(0), 2);
  assert.equal(b.readUInt32LE(4), 7);
  assert.equal(b.readBigUInt64LE(8), 2n ** 64n - 1n);
  assert.equal(b.readBigInt64LE(16), -5n);
  assert.equal(b.readUInt32LE(24), 1);
  assert.equal(b.toString('latin1', 28, 29), 'k');
  assert.equal(b.length, 4 + (32 + 1 + 2 + 8 + 2 + 8) + 32);
  const back = decodeBatch(b);
  assert.equal(back[0].offset, 2n ** 64n - 1n);
  assert.deepEqual(back[0].headers, [[Buffer.from('a'), Buffer.from('b')], [Buffer.alloc(0), Buffer.alloc(0)]]);
  assert.throws(() => decodeBatch(Buffer.concat([b, Buffer.from([1])])), RangeError);
  assert.throws(() => decodeBatch(b.subarray(0, b.length - 1)), RangeError);
  // An output record: u32 input_index, i64 timestamp_us, then key, data, headers.
  const out = Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.from('ffffffffffffffff', 'hex'),
    Buffer.from([0, 0, 0, 0, 1, 0, 0, 0, 120, 0, 0, 0, 0])]);
  assert.deepEqual(decodeOutput(out), { inputIndex: 1, timestampUs: -1n, key: Buffer.alloc(0),
    data: Buffer.from('x'), headers: [] });
  assert.throws(() => decodeOutput(out.subarray(1)), RangeError);
});

test('the wasi_snapshot_preview1 subset: log, clock, random, empty environment, exit, the rest refused', async () => {
  const c = await loadComponent(assemble(join(here, 'fixtures', 'wasi.wat')));
  const e = c.exports;
  assert.equal(e.write(1), 0);
  assert.equal(e.nwritten(), 10);
  assert.equal(e.write(2), 0);
  assert.equal(e.write(5), 8, 'EBADF for other descriptors');
  assert.deepEqual(c.logs, [{ level: 1, text: 'hello, log', fd: 1 }, { level: 3, text: 'hello, log', fd: 2 }]);
  const now = BigInt(Date.now()) * 1000000n;
  const t = e.clock(0);
  assert.ok(t > now - 60n * 10n ** 9n && t < now + 60n * 10n ** 9n, `realtime clock ${t}`);
  assert.ok(e.clock(1) > 0n, 'monotonic clock');
  assert.equal(e.random(), 1);
  assert.equal(e.env(), 0, 'no environment, no arguments');
  assert.throws(() => e.exit(), (err) => err instanceof ProcExit && err.code === 3);
  assert.equal(e.close(), 8, 'fd_* functions: EBADF');
  assert.equal(e.yield(), 52, 'the rest: ENOSYS');
  assert.throws(() => e.emit_oob(), RangeError, 'a guest pointer out of bounds traps');
});
