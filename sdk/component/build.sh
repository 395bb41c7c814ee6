#!/usr/bin/env bash
# Builds the component SDKs' examples to WebAssembly, as a user would:
#   C:    clang --target=wasm32-wasi -mexec-model=reactor against Debian's wasi-libc (also as C++)
#   Rust: Debian's rustc 1.63 (/usr/bin/rustc: a newer rustc first on PATH may lack wasm32-wasi)
#
#   sdk/component/build.sh      # BUILD (default <repo>/build-component-sdk), RUSTC (/usr/bin/rustc)
#
# Leaves $BUILD/{c,cxx,rust}/<example>.wasm (and the test component probe.wasm in c/ and rust/)
# for tests/component-sdk/, with each module's imports in <example>.imports (wasm-objdump).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
BUILD="${BUILD:-$repo/build-component-sdk}"
case "$BUILD" in /*) ;; *) BUILD="$repo/$BUILD" ;; esac
RUSTC="${RUSTC:-/usr/bin/rustc}"
examples=(filter field_map router)

missing() { echo "component-sdk: $1 is missing: run \`make deps\` (scripts/install-deps)" >&2; exit 1; }
command -v clang > /dev/null || missing clang
command -v wasm-objdump > /dev/null || missing "wasm-objdump (wabt)"
[[ -f /usr/lib/wasm32-wasi/crt1-reactor.o ]] || missing wasi-libc
[[ -x "$RUSTC" ]] || missing "$RUSTC (rustc)"
[[ -d "$("$RUSTC" --print sysroot)/lib/rustlib/wasm32-wasi" ]] || missing "Rust's wasm32-wasi std (libstd-rust-dev-wasm32)"

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
# The aggregation example (nodata/aggregate.h), as C and as C++.
clang --target=wasm32-wasi -mexec-model=reactor -O2 -std=c11 -Wall -Wextra -Werror \
  -Wl,--strip-debug -I"$here/c" -o "$BUILD/c/count_sum.wasm" "$here/c/examples/count_sum.c"
clang++ --target=wasm32-wasi -mexec-model=reactor -O2 -x c++ -std=c++17 -Wall -Wextra -Werror \
  -nostdlib++ -fno-exceptions -Wl,--strip-debug -I"$here/c" -o "$BUILD/cxx/count_sum.wasm" \
  "$here/c/examples/count_sum.c"
# A test-only component over the rest of the API (tests/component-sdk/fixtures).
clang --target=wasm32-wasi -mexec-model=reactor -O2 -std=c11 -Wall -Wextra -Werror \
  -Wl,--strip-debug -I"$here/c" -o "$BUILD/c/probe.wasm" "$repo/tests/component-sdk/fixtures/probe.c"

echo "== component-sdk: Rust crate and examples ($BUILD/rust, $("$RUSTC" --version))"
mkdir -p "$BUILD/rust"
rustc_wasm=("$RUSTC" --edition 2021 --target wasm32-wasi -C opt-level=2 -C strip=debuginfo -D warnings)
"${rustc_wasm[@]}" --crate-type rlib --crate-name nodata_component \
  -o "$BUILD/rust/libnodata_component.rlib" "$here/rust/src/lib.rs"
build_rust() {  # name source
  "${rustc_wasm[@]}" --crate-type cdylib --crate-name "$1" \
    --extern nodata_component="$BUILD/rust/libnodata_component.rlib" -o "$BUILD/rust/$1.wasm" "$2"
  imports "$BUILD/rust/$1.wasm"
}
for e in "${examples[@]}"; do build_rust "$e" "$here/rust/examples/$e.rs"; done
build_rust probe "$repo/tests/component-sdk/fixtures/probe.rs"
echo "component-sdk: built $(ls "$BUILD"/{c,cxx,rust}/*.wasm | wc -l) modules in $BUILD"
