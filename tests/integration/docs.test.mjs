// Every `nodata ...` command that README.md and docs/ show in a code block, run as written, in
// order, against a server this test starts: the docs cannot drift from the binary.
//
// A command runs with NODATA_SERVER set to the test's server, in a scratch directory holding a
// copy of examples/ and of the SDK examples (the files the docs name), and must exit 0. `nodata serve ...` lines are
// started with their own flags (listen addresses and data directory moved to the test's) and must
// come up ready.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { describeRun, runCli } from './lib/cli.mjs';
import { REPO_ROOT } from './lib/grpc.mjs';
import { sdkExample } from './lib/sdk.mjs';
import { NodataServer, makeTempDir, startServer } from './lib/server.mjs';

/** Splits a shell command line into words: quotes, backslashes, and `#` comments. */
export function shellWords(line) {
  const words = [];
  let word = null;
  let quote = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else if (c === ' ' || c === '\t') {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '#' && word === null) {
      break;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote) throw new Error(`unclosed quote in: ${line}`);
  if (word !== null) words.push(word);
  return words;
}

/** `nodata ...` lines of a markdown file's code blocks (fenced, or indented by 4 spaces). */
export function documentedCommands(file) {
  const out = [];
  let fenced = false;
  let previousBlank = true;
  let indentedBlock = false;
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      return;
    }
    const indented = /^ {4}/.test(line);
    if (!fenced) {
      if (indented && (previousBlank || indentedBlock)) indentedBlock = true;
      else if (line.trim() !== '') indentedBlock = false;
    }
    previousBlank = line.trim() === '';
    if (!(fenced || (indentedBlock && indented))) return;
    const text = line.trim().replace(/^\$ /, '');
    // `nodata ...`, or `echo WORDS | nodata ...` (WORDS and a newline on its stdin).
    const piped = /^echo (.*?) \| (nodata .*)$/.exec(text);
    if (piped) out.push({ file: path.relative(REPO_ROOT, file), line: i + 1, text: piped[2], input: `${shellWords(piped[1]).join(' ')}\n` });
    else if (text.startsWith('nodata ')) out.push({ file: path.relative(REPO_ROOT, file), line: i + 1, text });
  });
  return out;
}

/** README.md first, then every other markdown file of the repository (not build trees). */
function markdownFiles() {
  const files = [];
  const skip = new Set(['node_modules', '.git']);
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (!skip.has(e.name) && !e.name.startsWith('build') && !fs.existsSync(path.join(p, 'CMakeCache.txt'))) walk(p);
      } else if (e.name.endsWith('.md') && p !== path.join(REPO_ROOT, 'README.md')) {
        files.push(p);
      }
    }
  };
  walk(REPO_ROOT);
  return [path.join(REPO_ROOT, 'README.md'), ...files];
}

/** `args` without the given flags and their values (`--flag v` or `--flag=v`). */
function withoutFlags(args, flags) {
  const out = [];
  for (let i = 0; i < args.length; i++) {
    if (flags.includes(args[i])) i++;
    else if (!flags.some((f) => args[i].startsWith(`${f}=`))) out.push(args[i]);
  }
  return out;
}

test('the docs show commands, and the shell-word splitter reads them as a shell does', () => {
  assert.deepEqual(shellWords(`nodata publish --header source=web '{"total": 12}'   # a comment`), ['nodata', 'publish', '--header', 'source=web', '{"total": 12}']);
  assert.deepEqual(shellWords(`nodata x "a \\"b\\"" c\\ d ''`), ['nodata', 'x', 'a "b"', 'c d', '']);
  assert.deepEqual(documentedCommands(path.join(REPO_ROOT, 'README.md')).find((c) => c.input)?.text.split(' ').slice(0, 2), ['nodata', 'publish'], 'a piped command is found with its input');
  const all = markdownFiles().flatMap(documentedCommands);
  assert.ok(all.length >= 20, `found ${all.length} documented commands`);
});

test('every command in README.md and docs/ runs as written', { timeout: 600000 }, async (t) => {
  const scratch = makeTempDir('nodata-docs-');
  t.after(() => fs.rmSync(scratch, { recursive: true, force: true }));
  fs.cpSync(path.join(REPO_ROOT, 'examples'), path.join(scratch, 'examples'), { recursive: true });
  // The TLS examples' certificates, as the README says to make them.
  execFileSync('sh', [path.join(scratch, 'examples/tls/make-certs.sh')], { stdio: 'ignore' });
  // The component examples the docs name (filter.wasm, router.wasm), built by `make component-sdk`.
  const components = path.join(process.env.COMPONENT_SDK_DIR ?? path.join(REPO_ROOT, 'build-component-sdk'), 'c');
  for (const name of ['filter.wasm', 'router.wasm', 'field_map.wasm']) {
    assert.ok(fs.existsSync(path.join(components, name)), `${path.join(components, name)} is missing: run \`make component-sdk\` first`);
    fs.copyFileSync(path.join(components, name), path.join(scratch, name));
  }
  // The C++ SDK's program components the docs run as build-sdk/examples/NAME (`make sdk`).
  fs.mkdirSync(path.join(scratch, 'build-sdk', 'examples'), { recursive: true });
  for (const name of ['counter_source', 'file_sink_component', 'filter_component']) {
    fs.copyFileSync(sdkExample(name), path.join(scratch, 'build-sdk', 'examples', name));
    fs.chmodSync(path.join(scratch, 'build-sdk', 'examples', name), 0o755);
  }
  const srv = await startServer(t, { args: ['--parquet-roll-interval', '1s', '--maintenance-ms', '100'] });
  const env = { NODATA_SERVER: srv.grpcAddr, XDG_CACHE_HOME: path.join(scratch, 'cache') };

  for (const file of markdownFiles()) {
    for (const cmd of documentedCommands(file)) {
      const where = `${cmd.file}:${cmd.line}: ${cmd.text}`;
      const args = shellWords(cmd.text).slice(1);
      if (args[0] === 'serve') {
        // Its own flags; the listen addresses and the data directory are the test's.
        const other = new NodataServer({ args: withoutFlags(args.slice(1), ['--listen', '--http', '--data']), cwd: scratch });
        t.after(() => other.cleanup());
        await other.start().catch((err) => assert.fail(`${where}\n${err.message}`));
        await other.stop();
        continue;
      }
      const r = await runCli(args, { env, cwd: scratch, timeoutMs: 120000, input: cmd.input }).catch((err) => assert.fail(`${where}\n${err.message}`));
      assert.equal(r.code, 0, `${where}\n${describeRun(args, r)}`);
    }
  }
});
