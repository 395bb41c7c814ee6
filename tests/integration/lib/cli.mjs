// Runs the nodata CLI (same binary as the server) and captures its output.
import { spawn } from 'node:child_process';
import { nodataBin } from './server.mjs';

/** Runs `nodata ...args`; resolves { code, signal, stdout, stderr } (never rejects on exit code). */
export function runCli(args, opts) {
  return runProgram(nodataBin(), args, opts);
}

/**
 * Runs any binary the same way; rejects only when it does not exit within timeoutMs. `input`
 * (string or Buffer) is written to its stdin, which is otherwise /dev/null.
 */
export function runProgram(bin, args, { env = {}, timeoutMs = 60000, input, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const stdin = input === undefined ? 'ignore' : 'pipe';
    const child = spawn(bin, args, { stdio: [stdin, 'pipe', 'pipe'], env: { ...process.env, ...env }, cwd });
    if (input !== undefined) {
      child.stdin.on('error', () => {}); // a command that exits early closes its stdin
      child.stdin.end(input);
    }
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout:\n${stdout.slice(-4000)}\nstderr:\n${stderr.slice(-4000)}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Describes a CLI result for assertion messages. */
export function describeRun(args, r) {
  return `nodata ${args.join(' ')}\n=> exit ${r.code} (signal ${r.signal})\nstdout: ${r.stdout.slice(0, 2000)}\nstderr: ${r.stderr.slice(0, 2000)}`;
}

/** Parses stdout as exactly one JSON document (after trimming). */
export function parseJsonOut(args, r) {
  try {
    return JSON.parse(r.stdout.trim());
  } catch (err) {
    throw new Error(`stdout is not one JSON document (${err.message})\n${describeRun(args, r)}`);
  }
}
