// A host for the component ABI, version 1 (issue 14, docs/formats/component-abi.md), on Node's V8.
// Written from the ABI text alone, independently of the server's host, so that the SDKs and the
// server can both be checked against it. All integers are little-endian.
//
//   const c = await loadComponent(wasmBytes, { config: 'abc', outputs: 2 });
//   const r = c.process(records);   // { rc, trap, emits: [...], logs: [...] }
//
// Records: { partition, offset (bigint), timestampUs (bigint), key, data (Buffer|string),
// headers: [[name, value], ...] }.

export const EMIT_OK = 0;
export const EMIT_NO_OUTPUT = -1;
export const EMIT_MALFORMED = -2;
export const EMIT_TOO_LARGE = -3;

const WASI_ESUCCESS = 0;
const WASI_EBADF = 8;
const WASI_ENOSYS = 52;

// The subset of wasi_snapshot_preview1 a host provides; anything else a module imports from it
// answers ENOSYS (fd_* functions EBADF).
export const WASI_PROVIDED = [
  'fd_write', 'clock_time_get', 'random_get', 'environ_get', 'environ_sizes_get', 'args_get',
  'args_sizes_get', 'proc_exit',
];

export const NODATA_IMPORTS = ['batch_read', 'emit', 'config', 'log'];

const bytes = (v) => (v === undefined || v === null ? Buffer.alloc(0)
  : Buffer.isBuffer(v) ? v : typeof v === 'string' ? Buffer.from(v) : Buffer.from(v));

// Encodes input records as the ABI's input batch.
export function encodeBatch(records) {
  const parts = [];
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); parts.push(b); };
  const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v))); parts.push(b); };
  const str = (v) => { const b = bytes(v); u32(b.length); parts.push(b); };
  u32(records.length);
  for (const r of records) {
    u32(r.partition ?? 0);
    u64(r.offset ?? 0n);
    u64(r.timestampUs ?? 0n);
    str(r.key);
    str(r.data);
    const headers = r.headers ?? [];
    u32(headers.length);
    for (const [name, value] of headers) { str(name); str(value); }
  }
  return Buffer.concat(parts);
}

// A cursor over bytes that throws RangeError when the layout does not fit.
class Reader {
  constructor(buf) { this.buf = buf; this.pos = 0; }
  need(n) { if (this.buf.length - this.pos < n) throw new RangeError('truncated'); }
  u32() { this.need(4); const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v; }
  u64() { this.need(8); const v = this.buf.readBigUInt64LE(this.pos); this.pos += 8; return v; }
  i64() { this.need(8); const v = this.buf.readBigInt64LE(this.pos); this.pos += 8; return v; }
  bytes() { const n = this.u32(); this.need(n); const v = Buffer.from(this.buf.subarray(this.pos, this.pos + n)); this.pos += n; return v; }
  headers() {
    const n = this.u32();
    if (n > (this.buf.length - this.pos) / 8) throw new RangeError('header count');
    const out = [];
    for (let i = 0; i < n; ++i) out.push([this.bytes(), this.bytes()]);
    return out;
  }
  end() { if (this.pos !== this.buf.length) throw new RangeError('trailing bytes'); }
}

// Decodes an input batch (the inverse of encodeBatch); throws RangeError on a malformed one.
export function decodeBatch(buf) {
  const r = new Reader(Buffer.from(buf));
  const count = r.u32();
  if (count > (buf.length - 4) / 32) throw new RangeError('record count');
  const records = [];
  for (let i = 0; i < count; ++i) {
    records.push({ partition: r.u32(), offset: r.u64(), timestampUs: r.i64(), key: r.bytes(),
      data: r.bytes(), headers: r.headers() });
  }
  r.end();
  return records;
}

// Decodes one output record as given to `emit`; throws RangeError on a malformed one.
export function decodeOutput(buf) {
  const r = new Reader(Buffer.from(buf));
  const out = { inputIndex: r.u32(), timestampUs: r.i64(), key: r.bytes(), data: r.bytes(),
    headers: r.headers() };
  r.end();
  return out;
}

export class ProcExit extends Error {
  constructor(code) { super(`proc_exit(${code})`); this.code = code; }
}

// Instantiates a component module. Options: config (bytes), outputs (number of output topics,
// default 1), maxRecordBytes (emit's size limit, default 1 MiB). Refuses a module without the
// marker export, like the server ("not a nodata component").
export async function loadComponent(wasm, { config = '', outputs = 1, maxRecordBytes = 1 << 20 } = {}) {
  const module = wasm instanceof WebAssembly.Module ? wasm : await WebAssembly.compile(wasm);
  const exportNames = WebAssembly.Module.exports(module).map((e) => e.name);
  if (!exportNames.includes('nodata_component_v1')) throw new Error('not a nodata component');
  const host = new Host(bytes(config), outputs, maxRecordBytes);
  const instance = await WebAssembly.instantiate(module, host.imports(module));
  host.bind(instance);
  host.start();
  return host;
}

class Host {
  constructor(config, outputs, maxRecordBytes) {
    this.config = config;
    this.outputs = outputs;
    this.maxRecordBytes = maxRecordBytes;
    this.batch = Buffer.alloc(0);
    this.count = 0;
    this.records = [];
    this.emits = [];
    this.logs = [];
    this.initRc = 0;
  }

  // Guest memory, bounds-checked: an access outside it is a trap (a thrown RangeError).
  mem(ptr, len) {
    const buf = this.instance.exports.memory.buffer;
    ptr >>>= 0;
    len >>>= 0;
    if (ptr + len > buf.byteLength) throw new RangeError(`guest access [${ptr}, +${len}) out of bounds`);
    return new Uint8Array(buf, ptr, len);
  }

  view() { return new DataView(this.instance.exports.memory.buffer); }

  imports(module) {
    const nodata = {
      batch_read: (ptr, len) => {
        const n = Math.min(Math.max(len, 0), this.batch.length);
        this.mem(ptr, n).set(this.batch.subarray(0, n));
        return n;
      },
      emit: (output, ptr, len) => {
        if (output < 0 || output >= this.outputs) return EMIT_NO_OUTPUT;
        if (len < 0) return EMIT_MALFORMED;
        if (len > this.maxRecordBytes) return EMIT_TOO_LARGE;
        let out;
        try {
          out = decodeOutput(Buffer.from(this.mem(ptr, len)));
        } catch (e) {
          if (e instanceof RangeError && !/out of bounds/.test(e.message)) return EMIT_MALFORMED;
          throw e;
        }
        if (out.inputIndex >= this.count) return EMIT_MALFORMED;
        const input = this.records[out.inputIndex];
        // The timestamp rule: negative means the input record's.
        const timestampUs = out.timestampUs < 0n ? input.timestampUs : out.timestampUs;
        this.emits.push({ output, ...out, rawTimestampUs: out.timestampUs, timestampUs });
        return EMIT_OK;
      },
      config: (ptr, len) => {
        const n = Math.min(Math.max(len, 0), this.config.length);
        if (n > 0) this.mem(ptr, n).set(this.config.subarray(0, n));
        return this.config.length;
      },
      log: (level, ptr, len) => {
        this.logs.push({ level, text: Buffer.from(this.mem(ptr, len)).toString() });
      },
    };
    const wasi = {
      fd_write: (fd, iovs, iovsLen, nwrittenPtr) => {
        if (fd !== 1 && fd !== 2) return WASI_EBADF;
        const v = this.view();
        let total = 0;
        const parts = [];
        for (let i = 0; i < iovsLen; ++i) {
          const base = v.getUint32(iovs + 8 * i, true);
          const len = v.getUint32(iovs + 8 * i + 4, true);
          parts.push(Buffer.from(this.mem(base, len)));
          total += len;
        }
        this.logs.push({ level: fd === 2 ? 3 : 1, text: Buffer.concat(parts).toString(), fd });
        this.view().setUint32(nwrittenPtr, total, true);
        return WASI_ESUCCESS;
      },
      clock_time_get: (id, precision, outPtr) => {
        const ns = id === 0 ? BigInt(Date.now()) * 1000000n : process.hrtime.bigint();
        this.mem(outPtr, 8);
        this.view().setBigUint64(outPtr, ns, true);
        return WASI_ESUCCESS;
      },
      random_get: (ptr, len) => {
        crypto.getRandomValues(this.mem(ptr, len));
        return WASI_ESUCCESS;
      },
      environ_sizes_get: (countPtr, sizePtr) => this.zero2(countPtr, sizePtr),
      args_sizes_get: (countPtr, sizePtr) => this.zero2(countPtr, sizePtr),
      environ_get: () => WASI_ESUCCESS,
      args_get: () => WASI_ESUCCESS,
      proc_exit: (code) => { throw new ProcExit(code); },
    };
    const imports = { nodata: {}, wasi_snapshot_preview1: {} };
    for (const imp of WebAssembly.Module.imports(module)) {
      if (imp.kind !== 'function') throw new Error(`import ${imp.module}.${imp.name}: only functions`);
      if (imp.module === 'nodata' && imp.name in nodata) {
        imports.nodata[imp.name] = nodata[imp.name];
      } else if (imp.module === 'wasi_snapshot_preview1') {
        imports.wasi_snapshot_preview1[imp.name] = wasi[imp.name]
          ?? (() => (imp.name.startsWith('fd_') ? WASI_EBADF : WASI_ENOSYS));
      } else {
        throw new Error(`unknown import ${imp.module}.${imp.name}`);
      }
    }
    return imports;
  }

  zero2(a, b) {
    this.mem(a, 4);
    this.mem(b, 4);
    this.view().setUint32(a, 0, true);
    this.view().setUint32(b, 0, true);
    return WASI_ESUCCESS;
  }

  bind(instance) {
    this.instance = instance;
    this.exports = instance.exports;
  }

  // The WASI reactor's _initialize (constructors) if exported, then nd_init if exported.
  start() {
    if (typeof this.exports._initialize === 'function') this.exports._initialize();
    if (typeof this.exports.nd_init === 'function') this.initRc = this.exports.nd_init();
    if (this.initRc !== 0) throw Object.assign(new Error(`nd_init returned ${this.initRc}`), { rc: this.initRc });
  }

  // Runs nd_process on `records` (or on raw batch bytes: { raw: Buffer, batchBytes? }). Returns
  // { rc, trap, emits, logs }: rc is null when the call trapped.
  process(records) {
    if (records.raw) {
      this.batch = Buffer.from(records.raw);
      try { this.records = decodeBatch(this.batch); } catch { this.records = []; }
    } else {
      this.batch = encodeBatch(records);
      this.records = decodeBatch(this.batch);
    }
    this.count = this.records.length;
    this.emits = [];
    this.logs = [];
    const batchBytes = records.batchBytes ?? this.batch.length;
    let rc = null;
    let trap = null;
    try {
      rc = this.exports.nd_process(batchBytes);
    } catch (e) {
      trap = e;
    }
    return { rc, trap, emits: this.emits, logs: this.logs };
  }
}
