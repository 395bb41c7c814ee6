// DuckDB's side of the Parquet benchmark (bench/parquet/run), on @duckdb/node-api.
//
//   node duckdb.mjs write --source NODATA.parquet --out DUCK.parquet [--threads T] [--repeat R]
//     Loads every row of nodata's file into an in-memory table (not timed), then times only
//     COPY t TO DUCK.parquet (FORMAT parquet, COMPRESSION zstd), R times; the fastest counts.
//   node duckdb.mjs scan --file F [--threads T] [--repeat R] [--column data]
//     Times SELECT sum(octet_length(data)) FROM read_parquet(F), best of R runs.
//
// T sets DuckDB's `threads` (default: DuckDB's own, the number of cores). Prints one JSON object.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The client comes from bench/parquet/node_modules (npm ci there), pinned like tests/'s.
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, 'package.json'));
const { DuckDBInstance } = await import(require.resolve('@duckdb/node-api'));

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const sql = (s) => `'${s.replaceAll("'", "''")}'`;

const cmd = process.argv[2];
const threads = arg('--threads', '');
const instance = await DuckDBInstance.create(':memory:', threads ? { threads } : {});
const con = await instance.connect();
const setting = async (name) =>
  (await con.runAndReadAll(`SELECT current_setting('${name}') AS v`)).getRowObjectsJson()[0].v;
const version = (await con.runAndReadAll('SELECT version() AS v')).getRowObjectsJson()[0].v;
const common = { duckdb: version, threads: Number(await setting('threads')) };

if (cmd === 'write') {
  const source = arg('--source');
  const out = arg('--out');
  fs.rmSync(out, { force: true });
  let t = performance.now();
  await con.run(`CREATE TABLE t AS SELECT * FROM read_parquet(${sql(source)})`);
  const loadSeconds = (performance.now() - t) / 1000;
  const rows = Number((await con.runAndReadAll('SELECT count(*) AS n FROM t')).getRowObjectsJson()[0].n);
  const repeat = Number(arg('--repeat', '1'));
  const all = [];
  for (let i = 0; i < repeat; i++) {
    fs.rmSync(out, { force: true });
    t = performance.now();
    await con.run(`COPY t TO ${sql(out)} (FORMAT parquet, COMPRESSION zstd)`);
    all.push((performance.now() - t) / 1000);
  }
  const seconds = Math.min(...all);
  const fileBytes = fs.statSync(out).size;
  console.log(JSON.stringify({ ...common, rows, seconds, rows_per_s: rows / seconds,
    file_bytes: fileBytes, load_seconds: loadSeconds, all_seconds: all }));
} else if (cmd === 'scan') {
  const file = arg('--file');
  const column = arg('--column', 'data');
  const repeat = Number(arg('--repeat', '1'));
  let best = Infinity;
  let result;
  for (let i = 0; i < repeat; i++) {
    const t = performance.now();
    result = (await con.runAndReadAll(
      `SELECT count(*) AS n, sum(octet_length("${column}")) AS s FROM read_parquet(${sql(file)})`,
    )).getRowObjectsJson()[0];
    best = Math.min(best, (performance.now() - t) / 1000);
  }
  const rows = Number(result.n);
  console.log(JSON.stringify({ ...common, rows, sum_length: Number(result.s), seconds: best,
    rows_per_s: rows / best, repeat }));
} else {
  console.error('usage: node duckdb.mjs write|scan [flags]');
  process.exit(2);
}
