// nodata consume and nodata group against the real server.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { describeRun, parseJsonOut, runCli } from './lib/cli.mjs';
import { nodataBin, startServer } from './lib/server.mjs';
import { ev, sleep, topicName } from './lib/util.mjs';

const T = { timeout: 120000 };

test('nodata consume prints records as JSON or raw and commits as a group member', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('cli-consume');
  await srv.api.createTopic(topic, 2);
  const events = Array.from({ length: 50 }, (_, i) => ev(topic, { key: `k${i % 5}`, data: `line ${i}`, headers: { i: String(i) } }));
  const acks = await srv.api.publishBatch(events);
  const S = ['--server', srv.grpcAddr];

  let args = ['consume', '--topic', topic, '--count', '50', ...S];
  let r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 50);
  const byId = new Map(events.map((e, i) => [e.id, { e, a: acks[i] }]));
  for (const l of lines) {
    const { e, a } = byId.get(l.id);
    assert.equal(l.data, e.data.toString());
    assert.equal(l.partition, a.partition);
    assert.equal(l.offset, a.offset);
    assert.deepEqual(l.headers, e.headers);
  }

  // A group member prints 20, commits them, and the next run goes on from there.
  args = ['consume', '--topic', topic, '--group', 'cli', '--count', '20', '--format', 'raw', ...S];
  r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  const first = r.stdout.trim().split('\n');
  assert.equal(first.length, 20);
  args = ['group', 'get', 'cli', '--topic', topic, '--json', ...S];
  const g = parseJsonOut(args, await runCli(args));
  assert.equal(g.partitions.reduce((n, p) => n + (p.committed_offset ?? 0), 0), 20, JSON.stringify(g));
  args = ['consume', '--topic', topic, '--group', 'cli', '--count', '30', '--format', 'raw', ...S];
  r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  const second = r.stdout.trim().split('\n');
  assert.deepEqual([...first, ...second].sort(), events.map((e) => e.data.toString()).sort(), 'the two runs together print each record once');

  args = ['group', 'list', '--json', ...S];
  assert.deepEqual(parseJsonOut(args, await runCli(args)), [{ group: 'cli', topic, members: 0, lag: 0 }]);
  args = ['group', 'reset', 'cli', '--topic', topic, '--to', 'earliest', '--json', ...S];
  const reset = parseJsonOut(args, await runCli(args));
  assert.deepEqual(reset, [{ partition: 0, offset: 0 }, { partition: 1, offset: 0 }]);

  // From a time in the future: nothing old; SIGINT ends it cleanly.
  const child = spawn(nodataBin(), ['consume', '--topic', topic, '--from', 'time:2100-01-01T00:00:00Z', ...S], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await sleep(500);
  child.kill('SIGINT');
  const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 0);
  assert.equal(out, '');

  for (const bad of [['--from', 'bogus'], ['--format', 'xml']]) {
    args = ['consume', '--topic', topic, ...bad, ...S];
    r = await runCli(args);
    assert.notEqual(r.code, 0, describeRun(args, r));
    assert.match(r.stderr, /nodata: /);
  }
  args = ['consume', '--topic', 'no-such-topic', ...S];
  r = await runCli(args);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /NOT_FOUND/);
});
