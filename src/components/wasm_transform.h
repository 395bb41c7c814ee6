// A WebAssembly transform: one instance of a component module (ABI v1,
// docs/formats/component-abi.md) run over batches of input records, with the host side of the
// ABI (the "nodata" imports and the wasi_snapshot_preview1 subset) and failure isolation. Knows
// nothing of groups or publishing: the caller feeds it batches and publishes what it returns.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/ids.h"
#include "common/record.h"
#include "components/abi.h"
#include "components/guest_host.h"
#include "wasm/runtime.h"

namespace nodata::components {

struct TransformOptions {
  uint32_t outputs = 1;    // output topics, numbered from 0 in registration order
  std::string config;      // what the `config` import hands out
  // Fuel of one record; a batch of n records runs under n times it.
  uint64_t fuel_per_record = 100'000'000;
  uint64_t max_event_bytes = 1u << 20;  // of one output's key, data and headers
  // Log lines kept per second (the `log` import and fd 1/2); the rest are counted as dropped.
  uint32_t log_lines_per_second = 100;
};

// One output of a batch, its timestamp resolved (an input's when the guest gave a negative one).
struct Output {
  uint32_t output = 0;
  uint32_t input_index = 0;  // of the batch's records
  int64_t timestamp_us = 0;
  std::string key;
  std::string data;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct FailedRecord {
  uint32_t input_index = 0;
  std::string error;  // readable: the trap, or nd_process's return code
};

struct BatchResult {
  // In input order, and within one input in the order emitted.
  std::vector<Output> outputs;
  std::vector<FailedRecord> failed;  // by input_index
  uint64_t fuel_used = 0;
};

// Not thread-safe: one batch at a time (the ABI never re-enters a component).
class WasmTransform {
 public:
  // Loads `bytes` as a component: INVALID_ARGUMENT "not a nodata component" without the marker
  // export, and for a missing `nd_process`, a wrong signature or an import nodata does not
  // provide.
  static absl::StatusOr<std::shared_ptr<wasm::Module>> Load(wasm::Runtime& runtime,
                                                            absl::Span<const uint8_t> bytes,
                                                            const wasm::Limits& limits,
                                                            bool native = true);
  // An instance of a loaded component, `nd_init` called (non-zero: FAILED_PRECONDITION).
  static absl::StatusOr<std::unique_ptr<WasmTransform>> Create(
      std::shared_ptr<wasm::Module> module, TransformOptions options, LogSink log);
  ~WasmTransform();

  // Runs `records` (one partition's, in offset order) through the component. A batch that traps
  // or returns non-zero is retried record by record (on a fresh instance after a trap); the
  // records that fail alone are returned in `failed` with no outputs, the rest with theirs. An
  // error status only when the component cannot run at all (its instance cannot be made).
  absl::StatusOr<BatchResult> Process(PartitionId partition, absl::Span<const Record> records);

  wasm::Tier tier() const;
  uint64_t log_lines_dropped() const;

  class Host;

 private:
  explicit WasmTransform(std::unique_ptr<Host> host);
  std::unique_ptr<Host> host_;
};

}  // namespace nodata::components
