// `serve --auth tokens`: every gRPC call and HTTP request (but /healthz and, with
// --metrics-auth none, /metrics) carries a bearer token made by `nodata token create`, and its
// scopes decide: publish:PATTERN, consume:PATTERN, query:PATTERN, group:PATTERN, admin. Refusals are
// UNAUTHENTICATED / PERMISSION_DENIED (HTTP 401 / 403) naming the missing scope, never the token.
// The clients: grpc-js with the metadata set by hand, the CLI (--token, NODATA_TOKEN), the C++
// SDK, and program components (which reach the server over its unix socket).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs, { readFileSync } from 'node:fs';
import path from 'node:path';
import { Api, Code, codeName, expectStatus } from './lib/grpc.mjs';
import { describeRun, runCli, runProgram } from './lib/cli.mjs';
import { sdkExample } from './lib/sdk.mjs';
import { makeTempDir, nodataBin, startServer } from './lib/server.mjs';
import { ev, sleep, topicName } from './lib/util.mjs';

const T = { timeout: 120000 };

async function mint(dataDir, name, scopes, extra = []) {
  const args = ['token', 'create', name, ...scopes.flatMap((s) => ['--scope', s]), ...extra, '--data', dataDir];
  const r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  return r.stdout.trimEnd().split('\n').at(-1);
}

async function authServer(t, extraArgs = []) {
  const dataDir = path.join(makeTempDir(), 'data');
  const tokens = {
    admin: await mint(dataDir, 'ops', ['admin']),
    pub: await mint(dataDir, 'orders-pub', ['publish:orders.*']),
    con: await mint(dataDir, 'orders-eu-reader', ['consume:orders.eu', 'query:daily', 'group:eu-*']),
  };
  const srv = await startServer(t, { dataDir, args: ['--auth', 'tokens', ...extraArgs] });
  return { srv, dataDir, tokens };
}

test('without a token every call is UNAUTHENTICATED; an admin token may do everything', T, async (t) => {
  const { srv, tokens } = await authServer(t);
  const topic = topicName('orders.');
  await expectStatus(srv.api.createTopic(topic, 1), Code.UNAUTHENTICATED, 'no token');
  await expectStatus(srv.api.publishBatch([ev(topic)]), Code.UNAUTHENTICATED, 'no token');
  await expectStatus(srv.api.listTopics(), Code.UNAUTHENTICATED, 'no token');
  const err = await expectStatus(srv.api.readTopic('x'), Code.UNAUTHENTICATED, 'no token');
  assert.match(err.details, /wants a bearer token .*--token or NODATA_TOKEN/);

  const admin = new Api(srv.grpcAddr, { token: tokens.admin });
  t.after(() => admin.close());
  await admin.createTopic(topic, 2);
  assert.equal((await admin.publishBatch([ev(topic), ev(topic)])).length, 2);
  assert.equal((await admin.readTopic(topic)).length, 2);

  const wrong = tokens.admin.slice(0, -4) + 'AAAA';
  const bad = new Api(srv.grpcAddr, { token: wrong });
  t.after(() => bad.close());
  const refused = await expectStatus(bad.listTopics(), Code.UNAUTHENTICATED, 'wrong secret');
  assert.equal(refused.details, 'the bearer token is wrong');
  assert.ok(!refused.details.includes(wrong.slice(29)), 'the secret is not echoed');
  srv.assertNoCrash();
});

test('scopes decide: publish, consume and query on their patterns, admin for the rest', T, async (t) => {
  const { srv, tokens } = await authServer(t);
  const admin = new Api(srv.grpcAddr, { token: tokens.admin });
  const pub = new Api(srv.grpcAddr, { token: tokens.pub });
  const con = new Api(srv.grpcAddr, { token: tokens.con });
  t.after(() => [admin, pub, con].forEach((a) => a.close()));
  for (const name of ['orders.eu', 'orders.us', 'payments']) await admin.createTopic(name, 1);

  assert.equal((await pub.publishBatch([ev('orders.eu'), ev('orders.us')])).length, 2);
  let err = await expectStatus(pub.publishBatch([ev('orders.eu'), ev('payments')]), Code.PERMISSION_DENIED, 'a batch naming payments');
  assert.equal(err.details, 'orders-pub lacks the scope publish:payments (or a pattern covering payments, or admin)');
  err = await expectStatus(pub.createTopic('orders.new', 1), Code.PERMISSION_DENIED, 'create without admin');
  assert.match(err.details, /orders-pub lacks the scope admin/);
  await expectStatus(pub.readTopic('orders.eu'), Code.PERMISSION_DENIED, 'read without consume');
  await expectStatus(con.publishBatch([ev('orders.eu')]), Code.PERMISSION_DENIED, 'publish without publish');
  assert.equal((await con.readTopic('orders.eu')).length, 1, 'only what was stored: the refused batch stored nothing');
  await expectStatus(con.readTopic('orders.us'), Code.PERMISSION_DENIED, 'consume of another topic');
  await expectStatus(con.commit('eu-billing', 'orders.us', [{ partition: 0, offset: 1 }]), Code.PERMISSION_DENIED, 'commit elsewhere');
  // Groups have scopes of their own: group:PATTERN to join, commit in and inspect one.
  err = await expectStatus(con.commit('g', 'orders.eu', [{ partition: 0, offset: 1 }]), Code.PERMISSION_DENIED, 'a group out of scope');
  assert.equal(err.details, 'orders-eu-reader lacks the scope group:g (or a pattern covering g, or admin)');
  await con.commit('eu-billing', 'orders.eu', [{ partition: 0, offset: 1 }]);
  assert.equal((await con.getGroup('eu-billing', 'orders.eu')).partitions[0].committed_offset, 1);
  await expectStatus(con.getGroup('us-billing', 'orders.eu'), Code.PERMISSION_DENIED, 'inspect a group out of scope');
  const outOfGroup = con.subscribe({ topic: 'orders.eu', group: 'other', start: { earliest: true } });
  await outOfGroup.end;
  assert.equal(codeName(outOfGroup.error?.code), 'PERMISSION_DENIED');
  assert.match(outOfGroup.error?.details ?? '', /lacks the scope group:other/);

  // A subscription is checked when it starts.
  const denied = con.subscribe({ topic: 'payments', start: { earliest: true } });
  await denied.end;
  assert.equal(codeName(denied.error?.code), 'PERMISSION_DENIED');
  const sub = con.subscribe({ topic: 'orders.eu', start: { earliest: true } });
  await sub.waitFor((s) => s.records.length >= 1, { what: 'the stored record' });
  sub.cancel();
  const inGroup = con.subscribe({ topic: 'orders.eu', group: 'eu-audit', start: { earliest: true } });
  await inGroup.waitFor((s) => s.records.length >= 1, { what: 'the stored record, in a group' });
  inGroup.cancel();

  // Listing shows the topics a principal may publish to or consume.
  assert.deepEqual((await pub.listTopics()).map((x) => x.name).sort(), ['orders.eu', 'orders.us']);
  assert.deepEqual((await con.listTopics()).map((x) => x.name), ['orders.eu']);
  assert.equal((await admin.listTopics()).length, 3);
  await expectStatus(con.getTopic('payments'), Code.PERMISSION_DENIED, 'get of an unseen topic');

  // A PublishStream is refused at its first batch that names a topic out of scope.
  const stream = pub.ingest.PublishStream();
  const answers = [];
  stream.on('data', (d) => answers.push(d));
  const ended = new Promise((resolve) => stream.on('error', resolve).on('end', () => resolve(null)));
  stream.write({ events: [ev('orders.eu')] });
  stream.write({ events: [ev('payments')] });
  const streamErr = await ended;
  assert.equal(answers.length, 1, 'the batch before the refused one is stored');
  assert.equal(codeName(streamErr?.code), 'PERMISSION_DENIED');
  srv.assertNoCrash();
});

test('the CLI and the SDK send their token; revoked and expired tokens stop working at once', T, async (t) => {
  const { srv, dataDir, tokens } = await authServer(t);
  const server = ['--server', srv.grpcAddr];
  let args = ['topic', 'create', 'orders.eu', ...server, '--token', tokens.admin];
  let r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  args = ['publish', '--topic', 'orders.eu', '--id', 'cli-1', 'x', ...server];
  r = await runCli(args, { env: { NODATA_TOKEN: tokens.pub } });
  assert.equal(r.code, 0, describeRun(args, r));
  r = await runCli(['topic', 'list', ...server]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /UNAUTHENTICATED: this server wants a bearer token/);
  r = await runCli(['topic', 'delete', 'orders.eu', ...server, '--token', tokens.pub]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /PERMISSION_DENIED: orders-pub lacks the scope admin/);

  // The C++ SDK.
  const sdk = await runProgram(sdkExample('publish_example'), ['--address', srv.grpcAddr, '--topic', 'orders.eu', '--count', '500', '--id-prefix', 'sdk'], {
    env: { NODATA_TOKEN: tokens.pub }, timeoutMs: 60000,
  });
  assert.equal(sdk.code, 0, sdk.stderr);
  assert.equal(JSON.parse(sdk.stdout.trim().split('\n').pop()).acked, 500);

  // Revoked while the server runs: refused within the refresh interval (a second).
  await runCli(['token', 'revoke', 'orders-pub', '--data', dataDir]);
  await sleep(1200);
  r = await runCli(['publish', '--topic', 'orders.eu', '--id', 'cli-2', 'y', ...server, '--token', tokens.pub]);
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /UNAUTHENTICATED: the bearer token is revoked/);
  // Minted just before its use: valid now, expired three seconds on.
  const short = await mint(dataDir, 'short', ['admin'], ['--expires', '3s']);
  r = await runCli(['topic', 'list', ...server, '--token', short]);
  assert.equal(r.code, 0, r.stderr);
  await sleep(3200);
  r = await runCli(['topic', 'list', ...server, '--token', short]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the bearer token is expired/);
  const admin = new Api(srv.grpcAddr, { token: tokens.admin });
  t.after(() => admin.close());
  assert.equal((await admin.readTopic('orders.eu')).length, 501, 'the CLI event and the SDK\'s 500');
  srv.assertNoCrash();
});

test('HTTP: /healthz is open, /metrics and /v1/aggregations want a token with the scope', T, async (t) => {
  const { srv, tokens } = await authServer(t);
  const get = async (p, token) => {
    const res = await fetch(`http://${srv.httpAddr}${p}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(10000),
    });
    return { status: res.status, body: await res.text() };
  };
  assert.deepEqual(await get('/healthz'), { status: 200, body: 'ok\n' });
  const noToken = await get('/metrics');
  assert.equal(noToken.status, 401);
  assert.match(noToken.body, /wants a bearer token/);
  assert.equal((await get('/metrics', tokens.pub)).status, 200);
  const forbidden = await get('/v1/aggregations/daily', tokens.pub);
  assert.equal(forbidden.status, 403);
  assert.equal(JSON.parse(forbidden.body).error.message, 'orders-pub lacks the scope query:daily (or a pattern covering daily, or admin)');
  assert.equal((await get('/v1/aggregations/daily', tokens.con)).status, 404, 'allowed, and there is no such aggregation');
  assert.deepEqual(JSON.parse((await get('/v1/aggregations', tokens.pub)).body), { aggregations: [] });
  assert.equal((await get('/v1/aggregations')).status, 401);

  // --metrics-auth none opens /metrics alone.
  const open = await startServer(t, { args: ['--auth', 'tokens', '--metrics-auth', 'none'] });
  const res = await fetch(`http://${open.httpAddr}/metrics`, { signal: AbortSignal.timeout(10000) });
  assert.equal(res.status, 200);
  await res.text();
  srv.assertNoCrash();
});

test('program components reach a server with --auth tokens through its unix socket', T, async (t) => {
  const { srv, tokens } = await authServer(t);
  const server = ['--server', srv.grpcAddr, '--token', tokens.admin];
  const topic = topicName('orders.prog');
  let r = await runCli(['topic', 'create', topic, '--partitions', '2', ...server]);
  assert.equal(r.code, 0, r.stderr);
  const n = 1000;
  r = await runCli(['component', 'add', 'src', '--exec', sdkExample('counter_source'), '--source', topic, '--config', String(n), ...server]);
  assert.equal(r.code, 0, r.stderr);
  const admin = new Api(srv.grpcAddr, { token: tokens.admin });
  t.after(() => admin.close());
  const deadline = Date.now() + 60000;
  let stored = 0;
  while (Date.now() < deadline && stored < n) {
    stored = (await admin.readTopic(topic)).length;
    if (stored < n) await sleep(200);
  }
  assert.equal(stored, n);
  srv.assertNoCrash();
});

test('--auth takes none or tokens; with tokens and TLS the server may listen on every address', T, async () => {
  const dataDir = path.join(makeTempDir(), 'data');
  const r = await runProgram(nodataBin(), ['serve', '--data', dataDir, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--auth', 'password'], { timeoutMs: 30000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--auth must be none or tokens; got "password"/);
  const exposed = await runProgram(nodataBin(), ['serve', '--data', dataDir, '--listen', '0.0.0.0:0', '--http', '127.0.0.1:0', '--auth', 'tokens'], { timeoutMs: 30000 });
  assert.equal(exposed.code, 1, 'tokens without TLS are not enough off loopback');
  assert.match(exposed.stderr, /without TLS and client authentication/);
});

test('the audit log has a JSON line for every admin action and every refusal, never a secret', T, async (t) => {
  const { srv, dataDir, tokens } = await authServer(t);
  const admin = new Api(srv.grpcAddr, { token: tokens.admin });
  const pub = new Api(srv.grpcAddr, { token: tokens.pub });
  t.after(() => [admin, pub].forEach((a) => a.close()));
  await admin.createTopic('orders.audit', 1);
  await expectStatus(pub.createTopic('orders.other', 1), Code.PERMISSION_DENIED, 'create without admin');
  await expectStatus(pub.publishBatch([ev('payments')]), Code.PERMISSION_DENIED, 'publish out of scope');
  await expectStatus(srv.api.listTopics(), Code.UNAUTHENTICATED, 'no token');
  await expectStatus(admin.deleteTopic('no-such-topic'), Code.NOT_FOUND, 'a failed admin action');
  await admin.deleteTopic('orders.audit');
  const res = await fetch(`http://${srv.httpAddr}/v1/aggregations/daily`, { headers: { authorization: `Bearer ${tokens.pub}` } });
  assert.equal(res.status, 403);
  await res.text();
  await mint(dataDir, 'late', ['consume:x']);
  const r = await runCli(['token', 'revoke', 'late', '--data', dataDir]);
  assert.equal(r.code, 0, r.stderr);

  const text = readFileSync(path.join(dataDir, 'audit.log'), 'utf8');
  for (const token of Object.values(tokens)) assert.ok(!text.includes(token.slice(29)), 'no secret in the audit log');
  const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
  const pick = (l) => ({ principal: l.principal, call: l.call, request: l.request, status: l.status });
  const mine = lines.filter((l) => !(l.call === 'token create' && ['ops', 'orders-pub', 'orders-eu-reader'].includes(l.request.name)));
  assert.deepEqual(mine.map(pick), [
    { principal: 'ops', call: '/nodata.v1.TopicService/CreateTopic', request: { name: 'orders.audit' }, status: 'OK' },
    { principal: 'orders-pub', call: '/nodata.v1.TopicService/CreateTopic', request: { name: 'orders.other' }, status: 'PERMISSION_DENIED' },
    { principal: 'orders-pub', call: '/nodata.v1.IngestService/PublishBatch', request: {}, status: 'PERMISSION_DENIED' },
    { principal: '', call: '/nodata.v1.TopicService/ListTopics', request: {}, status: 'UNAUTHENTICATED' },
    { principal: 'ops', call: '/nodata.v1.TopicService/DeleteTopic', request: { name: 'no-such-topic' }, status: 'NOT_FOUND' },
    { principal: 'ops', call: '/nodata.v1.TopicService/DeleteTopic', request: { name: 'orders.audit' }, status: 'OK' },
    { principal: 'orders-pub', call: 'GET /v1/aggregations/daily', request: {}, status: 'PERMISSION_DENIED' },
    { principal: 'cli', call: 'token create', request: { name: 'late', scopes: 'consume:x', expires_at: null }, status: 'OK' },
    { principal: 'cli', call: 'token revoke', request: { name: 'late' }, status: 'OK' },
  ]);
  assert.equal(mine[2].message, 'orders-pub lacks the scope publish:payments (or a pattern covering payments, or admin)');
  assert.match(mine[0].peer, /^ipv4:127\.0\.0\.1:\d+$/);
  assert.match(mine[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.equal(lines.filter((l) => l.call === 'token create').length, 4, 'the three tokens of the setup and the late one');
  srv.assertNoCrash();
});

/** A JWT of `claims` signed by Node's crypto: ES256 with an EC key, RS256 with an RSA one, or HS256 with a secret. */
function signJwt(claims, { key, alg }) {
  const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
  const input = `${b64({ alg, typ: 'JWT' })}.${b64(claims)}`;
  let sig;
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest();
  else sig = crypto.sign('sha256', Buffer.from(input), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${input}.${sig.toString('base64url')}`;
}

test('--jwt-key: JWTs signed by an outside issuer are bearer tokens; sub is the principal, scope its scopes', T, async (t) => {
  const dir = makeTempDir();
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ecPem = ec.publicKey.export({ type: 'spki', format: 'pem' });
  fs.writeFileSync(path.join(dir, 'ec.pem'), ecPem);
  fs.writeFileSync(path.join(dir, 'rsa.pem'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  const dataDir = path.join(dir, 'data');
  const admin = await mint(dataDir, 'ops', ['admin']);
  const srv = await startServer(t, {
    dataDir,
    args: ['--auth', 'tokens', '--jwt-key', path.join(dir, 'ec.pem'), '--jwt-key', path.join(dir, 'rsa.pem'),
      '--jwt-issuer', 'https://idp.example', '--jwt-audience', 'nodata'],
  });
  const ops = new Api(srv.grpcAddr, { token: admin });
  t.after(() => ops.close());
  await ops.createTopic('orders.eu', 1);
  await ops.createTopic('payments', 1);
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: 'https://idp.example', aud: ['nodata'], sub: 'checkout', exp: now + 600, scope: 'openid publish:orders.*' };
  const apis = [];
  const as = (token) => { const a = new Api(srv.grpcAddr, { token }); apis.push(a); return a; };
  t.after(() => apis.forEach((a) => a.close()));

  const es = as(signJwt(claims, { key: ec.privateKey, alg: 'ES256' }));
  assert.equal((await es.publishBatch([ev('orders.eu')])).length, 1);
  const denied = await expectStatus(es.publishBatch([ev('payments')]), Code.PERMISSION_DENIED, 'out of its scopes');
  assert.equal(denied.details, 'checkout lacks the scope publish:payments (or a pattern covering payments, or admin)');
  assert.equal((await as(signJwt(claims, { key: rsa.privateKey, alg: 'RS256' })).publishBatch([ev('orders.eu')])).length, 1);

  const refusals = [
    [{ ...claims, exp: now - 120 }, { key: ec.privateKey, alg: 'ES256' }, /the JWT is refused: expired/],
    [{ ...claims, iss: 'https://evil' }, { key: ec.privateKey, alg: 'ES256' }, /its issuer is not https:\/\/idp.example/],
    [{ ...claims, aud: 'other' }, { key: ec.privateKey, alg: 'ES256' }, /its audience does not include nodata/],
    [claims, { key: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, alg: 'ES256' }, /signature does not verify/],
    [{ ...claims, scope: 'admin' }, { key: ecPem, alg: 'HS256' }, /the JWT is refused/],
  ];
  for (const [c, how, why] of refusals) {
    const err = await expectStatus(as(signJwt(c, how)).listTopics(), Code.UNAUTHENTICATED, String(why));
    assert.match(err.details, why);
  }
  // The CLI takes one as --token.
  const r = await runCli(['publish', '--topic', 'orders.eu', '--id', 'jwt-cli', 'x', '--server', srv.grpcAddr, '--token', signJwt(claims, { key: ec.privateKey, alg: 'ES256' })]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await ops.readTopic('orders.eu')).length, 3);
  const audit = fs.readFileSync(path.join(dataDir, 'audit.log'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.ok(audit.some((l) => l.principal === 'checkout' && l.status === 'PERMISSION_DENIED'), 'the JWT\'s sub in the audit log');
  srv.assertNoCrash();
});

test('components run as the principal that registered them: its scopes at registration and on every call', T, async (t) => {
  const dataDir = path.join(makeTempDir(), 'data');
  const admin = await mint(dataDir, 'ops', ['admin']);
  // etl may manage components etl-*, read orders.raw and publish to orders.clean: no more.
  const etl = await mint(dataDir, 'etl', ['component:etl-*', 'consume:orders.raw', 'publish:orders.clean']);
  const srv = await startServer(t, { dataDir, args: ['--auth', 'tokens'] });
  const ops = new Api(srv.grpcAddr, { token: admin });
  const etlApi = new Api(srv.grpcAddr, { token: etl });
  t.after(() => [ops, etlApi].forEach((a) => a.close()));
  for (const name of ['orders.raw', 'orders.clean', 'payments']) await ops.createTopic(name, 1);
  const server = ['--server', srv.grpcAddr, '--token', etl];

  // Refused at registration: a name, or a topic, out of its scopes.
  let r = await runCli(['component', 'add', 'other-src', '--exec', sdkExample('counter_source'), '--source', 'orders.clean', '--config', '1', ...server]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /PERMISSION_DENIED: etl lacks the scope component:other-src/);
  r = await runCli(['component', 'add', 'etl-pay', '--exec', sdkExample('counter_source'), '--source', 'payments', '--config', '1', ...server]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /PERMISSION_DENIED: etl lacks the scope publish:payments/);

  // An SDK source within its scopes runs, with the token the server gave it.
  r = await runCli(['component', 'add', 'etl-src', '--exec', sdkExample('counter_source'), '--source', 'orders.clean', '--config', '200', ...server]);
  assert.equal(r.code, 0, r.stderr);
  const deadline = Date.now() + 60000;
  let stored = 0;
  while (Date.now() < deadline && stored < 200) {
    stored = (await ops.readTopic('orders.clean')).length;
    if (stored < 200) await sleep(200);
  }
  assert.equal(stored, 200);
  const listed = await etlApi.listComponents();
  assert.deepEqual(listed.map((c) => c.name), ['etl-src'], 'it lists the components it may manage');

  // A program that tries to publish outside its owner's scopes is refused on that call.
  const dir = makeTempDir();
  const prog = path.join(dir, 'rogue.sh');
  fs.writeFileSync(prog, `#!/bin/sh
"${nodataBin()}" publish --server "$NODATA_ADDR" --topic payments --id rogue-1 x 2>&1 || echo "rogue refused"
"${nodataBin()}" publish --server "$NODATA_ADDR" --topic orders.clean --id rogue-2 y 2>&1 && echo "own output stored"
exec sleep 600
`);
  fs.chmodSync(prog, 0o755);
  r = await runCli(['component', 'add', 'etl-rogue', '--exec', prog, '--source', 'orders.clean', ...server]);
  assert.equal(r.code, 0, r.stderr);
  let lines = [];
  const until = Date.now() + 30000;
  while (Date.now() < until && !lines.some((l) => l.includes('own output stored'))) {
    const out = await runCli(['component', 'logs', 'etl-rogue', '--json', ...server]);
    lines = out.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).text ?? '');
    await sleep(200);
  }
  assert.ok(lines.some((l) => /PERMISSION_DENIED: etl lacks the scope publish:payments/.test(l)), lines.join('\n'));
  assert.ok(lines.includes('rogue refused') && lines.includes('own output stored'), lines.join('\n'));
  assert.equal((await ops.readTopic('payments')).length, 0);

  // Aggregations: aggregation:NAME to manage, and the input's consume scope.
  r = await runCli(['aggregation', 'add', 'etl-agg', '--input', 'orders.raw', '--key', 'key', '--window', 'tumbling:1m', '--measure', 'n=count()', ...server]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /PERMISSION_DENIED: etl lacks the scope aggregation:etl-agg/);
  const reader = await mint(dataDir, 'agg-owner', ['aggregation:etl-*']);
  r = await runCli(['aggregation', 'add', 'etl-agg', '--input', 'orders.raw', '--key', 'key', '--window', 'tumbling:1m', '--measure', 'n=count()', '--server', srv.grpcAddr, '--token', reader]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /PERMISSION_DENIED: agg-owner lacks the scope consume:orders.raw/);
  srv.assertNoCrash();
});
