// The C++ SDK's example binaries (sdk/cpp/examples), built by `make sdk` (sdk/cpp/test.sh) into
// build-sdk/examples/, or wherever SDK_EXAMPLES_DIR points.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './grpc.mjs';

export const SDK_EXAMPLES_DIR = path.resolve(process.env.SDK_EXAMPLES_DIR ?? path.join(REPO_ROOT, 'build-sdk/examples'));

/** Absolute path of example `name`; throws (failing the test) when it was not built. */
export function sdkExample(name) {
  const bin = path.join(SDK_EXAMPLES_DIR, name);
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(`SDK example ${bin} is missing or not executable: build it with \`make sdk\` ` +
      '(sdk/cpp/test.sh), or point SDK_EXAMPLES_DIR at the directory holding the SDK examples');
  }
  return bin;
}
