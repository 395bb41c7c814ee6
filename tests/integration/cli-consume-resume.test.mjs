// nodata consume: --until-end, --from offset:N per partition, and resuming after the server
// restarts; SubscribeRequest.start_offsets and clamp_start over gRPC.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { describeRun, parseJsonOut, runCli } from './lib/cli.mjs';
import { Code } from './lib/grpc.mjs';
import { freePort, nodataBin, startServer } from './lib/server.mjs';
import { ev, sleep, topicName } from './lib/util.mjs';

const T = { timeout: 180000 };

function lines(stdout) {
  return stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

/** Records that all went to one partition (one key); returns that partition. */
async function publishOneKey(api, topic, n, key = 'one') {
  const acks = await api.publishBatch(Array.from({ length: n }, (_, i) => ev(topic, { key, data: `r${i}` })));
  assert.ok(acks.every((a) => a.partition === acks[0].partition));
  return acks[0].partition;
}

/**
 * Each published record printed exactly once, and each partition's records in offset order
 * without gaps from 0; `extra` records may be missing (published after --until-end's ends).
 */
function assertExactlyOnce(printed, published, { extra = [] } = {}) {
  const ids = printed.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length, 'no record printed twice');
  const want = new Set(published.map((e) => e.id));
  const extras = new Set(extra.map((e) => e.id));
  for (const id of ids) assert.ok(want.has(id) || extras.has(id), `unexpected record ${id}`);
  const seen = new Set(ids);
  for (const id of want) assert.ok(seen.has(id), `record ${id} missing`);
  const byPartition = new Map();
  for (const r of printed) {
    const offsets = byPartition.get(r.partition) ?? [];
    offsets.push(r.offset);
    byPartition.set(r.partition, offsets);
  }
  for (const [p, offsets] of byPartition) {
    assert.deepEqual(offsets, offsets.map((_, i) => i), `partition ${p}: offsets in order, from 0, no gaps`);
  }
}

/** Runs `nodata consume` in the background; its stdout is read only after release(). */
function startConsume(args, { hold = false } = {}) {
  const child = spawn(nodataBin(), ['consume', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const run = { child, stdout: '', stderr: '' };
  child.stderr.setEncoding('utf8').on('data', (d) => (run.stderr += d));
  run.release = () => child.stdout.setEncoding('utf8').on('data', (d) => (run.stdout += d));
  if (!hold) run.release();
  run.exit = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  run.waitLines = async (n, timeoutMs = 30000) => {
    const until = Date.now() + timeoutMs;
    while (run.stdout.split('\n').length - 1 < n) {
      if (Date.now() > until) throw new Error(`consume printed ${run.stdout.split('\n').length - 1} of ${n} lines\nstderr: ${run.stderr}`);
      await sleep(20);
    }
  };
  return run;
}

async function waitExit(run, timeoutMs = 60000) {
  let timer;
  const res = await Promise.race([run.exit, new Promise((r) => (timer = setTimeout(() => r(null), timeoutMs)))]);
  clearTimeout(timer);
  if (res === null) {
    run.child.kill('SIGKILL');
    throw new Error(`consume did not exit within ${timeoutMs} ms\nstderr: ${run.stderr}`);
  }
  return res;
}

test('consume --until-end stops at the end, with or without --count', T, async (t) => {
  const srv = await startServer(t);
  const S = ['--server', srv.grpcAddr];
  const topic = topicName('until-end');
  await srv.api.createTopic(topic, 3);
  const events = Array.from({ length: 5 }, (_, i) => ev(topic, { key: `k${i}`, data: `r${i}` }));
  await srv.api.publishBatch(events);

  // --count above the record count: exactly the records, then exit 0.
  let args = ['consume', '--topic', topic, '--count', '10', '--until-end', ...S];
  let r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  assertExactlyOnce(lines(r.stdout), events);

  // --count below it: --count wins.
  args = ['consume', '--topic', topic, '--count', '3', '--until-end', ...S];
  r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  assert.equal(lines(r.stdout).length, 3);

  // One partition, and starts that are already at the end.
  const p = lines((await runCli(['consume', '--topic', topic, '--count', '1', ...S])).stdout)[0].partition;
  const inP = (await srv.api.endOffsets(topic))[p];
  args = ['consume', '--topic', topic, '--partition', String(p), '--until-end', ...S];
  r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  assert.equal(lines(r.stdout).length, inP);
  assert.ok(lines(r.stdout).every((l) => l.partition === p));
  for (const from of ['latest', 'time:2100-01-01T00:00:00Z', 'offset:99']) {
    args = ['consume', '--topic', topic, '--from', from, '--until-end', ...S];
    r = await runCli(args, { timeoutMs: 20000 });
    assert.equal(r.code, 0, describeRun(args, r));
    assert.equal(r.stdout, '', from);
  }
  args = ['consume', '--topic', topic, '--from', 'time:2000-01-01T00:00:00Z', '--until-end', ...S];
  r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  assertExactlyOnce(lines(r.stdout), events);

  // An empty topic exits at once.
  const empty = topicName('until-end-empty');
  await srv.api.createTopic(empty, 4);
  args = ['consume', '--topic', empty, '--until-end', ...S];
  r = await runCli(args, { timeoutMs: 10000 });
  assert.equal(r.code, 0, describeRun(args, r));
  assert.equal(r.stdout, '');
});

test('consume --until-end in a group commits what it printed; the next run starts there', T, async (t) => {
  const srv = await startServer(t);
  const S = ['--server', srv.grpcAddr];
  const topic = topicName('until-end-group');
  await srv.api.createTopic(topic, 3);
  const first = Array.from({ length: 30 }, (_, i) => ev(topic, { key: `k${i}`, data: `a${i}` }));
  await srv.api.publishBatch(first);

  let args = ['consume', '--topic', topic, '--group', 'g', '--until-end', '--max-batch', '4', ...S];
  let r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  assertExactlyOnce(lines(r.stdout), first);
  let g = parseJsonOut(['group', 'get'], await runCli(['group', 'get', 'g', '--topic', topic, '--json', ...S]));
  assert.deepEqual(g.partitions.map((p) => p.committed_offset), await srv.api.endOffsets(topic));

  // At the committed end: exits at once with nothing.
  r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  assert.equal(r.stdout, '');

  const second = Array.from({ length: 7 }, (_, i) => ev(topic, { key: `k${i}`, data: `b${i}` }));
  await srv.api.publishBatch(second);
  r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  assert.deepEqual(lines(r.stdout).map((l) => l.id).sort(), second.map((e) => e.id).sort());

  // A member that shares the topic with another reads only the partitions assigned to it.
  const holder2 = srv.api.subscribe({ topic, group: 'shared', consumer_id: 'a' });
  await holder2.waitFor((s) => s.partitions.length === 3, { what: 'the holder owns every partition' });
  args = ['consume', '--topic', topic, '--group', 'shared', '--consumer-id', 'b', '--until-end', ...S];
  r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  const assigned = JSON.parse(r.stderr.split('\n')[0]).assignment;
  assert.ok(assigned.length >= 1 && assigned.length < 3, r.stderr);
  const ends = await srv.api.endOffsets(topic);
  const got = lines(r.stdout);
  assert.ok(got.every((l) => assigned.includes(l.partition)));
  assert.equal(got.length, assigned.reduce((n, p) => n + ends[p], 0));
  holder2.cancel();

  // A member that gets no partition (the other member has both of a 1-partition topic) is at
  // its end at once.
  const one = topicName('until-end-one');
  await srv.api.createTopic(one, 1);
  await srv.api.publishBatch([ev(one, { data: 'x' })]);
  const holder = srv.api.subscribe({ topic: one, group: 'h', consumer_id: 'a' });
  await holder.waitFor((s) => s.records.length === 1, { what: 'the holder read its record' });
  args = ['consume', '--topic', one, '--group', 'h', '--consumer-id', 'b', '--until-end', ...S];
  r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  holder.cancel();
});

test('consume --until-end in a group exits when the topic grows under it', T, async (t) => {
  const srv = await startServer(t);
  const S = ['--server', srv.grpcAddr];
  const topic = topicName('until-end-grow');
  await srv.api.createTopic(topic, 2);
  const big = 'x'.repeat(2000);
  const published = [];
  for (let b = 0; b < 8; b++) {
    const batch = Array.from({ length: 2000 }, (_, i) => ev(topic, { key: `k${i % 13}`, data: `${b}-${i}-${big}` }));
    await srv.api.publishBatch(batch);
    published.push(...batch);
  }
  // Its stdout held, the member stays mid-topic while the topic grows and the group rebalances
  // onto partitions that did not exist when it started.
  const run = startConsume(['--topic', topic, '--group', 'grow', '--until-end', ...S], { hold: true });
  t.after(() => run.child.kill('SIGKILL'));
  for (let i = 0; i < 400 && !/"assignment":\[0,1\]/.test(run.stderr); i++) await sleep(25);
  assert.match(run.stderr, /"assignment":\[0,1\]/, 'the member joined');
  await srv.api.updateTopic({ name: topic, partitions: 4 });
  run.release();
  const { code } = await waitExit(run, 60000);
  assert.equal(code, 0, run.stderr);
  assert.match(run.stderr, /"assignment":\[0,1,2,3\]/, 'the member was assigned the new partitions');
  assertExactlyOnce(lines(run.stdout), published);
});

test('consume --from offset:N applies per partition, clamping with a note', T, async (t) => {
  const srv = await startServer(t);
  const S = ['--server', srv.grpcAddr];
  const topic = topicName('from-offset');
  await srv.api.createTopic(topic, 2);
  const p = await publishOneKey(srv.api, topic, 3);
  const q = 1 - p;

  let args = ['consume', '--topic', topic, '--from', 'offset:1', '--until-end', ...S];
  let r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  assert.deepEqual(lines(r.stdout).map((l) => [l.partition, l.offset]), [[p, 1], [p, 2]]);
  assert.equal(r.stderr, `nodata: partition ${q} has offsets [0, 0): starting at 0\n`);

  // Past the end everywhere: each partition starts at its end and waits for new records.
  const run = startConsume(['--topic', topic, '--from', 'offset:5', '--count', '2', ...S]);
  while (run.stderr.split('\n').length < 3) await sleep(20);
  await sleep(500); // subscribed
  await publishOneKey(srv.api, topic, 2);
  const res = await waitExit(run);
  assert.equal(res.code, 0, run.stderr);
  assert.deepEqual(lines(run.stdout).map((l) => [l.partition, l.offset]), [[p, 3], [p, 4]]);
  assert.equal(run.stderr, `nodata: partition ${Math.min(p, q)} has offsets [0, ${p < q ? 3 : 0}): ` +
    `starting at ${p < q ? 3 : 0}\nnodata: partition ${Math.max(p, q)} has offsets [0, ${p > q ? 3 : 0}): ` +
    `starting at ${p > q ? 3 : 0}\n`);
});

test('Subscribe start_offsets and clamp_start', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('start-offsets');
  await srv.api.createTopic(topic, 2);
  const p = await publishOneKey(srv.api, topic, 4);
  const q = 1 - p;

  // Without clamp_start, an offset past a partition's end fails; with it, it starts at the end.
  let sub = srv.api.subscribe({ topic, start: { offset: 1 } });
  let st = await sub.end;
  assert.equal(st.code, Code.OUT_OF_RANGE, st.details);
  sub = srv.api.subscribe({ topic, start: { offset: 1 }, clamp_start: true });
  await sub.waitFor((s) => s.records.length === 3, { what: 'records 1..3' });
  assert.deepEqual(sub.records.map((r) => [r.partition, r.offset]), [[p, 1], [p, 2], [p, 3]]);
  sub.cancel();

  // start_offsets override `start` for the partitions listed.
  sub = srv.api.subscribe({ topic, start: { latest: true }, start_offsets: [{ partition: p, offset: 2 }] });
  await sub.waitFor((s) => s.records.length === 2, { what: 'records 2..3' });
  await srv.api.publishBatch([ev(topic, { key: 'one' })]);
  await sub.waitFor((s) => s.records.length === 3, { what: 'the new record' });
  assert.deepEqual(sub.records.map((r) => [r.partition, r.offset]), [[p, 2], [p, 3], [p, 4]]);
  sub.cancel();

  sub = srv.api.subscribe({ topic, start_offsets: [{ partition: q, offset: 7 }] });
  st = await sub.end;
  assert.equal(st.code, Code.OUT_OF_RANGE, st.details);
  assert.match(st.details, /past the end 0 of partition/);
  sub = srv.api.subscribe({ topic, start_offsets: [{ partition: q, offset: 7 }, { partition: p, offset: 9 }], clamp_start: true });
  await sleep(300);
  assert.equal(sub.records.length, 0, 'both start at their ends');
  await srv.api.publishBatch([ev(topic, { key: 'one' })]);
  await sub.waitFor((s) => s.records.length === 1, { what: 'the new record' });
  assert.deepEqual(sub.records.map((r) => [r.partition, r.offset]), [[p, 5]]);
  sub.cancel();

  for (const [request, re] of [
    [{ topic, group: 'g', start_offsets: [{ partition: p, offset: 0 }] }, /cannot be used in a group/],
    [{ topic, start_offsets: [{ partition: 2, offset: 0 }] }, /has 2 partitions; 2 is out of range/],
    [{ topic, start_offsets: [{ partition: p, offset: 0 }, { partition: p, offset: 1 }] }, /listed twice/],
    [{ topic, partitions: [q], start_offsets: [{ partition: p, offset: 0 }] }, /not one of the partitions read/],
  ]) {
    st = await srv.api.subscribe(request).end;
    assert.equal(st.code, Code.INVALID_ARGUMENT, JSON.stringify(request));
    assert.match(st.details, re);
  }
});

// The server dies (SIGKILL) or stops (SIGTERM) while consume is behind, blocked on its stdout,
// and comes back on the same address and data; more records arrive after the restart.
for (const how of ['kill', 'term']) {
  for (const mode of ['count', 'until-end']) {
    test(`consume resumes after a ${how} restart without printing a record twice (--${mode})`, T, async (t) => {
      const srv = await startServer(t);
      const S = ['--server', srv.grpcAddr];
      const topic = topicName(`resume-${how}`);
      await srv.api.createTopic(topic, 2);
      // Far more than the pipe and gRPC's flow-control windows hold: the stream is mid-topic.
      const before = Array.from({ length: 16000 }, (_, i) => ev(topic, { key: `k${i % 97}`, data: `before ${i} ${'x'.repeat(2000)}` }));
      for (let i = 0; i < before.length; i += 2000) await srv.api.publishBatch(before.slice(i, i + 2000));
      const after = Array.from({ length: 300 }, (_, i) => ev(topic, { key: `k${i % 97}`, data: `after ${i}` }));
      const limit = mode === 'count' ? ['--count', String(before.length + after.length)] : ['--until-end'];
      const run = startConsume(['--topic', topic, '--max-batch', '50', ...limit, ...S], { hold: true });
      await sleep(1500); // consume blocks on its full stdout pipe, mid-topic
      await srv.restart({ how, samePorts: true });
      await srv.api.publishBatch(after);
      run.release();
      const res = await waitExit(run);
      assert.equal(res.code, 0, run.stderr);
      assert.match(run.stderr, /nodata: UNAVAILABLE: .*; reconnecting in \d+ ms/);
      const printed = lines(run.stdout);
      if (mode === 'count') assertExactlyOnce(printed, [...before, ...after]);
      else assertExactlyOnce(printed, before, { extra: after });
    });
  }
}

// A group member that caught up loses the server; it rejoins and goes on from its commits.
for (const how of ['kill', 'term']) {
  test(`consume in a group resumes after a ${how} restart from its committed offsets`, T, async (t) => {
    const srv = await startServer(t);
    const S = ['--server', srv.grpcAddr];
    const topic = topicName(`resume-group-${how}`);
    await srv.api.createTopic(topic, 3);
    const before = Array.from({ length: 100 }, (_, i) => ev(topic, { key: `k${i}`, data: `before ${i}` }));
    await srv.api.publishBatch(before);
    const published = [...before];
    // With --no-commit the member resumes at the group's committed offsets (none here: the
    // earliest) and skips what it printed already.
    for (const commit of [[], ['--no-commit']]) {
      const group = `g${commit.length}`;
      const after = Array.from({ length: 50 }, (_, i) => ev(topic, { key: `k${i}`, data: `after ${group} ${i}` }));
      const run = startConsume(['--topic', topic, '--group', group, '--count', String(published.length + after.length), ...commit, ...S]);
      await run.waitLines(published.length);
      await srv.restart({ how, samePorts: true });
      await srv.api.publishBatch(after);
      published.push(...after);
      const res = await waitExit(run);
      assert.equal(res.code, 0, run.stderr);
      assert.match(run.stderr, /reconnecting in/);
      assertExactlyOnce(lines(run.stdout), published);
      const args = ['group', 'get', group, '--topic', topic, '--json', ...S];
      const r = await runCli(args);
      if (commit.length === 0) {
        const g = parseJsonOut(args, r);
        assert.deepEqual(g.partitions.map((p) => p.committed_offset), await srv.api.endOffsets(topic));
      } else {
        assert.equal(r.code, 1, describeRun(args, r));
        assert.match(r.stderr, /NOT_FOUND/, 'nothing was committed');
      }
    }
  });
}

test('consume fails at once on other errors and gives up on a server that stays away', { timeout: 150000 }, async (t) => {
  // Never reached: no retry.
  const port = await freePort();
  let args = ['consume', '--topic', 'x', '--server', `127.0.0.1:${port}`];
  const began = Date.now();
  let r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /UNAVAILABLE/);
  assert.ok(Date.now() - began < 10000);

  const srv = await startServer(t);
  const S = ['--server', srv.grpcAddr];
  const topic = topicName('gone');
  await srv.api.createTopic(topic, 1);
  await srv.api.publishBatch([ev(topic, { data: 'x' })]);

  // The topic is deleted: NOT_FOUND at once, no reconnecting.
  let run = startConsume(['--topic', topic, ...S]);
  await run.waitLines(1);
  await srv.api.deleteTopic(topic);
  let res = await waitExit(run, 20000);
  assert.equal(res.code, 1);
  assert.match(run.stderr, /NOT_FOUND/);
  assert.doesNotMatch(run.stderr, /reconnecting/);

  // SIGINT while waiting to reconnect ends it cleanly.
  await srv.api.createTopic(topic, 1);
  await srv.api.publishBatch([ev(topic, { data: 'y' })]);
  run = startConsume(['--topic', topic, ...S]);
  await run.waitLines(1);
  await srv.kill();
  await sleep(1000);
  run.child.kill('SIGINT');
  res = await waitExit(run, 10000);
  assert.equal(res.code, 0, run.stderr);
  assert.match(run.stderr, /reconnecting in/);

  // The server stays away: a clear error after 60 s of retrying.
  await srv.start({ samePorts: true });
  run = startConsume(['--topic', topic, ...S]);
  await run.waitLines(1);
  const killed = Date.now();
  await srv.kill();
  res = await waitExit(run, 90000);
  assert.equal(res.code, 1);
  assert.match(run.stderr, /nodata: UNAVAILABLE: .*\(gave up reconnecting after 60 s\)/);
  assert.ok(Date.now() - killed >= 60000);
});
