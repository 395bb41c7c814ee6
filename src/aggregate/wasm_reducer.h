// A WebAssembly reducer: one instance of an aggregation module (ABI `nodata_aggregate_v1`,
// docs/formats/component-abi.md "Aggregations") folding batches of (window, key) groups into
// their states and values. Knows nothing of windows' lifetimes, stores or checkpoints: the
// aggregation hands it groups and keeps what it returns.
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
#include "wasm/runtime.h"

namespace nodata::aggregate {

// What `state_write` and `value_write` return (persistent: guests compare against these).
inline constexpr int32_t kWriteOk = 0;
inline constexpr int32_t kWriteNoSuchGroup = -1;
inline constexpr int32_t kWriteMalformed = -2;  // value_write: not a JSON object
inline constexpr int32_t kWriteTooLarge = -3;

// The global window's bounds as the batch carries them.
inline constexpr int64_t kGlobalStartUs = INT64_MIN;
inline constexpr int64_t kGlobalEndUs = INT64_MAX;

struct ReducerOptions {
  std::string config;                      // what the `config` import hands out
  // A call runs under this times its record count (Reduce; at least one) or its merge count.
  uint64_t fuel_per_record = 100'000'000;
  uint64_t max_state_bytes = 1u << 20;     // of one group's state
  uint64_t max_values_bytes = 64u << 10;   // of one group's values JSON
  uint32_t log_lines_per_second = 100;
};

// One (window, key) group of a batch.
struct ReduceGroup {
  int64_t window_start_us = 0;
  int64_t window_end_us = 0;
  std::string_view key;
  std::string_view state;  // empty: a new key/window
  // `record_count` records in the component ABI's record layout, one after the other
  // (components::AppendRecord), in the order the aggregation took them.
  std::string_view records;
  uint32_t record_count = 0;
};

// What the guest wrote for a group. A group it wrote nothing for keeps its state and values.
struct ReduceOutput {
  bool state_written = false;
  std::string state;
  bool values_written = false;
  std::string values;  // a JSON object
};

// Two sessions of one key that a record joined (session windows): `a` starts first.
struct MergeInput {
  int64_t window_start_us = 0;  // of the merged session
  int64_t window_end_us = 0;
  std::string_view key;
  std::string_view state_a;
  std::string_view state_b;
};

// level 0 debug .. 3 error.
using ReducerLogSink = std::function<void(int level, std::string_view line)>;

// Not thread-safe: one call at a time.
class WasmReducer {
 public:
  // Loads `bytes` as an aggregation module: INVALID_ARGUMENT "not a nodata aggregation module"
  // without the `nodata_aggregate_v1` export, and for a missing `nd_aggregate`, a wrong
  // signature or an import nodata does not provide.
  static absl::StatusOr<std::shared_ptr<wasm::Module>> Load(wasm::Runtime& runtime,
                                                            absl::Span<const uint8_t> bytes,
                                                            const wasm::Limits& limits,
                                                            bool native = true);
  // Whether the module exports `nd_merge` (needed for session windows).
  static bool HasMerge(const wasm::Module& module);
  // An instance, `nd_init` called when exported (non-zero: FAILED_PRECONDITION).
  static absl::StatusOr<std::unique_ptr<WasmReducer>> Create(std::shared_ptr<wasm::Module> module,
                                                             ReducerOptions options,
                                                             ReducerLogSink log);
  ~WasmReducer();

  // Runs one batch of groups through `nd_aggregate`: one output per group, in order. A trap, a
  // non-zero return or running out of fuel fails the whole batch (the instance is replaced
  // before the next call) with a readable error: INTERNAL for a trap or return code,
  // RESOURCE_EXHAUSTED for fuel or the deadline.
  absl::StatusOr<std::vector<ReduceOutput>> Reduce(absl::Span<const ReduceGroup> groups);
  // Runs merges through `nd_merge`: one output per merge, failing as Reduce does.
  // FAILED_PRECONDITION when the module does not export it.
  absl::StatusOr<std::vector<ReduceOutput>> Merge(absl::Span<const MergeInput> merges);

  wasm::Tier tier() const;
  uint64_t log_lines_dropped() const;
  uint64_t last_fuel_used() const;  // of the last Reduce or Merge

  class Host;

 private:
  explicit WasmReducer(std::unique_ptr<Host> host);
  std::unique_ptr<Host> host_;
};

}  // namespace nodata::aggregate
