// One server per data directory and per port: a second one refuses to start, names what is in
// use, and the first keeps serving. A lock left by a SIGKILLed server does not block.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { describeRun, runCli } from './lib/cli.mjs';
import { freePort, httpGet, makeTempDir, startServer } from './lib/server.mjs';
import { ev, topicName } from './lib/util.mjs';

const T = { timeout: 120000 };

/** Runs a second `serve`, which must exit on its own (a hang is a failure). */
async function secondServe({ listen, http, data }) {
  const args = [
    'serve',
    '--listen', listen ?? `127.0.0.1:${await freePort()}`,
    '--http', http ?? `127.0.0.1:${await freePort()}`,
    '--data', data ?? path.join(makeTempDir(), 'data'),
  ];
  const r = await runCli(args, { timeoutMs: 30000 });
  return { args, r };
}

async function stillServes(srv, topic, what) {
  srv.assertNoCrash();
  const ack = await srv.api.publish(ev(topic));
  assert.equal(ack.topic, topic, `${what}: the first server still takes publishes`);
  assert.equal((await httpGet(srv, '/healthz')).status, 200, `${what}: its HTTP listener answers`);
}

test('a second server on a data directory in use exits non-zero naming the directory and pid', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('locked');
  await srv.api.createTopic(topic, 1);
  await srv.api.publishBatch([ev(topic, { id: 'a1' }), ev(topic, { id: 'a2' })]);
  const { args, r } = await secondServe({ data: srv.dataDir });
  assert.notEqual(r.code, 0, describeRun(args, r));
  assert.ok(!r.stdout.includes('nodata ready'), `the second server must not say ready\n${describeRun(args, r)}`);
  assert.match(
    r.stderr,
    new RegExp(`data directory ${srv.dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by another nodata process \\(pid ${srv.child.pid}\\)`),
    describeRun(args, r),
  );
  await stillServes(srv, topic, 'after the refused second server');
  // The acked events survive a restart: nobody else touched the directory.
  await srv.restart();
  const info = await srv.api.getTopic(topic);
  assert.equal(info.partitions[0].end_offset, 3);
});

test('after the holder is SIGKILLed, a new server starts on the directory', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('stale');
  await srv.api.publish(ev(topic));
  await srv.kill();
  await srv.start();
  assert.equal((await srv.api.getTopic(topic)).partitions.reduce((s, p) => s + p.end_offset, 0), 1);
});

test('a gRPC port in use is an error at start, naming the address', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('port');
  const { args, r } = await secondServe({ listen: srv.requestedGrpcAddr });
  assert.notEqual(r.code, 0, describeRun(args, r));
  assert.ok(!r.stdout.includes('nodata ready'), describeRun(args, r));
  assert.ok(r.stderr.includes(`cannot listen for gRPC on ${srv.requestedGrpcAddr}`), describeRun(args, r));
  await stillServes(srv, topic, 'after the refused gRPC listener');
});

test('an HTTP port in use is an error at start, naming the address', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('port');
  const { args, r } = await secondServe({ http: srv.requestedHttpAddr });
  assert.notEqual(r.code, 0, describeRun(args, r));
  assert.ok(!r.stdout.includes('nodata ready'), describeRun(args, r));
  assert.ok(r.stderr.includes(`cannot listen for HTTP on ${srv.requestedHttpAddr}`), describeRun(args, r));
  await stillServes(srv, topic, 'after the refused HTTP listener');
});
