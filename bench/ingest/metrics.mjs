// Scrapes nodata's /metrics and prints one JSON object with the counters the ingest benchmark
// reports (each summed over all label sets): events in, bytes in, duplicates, fsync count and time,
// records per fsync. Prints {} when the endpoint cannot be read.
//
//   node metrics.mjs http://127.0.0.1:7071/metrics
const url = process.argv[2];
const wanted = {
  events_in: "nodata_events_in_total",
  bytes_in: "nodata_bytes_in_total",
  duplicates: "nodata_duplicates_total",
  fsync_count: "nodata_fsync_latency_seconds_count",
  fsync_seconds: "nodata_fsync_latency_seconds_sum",
  fsync_records_count: "nodata_fsync_batch_records_count",
  fsync_records_sum: "nodata_fsync_batch_records_sum",
  publish_latency_count: "nodata_publish_latency_seconds_count",
  publish_latency_seconds: "nodata_publish_latency_seconds_sum",
};
const out = {};
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const name = line.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/)?.[0];
    const value = Number(line.replace(/^[^{\s]+(\{.*\})?\s+/, "").split(/\s+/)[0]);
    for (const [k, metric] of Object.entries(wanted)) {
      if (name === metric && Number.isFinite(value)) out[k] = (out[k] ?? 0) + value;
    }
  }
} catch {
  // leave {}
}
console.log(JSON.stringify(out));
