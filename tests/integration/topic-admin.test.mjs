// Topic and group administration: retention shown the way it is set, group delete, growing a
// topic's partitions, names that would read as flags.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Code, expectStatus, unary } from './lib/grpc.mjs';
import { describeRun, parseJsonOut, runCli } from './lib/cli.mjs';
import { startServer } from './lib/server.mjs';
import { ev, sum, topicName } from './lib/util.mjs';

const T = { timeout: 120000 };

async function cli(srv, args) {
  const full = [...args, '--server', srv.grpcAddr];
  return { full, r: await runCli(full) };
}

async function cliJson(srv, args) {
  const { full, r } = await cli(srv, [...args, '--json']);
  assert.equal(r.code, 0, describeRun(full, r));
  return parseJsonOut(full, r);
}

test('retention: 0 is the server default, -1 unlimited, and a Topic shows what is in effect (-1, never 0)', T, async (t) => {
  const plain = await startServer(t);
  const name = topicName('ret');
  let topic = await plain.api.createTopic(name, 1);
  assert.equal(topic.retention_ms, -1, 'the default server keeps everything: -1');
  assert.equal(topic.retention_bytes, -1);
  topic = await plain.api.updateTopic({ name, retention_ms: 5000, retention_bytes: -1 });
  assert.equal(topic.retention_ms, 5000);
  assert.equal(topic.retention_bytes, -1, '-1 is shown as -1');

  // The CLI: `unlimited` for people, -1 in JSON.
  let { full, r } = await cli(plain, ['topic', 'update', name, '--retention-ms', '-1']);
  assert.equal(r.code, 0, describeRun(full, r));
  assert.match(r.stdout, /retention unlimited, unlimited/, describeRun(full, r));
  ({ full, r } = await cli(plain, ['topic', 'get', name]));
  assert.match(r.stdout, /retention: unlimited, unlimited per partition/, describeRun(full, r));
  const shown = await cliJson(plain, ['topic', 'get', name]);
  assert.equal(shown.retention_ms, -1);
  assert.equal(shown.retention_bytes, -1);

  // A server with defaults: 0 follows them, -1 overrides them, N is N.
  const withDefaults = await startServer(t, { args: ['--retention-ms', '3600000', '--retention-bytes', '1000000'] });
  const follows = await withDefaults.api.createTopic(topicName('follows'), 1);
  assert.equal(follows.retention_ms, 3600000);
  assert.equal(follows.retention_bytes, 1000000);
  const unlimited = await withDefaults.api.createTopic(topicName('unl'), 1, undefined, { retention_ms: -1, retention_bytes: -1 });
  assert.equal(unlimited.retention_ms, -1);
  assert.equal(unlimited.retention_bytes, -1);
  const own = await withDefaults.api.createTopic(topicName('own'), 1, undefined, { retention_ms: 7, retention_bytes: 9 });
  assert.equal(own.retention_ms, 7);
  assert.equal(own.retention_bytes, 9);
  const back = await withDefaults.api.updateTopic({ name: own.name, retention_ms: 0 });
  assert.equal(back.retention_ms, 3600000, '0 goes back to the server default');

  // `serve --retention-ms 0` is still accepted, as unlimited.
  const zero = await startServer(t, { args: ['--retention-ms', '0', '--retention-bytes', '0'] });
  const z = await zero.api.createTopic(topicName('zero'), 1);
  assert.equal(z.retention_ms, -1);
  assert.equal(z.retention_bytes, -1);
  const help = await runCli(['serve', '--help']);
  assert.match(help.stdout, /--retention-ms [^\n]*\]=-1 /, help.stdout);
  assert.match(help.stdout, /--retention-bytes [^\n]*\]=-1 /, help.stdout);
});

test('group delete: gRPC and CLI; FAILED_PRECONDITION with live members, NOT_FOUND without offsets', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('gdel');
  await srv.api.createTopic(topic, 2);
  await srv.api.publishBatch(Array.from({ length: 10 }, (_, i) => ev(topic, { key: `k${i}` })));
  await srv.api.commit('g1', topic, [{ partition: 0, offset: 1 }, { partition: 1, offset: 2 }]);
  await srv.api.commit('g2', topic, [{ partition: 0, offset: 1 }]);
  const del = (group, t2 = topic) => unary(srv.api.consume, 'DeleteGroup', { group, topic: t2 });

  await del('g1');
  await expectStatus(srv.api.getGroup('g1', topic), Code.NOT_FOUND, 'the deleted group is gone');
  assert.deepEqual((await srv.api.listGroups(topic)).map((g) => g.group), ['g2'], 'the other group stays');
  await expectStatus(del('g1'), Code.NOT_FOUND, 'deleting it again');
  await expectStatus(del('never'), Code.NOT_FOUND, 'a group without offsets');
  await expectStatus(del('g2', topicName('missing')), Code.NOT_FOUND, 'a missing topic');
  await expectStatus(del('a/b', topic), Code.INVALID_ARGUMENT, 'a bad group name');
  await expectStatus(del('-g', topic), Code.NOT_FOUND, 'a group name only new groups may not have');

  // A live member blocks the delete.
  const sub = srv.api.subscribe({ topic, group: 'g2', consumer_id: 'm1', auto_commit: false });
  t.after(() => sub.cancel());
  await sub.waitFor((s) => s.assignments.length > 0, { what: 'an assignment' });
  const live = await expectStatus(del('g2'), Code.FAILED_PRECONDITION, 'a group with a live member');
  assert.match(live.details ?? live.message, /live members/);
  let { full, r } = await cli(srv, ['group', 'delete', 'g2', '--topic', topic]);
  assert.notEqual(r.code, 0, describeRun(full, r));
  assert.match(r.stderr, /live members/, describeRun(full, r));
  sub.cancel();
  await sub.end;
  for (let i = 0; i < 100 && (await srv.api.getGroup('g2', topic)).members.length > 0; i++) await new Promise((res) => setTimeout(res, 50));

  // The CLI, human and JSON.
  ({ full, r } = await cli(srv, ['group', 'delete', 'g2', '--topic', topic]));
  assert.equal(r.code, 0, describeRun(full, r));
  assert.match(r.stdout, new RegExp(`deleted group g2 on topic ${topic}`));
  await srv.api.commit('g3', topic, [{ partition: 0, offset: 3 }]);
  assert.deepEqual(await cliJson(srv, ['group', 'delete', 'g3', '--topic', topic]), { deleted: 'g3', topic });
  assert.deepEqual(await srv.api.listGroups(topic), []);
  ({ full, r } = await cli(srv, ['group', 'delete', 'g3', '--topic', topic]));
  assert.notEqual(r.code, 0, describeRun(full, r));
  assert.match(r.stderr, /NOT_FOUND|no committed offsets/, describeRun(full, r));
});

test('topic update --partitions grows a topic durably; new keys route by the new count; groups see the new partitions', T, async (t) => {
  const srv = await startServer(t, { args: ['--max-partitions', '8'] });
  const topic = topicName('grow');
  await srv.api.createTopic(topic, 2);
  const before = Array.from({ length: 100 }, (_, i) => ev(topic, { key: `key-${i}` }));
  const acksBefore = await srv.api.publishBatch(before);
  assert.ok(acksBefore.every((a) => a.partition < 2));
  await srv.api.commit('readers', topic, [{ partition: 0, offset: 1 }]);

  // Refused: shrinking, over --max-partitions; nothing changes.
  await expectStatus(srv.api.updateTopic({ name: topic, partitions: 1 }), Code.INVALID_ARGUMENT, 'shrinking');
  await expectStatus(srv.api.updateTopic({ name: topic, partitions: 9 }), Code.INVALID_ARGUMENT, 'over --max-partitions');
  await expectStatus(srv.api.updateTopic({ name: topic, partitions: 4, retention_ms: -7 }), Code.INVALID_ARGUMENT, 'with a bad retention');
  assert.equal((await srv.api.getTopic(topic)).partition_count, 2);

  // The CLI grows it and says that keys move.
  const { full, r } = await cli(srv, ['topic', 'update', topic, '--partitions', '5']);
  assert.equal(r.code, 0, describeRun(full, r));
  assert.match(r.stdout, /5 partitions/);
  assert.match(r.stderr, /Keys now map to different partitions/, describeRun(full, r));
  assert.match(r.stderr, /ordering per key holds only from now on/);
  let info = await srv.api.getTopic(topic);
  assert.equal(info.partition_count, 5);
  assert.deepEqual(info.partitions.map((p) => p.partition), [0, 1, 2, 3, 4]);

  // New keyed events reach the new partitions; the same key always goes to one partition.
  const after = Array.from({ length: 200 }, (_, i) => ev(topic, { key: `key-${i % 100}` }));
  const acksAfter = await srv.api.publishBatch(after);
  assert.ok(acksAfter.some((a) => a.partition >= 2), 'some keys route to the new partitions');
  for (let i = 0; i < 100; i++) assert.equal(acksAfter[i].partition, acksAfter[i + 100].partition, `key-${i} keeps one partition`);

  // The group lists every partition.
  const group = await srv.api.getGroup('readers', topic);
  assert.deepEqual(group.partitions.map((p) => p.partition), [0, 1, 2, 3, 4]);

  // SIGKILL and restart: still 5 partitions, every record where its ack said.
  await srv.restart({ how: 'kill' });
  info = await srv.api.getTopic(topic);
  assert.equal(info.partition_count, 5);
  const records = await srv.api.readTopic(topic);
  assert.equal(records.length, 300);
  const at = new Map(records.map((rec) => [rec.event.id, `${rec.partition}/${rec.offset}`]));
  [...before, ...after].forEach((e, i) => {
    const a = [...acksBefore, ...acksAfter][i];
    assert.equal(at.get(e.id), `${a.partition}/${a.offset}`, `event ${i}`);
  });
  assert.equal(sum(info.partitions.map((p) => p.end_offset)), 300);

  // A live group member gets the new partitions too.
  await cliJson(srv, ['topic', 'update', topic, '--partitions', '6']);
  const sub = srv.api.subscribe({ topic, group: 'live', consumer_id: 'only', start: { earliest: true } });
  t.after(() => sub.cancel());
  await sub.waitFor((s) => s.partitions.length === 6, { what: 'six partitions' });
  await srv.api.updateTopic({ name: topic, partitions: 7 });
  await sub.waitFor((s) => s.partitions.length === 7, { what: 'the seventh partition' });
  const p6 = await srv.api.publish(ev(topic, { key: 'x' }));
  assert.ok(p6.partition < 7);
  await sub.waitFor((s) => s.records.some((rec) => rec.event.key.toString() === 'x'), { what: 'the new record' });
  sub.cancel();
  await sub.end;
});

test('topic and group names starting with "-" are refused with the reason', T, async (t) => {
  const srv = await startServer(t);
  const err = await expectStatus(srv.api.createTopic('-orders', 1), Code.INVALID_ARGUMENT, 'CreateTopic -orders');
  assert.match(err.details ?? err.message, /starts with '-', which reads as a command-line flag/);
  await expectStatus(srv.api.publish(ev('-orders')), Code.INVALID_ARGUMENT, 'Publish to -orders');
  const topic = topicName('dash');
  await srv.api.createTopic(topic, 1);
  await expectStatus(srv.api.commit('-g', topic, [{ partition: 0, offset: 0 }]), Code.INVALID_ARGUMENT, 'Commit of group -g');
  const joined = await srv.api.subscribe({ topic, group: '-g' }).end;
  assert.equal(joined.code, Code.INVALID_ARGUMENT, 'Subscribe with the new group -g');
  assert.match(joined.details, /reads as a command-line flag/);
  assert.deepEqual((await srv.api.listTopics()).map((x) => x.name), [topic]);
});
