// Full disk: RESOURCE_EXHAUSTED, server stays up, acked events kept, publishing works once space returns.
// Needs root and tmpfs (CI runs as root); without them this test FAILS rather than silently passing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Code, codeName } from './lib/grpc.mjs';
import { makeTempDir, NodataServer } from './lib/server.mjs';
import { ev, newId, sleep, sum, topicName } from './lib/util.mjs';

// The server reserves log space ahead in chunks of a few MiB per active segment, so the tmpfs must
// leave room for a couple of those.
const MOUNT_BYTES = 24 * 1024 * 1024;
const FILLER_BYTES = 6 * 1024 * 1024;

function mountTmpfs(dir, bytes) {
  if (process.getuid?.() !== 0) {
    assert.fail(`the full-disk test needs root to mount a tmpfs (running as uid ${process.getuid?.()}); run the suite as root`);
  }
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    assert.fail(`the full-disk test cannot mount a tmpfs on ${dir}: ${err.stderr?.toString() || err.message}`);
  }
}

function umount(dir) {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
}

test('disk full => RESOURCE_EXHAUSTED; acked data kept; works again once space returns', { timeout: 120000 }, async (t) => {
  const base = makeTempDir('nodata-full-');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(mnt);
  mountTmpfs(mnt, MOUNT_BYTES);
  const filler = path.join(mnt, 'filler.bin');
  fs.writeFileSync(filler, Buffer.alloc(FILLER_BYTES, 1));
  const srv = new NodataServer({ dataDir: path.join(mnt, 'data'), args: ['--segment-bytes', String(1024 * 1024)] });
  try {
    await srv.start();
    const topic = topicName('full');
    await srv.api.createTopic(topic, 2);
    const acked = new Map(); // id => ack
    const payload = 'f'.repeat(4000);
    let failure = null;
    let batches = 0;
    while (!failure) {
      const events = Array.from({ length: 25 }, () => ev(topic, { data: payload }));
      try {
        const acks = await srv.api.publishBatch(events);
        for (const a of acks) acked.set(a.id, a);
      } catch (err) {
        failure = err;
      }
      if (++batches > 400) assert.fail(`no error after ${batches} batches of 100 KB into a ${MOUNT_BYTES >> 20} MiB tmpfs`);
    }
    assert.equal(codeName(failure.code), 'RESOURCE_EXHAUSTED', `disk full must be RESOURCE_EXHAUSTED, got ${codeName(failure.code)}: ${failure.details}`);
    assert.ok(acked.size > 0, 'some events were stored before the disk filled up');
    t.diagnostic(`${acked.size} events acked before RESOURCE_EXHAUSTED: ${failure.details}`);

    // A smaller write may still fit: keep publishing single events until those fail the same way.
    let single = null;
    for (let i = 0; !single; i++) {
      try {
        const a = await srv.api.publish(ev(topic, { data: payload }));
        acked.set(a.id, a);
      } catch (e) {
        single = e;
      }
      if (i > 2000) assert.fail('single publishes kept succeeding on a full disk');
    }
    assert.equal(codeName(single.code), 'RESOURCE_EXHAUSTED', `single publish on a full disk: ${single.details}`);
    // Still up and answering.
    srv.assertNoCrash();
    const ends = await srv.api.endOffsets(topic);
    assert.ok(sum(ends) >= acked.size, `end offsets ${ends} cover all ${acked.size} acked events`);
    for (const a of acked.values()) assert.ok(a.offset < ends[a.partition], `acked ${a.partition}/${a.offset} < end ${ends[a.partition]}`);

    // Space returns.
    fs.rmSync(filler);
    let ok = null;
    const deadline = Date.now() + 10000;
    let lastErr;
    while (!ok && Date.now() < deadline) {
      try {
        ok = await srv.api.publishBatch(Array.from({ length: 25 }, () => ev(topic, { data: payload })));
      } catch (e) {
        lastErr = e;
        await sleep(250);
      }
    }
    assert.ok(ok, `publishing must work again once space is freed; last error: ${lastErr && `${codeName(lastErr.code)} ${lastErr.details}`}`);
    for (const a of ok) {
      assert.equal(a.duplicate, false);
      assert.ok(a.offset >= ends[a.partition], `new offset ${a.partition}/${a.offset} does not reuse offsets below ${ends[a.partition]}`);
    }
    assert.equal(sum(await srv.api.endOffsets(topic)) >= sum(ends) + 25, true, 'end offsets advanced');

    // Every event acked before the disk filled is still there (dedupe finds it at its offset).
    const ids = [...acked.keys()];
    for (let i = 0; i < ids.length; i += 200) {
      const chunk = ids.slice(i, i + 200);
      const again = await srv.api.publishBatch(chunk.map((id) => ({ topic, id, data: Buffer.from('x') })));
      again.forEach((a, j) => {
        const orig = acked.get(chunk[j]);
        assert.equal(a.duplicate, true, `acked id ${chunk[j]} is still known`);
        assert.deepEqual([a.partition, a.offset], [orig.partition, orig.offset]);
      });
    }

    // And it all survives a graceful restart.
    const endsNow = await srv.api.endOffsets(topic);
    await srv.restart({ how: 'term' });
    assert.deepEqual(await srv.api.endOffsets(topic), endsNow);
    assert.equal((await srv.api.publish(ev(topic, { id: newId() }))).duplicate, false);
  } finally {
    try {
      await srv.cleanup();
    } finally {
      umount(mnt);
      fs.rmSync(base, { recursive: true, force: true });
    }
  }
});
