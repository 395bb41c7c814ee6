// Restarts on the same data dir: topics kept, offsets continue (no reuse), ids stay unique.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startServer } from './lib/server.mjs';
import { assertDense, ev, expectedEnds, topicName } from './lib/util.mjs';

const T = { timeout: 90000 };

for (const how of ['term', 'kill']) {
  const sig = how === 'term' ? 'SIGTERM' : 'SIGKILL';

  test(`${sig} restart keeps topics and offsets; new events continue after the old end offsets`, T, async (t) => {
    // Small segments so the partitions span several segment files.
    const srv = await startServer(t, { args: ['--segment-bytes', '8192'] });
    const a = topicName(`restart-${how}-a`);
    const b = topicName(`restart-${how}-b`);
    await srv.api.createTopic(a, 3);
    await srv.api.createTopic(b, 1);
    const acks = [];
    for (let i = 0; i < 5; i++) {
      acks.push(...(await srv.api.publishBatch(Array.from({ length: 80 }, (_, j) => ev(j % 2 ? a : b, { data: 'd'.repeat(100) })))));
    }
    acks.push(...(await srv.api.publishStream([[ev(a), ev(b)], [ev(a)]])).flat());
    let counts = assertDense(acks, 'before restart');
    const infoB = await srv.api.getTopic(b);
    assert.ok(infoB.partitions[0].segment_count > 1, `with --segment-bytes 8192, ~25 KB in one partition spans several segments (got ${infoB.partitions[0].segment_count})`);
    const before = { a: await srv.api.getTopic(a), b: infoB };

    await srv.restart({ how });

    const names = (await srv.api.listTopics()).map((x) => x.name).sort();
    assert.deepEqual(names, [a, b].sort(), 'topics listed after restart');
    for (const [k, name] of [['a', a], ['b', b]]) {
      const now = await srv.api.getTopic(name);
      assert.equal(now.partition_count, before[k].partition_count, `${name} partition_count`);
      assert.equal(now.created_at.seconds, before[k].created_at.seconds, `${name} created_at`);
      const key = (p) => [p.partition, p.start_offset, p.end_offset, p.record_count];
      assert.deepEqual(now.partitions.map(key), before[k].partitions.map(key), `${name} partitions after ${sig} restart`);
    }

    // Offsets continue where they were: dense over old + new acks means no reuse and no gap.
    for (let round = 0; round < 2; round++) {
      acks.push(await srv.api.publish(ev(a)));
      acks.push(...(await srv.api.publishBatch(Array.from({ length: 30 }, (_, j) => ev(j % 3 ? a : b)))));
      acks.push(...(await srv.api.publishStream([[ev(b)], [ev(a), ev(a)]])).flat());
      counts = assertDense(acks, `after ${sig} restart, round ${round}`);
      if (round === 0) await srv.restart({ how });
    }
    assert.deepEqual(await srv.api.endOffsets(a), expectedEnds(counts.get(a), 3));
    assert.deepEqual(await srv.api.endOffsets(b), expectedEnds(counts.get(b), 1));
  });

  test(`${sig} restart: server-assigned ids stay unique and key routing is stable`, T, async (t) => {
    const srv = await startServer(t);
    const topic = topicName(`ids-${how}`);
    await srv.api.createTopic(topic, 8);
    const noId = () => ({ topic, data: Buffer.from('n') });
    const keyed = Array.from({ length: 16 }, (_, i) => ev(topic, { key: `key-${i}` }));
    const acks = [...(await srv.api.publishBatch(Array.from({ length: 50 }, noId)))];
    const keyedBefore = await srv.api.publishBatch(keyed);
    await srv.restart({ how });
    acks.push(...(await srv.api.publishBatch(Array.from({ length: 50 }, noId))));
    acks.push(await srv.api.publish(noId()));
    await srv.restart({ how });
    acks.push(...(await srv.api.publishBatch(Array.from({ length: 50 }, noId))));
    for (const a of acks) assert.equal(a.duplicate, false, `a fresh event without id acked as duplicate (id ${a.id})`);
    assert.equal(new Set(acks.map((a) => a.id)).size, acks.length, 'server-assigned ids are unique across restarts');
    const keyedAfter = await srv.api.publishBatch(keyed.map((e) => ev(topic, { key: e.key.toString() })));
    keyedAfter.forEach((x, i) => assert.equal(x.partition, keyedBefore[i].partition, `key-${i} partition after restart`));
  });
}
