// Small helpers shared by the test files: unique names/ids, event builders, ack bookkeeping.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

const RUN = crypto.randomBytes(3).toString('hex');
let seq = 0;

/** A topic name valid under [a-zA-Z0-9._-]{1,249}, unique within this test run. */
export function topicName(prefix = 't') {
  return `${prefix}-${RUN}-${++seq}`;
}

/** A unique event id. */
export function newId(prefix = 'id') {
  return `${prefix}-${RUN}-${++seq}-${crypto.randomBytes(4).toString('hex')}`;
}

export function ev(topic, { id = newId(), key, data = `payload of ${id}`, timestamp, headers } = {}) {
  const e = { topic, id, data: Buffer.from(data) };
  if (key !== undefined) e.key = Buffer.from(key);
  if (timestamp !== undefined) e.timestamp = timestamp;
  if (headers !== undefined) e.headers = headers;
  return e;
}

/** A small seeded PRNG (mulberry32): floats in [0, 1), so a failing run can be replayed. */
export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A memory bound of `bytes` for the process under test; three times as much against a server
 * built with AddressSanitizer (`make sanitize` sets NODATA_SANITIZED=1): its shadow memory and
 * quarantine count too.
 */
export function memoryBound(bytes) {
  return process.env.NODATA_SANITIZED === '1' ? bytes * 3 : bytes;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Asserts acks answer events one for one, in order (topic and id), none duplicate. */
export function assertAcksMatch(events, acks, what = 'acks') {
  assert.equal(acks.length, events.length, `${what}: one ack per event`);
  events.forEach((e, i) => {
    assert.equal(acks[i].topic, e.topic, `${what}[${i}].topic`);
    if (e.id) assert.equal(acks[i].id, e.id, `${what}[${i}].id (acks must be in request order)`);
    else assert.ok(acks[i].id, `${what}[${i}].id: server must assign an id`);
    assert.equal(acks[i].duplicate, false, `${what}[${i}].duplicate for a fresh id`);
  });
}

/**
 * Asserts that, per (topic, partition), the acked offsets are exactly 0..n-1 (no gap, no reuse), in any
 * order. Returns Map(topic => Map(partition => count)).
 */
export function assertDense(acks, what = 'acks') {
  const byTP = groupOffsets(acks);
  const counts = new Map();
  for (const [k, offs] of byTP) {
    const sorted = [...offs].sort((a, b) => a - b);
    assert.deepEqual(sorted, sorted.map((_, i) => i), `${what}: ${k} offsets must be dense from 0 (no gap, no reuse)`);
    const [topic, p] = [k.slice(0, k.lastIndexOf('/')), Number(k.slice(k.lastIndexOf('/') + 1))];
    if (!counts.has(topic)) counts.set(topic, new Map());
    counts.get(topic).set(p, offs.length);
  }
  return counts;
}

/** Asserts that, per (topic, partition), offsets increase in the order of `acks` (request order). */
export function assertOrdered(acks, what = 'acks') {
  for (const [k, offs] of groupOffsets(acks)) {
    for (let i = 1; i < offs.length; i++) {
      assert.ok(offs[i] > offs[i - 1], `${what}: ${k} offsets must increase in request order, got ${offs.slice(0, 60)}`);
    }
  }
}

function groupOffsets(acks) {
  const byTP = new Map();
  for (const a of acks) {
    const k = `${a.topic}/${a.partition}`;
    if (!byTP.has(k)) byTP.set(k, []);
    byTP.get(k).push(a.offset);
  }
  return byTP;
}

/** Per-partition end offsets expected from Map(partition => count) for a topic with n partitions. */
export function expectedEnds(countsForTopic, n) {
  const ends = new Array(n).fill(0);
  for (const [p, c] of countsForTopic ?? []) ends[p] = c;
  return ends;
}

export function sum(xs) {
  return xs.reduce((a, b) => a + b, 0);
}
