// The chaos suite's pipeline (chaos.test.mjs): a server with everything running (publishers, a
// consumer group, a transform chain, two aggregations), disrupted round after round by the
// test's `disrupt`, then checked end to end.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { aggregation, assertEqualsDuckDB, caughtUp } from './aggregations.mjs';
import { describeRun, runCli } from './cli.mjs';
import { Api, Code, REPO_ROOT, codeName, grpc, isDisconnect, unary } from './grpc.mjs';
import { startServer } from './server.mjs';
import { rng, sleep } from './util.mjs';

const SDK_DIR = process.env.COMPONENT_SDK_DIR ?? path.join(REPO_ROOT, 'build-component-sdk');
const BASE_MS = Date.UTC(2026, 11, 1, 9, 0, 0);
const USERS = 40;
const GROUP = 'chaos-readers';

function sdkWasm(name) {
  const p = path.join(SDK_DIR, 'c', `${name}.wasm`);
  assert.ok(existsSync(p), `${p} is missing: run \`make component-sdk\` first`);
  return p;
}

async function cli(srv, args) {
  const full = [...args, '--server', srv.grpcAddr];
  const r = await runCli(full, { timeoutMs: 150000 });
  assert.equal(r.code, 0, describeRun(full, r));
}

/** What the publishers sent and what the server acknowledged, by id. */
class Ledger {
  constructor() {
    this.sent = new Map();  // id => the event
    this.acked = new Map();  // id => "partition/offset"
    this.errors = [];
    this.retries = 0;
    this.refused = {};  // status code => failed attempts
  }
  ack(events, acks, who) {
    if (acks.length !== events.length) {
      this.errors.push(`${who}: ${acks.length} acks for ${events.length} events`);
      return;
    }
    events.forEach((e, i) => {
      const where = `${acks[i].partition}/${acks[i].offset}`;
      const before = this.acked.get(e.id);
      if (acks[i].id !== e.id) this.errors.push(`${who}: ack ${i} names ${acks[i].id}, sent ${e.id}`);
      if (before !== undefined && before !== where) {
        this.errors.push(`${who}: ${e.id} acknowledged at ${before} and again at ${where}`);
      }
      this.acked.set(e.id, where);
    });
  }
}

function makeBatch(rand, topic, who, n) {
  return Array.from({ length: n }, (_, i) => {
    const ms = BASE_MS + Math.floor(rand() * 600000);
    const data = { user: `u${Math.floor(rand() * USERS)}`, amount: Math.floor(rand() * 97),
      tag: rand() < 0.4 ? 'keep' : 'drop' };
    return {
      topic, id: `${who}-${i}-${rand().toString(36).slice(2, 10)}`, key: Buffer.from(data.user),
      data: Buffer.from(JSON.stringify(data)),
      timestamp: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 },
    };
  });
}

/**
 * Publishes batches until `state.stop`; a batch the server died under, or refused with a code
 * `tolerate` accepts, is sent again as it was.
 */
async function publisher(srv, ledger, state, rand, topic, who, tolerate) {
  for (let b = 0; !state.stop; ++b) {
    const events = makeBatch(rand, topic, `${who}.${b}`, 1 + Math.floor(rand() * 60));
    for (const e of events) ledger.sent.set(e.id, e);
    for (let attempt = 0; ; ++attempt) {
      const api = srv.api;
      if (attempt > 0) ++ledger.retries;
      try {
        if (!api) throw Object.assign(new Error('server down'), { code: Code.UNAVAILABLE });
        ledger.ack(events, await api.publishBatch(events, { timeoutMs: 20000 }), who);
        break;
      } catch (err) {
        const code = codeName(err.code);
        if (isDisconnect(err) || tolerate(err)) {
          ledger.refused[code] = (ledger.refused[code] ?? 0) + 1;
          ledger.lastRefusal = `${code} ${err.details ?? err.message}`;
        } else ledger.errors.push(`${who}: ${codeName(err.code)} ${err.details ?? err.message}`);
        await sleep(30);
      }
    }
    await sleep(5 + Math.floor(rand() * 20));
  }
  state.published = (state.published ?? 0) + 1;
}

/**
 * A member of GROUP: subscribes, records every record it receives, then commits the batch with
 * its generation (fenced). A commit fenced by a rebalance is made again, with the new
 * generation, for the partitions the member keeps. Subscribes again whenever the stream ends,
 * until `state.drained`.
 */
async function member(srv, group, state, topic, who, tolerate) {
  while (!state.drained) {
    if (!srv.alive || !srv.grpcAddr) {
      await sleep(50);
      continue;
    }
    const api = new Api(srv.grpcAddr, { separateConnection: true });
    let committing = Promise.resolve();
    let closed = false;
    await new Promise((resolve) => {
      let generation = 0;
      const positions = new Map();  // partition => one past the last offset received
      const call = api.consume.Subscribe({ topic, group: GROUP, consumer_id: who, max_batch: 200 },
        new grpc.Metadata(), { deadline: Date.now() + 600000 });
      state.calls.add(call);
      const commit = async (partitions) => {
        const offsets = partitions.filter((p) => positions.has(p)).map((p) => ({ partition: p, offset: positions.get(p) }));
        if (offsets.length === 0 || closed) return;
        call.pause();
        let done;
        committing = new Promise((r) => (done = r));
        try {
          await unary(api.consume, 'Commit', { group: GROUP, topic, offsets, generation, consumer_id: who },
            { timeoutMs: 10000 });
        } catch (err) {
          if (err.code === Code.FAILED_PRECONDITION) ++group.fenced;
          else if (!isDisconnect(err) && !tolerate(err)) group.errors.push(`${who} commit: ${codeName(err.code)} ${err.details ?? err.message}`);
        } finally {
          done();
          call.resume();
        }
      };
      call.on('data', async (msg) => {
        if (msg.assignment) {
          generation = Number(msg.assignment.generation);
          const owned = new Set(msg.assignment.partitions);
          for (const p of [...positions.keys()]) if (!owned.has(p)) positions.delete(p);
          await commit([...owned]);
          return;
        }
        const batch = new Set();
        for (const r of msg.records.records) {
          group.receive(r.partition, Number(r.offset), r.event.id);
          positions.set(r.partition, Number(r.offset) + 1);
          batch.add(r.partition);
        }
        await commit([...batch]);  // after the stream's end: received, not committed
      });
      call.on('error', (err) => {
        if (!isDisconnect(err) && !tolerate(err)) group.errors.push(`${who}: ${codeName(err.code)} ${err.details}`);
      });
      call.on('status', () => {
        state.calls.delete(call);
        resolve();
      });
    });
    await committing;  // its channel stays open until the last commit is answered
    closed = true;
    api.close();
    await sleep(50);
  }
}

/** What the group's members received: offsets per partition, and how often each id came. */
class GroupLedger {
  constructor() {
    this.received = new Map();  // partition => Set of offsets
    this.deliveries = 0;
    this.ids = new Map();  // "partition/offset" => id
    this.errors = [];
    this.fenced = 0;
    this.checks = 0;
  }
  receive(partition, offset, id) {
    if (!this.received.has(partition)) this.received.set(partition, new Set());
    this.received.get(partition).add(offset);
    const k = `${partition}/${offset}`;
    const before = this.ids.get(k);
    if (before !== undefined && before !== id) this.errors.push(`offset ${k} delivered as ${before} and as ${id}`);
    this.ids.set(k, id);
    ++this.deliveries;
  }
  /** Every offset below each committed one was received by some member. */
  checkCommitted(partitions, when) {
    ++this.checks;
    for (const p of partitions) {
      if (!p.has_committed) continue;
      const got = this.received.get(p.partition) ?? new Set();
      for (let o = Number(p.committed_offset) - 1; o >= 0; --o) {
        if (!got.has(o)) {
          this.errors.push(`${when}: partition ${p.partition} committed at ${p.committed_offset}, ` +
            `but offset ${o} was never received`);
          break;
        }
      }
    }
  }
}

async function waitFor(check, what, timeoutMs = 180000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await check().catch(() => false);
    if (r) return r;
    if (Date.now() > deadline) assert.fail(`not reached in ${timeoutMs} ms: ${await what()}`);
    await sleep(200);
  }
}

async function readAll(srv, topic) {
  return srv.api.readTopic(topic, {}, { timeoutMs: 300000 });
}

/** Asserts `records` hold exactly the outputs `want` (id => data), each once. */
function assertExactlyOnce(records, want, what) {
  const seen = new Map();
  for (const r of records) {
    assert.ok(!seen.has(r.event.id), `${what}: ${r.event.id} stored twice`);
    seen.set(r.event.id, r.event.data.toString());
  }
  for (const [id, data] of want) assert.equal(seen.get(id), data, `${what}: output ${id}`);
  assert.equal(seen.size, want.size, `${what}: ${seen.size} outputs, want ${want.size}`);
}

/**
 * Runs the pipeline on a server started with `server` (NodataServer options; `bin` replaces the
 * binary) through `rounds` rounds of 150-750 ms of traffic followed by `disrupt(srv, round,
 * rand)`, then checks everything; publish refusals for which `tolerate(err)` holds are retried.
 * Returns the server and the figures (also appended to NODATA_CHAOS_REPORT, when set, as a JSON
 * line).
 */
export async function runPipeline(t, { rounds, disrupt, server = {}, tolerate = () => false }) {
  const seed = Number(process.env.NODATA_CHAOS_SEED ?? Date.now() % 1e9);
  t.diagnostic(`seed ${seed} (replay with NODATA_CHAOS_SEED=${seed})`);
  const rand = rng(seed);
  const srv = await startServer(t, {
    ...server,
    args: ['--parquet-roll-interval', '500ms', '--parquet-roll-bytes', '200000', '--segment-bytes', '262144',
      '--maintenance-ms', '100', '--journal-checkpoint-ms', '200', ...(server.args ?? [])],
  });
  const orders = 'chaos.orders';
  const kept = 'chaos.kept';
  const users = 'chaos.users';
  await srv.api.createTopic(orders, 3);
  await srv.api.createTopic(kept, 2);
  await srv.api.createTopic(users, 2);
  await cli(srv, ['component', 'add', 'keep', '--wasm', sdkWasm('filter'), '--transform', `${orders}:${kept}`,
    '--config', '"tag":"keep"']);
  await cli(srv, ['component', 'add', 'who', '--wasm', sdkWasm('field_map'), '--transform', `${kept}:${users}`,
    '--config', 'user']);
  const measures = ['--key', '$.user', '--window', 'tumbling:60s', '--lateness', '1h', '--measure', 'n=count()',
    '--measure', 'total=sum($.amount)', '--checkpoint-interval', '100ms'];
  await aggregation(srv, ['add', 'all_orders', '--input', orders, ...measures]);
  await aggregation(srv, ['add', 'kept_orders', '--input', kept, ...measures]);

  const ledger = new Ledger();
  const group = new GroupLedger();
  const state = { stop: false, drained: false, calls: new Set() };
  const publishers = ['p1', 'p2'].map((w, i) => publisher(srv, ledger, state, rng(seed + 7919 * (i + 1)), orders, w, tolerate));
  const members = ['m1', 'm2'].map((w) => member(srv, group, state, orders, w, tolerate));

  const started = Date.now();
  for (let k = 0; k < rounds; ++k) {
    await sleep(150 + Math.floor(rand() * 600));
    await disrupt(srv, k, rand);
    group.checkCommitted((await srv.api.getGroup(GROUP, orders)).partitions, `after round ${k + 1}`);
  }
  const chaosMs = Date.now() - started;
  state.stop = true;
  await waitFor(async () => {
    await Promise.race([Promise.all(publishers), sleep(1000)]);
    return state.published === publishers.length;
  }, async () => `publishers done; the last refusal: ${ledger.lastRefusal}`, 120000);
  assert.deepEqual(ledger.errors, [], 'publishers');
  assert.ok(ledger.sent.size > 1000, `${ledger.sent.size} events sent`);

  // Ingest: every event sent (each eventually acknowledged) stored once, where acknowledged.
  const stored = await readAll(srv, orders);
  const where = new Map();
  for (const r of stored) {
    assert.ok(!where.has(r.event.id), `${r.event.id} stored twice (at ${where.get(r.event.id)} and ${r.partition}/${r.offset})`);
    where.set(r.event.id, `${r.partition}/${r.offset}`);
  }
  assert.equal(ledger.acked.size, ledger.sent.size, 'every batch was acknowledged in the end');
  for (const [id, at] of ledger.acked) assert.equal(where.get(id), at, `event ${id}: stored where acknowledged`);
  assert.equal(stored.length, ledger.sent.size, 'nothing stored that was not sent');

  // The chain: filter outputs, then field-map outputs, each exactly once.
  const wantKept = new Map();
  for (const r of stored) {
    if (r.event.data.toString().includes('"tag":"keep"')) wantKept.set(`keep:${r.partition}:${r.offset}:0`, r.event.data.toString());
  }
  const keptCount = async () => (await srv.api.getTopic(kept)).partitions.reduce((n, p) => n + Number(p.end_offset), 0);
  await waitFor(async () => (await keptCount()) >= wantKept.size, async () => `${kept}: ${await keptCount()} of ${wantKept.size}`);
  const keptRecords = await readAll(srv, kept);
  assertExactlyOnce(keptRecords, wantKept, kept);
  const wantUsers = new Map(keptRecords.map((r) => [`who:${r.partition}:${r.offset}:0`, JSON.parse(r.event.data.toString()).user]));
  const usersCount = async () => (await srv.api.getTopic(users)).partitions.reduce((n, p) => n + Number(p.end_offset), 0);
  await waitFor(async () => (await usersCount()) >= wantUsers.size, async () => `${users}: ${await usersCount()} of ${wantUsers.size}`);
  assertExactlyOnce(await readAll(srv, users), wantUsers, users);

  // Both aggregations equal DuckDB over their input's Parquet files.
  await caughtUp(srv, 'all_orders', { timeoutMs: 180000 });
  await caughtUp(srv, 'kept_orders', { timeoutMs: 180000 });
  await assertEqualsDuckDB(srv, orders, 'all_orders');
  await assertEqualsDuckDB(srv, kept, 'kept_orders');

  // The group: received everything, and committed nothing it had not received.
  await waitFor(async () => {
    const g = await srv.api.getGroup(GROUP, orders);
    return g.partitions.every((p) => p.has_committed && Number(p.committed_offset) === Number(p.end_offset));
  }, async () => `group ${GROUP}: ${JSON.stringify((await srv.api.getGroup(GROUP, orders)).partitions)}`);
  group.checkCommitted((await srv.api.getGroup(GROUP, orders)).partitions, 'at the end');
  state.drained = true;
  for (const c of state.calls) c.cancel();
  await Promise.all(members);
  assert.deepEqual(group.errors, [], 'group');
  for (const r of stored) {
    assert.ok(group.received.get(r.partition)?.has(Number(r.offset)), `group never received ${r.partition}/${r.offset}`);
  }

  const figures = {
    test: t.name, seed, rounds, seconds: Math.round(chaosMs / 1000), server_starts: srv.starts,
    events_acknowledged: ledger.acked.size, publish_retries: ledger.retries,
    transform_outputs_checked: wantKept.size + wantUsers.size,
    group_deliveries: group.deliveries, group_redeliveries: group.deliveries - stored.length,
    commit_checks: group.checks, commits_fenced: group.fenced, publish_refusals: ledger.refused,
  };
  t.diagnostic(`figures ${JSON.stringify(figures)}`);
  if (process.env.NODATA_CHAOS_REPORT) {
    writeFileSync(process.env.NODATA_CHAOS_REPORT, `${JSON.stringify(figures)}\n`, { flag: 'a' });
  }
  return { srv, figures };
}
