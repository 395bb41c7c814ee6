// nodata publish from a new user's side: data from argv or stdin, the export -> publish round
// trip, JSON bytes kept as written, and errors of `publish --file` that say what was stored.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { describeRun, runCli, runProgram } from './lib/cli.mjs';
import { makeTempDir, nodataBin, startServer } from './lib/server.mjs';
import { memoryBound, newId, sleep, sum, topicName } from './lib/util.mjs';

const T = { timeout: 180000 };

function tempDir(t) {
  const dir = makeTempDir('nodata-publish-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function ok(args, opts) {
  const r = await runCli(args, opts);
  assert.equal(r.code, 0, describeRun(args, r));
  return r;
}

/** Every record of a topic, sorted by (partition, offset). */
async function records(srv, topic) {
  const rs = await srv.api.readTopic(topic);
  return rs.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

test('publish with --header before DATA (the README example) stores DATA and the header', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('orders');
  const args = ['publish', '--topic', topic, '--key', 'user-42', '--id', 'evt-1', '--header', 'source=web', '{"total": 12}', '--server', srv.grpcAddr];
  const r = await ok(args);
  assert.match(r.stdout, /^stored in .* partition \d+ at offset 0 \(id evt-1\)\n$/, describeRun(args, r));
  const [rec] = await records(srv, topic);
  assert.equal(rec.event.data.toString(), '{"total": 12}');
  assert.equal(rec.event.key.toString(), 'user-42');
  assert.deepEqual(rec.event.headers, { source: 'web' });

  // Published again: a human line that does not read as a new event.
  const again = await ok(args);
  assert.match(again.stdout, /^duplicate: id evt-1 is already stored .*nothing new was stored\n$/, describeRun(args, again));
  assert.equal(sum(await srv.api.endOffsets(topic)), 1);
});

test('publish reads DATA from stdin when not given; an empty event needs an explicit empty argument', T, async (t) => {
  const srv = await startServer(t);
  const topic = topicName('stdin');
  const server = ['--server', srv.grpcAddr];
  await ok(['publish', '--topic', topic, ...server], { input: '{"a":1}\n' });
  await ok(['publish', '--topic', topic, '--id', 'multi', ...server], { input: 'line one\nline two\n\n' });

  // Nothing on stdin and no DATA: refused, nothing stored.
  let args = ['publish', '--topic', topic, ...server];
  let r = await runCli(args);
  assert.equal(r.code, 2, describeRun(args, r));
  assert.match(r.stderr, /no data: give it as an argument \(''/);
  r = await runCli(args, { input: '' });
  assert.equal(r.code, 2, describeRun(args, r));
  assert.equal(sum(await srv.api.endOffsets(topic)), 2);

  await ok(['publish', '--topic', topic, '--id', 'empty', ...server, '']);
  const byId = Object.fromEntries((await records(srv, topic)).map((x) => [x.event.id, x.event.data.toString()]));
  assert.equal(Object.keys(byId).length, 3);
  assert.ok(Object.values(byId).includes('{"a":1}'), JSON.stringify(byId));
  assert.equal(byId.multi, 'line one\nline two\n', 'only the last newline is dropped');
  assert.equal(byId.empty, '');

  // DATA and --file together are a mistake, not a silent choice.
  args = ['publish', '--topic', topic, '--file', '-', ...server, 'x'];
  r = await runCli(args, { input: '{"data":"y"}\n' });
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /either DATA or --file/);
});

test('topic export --format jsonl is importable as is; --topic wins over the lines', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '3'] });
  const dir = tempDir(t);
  const server = ['--server', srv.grpcAddr];
  const source = topicName('export-src');
  const copy = topicName('export-copy');
  const events = [];
  for (let i = 0; i < 60; i++) {
    const e = { topic: source, id: newId('x'), data: Buffer.from(`{"n":${i},"s":"ü"}`) };
    if (i % 2 === 0) e.key = Buffer.from(`k${i % 7}`);
    if (i % 5 === 0) e.key = Buffer.from([0xff, 0x00, i]); // not UTF-8: exported as key_base64
    if (i % 3 === 0) e.data = Buffer.from([0x00, 0xfe, 0xfa, i]); // exported as data_base64
    if (i % 4 === 0) e.headers = { h: `v${i}`, other: 'x' };
    if (i % 6 === 0) e.timestamp = { seconds: 1700000000 + i, nanos: 123000 };
    events.push(e);
  }
  await srv.api.publishBatch(events);
  const file = path.join(dir, 'export.jsonl');
  await ok(['topic', 'export', source, '--format', 'jsonl', '--out', file, ...server]);

  // Into a copy: every record lands in the copy, none back in the source.
  let args = ['publish', '--topic', copy, '--file', file, ...server, '--json'];
  let r = await ok(args);
  let summary = JSON.parse(r.stdout.trim());
  assert.equal(summary.published, 60, describeRun(args, r));
  assert.equal(summary.stored, 60);
  assert.equal(sum(await srv.api.endOffsets(source)), 60, 'the source is unchanged');
  const strip = (x) => ({
    id: x.event.id,
    key: x.event.key.toString('hex'),
    data: x.event.data.toString('hex'),
    headers: x.event.headers,
    timestamp: `${x.event.timestamp.seconds}.${x.event.timestamp.nanos}`,
  });
  const byId = (rs) => rs.map(strip).sort((a, b) => a.id.localeCompare(b.id));
  assert.deepEqual(byId(await records(srv, copy)), byId(await records(srv, source)), 'ids, keys, data, headers and event times are copied byte for byte');

  // Into the source again (the lines' own topic): all duplicates.
  args = ['publish', '--file', file, ...server];
  r = await ok(args);
  assert.match(r.stdout, /60 events acknowledged in [\d.]+ s: 0 stored, 60 duplicates/, describeRun(args, r));
  assert.equal(sum(await srv.api.endOffsets(source)), 60);

  // Fields the export sets that are not the producer's are ignored; unknown ones still refused.
  fs.writeFileSync(path.join(dir, 'typo.jsonl'), `${JSON.stringify({ data: 'a', dta: 'b' })}\n`);
  args = ['publish', '--topic', copy, '--file', path.join(dir, 'typo.jsonl'), ...server];
  r = await runCli(args);
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /line 1: unknown field "dta"/);
});

test('JSON data is stored exactly as written in the line', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '1'] });
  const dir = tempDir(t);
  const topic = topicName('raw-json');
  const values = ['{"z":1,"a":[1,2]}', '{ "b" :  2 ,"a":{"y":null,"x":true} }', '[3, 2,1]', '1.50e3', '-0', 'true', 'null', '{"s":"\\u00fc\\n"}'];
  const lines = values.map((v, i) => `{"id":"r${i}","data":${v}}`);
  lines.push('{"id":"str","data":"plain \\"text\\""}');
  const file = path.join(dir, 'raw.jsonl');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  await ok(['publish', '--topic', topic, '--file', file, '--server', srv.grpcAddr]);
  const got = (await records(srv, topic)).map((x) => x.event.data.toString());
  assert.deepEqual(got, [...values, 'plain "text"']);
});

test('publish --file errors name the line and what was stored before it', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '2'] });
  const dir = tempDir(t);
  const server = ['--server', srv.grpcAddr];

  // An event over the server's --max-event-bytes (1 MiB) on line 501, batches of 100.
  const topic = topicName('oversized');
  const lines = [];
  for (let i = 1; i <= 600; i++) {
    lines.push(JSON.stringify({ id: `e${i}`, data: i === 501 ? 'x'.repeat(1536 * 1024) : `ok ${i}` }));
  }
  const file = path.join(dir, 'oversized.jsonl');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  let args = ['publish', '--topic', topic, '--file', file, '--batch', '100', ...server];
  let r = await runCli(args);
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /line 501: INVALID_ARGUMENT: event 0 is \d+ bytes/, describeRun(args, r));
  assert.match(r.stderr, /500 events before line 501 were stored/, describeRun(args, r));
  assert.equal(sum(await srv.api.endOffsets(topic)), 500, 'the 500 events before it are stored, nothing after');

  // A directory is not a file.
  args = ['publish', '--topic', topic, '--file', dir, ...server];
  r = await runCli(args);
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /is a directory/);

  // An 80 MiB line: refused by line number, with bounded memory (the CLI never holds the line).
  const big = path.join(dir, 'big.jsonl');
  const fd = fs.openSync(big, 'w');
  fs.writeSync(fd, `${JSON.stringify({ id: 'small-1', data: 'a' })}\n{"id":"huge","data":"`);
  const chunk = Buffer.alloc(1 << 20, 'y');
  for (let i = 0; i < 80; i++) fs.writeSync(fd, chunk);
  fs.writeSync(fd, '"}\n');
  fs.closeSync(fd);
  const bigTopic = topicName('big-line');
  args = ['-f', '%M', nodataBin(), 'publish', '--topic', bigTopic, '--file', big, ...server];
  r = await runProgram('/usr/bin/time', args);
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /line 2 is longer than 16\.0 MiB \(--max-line-bytes\) \(1 events before line 2 were stored/, describeRun(args, r));
  const maxRssKb = Number(r.stderr.trim().split('\n').at(-1));
  assert.ok(maxRssKb > 0 && maxRssKb < memoryBound(80 * 1024), `peak memory ${maxRssKb} KiB stays under the line's 80 MiB`);
  assert.equal(sum(await srv.api.endOffsets(bigTopic)), 1);
});

test('publish --file - and a fifo stream lines; a server killed mid-upload is reported with a count', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '2'] });
  const dir = tempDir(t);
  const topic = topicName('stream');
  const server = ['--server', srv.grpcAddr];
  const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ id: `s${i}`, data: `v${i}` })).join('\n') + '\n';
  await ok(['publish', '--topic', topic, '--file', '-', ...server], { input: lines });
  assert.equal(sum(await srv.api.endOffsets(topic)), 300);

  const fifo = path.join(dir, 'events.fifo');
  execFileSync('mkfifo', [fifo]);
  const fifoTopic = topicName('fifo');
  const run = runCli(['publish', '--topic', fifoTopic, '--file', fifo, ...server, '--json']);
  fs.writeFileSync(fifo, lines); // blocks until the CLI opened the fifo
  const r = await run;
  assert.equal(r.code, 0, describeRun(['publish', '--file', fifo], r));
  assert.equal(JSON.parse(r.stdout).stored, 300);

  // The server dies while a long upload streams in: the CLI names the count it saw stored.
  const killTopic = topicName('killed');
  const child = spawn(nodataBin(), ['publish', '--topic', killTopic, '--file', '-', '--batch', '200', ...server], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  child.stdin.on('error', () => {});
  const exited = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  let sent = 0;
  const writeSome = (n) => {
    let s = '';
    for (let i = 0; i < n; i++, sent++) s += `${JSON.stringify({ id: `k${sent}`, data: `v${sent}` })}\n`;
    child.stdin.write(s);
  };
  writeSome(5000);
  for (let i = 0; i < 200 && sum(await srv.api.endOffsets(killTopic).catch(() => [0])) < 1000; i++) await sleep(25);
  // Readers see an offset once it is synced, a moment before its answer reaches the CLI. The CLI
  // holds stdin open, so the kill still lands mid-upload after the answers have had time to arrive.
  await sleep(500);
  await srv.kill();
  writeSome(100);
  child.stdin.end();
  const code = await exited;
  assert.equal(code, 1, stderr);
  const m = /(\d+) events before line (\d+) were stored \(acknowledged\)/.exec(stderr);
  assert.ok(m, `stderr says how many events were stored: ${stderr}`);
  assert.match(stderr, /UNAVAILABLE/);
  assert.match(stderr, /may or may not be stored/);
  await srv.start();
  const stored = sum(await srv.api.endOffsets(killTopic));
  assert.ok(Number(m[1]) > 0 && Number(m[1]) <= stored, `reported ${m[1]}, stored ${stored}`);
});
