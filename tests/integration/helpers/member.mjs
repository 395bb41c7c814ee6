// A consumer-group member in its own process, so that a test can SIGKILL it: subscribes to
// TOPIC as GROUP/CONSUMER at ADDR, commits after every batch, and prints one JSON line per
// assignment and per batch ({"assignment": [...]} / {"records": [[partition, offset, id], ...]}).
import { Api } from '../lib/grpc.mjs';

const [addr, topic, group, consumer] = process.argv.slice(2);
const api = new Api(addr);
const call = api.consume.Subscribe({ topic, group, consumer_id: consumer, max_batch: 50 });
call.on('data', async (msg) => {
  if (msg.assignment) {
    process.stdout.write(`${JSON.stringify({ assignment: msg.assignment.partitions, generation: msg.assignment.generation })}\n`);
    return;
  }
  const records = msg.records.records;
  process.stdout.write(`${JSON.stringify({ records: records.map((r) => [r.partition, r.offset, r.event.id]) })}\n`);
  const last = new Map();
  for (const r of records) last.set(r.partition, r.offset + 1);
  call.pause();
  try {
    await api.commit(group, topic, [...last].map(([partition, offset]) => ({ partition, offset })));
  } finally {
    call.resume();
  }
});
call.on('error', (err) => {
  process.stderr.write(`member ${consumer}: ${err.code} ${err.details}\n`);
  process.exit(1);
});
