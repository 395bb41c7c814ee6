// Every command that takes a path, fed a missing file, a directory and a fifo: a readable error
// and exit code 1 or 2, never an uncaught exception, a crash or a hang.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { describeRun, runCli } from './lib/cli.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';
import { topicName } from './lib/util.mjs';

const T = { timeout: 180000 };

function assertCleanFailure(args, r, pattern) {
  const what = describeRun(args, r);
  assert.equal(r.signal, null, `no crash: ${what}`);
  assert.ok(r.code === 1 || r.code === 2, `exit 1 or 2: ${what}`);
  assert.doesNotMatch(r.stderr, /terminate called|Aborted|what\(\)/, what);
  assert.match(r.stderr, /^nodata: /m, `a "nodata: ..." message: ${what}`);
  if (pattern) assert.match(r.stderr, pattern, what);
}

/** A fifo with a writer that writes `content` once the other side opens it. */
function fifoWithWriter(dir, name, content) {
  const fifo = path.join(dir, name);
  execFileSync('mkfifo', [fifo]);
  const writer = spawn('sh', ['-c', `printf '%s' "$1" > "$2"`, 'sh', content, fifo], { stdio: 'ignore' });
  return { fifo, writer };
}

test('local commands: missing files, directories and fifos', T, async (t) => {
  const dir = makeTempDir('nodata-files-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const missing = path.join(dir, 'missing.bin');
  const fifo = path.join(dir, 'plain.fifo');
  execFileSync('mkfifo', [fifo]); // nobody writes: a command that opened it would hang
  const commands = [
    (p) => ['parquet', 'inspect', p],
    (p) => ['wasm', 'inspect', p],
    (p) => ['wasm', 'run', p, '--invoke', 'f'],
  ];
  for (const make of commands) {
    for (const [p, pattern] of [[missing, /cannot read .*No such file/], [dir, /is a directory/], [fifo, /is not a regular file/]]) {
      const args = make(p);
      assertCleanFailure(args, await runCli(args, { timeoutMs: 20000 }), pattern);
    }
  }
  for (const [p, pattern] of [[missing, /cannot read config file .*No such file/], [dir, /is a directory/]]) {
    const args = ['serve', '--config', p, '--data', path.join(dir, 'data')];
    assertCleanFailure(args, await runCli(args, { timeoutMs: 20000 }), pattern);
  }
  const notADir = path.join(dir, 'file');
  fs.writeFileSync(notADir, 'x');
  const args = ['serve', '--data', notADir, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0'];
  const r = await runCli(args, { timeoutMs: 20000 });
  assertCleanFailure(args, { ...r, stderr: r.stderr.replace(/^.*\[error\] /m, 'nodata: ') });
  assert.doesNotMatch(r.stdout, /nodata ready/);
});

test('client commands: missing files, directories and fifos', T, async (t) => {
  const srv = await startServer(t);
  const dir = makeTempDir('nodata-files-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const server = ['--server', srv.grpcAddr];
  const topic = topicName('files');
  await srv.api.publishBatch([{ topic, id: 'a', data: Buffer.from('1') }, { topic, id: 'b', data: Buffer.from('2') }]);

  // publish --file
  for (const [p, pattern] of [[path.join(dir, 'missing.jsonl'), /cannot read .*No such file/], [dir, /is a directory/]]) {
    const args = ['publish', '--topic', topic, '--file', p, ...server];
    assertCleanFailure(args, await runCli(args, { timeoutMs: 20000 }), pattern);
  }
  const { fifo, writer } = fifoWithWriter(dir, 'in.fifo', 'garbage\n');
  let args = ['publish', '--topic', topic, '--file', fifo, ...server];
  assertCleanFailure(args, await runCli(args, { timeoutMs: 20000 }), /line 1: not valid JSON/);
  writer.kill();

  // topic export --out
  for (const [format, out, pattern, extra] of [
    ['jsonl', dir, /is a directory/, []],
    ['jsonl', path.join(dir, 'no', 'such', 'x.jsonl'), /cannot write/, []],
    ['parquet', path.join(dir, 'no', 'such', 'x.parquet'), null, ['--partition', '0']],
  ]) {
    args = ['topic', 'export', topic, '--format', format, '--out', out, ...extra, ...server];
    assertCleanFailure(args, await runCli(args, { timeoutMs: 20000 }), pattern);
  }
  // Into a fifo: written as a stream, the fifo stays a fifo.
  const outFifo = path.join(dir, 'out.fifo');
  execFileSync('mkfifo', [outFifo]);
  const reader = spawn('cat', [outFifo], { stdio: ['ignore', 'pipe', 'ignore'] });
  let exported = '';
  reader.stdout.setEncoding('utf8').on('data', (d) => (exported += d));
  const readerDone = new Promise((resolve) => reader.on('close', resolve));
  args = ['topic', 'export', topic, '--format', 'jsonl', '--out', outFifo, ...server];
  const r = await runCli(args, { timeoutMs: 20000 });
  assert.equal(r.code, 0, describeRun(args, r));
  await readerDone;
  assert.equal(exported.trim().split('\n').length, 2, exported);
  assert.ok(fs.statSync(outFifo).isFIFO());
});
