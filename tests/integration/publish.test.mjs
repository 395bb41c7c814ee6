// IngestService over real gRPC: Publish, PublishBatch, PublishStream, ordering and dense offsets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startServer } from './lib/server.mjs';
import { assertAcksMatch, assertDense, assertOrdered, ev, expectedEnds, sum, topicName } from './lib/util.mjs';

const T = { timeout: 60000 };

test('Publish stores one event and GetTopic follows', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '4'] });
  const topic = topicName('pub');
  const e = ev(topic, { id: 'first-event', key: 'k1', headers: { a: 'b' } });
  const ack = await srv.api.publish(e);
  assert.equal(ack.topic, topic);
  assert.equal(ack.id, 'first-event');
  assert.equal(ack.duplicate, false);
  assert.equal(ack.offset, 0, 'first event of a fresh partition gets offset 0');
  assert.ok(ack.partition < 4, `partition ${ack.partition} < 4`);

  const info = await srv.api.getTopic(topic);
  assert.equal(info.name, topic);
  assert.equal(info.partition_count, 4, 'auto-created topic has --default-partitions partitions');
  assert.equal(info.partitions.length, 4);
  for (const p of info.partitions) {
    const want = p.partition === ack.partition ? 1 : 0;
    assert.equal(p.end_offset, want, `partition ${p.partition} end_offset`);
    assert.equal(p.record_count, want, `partition ${p.partition} record_count`);
    assert.equal(p.start_offset, 0);
    if (want) assert.ok(p.bytes_on_disk > 0, 'bytes_on_disk > 0 for a partition holding an event');
  }

  // A second event on the same key lands on the same partition, next offset.
  const ack2 = await srv.api.publish(ev(topic, { key: 'k1' }));
  assert.equal(ack2.partition, ack.partition);
  assert.equal(ack2.offset, 1);
});

test('PublishBatch spanning topics: acks in request order, offsets dense from 0 per partition', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '3'] });
  const topics = [topicName('batch-a'), topicName('batch-b'), topicName('batch-c')];
  const mk = (n, round) =>
    Array.from({ length: n }, (_, i) =>
      ev(topics[(i * 7 + round) % 3], i % 4 === 0 ? {} : { key: `key-${i % 11}` }),
    );
  const batch1 = mk(300, 0);
  const acks1 = await srv.api.publishBatch(batch1);
  assertAcksMatch(batch1, acks1, 'batch1');
  assertDense(acks1, 'batch1');
  assertOrdered(acks1, 'batch1');

  const batch2 = mk(150, 1);
  const acks2 = await srv.api.publishBatch(batch2);
  assertAcksMatch(batch2, acks2, 'batch2');
  const counts = assertDense([...acks1, ...acks2], 'batch1+batch2');
  assertOrdered([...acks1, ...acks2], 'batch1 then batch2');

  for (const topic of topics) {
    const ends = await srv.api.endOffsets(topic);
    assert.deepEqual(ends, expectedEnds(counts.get(topic), 3), `GetTopic(${topic}) end offsets`);
    const info = await srv.api.getTopic(topic);
    assert.equal(
      sum(info.partitions.map((p) => p.record_count)),
      [...batch1, ...batch2].filter((e) => e.topic === topic).length,
      `GetTopic(${topic}) record_count total`,
    );
  }
});

test('PublishStream: pipelined requests, each answered in order before the client half-closes', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '2'] });
  const topics = [topicName('stream-a'), topicName('stream-b')];
  const s = srv.api.stream();
  const requests = [];
  for (let r = 0; r < 8; r++) {
    const events = Array.from({ length: 1 + r * 5 }, (_, i) => ev(topics[(i + r) % 2], { key: `k${i % 5}` }));
    requests.push(events);
    s.write({ events }); // all written before any response is read
  }
  const early = await s.waitFor(8); // the stream is still open for writing
  const all = await s.finish();
  assert.equal(all.length, 8, 'exactly one response per request');
  assert.deepEqual(early, all);
  const acks = [];
  requests.forEach((events, i) => {
    assertAcksMatch(events, all[i].acks, `response ${i}`);
    assertOrdered(all[i].acks, `response ${i}`);
    acks.push(...all[i].acks);
  });
  const counts = assertDense(acks, 'stream acks');
  for (const topic of topics) {
    assert.deepEqual(await srv.api.endOffsets(topic), expectedEnds(counts.get(topic), 2), `GetTopic(${topic})`);
  }

  // Many requests written and half-closed at once.
  const reqs2 = Array.from({ length: 25 }, (_, r) => Array.from({ length: 10 }, () => ev(topics[r % 2])));
  const res2 = await srv.api.publishStream(reqs2);
  assert.equal(res2.length, 25, 'one response per request');
  reqs2.forEach((events, i) => assertAcksMatch(events, res2[i], `second stream response ${i}`));
  assertDense([...acks, ...res2.flat()], 'both streams');
});

test('mixing Publish, PublishBatch and PublishStream on one topic keeps offsets dense', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '4'] });
  const topic = topicName('mixed');
  const acks = [];
  for (let round = 0; round < 3; round++) {
    acks.push(await srv.api.publish(ev(topic)));
    acks.push(...(await srv.api.publishBatch(Array.from({ length: 20 }, () => ev(topic)))));
    acks.push(...(await srv.api.publishStream([[ev(topic), ev(topic)], [ev(topic)]])).flat());
  }
  const counts = assertDense(acks, 'mixed');
  assert.deepEqual(await srv.api.endOffsets(topic), expectedEnds(counts.get(topic), 4));
});

test('PublishStream stores pipelined requests in request order (offsets increase across requests)', T, async (t) => {
  // Not spelled out by the contract, but what a log promises a single producer: events sent in
  // order on one stream are stored in that order, as they are within one PublishBatch.
  const srv = await startServer(t, { args: ['--default-partitions', '2'] });
  const topics = [topicName('stream-order-a'), topicName('stream-order-b')];
  for (let round = 0; round < 3; round++) {
    const requests = Array.from({ length: 16 }, (_, r) =>
      Array.from({ length: 1 + ((r * 7) % 40) }, (_, i) => ev(topics[(i + r) % 2], { key: `k${i % 5}` })),
    );
    const acks = (await srv.api.publishStream(requests)).flat();
    assertOrdered(acks, `round ${round}: one PublishStream, 16 pipelined requests`);
  }
});

test('PublishStream: a bad request ends the stream with its status; pipelined requests after it are not stored', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '1'] });
  const topic = topicName('stream-error');
  const s = srv.api.stream();
  s.write({ events: [ev(topic), ev(topic)] });
  s.write({ events: [ev(topic), ev('bad/name')] }); // INVALID_ARGUMENT
  for (let i = 0; i < 8; i++) s.write({ events: [ev(topic)] });
  s.call.end();
  const status = await s.status;
  assert.equal(status.code, 3, `stream status ${JSON.stringify(status)}`); // INVALID_ARGUMENT
  assert.match(status.details, /bad\/name|character/);
  assert.ok(s.responses.length <= 1, `at most the first request was answered, got ${s.responses.length}`);
  // Only the first request's events may be stored: the failing request stores nothing and the
  // ones queued behind it are dropped, so a client that retries them cannot double-store id-less events.
  const [end] = await srv.api.endOffsets(topic);
  assert.ok(end <= 2, `end offset ${end}: requests after the failing one must not be stored`);
  if (s.responses.length === 1) assert.equal(end, 2, 'the answered first request is stored');
});
