// Readiness line, HTTP /healthz and /metrics, gRPC health checking and server reflection.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { grpc, makeClient, protos, unary } from './lib/grpc.mjs';
import { httpGet, startServer } from './lib/server.mjs';
import { ev, newId, topicName } from './lib/util.mjs';

const T = { timeout: 60000 };

/** Parses Prometheus text format into [{ name, labels, value }]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line.trim());
    assert.ok(m, `unparsable metrics line: ${line}`);
    const labels = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const pick = (ms, name, labels = {}) =>
  ms.filter((m) => m.name === name && Object.entries(labels).every(([k, v]) => m.labels[k] === v));

test('ready line names the requested addresses; /healthz answers 200 ok', T, async (t) => {
  const srv = await startServer(t);
  assert.equal(srv.grpcAddr, srv.requestedGrpcAddr, 'ready line grpc= is the --listen address');
  assert.equal(srv.httpAddr, srv.requestedHttpAddr, 'ready line http= is the --http address');
  const r = await httpGet(srv, '/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.body.trim(), 'ok');
  const missing = await httpGet(srv, '/no-such-page');
  assert.equal(missing.status, 404, 'unknown HTTP paths are 404');
});

/** Sends `requests` (raw HTTP) one after the other on one connection; returns the raw text
 * read, and whether the server closed the connection after the last response. */
async function onOneConnection(srv, requests) {
  const [host, port] = [srv.httpAddr.slice(0, srv.httpAddr.lastIndexOf(':')), Number(srv.httpAddr.slice(srv.httpAddr.lastIndexOf(':') + 1))];
  const socket = net.connect(port, host);
  let text = '';
  let closed = false;
  socket.on('data', (d) => { text += d.toString('latin1'); });
  const ended = new Promise((resolve) => socket.on('close', () => { closed = true; resolve(); }));
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const responses = () => (text.match(/^HTTP\/1\.1 /gm) ?? []).length;
  for (let i = 0; i < requests.length; ++i) {
    socket.write(requests[i]);
    const deadline = Date.now() + 5000;
    while (responses() < i + 1 && !closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (closed) break;
  }
  await Promise.race([ended, new Promise((r) => setTimeout(r, 1500))]);
  socket.destroy();
  return { text, closed, responses: responses() };
}

test('HTTP/1.1 connections persist across requests; HTTP/1.0 and Connection: close are closed', T, async (t) => {
  const srv = await startServer(t);
  const get = (path, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
  const kept = await onOneConnection(srv, [get('/healthz'), get('/v1/aggregations'), get('/v1/aggregations/none'), get('/metrics')]);
  assert.equal(kept.responses, 4, kept.text.slice(0, 400));
  assert.match(kept.text, /HTTP\/1\.1 404 /, 'the unknown aggregation answered on the same connection');
  assert.doesNotMatch(kept.text, /Connection: close/i);
  assert.match(kept.text, /Keep-Alive: timeout=2/i, 'clients are told the idle timeout');

  const asked = await onOneConnection(srv, [get('/healthz', 'Connection: close\r\n'), get('/healthz')]);
  assert.equal(asked.responses, 1);
  assert.match(asked.text, /Connection: close/);
  assert.equal(asked.closed, true);
  const old = await onOneConnection(srv, ['GET /v1/aggregations HTTP/1.0\r\n\r\n', get('/healthz')]);
  assert.equal(old.responses, 1);
  assert.match(old.text, /Connection: close/);
  assert.equal(old.closed, true);
});

test('/metrics exposes the contract metrics with topic/partition labels', T, async (t) => {
  const srv = await startServer(t, { args: ['--default-partitions', '2'] });
  const [a, b] = [topicName('metrics-a'), topicName('metrics-b')];
  const dupId = newId();
  await srv.api.publish(ev(a, { id: dupId, data: '0123456789' }));
  await srv.api.publishBatch([ev(a, { data: '0123456789' }), ev(a, { data: '0123456789' })]);
  await srv.api.publishStream([[ev(b), ev(b)], [ev(b), ev(b), ev(b)]]);

  let r = await httpGet(srv, '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
  let ms = parseMetrics(r.body);
  const value = (name, labels) => {
    const found = pick(ms, name, labels);
    assert.equal(found.length, 1, `exactly one sample ${name}${JSON.stringify(labels)}; have: ${pick(ms, name).map((m) => JSON.stringify(m.labels))}`);
    return found[0].value;
  };
  assert.equal(value('nodata_events_in_total', { topic: a }), 3);
  assert.equal(value('nodata_events_in_total', { topic: b }), 5);
  assert.ok(value('nodata_bytes_in_total', { topic: a }) >= 30, 'bytes_in counts at least the payload bytes');
  assert.ok(value('nodata_bytes_in_total', { topic: b }) > 0);

  for (const [topic, n] of [[a, 3], [b, 5]]) {
    const expected = await srv.api.endOffsets(topic);
    const ends = pick(ms, 'nodata_partition_end_offset', { topic });
    const disk = pick(ms, 'nodata_disk_bytes', { topic });
    assert.equal(ends.reduce((s, m) => s + m.value, 0), n, `sum of nodata_partition_end_offset for ${topic}`);
    for (const m of ends) assert.equal(m.value, expected[Number(m.labels.partition)], `${topic}/${m.labels.partition} gauge = GetTopic end_offset`);
    expected.forEach((end, p) => {
      if (end === 0) return; // an untouched partition may or may not be exported yet
      assert.equal(ends.filter((m) => m.labels.partition === String(p)).length, 1, `nodata_partition_end_offset{topic=${topic},partition=${p}}`);
      const d = disk.filter((m) => m.labels.partition === String(p));
      assert.equal(d.length, 1, `nodata_disk_bytes{topic=${topic},partition=${p}}`);
      assert.ok(d[0].value > 0, `nodata_disk_bytes{topic=${topic},partition=${p}} > 0`);
    });
  }

  const lat = pick(ms, 'nodata_publish_latency_seconds_count');
  assert.ok(lat.length >= 1 && lat.every((m) => m.labels.rpc), 'publish latency histogram has an rpc label');
  const rpcs = new Set(lat.filter((m) => m.value > 0).map((m) => m.labels.rpc));
  assert.ok(rpcs.size >= 3, `Publish, PublishBatch and PublishStream observed separately, got rpc=${[...rpcs]}`);
  assert.ok(pick(ms, 'nodata_publish_latency_seconds_bucket').some((m) => m.labels.le === '+Inf'), 'histogram buckets');
  assert.ok(pick(ms, 'nodata_fsync_latency_seconds_count').some((m) => m.value > 0), 'fsync latency observed (fsync always)');
  assert.ok(pick(ms, 'nodata_fsync_batch_records_count').some((m) => m.value > 0), 'fsync batch records observed');
  assert.ok(pick(ms, 'nodata_fsync_batch_records_sum').reduce((s, m) => s + m.value, 0) >= 8, 'fsync batches cover the 8 records');

  // Duplicates are counted per topic.
  await srv.api.publish(ev(a, { id: dupId }));
  r = await httpGet(srv, '/metrics');
  ms = parseMetrics(r.body);
  assert.equal(value('nodata_duplicates_total', { topic: a }), 1);
  const dupB = pick(ms, 'nodata_duplicates_total', { topic: b });
  assert.ok(dupB.every((m) => m.value === 0), 'no duplicates on the other topic');
});

test('grpc.health.v1.Health/Check overall status is SERVING', T, async (t) => {
  const srv = await startServer(t);
  const client = makeClient(protos().health.Health, srv.grpcAddr);
  t.after(() => client.close());
  const res = await unary(client, 'Check', { service: '' });
  assert.equal(res.status, 'SERVING');
});

test('server reflection (v1alpha) lists the nodata services and serves their descriptors', T, async (t) => {
  const srv = await startServer(t);
  const client = makeClient(protos().reflection.ServerReflection, srv.grpcAddr);
  t.after(() => client.close());
  const call = client.ServerReflectionInfo(new grpc.Metadata(), { deadline: Date.now() + 15000 });
  const responses = [];
  const done = new Promise((resolve, reject) => {
    call.on('data', (r) => responses.push(r));
    call.on('error', reject);
    call.on('end', resolve);
  });
  call.write({ host: '', list_services: '' });
  call.write({ host: '', file_containing_symbol: 'nodata.v1.IngestService' });
  call.end();
  await done;
  assert.equal(responses.length, 2);
  assert.equal(responses[0].message_response, 'list_services_response', JSON.stringify(responses[0].error_response));
  const services = responses[0].list_services_response.service.map((s) => s.name);
  for (const s of ['nodata.v1.IngestService', 'nodata.v1.TopicService']) {
    assert.ok(services.includes(s), `reflection lists ${s}; got ${services}`);
  }
  assert.equal(responses[1].message_response, 'file_descriptor_response', JSON.stringify(responses[1].error_response));
  const files = responses[1].file_descriptor_response.file_descriptor_proto.map((b) => b.toString('latin1'));
  assert.ok(files.some((f) => f.includes('nodata/v1/nodata.proto') && f.includes('PublishBatch')), 'descriptor of nodata.proto');
});
