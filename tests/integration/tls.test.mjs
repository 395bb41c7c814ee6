// TLS on both listeners (`serve --tls-cert --tls-key`), client certificates (`--tls-client-ca`),
// certificates reloaded on SIGHUP without dropping connections, the refusal to serve where other
// machines reach the server without TLS and client authentication (`--insecure`), and the clients:
// the CLI (--tls-ca/--tls-cert/--tls-key, NODATA_TLS_*), the C++ SDK and program components.
// Certificates are made by the `openssl` command; the clients that check the server are grpc-js,
// Node's https and `openssl s_client`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { Api, Code, expectStatus, grpc } from './lib/grpc.mjs';
import { describeRun, parseJsonOut, runCli, runProgram } from './lib/cli.mjs';
import { sdkExample } from './lib/sdk.mjs';
import { freePort, makeTempDir, nodataBin, startServer } from './lib/server.mjs';
import { ev, sleep, topicName } from './lib/util.mjs';

const T = { timeout: 120000 };

function openssl(args, cwd) {
  return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** A key and a certificate for `cn` signed by the CA in `dir` (ca.pem, ca.key), or self-signed. */
function issue(dir, name, { cn, san, selfSigned = false, days = 2 }) {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, san ? `subjectAltName=${san}\n` : 'basicConstraints=CA:FALSE\n');
  if (selfSigned) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
      '-out', cert, '-days', String(days), '-subj', `/CN=${cn}`], dir);
  } else {
    const csr = path.join(dir, `${name}.csr`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr,
      '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', csr, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', cert,
      '-days', String(days), '-extfile', ext], dir);
  }
  return { key, cert };
}

/** A CA, a server certificate for 127.0.0.1, a client certificate and a stranger's (self-signed). */
function makePki() {
  const dir = makeTempDir('nodata-tls-');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key',
    '-out', 'ca.pem', '-days', '2', '-subj', '/CN=nodata test CA'], dir);
  const server = issue(dir, 'server', { cn: 'first', san: 'IP:127.0.0.1,DNS:localhost' });
  const renewed = issue(dir, 'renewed', { cn: 'renewed', san: 'IP:127.0.0.1,DNS:localhost' });
  const client = issue(dir, 'client', { cn: 'alice' });
  const stranger = issue(dir, 'stranger', { cn: 'mallory', selfSigned: true });
  const ca = path.join(dir, 'ca.pem');
  // The server reads its files from paths that a reload replaces.
  const live = { cert: path.join(dir, 'live.pem'), key: path.join(dir, 'live.key') };
  fs.copyFileSync(server.cert, live.cert);
  fs.copyFileSync(server.key, live.key);
  return { dir, ca, server, renewed, client, stranger, live };
}

function tlsCredentials(pki, client) {
  return grpc.credentials.createSsl(
    fs.readFileSync(pki.ca),
    client ? fs.readFileSync(client.key) : null,
    client ? fs.readFileSync(client.cert) : null,
  );
}

/** GET https://addr/path with the CA (and a client certificate); resolves { status, body }. */
function httpsGet(addr, urlPath, { ca, client } = {}) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = https.get({
      host, port, path: urlPath, ca: ca && fs.readFileSync(ca),
      cert: client && fs.readFileSync(client.cert), key: client && fs.readFileSync(client.key),
      agent: false, timeout: 10000,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

/**
 * The subject CN of the certificate a new TLS connection to `addr` is served (a server that
 * wants a client certificate shows its own before it ends the handshake: the exit code is moot).
 */
function servedCn(addr, ca) {
  const out = spawnSync('openssl', ['s_client', '-connect', addr, '-CAfile', ca], {
    input: '', timeout: 10000,
  }).stdout.toString();
  const m = /subject=.*CN\s*=\s*([^,\n]+)/.exec(out);
  return m ? m[1].trim() : `(no subject in: ${out.slice(0, 300)})`;
}

function tlsArgs(pki, { clientCa = false, live = false } = {}) {
  const files = live ? pki.live : pki.server;
  return ['--tls-cert', files.cert, '--tls-key', files.key, ...(clientCa ? ['--tls-client-ca', pki.ca] : [])];
}

test('with --tls-cert and --tls-key both listeners speak TLS and plaintext clients are turned away', T, async (t) => {
  const pki = makePki();
  const srv = await startServer(t, { args: tlsArgs(pki), credentials: tlsCredentials(pki) });
  const topic = topicName('tls');
  await srv.api.createTopic(topic, 2);
  const events = Array.from({ length: 200 }, (_, i) => ev(topic, { data: `e${i}` }));
  const acks = await srv.api.publishBatch(events);
  assert.equal(acks.length, 200);
  assert.equal((await srv.api.readTopic(topic)).length, 200);

  // A plaintext gRPC client gets no answer, only a failed connection.
  const plain = new Api(srv.grpcAddr);
  await expectStatus(plain.createTopic(topicName('plain'), 1, { timeoutMs: 5000 }), Code.UNAVAILABLE, 'plaintext gRPC');
  plain.close();

  // The CLI: --tls-ca, or NODATA_TLS_CA.
  const server = ['--server', srv.grpcAddr];
  let args = ['publish', '--topic', topic, '--id', 'cli-1', 'from the CLI', ...server, '--tls-ca', pki.ca];
  let r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  args = ['topic', 'get', topic, '--json', ...server];
  r = await runCli(args, { env: { NODATA_TLS_CA: pki.ca } });
  assert.equal(r.code, 0, describeRun(args, r));
  assert.equal(parseJsonOut(args, r).name, topic);
  args = ['topic', 'list', ...server];
  r = await runCli(args);
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /UNAVAILABLE: cannot reach the server .*with TLS only when --tls or --tls-ca/);
  // A CA that did not sign the server's certificate: the CLI says the handshake failed.
  args = ['topic', 'list', ...server, '--tls-ca', pki.stranger.cert];
  r = await runCli(args);
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /TLS handshake with .* failed/);
  args = ['topic', 'list', ...server, '--tls-ca', path.join(pki.dir, 'missing.pem')];
  r = await runCli(args);
  assert.equal(r.code, 2, describeRun(args, r));
  assert.match(r.stderr, /--tls-ca .*missing\.pem: cannot read it/);
  assert.equal((await srv.api.readTopic(topic)).length, 201);

  // HTTPS: /healthz and /metrics answer over TLS, and plain HTTP gets nothing.
  const health = await httpsGet(srv.httpAddr, '/healthz', { ca: pki.ca });
  assert.deepEqual(health, { status: 200, body: 'ok\n' });
  const metrics = await httpsGet(srv.httpAddr, '/metrics', { ca: pki.ca });
  assert.equal(metrics.status, 200);
  const expiry = /^nodata_tls_certificate_expiry_seconds (\S+)$/m.exec(metrics.body);
  assert.ok(expiry, 'the expiry gauge is exported');
  const notAfter = new Date(openssl(['x509', '-in', pki.server.cert, '-noout', '-enddate']).trim().slice('notAfter='.length));
  assert.equal(Number(expiry[1]), notAfter.getTime() / 1000);
  await assert.rejects(fetch(`http://${srv.httpAddr}/healthz`, { signal: AbortSignal.timeout(5000) }));
  assert.equal(servedCn(srv.grpcAddr, pki.ca), 'first');
  srv.assertNoCrash();
});

test('with --tls-client-ca a client needs a certificate from that CA; HTTP /healthz stays open', T, async (t) => {
  const pki = makePki();
  const srv = await startServer(t, { args: tlsArgs(pki, { clientCa: true }), credentials: tlsCredentials(pki, pki.client) });
  const topic = topicName('mtls');
  await srv.api.createTopic(topic, 1);
  assert.equal((await srv.api.publishBatch([ev(topic)])).length, 1);

  for (const [what, client] of [['no client certificate', null], ['a certificate of another CA', pki.stranger]]) {
    const api = new Api(srv.grpcAddr, { credentials: tlsCredentials(pki, client) });
    await expectStatus(api.publishBatch([ev(topic)], { timeoutMs: 5000 }), Code.UNAVAILABLE, what);
    api.close();
  }
  const server = ['--server', srv.grpcAddr, '--tls-ca', pki.ca];
  let args = ['publish', '--topic', topic, '--id', 'cli', 'x', ...server, '--tls-cert', pki.client.cert, '--tls-key', pki.client.key];
  let r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  args = ['publish', '--topic', topic, '--id', 'cli-2', 'x', ...server];
  r = await runCli(args, { env: { NODATA_TLS_CERT: pki.client.cert, NODATA_TLS_KEY: pki.client.key } });
  assert.equal(r.code, 0, describeRun(args, r));
  args = ['publish', '--topic', topic, '--id', 'cli-3', 'x', ...server];
  r = await runCli(args);
  assert.equal(r.code, 1, describeRun(args, r));
  args = ['topic', 'list', ...server, '--tls-cert', pki.client.cert];
  r = await runCli(args);
  assert.equal(r.code, 2, describeRun(args, r));
  assert.match(r.stderr, /--tls-cert and --tls-key go together/);
  assert.equal((await srv.api.readTopic(topic)).length, 3, 'only the certified publishes were stored');

  assert.deepEqual(await httpsGet(srv.httpAddr, '/healthz', { ca: pki.ca }), { status: 200, body: 'ok\n' });
  const refused = await httpsGet(srv.httpAddr, '/metrics', { ca: pki.ca });
  assert.equal(refused.status, 401);
  assert.match(refused.body, /client certificate is required/);
  assert.equal((await httpsGet(srv.httpAddr, '/v1/aggregations', { ca: pki.ca })).status, 401);
  assert.equal((await httpsGet(srv.httpAddr, '/metrics', { ca: pki.ca, client: pki.client })).status, 200);
  assert.equal((await httpsGet(srv.httpAddr, '/v1/aggregations', { ca: pki.ca, client: pki.client })).status, 200);
  await assert.rejects(httpsGet(srv.httpAddr, '/metrics', { ca: pki.ca, client: pki.stranger }), 'a stranger\'s certificate fails the handshake');
  srv.assertNoCrash();
});

test('SIGHUP reloads the certificate for new connections; open streams go on; a bad file keeps the old one', T, async (t) => {
  const pki = makePki();
  const srv = await startServer(t, { args: tlsArgs(pki, { live: true, clientCa: true }), credentials: tlsCredentials(pki, pki.client) });
  const topic = topicName('reload');
  await srv.api.createTopic(topic, 1);
  // A subscriber and a publish stream opened before the reload.
  const sub = srv.api.subscribe({ topic, start: { earliest: true } });
  const records = (k) => sub.waitFor((x) => x.records.length >= k, { what: `${k} records` });
  await srv.api.publishBatch([ev(topic, { data: 'before' })]);
  await records(1);
  assert.equal(servedCn(srv.grpcAddr, pki.ca), 'first');
  assert.equal(servedCn(srv.httpAddr, pki.ca), 'first');

  fs.copyFileSync(pki.renewed.cert, pki.live.cert);
  fs.copyFileSync(pki.renewed.key, pki.live.key);
  srv.child.kill('SIGHUP');
  const deadline = Date.now() + 10000;
  while (!/SIGHUP: TLS files reloaded/.test(srv.stderr) && Date.now() < deadline) await sleep(50);
  assert.match(srv.stderr, /SIGHUP: TLS files reloaded: subject CN=renewed/);
  assert.equal(servedCn(srv.grpcAddr, pki.ca), 'renewed', 'new gRPC connections get the new certificate');
  assert.equal(servedCn(srv.httpAddr, pki.ca), 'renewed', 'new HTTPS connections get the new certificate');

  // The connection opened before the reload still carries calls, and the subscriber still reads.
  await srv.api.publishBatch([ev(topic, { data: 'after' })]);
  await records(2);
  assert.deepEqual(sub.records.map((x) => x.event.data.toString()), ['before', 'after']);
  // A new client connection works with the renewed certificate.
  const fresh = new Api(srv.grpcAddr, { credentials: tlsCredentials(pki, pki.client), separateConnection: true });
  assert.equal((await fresh.publishBatch([ev(topic, { data: 'fresh' })])).length, 1);
  fresh.close();

  // A key that does not belong to the certificate: the reload fails and the server keeps serving
  // the renewed certificate.
  fs.copyFileSync(pki.server.key, pki.live.key);
  srv.child.kill('SIGHUP');
  const until = Date.now() + 10000;
  while (!/keeping the current TLS certificate/.test(srv.stderr) && Date.now() < until) await sleep(50);
  assert.match(srv.stderr, /SIGHUP: keeping the current TLS certificate: --tls-key .* is not the private key of the certificate/);
  assert.equal(servedCn(srv.grpcAddr, pki.ca), 'renewed');
  const metrics = await httpsGet(srv.httpAddr, '/metrics', { ca: pki.ca, client: pki.client });
  assert.match(metrics.body, /^nodata_tls_reloads_total\{result="ok"\} 1$/m);
  assert.match(metrics.body, /^nodata_tls_reloads_total\{result="error"\} 1$/m);
  sub.cancel();
  srv.assertNoCrash();
});

test('serving where other machines reach it needs TLS and client certificates, or --insecure', T, async (t) => {
  const pki = makePki();
  const dataDir = path.join(makeTempDir(), 'data');
  const port = await freePort();
  const http = await freePort();
  const base = ['serve', '--data', dataDir, '--http', `127.0.0.1:${http}`];
  for (const extra of [[], tlsArgs(pki)]) {
    const args = [...base, '--listen', `0.0.0.0:${port}`, ...extra];
    const r = await runProgram(nodataBin(), args, { timeoutMs: 30000 });
    assert.equal(r.code, 1, describeRun(args, r));
    assert.match(r.stderr, /refusing to serve on 0\.0\.0\.0:\d+, which other machines can reach, without .*--insecure/);
  }
  const args = ['serve', '--data', dataDir, '--listen', '127.0.0.1:0', '--http', `0.0.0.0:${http}`];
  const r = await runProgram(nodataBin(), args, { timeoutMs: 30000 });
  assert.equal(r.code, 1, describeRun(args, r));
  assert.match(r.stderr, /refusing to serve on 0\.0\.0\.0:/);

  // With TLS and client certificates, or with --insecure, it serves (and stops on SIGTERM).
  for (const extra of [tlsArgs(pki, { clientCa: true }), ['--insecure']]) {
    const argv = [...base, '--listen', `0.0.0.0:${port}`, ...extra];
    const child = spawn(nodataBin(), argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 30000;
    while (!/^nodata ready grpc=0\.0\.0\.0:\d+/m.test(stdout) && child.exitCode === null && Date.now() < deadline) {
      await sleep(50);
    }
    assert.match(stdout, /^nodata ready grpc=0\.0\.0\.0:\d+/m, `${argv.join(' ')}\n${stderr}`);
    if (extra[0] === '--insecure') assert.match(stderr, /without TLS \(--insecure\)/);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
  }
});

test('bad TLS files stop the server with a message that names the file', T, async () => {
  const pki = makePki();
  const dataDir = path.join(makeTempDir(), 'data');
  const garbage = path.join(pki.dir, 'garbage.pem');
  fs.writeFileSync(garbage, 'not a certificate\n');
  const cases = [
    [['--tls-cert', pki.server.cert], /--tls-cert and --tls-key go together/],
    [['--tls-cert', pki.server.cert, '--tls-key', pki.client.key], /--tls-key .* is not the private key of the certificate in --tls-cert/],
    [['--tls-cert', path.join(pki.dir, 'nope.pem'), '--tls-key', pki.server.key], /--tls-cert .*nope\.pem: cannot read it/],
    [['--tls-cert', garbage, '--tls-key', pki.server.key], /--tls-cert .*garbage\.pem: no PEM certificate/],
    [['--tls-cert', pki.server.cert, '--tls-key', garbage], /--tls-key .*garbage\.pem: no unencrypted PEM private key/],
    [[...tlsArgs(pki), '--tls-client-ca', garbage], /--tls-client-ca .*garbage\.pem: no PEM certificate/],
  ];
  for (const [extra, message] of cases) {
    const args = ['serve', '--data', dataDir, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', ...extra];
    const r = await runProgram(nodataBin(), args, { timeoutMs: 30000 });
    assert.equal(r.code, 1, describeRun(args, r));
    assert.match(r.stderr, message, describeRun(args, r));
  }
});

test('the C++ SDK publishes over mTLS across a SIGKILL of the server: each event stored once', T, async (t) => {
  const pki = makePki();
  const srv = await startServer(t, { args: tlsArgs(pki, { clientCa: true }), credentials: tlsCredentials(pki, pki.client) });
  const topic = topicName('sdk-tls');
  await srv.api.createTopic(topic, 2);
  const n = 30000;
  const env = { NODATA_TLS_CA: pki.ca, NODATA_TLS_CERT: pki.client.cert, NODATA_TLS_KEY: pki.client.key };
  const bin = sdkExample('publish_example');
  const args = ['--address', srv.grpcAddr, '--topic', topic, '--count', String(n), '--id-prefix', 'tls', '--rate', '15000'];
  const run = runProgram(bin, args, { env, timeoutMs: 90000 });
  await sleep(700);
  await srv.restart({ how: 'kill', samePorts: true });
  const r = await run;
  assert.equal(r.code, 0, `${bin} ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
  const summary = JSON.parse(r.stdout.trim().split('\n').pop());
  assert.equal(summary.failed, 0);
  const records = await srv.api.readTopic(topic);
  assert.equal(records.length, n, 'every event stored once');
  assert.equal(new Set(records.map((x) => x.event.id)).size, n);

  // Without the client certificate the SDK's first batch fails; a missing file fails at once.
  const bad = await runProgram(bin, ['--address', srv.grpcAddr, '--topic', topic, '--count', '1'], {
    env: { NODATA_TLS_CA: path.join(pki.dir, 'missing.pem') }, timeoutMs: 30000,
  });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /tls CA file .*missing\.pem: cannot read it/);
});

test('program components reach a TLS server through its unix socket, without certificates', T, async (t) => {
  const pki = makePki();
  const srv = await startServer(t, { args: tlsArgs(pki, { clientCa: true }), credentials: tlsCredentials(pki, pki.client) });
  const topic = topicName('prog-tls');
  await srv.api.createTopic(topic, 2);
  const n = 2000;
  const args = ['component', 'add', 'src', '--exec', sdkExample('counter_source'), '--source', topic, '--config', String(n),
    '--server', srv.grpcAddr, '--tls-ca', pki.ca, '--tls-cert', pki.client.cert, '--tls-key', pki.client.key];
  const r = await runCli(args);
  assert.equal(r.code, 0, describeRun(args, r));
  const deadline = Date.now() + 60000;
  let stored = 0;
  while (Date.now() < deadline) {
    stored = (await srv.api.endOffsets(topic)).reduce((a, b) => a + Number(b), 0);
    if (stored >= n) break;
    await sleep(200);
  }
  assert.equal(stored, n, 'the program published every record');
  const socket = path.join(srv.dataDir, 'run', 'grpc.sock');
  assert.ok(fs.statSync(socket).isSocket(), `${socket} is the programs' socket`);
  assert.equal(fs.statSync(path.dirname(socket)).mode & 0o777, 0o700);
  srv.assertNoCrash();
});

test('with --auth tokens a client certificate is a principal: its subject CN, with the scopes granted to that name', T, async (t) => {
  const pki = makePki();
  const bob = issue(pki.dir, 'bob', { cn: 'bob' });
  const dataDir = path.join(makeTempDir(), 'data');
  let r = await runCli(['token', 'create', 'alice', '--certificate', '--scope', 'publish:orders.*', '--scope', 'consume:orders.*', '--data', dataDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'granted scopes publish:orders.* consume:orders.* to client certificates with subject CN=alice; no bearer token was made');
  r = await runCli(['token', 'create', 'ops', '--scope', 'admin', '--data', dataDir]);
  const adminToken = r.stdout.trimEnd().split('\n').at(-1);
  const list = (await runCli(['token', 'list', '--json', '--data', dataDir])).stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(list.map((x) => [x.name, x.kind]), [['alice', 'certificate'], ['ops', 'token']]);

  const srv = await startServer(t, {
    dataDir, args: [...tlsArgs(pki, { clientCa: true }), '--auth', 'tokens'], credentials: tlsCredentials(pki, pki.client),
  });
  const alice = new Api(srv.grpcAddr, { credentials: tlsCredentials(pki, pki.client) });
  const bobApi = new Api(srv.grpcAddr, { credentials: tlsCredentials(pki, bob) });
  // A bearer token on a connection with a certificate names the principal instead.
  const ops = new Api(srv.grpcAddr, { credentials: tlsCredentials(pki, bob), token: adminToken });
  t.after(() => [alice, bobApi, ops].forEach((a) => a.close()));
  await ops.createTopic('orders.eu', 1);
  await ops.createTopic('payments', 1);
  assert.equal((await alice.publishBatch([ev('orders.eu')])).length, 1);
  const denied = await expectStatus(alice.publishBatch([ev('payments')]), Code.PERMISSION_DENIED, 'out of the grant');
  assert.equal(denied.details, 'alice lacks the scope publish:payments (or a pattern covering payments, or admin)');
  await expectStatus(alice.createTopic('orders.x', 1), Code.PERMISSION_DENIED, 'admin');
  const stranger = await expectStatus(bobApi.listTopics(), Code.UNAUTHENTICATED, 'a CN with no grant');
  assert.match(stranger.details, /subject CN=bob is no principal with scopes \(nodata token create bob --certificate/);
  assert.equal((await alice.readTopic('orders.eu')).length, 1);

  // HTTPS: the same principal.
  const agg = await httpsGet(srv.httpAddr, '/v1/aggregations/daily', { ca: pki.ca, client: pki.client });
  assert.equal(agg.status, 403);
  assert.match(agg.body, /alice lacks the scope query:daily/);
  assert.equal((await httpsGet(srv.httpAddr, '/metrics', { ca: pki.ca, client: bob })).status, 401);

  // Revoking the grant ends the certificate's access within the refresh interval.
  r = await runCli(['token', 'revoke', 'alice', '--data', dataDir]);
  assert.equal(r.code, 0, r.stderr);
  await sleep(1200);
  await expectStatus(alice.listTopics(), Code.UNAUTHENTICATED, 'after revoking the grant');
  srv.assertNoCrash();
});
