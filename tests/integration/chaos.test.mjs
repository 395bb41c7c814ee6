// Chaos: everything at once (lib/chaos.mjs: two publishers retrying batches with the same ids
// until acknowledged, a consumer group of two members committing what they received, a
// transform chain filter -> field map, and two aggregations), disrupted round after round:
// - SIGKILLs at random moments, the server sometimes left down a while;
// - storage faults injected by the test build of the server (`nodata-faults`): failed
//   fdatasyncs, short writes, refused reservations; restarted only when /healthz asks for it;
// - a full disk: the data directory on a tmpfs filled up while everything runs, then freed,
//   with no restart.
// After every round, the group's committed offsets must not be ahead of what its members had
// received; at the end, every acknowledged event is stored exactly once where acknowledged,
// every transform output exists exactly once, both aggregations equal DuckDB's GROUP BY over
// their input's Parquet lake, and the group received every record.
// Rounds: NODATA_CHAOS_KILLS (12), NODATA_CHAOS_FAULTS (8), NODATA_CHAOS_DISK_FULL (4); `make
// chaos` runs 120, 40 and 12. The seed is printed; replay with NODATA_CHAOS_SEED.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Code } from './lib/grpc.mjs';
import { runPipeline } from './lib/chaos.mjs';
import { httpGet, makeTempDir, nodataBin } from './lib/server.mjs';
import { sleep } from './lib/util.mjs';

const KILLS = Number(process.env.NODATA_CHAOS_KILLS ?? 12);
const FAULTS = Number(process.env.NODATA_CHAOS_FAULTS ?? 8);
const DISK_FULL = Number(process.env.NODATA_CHAOS_DISK_FULL ?? 4);
const timeout = (rounds) => ({ timeout: 300000 + rounds * 15000 });

test(`chaos: ${KILLS} SIGKILLs with everything running`, timeout(KILLS), async (t) => {
  let downMs = 0;
  const { figures } = await runPipeline(t, {
    rounds: KILLS,
    disrupt: async (srv, k, rand) => {
      await srv.kill();
      if (rand() < 0.2) {
        const d = Math.floor(rand() * 400);
        downMs += d;
        await sleep(d);
      }
      await srv.start({ samePorts: true });
    },
  });
  assert.equal(figures.server_starts, KILLS + 1);
  t.diagnostic(`down for ${downMs} ms more in all`);
});

/** The fault control file of `nodata-faults` (docs/reliability.md, "Injected faults"). */
class FaultControl {
  constructor(dir) {
    this.path = path.join(dir, 'faults');
    this.generation = 0;
    fs.writeFileSync(this.path, 'generation 0\n');
  }
  /** Writes `commands` and waits until the server applied them; returns its status. */
  async set(commands) {
    const generation = ++this.generation;
    fs.writeFileSync(`${this.path}.tmp`, `generation ${generation}\n${commands.join('\n')}\n`);
    fs.renameSync(`${this.path}.tmp`, this.path);
    const deadline = Date.now() + 10000;
    for (;;) {
      const st = this.status();
      if (st.error) assert.fail(`fault control: ${st.error}`);
      if (st.generation === generation) return st;
      if (Date.now() > deadline) assert.fail(`nodata-faults did not apply generation ${generation}: ${JSON.stringify(st)}`);
      await sleep(10);
    }
  }
  status() {
    let text = '';
    try {
      text = fs.readFileSync(`${this.path}.status`, 'utf8');
    } catch {
      return {};
    }
    const st = {};
    for (const line of text.split('\n')) {
      const [name, ...rest] = line.split(' ');
      if (name === 'error') st.error = rest.join(' ');
      else if (name) st[name] = Number(rest[0]);
    }
    return st;
  }
}

const CLEAR = ['sync ok', 'sync-fail-every 0', 'write-budget off', 'disk-full off'];
const FAULT_KINDS = [
  ['sync fail'],  // every fdatasync fails
  ['sync-fail-every 3'],  // one in three
  ['write-budget 4096'],  // a short write, then ENOSPC on every write
  ['disk-full on'],  // reservations (fallocate) refused
];

test(`chaos: ${FAULTS} rounds of injected storage faults with everything running`, timeout(FAULTS), async (t) => {
  const bin = path.join(path.dirname(nodataBin()), 'nodata-faults');
  assert.ok(fs.existsSync(bin), `${bin} is missing: it is built with the server (target nodata-faults)`);
  const control = new FaultControl(makeTempDir('nodata-faults-'));
  let injected = 0;
  let restarts = 0;
  const kinds = {};
  const { srv, figures } = await runPipeline(t, {
    rounds: FAULTS,
    server: { bin, env: { NODATA_FAULTS: control.path } },
    // Refusals while storage fails: the journal's error, a full disk.
    tolerate: (err) => [Code.INTERNAL, Code.RESOURCE_EXHAUSTED, Code.UNAVAILABLE].includes(err.code),
    disrupt: async (srv, k, rand) => {
      const kind = FAULT_KINDS[k % FAULT_KINDS.length];
      const before = (await control.set(kind)).injected;
      await sleep(200 + Math.floor(rand() * 400));
      const after = (await control.set(CLEAR)).injected;
      injected += after - before;
      kinds[kind[0]] = (kinds[kind[0]] ?? 0) + (after - before);
      const health = await httpGet(srv, '/healthz');
      if (health.status === 503) {
        assert.match(health.body, /^storage failed: [^]*restarted/, 'failed storage says so, and what to do');
        ++restarts;
        await srv.kill();
        await srv.start({ samePorts: true });
      } else {
        assert.equal(health.status, 200, health.body);
      }
    },
  });
  assert.ok(injected >= FAULTS, `${injected} faults injected in ${FAULTS} rounds`);
  assert.equal(figures.server_starts, restarts + 1);
  t.diagnostic(`faults ${JSON.stringify({ injected, restarts, kinds })}`);
  if (process.env.NODATA_CHAOS_REPORT) {
    fs.appendFileSync(process.env.NODATA_CHAOS_REPORT, `${JSON.stringify({ test: t.name, injected, restarts, kinds })}\n`);
  }
  await srv.stop();
});

// Needs root to mount a tmpfs (CI runs as root); fails rather than skips without it.
function mountTmpfs(dir, bytes) {
  assert.equal(process.getuid?.(), 0, 'the disk-full chaos test mounts a tmpfs: run the suite as root');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
}

/** Fills the file system holding `dir` to the last block; returns the file. */
function fill(dir) {
  const file = path.join(dir, `filler-${Date.now()}`);
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20, 7);
  try {
    for (;;) {
      const { bavail, bsize } = fs.statfsSync(dir);
      const free = bavail * bsize;
      if (free === 0) break;
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, free));
    }
  } catch (err) {
    if (err.code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

test(`chaos: ${DISK_FULL} rounds of a full disk with everything running`, timeout(DISK_FULL), async (t) => {
  const base = makeTempDir('nodata-chaos-full-');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(mnt);
  mountTmpfs(mnt, 256 << 20);
  t.after(() => {
    try {
      execFileSync('umount', [mnt], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mnt], { stdio: 'pipe' });
    }
    fs.rmSync(base, { recursive: true, force: true });
  });
  let fullMs = 0;
  const { srv, figures } = await runPipeline(t, {
    rounds: DISK_FULL,
    server: { dataDir: path.join(mnt, 'data') },
    tolerate: (err) => err.code === Code.RESOURCE_EXHAUSTED,
    disrupt: async (srv, k, rand) => {
      const filler = fill(mnt);
      const held = 300 + Math.floor(rand() * 700);
      fullMs += held;
      await sleep(held);
      fs.rmSync(filler);
      // Space is back: no restart, the server goes on.
      const health = await httpGet(srv, '/healthz');
      assert.equal(health.status, 200, `after a full disk: ${health.body}`);
    },
  });
  assert.equal(figures.server_starts, 1, 'the server was never restarted');
  assert.ok((figures.publish_refusals.RESOURCE_EXHAUSTED ?? 0) > 0, 'publishes were refused while the disk was full');
  t.diagnostic(`disk full for ${fullMs} ms in all`);
  await srv.stop();
});
