// Prints the egress benchmark's tables (markdown) with ratios against the peers, and writes the
// raw results as JSON.   node report.mjs results.jsonl out.json
import fs from 'node:fs';
import os from 'node:os';

const [input, output] = process.argv.slice(2);
const rows = fs.readFileSync(input, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const lat = rows.filter((r) => r.mode === 'latency');
const cu = rows.filter((r) => r.mode === 'catchup' || r.records_per_s !== undefined);

const f = (x, d = 2) => (x === undefined ? '-' : Number(x).toFixed(d));
const best = (label) => {
  const xs = cu.filter((r) => r.label === label).map((r) => r.records_per_s);
  return xs.length ? Math.max(...xs) : undefined;
};

let md = `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}\n\n`;
md += '### Publish → receive latency\n\n| system / client | events/s | p50 ms | p99 ms | p99.9 ms | max ms |\n|---|---:|---:|---:|---:|---:|\n';
for (const r of lat) md += `| ${r.label} | ${r.rate} | ${f(r.p50_ms)} | ${f(r.p99_ms)} | ${f(r.p999_ms)} | ${f(r.max_ms)} |\n`;
md += '\n### Catch-up of one reader\n\n| system / client / tier | records/s | MB/s |\n|---|---:|---:|\n';
for (const r of cu) md += `| ${r.label} | ${Math.round(r.records_per_s).toLocaleString('en-US')} | ${f(r.mb_per_s, 1)} |\n`;
const ratios = [];
for (const [a, b] of [
  ['nodata node hot tier', 'redis node XREAD COUNT 1000'],
  ['nodata node hot tier', 'jetstream node pull 1000'],
  ['nodata c++ hot tier', 'redis node XREAD COUNT 1000'],
  ['nodata c++ hot tier', 'jetstream node pull 1000'],
  ['nodata c++ Parquet', 'nodata c++ hot tier'],
  ['nodata c++ wire Parquet', 'nodata c++ wire hot tier'],
]) {
  if (best(a) && best(b)) ratios.push(`${a} / ${b}: ${(best(a) / best(b)).toFixed(2)}×`);
}
const latOf = (label) => lat.find((r) => r.label === label);
for (const [a, b] of [['nodata node (fsync always)', 'redis node (appendfsync always)'], ['nodata node (fsync always)', 'jetstream node (file storage)']]) {
  if (latOf(a) && latOf(b)) ratios.push(`p99 ${a} / ${b}: ${(latOf(a).p99_ms / latOf(b).p99_ms).toFixed(2)}×`);
}
if (ratios.length) md += `\nRatios (best run): ${ratios.join('; ')}\n`;
console.log(md);
fs.writeFileSync(output, JSON.stringify({ machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, mem_gib: os.totalmem() / 2 ** 30 }, rows }, null, 2));
fs.writeFileSync(output.replace(/\.json$/, '.md'), md);
