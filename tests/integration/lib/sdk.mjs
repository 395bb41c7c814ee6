// Binaries of the C++ SDK, built by `make sdk` (sdk/cpp/test.sh) against the installed SDK: the
// examples (sdk/cpp/examples) into build-sdk/examples/ or SDK_EXAMPLES_DIR, the test programs
// (sdk/cpp/tests) into build-sdk/tests/ or SDK_TESTS_DIR.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './grpc.mjs';

export const SDK_EXAMPLES_DIR = path.resolve(process.env.SDK_EXAMPLES_DIR ?? path.join(REPO_ROOT, 'build-sdk/examples'));
export const SDK_TESTS_DIR = path.resolve(process.env.SDK_TESTS_DIR ?? path.join(REPO_ROOT, 'build-sdk/tests'));

function binary(dir, variable, name) {
  const bin = path.join(dir, name);
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(`SDK binary ${bin} is missing or not executable: build it with \`make sdk\` ` +
      `(sdk/cpp/test.sh), or point ${variable} at the directory holding it`);
  }
  return bin;
}

/** Absolute path of example `name`; throws (failing the test) when it was not built. */
export function sdkExample(name) {
  return binary(SDK_EXAMPLES_DIR, 'SDK_EXAMPLES_DIR', name);
}

/** Absolute path of test program `name`; throws (failing the test) when it was not built. */
export function sdkTestProgram(name) {
  return binary(SDK_TESTS_DIR, 'SDK_TESTS_DIR', name);
}
