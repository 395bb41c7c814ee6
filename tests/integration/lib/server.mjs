// Runs the real nodata binary: free loopback ports, fresh temp data dir, readiness, stop/kill/restart.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Api } from './grpc.mjs';

const READY_RE = /^nodata ready grpc=(\S+) http=(\S+)(?: kafka=(\S+))?\s*$/;
const OUTPUT_KEEP = 64 * 1024;

// Never leave a server behind, even when the test process dies.
const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
});

/** Absolute path of the binary under test, from NODATA_BIN. */
export function nodataBin() {
  const bin = process.env.NODATA_BIN;
  if (!bin) throw new Error('NODATA_BIN is not set: run with NODATA_BIN=/abs/path/to/build/nodata');
  const abs = path.resolve(bin);
  try {
    fs.accessSync(abs, fs.constants.X_OK);
  } catch {
    throw new Error(`NODATA_BIN=${bin}: not an executable file (build the server first)`);
  }
  return abs;
}

/** A loopback TCP port that was free a moment ago (bind port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function twoFreePorts() {
  for (;;) {
    const a = await freePort();
    const b = await freePort();
    if (a !== b) return [a, b];
  }
}

export function makeTempDir(prefix = 'nodata-it-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function tail(s, n = 4000) {
  return s.length > n ? `...${s.slice(-n)}` : s;
}

export class NodataServer {
  /**
   * @param {object} o
   * @param {string[]} [o.args] extra `serve` arguments, e.g. ['--max-partitions', '8']
   * @param {object} [o.env] extra environment variables
   * @param {string} [o.dataDir] data directory (default: a fresh temp dir, removed on cleanup)
   * @param {object} [o.credentials] grpc-js channel credentials of `api` (default: plaintext)
   * @param {string} [o.cwd] the server's working directory (relative paths in `args`)
   * @param {string} [o.bin] the server binary (default: nodataBin())
   * @param {boolean} [o.kafka] also serve the Kafka protocol (kafkaAddr, a free loopback port)
   */
  constructor({ args = [], env = {}, dataDir, credentials, cwd, bin, kafka = false } = {}) {
    this.bin = bin ?? nodataBin();
    this.kafka = kafka;
    this.credentials = credentials;
    this.cwd = cwd;
    this.args = args;
    this.env = env;
    this.ownsDataDir = !dataDir;
    this.dataDir = dataDir ?? path.join(makeTempDir(), 'data');
    this.child = null;
    this.api = null; // Api for the current process (recreated on every start)
    this.extraApis = [];
    this.stdout = '';
    this.stderr = '';
    this.unexpectedExit = null;
    this.starts = 0;
  }

  get alive() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Starts the server and resolves once it printed `nodata ready ...`. samePorts: listen on the
   * ports of the previous start (clients reconnect to the same address).
   */
  async start({ readyTimeoutMs = 30000, samePorts = false } = {}) {
    if (this.alive) throw new Error('server already running');
    const [grpcPort, httpPort] = samePorts && this.ports ? this.ports : await twoFreePorts();
    this.ports = [grpcPort, httpPort];
    const kafkaArgs = [];
    if (this.kafka) {
      if (!samePorts || !this.kafkaPort) this.kafkaPort = await freePort();
      kafkaArgs.push('--kafka', `127.0.0.1:${this.kafkaPort}`);
    }
    const argv = [
      'serve',
      '--listen', `127.0.0.1:${grpcPort}`,
      '--http', `127.0.0.1:${httpPort}`,
      '--data', this.dataDir,
      ...kafkaArgs,
      ...this.args,
    ];
    this.argv = argv;
    this.stdout = '';
    this.stderr = '';
    this.unexpectedExit = null;
    this.starts++;
    const child = spawn(this.bin, argv, {
      cwd: this.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env },
    });
    this.child = child;
    running.add(child);
    child.expectedExit = false;
    child.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        running.delete(child);
        if (!child.expectedExit) this.unexpectedExit = { code, signal, stderr: this.stderr };
        resolve({ code, signal });
      }),
    );
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-OUTPUT_KEEP);
    });
    child.stdout.setEncoding('utf8');

    const ready = await this.waitReady(child, argv, readyTimeoutMs).catch((err) => {
      // Already reported here: do not report it again from cleanup().
      this.unexpectedExit = null;
      this.child = null;
      throw err;
    });
    this.grpcAddr = ready.grpc;
    this.httpAddr = ready.http;
    this.kafkaAddr = ready.kafka;
    this.requestedGrpcAddr = `127.0.0.1:${grpcPort}`;
    this.requestedHttpAddr = `127.0.0.1:${httpPort}`;
    this.api = new Api(this.grpcAddr, { credentials: this.credentials });
    return this;
  }

  waitReady(child, argv, readyTimeoutMs) {
    return new Promise((resolve, reject) => {
      let buf = '';
      let settled = false;
      const settle = (err, val) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        err ? reject(err) : resolve(val);
      };
      const timer = setTimeout(() => {
        child.expectedExit = true;
        child.kill('SIGKILL');
        settle(new Error(
          `nodata did not print "nodata ready" within ${readyTimeoutMs} ms\n` +
            `command: ${this.bin} ${argv.join(' ')}\nstdout:\n${tail(this.stdout)}\nstderr:\n${tail(this.stderr)}`,
        ));
      }, readyTimeoutMs);
      child.stdout.on('data', (d) => {
        this.stdout = (this.stdout + d).slice(-OUTPUT_KEEP);
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const m = READY_RE.exec(line);
          if (m) settle(null, { grpc: m[1], http: m[2], kafka: m[3] });
        }
      });
      child.on('error', (err) => settle(new Error(`cannot run ${this.bin}: ${err.message}`)));
      child.exited.then(({ code, signal }) =>
        settle(new Error(
          `nodata exited (code ${code}, signal ${signal}) before printing "nodata ready"\n` +
            `command: ${this.bin} ${argv.join(' ')}\nstdout:\n${tail(this.stdout)}\nstderr:\n${tail(this.stderr)}`,
        )),
      );
    });
  }

  /** An extra Api on its own connection (closed on stop/kill/cleanup). */
  newApi() {
    const api = new Api(this.grpcAddr, { separateConnection: true, credentials: this.credentials });
    this.extraApis.push(api);
    return api;
  }

  closeClients() {
    this.api?.close();
    this.api = null;
    for (const a of this.extraApis) a.close();
    this.extraApis = [];
  }

  /** SIGTERM; resolves when the process exited; throws unless it exited with code 0 in time. */
  async stop({ timeoutMs = 20000 } = {}) {
    const child = this.child;
    if (!child) return;
    this.closeClients();
    if (!this.alive) {
      const { code, signal } = await child.exited;
      this.child = null;
      throw new Error(`nodata had already exited (code ${code}, signal ${signal}) before SIGTERM\nstderr:\n${tail(this.stderr)}`);
    }
    child.expectedExit = true;
    child.kill('SIGTERM');
    let timer;
    const res = await Promise.race([
      child.exited,
      new Promise((r) => (timer = setTimeout(() => r(null), timeoutMs))),
    ]);
    clearTimeout(timer);
    this.child = null;
    if (res === null) {
      child.kill('SIGKILL');
      await child.exited;
      throw new Error(`nodata did not exit within ${timeoutMs} ms of SIGTERM\nstderr:\n${tail(this.stderr)}`);
    }
    if (res.code !== 0) {
      throw new Error(
        `nodata exited with code ${res.code} signal ${res.signal} after SIGTERM (expected 0)\nstderr:\n${tail(this.stderr)}`,
      );
    }
  }

  /** SIGKILL and wait for the process to be gone. */
  async kill() {
    const child = this.child;
    if (!child) return;
    this.closeClients();
    child.expectedExit = true;
    if (this.alive) child.kill('SIGKILL');
    await child.exited;
    this.child = null;
  }

  /**
   * Stops (how: 'term' => SIGTERM, exit code 0 asserted; 'kill' => SIGKILL) and starts again on
   * the same data dir; samePorts: on the same ports too.
   */
  async restart({ how = 'term', samePorts = false } = {}) {
    if (how === 'term') await this.stop();
    else if (how === 'kill') await this.kill();
    else throw new Error(`restart: unknown how=${how}`);
    return this.start({ samePorts });
  }

  /** Throws if the server died on its own (crash) since it was last started. */
  assertNoCrash() {
    if (this.unexpectedExit) {
      const { code, signal, stderr } = this.unexpectedExit;
      throw new Error(`nodata exited unexpectedly (code ${code}, signal ${signal})\nstderr:\n${tail(stderr)}`);
    }
  }

  /** Test cleanup: the server must still be up (no crash) and must stop cleanly on SIGTERM. */
  async cleanup() {
    try {
      this.assertNoCrash();
      if (this.alive) await this.stop();
    } finally {
      if (this.child) await this.kill();
      this.closeClients();
      if (this.ownsDataDir) fs.rmSync(path.dirname(this.dataDir), { recursive: true, force: true });
    }
  }
}

/** Starts a server for test `t` (a node:test TestContext); it is cleaned up when the test ends. */
export async function startServer(t, opts = {}) {
  const srv = new NodataServer(opts);
  t.after(() => srv.cleanup());
  await srv.start(opts);
  return srv;
}

/** HTTP GET against the server's --http address; resolves { status, body, headers }. */
export async function httpGet(srv, urlPath) {
  const res = await fetch(`http://${srv.httpAddr}${urlPath}`, { signal: AbortSignal.timeout(10000) });
  return { status: res.status, body: await res.text(), headers: res.headers };
}
