// nodata's Parquet files against independent readers and writers: files written by
// build/src/parquet/parquet_sample are read back with DuckDB and hyparquet, and files DuckDB
// writes for the same schema are read with nodata's reader (parquet_sample --dump).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { makeTempDir } from './lib/server.mjs';

const T = { timeout: 120000 };
const N = 3500;  // four row groups of at most 1000 rows
const SAMPLE = path.join(path.dirname(process.env.NODATA_BIN ?? 'build/nodata'), 'src/parquet/parquet_sample');

// The records parquet_sample generates (see src/parquet/sample_main.cc).
function expected(i) {
  const ts = 1700000000000000n + BigInt(i) * 1000n;
  return {
    offset: BigInt(i),
    timestamp_us: ts,
    ingest_time_us: ts + 5n,
    id: `id-${i}`,
    key: i % 3 === 0 ? null : `key-${i % 7}`,
    data: `data-${i}`.repeat((i % 4) + 1),
    headers: Array.from({ length: i % 4 }, (_, j) => [`h${j}`, `v${(i + j) % 3}`]),
  };
}

const tempDirs = [];
function tempDir() {
  const dir = makeTempDir('nodata-pq-');
  tempDirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function writeSample(dir, codec) {
  assert.ok(fs.existsSync(SAMPLE), `${SAMPLE} missing: build the parquet_sample target`);
  const file = path.join(dir, `sample-${codec}.parquet`);
  execFileSync(SAMPLE, [file, String(N), codec]);
  return file;
}

async function duck() {
  const instance = await DuckDBInstance.create(':memory:');
  return instance.connect();
}

const SELECT_CANONICAL = `
  SELECT "offset"::VARCHAR AS "offset", epoch_us("timestamp")::VARCHAR AS ts,
         epoch_us(ingest_time)::VARCHAR AS ingest, id, decode(key) AS key, decode(data) AS data,
         to_json(map_entries(headers))::VARCHAR AS headers`;

for (const codec of ['zstd', 'snappy', 'none']) {
  test(`DuckDB reads every value of a nodata file (${codec})`, T, async () => {
    const file = writeSample(tempDir(), codec);
    const con = await duck();
    const rows = (await con.runAndReadAll(
      `${SELECT_CANONICAL} FROM read_parquet('${file}') ORDER BY "offset"::BIGINT`)).getRowObjectsJson();
    assert.equal(rows.length, N);
    for (let i = 0; i < N; i++) {
      const e = expected(i);
      const r = rows[i];
      assert.equal(r.offset, String(e.offset));
      assert.equal(r.ts, String(e.timestamp_us));
      assert.equal(r.ingest, String(e.ingest_time_us));
      assert.equal(r.id, e.id);
      assert.equal(r.key, e.key);
      assert.equal(r.data, e.data);
      assert.deepEqual(JSON.parse(r.headers).map((kv) => [kv.key, kv.value]), e.headers, `row ${i}`);
    }
    // Types and statistics as DuckDB sees them.
    const types = (await con.runAndReadAll(
      `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${file}'))`)).getRowObjectsJson();
    assert.deepEqual(Object.fromEntries(types.map((t) => [t.column_name, t.column_type])), {
      offset: 'BIGINT', timestamp: 'TIMESTAMP WITH TIME ZONE', ingest_time: 'TIMESTAMP WITH TIME ZONE',
      id: 'VARCHAR', key: 'BLOB', data: 'BLOB', headers: 'MAP(VARCHAR, VARCHAR)',
    });
    const stats = (await con.runAndReadAll(
      `SELECT row_group_id, path_in_schema, stats_min_value, stats_max_value, stats_null_count
       FROM parquet_metadata('${file}') ORDER BY row_group_id`)).getRowObjectsJson();
    const offsetStats = stats.filter((s) => s.path_in_schema === 'offset');
    assert.equal(offsetStats.length, 4);
    offsetStats.forEach((s, g) => {
      assert.equal(s.stats_min_value, String(g * 1000));
      assert.equal(s.stats_max_value, String(Math.min(N, (g + 1) * 1000) - 1));
      assert.equal(s.stats_null_count, '0');
    });
    const keyStats = stats.find((s) => s.path_in_schema === 'key' && s.row_group_id === '0');
    assert.equal(keyStats.stats_null_count, '334');
    // A filter that uses the statistics gives the same answer as a scan.
    const hits = (await con.runAndReadAll(
      `SELECT count(*)::VARCHAR AS n FROM read_parquet('${file}') WHERE "offset" BETWEEN 1500 AND 1600`)).getRowObjectsJson();
    assert.equal(hits[0].n, '101');
  });

  test(`hyparquet reads every value of a nodata file (${codec})`, T, async () => {
    const file = writeSample(tempDir(), codec);
    const buffer = await asyncBufferFromFile(file);
    const metadata = await parquetMetadataAsync(buffer);
    assert.equal(Number(metadata.num_rows), N);
    assert.equal(metadata.row_groups.length, 4);
    const rows = await parquetReadObjects({
      file: buffer, compressors, utf8: false,
      parsers: { timestampFromMicroseconds: (us) => BigInt(us) },
    });
    assert.equal(rows.length, N);
    const text = (b) => (b == null ? null : Buffer.from(b).toString('utf8'));
    for (let i = 0; i < N; i++) {
      const e = expected(i);
      const r = rows[i];
      assert.equal(BigInt(r.offset), e.offset);
      assert.equal(r.timestamp, e.timestamp_us);
      assert.equal(r.ingest_time, e.ingest_time_us);
      assert.equal(r.id, e.id);
      assert.equal(text(r.key), e.key, `row ${i} key`);
      assert.equal(text(r.data), e.data);
      assert.deepEqual(Object.entries(r.headers ?? {}), e.headers, `row ${i} headers`);
    }
  });
}

for (const [label, options] of [
  ['v1 snappy', "COMPRESSION snappy"],
  ['v1 zstd dictionary', "COMPRESSION zstd, ROW_GROUP_SIZE 1000"],
  ['v2 uncompressed', "COMPRESSION uncompressed, PARQUET_VERSION v2"],
  ['v2 zstd', "COMPRESSION zstd, PARQUET_VERSION v2, ROW_GROUP_SIZE 1000"],
]) {
  test(`nodata reads a DuckDB file (${label})`, T, async () => {
    assert.ok(fs.existsSync(SAMPLE), `${SAMPLE} missing: build the parquet_sample target`);
    const file = path.join(tempDir(), 'duckdb.parquet');
    const con = await duck();
    await con.run(`
      COPY (
        SELECT i::BIGINT AS "offset",
               make_timestamp(1700000000000000 + i * 1000) AS "timestamp",
               make_timestamp(1700000000000000 + i * 1000 + 5) AS ingest_time,
               'id-' || i AS id,
               CASE WHEN i % 3 = 0 THEN NULL ELSE encode('key-' || (i % 7)) END AS key,
               encode(repeat('data-' || i, (i % 4 + 1)::INTEGER)) AS data,
               map_from_entries(list_transform(range(i % 4),
                   j -> {'key': 'h' || j, 'value': 'v' || ((i + j) % 3)})) AS headers
        FROM range(${N}) r(i) ORDER BY i
      ) TO '${file}' (FORMAT parquet, ${options})`);
    const lines = execFileSync(SAMPLE, ['--dump', file], { maxBuffer: 64 << 20 }).toString().trim().split('\n');
    assert.equal(lines.length, N);
    const hex = (s) => (s == null ? '' : Buffer.from(s).toString('hex'));
    for (let i = 0; i < N; i++) {
      const e = expected(i);
      const r = JSON.parse(lines[i]);
      assert.equal(r.offset, Number(e.offset));
      assert.equal(BigInt(r.timestamp_us), e.timestamp_us);
      assert.equal(BigInt(r.ingest_time_us), e.ingest_time_us);
      assert.equal(r.id, e.id);
      assert.equal(r.key_hex, hex(e.key));
      assert.equal(r.data_hex, hex(e.data));
      assert.deepEqual(r.headers, e.headers, `row ${i}`);
    }
  });
}

test('nodata parquet inspect agrees with DuckDB\'s parquet_metadata', T, async () => {
  const file = writeSample(tempDir(), 'zstd');
  const bin = process.env.NODATA_BIN ?? 'build/nodata';
  const out = JSON.parse(execFileSync(bin, ['parquet', 'inspect', file]).toString());
  assert.equal(out.num_rows, N);
  const con = await duck();
  const meta = (await con.runAndReadAll(
    `SELECT row_group_id, row_group_num_rows, path_in_schema, stats_min_value, stats_max_value,
            stats_null_count, compression
     FROM parquet_metadata('${file}') ORDER BY row_group_id, column_id`)).getRowObjectsJson();
  const groups = new Set(meta.map((m) => m.row_group_id));
  assert.equal(out.row_groups.length, groups.size, 'row group count');
  for (const m of meta) {
    const g = out.row_groups[Number(m.row_group_id)];
    assert.equal(g.num_rows, Number(m.row_group_num_rows));
    const c = g.columns.find((col) => col.path.replaceAll('.', ', ') === m.path_in_schema || col.path === m.path_in_schema);
    assert.ok(c, `column ${m.path_in_schema} in inspect output`);
    assert.equal(c.codec, m.compression);
    if (m.path_in_schema === 'offset') {
      assert.equal(String(c.statistics.min), m.stats_min_value, 'offset min');
      assert.equal(String(c.statistics.max), m.stats_max_value, 'offset max');
      assert.equal(c.statistics.null_count, Number(m.stats_null_count));
    }
  }
  // A file that is not Parquet is a clean error, not a crash.
  const bad = path.join(tempDir(), 'bad.parquet');
  fs.writeFileSync(bad, 'PAR1 this is not a parquet file PAR1');
  assert.throws(() => execFileSync(bin, ['parquet', 'inspect', bad], { stdio: 'pipe' }),
    (e) => e.status === 1 && /DATA_LOSS|INVALID_ARGUMENT/.test(e.stderr.toString()));
});
