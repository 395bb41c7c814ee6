// The Node.js (V8) side of the WebAssembly benchmark (bench/wasm/run): runs agg.wasm through
// WebAssembly.instantiate over the same records as nodata_wasm_bench, in the same batches.
//
//   node node_agg.mjs --wasm agg.wasm [--records 20000000] [--keys 100000] [--batch 65536]
//                     [--seed 2463534242] [--repeat 3]
//
// The records (see wasm_bench.cc, Generate; both sides must stay identical): key table
// keys[j] = splitmix64(j) for j < K; a xorshift32 state x = seed; record i takes
// x = xorshift32(x), key = keys[x % K], then x = xorshift32(x), value = (int32) x sign-extended.
// All records are generated first (not timed); each run calls reset() and then, per batch, copies
// the batch into the module's input buffer and calls aggregate(ptr, n), as the driver does for
// every engine. The fastest of R runs counts. Prints one JSON object with records/s and the
// checksum (a string: an int64).
import fs from 'node:fs';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const wasmPath = arg('--wasm');
if (!wasmPath) throw new Error('node_agg.mjs needs --wasm PATH');
const records = Number(arg('--records', 20_000_000));
const keyCount = Number(arg('--keys', 100_000));
const batch = Number(arg('--batch', 65_536));
const seed = Number(arg('--seed', 2_463_534_242)) >>> 0;
const repeat = Math.max(1, Number(arg('--repeat', 3)));
if (seed === 0) throw new Error('--seed must not be 0 (xorshift32)');

const M64 = (1n << 64n) - 1n;
function splitmix64(x) {
  x = (x + 0x9e3779b97f4a7c15n) & M64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M64;
  return x ^ (x >> 31n);
}

// Records as 32-bit words, little-endian: key lo, key hi, value lo, value hi.
function generate() {
  const keyWords = new Uint32Array(keyCount * 2);
  for (let j = 0; j < keyCount; j++) {
    const k = splitmix64(BigInt(j));
    keyWords[2 * j] = Number(k & 0xffffffffn);
    keyWords[2 * j + 1] = Number(k >> 32n);
  }
  const words = new Int32Array(records * 4);
  let x = seed | 0;
  for (let i = 0; i < records; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const k = (x >>> 0) % keyCount;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[4 * i] = keyWords[2 * k];
    words[4 * i + 1] = keyWords[2 * k + 1];
    words[4 * i + 2] = x;
    words[4 * i + 3] = x >> 31;
  }
  return new Uint8Array(words.buffer);
}

const g0 = performance.now();
const data = generate();
const generateSeconds = (performance.now() - g0) / 1e3;

const { instance } = await WebAssembly.instantiate(fs.readFileSync(wasmPath), {});
const { memory, input_buffer, aggregate, checksum, reset } = instance.exports;
const ptr = input_buffer() >>> 0;

let best = Infinity;
const all = [];
let distinct = 0;
for (let run = 0; run < repeat; run++) {
  reset();
  const t0 = performance.now();
  for (let first = 0; first < records; first += batch) {
    const n = Math.min(batch, records - first);
    new Uint8Array(memory.buffer).set(data.subarray(first * 16, (first + n) * 16), ptr);
    distinct = aggregate(ptr, n) >>> 0;
  }
  const seconds = (performance.now() - t0) / 1e3;
  all.push(Number(seconds.toFixed(6)));
  best = Math.min(best, seconds);
}

console.log(JSON.stringify({
  engine: 'node', records, keys: keyCount, batch, seed, distinct,
  checksum: BigInt.asIntN(64, checksum()).toString(),
  seconds: Number(best.toFixed(6)), records_per_s: Math.round(records / best),
  all_seconds: all, generate_seconds: Number(generateSeconds.toFixed(3)),
  node: process.version, v8: process.versions.v8,
}));
