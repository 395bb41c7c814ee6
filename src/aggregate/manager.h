// The aggregations of a server: their registry (durable in the catalog; reducer modules in the
// data directory beside the components'), the runners that fold each input topic into keyed,
// windowed state (consuming as group `aggregation.<name>`, state and input offsets checkpointed
// together in the aggregation's RocksDB store), and the reads and watches the query APIs serve.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregate/definition.h"
#include "broker/broker.h"
#include "common/fs.h"
#include "wasm/runtime.h"

namespace prometheus {
class Registry;
}

namespace nodata::aggregate {

enum class State { kBackfilling, kRunning, kFailed };
const char* StateName(State s);  // "BACKFILLING", "RUNNING", "FAILED"

struct Progress {
  uint64_t done = 0;   // input records processed since the start (or reset)
  uint64_t total = 0;  // input records from the start to the end offsets when it began
  double rate = 0;     // records per second, recent
  double eta_seconds = 0;
};

struct AggregationInfo {
  AggregationSpec spec;
  State state = State::kBackfilling;
  std::string last_error;
  uint64_t lag = 0;           // input records not yet reflected in state, over all partitions
  uint64_t keys = 0;          // keys with open windows in memory
  uint64_t open_windows = 0;  // (window, key) pairs not yet final
  uint64_t memory_bytes = 0;  // the state in memory, as held against --state-cache-bytes
  uint64_t records_in = 0;    // taken into state since the server started
  uint64_t late = 0;          // records past their windows (to <name>.late), since creation
  uint64_t skipped = 0;       // records without a key at the key path, since creation
  int64_t watermark_us = INT64_MIN;  // largest event time seen minus the lateness
  Progress backfill;
  std::string tier;  // a reducer's: "interpreter" | "native"; empty for built-in measures
  int64_t created_at_us = 0;
};

// One window of one key as read.
struct WindowValues {
  int64_t start_us = 0;  // kGlobalStartUs / kGlobalEndUs for the global window
  int64_t end_us = 0;
  bool final = false;   // closed: the watermark passed its end; never changes again
  std::string values;   // a JSON object
};

struct KeyQuery {
  std::string key;
  std::optional<int64_t> from_us;  // windows starting at or after
  std::optional<int64_t> to_us;    // windows starting before
  size_t limit = 1000;
};

struct KeyResult {
  std::string key;
  std::vector<WindowValues> windows;  // ascending by start
};

struct WindowQuery {
  std::optional<int64_t> start_us;  // none: the latest window that has keys
  std::string order_by;             // a measure (a key of `values`); empty: by key
  bool desc = false;
  size_t limit = 100;
  std::optional<std::string> after;  // paging: the `next` of the previous page
};

struct WindowResult {
  int64_t start_us = 0;
  int64_t end_us = 0;
  struct Entry {
    std::string key;
    std::string values;  // a JSON object
    bool final = false;
  };
  std::vector<Entry> keys;
  std::optional<std::string> next;  // set when there are more
};

// An update a watcher sees: a (window, key)'s values changed, or it became final.
struct Update {
  std::string key;
  WindowValues window;
};

// A live watch. Updates are delivered at most once per checkpoint interval per (window, key)
// with its latest values. A watcher too slow to keep up loses the oldest pending updates and is
// told how many (`dropped`) with the next delivery.
class Watcher {
 public:
  virtual ~Watcher() = default;
  // Waits up to `timeout_ms` for updates; empty on timeout. `dropped` counts the ones lost.
  // CANCELLED once the aggregation is removed or the server stops.
  virtual absl::StatusOr<std::vector<Update>> Next(int timeout_ms, uint64_t* dropped) = 0;
};

struct ManagerOptions {
  std::string data_dir;           // state under DATA/aggregations/<name>/
  // Memory for all aggregations' windows together, shared equally; the rest is on disk only.
  uint64_t state_cache_bytes = 256ull << 20;
  size_t max_batch_records = 10000;
  uint64_t max_event_bytes = 1u << 20;
  // Loads reducers; shared with the components, must outlive the manager.
  wasm::Runtime* runtime = nullptr;
  bool native = true;             // reducers compiled to native code (tier 1)
  // Threads that fold batches and run deliveries, all aggregations together (0: one per
  // hardware thread, at least 2). One aggregation folds one batch at a time.
  int threads = 0;
  // Watchers open at once, all aggregations together; one more is RESOURCE_EXHAUSTED.
  size_t max_watches = 1024;
  // Tests: called before each batch an aggregation folds.
  std::function<void(std::string_view aggregation)> before_batch;
};

// Safe for concurrent use.
class Manager {
 public:
  // Loads every registered aggregation (state restored from its last checkpoint) and starts
  // it. `broker`, `fs` and `registry` must outlive it.
  static absl::StatusOr<std::unique_ptr<Manager>> Open(ManagerOptions options,
                                                       broker::Broker& broker, FileSystem& fs,
                                                       prometheus::Registry& registry);
  ~Manager();

  // Registers and starts an aggregation; creates `<name>.results` and `<name>.late` (with the
  // input's partition count) when missing. INVALID_ARGUMENT for a bad definition or module;
  // ALREADY_EXISTS; NOT_FOUND for a missing input topic.
  absl::StatusOr<AggregationInfo> Add(AggregationSpec spec, std::string module_bytes);
  absl::StatusOr<AggregationInfo> Get(std::string_view name);
  std::vector<AggregationInfo> List();
  // Stops it and deletes its state and group offsets (its topics stay).
  absl::Status Remove(std::string_view name);
  // Drops its state and recomputes from `to`.
  absl::StatusOr<AggregationInfo> Reset(std::string_view name, const StartSpec& to);

  // NOT_FOUND for an unknown aggregation, or a key without state; a key with state but no
  // window in the range reads as an empty list.
  absl::StatusOr<KeyResult> GetKey(std::string_view name, const KeyQuery& query);
  // NOT_FOUND for an unknown aggregation or a window without keys; INVALID_ARGUMENT for an
  // unknown measure in order_by.
  absl::StatusOr<WindowResult> ListWindow(std::string_view name, const WindowQuery& query);
  // Updates of one key (`key` set) or all. NOT_FOUND for an unknown aggregation;
  // RESOURCE_EXHAUSTED with `max_watches` open.
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(std::string_view name,
                                               std::optional<std::string> key);

  class Impl;

 private:
  explicit Manager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodata::aggregate
