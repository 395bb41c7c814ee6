// Size and count limits: exact status codes, boundaries, stored data untouched, server still up.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Code, expectStatus } from './lib/grpc.mjs';
import { startServer } from './lib/server.mjs';
import { ev, newId, topicName } from './lib/util.mjs';

const T = { timeout: 60000 };


/**
 * An event of exactly `size` bytes as the server measures one (README: the bytes of its topic,
 * id, key, data and header names and values), with a key and a header so every part counts.
 */
function eventOfSize(topic, size) {
  const id = newId('sz');
  const key = 'k-1';
  const headers = { h: 'v1' };
  const fixed = Buffer.byteLength(topic) + Buffer.byteLength(id) + key.length + 1 + 2;
  return { topic, id, key: Buffer.from(key), headers, data: Buffer.alloc(size - fixed, 0x61) };
}

async function baseline(srv) {
  const topic = topicName('base');
  await srv.api.publishBatch(Array.from({ length: 8 }, () => ev(topic)));
  const ends = await srv.api.endOffsets(topic);
  return async (what) => {
    srv.assertNoCrash();
    assert.deepEqual(await srv.api.endOffsets(topic), ends, `${what}: stored data unchanged`);
  };
}

test('--max-event-bytes: events over the limit are INVALID_ARGUMENT on every publish RPC', T, async (t) => {
  const max = 1024;
  const srv = await startServer(t, { args: ['--max-event-bytes', String(max)] });
  const intact = await baseline(srv);
  const topic = topicName('evsize');
  await srv.api.createTopic(topic, 1);
  assert.equal((await srv.api.publish(ev(topic, { data: 'x'.repeat(500) }))).offset, 0);
  const ends = await srv.api.endOffsets(topic);

  const big = () => ev(topic, { data: 'x'.repeat(2 * max) });
  await expectStatus(srv.api.publish(big()), Code.INVALID_ARGUMENT, `Publish ${2 * max} bytes of data`);
  await expectStatus(srv.api.publish(ev(topic, { data: 'x'.repeat(64 * 1024) })), Code.INVALID_ARGUMENT, 'Publish 64 KiB');
  await expectStatus(srv.api.publishBatch([ev(topic), big(), ev(topic)]), Code.INVALID_ARGUMENT, 'PublishBatch containing one oversized event');
  await expectStatus(srv.api.publishStream([[big()]]), Code.INVALID_ARGUMENT, 'PublishStream with an oversized event');
  // Keys and headers count toward the size.
  await expectStatus(
    srv.api.publish({ topic, id: newId(), key: Buffer.alloc(600), headers: { h: 'v'.repeat(600) } }),
    Code.INVALID_ARGUMENT,
    'Publish whose key+headers exceed the limit',
  );
  assert.deepEqual(await srv.api.endOffsets(topic), ends, 'nothing from the rejected calls was stored');
  await intact('after oversized events');
  assert.equal((await srv.api.publish(ev(topic))).offset, 1, 'the next event continues at offset 1');
});

test('--max-event-bytes counts topic, id, key, data and headers: exactly at the limit ok, one byte over rejected', T, async (t) => {
  const max = 1024;
  const srv = await startServer(t, { args: ['--max-event-bytes', String(max)] });
  const topic = topicName('evsize-exact');
  await srv.api.createTopic(topic, 1);
  const ok = await srv.api.publish(eventOfSize(topic, max));
  assert.equal(ok.offset, 0, `an event of exactly ${max} bytes is accepted`);
  await expectStatus(srv.api.publish(eventOfSize(topic, max + 1)), Code.INVALID_ARGUMENT, `Publish of ${max + 1} bytes`);
  assert.equal((await srv.api.getTopic(topic)).partitions[0].end_offset, 1);
});

test('--max-batch-events: over => INVALID_ARGUMENT, at the limit => stored; empty batch => INVALID_ARGUMENT', T, async (t) => {
  const srv = await startServer(t, { args: ['--max-batch-events', '10'] });
  const intact = await baseline(srv);
  const topic = topicName('batchsize');
  const ten = await srv.api.publishBatch(Array.from({ length: 10 }, () => ev(topic)));
  assert.equal(ten.length, 10, 'a batch of exactly --max-batch-events is accepted');
  const ends = await srv.api.endOffsets(topic);

  await expectStatus(srv.api.publishBatch(Array.from({ length: 11 }, () => ev(topic))), Code.INVALID_ARGUMENT, 'PublishBatch of 11');
  await expectStatus(srv.api.publishBatch([]), Code.INVALID_ARGUMENT, 'empty PublishBatch');
  await expectStatus(
    srv.api.publishStream([Array.from({ length: 11 }, () => ev(topic))]),
    Code.INVALID_ARGUMENT,
    'PublishStream request of 11 events',
  );
  await expectStatus(srv.api.publishStream([[]]), Code.INVALID_ARGUMENT, 'PublishStream empty request');
  assert.deepEqual(await srv.api.endOffsets(topic), ends, 'nothing from the rejected batches was stored');
  await intact('after oversized / empty batches');

  // A stream whose second request is bad: the first is answered, then the stream fails.
  const s = srv.api.stream();
  const good = [ev(topic), ev(topic)];
  s.write({ events: good });
  await s.waitFor(1);
  s.write({ events: Array.from({ length: 11 }, () => ev(topic)) });
  await expectStatus(s.finish(), Code.INVALID_ARGUMENT, 'stream after a bad request');
  assert.equal(s.responses.length, 1, 'the good request was answered');
  assert.equal(s.responses[0].acks.length, 2);
  assert.equal((await srv.api.publishBatch([ev(topic)])).length, 1, 'server still accepts batches');
});

test('--max-batch-bytes: a batch over it is rejected (INVALID_ARGUMENT or RESOURCE_EXHAUSTED)', T, async (t) => {
  const srv = await startServer(t, { args: ['--max-batch-bytes', '65536'] });
  const intact = await baseline(srv);
  const topic = topicName('batchbytes');
  const small = await srv.api.publishBatch(Array.from({ length: 10 }, () => ev(topic, { data: 'y'.repeat(1000) })));
  assert.equal(small.length, 10);
  const ends = await srv.api.endOffsets(topic);
  const big = Array.from({ length: 40 }, () => ev(topic, { data: 'z'.repeat(4000) })); // ~160 KB
  let err;
  try {
    await srv.api.publishBatch(big);
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'a 160 KB batch with --max-batch-bytes 65536 must be rejected');
  assert.ok(
    [Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED].includes(err.code),
    `expected INVALID_ARGUMENT or RESOURCE_EXHAUSTED, got code ${err.code}: ${err.details}`,
  );
  assert.deepEqual(await srv.api.endOffsets(topic), ends, 'nothing from the rejected batch was stored');
  await intact('after an oversized batch');
});

test('--max-partitions: CreateTopic over it => INVALID_ARGUMENT, at it => created', T, async (t) => {
  const srv = await startServer(t, { args: ['--max-partitions', '8'] });
  const intact = await baseline(srv);
  const over = topicName('parts-over');
  await expectStatus(srv.api.createTopic(over, 9), Code.INVALID_ARGUMENT, 'CreateTopic partitions=9 (max 8)');
  await expectStatus(srv.api.createTopic(over, 100000), Code.INVALID_ARGUMENT, 'CreateTopic partitions=100000');
  await expectStatus(srv.api.getTopic(over), Code.NOT_FOUND, 'the rejected topic does not exist');
  const at = await srv.api.createTopic(topicName('parts-at'), 8);
  assert.equal(at.partition_count, 8);
  await intact('after too many partitions');
});
