// One aggregation's fold: records in, keyed windowed state out. It assigns each record its
// windows, keeps every open window (and every change not yet checkpointed) in memory, closes
// windows as the watermark passes them, and checkpoints state, results, late records and input
// offsets together. It reads no topic itself: the manager's runner hands it batches.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "aggregate/definition.h"
#include "aggregate/manager.h"
#include "aggregate/measures.h"
#include "aggregate/store.h"
#include "aggregate/wasm_reducer.h"
#include "broker/broker.h"
#include "common/record.h"

namespace nodata::aggregate {

class WatchQueue;

// Heterogeneous lookup of std::string keys by std::string_view.
struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size()));
  }
};
struct KeyEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

class Aggregation {
 public:
  // `reducer` is null for built-in measures. Restores the checkpoint and the open windows, as
  // many keys' as fit in `cache_bytes` (the others load when a record or a close needs them).
  static absl::StatusOr<std::unique_ptr<Aggregation>> Open(AggregationSpec spec,
                                                           std::unique_ptr<Store> store,
                                                           std::unique_ptr<WasmReducer> reducer,
                                                           broker::Broker& broker,
                                                           uint64_t cache_bytes);
  ~Aggregation();

  const AggregationSpec& spec() const { return spec_; }
  // Its state goes with it: the store's directory is deleted once it closes.
  void DropOnClose() { store_->DropOnClose(); }

  // Input positions of the last checkpoint (partition → next offset).
  std::map<uint32_t, uint64_t> CheckpointOffsets();
  // Sets the positions a new aggregation starts from (its first checkpoint).
  absl::Status SetStart(const std::map<uint32_t, uint64_t>& offsets);

  // Folds one partition's batch. Records below the partition's position are skipped (already
  // in state). An error (a reducer's failure) leaves the state as of the last checkpoint's
  // input plus what was folded before it; the caller stops the aggregation. `*folded` gets
  // the number of records taken (not skipped as already in state).
  absl::Status Fold(uint32_t partition,
                    absl::FunctionRef<void(absl::FunctionRef<void(const DecodedRecord&)>)> for_each,
                    uint64_t* folded);
  // The memory its windows may hold (the manager shares its bound among the aggregations).
  void SetCacheBytes(uint64_t bytes) { cache_bytes_.store(bytes, std::memory_order_relaxed); }
  // Whether a checkpoint is due: the interval passed with changes, or memory or pending output
  // grew past its bounds.
  bool CheckpointDue(int64_t now_us);
  // Publishes closed windows' results and late records, then writes state and positions in one
  // atomic batch, then commits the positions as the group's offsets. Then, when memory is past
  // the cache bound, evicts the least recently folded keys (their windows are all on disk now).
  absl::Status Checkpoint();

  // Queries (any thread).
  absl::StatusOr<KeyResult> GetKey(const KeyQuery& q);
  absl::StatusOr<WindowResult> ListWindow(const WindowQuery& q);
  std::unique_ptr<Watcher> NewWatcher(std::optional<std::string> key);
  // Ends every watcher (CANCELLED).
  void CloseWatchers();

  struct Stats {
    uint64_t records_in = 0;
    uint64_t late = 0;
    uint64_t skipped = 0;
    uint64_t keys = 0;
    uint64_t open_windows = 0;
    int64_t watermark_us = INT64_MIN;
    uint64_t memory_bytes = 0;
    std::map<uint32_t, uint64_t> positions;  // next offset to fold, per partition
  };
  Stats GetStats();
  std::string tier() const;

 private:
  struct Window {
    int64_t start = 0;
    int64_t end = 0;
    bool final = false;
    bool dirty = false;
    std::optional<int64_t> stored_start;  // the start it has in the store, if stored
    Accumulators accs;                    // built-in measures
    std::string state;                    // a reducer's
    std::string values;                   // a reducer's values JSON
    // A reducer's records not yet folded, already in the ABI's record layout (one append per
    // record, no copy per field).
    std::string pending;
    uint32_t pending_count = 0;
  };
  struct KeyState {
    absl::InlinedVector<Window, 1> windows;  // by start
    uint64_t touched = 0;                    // records_in_ when a record last folded into it
  };
  struct PendingOut {
    std::string id;
    std::string key;
    std::string data;
    int64_t timestamp_us = 0;
    std::vector<std::pair<std::string, std::string>> headers;
  };

  Aggregation(AggregationSpec spec, std::unique_ptr<Store> store,
              std::unique_ptr<WasmReducer> reducer, broker::Broker& broker, uint64_t cache_bytes);
  absl::Status Restore();
  // A window as the store holds it, back in memory (clean).
  absl::StatusOr<Window> Load(StoredWindow sw) ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_, mu_);
  // Brings an evicted key's open windows back from the store; none when it has none there.
  absl::Status LoadKey(std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_, mu_);
  // Drops the least recently folded keys, all clean, until memory is down to `target`.
  void Evict(uint64_t target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_, mu_);
  uint64_t WindowBytes(std::string_view key, const Window& w) const;
  int64_t Watermark() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // A topic's partitions' end offsets (empty when it does not exist), read without the locks.
  std::map<uint32_t, uint64_t> TopicEnds(const std::string& topic);
  // Adds the ids of `topic`'s records from `from` on to published_since_checkpoint_.
  absl::Status ReadPublished(const std::string& topic, const std::map<uint32_t, uint64_t>& from)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_);
  // The least largest event time of the partitions still behind `ends` but `except`: INT64_MAX
  // when none is, nullopt when one has folded nothing yet.
  std::optional<int64_t> Hold(const std::map<uint32_t, uint64_t>& ends,
                              std::optional<uint32_t> except) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Moves the event-time clock forward to the least largest event time of the partitions that
  // still have records to fold (the largest of all when none has).
  void AdvanceEventTime(const std::map<uint32_t, uint64_t>& ends)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Folds one record with its key; false when it was late.
  // A store read failed while folding; the batch stops there and fails the aggregation.
  bool FoldOne(std::string_view key, const DecodedRecord& r, uint32_t partition,
               absl::Status* error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_, mu_);
  bool FoldSession(KeyState& ks, std::string_view key, const DecodedRecord& r,
                   uint32_t partition) ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_, mu_);
  void Touch(std::string_view key, Window& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddRecord(std::string_view key, Window& w, const DecodedRecord& r, uint32_t partition)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_, mu_);
  Window& NewWindow(KeyState& ks, std::string_view key, int64_t start, int64_t end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_, mu_);
  absl::Status MergeInto(std::string_view key, Window& into, Window& from)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_, mu_);
  absl::Status ReducePending() ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_, mu_);
  absl::Status CloseWindows() ABSL_EXCLUSIVE_LOCKS_REQUIRED(fold_mu_, mu_);
  std::string ValuesOf(const Window& w) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AggregationSpec spec_;
  std::atomic<uint64_t> cache_bytes_;
  std::unique_ptr<Store> store_;
  broker::Broker& broker_;
  // Serializes folds and checkpoints (held across a checkpoint's publish); queries take mu_ only.
  mutable absl::Mutex fold_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unique_ptr<WasmReducer> reducer_ ABSL_GUARDED_BY(fold_mu_);
  std::unique_ptr<MeasureSet> measures_ ABSL_GUARDED_BY(fold_mu_);  // built-in; also reads keys
  // Exactly-once output past the topics' dedupe window. A crash after outputs were
  // acknowledged but before their checkpoint leaves them in the results and late topics; the
  // restart folds their records again and makes them again. On restart the ids published since
  // the checkpoint are read back (from its scan-from offsets) and each is skipped once made
  // again. The offsets stay until every such id was made again, so that a second crash finds
  // them too.
  absl::flat_hash_set<std::string> published_since_checkpoint_ ABSL_GUARDED_BY(fold_mu_);
  std::map<uint32_t, uint64_t> results_scan_from_ ABSL_GUARDED_BY(fold_mu_);
  std::map<uint32_t, uint64_t> late_scan_from_ ABSL_GUARDED_BY(fold_mu_);
  mutable absl::Mutex mu_;
  // For reading values of built-in windows from queries (a MeasureSet parses, so it is per use).
  std::unique_ptr<MeasureSet> reader_ ABSL_GUARDED_BY(mu_);
  // The keys in memory: every one with a window changed since the last checkpoint, and as many
  // others as the cache bound allows. A key is in memory with all its open windows or not at all.
  absl::flat_hash_map<std::string, KeyState, KeyHash, KeyEq> keys_ ABSL_GUARDED_BY(mu_);
  // The least start of an open window that is not in memory (evicted, or not loaded at restore);
  // INT64_MAX when every open window is. A key not in memory is looked up in the store from
  // there.
  int64_t evicted_floor_ ABSL_GUARDED_BY(mu_) = INT64_MAX;
  // Windows by the end they had when made (whether in memory or evicted since): the candidates
  // to close once the watermark passes.
  std::map<int64_t, std::vector<std::string>> closing_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, int64_t>> deletes_ ABSL_GUARDED_BY(mu_);  // merged sessions
  // Keys with records for the reducer not yet reduced.
  absl::flat_hash_set<std::string, KeyHash, KeyEq> pending_keys_ ABSL_GUARDED_BY(mu_);
  std::vector<PendingOut> outputs_ ABSL_GUARDED_BY(mu_);   // results, to <name>.results
  std::vector<PendingOut> late_out_ ABSL_GUARDED_BY(mu_);  // late records, to <name>.late
  std::map<uint32_t, uint64_t> positions_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, uint64_t> checkpointed_ ABSL_GUARDED_BY(mu_);
  int64_t max_event_us_ ABSL_GUARDED_BY(mu_) = INT64_MIN;
  // The watermark is this clock minus the lateness. Each partition is read in offset order
  // but the partitions at their own pace (a backfill may read one far ahead of another), so
  // the clock is the least of the largest event times of the partitions not yet caught up:
  // a record is late only against its own partition's progress. It never goes back.
  int64_t event_time_us_ ABSL_GUARDED_BY(mu_) = INT64_MIN;
  std::map<uint32_t, int64_t> partition_max_us_ ABSL_GUARDED_BY(mu_);
  uint64_t late_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t skipped_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t records_in_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t open_windows_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t memory_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool changed_since_checkpoint_ ABSL_GUARDED_BY(mu_) = false;
  int64_t last_checkpoint_us_ ABSL_GUARDED_BY(mu_) = 0;
  // Watchers, and the windows changed since they were last told (only while there are any).
  std::vector<std::weak_ptr<WatchQueue>> watchers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, int64_t>> changed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodata::aggregate
