// The hot tier's shared write-ahead journal (`--fsync always`). Every append of every partition
// is written to its segment as before and also here; one fdatasync of the journal makes durable
// every append that arrived while the previous one ran, over any number of partitions (group
// commit across partitions). Segments are synced behind, by checkpoints, which then delete the
// journal files they made unnecessary. On open, recovery hands each partition what the journal
// holds for it, so that a partition can restore what its unsynced segment lost.
// Format: docs/formats/journal.md.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/fs.h"
#include "common/worker_pool.h"
#include "log/dir_syncs.h"

namespace nodata::log {

struct JournalOptions {
  // Members are keyed by their partition directory relative to this one (the log root), so
  // that a data directory can move.
  std::string key_root;
  // A file is closed and a checkpoint started once it holds this many bytes.
  uint64_t file_bytes = 64ull << 20;
  // A checkpoint runs this long after the last one at most, while anything was journaled.
  int64_t checkpoint_ms = 10'000;
  // Partitions a checkpoint syncs in parallel.
  int sync_threads = 4;
  // Called after each fdatasync of the journal with its duration and how many records it made
  // durable.
  std::function<void(double seconds, uint64_t records)> on_sync;
  // Called after each checkpoint with its duration, how many partitions it synced, and whether it
  // synced them with one sync of the file system (see sync_fs_path).
  std::function<void(double seconds, uint64_t partitions, bool whole_fs)> on_checkpoint;
  // Set: a checkpoint over at least `whole_fs_members` partitions writes their tails out and
  // syncs the file system holding this path once (syncfs), instead of an fdatasync per
  // partition; the partitions' directories must be on that file system.
  std::string sync_fs_path;
  size_t whole_fs_members = 256;
  // Told of the whole file system's syncs (may be null).
  std::shared_ptr<DirSyncs> dir_syncs;
};

// What the journal calls back: a partition. Calls come from the journal's threads.
class JournalClient {
 public:
  virtual ~JournalClient() = default;
  // Everything the client journaled below `end_offset` is durable.
  virtual void JournalDurable(uint64_t end_offset) = 0;
  // The journal failed: what was journaled and not yet durable never will be.
  virtual void JournalFailed(const absl::Status& status) = 0;
  // Syncs the client's segments: the journal's copy of its appends is then no longer needed.
  virtual absl::Status JournalCheckpoint() = 0;
  // For a checkpoint that syncs the whole file system instead: writes out what only memory and
  // the journal hold, without syncing it...
  virtual absl::Status JournalWriteOut() = 0;
  // ...and once the file system was synced after that, takes what was written out as durable.
  virtual void JournalWrittenOutDurable() = 0;
};

// Records of one partition that recovery found in the journal.
struct JournalRecords {
  uint64_t first_offset = 0;
  uint32_t count = 0;
  std::string frames;  // `count` record frames of the log format, offsets from first_offset
};

struct JournalStats {
  uint64_t files = 0;           // journal files on disk
  uint64_t bytes = 0;           // bytes in them
  uint64_t syncs = 0;           // fdatasyncs of the journal so far
  uint64_t checkpoints = 0;     // checkpoints completed so far
  uint64_t whole_fs_checkpoints = 0;  // of them, those that synced the file system once
  uint64_t recovered_entries = 0;
};

// Safe for concurrent use.
class Journal {
 public:
  // A client's registration (see Join).
  class Member;

  // Opens the journal in `dir` (created if missing) and reads what earlier runs left there: every
  // entry up to the first one that is torn or damaged, which ends the journal (files past it are
  // removed, the file holding it is cut there).
  static absl::StatusOr<std::unique_ptr<Journal>> Open(FileSystem& fs, std::string dir,
                                                       JournalOptions options);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Registers `client`, the partition in `dir` (one member per directory). Leave before the
  // client goes away.
  std::shared_ptr<Member> Join(JournalClient* client, std::string_view dir);
  // No callback reaches the member's client after this returns. `synced`: its segments hold
  // everything it journaled, durably; if not, checkpoints keep the files it journaled into.
  static void Leave(Member& member, bool synced);

  // Whether recovery found records of the partition in `dir` that RecoveryDone has not yet
  // let go: that partition must be opened (and take them) before RecoveryDone.
  bool HoldsRecovered(std::string_view dir);
  // What recovery found for the member's key, oldest first.
  absl::StatusOr<std::vector<JournalRecords>> Recovered(const Member& member);
  // Every partition is open and has taken what recovery found: the files it came from are
  // deleted by the next checkpoint, which starts now.
  void RecoveryDone();

  // Journals `frames` (`count` record frames from `first_offset` on) for `member`;
  // JournalDurable(first_offset + count) follows once they are durable. Called in offset order
  // for each member (under its partition's lock). RESOURCE_EXHAUSTED when the disk has no room
  // for a new journal file; the journal's error once it failed.
  absl::Status Append(Member& member, uint64_t first_offset, uint32_t count,
                      std::string_view frames, uint64_t* lsn);
  // Waits until the journal is durable up to `lsn` (from Append), or has failed.
  absl::Status WaitDurable(uint64_t lsn);
  // Calls `done` once the journal is durable up to `lsn` and every member that journaled below
  // it was called back (JournalDurable), or with the journal's error. Called at once, on the
  // caller's thread, when that is already so; otherwise from the acknowledging thread. One
  // wait covers the appends of a batch over any number of members.
  void WhenDurable(uint64_t lsn, absl::AnyInvocable<void(absl::Status) &&> done);

  // Syncs every member journaled so far and deletes the journal files this made unnecessary.
  absl::Status Checkpoint();

  JournalStats Stats();
  // OK, or the error that failed the journal: it refuses appends until a restart recovers.
  absl::Status Health();

 private:
  struct File;
  struct Chunk;
  struct Pending;
  struct Location;
  struct Round;
  struct Waiter {
    uint64_t lsn;
    absl::AnyInvocable<void(absl::Status) &&> done;
  };

  Journal(FileSystem& fs, std::string dir, JournalOptions options);
  absl::Status Recover();
  // A partition directory's key: its path relative to key_root.
  std::string_view KeyOf(std::string_view dir) const;
  absl::Status StartFileLocked(uint64_t min_capacity) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How far to reserve a file holding `reserved` for `need` bytes: a step of a sixteenth of
  // file_bytes (64 KiB to 4 MiB) past it.
  uint64_t ReserveTarget(uint64_t reserved, uint64_t need) const;
  void WriterLoop();
  void AckLoop();
  void CheckpointLoop();
  absl::Status RunCheckpoint();

  FileSystem& fs_;
  const std::string dir_;
  const JournalOptions options_;
  WorkerPool pool_;

  absl::Mutex checkpoint_mu_;  // one checkpoint at a time; taken before mu_
  bool reverse_next_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  absl::Mutex mu_;
  absl::CondVar work_cv_;        // chunks to write, or stopping
  absl::CondVar durable_cv_;     // durable_lsn_ moved, or the journal failed
  absl::CondVar checkpoint_cv_;  // a checkpoint is wanted, or stopping
  std::shared_ptr<File> current_ ABSL_GUARDED_BY(mu_);
  // Files no longer appended to, oldest first, until a checkpoint deletes them.
  std::vector<std::shared_ptr<File>> closed_ ABSL_GUARDED_BY(mu_);
  std::deque<Chunk> chunks_ ABSL_GUARDED_BY(mu_);  // written by the writer thread, in order
  std::string spare_ ABSL_GUARDED_BY(mu_);  // a written chunk's buffer, for the next one
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);  // appends not yet durable, in order
  // Syncs done, their appends not yet acknowledged: the acknowledging thread calls the members
  // back while the writer goes on with the next sync.
  std::deque<Round> rounds_ ABSL_GUARDED_BY(mu_);
  absl::CondVar rounds_cv_;  // a round to acknowledge, or the writer stopped
  bool writer_done_ ABSL_GUARDED_BY(mu_) = false;
  bool acker_done_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t appended_lsn_ ABSL_GUARDED_BY(mu_) = 0;  // bytes journaled so far (this run)
  uint64_t durable_lsn_ ABSL_GUARDED_BY(mu_) = 0;
  // Durable, and every member below it called back: WhenDurable answers below it at once.
  uint64_t acked_lsn_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu_);  // WhenDurable past acked_lsn_
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  bool recovery_done_ ABSL_GUARDED_BY(mu_) = false;
  bool checkpoint_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  JournalStats stats_ ABSL_GUARDED_BY(mu_);
  // What recovery found, by key, oldest first.
  absl::flat_hash_map<std::string, std::vector<Location>> recovered_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> recovered_paths_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<size_t, std::unique_ptr<RandomAccessFile>> recovered_readers_
      ABSL_GUARDED_BY(mu_);

  std::thread writer_;
  std::thread acker_;
  std::thread checkpointer_;
};

}  // namespace nodata::log
