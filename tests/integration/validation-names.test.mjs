// Bad topic names and unknown topics: exact status codes, stored data untouched, server still up.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Code, expectStatus } from './lib/grpc.mjs';
import { startServer } from './lib/server.mjs';
import { ev, topicName } from './lib/util.mjs';

const T = { timeout: 60000 };

const BAD_NAMES = ['', 'a/b', '..', '.', '../x', 'a'.repeat(250), 'é', 'a b', 'a\\b', 'x\u0000y', '-', '-x', '--help'];

/** Publishes a baseline and returns a checker asserting it is unchanged and the server still serves. */
async function baseline(srv) {
  const topic = topicName('baseline');
  await srv.api.publishBatch(Array.from({ length: 25 }, (_, i) => ev(topic, { key: `k${i}` })));
  const ends = await srv.api.endOffsets(topic);
  return async (what) => {
    srv.assertNoCrash();
    assert.deepEqual(await srv.api.endOffsets(topic), ends, `${what}: stored data unchanged`);
  };
}

test('bad topic names => INVALID_ARGUMENT on Publish, PublishBatch, PublishStream, CreateTopic, GetTopic', T, async (t) => {
  const srv = await startServer(t);
  const intact = await baseline(srv);
  for (const name of BAD_NAMES) {
    const shown = JSON.stringify(name.length > 20 ? `${name.slice(0, 10)}...(${name.length} chars)` : name);
    await expectStatus(srv.api.publish(ev(name)), Code.INVALID_ARGUMENT, `Publish topic=${shown}`);
    await expectStatus(
      srv.api.publishBatch([ev(topicName('ok')), ev(name)]),
      Code.INVALID_ARGUMENT,
      `PublishBatch with topic=${shown}`,
    );
    await expectStatus(srv.api.publishStream([[ev(name)]]), Code.INVALID_ARGUMENT, `PublishStream topic=${shown}`);
    await expectStatus(srv.api.createTopic(name, 1), Code.INVALID_ARGUMENT, `CreateTopic name=${shown}`);
    // A leading '-' is refused for new names only: a lookup of one finds no topic.
    const lookup = name.startsWith('-') ? Code.NOT_FOUND : Code.INVALID_ARGUMENT;
    await expectStatus(srv.api.getTopic(name), lookup, `GetTopic name=${shown}`);
    await intact(`after name ${shown}`);
  }
  // Nothing was created by the rejected calls (the valid topic in the rejected batch included).
  const names = (await srv.api.listTopics()).map((x) => x.name);
  assert.equal(names.length, 1, `only the baseline topic exists, got ${JSON.stringify(names)}`);
});

test('boundary names are valid: 249 chars, all allowed character classes, dots inside', T, async (t) => {
  const srv = await startServer(t);
  for (const name of ['a'.repeat(249), 'Az09._-', '...', '.hidden', 'x..y', 'x-', '_']) {
    const created = await srv.api.createTopic(name, 1);
    assert.equal(created.name, name);
    const ack = await srv.api.publish(ev(name));
    assert.equal(ack.topic, name);
    assert.equal((await srv.api.getTopic(name)).partitions[0].end_offset, 1);
  }
});

test('unknown topics: GetTopic/DeleteTopic NOT_FOUND, CreateTopic existing ALREADY_EXISTS', T, async (t) => {
  const srv = await startServer(t);
  const intact = await baseline(srv);
  await expectStatus(srv.api.getTopic(topicName('missing')), Code.NOT_FOUND, 'GetTopic unknown');
  await expectStatus(srv.api.deleteTopic(topicName('missing')), Code.NOT_FOUND, 'DeleteTopic unknown');
  const name = topicName('exists');
  await srv.api.createTopic(name, 2);
  await srv.api.publish(ev(name));
  await expectStatus(srv.api.createTopic(name, 2), Code.ALREADY_EXISTS, 'CreateTopic existing (same partitions)');
  await expectStatus(srv.api.createTopic(name, 7), Code.ALREADY_EXISTS, 'CreateTopic existing (other partitions)');
  const info = await srv.api.getTopic(name);
  assert.equal(info.partition_count, 2, 'the existing topic is unchanged');
  assert.equal(info.partitions.reduce((s, p) => s + p.end_offset, 0), 1);
  await intact('after NOT_FOUND / ALREADY_EXISTS');
});

test('--auto-create-topics false: publishing to an unknown topic is NOT_FOUND', T, async (t) => {
  const srv = await startServer(t, { args: ['--auto-create-topics', 'false'] });
  const known = topicName('known');
  await srv.api.createTopic(known, 2);
  await srv.api.publishBatch(Array.from({ length: 10 }, () => ev(known)));
  const ends = await srv.api.endOffsets(known);
  const unknown = topicName('unknown');
  await expectStatus(srv.api.publish(ev(unknown)), Code.NOT_FOUND, 'Publish unknown topic');
  await expectStatus(srv.api.publishBatch([ev(known), ev(unknown)]), Code.NOT_FOUND, 'PublishBatch with unknown topic');
  await expectStatus(srv.api.publishStream([[ev(unknown)]]), Code.NOT_FOUND, 'PublishStream unknown topic');
  await expectStatus(srv.api.getTopic(unknown), Code.NOT_FOUND, 'the unknown topic was not created');
  assert.deepEqual(await srv.api.endOffsets(known), ends, 'the known topic is unchanged by the rejected batch');
  const ack = await srv.api.publish(ev(known));
  assert.equal(ack.duplicate, false, 'publishing to an existing topic still works');
});
