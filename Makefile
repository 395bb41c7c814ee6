# nodata — see README.md. `make run` and `make test` work on a fresh Debian 12 machine.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
DATA ?= ./nodata-data
LISTEN ?= 127.0.0.1:7070
HTTP ?= 127.0.0.1:7071

.PHONY: deps build run test unit-test integration-test bench clean

deps:
	./scripts/install-deps

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

run: deps build
	$(BUILD_DIR)/nodata serve --listen $(LISTEN) --http $(HTTP) --data $(DATA)

test: deps build
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) integration-test

integration-test:
	cd tests && npm ci --no-audit --no-fund --loglevel=error
	NODATA_BIN=$(abspath $(BUILD_DIR))/nodata node --test --test-concurrency=1 tests/integration/

bench:
	./scripts/install-deps --bench
	$(MAKE) build
	./bench/run

clean:
	rm -rf $(BUILD_DIR)
