// An aggregation's state on disk: one RocksDB database under DATA/aggregations/<name>/ holding
// every (key, window)'s stored state and values, an index of windows by start, and the
// checkpoint's metadata (input offsets, watermark, counters). A checkpoint is one atomic,
// synced write batch: state and the offsets it reflects never disagree after a crash.
//
// Keys (persistent format):
//   'k' u32be(len) key i64be'(start)   window of a key → u8 flags, i64 end, bytes state, values
//   'w' i64be'(start) key              the window index → empty
//   'm' name                           metadata → bytes
// i64be' is big-endian with the sign bit flipped, so that byte order is numeric order.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace nodata::aggregate {

struct StoredWindow {
  int64_t start_us = 0;
  int64_t end_us = 0;
  bool final = false;
  std::string state;   // the reducer's bytes or the built-in accumulators
  std::string values;  // JSON object
};

// What a checkpoint records besides state.
struct CheckpointMeta {
  std::map<uint32_t, uint64_t> offsets;  // input partition → next offset to fold
  int64_t max_event_us = INT64_MIN;
  int64_t min_open_start_us = INT64_MIN;  // every window starting before is final
  uint64_t late = 0;
  uint64_t skipped = 0;
  // The event-time clock the watermark follows, and the largest event time of each input
  // partition it is the least of (see Aggregation).
  int64_t event_time_us = INT64_MIN;
  std::map<uint32_t, int64_t> partition_max_us;
  // Where the results and late topics ended once this checkpoint's outputs were acknowledged
  // (partition → offset): a restart reads from there what was published after it.
  std::map<uint32_t, uint64_t> results_scan_from;
  std::map<uint32_t, uint64_t> late_scan_from;
};

// The stored layouts: a window's value under its `k` key, and the checkpoint. The decoders
// answer DATA_LOSS for bytes they did not write.
std::string EncodeWindow(const StoredWindow& w);
absl::StatusOr<StoredWindow> DecodeWindow(int64_t start, std::string_view v);
std::string EncodeMeta(const CheckpointMeta& m);
absl::StatusOr<CheckpointMeta> DecodeMeta(std::string_view v);

class Store {
 public:
  // Opens (creating) the database in `dir`, bounding its block cache by `cache_bytes`.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& dir, uint64_t cache_bytes);
  ~Store();

  // The last checkpoint's metadata; nullopt for a new store.
  absl::StatusOr<std::optional<CheckpointMeta>> ReadMeta();

  // A checkpoint in the making.
  class Batch {
   public:
    Batch();
    ~Batch();
    // `indexed`: the window index has it already (stored before under the same start), so
    // only its value is written.
    void Put(std::string_view key, const StoredWindow& w, bool indexed = false);
    void Delete(std::string_view key, int64_t start_us);
    void SetMeta(const CheckpointMeta& meta);
    size_t size() const { return bytes_; }

   private:
    friend class Store;
    // Written in key order at commit: the memtable inserts sorted keys far faster.
    std::vector<std::pair<std::string, std::string>> puts_;
    std::vector<std::string> deletes_;
    std::string meta_;
    size_t bytes_ = 0;
  };
  // Writes `batch` atomically and durably.
  // After a failed write the database is closed and opened again before the next one: RocksDB
  // must not append to a write-ahead log that returned an error (its writer would abort), and
  // the reopened database holds exactly what earlier commits made durable.
  absl::Status Commit(Batch& batch);

  // One window of one key.
  absl::StatusOr<std::optional<StoredWindow>> Get(std::string_view key, int64_t start_us);
  // The windows of `key` starting in [from, to), ascending, at most `limit`.
  absl::Status ScanKey(std::string_view key, int64_t from_us, int64_t to_us, size_t limit,
                       const std::function<void(StoredWindow)>& visit);
  // Keys of the window starting at `start_us`, ascending from `after` (exclusive) when given.
  absl::Status ScanWindow(int64_t start_us, const std::function<bool(std::string_view key)>& visit);
  // Windows (key, start) starting at or after `from_us`, in start order; `visit` returns false
  // to stop.
  absl::Status ScanFrom(int64_t from_us,
                        const std::function<bool(std::string_view key, StoredWindow w)>& visit);
  // The largest window start stored; nullopt when none.
  absl::StatusOr<std::optional<int64_t>> LatestStart();
  // Windows stored, estimated by the database.
  uint64_t EstimateWindows();
  // Deletes the database's directory when the store closes (a removed or reset aggregation).
  void DropOnClose() { drop_ = true; }

 private:
  Store(std::shared_ptr<rocksdb::DB> db, std::string dir, uint64_t cache_bytes);
  // The database now, or UNAVAILABLE while it is being opened again; readers hold it for the
  // call, so a reopen waits for none of them.
  absl::StatusOr<std::shared_ptr<rocksdb::DB>> Db() const;
  absl::Status Reopen();

  mutable absl::Mutex db_mu_;
  std::shared_ptr<rocksdb::DB> db_ ABSL_GUARDED_BY(db_mu_);
  std::atomic<bool> broken_{false};  // a write failed: reopen before the next
  const std::string dir_;
  const uint64_t cache_bytes_;
  std::atomic<bool> drop_{false};
};

}  // namespace nodata::aggregate
