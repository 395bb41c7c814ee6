// SubscribeRequest.start_offsets and clamp_start over gRPC.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Code } from './lib/grpc.mjs';
import { startServer } from './lib/server.mjs';
import { ev, sleep, topicName } from './lib/util.mjs';

const T = { timeout: 180000 };

/** Records that all went to one partition (one key); returns that partition. */
async function publishOneKey(api, topic, n, key = 'one') {
  const acks = await api.publishBatch(Array.from({ length: n }, (_, i) => ev(topic, { key, data: `r${i}` })));
  assert.ok(acks.every((a) => a.partition === acks[0].partition));
  return acks[0].partition;
}

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
