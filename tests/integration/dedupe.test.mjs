// Dedupe on (topic, id): within a window, across RPCs, inside a batch, across restarts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startServer } from './lib/server.mjs';
import { ev, newId, sleep, sum, topicName } from './lib/util.mjs';

const T = { timeout: 60000 };

function assertDuplicateOf(ack, original, what) {
  assert.equal(ack.duplicate, true, `${what}: duplicate`);
  assert.equal(ack.topic, original.topic, `${what}: topic`);
  assert.equal(ack.id, original.id, `${what}: id`);
  assert.equal(ack.partition, original.partition, `${what}: original partition`);
  assert.equal(ack.offset, original.offset, `${what}: original offset`);
}

async function total(srv, topic) {
  return sum(await srv.api.endOffsets(topic));
}

test('same id twice => duplicate=true with the original partition/offset, nothing stored', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '8'] });
  const topic = topicName('dup');
  const id = newId('dup');
  const first = await srv.api.publish(ev(topic, { id, key: 'key-A', data: 'one' }));
  assert.equal(first.duplicate, false);
  await srv.api.publishBatch(Array.from({ length: 30 }, () => ev(topic)));
  const before = await srv.api.endOffsets(topic);

  // Different key and data: still the same (topic, id).
  assertDuplicateOf(await srv.api.publish(ev(topic, { id, key: 'key-B', data: 'two' })), first, 'Publish');
  assertDuplicateOf(await srv.api.publish(ev(topic, { id })), first, 'Publish without key');
  const batchAcks = await srv.api.publishBatch([ev(topic), ev(topic, { id }), ev(topic)]);
  assertDuplicateOf(batchAcks[1], first, 'PublishBatch');
  assert.equal(batchAcks[0].duplicate, false);
  assert.equal(batchAcks[2].duplicate, false);
  const [streamAcks] = await srv.api.publishStream([[ev(topic, { id })]]);
  assertDuplicateOf(streamAcks[0], first, 'PublishStream');

  const after = await srv.api.endOffsets(topic);
  assert.equal(sum(after), sum(before) + 2, 'only the two fresh events of the batch were stored');

  // The same id on another topic is a different event.
  const other = await srv.api.publish(ev(topicName('dup-other'), { id }));
  assert.equal(other.duplicate, false, 'dedupe is per topic');
});

test('same id twice inside one batch: the second ack is a duplicate of the first', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('dup-inbatch');
  const id = newId();
  const acks = await srv.api.publishBatch([ev(topic, { id }), ev(topic), ev(topic, { id })]);
  assert.equal(acks[0].duplicate, false);
  assertDuplicateOf(acks[2], acks[0], 'second copy in the same batch');
  assert.equal(await total(srv, topic), 2);

  // Same inside one stream, across two pipelined requests.
  const id2 = newId();
  const res = await srv.api.publishStream([[ev(topic, { id: id2 })], [ev(topic, { id: id2 })]]);
  assert.equal(res[0][0].duplicate, false);
  assertDuplicateOf(res[1][0], res[0][0], 'second copy in the next stream request');
  assert.equal(await total(srv, topic), 3);
});

for (const how of ['term', 'kill']) {
  test(`dedupe survives a ${how === 'term' ? 'SIGTERM' : 'SIGKILL'} restart`, T, async (t) => {
    const srv = await startServer(t);
    const topic = topicName(`dup-${how}`);
    const events = Array.from({ length: 200 }, (_, i) => ev(topic, i % 2 ? { key: `k${i % 13}` } : {}));
    const acks = await srv.api.publishBatch(events);
    const singleEvent = ev(topic);
    const single = await srv.api.publish(singleEvent);
    const endsBefore = await srv.api.endOffsets(topic);

    await srv.restart({ how });
    assert.deepEqual(await srv.api.endOffsets(topic), endsBefore, 'end offsets after restart');
    const again = await srv.api.publishBatch(events);
    again.forEach((a, i) => assertDuplicateOf(a, acks[i], `event ${i} after restart`));
    assertDuplicateOf(await srv.api.publish(singleEvent), single, 'single after restart');
    assert.deepEqual(await srv.api.endOffsets(topic), endsBefore, 'duplicates stored nothing');

    // And once more, through a second restart of the other kind.
    await srv.restart({ how: how === 'term' ? 'kill' : 'term' });
    const [res] = await srv.api.publishStream([events.slice(0, 50)]);
    res.forEach((a, i) => assertDuplicateOf(a, acks[i], `event ${i} after second restart`));
  });
}

test('--dedupe-window-ms: after the window the same id is stored again', T, async (t) => {
  const windowMs = 500;
  const srv = await startServer(t, { args: ['--dedupe-window-ms', String(windowMs), '--default-partitions', '1'] });
  const topic = topicName('dup-window');
  const id = newId();
  const t0 = Date.now();
  const first = await srv.api.publish(ev(topic, { id }));
  const second = await srv.api.publish(ev(topic, { id }));
  const elapsed = Date.now() - t0;
  assert.ok(elapsed < windowMs, `test machine too slow: two publishes took ${elapsed} ms >= window ${windowMs} ms`);
  assertDuplicateOf(second, first, 'inside the window');

  await sleep(windowMs * 2 + 200);
  const third = await srv.api.publish(ev(topic, { id }));
  assert.equal(third.duplicate, false, 'after the window the id is new again');
  assert.equal(third.partition, first.partition);
  assert.equal(third.offset, first.offset + 1, 'stored again at the next offset');
  assert.equal(await total(srv, topic), 2);

  // The re-stored event starts a new window.
  assertDuplicateOf(await srv.api.publish(ev(topic, { id })), third, 'right after being stored again');
});

test('--dedupe-max-ids: the oldest ids are forgotten, the newest remembered', T, async (t) => {
  const srv = await startServer(t, { args: ['--dedupe-max-ids', '100', '--default-partitions', '1'] });
  const topic = topicName('dup-maxids');
  const events = Array.from({ length: 300 }, () => ev(topic));
  const acks = [];
  for (let i = 0; i < events.length; i += 50) acks.push(...(await srv.api.publishBatch(events.slice(i, i + 50))));
  assertDuplicateOf(await srv.api.publish(events[299]), acks[299], 'the newest id');
  const oldest = await srv.api.publish(events[0]);
  assert.equal(oldest.duplicate, false, 'with --dedupe-max-ids 100 the first of 300 ids is forgotten and stored again');
  assert.equal(oldest.offset, 300);
});
