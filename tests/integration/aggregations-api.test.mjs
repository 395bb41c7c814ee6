// The aggregations' outside surface on the real server: AggregationService and QueryService over
// gRPC, `nodata aggregation ...`, and HTTP under /v1/aggregations (JSON, errors as
// {"error": {"code", "status", "message"}}, percent-encoded keys, Server-Sent Events watches).
// The module without the aggregation marker is the C SDK's filter component, built by `make
// component-sdk` into build-component-sdk/ (COMPONENT_SDK_DIR overrides).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Code, expectStatus, makeClient, protos, unary } from './lib/grpc.mjs';
import { describeRun, parseJsonOut, runCli } from './lib/cli.mjs';
import { startServer } from './lib/server.mjs';
import { REPO_ROOT } from './lib/grpc.mjs';
import { ev, sleep, topicName } from './lib/util.mjs';

const SDK_DIR = process.env.COMPONENT_SDK_DIR ?? path.join(REPO_ROOT, 'build-component-sdk');
const T = { timeout: 180000 };
// Tumbling windows of a minute from here: events at BASE + k seconds fall into the window at BASE.
const BASE_MS = Date.UTC(2026, 10, 26, 10, 0, 0);
const BASE = '2026-11-26T10:00:00.000000Z';
const BASE_END = '2026-11-26T10:01:00.000000Z';

function filterWasm() {
  const p = path.join(SDK_DIR, 'c', 'filter.wasm');
  assert.ok(existsSync(p), `${p} is missing: run \`make component-sdk\` first`);
  return p;
}

function at(ms) {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

class Aggregations {
  constructor(srv) {
    const { nodata } = protos();
    this.srv = srv;
    this.admin = makeClient(nodata.AggregationService, srv.grpcAddr);
    this.query = makeClient(nodata.QueryService, srv.grpcAddr);
  }
  async add(request) {
    return (await unary(this.admin, 'AddAggregation', request, { timeoutMs: 120000 })).aggregation;
  }
  async get(name) {
    return (await unary(this.admin, 'GetAggregation', { name })).aggregation;
  }
  async list() {
    return (await unary(this.admin, 'ListAggregations', {})).aggregations;
  }
  async remove(name) {
    return unary(this.admin, 'RemoveAggregation', { name });
  }
  async reset(name, to) {
    return (await unary(this.admin, 'ResetAggregation', { name, to }, { timeoutMs: 120000 })).aggregation;
  }
  async key(name, key, extra = {}) {
    return unary(this.query, 'Get', { name, key: Buffer.from(key), ...extra });
  }
  async window(name, extra = {}) {
    return unary(this.query, 'ListWindow', { name, ...extra });
  }
  close() {
    this.admin.close();
    this.query.close();
  }
}

async function setup(t, { partitions = 2 } = {}) {
  const srv = await startServer(t);
  const aggs = new Aggregations(srv);
  t.after(() => aggs.close());
  const input = topicName('agg-in');
  await srv.api.createTopic(input, partitions);
  return { srv, aggs, input };
}

async function cli(srv, args, { expectCode = 0 } = {}) {
  const full = ['aggregation', ...args, '--server', srv.grpcAddr];
  const r = await runCli(full, { timeoutMs: 150000 });
  assert.equal(r.code, expectCode, describeRun(full, r));
  return { ...r, args: full };
}

async function http(srv, urlPath, init = {}) {
  const res = await fetch(`http://${srv.httpAddr}${urlPath}`, { signal: AbortSignal.timeout(10000), ...init });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${init.method ?? 'GET'} ${urlPath}: not JSON (status ${res.status}): ${text}`);
  }
  return { status: res.status, body, headers: res.headers };
}

/** Polls `check` (async, truthy when done) every 100 ms; fails with `what()` after timeoutMs. */
async function waitUntil(check, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(100);
  }
}

/** Publishes `n` JSON events with key `key` (amount 1..n), at BASE + i seconds. */
async function publishOrders(srv, topic, key, n, { firstAmount = 1 } = {}) {
  const events = [];
  for (let i = 0; i < n; i++) {
    events.push(ev(topic, { key, data: JSON.stringify({ user: key, amount: firstAmount + i }), timestamp: at(BASE_MS + i * 1000) }));
  }
  await srv.api.publishBatch(events);
}

/** The key's windows over HTTP once its count reaches `n`. */
async function waitForCount(srv, name, key, n) {
  let last;
  return waitUntil(async () => {
    last = await http(srv, `/v1/aggregations/${encodeURIComponent(name)}/keys/${encodeURIComponent(key)}`);
    return last.status === 200 && last.body.windows.some((w) => w.values.n === n) ? last.body : null;
  }, () => `${name}/${key} to count ${n}; last: ${JSON.stringify(last)}`);
}

test('bad definitions are refused with clear errors over gRPC and the CLI', T, async (t) => {
  const { srv, aggs, input } = await setup(t);
  const base = { name: 'bad', input, key: '$.user', window: 'tumbling:60s', measures: ['n=count()'] };
  const cases = [
    [{ measures: ['n=median($.amount)'] }, Code.INVALID_ARGUMENT, /bad measure "n=median\(\$\.amount\)": unknown function "median"/],
    [{ key: '$.[' }, Code.INVALID_ARGUMENT, /bad JSON path "\$\.\[": /],
    [{ measures: ['total=sum($..amount)'] }, Code.INVALID_ARGUMENT, /bad measure "total=sum\(\$\.\.amount\)": bad JSON path/],
    [{ window: 'tumbling:soon' }, Code.INVALID_ARGUMENT, /bad window "tumbling:soon": /],
    [{ window: 'weekly:7d' }, Code.INVALID_ARGUMENT, /bad window "weekly:7d": /],
    [{ window: '' }, Code.INVALID_ARGUMENT, /a window is required/],
    [{ input: topicName('missing') }, Code.NOT_FOUND, /./],
    [{ measures: [], wasm: readFileSync(filterWasm()) }, Code.INVALID_ARGUMENT, /nodata_aggregate_v1/],
    [{ measures: [] }, Code.INVALID_ARGUMENT, /built-in measures .* or a WebAssembly reducer/],
  ];
  for (const [change, code, message] of cases) {
    const err = await expectStatus(aggs.add({ ...base, ...change }), code, `AddAggregation ${JSON.stringify(change).slice(0, 80)}`);
    assert.match(err.details, message);
  }
  // The same through the CLI: exit 1, the status name and the server's message on stderr.
  const flags = ['add', 'bad', '--input', input, '--key', '$.user', '--window', 'tumbling:60s'];
  let r = await cli(srv, [...flags, '--measure', 'n=median($.amount)'], { expectCode: 1 });
  assert.match(r.stderr, /INVALID_ARGUMENT: bad measure "n=median\(\$\.amount\)"/);
  r = await cli(srv, ['add', 'bad', '--input', input, '--key', '$.[', '--window', 'tumbling:60s', '--measure', 'n=count()'], { expectCode: 1 });
  assert.match(r.stderr, /INVALID_ARGUMENT: bad JSON path "\$\.\["/);
  r = await cli(srv, ['add', 'bad', '--input', input, '--key', 'key', '--window', 'hopping:1m/7s', '--measure', 'n=count()'], { expectCode: 1 });
  assert.match(r.stderr, /INVALID_ARGUMENT: bad window "hopping:1m\/7s": the hop must divide/);
  r = await cli(srv, ['add', 'bad', '--input', topicName('missing'), '--key', 'key', '--window', 'global', '--measure', 'n=count()'], { expectCode: 1 });
  assert.match(r.stderr, /NOT_FOUND/);
  r = await cli(srv, ['add', 'bad', '--input', input, '--key', 'key', '--window', 'global', '--wasm', filterWasm()], { expectCode: 1 });
  assert.match(r.stderr, /INVALID_ARGUMENT.*nodata_aggregate_v1/);
  // Nothing was registered by any of them.
  assert.deepEqual(await aggs.list(), []);
  assert.deepEqual((await http(srv, '/v1/aggregations')).body, { aggregations: [] });
});

test('list, get and remove over gRPC, the CLI and HTTP; unknown names and keys are 404', T, async (t) => {
  const { srv, aggs, input } = await setup(t);
  const name = 'orders.by-user';
  const added = await aggs.add({
    name, input, key: '$.user', window: 'tumbling:60s', lateness: '5s',
    measures: ['n=count()', 'total=sum($.amount)'], checkpoint_interval: '100ms',
  });
  assert.equal(added.name, name);
  assert.equal(added.window, 'tumbling:1m', 'the window as the server spells it back');
  assert.equal(added.key, '$.user');
  assert.deepEqual(added.measures, ['n=count()', 'total=sum($.amount)']);
  assert.equal(added.from, 'earliest');
  assert.equal(added.lateness, '5s');
  // Its topics exist.
  for (const topic of [`${name}.results`, `${name}.late`]) assert.equal((await srv.api.getTopic(topic)).name, topic);

  await publishOrders(srv, input, 'ann', 3);
  const keyed = await waitForCount(srv, name, 'ann', 3);
  assert.deepEqual(keyed, { key: 'ann', windows: [{ start: BASE, end: BASE_END, final: false, values: keyed.windows[0].values }] });
  assert.equal(keyed.windows[0].values.total, 6);

  // get: the definition and how it runs, the same over gRPC, the CLI and HTTP.
  const got = await waitUntil(async () => {
    const a = await aggs.get(name);
    return a.records_in === 3 && a.lag === 0 ? a : null;
  }, 'records_in 3 and lag 0');
  assert.equal(got.keys, 1);
  assert.equal(got.open_windows, 1);
  assert.ok(['BACKFILLING', 'RUNNING'].includes(got.state.replace('AGGREGATION_STATE_', '')), got.state);
  const viaHttp = (await http(srv, `/v1/aggregations/${name}`)).body;
  for (const [k, v] of Object.entries({ name, input, key: '$.user', window: 'tumbling:1m', lateness: '5s', from: 'earliest', records_in: 3, lag: 0, keys: 1, open_windows: 1 })) {
    assert.deepEqual(viaHttp[k], v, `GET /v1/aggregations/${name}: ${k}`);
  }
  assert.deepEqual(viaHttp.measures, ['n=count()', 'total=sum($.amount)']);
  assert.deepEqual(Object.keys(viaHttp.backfill), ['done', 'total', 'rate', 'eta_seconds']);
  assert.match(viaHttp.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.equal(viaHttp.watermark, '2026-11-26T09:59:57.000000Z', 'the largest event time, 10:00:02, minus the lateness');
  const getRun = await cli(srv, ['get', name, '--json']);
  const viaCli = parseJsonOut(getRun.args, getRun);
  assert.equal(viaCli.name, name);
  assert.equal(viaCli.records_in, 3);
  const table = await cli(srv, ['get', name]);
  assert.match(table.stdout, new RegExp(`${name.replace('.', '\\.')}\\s+(BACKFILLING|RUNNING)\\s+${input}`));
  assert.match(table.stdout, /backfill: /);

  // list.
  assert.deepEqual((await aggs.list()).map((a) => a.name), [name]);
  assert.deepEqual((await http(srv, '/v1/aggregations')).body.aggregations.map((a) => a.name), [name]);
  const listed = await cli(srv, ['list']);
  assert.match(listed.stdout, /^AGGREGATION\s+STATE\s+INPUT/);
  assert.match(listed.stdout, new RegExp(`\\n${name.replace('.', '\\.')}\\s`));

  // Errors: the HTTP status, the gRPC status name and a message.
  const unknown = await http(srv, '/v1/aggregations/no-such-aggregation');
  assert.equal(unknown.status, 404);
  assert.deepEqual(Object.keys(unknown.body), ['error']);
  assert.equal(unknown.body.error.code, 404);
  assert.equal(unknown.body.error.status, 'NOT_FOUND');
  assert.match(unknown.body.error.message, /no-such-aggregation/);
  for (const p of ['/v1/aggregations/no-such-aggregation/keys/ann', `/v1/aggregations/${name}/keys/nobody`,
    '/v1/aggregations/no-such-aggregation/windows/latest', '/v1/aggregations/no-such-aggregation/watch', `/v1/aggregations/${name}/nothing-here`]) {
    const r = await http(srv, p);
    assert.equal(r.status, 404, p);
    assert.equal(r.body.error.code, 404, p);
    assert.equal(r.body.error.status, 'NOT_FOUND', p);
  }
  const bad = await http(srv, `/v1/aggregations/${name}/keys/ann?from=yesterday`);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.status, 'INVALID_ARGUMENT');
  assert.match(bad.body.error.message, /from=yesterday/);
  const post = await http(srv, `/v1/aggregations/${name}`, { method: 'POST', body: '{}' });
  assert.equal(post.status, 405);
  assert.equal(post.body.error.code, 405);
  await expectStatus(aggs.get('no-such-aggregation'), Code.NOT_FOUND, 'GetAggregation');
  await expectStatus(aggs.key(name, 'nobody'), Code.NOT_FOUND, 'QueryService.Get of an unknown key');
  await expectStatus(aggs.add({ name, input, key: 'key', window: 'global', measures: ['n=count()'] }), Code.ALREADY_EXISTS, 'a second AddAggregation');

  // remove: gone everywhere, its topics stay.
  await cli(srv, ['remove', name]);
  await expectStatus(aggs.get(name), Code.NOT_FOUND, 'GetAggregation after remove');
  assert.equal((await http(srv, `/v1/aggregations/${name}`)).status, 404);
  assert.equal((await http(srv, `/v1/aggregations/${name}/keys/ann`)).status, 404);
  assert.deepEqual(await aggs.list(), []);
  assert.equal((await srv.api.getTopic(`${name}.results`)).name, `${name}.results`);
  await cli(srv, ['remove', name], { expectCode: 1 });
});

test('keys with "/" and non-ASCII bytes work percent-encoded over HTTP, gRPC and the CLI', T, async (t) => {
  const { srv, aggs, input } = await setup(t);
  const name = 'by-event-key';
  await aggs.add({ name, input, key: 'key', window: 'tumbling:60s', measures: ['n=count()', 'top=max($.amount)'], checkpoint_interval: '100ms' });
  const keys = ['eu/west', 'café', 'a b+c?d=e&f%g'];
  for (const [i, key] of keys.entries()) await publishOrders(srv, input, key, i + 1, { firstAmount: 10 });
  for (const [i, key] of keys.entries()) {
    const body = await waitForCount(srv, name, key, i + 1);
    assert.equal(body.key, key);
    assert.equal(body.windows.length, 1);
    assert.deepEqual(body.windows[0], { start: BASE, end: BASE_END, final: false, values: { n: i + 1, top: 10 + i } });
    // gRPC: the same window.
    const g = await aggs.key(name, key);
    assert.equal(g.key.toString(), key);
    assert.equal(g.windows.length, 1);
    assert.deepEqual(JSON.parse(g.windows[0].values), { n: i + 1, top: 10 + i });
    assert.equal(g.windows[0].start.seconds, BASE_MS / 1000);
    // The CLI: a JSON line per window.
    const r = await cli(srv, ['query', name, '--key', key]);
    assert.deepEqual(r.stdout.trim().split('\n').map((l) => JSON.parse(l)), [{ key, start: BASE, end: BASE_END, final: false, values: { n: i + 1, top: 10 + i } }]);
  }
  // from= and to= bound the windows by start (RFC 3339, any offset).
  const key = encodeURIComponent('eu/west');
  assert.equal((await http(srv, `/v1/aggregations/${name}/keys/${key}?from=${encodeURIComponent('2026-11-26T10:00:00Z')}`)).body.windows.length, 1);
  assert.equal((await http(srv, `/v1/aggregations/${name}/keys/${key}?from=2026-11-26T11:00:01%2B01:00`)).body.windows.length, 0);
  assert.equal((await http(srv, `/v1/aggregations/${name}/keys/${key}?to=2026-11-26T10:00:00Z`)).body.windows.length, 0);
  assert.deepEqual((await aggs.key(name, 'eu/west', { from: at(BASE_MS + 1000) })).windows, [], 'a known key without windows in the range');

  // The window's keys: sorted by a measure, paged.
  const top = await http(srv, `/v1/aggregations/${name}/windows/latest?order_by=n&desc=true&limit=2`);
  assert.equal(top.status, 200);
  assert.equal(top.body.start, BASE);
  assert.equal(top.body.end, BASE_END);
  assert.deepEqual(top.body.keys.map((k) => [k.key, k.values.n]), [['a b+c?d=e&f%g', 3], ['café', 2]]);
  assert.equal(typeof top.body.next, 'string');
  const rest = await http(srv, `/v1/aggregations/${name}/windows/${encodeURIComponent(BASE)}?order_by=n&desc=true&limit=2&after=${encodeURIComponent(top.body.next)}`);
  assert.deepEqual(rest.body.keys.map((k) => k.key), ['eu/west']);
  assert.equal(rest.body.next, null);
  const byKey = await aggs.window(name, { start: at(BASE_MS) });
  assert.deepEqual(byKey.keys.map((k) => k.key.toString()), [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
  const lines = (await cli(srv, ['window', name, 'latest', '--order-by', 'top', '--desc', '--limit', '1'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines, [{ key: 'a b+c?d=e&f%g', start: BASE, end: BASE_END, final: false, values: { n: 3, top: 12 } }]);
  const unknownMeasure = await http(srv, `/v1/aggregations/${name}/windows/latest?order_by=nope`);
  assert.equal(unknownMeasure.status, 400);
  assert.equal(unknownMeasure.body.error.status, 'INVALID_ARGUMENT');
});

/** Reads Server-Sent Events from a fetch response until `pred` accepts one; returns it. */
async function readEvents(res, pred, timeoutMs = 30000) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const deadline = Date.now() + timeoutMs;
  const seen = [];
  try {
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`no matching event; saw: ${JSON.stringify(seen).slice(0, 2000)}`);
      const chunk = await Promise.race([reader.read(), sleep(left).then(() => ({ timeout: true }))]);
      if (chunk.timeout) continue;
      if (chunk.done) assert.fail(`the stream ended; saw: ${JSON.stringify(seen).slice(0, 2000)}`);
      buffered += decoder.decode(chunk.value, { stream: true });
      let end;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const event = { event: 'message', data: '', comment: null };
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) event.comment = line.slice(1).trim();
          else if (line.startsWith('event: ')) event.event = line.slice(7);
          else if (line.startsWith('data: ')) event.data += line.slice(6);
        }
        seen.push(event);
        if (pred(event)) return event;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

test('watch: Server-Sent Events and the gRPC stream deliver an update after a publish', T, async (t) => {
  const { srv, aggs, input } = await setup(t);
  const name = 'watched';
  await aggs.add({ name, input, key: '$.user', window: 'global', measures: ['n=count()'], checkpoint_interval: '100ms' });
  const unknown = await fetch(`http://${srv.httpAddr}/v1/aggregations/nope/watch`);
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.status, 'NOT_FOUND');

  const controller = new AbortController();
  t.after(() => controller.abort());
  const res = await fetch(`http://${srv.httpAddr}/v1/aggregations/${name}/watch?key=${encodeURIComponent('zoë/1')}`, { signal: controller.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  // gRPC Watch of every key, alongside.
  const updates = [];
  const call = aggs.query.Watch({ name });
  call.on('data', (m) => updates.push(...m.updates));
  call.on('error', () => {});
  t.after(() => call.cancel());

  await publishOrders(srv, input, 'other', 1);
  await publishOrders(srv, input, 'zoë/1', 2);
  const event = await readEvents(res, (e) => e.event === 'update' && JSON.parse(e.data).values.n === 2);
  const data = JSON.parse(event.data);
  assert.equal(data.key, 'zoë/1', 'the watch of one key sees only that key');
  assert.equal(data.final, false);
  assert.equal('start' in data, false, 'a global window has no start');
  assert.equal('end' in data, false, 'a global window has no end');
  controller.abort();

  await waitUntil(() => updates.some((u) => u.key.toString() === 'other') && updates.some((u) => u.key.toString() === 'zoë/1' && JSON.parse(u.window.values).n === 2),
    () => `gRPC updates of both keys; have ${JSON.stringify(updates.map((u) => [u.key.toString(), u.window.values]))}`);
  const global = updates.find((u) => u.key.toString() === 'other');
  assert.equal(global.window.start, null, 'the global window has no start over gRPC');

  // The CLI prints the same as JSON lines; removing the aggregation ends every watch.
  const watcher = runCli(['aggregation', 'watch', name, '--key', 'other', '--server', srv.grpcAddr], { timeoutMs: 60000 });
  await sleep(500);
  await publishOrders(srv, input, 'other', 1);
  await waitUntil(async () => (await aggs.key(name, 'other')).windows.some((w) => JSON.parse(w.values).n === 2), 'other to count 2');
  await sleep(500);  // a delivery per checkpoint interval
  const ended = new Promise((resolve) => call.on('status', resolve));
  await aggs.remove(name);
  const r = await watcher;
  assert.equal(r.code, 0, describeRun(['aggregation', 'watch', name], r));
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.some((l) => l.key === 'other' && l.values.n === 2), r.stdout);
  assert.ok(lines.every((l) => l.key === 'other'), r.stdout);
  assert.equal((await ended).code, Code.OK, 'the gRPC Watch ends with OK when the aggregation is removed');
});

test('watches over HTTP are capped at 16, and reads are answered meanwhile', T, async (t) => {
  const { srv, aggs, input } = await setup(t);
  await aggs.add({ name: 'many', input, key: 'key', window: 'global', measures: ['n=count()'] });
  const url = `http://${srv.httpAddr}/v1/aggregations/many/watch`;
  const controllers = [];
  t.after(() => controllers.forEach((c) => c.abort()));
  const open = async () => {
    const c = new AbortController();
    controllers.push(c);
    return { c, res: await fetch(url, { signal: c.signal }) };
  };
  const watches = [];
  for (let i = 0; i < 16; ++i) watches.push(await open());
  for (const w of watches) assert.equal(w.res.status, 200);
  const over = await open();
  assert.equal(over.res.status, 429);
  const body = await over.res.json();
  assert.equal(body.error.status, 'RESOURCE_EXHAUSTED');
  assert.match(body.error.message, /too many watches over HTTP/);
  // Reads still have threads.
  const got = await fetch(`http://${srv.httpAddr}/v1/aggregations/many`);
  assert.equal(got.status, 200);
  assert.equal((await got.json()).name, 'many');
  // Closing one frees its place (the server notices within its poll of a second).
  watches[0].c.abort();
  let again;
  for (let i = 0; i < 50; ++i) {
    again = await open();
    if (again.res.status === 200) break;
    await again.res.text();
    await sleep(100);
  }
  assert.equal(again.res.status, 200);
});

test('an idle watch gets a keepalive every 15 s, and watches end when the server stops', T, async (t) => {
  const { srv, aggs, input } = await setup(t);
  await aggs.add({ name: 'idle', input, key: 'key', window: 'global', measures: ['n=count()'] });
  const res = await fetch(`http://${srv.httpAddr}/v1/aggregations/idle/watch`);
  assert.equal(res.status, 200);
  const opened = Date.now();
  await readEvents(res, (e) => e.comment === 'keepalive', 20000);
  const waited = Date.now() - opened;
  assert.ok(waited >= 14000 && waited <= 18000, `the first keepalive after ${waited} ms`);

  const sse = await fetch(`http://${srv.httpAddr}/v1/aggregations/idle/watch`);
  const reader = sse.body.getReader();
  const call = aggs.query.Watch({ name: 'idle' });
  const status = new Promise((resolve) => call.on('status', resolve));
  call.on('data', () => {});
  call.on('error', () => {});
  await sleep(300);
  const stopping = Date.now();
  await srv.stop({ timeoutMs: 10000 });  // exit code 0, within the limit
  assert.ok(Date.now() - stopping < 8000, `stopped in ${Date.now() - stopping} ms with two watches open`);
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) break;
  }
  assert.notEqual((await status).code, undefined);
});

test('reset recomputes from the input history', T, async (t) => {
  const { srv, aggs, input } = await setup(t);
  const name = 'recomputed';
  await publishOrders(srv, input, 'ann', 3);
  // From latest: the three stored before are not counted.
  await cli(srv, ['add', name, '--input', input, '--key', '$.user', '--window', 'tumbling:60s', '--from', 'latest',
    '--measure', 'n=count()', '--measure', 'total=sum($.amount)', '--checkpoint-interval', '100ms']);
  await publishOrders(srv, input, 'ann', 2, { firstAmount: 100 });
  let body = await waitForCount(srv, name, 'ann', 2);
  assert.equal(body.windows[0].values.total, 201);
  const r = await cli(srv, ['reset', name, '--to', 'earliest']);
  assert.match(r.stdout, new RegExp(`reset aggregation ${name} to earliest`));
  body = await waitForCount(srv, name, 'ann', 5);
  assert.equal(body.windows.length, 1);
  assert.equal(body.windows[0].values.total, 1 + 2 + 3 + 100 + 101);
  const got = await waitUntil(async () => {
    const a = await aggs.get(name);
    return a.state === 'AGGREGATION_STATE_RUNNING' ? a : null;
  }, 'the recomputation to finish its backfill');
  assert.equal(got.backfill.done, got.backfill.total);
  const progress = await cli(srv, ['get', name, '--watch']);
  assert.match(progress.stdout, /backfill: .*records \(100\.0%\)/);
  await expectStatus(aggs.reset(name, 'yesterday'), Code.INVALID_ARGUMENT, 'ResetAggregation to a bad position');
  await expectStatus(aggs.reset('no-such-aggregation', 'earliest'), Code.NOT_FOUND, 'ResetAggregation of an unknown aggregation');
});
