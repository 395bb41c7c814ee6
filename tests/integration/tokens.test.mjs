// `nodata token create|list|revoke --data DIR`: tokens made on the data directory, shown once
// (alone on the last line of `create`), kept only as a salted hash, listed without secrets,
// revoked, and made while a server runs on the same directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describeRun, runCli } from './lib/cli.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';

const T = { timeout: 120000 };
const TOKEN_RE = /^ndt_[0-9a-f]{24}_[A-Za-z0-9_-]{43}$/;

async function ok(args) {
  const r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  return r;
}

/** Every byte of every file under `dir`, for a search. */
function allBytes(dir) {
  const parts = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = path.join(e.path ?? e.parentPath, e.name);
    if (e.isFile()) parts.push(fs.readFileSync(p));
  }
  return Buffer.concat(parts);
}

test('a token is printed once, alone on the last line, and stored only as a salted hash', T, async () => {
  const data = path.join(makeTempDir(), 'data');
  const r = await ok(['token', 'create', 'alice', '--scope', 'publish:orders.*', '--scope', 'consume:orders.*',
    '--expires', '30d', '--data', data]);
  const lines = r.stdout.trimEnd().split('\n');
  const token = lines.at(-1);
  assert.match(token, TOKEN_RE);
  assert.match(r.stdout, /created token alice with scopes publish:orders\.\* consume:orders\.\*, expiring \d{4}-/);
  const admin = (await ok(['token', 'create', 'root', '--scope', 'admin', '--data', data])).stdout.trimEnd().split('\n').at(-1);
  assert.match(admin, TOKEN_RE);
  assert.notEqual(admin, token);

  // Neither secret is anywhere in the data directory (the catalog and its WAL included).
  const bytes = allBytes(data);
  for (const t of [token, admin]) {
    const secret = t.slice(t.lastIndexOf('_') + 1);
    assert.equal(bytes.indexOf(secret), -1, 'the secret is not stored');
    assert.notEqual(bytes.indexOf(t.slice(4, 28)), -1, 'the public id is stored');
  }

  const list = await ok(['token', 'list', '--data', data, '--json']);
  const rows = list.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((x) => [x.name, x.scopes, x.revoked_at]), [
    ['alice', 'publish:orders.* consume:orders.*', null],
    ['root', 'admin', null],
  ]);
  const expires = Date.parse(rows[0].expires_at);
  assert.ok(Math.abs(expires - (Date.now() + 30 * 86400e3)) < 120e3, rows[0].expires_at);
  assert.equal(rows[1].expires_at, null);
  assert.ok(!list.stdout.includes(token.slice(29)) && !list.stdout.includes(admin.slice(29)));

  await ok(['token', 'revoke', 'alice', '--data', data]);
  const after = (await ok(['token', 'list', '--data', data, '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(Date.parse(after[0].revoked_at) > 0, 'revoked');
  assert.equal(after[1].revoked_at, null);
  const again = await runCli(['token', 'revoke', 'alice', '--data', data]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /no token named alice that is not revoked already/);
  const reused = await runCli(['token', 'create', 'alice', '--scope', 'admin', '--data', data]);
  assert.equal(reused.code, 1);
  assert.match(reused.stderr, /token "alice" already exists/);
});

test('bad token requests are usage errors that say what is accepted', T, async () => {
  const data = path.join(makeTempDir(), 'data');
  const cases = [
    [['token', 'create', 'bob', '--scope', 'read:orders'], /unknown action "read".*publish:PATTERN, consume:PATTERN, query:PATTERN, group:PATTERN, component:PATTERN, aggregation:PATTERN or admin/],
    [['token', 'create', 'bob', '--scope', 'publish:a/b'], /scope "publish:a\/b"/],
    [['token', 'create', 'bob', '--scope', 'publish:or*ders'], /scope "publish:or\*ders"/],
    [['token', 'create', 'bob'], /--scope is required/],
    [['token', 'create', 'a/b', '--scope', 'admin'], /token name/],
    [['token', 'create', 'bob', '--scope', 'admin', '--expires', 'soon'], /--expires must be a duration/],
  ];
  for (const [args, message] of cases) {
    const full = [...args, '--data', data];
    const r = await runCli(full);
    assert.equal(r.code, 2, describeRun(full, r));
    assert.match(r.stderr, message, describeRun(full, r));
  }
  const noData = await runCli(['token', 'list']);
  assert.equal(noData.code, 2);
  assert.match(noData.stderr, /--data is required/);
});

test('tokens can be made while a server runs on the data directory', T, async (t) => {
  const srv = await startServer(t);
  await srv.api.createTopic('orders', 1);
  const r = await ok(['token', 'create', 'svc', '--scope', 'publish:orders', '--data', srv.dataDir]);
  assert.match(r.stdout.trimEnd().split('\n').at(-1), TOKEN_RE);
  await srv.restart();
  assert.equal((await srv.api.getTopic('orders')).partition_count, 1, 'the catalog is intact');
  const list = await ok(['token', 'list', '--data', srv.dataDir, '--json']);
  assert.equal(JSON.parse(list.stdout.trim()).name, 'svc');
  srv.assertNoCrash();
});
