#!/usr/bin/env bash
# Builds the component SDKs' examples to WebAssembly, as a user would:
#   C:    clang --target=wasm32-wasi -mexec-model=reactor against Debian's wasi-libc (also as C++)
#   Rust: Debian's rustc 1.63 (/usr/bin/rustc: a newer rustc first on PATH may lack wasm32-wasi)
#
#   sdk/component/build.sh      # BUILD (default <repo>/build-component-sdk), RUSTC (/usr/bin/rustc)
#
# Leaves $BUILD/c/<example>.wasm, $BUILD/cxx/<example>.wasm and $BUILD/rust/<example>.wasm, and
# each module's imports in $BUILD/<lang>/<example>.imports (wasm-objdump), for
# tests/component-sdk/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
BUILD="${BUILD:-$repo/build-component-sdk}"
case "$BUILD" in /*) ;; *) BUILD="$repo/$BUILD" ;; esac
RUSTC="${RUSTC:-/usr/bin/rustc}"
examples=(filter field_map router)

imports() { wasm-objdump -x -j Import "$1" | sed -n 's/.* <- //p' > "${1%.wasm}.imports"; }

echo "== component-sdk: C examples ($BUILD/c, $BUILD/cxx)"
mkdir -p "$BUILD/c" "$BUILD/cxx"
for e in "${examples[@]}"; do
  clang --target=wasm32-wasi -mexec-model=reactor -O2 -std=c11 -Wall -Wextra -Werror \
    -Wl,--strip-debug -I"$here/c" -o "$BUILD/c/$e.wasm" "$here/c/examples/$e.c"
  # The same source as C++: the header must serve both.
  clang++ --target=wasm32-wasi -mexec-model=reactor -O2 -x c++ -std=c++17 -Wall -Wextra -Werror \
    -nostdlib++ -fno-exceptions -Wl,--strip-debug -I"$here/c" -o "$BUILD/cxx/$e.wasm" \
    "$here/c/examples/$e.c"
  imports "$BUILD/c/$e.wasm"
  imports "$BUILD/cxx/$e.wasm"
done
# A test-only component over the rest of the API (tests/component-sdk/fixtures).
clang --target=wasm32-wasi -mexec-model=reactor -O2 -std=c11 -Wall -Wextra -Werror \
  -Wl,--strip-debug -I"$here/c" -o "$BUILD/c/probe.wasm" "$repo/tests/component-sdk/fixtures/probe.c"
