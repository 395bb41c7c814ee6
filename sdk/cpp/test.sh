#!/usr/bin/env bash
# Build check of the C++ SDK as a user sees it: configure, build and install the SDK into a
# temporary prefix, then build the examples against that prefix through find_package(nodata).
#
#   sdk/cpp/test.sh                 # from anywhere; BUILD (default <repo>/build-sdk), JOBS (2)
#
# Leaves the example binaries in $BUILD/examples/ (publish_example, consume_example and the
# program components filter_component, file_sink_component, counter_source), where
# tests/integration/sdk.test.mjs and sdk-component.test.mjs look for them (SDK_EXAMPLES_DIR), and
# the test programs of tests/ in $BUILD/tests/ (SDK_TESTS_DIR).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
BUILD="${BUILD:-$repo/build-sdk}"
case "$BUILD" in /*) ;; *) BUILD="$repo/$BUILD" ;; esac
JOBS="${JOBS:-2}"
BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}"

prefix="$(mktemp -d /tmp/nodata-sdk-prefix.XXXXXX)"
trap 'rm -rf "$prefix"' EXIT

echo "== sdk: configure and build ($BUILD/sdk)"
cmake -S "$here" -B "$BUILD/sdk" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" > /dev/null
cmake --build "$BUILD/sdk" -j"$JOBS"

echo "== sdk: install into $prefix"
cmake --install "$BUILD/sdk" --prefix "$prefix" > /dev/null
for f in include/nodata/client.h include/nodata/component.h include/nodata/v1/nodata.pb.h include/nodata/v1/nodata.grpc.pb.h \
         lib/cmake/nodata/nodataConfig.cmake lib/cmake/nodata/nodataConfigVersion.cmake \
         lib/cmake/nodata/nodataTargets.cmake; do
  [[ -f "$prefix/$f" ]] || { echo "sdk: $f missing from the installed tree" >&2; exit 1; }
done

echo "== sdk: examples against the installed package ($BUILD/examples)"
# --fresh: the prefix is new every run; a cached nodata_DIR would point at a deleted one.
cmake --fresh -S "$here/examples" -B "$BUILD/examples" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
  -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$BUILD/examples" -j"$JOBS"
for exe in publish_example consume_example filter_component file_sink_component counter_source; do
  [[ -x "$BUILD/examples/$exe" ]] || { echo "sdk: $BUILD/examples/$exe was not built" >&2; exit 1; }
done
"$BUILD/examples/publish_example" --bad-flag x > /dev/null 2>&1 && { echo "sdk: bad flag accepted" >&2; exit 1; }
echo "== sdk: test programs against the installed package ($BUILD/tests)"
cmake --fresh -S "$here/tests" -B "$BUILD/tests" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
  -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$BUILD/tests" -j"$JOBS"
[[ -x "$BUILD/tests/fanout_fail_transform" ]] || { echo "sdk: $BUILD/tests/fanout_fail_transform was not built" >&2; exit 1; }
# A program component outside the server's environment refuses to start and says why.
if env -u NODATA_ADDR "$BUILD/examples/filter_component" > /dev/null 2> "$BUILD/examples/no-env.err"; then
  echo "sdk: filter_component ran without NODATA_ADDR" >&2; exit 1
fi
grep -q NODATA_ADDR "$BUILD/examples/no-env.err" || { echo "sdk: filter_component did not name NODATA_ADDR" >&2; exit 1; }
echo "sdk: OK (examples in $BUILD/examples)"
