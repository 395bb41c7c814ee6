// Partition routing by key / id, server-assigned ids, event timestamps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startServer } from './lib/server.mjs';
import { assertDense, ev, newId, topicName } from './lib/util.mjs';

const T = { timeout: 60000 };

test('same key => same partition, whichever RPC carries it; keys spread over partitions', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('keys');
  await srv.api.createTopic(topic, 8);
  const keys = Array.from({ length: 24 }, (_, i) => `user-${i}`);
  const partitionOf = new Map();
  const record = (ack, key) => {
    if (!partitionOf.has(key)) partitionOf.set(key, ack.partition);
    assert.equal(ack.partition, partitionOf.get(key), `key ${key} must always map to partition ${partitionOf.get(key)}`);
    assert.ok(ack.partition < 8);
  };
  for (const key of keys) record(await srv.api.publish(ev(topic, { key })), key);
  const batch = keys.flatMap((key) => [ev(topic, { key }), ev(topic, { key })]);
  (await srv.api.publishBatch(batch)).forEach((a, i) => record(a, batch[i].key.toString()));
  const reqs = [keys.map((key) => ev(topic, { key })), keys.map((key) => ev(topic, { key }))];
  const res = await srv.api.publishStream(reqs);
  res.forEach((acks, r) => acks.forEach((a, i) => record(a, reqs[r][i].key.toString())));
  const used = new Set(partitionOf.values());
  assert.ok(used.size >= 3, `24 distinct keys over 8 partitions should use several partitions, used ${[...used]}`);
});

test('empty key: partition from a hash of the id (stable, spread, same for same id)', T, async (t) => {
  const srv = await startServer(t);
  const [a, b] = [topicName('idhash-a'), topicName('idhash-b')];
  await srv.api.createTopic(a, 8);
  await srv.api.createTopic(b, 8);
  const ids = Array.from({ length: 40 }, () => newId('h'));
  const acksA = await srv.api.publishBatch(ids.map((id) => ev(a, { id })));
  const acksB = await srv.api.publishBatch(ids.map((id) => ev(b, { id })));
  const used = new Set(acksA.map((x) => x.partition));
  assert.ok(used.size >= 3, `40 ids over 8 partitions should use several partitions, used ${[...used]}`);
  ids.forEach((id, i) =>
    assert.equal(acksB[i].partition, acksA[i].partition, `id ${id}: same id, same partition count => same partition`),
  );
});

test('empty id => the server assigns unique ids, returned in the ack and usable for dedupe', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('noid');
  const withoutId = () => ({ topic, data: Buffer.from('x') });
  const acks = [];
  for (let i = 0; i < 20; i++) acks.push(await srv.api.publish(withoutId()));
  const batch = Array.from({ length: 100 }, withoutId);
  acks.push(...(await srv.api.publishBatch(batch)));
  const reqs = [Array.from({ length: 30 }, withoutId), Array.from({ length: 30 }, withoutId)];
  acks.push(...(await srv.api.publishStream(reqs)).flat());
  for (const a of acks) {
    assert.equal(typeof a.id, 'string');
    assert.ok(a.id.length > 0, 'ack carries the server-assigned id');
    assert.equal(a.duplicate, false, 'events without id are never duplicates');
  }
  assert.equal(new Set(acks.map((a) => a.id)).size, acks.length, 'server-assigned ids are unique');
  assertDense(acks, 'no-id acks');
});

test('a server-assigned id is the event id: publishing it again is a duplicate', T, async (t) => {
  // The contract: duplicate=true when (topic, id) was seen; Ack.id is "the event id (the
  // server-assigned one when the event had none)". So the stored event has that id.
  const srv = await startServer(t);
  const topic = topicName('noid-dedupe');
  const first = await srv.api.publish({ topic, data: Buffer.from('x') });
  assert.ok(first.id.length > 0);
  const again = await srv.api.publish({ topic, id: first.id, data: Buffer.from('x') });
  assert.equal(again.duplicate, true, `republishing assigned id ${first.id} must be a duplicate, got ${JSON.stringify(again)}`);
  assert.equal(again.partition, first.partition);
  assert.equal(again.offset, first.offset);
});

test('timestamps: unset, past, future, with nanos; headers; empty and binary data all accepted', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('ts');
  const now = Math.floor(Date.now() / 1000);
  const events = [
    ev(topic),
    ev(topic, { timestamp: { seconds: now, nanos: 123456789 } }),
    ev(topic, { timestamp: { seconds: 1, nanos: 0 } }),
    ev(topic, { timestamp: { seconds: 4102444800, nanos: 999999999 } }), // 2100-01-01
    ev(topic, { headers: { 'content-type': 'application/json', trace: 'abc' } }),
    { topic, id: newId(), data: Buffer.alloc(0) },
    { topic, id: newId(), data: Buffer.from([0, 255, 0, 10, 13, 0]) },
  ];
  for (const e of events) {
    const ack = await srv.api.publish(e);
    assert.equal(ack.id, e.id);
    assert.equal(ack.duplicate, false);
  }
  const acks = await srv.api.publishBatch(events.map((e) => ({ ...e, id: newId() })));
  assert.equal(acks.length, events.length);
  const info = await srv.api.getTopic(topic);
  assert.equal(info.partitions.reduce((s, p) => s + p.record_count, 0), events.length * 2);
});
