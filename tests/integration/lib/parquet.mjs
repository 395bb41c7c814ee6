// Helpers for tests that check Parquet files: where they are, and a DuckDB connection.
import fs from 'node:fs';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';

/** Every *.parquet file below `dir` (recursively), sorted; none when `dir` does not exist. */
export function parquetFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true })
    .filter((f) => f.endsWith('.parquet'))
    .map((f) => path.join(dir, f))
    .sort();
}

/** A connection to a fresh in-memory DuckDB. */
export async function duck() {
  const instance = await DuckDBInstance.create(':memory:');
  return instance.connect();
}
