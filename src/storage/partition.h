// One partition of a topic as a single offset-addressed sequence across both tiers: the hot
// log (recent records, appended to) and the cold Parquet files (history), with the compaction
// that moves records from one to the other and the retention that deletes history.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/fs.h"
#include "common/ids.h"
#include "log/partition_log.h"
#include "common/worker_pool.h"
#include "parquet/writer.h"
#include "storage/cold_partition.h"

namespace nodata::storage {

struct CompactionPolicy {
  // A Parquet file is cut once it holds this many bytes of records (ids, keys, data, headers
  // and 24 bytes of fixed fields per record, before encoding and compression)...
  uint64_t roll_bytes = 128ull << 20;
  // ...and records wait in the hot tier at most about this long before they are compacted,
  // even if fewer bytes have gathered (the active segment is sealed for it).
  int64_t roll_interval_us = 10LL * 60 * 1000 * 1000;
  // A compacted segment stays in the hot tier until its newest record is this old: the dedupe
  // state is rebuilt from the hot tier on start.
  int64_t keep_hot_us = 10LL * 60 * 1000 * 1000;
};

struct RetentionPolicy {
  int64_t max_age_us = 0;  // by ingest time; 0: no limit
  uint64_t max_bytes = 0;  // of the partition on disk; 0: no limit
};

struct CompactionResult {
  uint32_t files = 0;
  uint64_t records = 0;
  uint64_t file_bytes = 0;
  uint32_t segments_dropped = 0;
};

struct StorageStats {
  Offset start_offset{};  // first offset still stored
  Offset end_offset{};    // the next offset to be written
  Offset acked_end{};     // one past the last acknowledged record: what readers see
  uint64_t record_count = 0;  // end_offset - start_offset
  log::PartitionStats hot;
  ColdStats cold;
  uint64_t bytes_on_disk = 0;  // both tiers
};

// Safe for concurrent use: appends, reads, compaction and retention. The only way to a
// partition's tiers: nothing outside storage/ holds the hot log or the cold files.
class Partition {
 public:
  static absl::StatusOr<std::unique_ptr<Partition>> Open(FileSystem& fs, std::string log_dir,
                                                         std::string cold_dir,
                                                         log::LogOptions log_options,
                                                         WorkerPool& syncer,
                                                         parquet::WriterOptions parquet_options);

  const ColdPartition& cold() const { return *cold_; }

  // Appends go to the hot tier; these forward to log::PartitionLog, whose contracts apply
  // (inline: the publish path calls them per partition of each batch).
  //
  // Writes `records` with consecutive offsets from end_offset() and returns the first one;
  // all or nothing. Written, not yet acknowledged: see WhenAcked (or, with the journal, the
  // position `journal_lsn` gets: log::Journal::WhenDurable).
  absl::StatusOr<Offset> Append(absl::Span<const RecordView> records,
                                uint64_t* journal_lsn = nullptr) {
    absl::StatusOr<uint64_t> first = log_->Append(records, journal_lsn);
    if (!first.ok()) return first.status();
    return Offset(*first);
  }
  // Calls `done` once every offset below `end_offset` is acknowledged under the fsync policy,
  // or with the error that made that impossible; inline or on a sync thread.
  void WhenAcked(Offset end_offset, absl::AnyInvocable<void(absl::Status) &&> done) {
    log_->WhenAcked(end_offset.value(), std::move(done));
  }
  // The append notification: calls `fn` once the record at `offset` is acknowledged (inline
  // when it is); a waiter whose `owner` expired is dropped uncalled.
  void WhenReadable(Offset offset, std::weak_ptr<const void> owner,
                    absl::AnyInvocable<void() &&> fn) {
    log_->WhenReadable(offset.value(), std::move(owner), std::move(fn));
  }
  // Runs every pending WhenReadable callback now (the partition is going away or growing).
  void WakeReaders() { log_->WakeReaders(); }
  // The offset the next appended record gets.
  Offset end_offset() const { return Offset(log_->end_offset()); }
  // See log::PartitionLog::PrefetchForAppend.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PrefetchForAppend() const { log_->PrefetchForAppend(); }
  // The first offset of the newest hot-tier segments that hold `min_records` records or reach
  // back before `since_us` (ingest time): where rebuilding the dedupe state starts reading.
  Offset RecentStart(int64_t since_us, uint64_t min_records) const {
    return Offset(log_->RecentStart(since_us, min_records));
  }
  // Flushes written records to disk now (for the interval policy and shutdown).
  absl::Status Sync() { return log_->Sync(); }
  // Seals the active segment when it has records and is older than the log's segment_ms.
  absl::Status MaybeRollByAge(int64_t now_us) { return log_->MaybeRollByAge(now_us); }
  // Its files were moved away with its deleted topic: none is opened by path again.
  void Retire() { log_->Retire(); }
  // Gives back the disk space reserved ahead of appends once the partition is idle.
  absl::Status ReleaseIdle(int64_t now_us) { return log_->ReleaseIdle(now_us); }
  // Seals the active segment when it has records and its oldest one was ingested at or before
  // `oldest_at_most_us` (INT64_MAX: whenever it has records).
  absl::Status Seal(int64_t oldest_at_most_us) { return log_->Seal(oldest_at_most_us); }

  // Reads acknowledged records from `from` on, from whichever tier holds them. May return fewer
  // than asked (a read stops at a file or segment boundary); nothing means `from` is the end.
  // OUT_OF_RANGE below the start (deleted by retention); DATA_LOSS for a damaged or missing
  // range.
  absl::Status Read(Offset from, size_t max_records, size_t max_bytes,
                    std::vector<Record>* out) const;
  // Read without copies, from either tier like Read: `visit` sees views valid during the call
  // only (hot-tier records are not copied; cold ones are decoded into a batch first).
  absl::Status Scan(Offset from, size_t max_records, size_t max_bytes,
                    absl::FunctionRef<void(const DecodedRecord&)> visit) const;

  StorageStats Stats() const;

  // The first offset whose record was ingested at or after `time_us`; the end offset when none
  // is. Looks through file and segment time ranges first, then scans one file or segment.
  absl::StatusOr<Offset> OffsetForTime(int64_t time_us) const;

  // Moves sealed hot-tier records into Parquet files when the policy says they are due, then
  // drops compacted segments. With `flush`, seals the active segment and compacts everything
  // now, whatever its size or age. Stops early (leaving no partial file) once `*cancel` is set.
  absl::StatusOr<CompactionResult> Compact(const CompactionPolicy& policy, int64_t now_us,
                                           bool flush, const std::atomic<bool>* cancel);

  // Deletes the oldest Parquet files while the partition exceeds the policy. Returns how many.
  absl::StatusOr<uint32_t> ApplyRetention(const RetentionPolicy& policy, int64_t now_us);

  // Waits for running maintenance; later Compact and ApplyRetention calls do nothing. For a
  // topic being deleted.
  void Close();
  // Undoes Close, for a delete that failed and left the topic in place.
  void Resume();

 private:
  Partition() = default;
  absl::StatusOr<uint64_t> WriteFile(uint64_t from, uint64_t until, uint64_t roll_bytes,
                                     const std::atomic<bool>* cancel, CompactionResult* result);

  std::unique_ptr<ColdPartition> cold_;
  std::unique_ptr<log::PartitionLog> log_;
  absl::Mutex maintenance_mu_;
  bool closed_ ABSL_GUARDED_BY(maintenance_mu_) = false;
};

}  // namespace nodata::storage
