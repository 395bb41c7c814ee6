// TopicService over real gRPC: CreateTopic, GetTopic, ListTopics, DeleteTopic.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Code, expectStatus } from './lib/grpc.mjs';
import { startServer } from './lib/server.mjs';
import { assertDense, ev, expectedEnds, newId, topicName } from './lib/util.mjs';

const T = { timeout: 60000 };

test('CreateTopic returns the new empty topic; 0 partitions means --default-partitions', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '5'] });
  const name = topicName('create');
  const t0 = Date.now() / 1000;
  const topic = await srv.api.createTopic(name, 3);
  assert.equal(topic.name, name);
  assert.equal(topic.partition_count, 3);
  assert.deepEqual(topic.partitions.map((p) => p.partition).sort(), [0, 1, 2]);
  for (const p of topic.partitions) {
    assert.equal(p.start_offset, 0);
    assert.equal(p.end_offset, 0);
    assert.equal(p.record_count, 0);
  }
  assert.ok(topic.created_at, 'created_at is set');
  assert.ok(Math.abs(topic.created_at.seconds - t0) < 120, `created_at ${topic.created_at.seconds} is about now (${t0})`);

  const dflt = await srv.api.createTopic(topicName('create-default'), 0);
  assert.equal(dflt.partition_count, 5);
  assert.equal(dflt.partitions.length, 5);

  const got = await srv.api.getTopic(name);
  assert.equal(got.name, name);
  assert.equal(got.partition_count, 3);
  assert.equal(got.created_at.seconds, topic.created_at.seconds);

  // Publishing to an explicitly created topic uses its partition count, not the default.
  const acks = await srv.api.publishBatch(Array.from({ length: 60 }, () => ev(name)));
  for (const a of acks) assert.ok(a.partition < 3, `partition ${a.partition} < 3`);
});

test('GetTopic end_offset / record_count / bytes_on_disk follow publishes', T, async (t) => {
  const srv = await startServer(t);
  const name = topicName('get');
  await srv.api.createTopic(name, 4);
  const all = [];
  for (let round = 1; round <= 3; round++) {
    all.push(...(await srv.api.publishBatch(Array.from({ length: 40 * round }, (_, i) => ev(name, { key: `k${i}` })))));
    const counts = assertDense(all, `after round ${round}`);
    const want = expectedEnds(counts.get(name), 4);
    const info = await srv.api.getTopic(name);
    for (const p of info.partitions) {
      assert.equal(p.end_offset, want[p.partition], `round ${round} partition ${p.partition} end_offset`);
      assert.equal(p.record_count, want[p.partition], `round ${round} partition ${p.partition} record_count`);
      assert.equal(p.start_offset, 0);
      if (want[p.partition] > 0) {
        assert.ok(p.bytes_on_disk > 0, `partition ${p.partition} bytes_on_disk`);
        assert.ok(p.segment_count >= 1, `partition ${p.partition} segment_count`);
      }
    }
  }
});

test('ListTopics lists created and auto-created topics, not deleted ones', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '2'] });
  const names = [topicName('list'), topicName('list'), topicName('list')];
  await srv.api.createTopic(names[0], 1);
  await srv.api.createTopic(names[1], 6);
  await srv.api.publish(ev(names[2])); // auto-created
  let topics = await srv.api.listTopics();
  const byName = new Map(topics.map((x) => [x.name, x]));
  assert.equal(byName.get(names[0])?.partition_count, 1, `${names[0]} listed with 1 partition`);
  assert.equal(byName.get(names[1])?.partition_count, 6, `${names[1]} listed with 6 partitions`);
  assert.equal(byName.get(names[2])?.partition_count, 2, `${names[2]} (auto-created) listed with 2 partitions`);
  assert.equal(topics.length, 3, `exactly the 3 topics: ${topics.map((x) => x.name)}`);

  await srv.api.deleteTopic(names[1]);
  topics = await srv.api.listTopics();
  assert.deepEqual(topics.map((x) => x.name).sort(), [names[0], names[2]].sort());
});

test('DeleteTopic removes the topic and its data dir; publishing again recreates it from offset 0', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '2'] });
  const name = topicName('del');
  const keepName = topicName('del-keep');
  await srv.api.createTopic(name, 2);
  const oldAcks = await srv.api.publishBatch(Array.from({ length: 50 }, () => ev(name)));
  await srv.api.publishBatch(Array.from({ length: 10 }, () => ev(keepName)));
  const keepEnds = await srv.api.endOffsets(keepName);
  const topicDir = path.join(srv.dataDir, 'log', name);
  assert.ok(fs.existsSync(topicDir), `before delete: ${topicDir} exists (contract: DIR/log/<topic>/<partition>/)`);

  await srv.api.deleteTopic(name);
  assert.ok(!fs.existsSync(topicDir), `after DeleteTopic ${topicDir} must be gone`);
  await expectStatus(srv.api.getTopic(name), Code.NOT_FOUND, 'GetTopic after delete');
  await expectStatus(srv.api.deleteTopic(name), Code.NOT_FOUND, 'second DeleteTopic');
  assert.deepEqual(await srv.api.endOffsets(keepName), keepEnds, 'other topics untouched');

  // Auto-create on publish: a brand-new topic, offsets from 0, default partition count.
  const fresh = await srv.api.publishBatch(Array.from({ length: 20 }, () => ev(name)));
  const counts = assertDense(fresh, 'after recreate');
  const info = await srv.api.getTopic(name);
  assert.equal(info.partition_count, 2);
  assert.deepEqual(await srv.api.endOffsets(name), expectedEnds(counts.get(name), 2));

  // Deleted data is gone, so its ids are not duplicates any more.
  const reused = await srv.api.publish(ev(name, { id: oldAcks[0].id }));
  assert.equal(reused.duplicate, false, 'an id of a deleted topic is new in the recreated topic');

  // Delete, then CreateTopic explicitly with another partition count.
  await srv.api.deleteTopic(name);
  const again = await srv.api.createTopic(name, 3);
  assert.equal(again.partition_count, 3);
  for (const p of again.partitions) assert.equal(p.end_offset, 0);
  const ack = await srv.api.publish(ev(name, { id: newId() }));
  assert.equal(ack.offset, 0);

  // Survives a restart in that state.
  await srv.restart({ how: 'term' });
  assert.equal((await srv.api.getTopic(name)).partition_count, 3);
  assert.deepEqual(await srv.api.endOffsets(keepName), keepEnds);
});
