// Consumer groups over the Kafka protocol (docs/kafka.md): kafkajs members coming and going
// in one group, kcat's balanced consumer, committed offsets shared with gRPC groups and kept
// across a restart, and the refusal of a group with members on both protocols.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel } from 'kafkajs';
import { startServer } from './lib/server.mjs';
import { runProgram } from './lib/cli.mjs';
import { Code } from './lib/grpc.mjs';
import { topicName } from './lib/util.mjs';

function kafkaClient(srv, clientId = 'nodata-test') {
  return new Kafka({ clientId, brokers: [srv.kafkaAddr], logLevel: logLevel.NOTHING, retry: { retries: 3 } });
}

async function until(pred, what, timeoutMs = 60000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function produce(srv, topic, values) {
  const producer = kafkaClient(srv).producer();
  await producer.connect();
  for (let i = 0; i < values.length; i += 100) {
    await producer.send({ topic, messages: values.slice(i, i + 100).map((v) => ({ key: v, value: v })) });
  }
  await producer.disconnect();
}

/** A kafkajs group member recording what it consumed and every assignment it was given. */
async function member(srv, group, topic, name, seen) {
  const consumer = kafkaClient(srv, name).consumer({
    groupId: group, sessionTimeout: 6000, rebalanceTimeout: 5000, heartbeatInterval: 300,
    maxWaitTimeInMs: 200,
    // A crash is the test's failure (m.crash), not a reason to restart behind its back.
    retry: { retries: 5, restartOnFailure: async () => false },
  });
  const m = { name, consumer, assignments: [], crash: null };
  consumer.on(consumer.events.GROUP_JOIN, (e) => m.assignments.push(e.payload.memberAssignment[topic] ?? []));
  consumer.on(consumer.events.CRASH, (e) => (m.crash = e.payload.error));
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const v = message.value.toString();
      seen.set(v, (seen.get(v) ?? 0) + 1);
    },
  });
  return m;
}

test('kafkajs: a three-member group rebalances as members come and go; offsets resume after restart', async (t) => {
  const srv = await startServer(t, { kafka: true });
  const topic = topicName('kgroup');
  const group = `g-${topic}`;
  await srv.api.createTopic(topic, 6);
  const seen = new Map();
  const members = [];
  t.after(async () => {
    for (const m of members) await m.consumer.disconnect().catch(() => {});
  });
  const wave = (w, n) => Array.from({ length: n }, (_, i) => `w${w}-${i}`);
  const all = [];
  const allSeen = () => all.every((v) => seen.has(v));

  all.push(...wave(1, 600));
  await produce(srv, topic, wave(1, 600));
  members.push(await member(srv, group, topic, 'a', seen));
  await until(() => members[0].assignments.length > 0, 'a joined');
  assert.deepEqual([...members[0].assignments.at(-1)].sort(), [0, 1, 2, 3, 4, 5]);
  members.push(await member(srv, group, topic, 'b', seen));
  members.push(await member(srv, group, topic, 'c', seen));
  // Three members: two partitions each, none shared.
  await until(() => {
    const last = members.map((m) => m.assignments.at(-1) ?? []);
    return last.every((a) => a.length === 2) && new Set(last.flat()).size === 6;
  }, 'three members with two partitions each');
  all.push(...wave(2, 600));
  await produce(srv, topic, wave(2, 600));
  await until(allSeen, 'every record of waves 1 and 2 consumed');

  // c leaves: a and b take its partitions.
  await members[2].consumer.disconnect();
  await until(() => members.slice(0, 2).every((m) => (m.assignments.at(-1) ?? []).length === 3),
    'two members with three partitions each');
  all.push(...wave(3, 300));
  await produce(srv, topic, wave(3, 300));
  await until(allSeen, 'every record of wave 3 consumed');
  for (const m of members) assert.equal(m.crash, null, `${m.name} did not crash`);

  // While the group has Kafka members, a gRPC subscriber cannot join it.
  const sub = srv.api.subscribe({ topic, group });
  const st = await sub.end;
  assert.equal(st.code, Code.FAILED_PRECONDITION, st.details);
  assert.match(st.details, /live Kafka consumers/);

  for (const m of members.slice(0, 2)) await m.consumer.disconnect();
  // Everything consumed is committed, in the store gRPC groups use.
  const ends = await srv.api.endOffsets(topic);
  const g = await srv.api.getGroup(group, topic);
  for (const p of g.partitions) {
    assert.equal(p.has_committed, true, `partition ${p.partition} committed`);
    assert.equal(Number(p.committed_offset), Number(ends[p.partition]), `partition ${p.partition}`);
  }

  // After a restart, a new member resumes from the committed offsets: only new records.
  await srv.restart({ samePorts: true });
  const later = new Map();
  await produce(srv, topic, wave(4, 100));
  members.length = 0;
  members.push(await member(srv, group, topic, 'd', later));
  await until(() => wave(4, 100).every((v) => later.has(v)), 'wave 4 consumed after the restart');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual([...later.keys()].sort(), wave(4, 100).sort(), 'only records after the commits');
  // Before the server stops (cleanup): a member left running would crash and retry forever.
  await members[0].consumer.disconnect();
  assert.equal(members[0].crash, null);
});

test('a group with gRPC subscribers refuses Kafka members, with the reason logged', async (t) => {
  const srv = await startServer(t, { kafka: true });
  const topic = topicName('mixed');
  const group = `g-${topic}`;
  await srv.api.createTopic(topic, 2);
  const sub = srv.api.subscribe({ topic, group });
  await sub.waitFor((s) => s.assignments.length > 0, { what: 'the gRPC member joined' });
  const consumer = kafkaClient(srv).consumer({
    groupId: group, retry: { retries: 0, restartOnFailure: async () => false },
  });
  const crashed = new Promise((resolve) => consumer.on(consumer.events.CRASH, (e) => resolve(e.payload.error)));
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async () => {} }).catch((e) => e);
  const err = await crashed;
  assert.equal(err.type, 'INCONSISTENT_GROUP_PROTOCOL', String(err));
  await consumer.disconnect().catch(() => {});
  sub.cancel();
  // The server's log says why (read from its stderr pipe as it arrives).
  const why = new RegExp(`cannot join group "${group}": it has live gRPC subscribers`);
  await until(() => why.test(srv.stderr), 'the refusal in the server log', 10000);
});

test('kcat -G consumes a topic in a group and its commits show in nodata group get', async (t) => {
  const srv = await startServer(t, { kafka: true });
  const topic = topicName('kcatg');
  await srv.api.createTopic(topic, 3);
  const values = Array.from({ length: 90 }, (_, i) => `v${i}`);
  const prod = await runProgram('kcat', ['-b', srv.kafkaAddr, '-P', '-t', topic], { input: `${values.join('\n')}\n` });
  assert.equal(prod.code, 0, prod.stderr);
  const r = await runProgram('kcat', ['-b', srv.kafkaAddr, '-G', 'kcat-group', topic, '-e', '-q', '-f', '%s\n',
    '-X', 'auto.offset.reset=earliest', '-X', 'enable.auto.commit=true', '-X', 'auto.commit.interval.ms=100'],
  { timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.split('\n').filter(Boolean).sort(), [...values].sort());
  const cli = await runProgram(srv.bin, ['group', 'get', 'kcat-group', '--topic', topic, '--server', srv.grpcAddr]);
  assert.equal(cli.code, 0, cli.stderr);
  const ends = await srv.api.endOffsets(topic);
  for (let p = 0; p < 3; p++) {
    assert.match(cli.stdout, new RegExp(`^\\s+${p}\\s+${ends[p]}\\s+${ends[p]}\\s+0`, 'm'), cli.stdout);
  }
});
