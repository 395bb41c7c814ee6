// ConsumeService over the real server: lone subscribers, start positions, live records,
// consumer groups with a member SIGKILLed mid-stream, committed offsets across restarts, flow
// control for a slow subscriber, and bad requests.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Code, expectStatus, unary } from './lib/grpc.mjs';
import { startServer } from './lib/server.mjs';
import { ev, memoryBound, newId, sleep, topicName } from './lib/util.mjs';

const T = { timeout: 180000 };
const here = path.dirname(fileURLToPath(import.meta.url));

async function publishMany(api, topic, n, { batch = 500, size = 20 } = {}) {
  const events = [];
  const acks = [];
  for (let i = 0; i < n; i += batch) {
    const chunk = Array.from({ length: Math.min(batch, n - i) }, (_, j) =>
      ev(topic, { key: `k${(i + j) % 37}`, data: `${i + j}:`.padEnd(size, 'x'), headers: { n: String(i + j) } }));
    events.push(...chunk);
    acks.push(...(await api.publishBatch(chunk)));
  }
  return { events, acks };
}

// Checks that `records` hold, per partition, exactly the acked events in offset order.
function assertExactly(records, events, acks, what) {
  const byPartition = new Map();
  for (const r of records) {
    if (!byPartition.has(r.partition)) byPartition.set(r.partition, []);
    byPartition.get(r.partition).push(r);
  }
  const expected = new Map();
  events.forEach((e, i) => {
    const a = acks[i];
    if (!expected.has(a.partition)) expected.set(a.partition, []);
    expected.get(a.partition).push({ offset: a.offset, e });
  });
  for (const [p, list] of expected) {
    list.sort((x, y) => x.offset - y.offset);
    const got = byPartition.get(p) ?? [];
    assert.equal(got.length, list.length, `${what}: partition ${p} record count`);
    got.forEach((r, i) => {
      assert.equal(r.offset, list[i].offset, `${what}: partition ${p} position ${i}`);
      assert.equal(r.event.id, list[i].e.id, `${what}: partition ${p} offset ${r.offset}`);
      assert.deepEqual(Buffer.from(r.event.data), list[i].e.data);
      assert.deepEqual({ ...r.event.headers }, list[i].e.headers);
    });
  }
}

test('a lone subscriber gets every record in partition order, then new ones as they are acked', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('sub-lone');
  await srv.api.createTopic(topic, 4);
  const first = await publishMany(srv.api, topic, 3000);
  const sub = srv.api.subscribe({ topic, max_batch: 128 });
  t.after(() => sub.cancel());
  await sub.waitFor((s) => s.records.length >= 3000, { what: '3000 stored records' });
  assert.equal(sub.assignments.length, 0, 'no assignment without a group');
  assertExactly(sub.records, first.events, first.acks, 'history');

  // Live: each new record arrives shortly after its ack (no polling interval).
  const delays = [];
  for (let i = 0; i < 30; i++) {
    const e = ev(topic, { id: newId('live') });
    const sent = performance.now();
    const ack = await srv.api.publish(e);
    await sub.waitFor((s) => s.records.some((r) => r.event.id === e.id), { what: `live record ${i}` });
    const r = sub.records.find((x) => x.event.id === e.id);
    assert.equal(r.offset, ack.offset);
    delays.push(r.receivedAt - sent);
  }
  delays.sort((a, b) => a - b);
  t.diagnostic(`publish->receive median ${delays[15].toFixed(2)} ms, max ${delays.at(-1).toFixed(2)} ms`);
  assert.ok(delays[15] < 100, `median publish->receive ${delays[15]} ms`);

  // Only the listed partitions, from an offset.
  const one = srv.api.subscribe({ topic, partitions: [2], start: { offset: 5 } });
  t.after(() => one.cancel());
  const inP2 = first.acks.filter((a) => a.partition === 2).length + 0;
  await one.waitFor((s) => s.records.length >= inP2 - 5, { what: 'partition 2 from offset 5' });
  assert.ok(one.records.every((r) => r.partition === 2));
  assert.equal(one.records[0].offset, 5);

  // Latest: nothing old, only what comes after.
  const latest = srv.api.subscribe({ topic, start: { latest: true } });
  t.after(() => latest.cancel());
  await sleep(300);
  assert.equal(latest.records.length, 0);
  const e = ev(topic, { id: newId('after-latest') });
  await srv.api.publish(e);
  await latest.waitFor((s) => s.records.length === 1, { what: 'the record after latest' });
  assert.equal(latest.records[0].event.id, e.id);
});

test('start by timestamp and reads across the Parquet history', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('sub-time');
  await srv.api.createTopic(topic, 2);
  const before = await publishMany(srv.api, topic, 1000);
  await srv.api.flushTopic(topic); // history into Parquet
  await sleep(50);
  const cut = Date.now();
  await sleep(50);
  const after = await publishMany(srv.api, topic, 500);

  const all = srv.api.subscribe({ topic, start: { earliest: true } });
  t.after(() => all.cancel());
  await all.waitFor((s) => s.records.length >= 1500, { what: 'history and hot records' });
  assertExactly(all.records, [...before.events, ...after.events], [...before.acks, ...after.acks], 'both tiers');

  const fromTime = srv.api.subscribe({ topic, start: { timestamp: { seconds: Math.floor(cut / 1000), nanos: (cut % 1000) * 1e6 } } });
  t.after(() => fromTime.cancel());
  await fromTime.waitFor((s) => s.records.length >= 500, { what: 'records after the cut' });
  await sleep(200);
  assert.equal(fromTime.records.length, 500, 'exactly the records ingested after the timestamp');
  assertExactly(fromTime.records, after.events, after.acks, 'after the cut');
});

test('a group shares partitions; a SIGKILLed member\'s partitions move on with nothing lost', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '6'] });
  const topic = topicName('grp-kill');
  const group = 'g1';
  await srv.api.createTopic(topic, 6);

  const members = [];
  const spawnMember = (id) => {
    const child = spawn(process.execPath, [path.join(here, 'helpers/member.mjs'), srv.grpcAddr, topic, group, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    const m = { id, child, lines: [], assignments: [], records: [] };
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (msg.assignment) m.assignments.push(msg.assignment);
        if (msg.records) m.records.push(...msg.records);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d) => (m.stderr = (m.stderr ?? '') + d));
    t.after(() => child.kill('SIGKILL'));
    members.push(m);
    return m;
  };
  const waitUntil = async (pred, what, ms = 30000) => {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out: ${what}; members ${JSON.stringify(members.map((m) => ({ id: m.id, a: m.assignments, n: m.records.length, err: m.stderr })))}`);
      await sleep(20);
    }
  };
  const [a, b, c] = ['a', 'b', 'c'].map(spawnMember);
  await waitUntil(() => members.every((m) => m.assignments.at(-1)?.length === 2), 'three members with two partitions each');
  const owned = members.flatMap((m) => m.assignments.at(-1)).sort();
  assert.deepEqual(owned, [0, 1, 2, 3, 4, 5], 'partitions are shared, each to exactly one member');
  const desc = await srv.api.getGroup(group, topic);
  assert.equal(desc.members.length, 3);

  const { events, acks } = await publishMany(srv.api, topic, 3000, { batch: 100 });
  await waitUntil(() => b.records.length > 100, 'member b reading');
  b.child.kill('SIGKILL'); // mid-stream, with uncommitted records in flight
  await waitUntil(() => [a, c].every((m) => m.assignments.at(-1)?.length === 3), 'a and c take over b\'s partitions');
  assert.deepEqual([...a.assignments.at(-1), ...c.assignments.at(-1)].sort(), [0, 1, 2, 3, 4, 5]);
  const more = await publishMany(srv.api, topic, 1000, { batch: 100 });
  const all = [...events, ...more.events];
  const allAcks = [...acks, ...more.acks];
  // At least once: every record reached some member.
  const seen = () => new Set(members.flatMap((m) => m.records.map(([p, o]) => `${p}/${o}`)));
  await waitUntil(() => seen().size >= all.length, 'every record delivered to some member');
  for (const ack of allAcks) assert.ok(seen().has(`${ack.partition}/${ack.offset}`), `record ${ack.partition}/${ack.offset} lost`);
  // Each live member saw its partitions in order, no gaps from where it started.
  for (const m of [a, c]) {
    const last = new Map();
    for (const [p, o] of m.records) {
      if (last.has(p)) assert.equal(o, last.get(p) + 1, `member ${m.id} partition ${p} in order`);
      last.set(p, o);
    }
  }
  // The group's committed offsets reach the end; lag 0.
  await waitUntil(() => false || true, 'noop');
  let group1;
  for (let i = 0; i < 100; i++) {
    group1 = await srv.api.getGroup(group, topic);
    if (group1.partitions.every((p) => p.lag === 0)) break;
    await sleep(50);
  }
  assert.ok(group1.partitions.every((p) => p.has_committed && p.lag === 0 && p.committed_offset === p.end_offset), JSON.stringify(group1.partitions));
  assert.equal(group1.members.length, 2);
  assert.ok(group1.generation >= 4, `generation ${group1.generation}`);
  void all;
});

test('committed offsets survive a restart; a group resumes where it committed', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('grp-resume');
  await srv.api.createTopic(topic, 3);
  const { events, acks } = await publishMany(srv.api, topic, 900);
  const sub = srv.api.subscribe({ topic, group: 'resume', consumer_id: 'only' });
  await sub.waitFor((s) => s.records.length >= 900, { what: 'all records' });
  assert.deepEqual(sub.assignments[0].partitions, [0, 1, 2]);
  // Commit half of each partition.
  const half = [0, 1, 2].map((p) => ({ partition: p, offset: Math.floor(acks.filter((a) => a.partition === p).length / 2) }));
  await srv.api.commit('resume', topic, half);
  sub.cancel();
  await sub.end;

  await srv.restart({ how: 'kill' });
  const g = await srv.api.getGroup('resume', topic);
  assert.deepEqual(g.partitions.map((p) => p.committed_offset), half.map((h) => h.offset), 'committed offsets are durable');
  assert.equal(g.members.length, 0);
  const again = srv.api.subscribe({ topic, group: 'resume' });
  t.after(() => again.cancel());
  const expected = acks.filter((a, i) => a.offset >= half[a.partition].offset);
  await again.waitFor((s) => s.records.length >= expected.length, { what: 'the uncommitted half' });
  await sleep(200);
  assert.equal(again.records.length, expected.length);
  for (const p of [0, 1, 2]) {
    const first = again.records.find((r) => r.partition === p);
    assert.equal(first.offset, half[p].offset, `partition ${p} resumes at its committed offset`);
  }
  void events;

  // ResetOffsets is refused while members are live, then moves the offsets.
  await expectStatus(srv.api.resetOffsets({ group: 'resume', topic, to: { earliest: true } }), Code.FAILED_PRECONDITION, 'reset with live members');
  again.cancel();
  await again.end;
  for (let i = 0; i < 50 && (await srv.api.getGroup('resume', topic)).members.length > 0; i++) await sleep(20);
  const reset = await srv.api.resetOffsets({ group: 'resume', topic, to: { latest: true } });
  assert.deepEqual(reset.map((o) => o.offset), [0, 1, 2].map((p) => acks.filter((a) => a.partition === p).length));
  const groups = await srv.api.listGroups(topic);
  assert.deepEqual(groups.map((x) => [x.group, x.topic, x.lag]), [['resume', topic, 0]]);
});

test('auto-commit and lag in GetGroup and /metrics', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('grp-auto');
  await srv.api.createTopic(topic, 2);
  await publishMany(srv.api, topic, 400);
  const sub = srv.api.subscribe({ topic, group: 'auto', auto_commit: true });
  await sub.waitFor((s) => s.records.length >= 400, { what: 'all records' });
  sub.cancel();
  await sub.end;
  let g;
  for (let i = 0; i < 100; i++) {
    g = await srv.api.getGroup('auto', topic);
    if (g.members.length === 0 && g.partitions.every((p) => p.lag === 0)) break;
    await sleep(30);
  }
  assert.ok(g.partitions.every((p) => p.has_committed && p.lag === 0), JSON.stringify(g.partitions));
  await publishMany(srv.api, topic, 100);
  g = await srv.api.getGroup('auto', topic);
  assert.equal(g.partitions.reduce((n, p) => n + p.lag, 0), 100);
  const metrics = await (await fetch(`http://${srv.httpAddr}/metrics`)).text();
  const lag = [...metrics.matchAll(new RegExp(`nodata_consumer_lag\\{group="auto",partition="\\d+",topic="${topic}"\\} (\\d+)`, 'g'))]
    .reduce((n, m) => n + Number(m[1]), 0);
  assert.equal(lag, 100);
});

test('a slow subscriber does not grow the server\'s memory or stop ingest', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('sub-slow');
  await srv.api.createTopic(topic, 1);
  const rss = () => Number(fs.readFileSync(`/proc/${srv.child.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) * 1024;
  const sub = srv.api.subscribe({ topic, max_batch: 1000 });
  t.after(() => sub.cancel());
  sub.call.pause(); // reads nothing
  const payload = 'p'.repeat(10000);
  await srv.api.publishBatch(Array.from({ length: 100 }, () => ev(topic, { data: payload })));
  await sleep(500);
  const base = rss();
  // 200 MB published while the subscriber reads nothing.
  const start = performance.now();
  for (let i = 0; i < 200; i++) {
    await srv.api.publishBatch(Array.from({ length: 100 }, () => ev(topic, { data: payload })));
  }
  const seconds = (performance.now() - start) / 1000;
  await sleep(500);
  const grown = rss() - base;
  t.diagnostic(`ingest ${(200 / seconds).toFixed(0)} MB/s with a stalled subscriber; server RSS grew ${(grown / 1e6).toFixed(1)} MB`);
  assert.ok(grown < memoryBound(100e6), `server RSS grew by ${(grown / 1e6).toFixed(1)} MB while 200 MB waited for a stalled subscriber`);
  // It still gets everything once it reads.
  sub.call.resume();
  await sub.waitFor((s) => s.records.length >= 20100, { what: 'all records after resuming', timeoutMs: 60000 });
  assert.equal(sub.records.at(-1).offset, 20099);
});

test('bad subscribe, commit and group requests get clean statuses', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('sub-bad');
  await srv.api.createTopic(topic, 2);
  await srv.api.publishBatch([ev(topic), ev(topic), ev(topic)]);
  const status = async (request) => (await srv.api.subscribe(request).end);
  const cases = [
    [{ topic: 'no-such-topic' }, Code.NOT_FOUND],
    [{ topic: '../x' }, Code.INVALID_ARGUMENT],
    [{ topic, partitions: [2] }, Code.INVALID_ARGUMENT],
    [{ topic, start: { offset: 1e15 } }, Code.OUT_OF_RANGE],
    [{ topic, start: { committed: true } }, Code.INVALID_ARGUMENT],
    [{ topic, group: 'g', partitions: [0] }, Code.INVALID_ARGUMENT],
    [{ topic, group: 'bad/group' }, Code.INVALID_ARGUMENT],
    [{ topic, group: 'g', consumer_id: 'a b' }, Code.INVALID_ARGUMENT],
    [{ topic, max_batch: 100000 }, Code.INVALID_ARGUMENT],
    [{ topic, auto_commit: true }, Code.INVALID_ARGUMENT],
    [{ topic, start: { timestamp: { seconds: 1e12, nanos: 0 } } }, Code.INVALID_ARGUMENT],
  ];
  for (const [request, code] of cases) {
    const st = await status(request);
    assert.equal(st.code, code, `${JSON.stringify(request)}: got ${st.code} ${st.details}`);
    assert.ok(st.details.length > 5, 'a readable message');
  }
  await expectStatus(srv.api.commit('g', topic, [{ partition: 0, offset: 1e9 }]), Code.OUT_OF_RANGE, 'commit past the end');
  await expectStatus(srv.api.commit('g', topic, [{ partition: 7, offset: 0 }]), Code.INVALID_ARGUMENT, 'commit of a missing partition');
  await expectStatus(srv.api.commit('g', 'no-such-topic', [{ partition: 0, offset: 0 }]), Code.NOT_FOUND, 'commit on a missing topic');
  await expectStatus(srv.api.commit('g', topic, []), Code.INVALID_ARGUMENT, 'empty commit');
  await expectStatus(srv.api.commit('', topic, [{ partition: 0, offset: 0 }]), Code.INVALID_ARGUMENT, 'commit without a group');
  await expectStatus(srv.api.getGroup('never', topic), Code.NOT_FOUND, 'unknown group');
  await expectStatus(srv.api.resetOffsets({ group: 'g', topic }), Code.INVALID_ARGUMENT, 'reset without a position');
  await expectStatus(srv.api.resetOffsets({ group: 'g', topic, to: { offset: 99 } }), Code.OUT_OF_RANGE, 'reset past the end');
  // The server is unharmed: a good subscription works.
  const ok = srv.api.subscribe({ topic });
  t.after(() => ok.cancel());
  await ok.waitFor((s) => s.records.length === 3, { what: 'the three records' });
  // A deleted topic ends its subscriptions.
  await srv.api.deleteTopic(topic);
  const st = await ok.end;
  assert.ok([Code.NOT_FOUND, Code.ABORTED].includes(st.code), `status after delete: ${st.code} ${st.details}`);
  // Also when a topic of the same name is created again at once (auto-create on publish): the
  // subscription was to the old topic.
  await srv.api.publish(ev(topic));
  const again = srv.api.subscribe({ topic, start: { latest: true } });
  await again.waitFor((s) => s.records.length === 0 && s.status === null, { what: 'idle at the end' });
  await sleep(200);
  await srv.api.deleteTopic(topic);
  await srv.api.publish(ev(topic));
  const st2 = await again.end;
  assert.equal(st2.code, Code.NOT_FOUND, `status after delete and re-create: ${st2.code} ${st2.details}`);
});

test('a fenced commit is refused once its member lost the partitions in a rebalance', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('grp-fence');
  await srv.api.createTopic(topic, 2);
  await srv.api.publishBatch(Array.from({ length: 20 }, (_, i) => ev(topic, { key: `k${i}` })));
  const a = srv.api.subscribe({ topic, group: 'fence', consumer_id: 'a' });
  t.after(() => a.cancel());
  await a.waitFor((s) => s.assignments.length === 1, { what: 'a first assignment' });
  const genA = a.assignments[0].generation;
  assert.deepEqual(a.partitions, [0, 1]);
  const b = srv.api.subscribe({ topic, group: 'fence', consumer_id: 'b' });
  t.after(() => b.cancel());
  await b.waitFor((s) => s.assignments.length === 1, { what: 'b joins' });
  await a.waitFor((s) => s.assignments.length === 2, { what: 'a rebalanced' });
  const genB = b.assignments[0].generation;
  assert.ok(genB > genA);
  assert.deepEqual([...a.partitions, ...b.partitions].sort(), [0, 1]);
  const bPartition = b.partitions[0];
  // A commit from before the rebalance, a commit of another member's partition: refused.
  await expectStatus(unaryCommit(srv, { group: 'fence', topic, offsets: [{ partition: bPartition, offset: 2 }], generation: genA, consumer_id: 'a' }), Code.FAILED_PRECONDITION, 'stale generation');
  await expectStatus(unaryCommit(srv, { group: 'fence', topic, offsets: [{ partition: bPartition, offset: 2 }], generation: genB, consumer_id: 'a' }), Code.FAILED_PRECONDITION, 'partition of another member');
  // The owner's commit in the current generation goes through.
  await unaryCommit(srv, { group: 'fence', topic, offsets: [{ partition: bPartition, offset: 2 }], generation: genB, consumer_id: 'b' });
  const g = await srv.api.getGroup('fence', topic);
  assert.equal(g.partitions[bPartition].committed_offset, 2);
});

function unaryCommit(srv, request) {
  return unary(srv.api.consume, 'Commit', request);
}

test('records with large headers reach a client with the default 4 MiB message limit', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('sub-headers');
  await srv.api.createTopic(topic, 1);
  const big = 'h'.repeat(200 * 1024);
  const events = Array.from({ length: 40 }, (_, i) => ev(topic, { data: '', headers: { a: big, n: String(i) } }));
  for (let i = 0; i < events.length; i += 10) await srv.api.publishBatch(events.slice(i, i + 10));
  // 40 records of 200 KiB headers: 8 MB, which must be split across messages.
  const sub = srv.api.subscribe({ topic, max_batch: 10000 });
  t.after(() => sub.cancel());
  await sub.waitFor((s) => s.records.length === 40 || s.status !== null, { what: 'all 40 records' });
  assert.equal(sub.records.length, 40, `status ${JSON.stringify(sub.status)}`);
  sub.records.forEach((r, i) => assert.equal(r.event.headers.n, String(i)));
});

test('a subscriber without a group reads the partitions a grow adds, every record once', T, async (t) => {
  const srv = await startServer(t, { args: ['--max-partitions', '8'] });
  // Routing depends on the key and the count only: a 4-partition topic shows which keys go to
  // partitions 2 and 3 once the topic below has 4.
  const probe = topicName('probe');
  await srv.api.createTopic(probe, 4);
  const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`);
  const probeAcks = await srv.api.publishBatch(keys.map((key) => ev(probe, { key })));
  const newKeys = keys.filter((_, i) => probeAcks[i].partition >= 2);
  assert.ok(newKeys.length > 0);

  const topic = topicName('grow-tail');
  await srv.api.createTopic(topic, 2);
  const before = keys.slice(0, 10).map((key) => ev(topic, { key }));
  await srv.api.publishBatch(before);
  const sub = srv.api.subscribe({ topic });
  t.after(() => sub.cancel());
  await sub.waitFor((s) => s.records.length === 10, { what: 'the records before the grow' });

  // The subscriber waits on partitions 0 and 1; the grow adds 2 and 3, and only they get records.
  await srv.api.updateTopic({ name: topic, partitions: 4 });
  const onNew = newKeys.map((key) => ev(topic, { key }));
  const newAcks = await srv.api.publishBatch(onNew);
  assert.ok(newAcks.every((a) => a.partition >= 2), 'these keys route to the new partitions');
  await sub.waitFor((s) => s.records.length === 10 + onNew.length, { timeoutMs: 10000, what: 'the records of the new partitions' });

  // Then every partition gets records; each one arrives once.
  const everywhere = keys.map((key) => ev(topic, { key }));
  const acks = await srv.api.publishBatch(everywhere);
  assert.deepEqual([...new Set(acks.map((a) => a.partition))].sort(), [0, 1, 2, 3]);
  const all = [...before, ...onNew, ...everywhere];
  await sub.waitFor((s) => s.records.length >= all.length, { timeoutMs: 10000, what: 'every record' });
  await sleep(300);
  assert.equal(sub.records.length, all.length, 'no record twice');
  assert.deepEqual(new Set(sub.records.map((r) => r.event.id)), new Set(all.map((e) => e.id)));
  sub.cancel();
  await sub.end;
});
