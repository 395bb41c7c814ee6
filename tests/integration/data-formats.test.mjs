// Declared key and data formats of topics (bytes | string | json): what publishing accepts, how
// the Parquet files of the cold tier and of `topic export` annotate the key and data columns
// (checked with DuckDB and hyparquet), that formats survive restarts, the README's lake example
// run as written, and `parquet inspect`'s RFC 3339 times.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { Code, REPO_ROOT, expectStatus } from './lib/grpc.mjs';
import { describeRun, parseJsonOut, runCli } from './lib/cli.mjs';
import { duck, parquetFiles } from './lib/parquet.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';
import { newId, topicName } from './lib/util.mjs';

const T = { timeout: 180000 };

async function rows(con, sql) {
  return (await con.runAndReadAll(sql)).getRowObjects();
}

async function cli(args, { ok = true } = {}) {
  const r = await runCli(args);
  if (ok) assert.equal(r.code, 0, describeRun(args, r));
  return r;
}

// JSON payment events; every fifth without a key.
function payments(topic, n, seed = 0) {
  return Array.from({ length: n }, (_, i) => {
    const k = seed + i;
    const e = {
      topic,
      id: newId('pay'),
      data: Buffer.from(JSON.stringify({ amt: k, note: `caf\u00e9 ${k}`, tags: [k % 3] })),
      timestamp: { seconds: 1750000000 + k, nanos: (k % 1000) * 1000 },
    };
    if (k % 5 !== 0) e.key = Buffer.from(`user-${k % 7}`);
    return e;
  });
}

// The DuckDB type of each column of `files`.
async function columnTypes(con, files) {
  const described = await rows(con, `DESCRIBE SELECT * FROM read_parquet(${sqlList(files)})`);
  return Object.fromEntries(described.map((r) => [r.column_name, r.column_type]));
}

const sqlList = (files) => `[${files.map((f) => `'${f}'`).join(', ')}]`;

test('a json/string topic is compacted into Parquet that DuckDB reads as VARCHAR and JSON', T, async (t) => {
  const srv = await startServer(t);
  const name = topicName('fmt-json');
  let args = ['topic', 'create', name, '--partitions', '2', '--key-format', 'string', '--data-format', 'json',
    '--server', srv.grpcAddr, '--json'];
  const created = parseJsonOut(args, await cli(args));
  assert.equal(created.key_format, 'string');
  assert.equal(created.data_format, 'json');
  const bytesName = topicName('fmt-bytes');
  await srv.api.createTopic(bytesName, 1);
  const textName = topicName('fmt-text');
  await srv.api.createTopic(textName, 1, undefined, { data_format: 'DATA_FORMAT_STRING' });

  const events = payments(name, 200);
  // Spacing and key order are kept: bytes are stored as sent, not re-serialised.
  events[3].data = Buffer.from('{ "note" : "spaced",\n "amt": 3 }');
  await srv.api.publishBatch(events);
  await srv.api.publishBatch([{ topic: bytesName, id: newId(), key: Buffer.from('k'), data: Buffer.from('{"amt":18}') }]);
  await srv.api.publishBatch([{ topic: textName, id: newId(), data: Buffer.from('h\u00e9llo') }]);
  for (const n of [name, bytesName, textName]) await srv.api.flushTopic(n);

  const files = parquetFiles(path.join(srv.dataDir, 'topics', name));
  assert.ok(files.length >= 2, `one file per partition at least, got ${files.length}`);
  const con = await duck();
  const types = await columnTypes(con, files);
  assert.equal(types.key, 'VARCHAR');
  assert.equal(types.data, 'JSON');
  const amts = await rows(con,
    `SELECT id, data->>'amt' AS amt, data->>'$.note' AS note, key FROM read_parquet(${sqlList(files)})`);
  assert.equal(amts.length, events.length);
  const byId = new Map(amts.map((r) => [r.id, r]));
  events.forEach((e, i) => {
    const r = byId.get(e.id);
    assert.equal(r.amt, String(JSON.parse(e.data).amt), `data->>'amt' of event ${i}`);
    assert.equal(r.note, JSON.parse(e.data).note);
    assert.equal(r.key, e.key ? e.key.toString() : null, 'an empty key is null');
  });
  const spaced = await rows(con, `SELECT data::VARCHAR AS d FROM read_parquet(${sqlList(files)}) WHERE id = '${events[3].id}'`);
  assert.equal(spaced[0].d, events[3].data.toString(), 'the data bytes are the ones published');
  const sum = await rows(con, `SELECT sum((data->>'amt')::INTEGER)::INTEGER AS s FROM read_parquet(${sqlList(files)})`);
  assert.equal(sum[0].s, events.reduce((a, e) => a + JSON.parse(e.data).amt, 0));

  // hyparquet sees the logical types and decodes the JSON.
  for (const file of files) {
    const buffer = await asyncBufferFromFile(file);
    const meta = await parquetMetadataAsync(buffer);
    const key = meta.schema.find((s) => s.name === 'key');
    const data = meta.schema.find((s) => s.name === 'data');
    assert.equal(key.type, 'BYTE_ARRAY');
    assert.equal(key.logical_type?.type, 'STRING');
    assert.equal(key.converted_type, 'UTF8');
    assert.equal(data.type, 'BYTE_ARRAY');
    assert.equal(data.logical_type?.type, 'JSON');
    assert.equal(data.converted_type, 'JSON');
    const objects = await parquetReadObjects({ file: buffer, compressors, columns: ['id', 'data'] });
    for (const o of objects) {
      assert.deepEqual(o.data, JSON.parse(events.find((e) => e.id === o.id).data), 'hyparquet parses the JSON');
    }
  }

  // A string topic's data is VARCHAR; a bytes topic is unchanged: BLOB without annotations.
  const textFiles = parquetFiles(path.join(srv.dataDir, 'topics', textName));
  assert.equal((await columnTypes(con, textFiles)).data, 'VARCHAR');
  assert.equal((await rows(con, `SELECT data FROM read_parquet(${sqlList(textFiles)})`))[0].data, 'h\u00e9llo');
  const bytesFiles = parquetFiles(path.join(srv.dataDir, 'topics', bytesName));
  const bytesTypes = await columnTypes(con, bytesFiles);
  assert.equal(bytesTypes.key, 'BLOB');
  assert.equal(bytesTypes.data, 'BLOB');
  const meta = await parquetMetadataAsync(await asyncBufferFromFile(bytesFiles[0]));
  const data = meta.schema.find((s) => s.name === 'data');
  assert.equal(data.logical_type, undefined);
  assert.equal(data.converted_type, undefined);
  const bytesTopic = await srv.api.getTopic(bytesName);
  assert.equal(bytesTopic.key_format, 'DATA_FORMAT_BYTES');
  assert.equal(bytesTopic.data_format, 'DATA_FORMAT_BYTES');

  // Reads of the compacted records (the server's own Parquet reader) return them unchanged.
  const back = await srv.api.readTopic(name);
  assert.equal(back.length, events.length);
  const sent = new Map(events.map((e) => [e.id, e]));
  for (const r of back) assert.deepEqual(Buffer.from(r.event.data), sent.get(r.event.id).data);
});

test('publishes not of the topic format are refused with INVALID_ARGUMENT and store nothing', T, async (t) => {
  const srv = await startServer(t);
  const json = topicName('fmt-bad-json');
  const text = topicName('fmt-bad-text');
  const keys = topicName('fmt-bad-key');
  await srv.api.createTopic(json, 2, undefined, { data_format: 'DATA_FORMAT_JSON' });
  await srv.api.createTopic(text, 2, undefined, { data_format: 'DATA_FORMAT_STRING' });
  await srv.api.createTopic(keys, 2, undefined, { key_format: 'DATA_FORMAT_JSON' });
  const ok = (topic, data, key) => ({ topic, id: newId(), data: Buffer.from(data), ...(key ? { key: Buffer.from(key) } : {}) });

  let err = await expectStatus(srv.api.publishBatch([ok(json, '{"a":1}'), ok(json, '[1,2]'), ok(json, '{"amt":'), ok(json, '2')]),
    Code.INVALID_ARGUMENT, 'truncated JSON');
  assert.match(err.details, /event 2/);
  assert.match(err.details, /data is not valid JSON/);
  err = await expectStatus(srv.api.publish(ok(json, '')), Code.INVALID_ARGUMENT, 'empty data on a json topic');
  assert.match(err.details, /event 0: data is not valid JSON/);
  await expectStatus(srv.api.publish(ok(json, "{'single': 'quotes'}")), Code.INVALID_ARGUMENT, 'not JSON');
  err = await expectStatus(srv.api.publishBatch([ok(text, 'fine'), { topic: text, id: newId(), data: Buffer.from([0x63, 0x61, 0x66, 0xc3]) }]),
    Code.INVALID_ARGUMENT, 'invalid UTF-8');
  assert.match(err.details, /event 1: data is not valid UTF-8/);
  err = await expectStatus(srv.api.publishBatch([ok(keys, 'x', '"k"'), ok(keys, 'y', 'bare')]), Code.INVALID_ARGUMENT, 'bad JSON key');
  assert.match(err.details, /event 1: key is not valid JSON/);
  // A batch across topics: the earlier topic's valid events are not stored either.
  err = await expectStatus(srv.api.publishBatch([ok(text, 'first'), ok(json, '{"ok":true}'), ok(json, 'nope')]),
    Code.INVALID_ARGUMENT, 'bad event of a later topic');
  assert.match(err.details, /event 2/);
  // Also through the CLI and over PublishStream.
  const r = await cli(['publish', '--topic', json, '--server', srv.grpcAddr, '{"amt": 18'], { ok: false });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /INVALID_ARGUMENT.*event 0: data is not valid JSON/);
  await expectStatus(srv.api.publishStream([[ok(json, 'x')]]), Code.INVALID_ARGUMENT, 'PublishStream');

  for (const topic of [json, text, keys]) {
    assert.deepEqual(await srv.api.endOffsets(topic), [0, 0], `${topic}: nothing of a refused batch is stored`);
  }

  // Valid events pass; an empty key is no key in any format.
  const acks = await srv.api.publishBatch([ok(json, ' {"amt": 18} '), ok(text, 'plain'), ok(keys, 'z', '{"k":1}'), ok(keys, 'z')]);
  assert.equal(acks.length, 4);
  // An undefined format number is refused at creation.
  await expectStatus(srv.api.createTopic(topicName('fmt-undefined'), 1, undefined, { data_format: 9 }),
    Code.INVALID_ARGUMENT, 'data_format 9');
  const bad = await cli(['topic', 'create', topicName('fmt-cli'), '--data-format', 'xml', '--server', srv.grpcAddr], { ok: false });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /data-format/);
});

test('formats survive a restart and show in topic get and list', T, async (t) => {
  const srv = await startServer(t);
  const name = topicName('fmt-restart');
  await cli(['topic', 'create', name, '--partitions', '1', '--key-format', 'json', '--data-format', 'string', '--server', srv.grpcAddr]);
  await srv.api.publish({ topic: name, id: newId(), key: Buffer.from('{"user":1}'), data: Buffer.from('before') });
  await srv.restart({ how: 'term' });

  const topic = await srv.api.getTopic(name);
  assert.equal(topic.key_format, 'DATA_FORMAT_JSON');
  assert.equal(topic.data_format, 'DATA_FORMAT_STRING');
  let args = ['topic', 'get', name, '--server', srv.grpcAddr, '--json'];
  const got = parseJsonOut(args, await cli(args));
  assert.equal(got.key_format, 'json');
  assert.equal(got.data_format, 'string');
  args = ['topic', 'list', '--server', srv.grpcAddr, '--json'];
  const listed = parseJsonOut(args, await cli(args)).find((x) => x.name === name);
  assert.equal(listed.key_format, 'json');
  assert.equal(listed.data_format, 'string');
  const human = await cli(['topic', 'get', name, '--server', srv.grpcAddr]);
  assert.match(human.stdout, /key format: json, data format: string/);

  // Still enforced after the restart, and the Parquet files still carry them.
  const err = await expectStatus(srv.api.publish({ topic: name, id: newId(), key: Buffer.from('nope'), data: Buffer.from('x') }),
    Code.INVALID_ARGUMENT, 'bad key after restart');
  assert.match(err.details, /key is not valid JSON/);
  await srv.api.flushTopic(name);
  const con = await duck();
  const types = await columnTypes(con, parquetFiles(path.join(srv.dataDir, 'topics', name)));
  assert.equal(types.key, 'JSON');
  assert.equal(types.data, 'VARCHAR');
});

test('export of a 3-partition topic to one .parquet file has a partition column and every record', T, async (t) => {
  const srv = await startServer(t);
  const name = topicName('fmt-export');
  await srv.api.createTopic(name, 3, undefined, { key_format: 'DATA_FORMAT_STRING', data_format: 'DATA_FORMAT_JSON' });
  const events = payments(name, 600);
  const acks = [...await srv.api.publishBatch(events.slice(0, 400))];
  await srv.api.flushTopic(name); // some records from Parquet, the rest from the hot tier
  acks.push(...await srv.api.publishBatch(events.slice(400)));
  const ends = await srv.api.endOffsets(name);
  assert.ok(ends.every((n) => n > 0), `every partition has records: ${ends}`);

  const out = makeTempDir('nodata-fmt-export-');
  t.after(() => fs.rmSync(out, { recursive: true, force: true }));
  const file = path.join(out, 'o.parquet');
  await cli(['topic', 'export', name, '--format', 'parquet', '--out', file, '--server', srv.grpcAddr]);
  assert.ok(fs.statSync(file).isFile(), 'one file, not a directory');
  assert.deepEqual(fs.readdirSync(out), ['o.parquet'], 'no leftovers next to it');

  const con = await duck();
  const types = await columnTypes(con, [file]);
  assert.equal(types.partition, 'INTEGER');
  assert.equal(types.key, 'VARCHAR');
  assert.equal(types.data, 'JSON');
  for (const c of ['offset', 'timestamp', 'ingest_time', 'id', 'headers']) assert.ok(c in types, `column ${c}`);
  const perPartition = await rows(con,
    `SELECT partition, count(*)::INTEGER AS n, min("offset")::INTEGER AS lo, max("offset")::INTEGER AS hi
     FROM read_parquet('${file}') GROUP BY partition ORDER BY partition`);
  assert.deepEqual(perPartition, ends.map((n, p) => ({ partition: p, n, lo: 0, hi: n - 1 })));
  const all = await rows(con, `SELECT partition, "offset"::INTEGER AS o, id, data->>'amt' AS amt FROM read_parquet('${file}')`);
  assert.equal(all.length, events.length);
  const byPos = new Map(all.map((r) => [`${r.partition}/${r.o}`, r]));
  events.forEach((e, i) => {
    const r = byPos.get(`${acks[i].partition}/${acks[i].offset}`);
    assert.ok(r, `event ${i} at ${acks[i].partition}/${acks[i].offset}`);
    assert.equal(r.id, e.id);
    assert.equal(r.amt, String(JSON.parse(e.data).amt));
  });
  const meta = await parquetMetadataAsync(await asyncBufferFromFile(file));
  const partition = meta.schema.find((s) => s.name === 'partition');
  assert.equal(partition.type, 'INT32');
  assert.equal(partition.repetition_type, 'REQUIRED');

  // With --partition the file has that partition's records (and the column).
  const one = path.join(out, 'p1.parquet');
  await cli(['topic', 'export', name, '--format', 'parquet', '--partition', '1', '--out', one, '--server', srv.grpcAddr]);
  assert.deepEqual(await rows(con, `SELECT DISTINCT partition FROM read_parquet('${one}')`), [{ partition: 1 }]);

  // A trailing '/' or an existing directory asks for the partition=<p>/ layout.
  for (const [dir, make] of [[path.join(out, 'dir') + '/', false], [path.join(out, 'existing'), true]]) {
    if (make) fs.mkdirSync(dir);
    await cli(['topic', 'export', name, '--format', 'parquet', '--out', dir, '--server', srv.grpcAddr]);
    const base = dir.replace(/\/$/, '');
    assert.deepEqual(fs.readdirSync(base).sort(), ['partition=0', 'partition=1', 'partition=2']);
    const n = await rows(con,
      `SELECT count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS d FROM read_parquet('${base}/**/*.parquet', hive_partitioning = true)`);
    assert.deepEqual(n, [{ n: events.length, d: events.length }]);
    assert.equal((await columnTypes(con, parquetFiles(base))).data, 'JSON', 'directory files carry the formats too');
  }
});

test('parquet inspect prints RFC 3339 times and the logical types', T, async (t) => {
  const srv = await startServer(t);
  const name = topicName('fmt-inspect');
  await srv.api.createTopic(name, 1, undefined, { data_format: 'DATA_FORMAT_JSON' });
  const events = [
    { topic: name, id: newId(), data: Buffer.from('{"n":1}'), timestamp: { seconds: 1767225600, nanos: 123456000 } },
    { topic: name, id: newId(), data: Buffer.from('{"n":2}'), timestamp: { seconds: 1767229200, nanos: 999999000 } },
  ];
  const before = Date.now();
  await srv.api.publishBatch(events);
  const after = Date.now();
  await srv.api.flushTopic(name);
  const [file] = parquetFiles(path.join(srv.dataDir, 'topics', name));
  const args = ['parquet', 'inspect', file];
  const info = parseJsonOut(args, await cli(args));
  const schema = Object.fromEntries(info.schema.map((c) => [c.path, c]));
  assert.equal(schema.data.logical_type, 'JSON');
  assert.equal(schema.id.logical_type, 'STRING');
  assert.equal(schema.timestamp.logical_type, 'TIMESTAMP(MICROS,true)');
  assert.equal(schema.key.logical_type, undefined);
  const stats = Object.fromEntries(info.row_groups[0].columns.map((c) => [c.path, c.statistics]));
  assert.equal(stats.timestamp.min, '2026-01-01T00:00:00.123456Z');
  assert.equal(stats.timestamp.max, '2026-01-01T01:00:00.999999Z');
  const rfc3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
  for (const bound of [stats.ingest_time.min, stats.ingest_time.max]) {
    assert.match(bound, rfc3339);
    const ms = Date.parse(bound);
    assert.ok(ms >= before - 1 && ms <= after + 1, `ingest_time ${bound} within the publish`);
  }
  assert.equal(stats.offset.min, 0, 'other integers stay numbers');
  assert.equal(stats.offset.max, 1);
});

// The README's lake section, run as written: its shell lines against a server, its SQL in DuckDB
// with the data directory `make run` uses replaced by the test server's.
test('the README lake example works as written', T, async (t) => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The lake'));
  const sh = section.match(/```sh\n([\s\S]*?)```/)[1].trim().split('\n');
  const sql = section.match(/```sql\n([\s\S]*?)```/)[1];
  assert.ok(sh.length >= 3 && sql.includes("data->>'amt'"), 'the README has the example');

  const srv = await startServer(t);
  for (const line of sh) {
    const words = shellWords(line);
    assert.equal(words.shift(), 'nodata', line);
    await cli([...words, '--server', srv.grpcAddr]);
  }
  assert.ok(sql.includes("'nodata-data/"), 'the query reads the directory make run serves');
  const con = await duck();
  const result = await rows(con, sql.replaceAll("'nodata-data/", `'${srv.dataDir}/`));
  assert.deepEqual(result, [
    { key: 'user-42', currency: 'EUR', amt: 18 },
    { key: 'user-7', currency: 'USD', amt: 5 },
  ]);
});

// Splits a shell line into words: blanks separate, single quotes group (enough for the README).
function shellWords(line) {
  const words = [];
  const re = /'([^']*)'|(\S+)/g;
  for (let m; (m = re.exec(line)) !== null;) words.push(m[1] ?? m[2]);
  return words;
}
