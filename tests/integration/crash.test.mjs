// Durability: publish storms from concurrent clients, SIGKILL at random moments, restart; every acked
// event must be stored exactly once at the acked position, with dense offsets and no reuse.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { codeName, grpc, isDisconnect } from './lib/grpc.mjs';
import { NodataServer } from './lib/server.mjs';
import { newId, rng, sleep, topicName } from './lib/util.mjs';

const ROUNDS = 6;
// Verification relies on dedupe remembering every id: stay far below --dedupe-max-ids.
const MAX_EVENTS = 1_500_000;
const DEDUPE_MAX_IDS = 10_000_000;
const TOPICS = [
  { name: topicName('crash-a'), partitions: 4 },
  { name: topicName('crash-b'), partitions: 3 },
];

class Ledger {
  constructor() {
    this.sent = new Map(); // id => topic, for every event ever sent
    this.acked = new Map(); // id => { topic, partition, offset }, only once its ack arrived
    this.positions = new Map(); // "topic/partition/offset" => id
    this.errors = [];
  }
  send(events) {
    for (const e of events) this.sent.set(e.id, e.topic);
  }
  ack(events, acks, where) {
    if (acks.length !== events.length) {
      this.errors.push(`${where}: ${acks.length} acks for ${events.length} events`);
      return;
    }
    events.forEach((e, i) => {
      const a = acks[i];
      if (a.id !== e.id || a.topic !== e.topic) this.errors.push(`${where}: ack ${i} is for ${a.topic}/${a.id}, sent ${e.topic}/${e.id}`);
      if (a.duplicate) this.errors.push(`${where}: fresh id ${e.id} acked as duplicate of ${a.partition}/${a.offset}`);
      const pos = `${e.topic}/${a.partition}/${a.offset}`;
      const other = this.positions.get(pos);
      if (other !== undefined && other !== e.id) this.errors.push(`${where}: position ${pos} acked for ${other} and again for ${e.id} (offset reuse)`);
      this.positions.set(pos, e.id);
      this.acked.set(e.id, { topic: e.topic, partition: a.partition, offset: a.offset });
    });
  }
}

function makeEvents(rand, n, topics = TOPICS) {
  return Array.from({ length: n }, () => {
    const t = topics === TOPICS ? TOPICS[rand() < 0.6 ? 0 : 1].name : topics[Math.floor(rand() * topics.length)].name;
    const e = { topic: t, id: newId('c'), data: Buffer.from(`crash payload ${rand()}`) };
    if (rand() < 0.3) e.key = Buffer.from(`k${Math.floor(rand() * 20)}`);
    return e;
  });
}

async function batchWorker(api, ledger, rand, state, name, topics = TOPICS, maxBatch = 100) {
  while (!state.stop && ledger.sent.size < MAX_EVENTS) {
    const events = makeEvents(rand, 1 + Math.floor(rand() * maxBatch), topics);
    ledger.send(events);
    try {
      ledger.ack(events, await api.publishBatch(events, { timeoutMs: 30000 }), name);
    } catch (err) {
      if (!state.killed || !isDisconnect(err)) ledger.errors.push(`${name}: ${codeName(err.code)} ${err.details ?? err.message} (killed=${state.killed})`);
      return;
    }
  }
}

function streamWorker(api, ledger, rand, state, name) {
  return new Promise((resolve) => {
    const call = api.ingest.PublishStream(new grpc.Metadata(), { deadline: Date.now() + 60000 });
    const pending = [];
    let finished = false;
    const finish = () => {
      if (!finished) {
        finished = true;
        resolve();
      }
    };
    const writeOne = () => {
      const events = makeEvents(rand, 1 + Math.floor(rand() * 50));
      ledger.send(events);
      pending.push(events);
      call.write({ events });
    };
    call.on('data', (res) => {
      const events = pending.shift();
      if (!events) {
        ledger.errors.push(`${name}: response without a pending request`);
        return;
      }
      ledger.ack(events, res.acks, name);
      if (state.stop || ledger.sent.size >= MAX_EVENTS) {
        if (pending.length === 0) call.end();
      } else writeOne();
    });
    call.on('error', (err) => {
      if (!state.killed || !isDisconnect(err)) ledger.errors.push(`${name}: ${codeName(err.code)} ${err.details} (killed=${state.killed})`);
      finish();
    });
    call.on('status', (st) => {
      if (st.code === grpc.status.OK && pending.length) ledger.errors.push(`${name}: stream closed OK with ${pending.length} unanswered requests`);
      finish();
    });
    for (let i = 0; i < 4; i++) writeOne(); // pipelined: 4 requests in flight
  });
}

test('SIGKILL during publish storms: every acked event stored exactly once, offsets dense', { timeout: 180000 }, async (t) => {
  const seed = Number(process.env.NODATA_CRASH_SEED ?? Date.now() % 1e9);
  t.diagnostic(`seed ${seed} (replay with NODATA_CRASH_SEED=${seed})`);
  const rand = rng(seed);
  // Dedupe checkpoints every 200 ms: kills land while they are written, and restarts restore
  // each topic's ids from its checkpoint and the records after it.
  const srv = new NodataServer({
    args: ['--fsync', 'always', '--dedupe-max-ids', String(DEDUPE_MAX_IDS), '--dedupe-checkpoint-ms', '200'],
  });
  t.after(() => srv.cleanup());
  await srv.start();
  for (const tp of TOPICS) await srv.api.createTopic(tp.name, tp.partitions);
  const ledger = new Ledger();
  let checkpointed = 0;

  for (let round = 1; round <= ROUNDS; round++) {
    const state = { stop: false, killed: false };
    const workers = [];
    for (let w = 0; w < 2; w++) workers.push(batchWorker(srv.newApi(), ledger, rng(seed + round * 10 + w), state, `r${round} batch${w}`));
    for (let w = 0; w < 2; w++) workers.push(streamWorker(srv.newApi(), ledger, rng(seed + round * 10 + 5 + w), state, `r${round} stream${w}`));
    const ackedBefore = ledger.acked.size;
    const sentBefore = ledger.sent.size;
    await sleep(300 + Math.floor(rand() * 4700)); // kill at a random moment of the storm
    state.killed = true;
    state.stop = true;
    await srv.kill();
    await Promise.all(workers);
    const withCheckpoint = TOPICS.filter((tp) => fs.existsSync(`${srv.dataDir}/log/${tp.name}/dedupe.checkpoint`));
    checkpointed += withCheckpoint.length;
    t.diagnostic(`round ${round}: ${ledger.acked.size - ackedBefore} acked, ${ledger.sent.size} sent in total, ${withCheckpoint.length} dedupe checkpoints`);
    if (sentBefore < MAX_EVENTS) assert.ok(ledger.acked.size > ackedBefore, `round ${round}: the storm got some acks before the kill`);
    assert.deepEqual(ledger.errors, [], `round ${round}: protocol errors`);

    await srv.start();
    // Quick check: nothing acked is beyond the recovered end offsets.
    for (const tp of TOPICS) {
      const ends = await srv.api.endOffsets(tp.name);
      for (const a of ledger.acked.values()) {
        if (a.topic === tp.name && a.offset >= ends[a.partition]) {
          assert.fail(`round ${round}: acked ${tp.name}/${a.partition}/${a.offset} but recovered end_offset is ${ends[a.partition]}`);
        }
      }
    }
  }

  await verifyAll(t, srv, ledger, TOPICS, ROUNDS);
  assert.ok(checkpointed > 0, 'some restarts had dedupe checkpoints to restore from');
});

// Republishes every id ever sent, in its topic: dedupe answers where each one is stored. Every
// acked event must be there at its acked position; every stored record is one sent id; offsets
// are dense.
async function verifyAll(t, srv, ledger, topics, rounds) {
  const stored = new Map(); // "topic/partition" => Set(offset)
  const addStored = (topic, partition, offset, id) => {
    const k = `${topic}/${partition}`;
    if (!stored.has(k)) stored.set(k, new Map());
    const m = stored.get(k);
    assert.ok(!m.has(offset) || m.get(offset) === id, `${k}/${offset} holds both ${m.get(offset)} and ${id}`);
    m.set(offset, id);
  };
  const ids = [...ledger.sent.keys()];
  let lost = 0;
  let acked = 0;
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const acks = await srv.api.publishBatch(chunk.map((id) => ({ topic: ledger.sent.get(id), id, data: Buffer.from('again') })));
    acks.forEach((a, j) => {
      const id = chunk[j];
      const orig = ledger.acked.get(id);
      if (orig) {
        acked++;
        if (!a.duplicate || a.partition !== orig.partition || a.offset !== orig.offset) {
          lost++;
          if (lost <= 10) {
            t.diagnostic(`acked ${orig.topic}/${id} at ${orig.partition}/${orig.offset}; republish => duplicate=${a.duplicate} at ${a.partition}/${a.offset}`);
          }
        }
      }
      addStored(ledger.sent.get(id), a.partition, a.offset, id);
    });
  }
  assert.equal(lost, 0, `${lost} of ${acked} acked events were not found at their acked position after ${rounds} SIGKILLs`);

  // Every stored record belongs to exactly one id we sent, and offsets are dense: 0..end-1, no gaps.
  for (const tp of topics) {
    const info = await srv.api.getTopic(tp.name);
    for (const p of info.partitions) {
      const offs = stored.get(`${tp.name}/${p.partition}`) ?? new Map();
      assert.equal(p.end_offset, offs.size, `${tp.name}/${p.partition}: end_offset = number of distinct events stored there`);
      assert.equal(p.record_count, offs.size, `${tp.name}/${p.partition}: record_count`);
      for (const o of offs.keys()) assert.ok(o < p.end_offset, `${tp.name}/${p.partition}: offset ${o} < end ${p.end_offset}`);
    }
  }
  t.diagnostic(`${ledger.acked.size} acked, ${ids.length} sent, all verified`);
}

test('SIGKILL during batches spanning 280 partitions, with 32 open files at most', { timeout: 180000 }, async (t) => {
  // Every batch touches most of the partitions; the segment files of all of them go through an
  // open-file cache of 32, so appends, syncs and reads keep closing and reopening files. Journal
  // checkpoints every 250 ms, each over 256 partitions or more (one syncfs for all), so that
  // kills land while tails are written out.
  const seed = Number(process.env.NODATA_CRASH_SEED ?? Date.now() % 1e9);
  t.diagnostic(`seed ${seed} (replay with NODATA_CRASH_SEED=${seed})`);
  const rand = rng(seed);
  const topics = Array.from({ length: 70 }, (_, i) => ({ name: topicName(`wide${i}`), partitions: 4 }));
  const srv = new NodataServer({
    args: ['--fsync', 'always', '--dedupe-max-ids', String(DEDUPE_MAX_IDS), '--max-open-files', '32',
      '--journal-checkpoint-ms', '250'],
  });
  t.after(() => srv.cleanup());
  await srv.start();
  for (const tp of topics) await srv.api.createTopic(tp.name, tp.partitions);
  const ledger = new Ledger();
  const rounds = 3;
  for (let round = 1; round <= rounds; round++) {
    const state = { stop: false, killed: false };
    const workers = [];
    for (let w = 0; w < 3; w++) {
      workers.push(batchWorker(srv.newApi(), ledger, rng(seed + round * 10 + w), state, `r${round} wide${w}`, topics, 600));
    }
    const ackedBefore = ledger.acked.size;
    await sleep(500 + Math.floor(rand() * 2500));
    state.killed = true;
    state.stop = true;
    await srv.kill();
    await Promise.all(workers);
    t.diagnostic(`round ${round}: ${ledger.acked.size - ackedBefore} acked, ${ledger.sent.size} sent in total`);
    assert.ok(ledger.acked.size > ackedBefore, `round ${round}: the storm got some acks before the kill`);
    assert.deepEqual(ledger.errors, [], `round ${round}: protocol errors`);
    await srv.start();
  }
  await verifyAll(t, srv, ledger, topics, rounds);
  // At rest (everything synced, nothing pinned): the cache's 32 and the server's own few.
  await sleep(300);
  const open = fs.readdirSync(`/proc/${srv.child.pid}/fd`).length;
  assert.ok(open <= 32 + 40, `${open} descriptors open`);
});

test('a power loss after the kill takes every unsynced segment byte: the journal restores every acked event', { timeout: 180000 }, async (t) => {
  // No checkpoint runs while the storm does, so nothing written to the segments was synced:
  // a power loss may take all of it. Every acknowledgement rested on the shared journal's
  // fdatasync alone; cutting every segment back to its header must lose none of them.
  const seed = Number(process.env.NODATA_CRASH_SEED ?? Date.now() % 1e9);
  t.diagnostic(`seed ${seed} (replay with NODATA_CRASH_SEED=${seed})`);
  const topics = Array.from({ length: 75 }, (_, i) => ({ name: topicName(`lost${i}`), partitions: 4 }));
  const srv = new NodataServer({
    args: ['--fsync', 'always', '--dedupe-max-ids', String(DEDUPE_MAX_IDS),
      '--journal-checkpoint-ms', '3600000', '--journal-file-bytes', String(1 << 30)],
  });
  t.after(() => srv.cleanup());
  await srv.start();
  for (const tp of topics) await srv.api.createTopic(tp.name, tp.partitions);
  const ledger = new Ledger();
  const state = { stop: false, killed: false };
  const workers = [];
  for (let w = 0; w < 3; w++) {
    workers.push(batchWorker(srv.newApi(), ledger, rng(seed + w), state, `lost${w}`, topics, 600));
  }
  // Appends reach the segments behind the journal, in pieces of 16 KiB per partition.
  await sleep(1500 + Math.floor(rng(seed)() * 1500));
  state.killed = true;
  state.stop = true;
  await srv.kill();
  await Promise.all(workers);
  assert.deepEqual(ledger.errors, []);
  assert.ok(ledger.acked.size > 1000, `${ledger.acked.size} acked before the kill`);
  const journal = fs.readdirSync(`${srv.dataDir}/journal`).filter((f) => f.endsWith('.wal'));
  assert.ok(journal.length > 0, 'the journal holds the acknowledged appends');
  let cut = 0;
  for (const topic of fs.readdirSync(`${srv.dataDir}/log`)) {
    for (const part of fs.readdirSync(`${srv.dataDir}/log/${topic}`)) {
      if (!fs.statSync(`${srv.dataDir}/log/${topic}/${part}`).isDirectory()) continue;
      for (const f of fs.readdirSync(`${srv.dataDir}/log/${topic}/${part}`)) {
        if (!f.endsWith('.log')) continue;
        const file = `${srv.dataDir}/log/${topic}/${part}/${f}`;
        cut += Math.max(0, fs.statSync(file).size - 32);
        fs.truncateSync(file, 32);
      }
    }
  }
  t.diagnostic(`${ledger.acked.size} acked; ${cut} segment bytes cut; journal files ${journal.join(', ')}`);
  await srv.start();
  await verifyAll(t, srv, ledger, topics, 1);
  // The checkpoint after recovery synced the restored segments and deleted the journal.
  for (let i = 0; i < 100 && fs.readdirSync(`${srv.dataDir}/journal`).some((f) => f.endsWith('.wal')); i++) await sleep(100);
  await srv.stop();
  await srv.start();
  await verifyAll(t, srv, ledger, topics, 2);
});
