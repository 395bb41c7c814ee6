# nodata — see README.md. `make run` and `make test` work on a fresh Debian 12 machine.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
DATA ?= ./nodata-data
LISTEN ?= 127.0.0.1:7070
HTTP ?= 127.0.0.1:7071
KAFKA ?= 127.0.0.1:9092

FUZZ_SECONDS ?= 20

.PHONY: deps build run test integration-test chaos sanitize fuzz asan thread-safety sdk component-sdk bench clean

deps:
	./scripts/install-deps

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

run: deps build
	$(BUILD_DIR)/nodata serve --listen $(LISTEN) --http $(HTTP) --kafka $(KAFKA) --data $(DATA)

test: deps build
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) thread-safety
	$(MAKE) fuzz
	$(MAKE) asan
	$(MAKE) sdk
	$(MAKE) component-sdk
	$(MAKE) integration-test

# libFuzzer over the decoders of untrusted bytes: the log's frames and recovery, Parquet files,
# WebAssembly modules, aggregations' stored state and definitions (JSON paths, measures, windows),
# what components emit, and what the server reads before authentication (tokens, scopes, JWTs,
# HTTP paths and query strings), and Kafka request headers and record batches. Clang, a
# separate instrumented build.
fuzz:
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNODATA_FUZZ=ON > /dev/null
	cmake --build build-fuzz -j$(JOBS) --target log_fuzz parquet_fuzz parquet_sample wasm_load_fuzz wasm_testdata aggregate_state_fuzz component_output_fuzz server_input_fuzz kafka_fuzz
	mkdir -p build-fuzz/corpus/log build-fuzz/corpus/parquet build-fuzz/corpus/wasm build-fuzz/corpus/aggregate build-fuzz/corpus/component build-fuzz/corpus/server build-fuzz/corpus/kafka
	scripts/fuzz-seeds build-fuzz/corpus
	cp build-fuzz/src/wasm/testdata/*.wasm build-fuzz/src/wasm/testdata/spec/*.wasm build-fuzz/corpus/wasm/
	build-fuzz/src/parquet/parquet_sample build-fuzz/corpus/parquet/seed-zstd.parquet 20 zstd
	build-fuzz/src/parquet/parquet_sample build-fuzz/corpus/parquet/seed-none.parquet 20 none
	build-fuzz/src/log/log_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build-fuzz/corpus/log
	build-fuzz/src/parquet/parquet_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build-fuzz/corpus/parquet
	build-fuzz/src/wasm/wasm_load_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 build-fuzz/corpus/wasm
	build-fuzz/src/aggregate/aggregate_state_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build-fuzz/corpus/aggregate
	build-fuzz/src/components/component_output_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build-fuzz/corpus/component
	build-fuzz/src/server/server_input_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build-fuzz/corpus/server
	build-fuzz/src/kafka/kafka_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=8192 build-fuzz/corpus/kafka

# The WebAssembly runtime's tests (both tiers: signal handling, longjmp out of native code, the
# interpreter) under AddressSanitizer and LeakSanitizer, in the fuzz build.
asan:
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNODATA_FUZZ=ON > /dev/null
	cmake --build build-fuzz -j$(JOBS) --target wasm_test
	ASAN_OPTIONS=detect_leaks=1 build-fuzz/src/wasm/wasm_test --gtest_brief=1

# A clang build of the server with -Wthread-safety as an error: checks every ABSL_GUARDED_BY.
thread-safety:
	CC=clang CXX=clang++ cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-Werror=thread-safety > /dev/null
	cmake --build build-clang -j$(JOBS) --target nodata

# The C++ client SDK (sdk/cpp): built, installed into a temp prefix and its examples built against
# it through find_package(nodata); the examples land in build-sdk/examples/ for sdk.test.mjs.
sdk:
	BUILD=build-sdk JOBS=2 sdk/cpp/test.sh

# The WebAssembly component SDKs (sdk/component): every example built to build-component-sdk/ and
# run on Node's V8 through an independent host of the component ABI (tests/component-sdk/).
component-sdk:
	sdk/component/build.sh
	node --test tests/component-sdk/

integration-test:
	cd tests && npm ci --no-audit --no-fund --loglevel=error
	NODATA_BIN=$(abspath $(BUILD_DIR))/nodata node --test --test-concurrency=1 tests/integration/

# The chaos suite at full length (docs/reliability.md): everything running through 120 SIGKILLs,
# 40 rounds of injected storage faults (the test build nodata-faults) and 12 of a full disk;
# `make test` runs a slice of it (12, 8 and 4 rounds). The figures go to BUILD_DIR/chaos.jsonl.
chaos: build
	sdk/component/build.sh
	cd tests && npm ci --no-audit --no-fund --loglevel=error
	rm -f $(abspath $(BUILD_DIR))/chaos.jsonl
	NODATA_CHAOS_KILLS=120 NODATA_CHAOS_FAULTS=40 NODATA_CHAOS_DISK_FULL=12 \
	  NODATA_CHAOS_REPORT=$(abspath $(BUILD_DIR))/chaos.jsonl NODATA_BIN=$(abspath $(BUILD_DIR))/nodata \
	  node --test --test-concurrency=1 tests/integration/chaos.test.mjs
	cat $(abspath $(BUILD_DIR))/chaos.jsonl

# The integration suite against the server built with AddressSanitizer and
# UndefinedBehaviorSanitizer (clang, in build-asan/): a finding aborts the server, which the tests
# report as a crash. SANITIZE_TESTS narrows it (default: the whole suite).
SANITIZE_TESTS ?= tests/integration/
sanitize:
	sdk/component/build.sh
	CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNODATA_SANITIZE=ON > /dev/null
	cmake --build build-asan -j$(JOBS) --target nodata nodata-faults parquet_sample
	cd tests && npm ci --no-audit --no-fund --loglevel=error
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=32 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(abspath scripts/lsan.supp) NODATA_SANITIZED=1 \
	  NODATA_BIN=$(abspath build-asan)/nodata node --test --test-concurrency=1 $(SANITIZE_TESTS)

bench:
	./scripts/install-deps --bench
	$(MAKE) build
	./bench/run

clean:
	rm -rf $(BUILD_DIR)
