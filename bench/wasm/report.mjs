// Turns bench/wasm/run's results.jsonl (nodata_wasm_bench's lines and node_agg.mjs's) into a
// Markdown table with ratios to native and to Node/V8, and a JSON file with every number. Prints
// the table on stdout. Fails (exit 1, no files written) when an engine's checksum differs from
// native's over the same records.
//   node report.mjs --results results.jsonl --machine machine.env [--json out.json] [--markdown out.md]
import fs from 'node:fs';

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const rows = fs.readFileSync(arg('--results'), 'utf8').trim().split('\n').filter(Boolean)
  .map((l) => JSON.parse(l));
const machine = Object.fromEntries(fs.readFileSync(arg('--machine'), 'utf8').trim().split('\n')
  .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

const config = rows.find((r) => r.kind === 'config');
const module = rows.find((r) => r.kind === 'module');
const engine = (name) => rows.find((r) => r.engine === name);
const latency = (what) => rows.find((r) => r.kind === 'latency' && r.what === what);
const native = engine('native');
const tier1 = engine('tier1');
const tier0 = engine('tier0');
const node = engine('node');
for (const [name, r] of [['config', config], ['native', native], ['tier1', tier1], ['tier0', tier0],
  ['node', node], ['load_to_native_cold', latency('load_to_native_cold')],
  ['cache_hit', latency('cache_hit')]]) {
  if (!r) throw new Error(`results.jsonl has no ${name} line`);
}

// Checksums: every engine against native over the same records.
const problems = [];
const reference = (r) => (r.reference_checksum ?? (r.records === native.records ? native.checksum : undefined));
for (const r of [tier1, tier0, node]) {
  const want = reference(r);
  if (want === undefined) problems.push(`${r.engine}: ran ${r.records} records, native ${native.records}; nothing to compare with`);
  else if (r.checksum !== want) problems.push(`${r.engine}: checksum ${r.checksum}, native ${want} over ${r.records} records`);
}

const int = (n) => Math.round(n).toLocaleString('en-US');
const x = (n) => `${n.toFixed(2)}x`;
const ms = (n) => (n < 10 ? n.toFixed(3) : n.toFixed(1));
const verdict = (ok) => (ok ? '**met**' : '**not met**');

const lines = [];
lines.push(`Run at ${machine.date} on ${machine.cpu}, ${machine.cores} cores (${machine.hypervisor || 'bare metal'}), ` +
  `${(Number(machine.mem_bytes) / 2 ** 30).toFixed(1)} GiB RAM, ${machine.os}, kernel ${machine.kernel}. ` +
  `nodata ${machine.nodata_rev}${machine.nodata_dirty !== '0' ? ' + uncommitted changes' : ''}; ` +
  `native and tier 1 compiled by ${machine.cc} (${config.compiler} ${config.compiler_flags}); agg.wasm by ${machine.clang}; ` +
  `node ${machine.node} (V8 ${machine.v8}). Load average ${machine.loadavg_start} at start, ${machine.loadavg_end} at end.`);
lines.push('');
lines.push(`Routine: bench/wasm/agg.c, per-key sum and count of 16-byte records in an open-addressing hash ` +
  `table (linear probing), ${int(config.keys)} distinct keys, ${int(config.records)} records ` +
  `(tier 0: the first ${int(config.interp_records)}) in batches of ${int(config.batch)}, each copied into the ` +
  `routine's input buffer, then aggregate(ptr, n). agg.wasm: ${config.wasm_bytes} bytes` +
  `${module?.features?.length ? `, features ${module.features.join(', ')}` : ''}. ` +
  `Best of ${native.all_seconds.length} runs (tier 0: ${tier0.all_seconds.length}); checksums ` +
  `${problems.length ? '**DISAGREE**' : 'agree across all engines'}.`);
lines.push('');
lines.push('| engine | records | records/s | seconds | vs native | vs Node/V8 | checksum |');
lines.push('| --- | ---: | ---: | ---: | ---: | ---: | --- |');
const label = {
  native: 'native (agg.c, cc -O2, called directly)',
  tier1: 'nodata::wasm tier 1 (native)',
  tier0: 'nodata::wasm tier 0 (interpreter)',
  node: 'Node/V8 WebAssembly',
};
for (const r of [native, tier1, tier0, node]) {
  lines.push(`| ${label[r.engine]} | ${int(r.records)} | ${int(r.records_per_s)} | ${r.seconds.toFixed(3)} | ` +
    `${x(r.records_per_s / native.records_per_s)} | ${x(r.records_per_s / node.records_per_s)} | ` +
    `${r.checksum}${problems.some((p) => p.startsWith(`${r.engine}:`)) ? ' (**mismatch**)' : ''} |`);
}
lines.push('');
const cold = latency('load_to_native_cold');
const hit = latency('cache_hit');
lines.push('| latency | runs | median ms | min ms | max ms | runtime\'s load_seconds, median ms |');
lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
lines.push(`| load-to-native, cold (Load to WaitNative ready, fresh cache dir) | ${cold.all_ms.length} | ` +
  `${ms(cold.median_ms)} | ${ms(cold.min_ms)} | ${ms(cold.max_ms)} | ${ms(median(cold.runtime_load_ms))} |`);
lines.push(`| cache hit (new Runtime, Load + WaitNative, warm cache dir) | ${hit.all_ms.length} | ` +
  `${ms(hit.median_ms)} | ${ms(hit.min_ms)} | ${ms(hit.max_ms)} | ${ms(median(hit.runtime_load_ms))} |`);
const calls = rows.filter((r) => r.kind === 'call');
if (calls.length) {
  const names = { guarded_entry: 'guarded entry into native code (rt.h GuardedCall, empty function)',
    call: 'Instance::Call of a trivial export, tier 1',
    call_with_deadline: 'the same with a deadline (watchdog armed and disarmed)' };
  lines.push('');
  lines.push('| call overhead | ns per call |');
  lines.push('| --- | ---: |');
  for (const c of calls) lines.push(`| ${names[c.what] ?? c.what} | ${c.ns_per_call.toFixed(1)} |`);
}
lines.push('');
const t1Native = tier1.records_per_s / native.records_per_s;
const t1Node = tier1.records_per_s / node.records_per_s;
lines.push(`Targets: tier 1 >= 0.75x native: ${verdict(t1Native >= 0.75)} (${x(t1Native)}); ` +
  `tier 1 >= 1.0x Node/V8: ${verdict(t1Node >= 1)} (${x(t1Node)}); ` +
  `load-to-native <= 300 ms: ${verdict(cold.median_ms <= 300)} (${ms(cold.median_ms)} ms, median); ` +
  `cache hit <= 1 ms: ${verdict(hit.median_ms <= 1)} (${ms(hit.median_ms)} ms, median).`);
for (const p of problems) lines.push(`\n**Checksum mismatch**: ${p}`);

const markdown = `${lines.join('\n')}\n`;
process.stdout.write(markdown);
if (problems.length) {
  process.stderr.write(`report.mjs: checksums disagree:\n  ${problems.join('\n  ')}\n`);
  process.exit(1);
}
if (arg('--markdown')) fs.writeFileSync(arg('--markdown'), markdown);
if (arg('--json')) {
  fs.writeFileSync(arg('--json'), JSON.stringify({ machine, config, module, results: rows,
    ratios: { tier1_to_native: t1Native, tier1_to_node: t1Node,
      tier0_to_native: tier0.records_per_s / native.records_per_s,
      node_to_native: node.records_per_s / native.records_per_s },
    latency_ms: { load_to_native_cold: cold.median_ms, cache_hit: hit.median_ms },
    call_ns: Object.fromEntries(calls.map((c) => [c.what, c.ns_per_call])),
    targets: { tier1_to_native: 0.75, tier1_to_node: 1.0, load_to_native_ms: 300, cache_hit_ms: 1 } }, null, 2));
}
