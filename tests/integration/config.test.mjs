// Server options from the environment (NODATA_<NAME>) and from --config FILE; fsync policies.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Code, expectStatus } from './lib/grpc.mjs';
import { makeTempDir, startServer } from './lib/server.mjs';
import { assertDense, ev, topicName } from './lib/util.mjs';

const T = { timeout: 60000 };

test('options from NODATA_* environment variables', T, async (t) => {
  const srv = await startServer(t, { env: { NODATA_DEFAULT_PARTITIONS: '3', NODATA_MAX_PARTITIONS: '6' } });
  const topic = topicName('env');
  await srv.api.publish(ev(topic));
  assert.equal((await srv.api.getTopic(topic)).partition_count, 3, 'NODATA_DEFAULT_PARTITIONS=3');
  await expectStatus(srv.api.createTopic(topicName('env-big'), 7), Code.INVALID_ARGUMENT, 'NODATA_MAX_PARTITIONS=6, asked 7');
});

test('options from --config FILE (name = value lines)', T, async (t) => {
  const dir = makeTempDir('nodata-conf-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'nodata.conf');
  fs.writeFileSync(file, '# test config\ndefault-partitions = 5\nauto-create-topics = false\n');
  const srv = await startServer(t, { args: ['--config', file] });
  await expectStatus(srv.api.publish(ev(topicName('conf-unknown'))), Code.NOT_FOUND, 'auto-create-topics = false from the config file');
  const created = await srv.api.createTopic(topicName('conf'), 0);
  assert.equal(created.partition_count, 5, 'default-partitions = 5 from the config file');
});

for (const policy of ['always', 'interval:50', 'never']) {
  test(`--fsync ${policy}: publishes are acked and survive a SIGTERM restart`, T, async (t) => {
    const srv = await startServer(t, { args: ['--fsync', policy] });
    const topic = topicName('fsync');
    const acks = await srv.api.publishBatch(Array.from({ length: 100 }, () => ev(topic)));
    acks.push(...(await srv.api.publishStream([[ev(topic)], [ev(topic)]])).flat());
    assertDense(acks);
    const ends = await srv.api.endOffsets(topic);
    await srv.restart({ how: 'term' });
    assert.deepEqual(await srv.api.endOffsets(topic), ends, 'graceful shutdown keeps every acked event');
  });
}

test('an invalid option value makes serve fail to start', T, async (t) => {
  await assert.rejects(
    startServer(t, { args: ['--fsync', 'sometimes'] }),
    /exited \(code [1-9]\d*, signal null\) before printing "nodata ready"/,
    '--fsync sometimes must be rejected with a non-zero exit',
  );
});
