// One partition of a topic in the hot tier: an append-only sequence of segment files with dense
// offsets from the partition's start, CRC32C-framed records, a sparse offset index and group
// commit. Format: docs/formats/log.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
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
#include "log/dir_syncs.h"
#include "log/file_cache.h"
#include "log/format.h"
#include "log/journal.h"
#include "log/syncer.h"

namespace nodata::log {

enum class FsyncPolicy {
  kAlways,    // an append is acknowledged once fdatasync has covered it (group commit)
  kInterval,  // acknowledged once written; fdatasync every interval
  kNever,     // acknowledged once written; synced only when a segment is sealed
};

struct LogOptions {
  // A segment is sealed and a new one started past this many bytes...
  uint64_t segment_bytes = 128ull << 20;
  // ...or when its first record is older than this.
  int64_t segment_ms = 60 * 60 * 1000;
  // One sparse index entry per this many bytes of records.
  uint32_t index_interval_bytes = 4096;
  // Disk space is reserved ahead of appends, so that a full disk fails an append before any byte
  // of it is written. The step follows the partition's write rate: about a second of its writes
  // since the last reservation, a power of two from the smallest to the largest (at most
  // segment_bytes); a partition's first reservation takes the smallest.
  uint64_t reserve_chunk_bytes = 1ull << 20;
  uint64_t min_reserve_chunk_bytes = 4096;
  // A partition with no append for this long gives its reservation back (ReleaseIdle).
  int64_t idle_release_ms = 5000;
  FsyncPolicy fsync = FsyncPolicy::kAlways;
  // Called after each successful fdatasync with its duration and how many records it covered.
  std::function<void(double seconds, uint64_t records)> on_sync;
  // Called when the log fails for good (a failed fdatasync, a tail write or the undo of a failed
  // append): it refuses writes until a restart recovers it. Called under the log's lock: it must
  // not call into the log.
  std::function<void(const absl::Status& status)> on_failure;
  // The open files of the segments, shared by the partitions of a server so that their number
  // is bounded. Null: the log keeps its own, unbounded.
  std::shared_ptr<FileCache> files;
  // With fsync always: the journal that acknowledges appends (see journal.h); segments are then
  // synced by its checkpoints. Null: each partition syncs its own segment per acknowledgement.
  std::shared_ptr<Journal> journal;
  // The directory partition directories are made under, topic directories between: the entries
  // a partition's first record adds up to it are synced with that record. Empty: the partition
  // directory's parent only.
  std::string dir_root;
  // Directories with new entries, each synced once for all the partitions made in it. Null:
  // each log syncs the directories above it itself.
  std::shared_ptr<DirSyncs> dir_syncs;
};

// A segment as the compactor sees it.
struct SegmentInfo {
  uint64_t base_offset = 0;
  uint64_t end_offset = 0;  // one past its last record
  uint64_t size_bytes = 0;
  int64_t min_ingest_us = 0;  // meaningless when the segment is empty
  int64_t max_ingest_us = 0;
  bool sealed = false;  // sealed segments are immutable and fully synced
};

struct PartitionStats {
  uint64_t start_offset = 0;
  uint64_t end_offset = 0;  // the next offset to be written
  uint64_t acked_end = 0;   // one past the last acknowledged record: what readers see
  uint64_t record_count = 0;
  uint64_t bytes_on_disk = 0;
  uint32_t segment_count = 0;
};

// What recovery found and did when the partition was opened.
struct RecoveryReport {
  uint64_t truncated_bytes = 0;  // torn tail cut from the last segment
  uint32_t rebuilt_indexes = 0;
  uint32_t removed_files = 0;
  uint64_t replayed_records = 0;  // restored from the journal
};

// Safe for concurrent use. Appends are ordered by the internal mutex; fdatasync runs on the
// Syncer (or the journal's thread) outside it, so appends continue while a sync is in flight
// (group commit).
class PartitionLog : private JournalClient {
 public:
  // Opens (creating if needed) the partition in `dir` and recovers it: verifies the tail of the
  // last segment and truncates a torn record, loads or rebuilds indexes. DATA_LOSS when a record
  // in the middle of the log is damaged (nothing is truncated then). With a journal, the last
  // segment's records from the first one the journal holds on are not trusted (they may not have
  // been synced): a damaged one is cut with everything after it, and the journal's records
  // restore them. `fs` and `syncer` must outlive the log.
  //
  // `min_start_offset` is the first offset the log may assign (offsets below it are stored
  // elsewhere, in the cold tier): an empty log starts there; a log holding records that end
  // below it is refused with DATA_LOSS.
  static absl::StatusOr<std::unique_ptr<PartitionLog>> Open(FileSystem& fs, std::string dir,
                                                            LogOptions options, Syncer& syncer,
                                                            uint64_t min_start_offset = 0);
  ~PartitionLog() override;
  PartitionLog(const PartitionLog&) = delete;
  PartitionLog& operator=(const PartitionLog&) = delete;

  // Writes `records` with consecutive offsets and returns the first one. Written, not yet
  // acknowledged: see WhenAcked. All or nothing: on error nothing of the batch stays in the log
  // (RESOURCE_EXHAUSTED on a full disk). With the journal, `journal_lsn` (if given) gets the
  // journal position that acknowledges the batch (Journal::WhenDurable); otherwise 0.
  absl::StatusOr<uint64_t> Append(absl::Span<const RecordView> records,
                                  uint64_t* journal_lsn = nullptr);

  // Calls `done` once every offset below `end_offset` is acknowledged under the fsync policy,
  // or with the error that made that impossible. May call it inline or from a Syncer thread.
  void WhenAcked(uint64_t end_offset, absl::AnyInvocable<void(absl::Status) &&> done);

  // Calls `fn` once the record at `offset` is acknowledged (inline when it already is), or once
  // the log has failed. Runs on the thread that acknowledged it (a sync thread or an appender):
  // keep it short. The append notification readers wait on instead of polling. A waiter whose
  // `owner` has expired is dropped without being called (readers that went away do not pile up
  // on a quiet partition).
  void WhenReadable(uint64_t offset, std::weak_ptr<const void> owner,
                    absl::AnyInvocable<void() &&> fn);

  // Runs every pending WhenReadable callback now (the partition is going away).
  void WakeReaders();

  // The partition's files were moved away (its topic was deleted): the log opens none of them
  // again, as a file at the same path would be another partition's; appends, syncs and reads
  // that need a file fail. Handles already taken keep working.
  void Retire();

  // The offset the next appended record gets.
  uint64_t end_offset() const;

  // Starts loading what an append reads and writes of this log's own state (not what it points
  // to), reading none of it: a batch spread over many partitions calls it for the partitions
  // ahead of the one it appends to, so that their cache misses overlap. Always inlined: GCC
  // takes a call to a function that only prefetches for one without effect, and drops it.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PrefetchForAppend() const {
    __builtin_prefetch(&options_.segment_bytes);
    __builtin_prefetch(&options_.journal);
    __builtin_prefetch(&mu_);
    __builtin_prefetch(&end_);
    __builtin_prefetch(&member_);
    __builtin_prefetch(&readable_waiters_);
    __builtin_prefetch(&tail_);
    __builtin_prefetch(&tail_marks_);
    __builtin_prefetch(&scratch_);
    __builtin_prefetch(&reserved_end_);
    __builtin_prefetch(&files_pending_);
  }

  // One past the last acknowledged offset: what readers may see.
  uint64_t acked_end() const;

  // Reads acknowledged records from `from` on, until `max_records` or about `max_bytes`.
  // OUT_OF_RANGE when `from` is below the start; DATA_LOSS on a damaged record.
  absl::Status Read(uint64_t from, size_t max_records, size_t max_bytes,
                    std::vector<Record>* out) const;
  // Read without copies: `visit` sees each record's views, valid during the call only.
  absl::Status Scan(uint64_t from, size_t max_records, size_t max_bytes,
                    absl::FunctionRef<void(const DecodedRecord&)> visit) const;

  // The first offset of the newest segments that hold at least `min_records` records or reach
  // back before `since_us` (ingest time): where rebuilding the dedupe state starts reading.
  uint64_t RecentStart(int64_t since_us, uint64_t min_records) const;

  // Flushes written records to disk now (for the interval policy and shutdown).
  absl::Status Sync();
  // Seals the active segment when it has records and is older than segment_ms.
  absl::Status MaybeRollByAge(int64_t now_us);
  // When nothing was appended for idle_release_ms: gives back the space reserved ahead of
  // appends (the next append reserves again, from the smallest step) and closes the partition's
  // files (the next read or append opens what it needs).
  absl::Status ReleaseIdle(int64_t now_us);
  // Bytes reserved past the active segment's end, not yet written.
  uint64_t reserved_bytes() const;

  // Seals the active segment when it has records and its oldest one was ingested at or before
  // `oldest_at_most_us` (INT64_MAX: whenever it has records). Sealing syncs it.
  absl::Status Seal(int64_t oldest_at_most_us);

  // Every segment, oldest first; the last one is the active segment.
  std::vector<SegmentInfo> Segments() const;

  // Deletes, oldest first, sealed segments that end at or below `offset` and whose newest record
  // was ingested before `ingested_before_us`. Readers holding a segment keep reading it. Returns
  // how many were deleted.
  absl::StatusOr<int> DropSealedBelow(uint64_t offset, int64_t ingested_before_us);

  PartitionStats Stats() const;
  const RecoveryReport& recovery() const { return recovery_; }
  const std::string& dir() const { return dir_; }

 private:
  struct Segment;
  // Callbacks collected under the lock and run by the destructor: declared before a MutexLock,
  // they run after it is released.
  struct Deferred {
    std::vector<absl::AnyInvocable<void() &&>> fns;
    ~Deferred() {
      for (auto& fn : fns) std::move(fn)();
    }
  };
  struct Waiter {
    uint64_t end_offset;
    absl::AnyInvocable<void(absl::Status) &&> done;
  };

  PartitionLog(FileSystem& fs, std::string dir, LogOptions options, Syncer& syncer);
  absl::Status Recover(uint64_t min_start_offset);
  // Appends what the journal holds past the recovered end.
  absl::Status ReplayJournal(std::vector<JournalRecords> records)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `count` encoded frames from next_offset_ on to the active segment (rolling it when
  // due) and, when `journal`, journals them. All or nothing.
  absl::Status AppendFramesLocked(std::string_view frames, size_t count, int64_t now_us,
                                  bool journal) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // JournalClient.
  void JournalDurable(uint64_t end_offset) override;
  void JournalFailed(const absl::Status& status) override;
  absl::Status JournalCheckpoint() override;
  absl::Status JournalWriteOut() override;
  void JournalWrittenOutDurable() override;
  absl::Status RecoverLastSegment(Segment& seg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoadSealedSegment(Segment& seg, uint64_t expected_end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StartSegment(uint64_t base_offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Creates the directory and the active segment's file of a partition never written.
  absl::Status CreateFilesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes the directory's entries durable, and with `chain` its own entry and those above it.
  absl::Status SyncDirEntries(bool chain) const;
  // The directories above this log's, up to dir_root.
  std::vector<std::string> Ancestors() const;
  // Marks the directories above this log's as holding new entries.
  void NoteChainChanged(const std::vector<std::string>& created) const;
  absl::Status SealActive() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the tail's records below `upto` that are durable in the journal to the active
  // segment (a failure fails the partition).
  absl::Status FlushTailLocked(uint64_t upto) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits until the journal holds the whole tail durably (a seal or a sync writes it all).
  absl::Status WaitTailDurableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reserves space for about `expected` more bytes past the active segment's end, while a
  // checkpoint holds its file open anyway: the appends until the next one then need no file.
  absl::Status ReserveAheadLocked(uint64_t expected) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The reservation's smallest and largest steps (LogOptions), smallest ≤ largest.
  std::pair<uint64_t, uint64_t> ReserveSteps() const;
  // Reserves the active segment's `file` up to `target`, noted as made at size `from`, `now_us`.
  absl::Status ReserveLocked(WritableFile& file, uint64_t target, uint64_t from, int64_t now_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunSync();
  void CollectAckedLocked(std::vector<Waiter>* ready) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CollectReadableLocked(Deferred* ready) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets failed_ to `status` (or keeps an earlier failure when `keep_first`) and reports it
  // through on_failure.
  void FailLocked(absl::Status status, bool keep_first = false) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t AckedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return options_.fsync == FsyncPolicy::kAlways ? synced_offset_ : next_offset_;
  }
  std::shared_ptr<Segment> FindSegmentLocked(uint64_t offset) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The segment's file for reading, and the active segment's for appending, from the cache.
  absl::StatusOr<std::shared_ptr<RandomAccessFile>> ReaderOf(const Segment& seg) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::shared_ptr<WritableFile>> WriterOf(const Segment& seg) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What a sync or a seal of the active segment goes through: the pinned writer when records
  // are unsynced, else the cache's.
  absl::StatusOr<std::shared_ptr<WritableFile>> SyncWriterOf(const Segment& active) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the cache's handles on every segment file of this log.
  void ForgetFilesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  FileSystem& fs_;
  const std::string dir_;
  const LogOptions options_;
  Syncer& syncer_;
  const std::shared_ptr<FileCache> files_;
  RecoveryReport recovery_;

  mutable absl::Mutex mu_;
  // Sealed segments then the active one, by base offset. Never empty once open.
  std::vector<std::shared_ptr<Segment>> segments_ ABSL_GUARDED_BY(mu_);
  uint64_t next_offset_ ABSL_GUARDED_BY(mu_) = 0;
  // next_offset_, read without the lock (end_offset): the publish path reads it for each
  // partition a batch routes to.
  std::atomic<uint64_t> end_{0};
  // Acknowledged: durable in the segment or in the journal.
  uint64_t synced_offset_ ABSL_GUARDED_BY(mu_) = 0;
  // Durable in the segment (what a checkpoint's Sync must cover).
  uint64_t flushed_offset_ ABSL_GUARDED_BY(mu_) = 0;
  // The partition's registration with the journal; null without one.
  std::shared_ptr<Journal::Member> member_;
  // The first offset the journal held for this partition on open (none: UINT64_MAX).
  uint64_t journal_floor_ ABSL_GUARDED_BY(mu_) = UINT64_MAX;
  uint64_t journal_end_ ABSL_GUARDED_BY(mu_) = 0;  // one past its last record
  std::deque<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  // Readers waiting for the record at an offset, oldest first.
  struct ReadableWaiter {
    uint64_t offset;
    std::weak_ptr<const void> owner;
    absl::AnyInvocable<void() &&> fn;
  };
  std::vector<ReadableWaiter> readable_waiters_ ABSL_GUARDED_BY(mu_);
  bool sync_running_ ABSL_GUARDED_BY(mu_) = false;
  // Set when an fdatasync failed: what the page cache holds can no longer be trusted, so the
  // partition refuses appends until it is reopened (and recovered) by a restart.
  mutable absl::Status failed_ ABSL_GUARDED_BY(mu_);
  // With the journal: records of the active segment appended but not yet written to its file
  // (they are in the journal), from tail_first_offset_ on. Written out once kTailFlushBytes
  // gather, and before a read reaches them, a sync, a seal or an idle release. Mutable: a read
  // writes it out.
  static constexpr size_t kTailFlushBytes = 16u << 10;
  mutable std::string tail_ ABSL_GUARDED_BY(mu_);
  // One per append in the tail: its end offset and where it ends in tail_.
  mutable std::deque<std::pair<uint64_t, size_t>> tail_marks_ ABSL_GUARDED_BY(mu_);
  mutable uint64_t tail_first_offset_ ABSL_GUARDED_BY(mu_) = 0;
  mutable absl::Status tail_error_ ABSL_GUARDED_BY(mu_);  // a tail write failed
  uint64_t last_journal_lsn_ ABSL_GUARDED_BY(mu_) = 0;  // of this partition's last append
  std::string scratch_ ABSL_GUARDED_BY(mu_);
  // The active segment's reservation: up to where (0: none, after a new segment or
  // ReleaseIdle), the size and time when it was last made, and when the last append came.
  uint64_t reserved_end_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reserved_from_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_reserve_us_ ABSL_GUARDED_BY(mu_) = 0;
  // The active segment's base and size at the last checkpoint's write-out (JournalWriteOut).
  uint64_t writeout_base_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t writeout_size_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_append_us_ ABSL_GUARDED_BY(mu_) = 0;
  bool idle_ ABSL_GUARDED_BY(mu_) = false;  // ReleaseIdle ran; the next append clears it
  bool retired_ ABSL_GUARDED_BY(mu_) = false;
  // Segments started by this log, and how many of them had their directory entry synced: a
  // new segment's header and entry are synced by the first sync of its records.
  uint64_t segments_started_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dir_synced_at_ ABSL_GUARDED_BY(mu_) = 0;
  // A partition never written has no directory: its first record creates it and the active
  // segment's file, which until then exists in memory only.
  bool files_pending_ ABSL_GUARDED_BY(mu_) = false;
  // This log created its directory, or recovered records a crash left in the journal only: the
  // directory and the entries above it (up to dir_root) are synced with the next records.
  bool chain_unsynced_ ABSL_GUARDED_BY(mu_) = false;
  // What JournalWriteOut wrote out, durable once the file system is synced.
  struct WrittenOut {
    uint64_t target;   // the end offset
    uint64_t started;  // segments started
    bool chain;        // with the directory entries above
  };
  std::optional<WrittenOut> written_out_ ABSL_GUARDED_BY(mu_);
  // The active segment's writer while it has written records not yet synced (fsync always or
  // interval): held past the FileCache's eviction, so that the sync runs on the descriptor
  // that wrote them.
  std::shared_ptr<WritableFile> pinned_writer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodata::log
