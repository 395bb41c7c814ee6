// The nodata CLI against a running server: topic commands, publish, publish --file, errors.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { describeRun, parseJsonOut, runCli } from './lib/cli.mjs';
import { freePort, makeTempDir, startServer } from './lib/server.mjs';
import { newId, sum, topicName } from './lib/util.mjs';

const T = { timeout: 120000 };

async function ok(args) {
  const r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  return r;
}

test('topic create/list/get/delete --json', T, async (t) => {
  const srv = await startServer(t);
  const server = ['--server', srv.grpcAddr];
  const name = topicName('cli-topic');

  let args = ['topic', 'create', name, '--partitions', '3', ...server, '--json'];
  const created = parseJsonOut(args, await ok(args));
  assert.equal(created.name, name);
  assert.equal(created.partitions.length, 3);
  for (const p of created.partitions) {
    for (const f of ['partition', 'start_offset', 'end_offset', 'record_count', 'bytes_on_disk']) {
      assert.equal(typeof p[f], 'number', `create --json: partitions[].${f} is a JSON number: ${JSON.stringify(p)}`);
    }
    assert.equal(p.end_offset, 0);
  }
  assert.equal((await srv.api.getTopic(name)).partition_count, 3, 'the CLI really created the topic');

  const acks = await srv.api.publishBatch(Array.from({ length: 12 }, (_, i) => ({ topic: name, id: newId(), key: Buffer.from(`k${i}`), data: Buffer.from('abc') })));
  args = ['topic', 'get', name, ...server, '--json'];
  const got = parseJsonOut(args, await ok(args));
  assert.equal(got.name, name);
  const ends = await srv.api.endOffsets(name);
  for (const p of got.partitions) {
    assert.equal(p.end_offset, ends[p.partition], `get --json partition ${p.partition} end_offset`);
    assert.equal(p.record_count, ends[p.partition]);
  }
  assert.equal(sum(got.partitions.map((p) => p.end_offset)), acks.length);

  const other = topicName('cli-other');
  await srv.api.createTopic(other, 1);
  args = ['topic', 'list', ...server, '--json'];
  const list = parseJsonOut(args, await ok(args));
  assert.ok(Array.isArray(list), 'list --json prints an array');
  assert.deepEqual(list.map((x) => x.name).sort(), [name, other].sort());

  // Without --json: human output that at least names the topic.
  args = ['topic', 'list', ...server];
  assert.ok((await ok(args)).stdout.includes(name), 'plain list names the topic');
  // Sizes for people in tables; --json keeps bytes.
  const table = (await ok(['topic', 'get', name, ...server])).stdout;
  const row = table.split('\n').find((l) => l.startsWith(name));
  assert.match(row, / 3 +12 +\d+(\.\d)? (B|KiB|MiB)$/, table);
  assert.doesNotMatch(table, /\d{5,} *$/m, `no raw byte counts: ${table}`);

  args = ['topic', 'delete', name, ...server, '--json'];
  await ok(args);
  await assert.rejects(srv.api.getTopic(name), (e) => e.code === 5, 'deleted through the CLI');

  args = ['topic', 'create', other, ...server, '--json'];
  const dup = await runCli(args);
  assert.equal(dup.code, 1, describeRun(args, dup));
  assert.match(dup.stderr, /ALREADY_EXISTS/, describeRun(args, dup));
});

test('CLI errors: exit 1 with the gRPC status name on stderr', T, async (t) => {
  const srv = await startServer(t);
  let args = ['topic', 'get', topicName('nope'), '--server', srv.grpcAddr, '--json'];
  let r = await runCli(args);
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /NOT_FOUND/, describeRun(args, r));
  assert.equal(r.stdout.trim(), '', 'nothing on stdout on error');

  args = ['topic', 'create', 'a/b', '--server', srv.grpcAddr];
  r = await runCli(args);
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /INVALID_ARGUMENT/, describeRun(args, r));

  const dead = `127.0.0.1:${await freePort()}`;
  args = ['topic', 'list', '--server', dead];
  r = await runCli(args, { timeoutMs: 60000 });
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /UNAVAILABLE|DEADLINE_EXCEEDED/, describeRun(args, r));

  // NODATA_SERVER is the default --server.
  args = ['topic', 'list', '--json'];
  r = await runCli(args, { env: { NODATA_SERVER: srv.grpcAddr } });
  assert.equal(r.code, 0, describeRun(args, r));
  assert.deepEqual(parseJsonOut(args, r), []);
});

test('publish DATA --json prints the ack as one JSON line; same --id again is a duplicate', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('cli-pub');
  const id = newId('cli');
  const args = ['publish', '--topic', topic, '--key', 'user-1', '--id', id, '--header', 'a=b', '--header', 'c=d', '--server', srv.grpcAddr, '--json', 'hello world'];
  const r = await ok(args);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, `one JSON line: ${r.stdout}`);
  const ack = JSON.parse(lines[0]);
  assert.equal(ack.topic, topic);
  assert.equal(ack.id, id);
  assert.equal(ack.duplicate, false);
  assert.equal(ack.offset, 0);
  assert.equal(typeof ack.partition, 'number');
  assert.equal(typeof ack.offset, 'number');

  const again = JSON.parse((await ok(args)).stdout.trim());
  assert.deepEqual(again, { ...ack, duplicate: true });

  // Same key => same partition as the API routes it; no --id => a server-assigned id.
  const viaApi = await srv.api.publish({ topic, key: Buffer.from('user-1'), data: Buffer.from('x') });
  assert.equal(viaApi.partition, ack.partition);
  const noIdArgs = ['publish', '--topic', topic, '--server', srv.grpcAddr, '--json', 'no id'];
  const noId = JSON.parse((await ok(noIdArgs)).stdout.trim());
  assert.ok(noId.id.length > 0);
  assert.equal(noId.duplicate, false);
  assert.equal(sum(await srv.api.endOffsets(topic)), 3);
});

test('publish --file with 5000 JSONL lines; republishing the file only finds duplicates', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '4'] });
  const dir = makeTempDir('nodata-cli-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const [main, side] = [topicName('cli-file'), topicName('cli-file-side')];
  const lines = [];
  let sideCount = 0;
  for (let i = 0; i < 5000; i++) {
    const o = { id: `line-${i}-${newId()}` };
    if (i % 3 === 0) o.key = `k${i % 17}`;
    switch (i % 5) {
      case 0: o.data = `plain text ${i}`; break;
      case 1: o.data = { n: i, nested: { ok: true } }; break;
      case 2: o.data_base64 = Buffer.from(`bytes ${i}`).toString('base64'); break;
      case 3: o.data = [i, 'x']; o.headers = { src: 'cli-test', i: String(i) }; break;
      default: o.data = `ts ${i}`; o.timestamp = '2024-05-01T12:34:56.789Z';
    }
    if (i % 10 === 7) {
      o.topic = side;
      sideCount++;
    } else {
      o.topic = main;
    }
    lines.push(JSON.stringify(o));
  }
  const file = path.join(dir, 'events.jsonl');
  fs.writeFileSync(file, lines.join('\n') + '\n');

  // Without --topic, each line's "topic" says where it goes.
  const args = ['publish', '--file', file, '--batch', '500', '--server', srv.grpcAddr, '--json'];
  const r = await ok(args);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1));
  assert.equal(summary.published, 5000, describeRun(args, r));
  assert.equal(summary.stored, 5000, describeRun(args, r));
  assert.equal(summary.duplicates, 0);
  assert.equal(typeof summary.seconds, 'number');
  assert.equal(sum(await srv.api.endOffsets(main)), 5000 - sideCount, 'GetTopic total of --topic');
  assert.equal(sum(await srv.api.endOffsets(side)), sideCount, 'GetTopic total of the per-line topic');

  // Same file again: every line is a duplicate, nothing new is stored.
  const r2 = await ok(args);
  const summary2 = JSON.parse(r2.stdout.trim().split('\n').at(-1));
  assert.equal(summary2.duplicates, 5000, describeRun(args, r2));
  assert.equal(summary2.stored, 0, describeRun(args, r2));
  assert.equal(sum(await srv.api.endOffsets(main)), 5000 - sideCount);
  assert.equal(sum(await srv.api.endOffsets(side)), sideCount);
});

test('publish --file with a bad line exits 1 naming the line', T, async (t) => {
  const srv = await startServer(t);
  const dir = makeTempDir('nodata-cli-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const topic = topicName('cli-bad');
  const cases = [
    ['not JSON', [JSON.stringify({ data: 'a' }), JSON.stringify({ data: 'b' }), '{"data": "c", oops'], 3],
    ['not an object', [JSON.stringify({ data: 'a' }), '[1,2,3]'], 2],
    ['bad timestamp', [JSON.stringify({ data: 'a', timestamp: 'yesterday' })], 1],
    ['bad base64', [JSON.stringify({ data: 'a' }), JSON.stringify({ data: 'b' }), JSON.stringify({ data: 'c' }), JSON.stringify({ data_base64: '%%%' })], 4],
  ];
  for (const [what, content, lineNo] of cases) {
    const file = path.join(dir, `${what.replace(/ /g, '-')}.jsonl`);
    fs.writeFileSync(file, content.join('\n') + '\n');
    const args = ['publish', '--topic', topic, '--file', file, '--server', srv.grpcAddr];
    const r = await runCli(args);
    assert.equal(r.code, 1, `${what}: ${describeRun(args, r)}`);
    assert.match(r.stderr, new RegExp(`(line\\D{0,3}${lineNo}\\b)|(:${lineNo}\\b)`, 'i'), `${what}: stderr names line ${lineNo}\n${describeRun(args, r)}`);
  }
});

test('--version, usage lines that say nodata, exit code 2 for usage errors, --server checked', T, async (t) => {
  let r = await runCli(['--version']);
  assert.equal(r.code, 0, describeRun(['--version'], r));
  assert.match(r.stdout, /^nodata \d+\.\d+\.\d+\n$/);
  r = await runCli(['topic', 'create', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Usage: nodata topic create /m, r.stdout);
  for (const args of [
    ['topic', 'create'], // a required argument missing
    ['topic', 'create', 'x', '--partitions', 'many'], // a bad value
    ['publish', '--topic', 'x', '--no-such-flag', 'd'], // an unknown flag
    ['topic', 'list', '--server', '127.0.0.1:99999'],
    ['topic', 'list', '--server', '127.0.0.1:'],
    ['topic', 'list', '--server', ':7070'],
    ['topic', 'list', '--server', 'fe80::1:7070'],
    ['serve', '--listen', '127.0.0.1:70000'],
  ]) {
    r = await runCli(args);
    assert.equal(r.code, 2, describeRun(args, r));
    assert.ok(r.stderr.length > 0, describeRun(args, r));
  }
  r = await runCli(['topic', 'list', '--server', '127.0.0.1:99999']);
  assert.match(r.stderr, /--server: "127\.0\.0\.1:99999": the port must be a number from 1 to 65535/);

  // A host without a port means port 7070; a reachable server by name works.
  r = await runCli(['topic', 'list', '--server', '127.0.0.2']);
  assert.equal(r.code, 1, describeRun(['topic', 'list', '--server', '127.0.0.2'], r));
  assert.match(r.stderr, /cannot reach the server at 127\.0\.0\.2:7070/);
  const srv = await startServer(t);
  const port = srv.grpcAddr.split(':').at(-1);
  for (const server of [`localhost:${port}`, `127.0.0.1:${port}`, `dns:///localhost:${port}`, `ipv4:127.0.0.1:${port}`]) {
    r = await runCli(['topic', 'list', '--server', server, '--json']);
    assert.equal(r.code, 0, describeRun(['topic', 'list', '--server', server], r));
  }
  r = await runCli(['topic', 'list', '--json'], { env: { NODATA_SERVER: `localhost:${port}` } });
  assert.equal(r.code, 0, describeRun(['topic', 'list', 'NODATA_SERVER'], r));
});
