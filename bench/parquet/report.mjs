// Turns bench/parquet/run's results.jsonl into a Markdown table with nodata/DuckDB ratios and a
// JSON file with every number. Prints the table on stdout.
import fs from 'node:fs';

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const rows = fs.readFileSync(arg('--results'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const machine = Object.fromEntries(fs.readFileSync(arg('--machine'), 'utf8').trim().split('\n')
  .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
const threads = Number(arg('--threads'));

const find = (system, op, file, t) =>
  rows.find((r) => r.system === system && r.op === op && r.file === file && r.threads === t)?.result;
const int = (n) => Math.round(n).toLocaleString('en-US');
const mb = (n) => (n / 1e6).toFixed(1);
const x = (n) => `${n.toFixed(2)}x`;

const lines = [];
lines.push(`Run at ${machine.date} on ${machine.cpu}, ${machine.cores} cores (${machine.hypervisor || 'bare metal'}), ` +
  `${(Number(machine.mem_bytes) / 2 ** 30).toFixed(1)} GiB RAM, ${machine.os}, kernel ${machine.kernel}; ` +
  `files on ${machine.device} (${machine.fstype}). nodata ${machine.nodata_rev}` +
  `${machine.nodata_dirty !== '0' ? ' + uncommitted changes' : ''}, libzstd ${machine.zstd}, ` +
  `DuckDB ${find('duckdb', 'write', 'duckdb', threads)?.duckdb}, node ${machine.node}. ` +
  `Load average ${machine.loadavg_start} at start, ${machine.loadavg_end} at end.`);
lines.push('');

const ndw = (t) => find('nodata', 'write', 'nodata', t);
const dkw = (t) => find('duckdb', 'write', 'duckdb', t);
const n0 = ndw(threads);
lines.push(`Write: ${int(n0.rows)} records, ${mb(n0.raw_bytes)} MB of raw record bytes ` +
  `(ids, keys, payloads, headers and 24 bytes of integers), zstd level 3 for both. ` +
  `Writes: best of ${n0.all_seconds.length} runs; scans: best of ${find('nodata', 'scan', 'nodata', threads).repeat}.`);
lines.push('');
lines.push('| write | threads | rows/s | raw MB/s | seconds | file MB | nodata/DuckDB rows/s | nodata/DuckDB file size |');
lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const t of [...new Set([threads, 1])]) {
  const n = ndw(t);
  const d = dkw(t);
  lines.push(`| nodata parquet::Writer | ${t} | ${int(n.rows_per_s)} | ${n.raw_mb_per_s.toFixed(1)} | ` +
    `${n.seconds.toFixed(2)} | ${mb(n.file_bytes)} | ${x(n.rows_per_s / d.rows_per_s)} | ` +
    `${x(n.file_bytes / d.file_bytes)} |`);
  lines.push(`| DuckDB COPY (FORMAT parquet, COMPRESSION zstd) | ${d.threads} | ${int(d.rows_per_s)} | ` +
    `${(n.raw_bytes / d.seconds / 1e6).toFixed(1)} | ${d.seconds.toFixed(2)} | ${mb(d.file_bytes)} |  |  |`);
}
lines.push('');
lines.push('| scan of `data` (sum of lengths) | file | threads | rows/s | seconds | nodata/DuckDB |');
lines.push('| --- | --- | ---: | ---: | ---: | ---: |');
for (const file of ['nodata', 'duckdb']) {
  for (const t of [...new Set([threads, 1])]) {
    const n = find('nodata', 'scan', file, t);
    const d = find('duckdb', 'scan', file, t);
    if (n.sum_length !== d.sum_length || n.rows !== d.rows) {
      throw new Error(`scan of ${file} disagrees: nodata ${n.sum_length}, DuckDB ${d.sum_length}`);
    }
    lines.push(`| nodata Reader::ScanByteArrayColumn | ${file}'s | ${t} | ${int(n.rows_per_s)} | ` +
      `${n.seconds.toFixed(3)} | ${x(n.rows_per_s / d.rows_per_s)} |`);
    lines.push(`| DuckDB sum(octet_length(data)) | ${file}'s | ${d.threads} | ${int(d.rows_per_s)} | ` +
      `${d.seconds.toFixed(3)} |  |`);
  }
}
lines.push('');
const d0 = dkw(threads);
const writeRatio = n0.rows_per_s / d0.rows_per_s;
const sizeRatio = n0.file_bytes / d0.file_bytes;
const scanRatio = find('nodata', 'scan', 'nodata', threads).rows_per_s /
  find('duckdb', 'scan', 'nodata', threads).rows_per_s;
const verdict = (ok) => (ok ? '**met**' : '**not met**');
lines.push(`Targets (${threads} threads each): write >= 1.5x DuckDB's rows/s: ${verdict(writeRatio >= 1.5)} ` +
  `(${x(writeRatio)}); file <= 1.1x DuckDB's: ${verdict(sizeRatio <= 1.1)} (${x(sizeRatio)}); ` +
  `scan of nodata's file >= DuckDB: ${verdict(scanRatio >= 1)} (${x(scanRatio)}).`);

const markdown = `${lines.join('\n')}\n`;
process.stdout.write(markdown);
if (arg('--markdown')) fs.writeFileSync(arg('--markdown'), markdown);
if (arg('--json')) {
  fs.writeFileSync(arg('--json'), JSON.stringify({ machine, threads, results: rows,
    ratios: { write_rows_per_s: writeRatio, file_size: sizeRatio, scan_nodata_file: scanRatio } }, null, 2));
}
