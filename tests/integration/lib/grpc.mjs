// gRPC plumbing for the integration tests: proto loading, clients, promisified calls, stream sessions.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

export { grpc };

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '../../..');
export const PROTO_DIR = path.join(REPO_ROOT, 'proto');
export const TEST_PROTO_DIR = path.resolve(here, '../protos');

// Where google/protobuf/*.proto can be found. protobufjs also bundles the well-known types, so
// these directories are a fallback, used when they exist.
const WKT_DIRS = ['/usr/include', '/usr/local/include'].filter((d) =>
  fs.existsSync(path.join(d, 'google/protobuf/timestamp.proto')),
);

const LOADER_OPTIONS = {
  keepCase: true, // field names as in the .proto (end_offset, record_count, ...)
  longs: Number, // uint64 offsets as JS numbers (tests stay far below 2^53)
  enums: String,
  bytes: Buffer,
  defaults: true, // absent scalar fields (offset 0, duplicate false) are present in responses
  oneofs: true,
  includeDirs: [PROTO_DIR, TEST_PROTO_DIR, ...WKT_DIRS],
};

function load(file) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, LOADER_OPTIONS));
}

let cached;
export function protos() {
  if (!cached) {
    const nodata = load('nodata/v1/nodata.proto').nodata.v1;
    const health = load('grpc/health/v1/health.proto').grpc.health.v1;
    const reflection = load('grpc/reflection/v1alpha/reflection.proto').grpc.reflection.v1alpha;
    cached = { nodata, health, reflection };
  }
  return cached;
}

export const Code = grpc.status;
/** The codes a client sees when the server dies under its call. */
export const isDisconnect = (err) =>
  [Code.UNAVAILABLE, Code.CANCELLED, Code.INTERNAL, Code.UNKNOWN, Code.DEADLINE_EXCEEDED].includes(err?.code);
export function codeName(code) {
  return grpc.status[code] ?? `code ${code}`;
}

/** A grpc-js client interceptor that sends `authorization: Bearer TOKEN` on every call. */
export function bearerInterceptor(token) {
  return (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('authorization', `Bearer ${token}`);
      next(metadata, listener);
    },
  });
}

/**
 * A client of service `Ctor`; `credentials` (grpc-js channel credentials): default plaintext;
 * `token`: a bearer token sent on every call.
 */
export function makeClient(Ctor, addr, { separateConnection = false, credentials, token } = {}) {
  const options = separateConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {};
  if (token) options.interceptors = [bearerInterceptor(token)];
  return new Ctor(addr, credentials ?? grpc.credentials.createInsecure(), options);
}

/** Promisified unary call with a deadline. Rejects with the grpc error (err.code, err.details). */
export function unary(client, method, request, { timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    client[method](request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

/** Awaits a call expected to fail with `code`; fails the test with what actually happened otherwise. */
export async function expectStatus(promise, code, what = 'call') {
  let res;
  try {
    res = await promise;
  } catch (err) {
    if (err?.code === undefined) throw err;
    assert.equal(
      codeName(err.code),
      codeName(code),
      `${what}: expected status ${codeName(code)}, got ${codeName(err.code)} (${err.details})`,
    );
    return err;
  }
  assert.fail(`${what}: expected status ${codeName(code)}, but the call succeeded: ${short(res)}`);
}

function short(v) {
  const s = JSON.stringify(v, (k, x) => (x?.type === 'Buffer' ? `<${x.data.length} bytes>` : x));
  return s.length > 400 ? `${s.slice(0, 400)}...` : s;
}

/**
 * A PublishStream call. write() requests at will; waitFor(n) resolves once n responses have arrived
 * (without half-closing); finish() half-closes and resolves with all responses once the status is OK.
 */
export class StreamSession {
  constructor(client, { timeoutMs = 20000 } = {}) {
    this.call = client.PublishStream(new grpc.Metadata(), { deadline: Date.now() + timeoutMs });
    this.responses = [];
    this.error = null;
    this.ended = false;
    this.waiters = new Set();
    this.call.on('data', (r) => {
      this.responses.push(r);
      this.wake();
    });
    this.call.on('error', (e) => {
      this.error = e;
      this.wake();
    });
    this.call.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.status = new Promise((resolve) => this.call.on('status', resolve));
  }

  wake() {
    for (const w of this.waiters) w();
  }

  write(request) {
    this.call.write(request);
  }

  waitFor(n, { timeoutMs = 20000 } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.responses.length >= n) done(null);
        else if (this.error) done(this.error);
        else if (this.ended) done(new Error(`stream ended after ${this.responses.length} of ${n} responses`));
      };
      const timer = setTimeout(
        () => done(new Error(`timed out after ${timeoutMs} ms waiting for ${n} stream responses; got ${this.responses.length}`)),
        timeoutMs,
      );
      const done = (err) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        err ? reject(err) : resolve(this.responses.slice(0, n));
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Half-closes, waits for the final status; resolves with all responses or rejects with the error. */
  async finish() {
    this.call.end();
    const status = await this.status;
    if (status.code !== grpc.status.OK) {
      throw this.error ?? Object.assign(new Error(status.details), { code: status.code, details: status.details });
    }
    return this.responses;
  }

  cancel() {
    this.call.cancel();
  }
}

/**
 * A Subscribe stream that collects what arrives: records (in arrival order) and assignments.
 * waitFor(pred) resolves once pred(this) holds; end resolves with the final status.
 */
export class Subscription {
  constructor(client, request, { timeoutMs = 120000 } = {}) {
    this.records = [];
    this.assignments = [];
    this.status = null;
    this.error = null;
    this.waiters = [];
    this.call = client.Subscribe(request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs });
    this.call.on('data', (msg) => {
      if (msg.records) {
        for (const r of msg.records.records) {
          r.receivedAt = performance.now();
          this.records.push(r);
        }
      }
      if (msg.assignment) this.assignments.push(msg.assignment);
      this.check();
    });
    this.end = new Promise((resolve) => {
      this.call.on('error', (err) => {
        this.error = err;
      });
      this.call.on('status', (st) => {
        this.status = st;
        this.check();
        resolve(st);
      });
    });
  }
  check() {
    this.waiters = this.waiters.filter(({ pred, resolve }) => {
      if (pred(this)) {
        resolve(this);
        return false;
      }
      return true;
    });
  }
  /** Resolves once pred(this) is true; rejects after timeoutMs with what was seen. */
  waitFor(pred, { timeoutMs = 30000, what = 'condition' } = {}) {
    if (pred(this)) return Promise.resolve(this);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`subscription: ${what} not reached in ${timeoutMs} ms (records ${this.records.length}, ` +
          `assignments ${JSON.stringify(this.assignments)}, status ${JSON.stringify(this.status)})`));
      }, timeoutMs);
      const done = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
      this.waiters.push({ pred, resolve: done });
    });
  }
  /** The partitions of the latest assignment. */
  get partitions() {
    return this.assignments.at(-1)?.partitions ?? [];
  }
  cancel() {
    this.call.cancel();
  }
}

/** Thin promise API over one server's IngestService, TopicService, ConsumeService and ComponentService clients. */
export class Api {
  constructor(addr, { separateConnection = false, credentials, token } = {}) {
    const { nodata } = protos();
    this.addr = addr;
    const o = { separateConnection, credentials, token };
    this.ingest = makeClient(nodata.IngestService, addr, o);
    this.topics = makeClient(nodata.TopicService, addr, o);
    this.consume = makeClient(nodata.ConsumeService, addr, o);
    this.components = makeClient(nodata.ComponentService, addr, o);
  }
  /** AddComponent; resolves with the Component. Modules load on the server: a longer deadline. */
  async addComponent(request, opts = { timeoutMs: 120000 }) {
    return (await unary(this.components, 'AddComponent', request, opts)).component;
  }
  async getComponent(name, opts) {
    return (await unary(this.components, 'GetComponent', { name }, opts)).component;
  }
  async listComponents(opts) {
    return (await unary(this.components, 'ListComponents', {}, opts)).components;
  }
  async updateComponent(request, opts = { timeoutMs: 120000 }) {
    return (await unary(this.components, 'UpdateComponent', request, opts)).component;
  }
  async resetComponent(name, to, opts) {
    return (await unary(this.components, 'ResetComponent', { name, to }, opts)).component;
  }
  async removeComponent(name, opts) {
    return unary(this.components, 'RemoveComponent', { name }, opts);
  }
  /** A Subscribe stream; see Subscription. */
  subscribe(request, opts) {
    return new Subscription(this.consume, request, opts);
  }
  async commit(group, topic, offsets, opts) {
    return unary(this.consume, 'Commit', { group, topic, offsets }, opts);
  }
  async getGroup(group, topic, opts) {
    return unary(this.consume, 'GetGroup', { group, topic }, opts);
  }
  async listGroups(topic = '', opts) {
    return (await unary(this.consume, 'ListGroups', { topic }, opts)).groups;
  }
  async resetOffsets(request, opts) {
    return (await unary(this.consume, 'ResetOffsets', request, opts)).offsets;
  }
  async publish(event, opts) {
    return (await unary(this.ingest, 'Publish', { event }, opts)).ack;
  }
  async publishBatch(events, opts) {
    return (await unary(this.ingest, 'PublishBatch', { events }, opts)).acks;
  }
  /** Writes every request before reading any response, then returns the acks of each response. */
  async publishStream(requests, opts) {
    const s = new StreamSession(this.ingest, opts);
    for (const events of requests) s.write({ events });
    return (await s.finish()).map((r) => r.acks);
  }
  stream(opts) {
    return new StreamSession(this.ingest, opts);
  }
  async createTopic(name, partitions = 0, opts, settings = {}) {
    return (await unary(this.topics, 'CreateTopic', { name, partitions, ...settings }, opts)).topic;
  }
  async updateTopic(request, opts) {
    return (await unary(this.topics, 'UpdateTopic', request, opts)).topic;
  }
  async flushTopic(name, opts = { timeoutMs: 120000 }) {
    return (await unary(this.topics, 'FlushTopic', { name }, opts)).topic;
  }
  /** Every record ReadTopic streams, in order. Rejects with the grpc error. */
  readTopic(name, { partitions = [], start_offset = 0, max_batch = 0 } = {}, { timeoutMs = 120000 } = {}) {
    return new Promise((resolve, reject) => {
      const call = this.topics.ReadTopic({ name, partitions, start_offset, max_batch }, new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs });
      const records = [];
      call.on('data', (batch) => records.push(...batch.records));
      call.on('error', reject);
      call.on('end', () => resolve(records));
    });
  }
  async getTopic(name, opts) {
    return (await unary(this.topics, 'GetTopic', { name }, opts)).topic;
  }
  async listTopics(opts) {
    return (await unary(this.topics, 'ListTopics', {}, opts)).topics;
  }
  async deleteTopic(name, opts) {
    return unary(this.topics, 'DeleteTopic', { name }, opts);
  }
  /** end_offset per partition index, e.g. [3, 0, 5, 1]. */
  async endOffsets(name) {
    const topic = await this.getTopic(name);
    const ends = new Array(Math.max(topic.partition_count, topic.partitions.length)).fill(0);
    for (const p of topic.partitions) ends[p.partition] = p.end_offset;
    return ends;
  }
  close() {
    this.ingest.close();
    this.topics.close();
    this.consume.close();
    this.components.close();
  }
}
