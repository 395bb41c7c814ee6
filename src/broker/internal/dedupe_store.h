// Each topic's dedupe state across restarts. Internal to broker/.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/broker.h"
#include "broker/dedupe.h"
#include "broker/internal/topic.h"
#include "broker/internal/topic_registry.h"
#include "common/fs.h"
#include "storage/data_dir.h"

namespace nodata::broker {

// A dedupe checkpoint file (docs/formats/dedupe.md) as read back.
struct DedupeCheckpoint {
  int64_t topic_created_us = 0;
  int64_t written_us = 0;
  // Every id of partition p's records below covered[p] that the index held is in the file.
  std::vector<uint64_t> covered;
  uint64_t entries = 0;
  // The settings it was taken under: a start with a longer window or a larger cap reads the
  // log from before the checkpoint too.
  int64_t window_us = 0;
  uint64_t max_ids = 0;
};

// Writes `snapshot` as the checkpoint at `path` (through `path` + ".tmp" and a rename). It is
// not synced: a checkpoint that a power loss takes or tears fails its CRC or is missing, and the
// state is rebuilt from the log instead.
absl::Status WriteDedupeCheckpoint(FileSystem& fs, const std::string& path,
                                   const DedupeCheckpoint& header,
                                   DedupeIndex::Snapshot& snapshot);
// Reads and verifies the checkpoint at `path`, asks `accept` whether to use it, then visits its
// entries oldest first. NOT_FOUND without one; DATA_LOSS for a damaged one; `accept`'s error
// for one it refused (nothing is visited then).
absl::StatusOr<DedupeCheckpoint> ReadDedupeCheckpoint(
    FileSystem& fs, const std::string& path,
    absl::FunctionRef<absl::Status(const DedupeCheckpoint&)> accept,
    absl::FunctionRef<void(const DedupeIndex::Entry&)> visit);

// Restores the dedupe state of the topics a start loaded, on its own thread, and then
// checkpoints it every dedupe_checkpoint_ms, so that a restart reads the checkpoint and only
// the records after it instead of every id of the window from the log. The thread opens each
// topic's partitions before restoring it (TopicRegistry::EnsureOpen): it is what opens, behind
// the serving, the topics that no call needed first.
//
// A topic loaded at start refuses nothing meanwhile: reads go on, and publishes to it wait
// (Topic::dedupe_restored) until its state is whole again, so no duplicate slips through. A
// publish to a topic the thread has not reached restores it on its own thread
// (AwaitRestored), so that it waits for that topic's restore only.
// A checkpoint is taken under the topic's lock (one pass over its table) once every record it
// covers is acknowledged, so a crash cannot take a record the checkpoint knows of; one that
// covers more than a partition holds after a crash (records lost under --fsync interval or
// never) is removed, and the state is rebuilt from the log. Safe for concurrent use; `options`,
// `fs` and `topics` must outlive it.
class DedupeStore {
 public:
  DedupeStore(const BrokerOptions& options, FileSystem& fs, TopicRegistry& topics);
  ~DedupeStore();

  // Starts restoring `loaded` (whose dedupe_restored is false), then checkpointing.
  void Start(std::vector<std::shared_ptr<Topic>> loaded);
  // Restores `topic` on the caller's thread if its restore is due and not under way; returns
  // at once otherwise (the caller then waits for Topic::dedupe_restored).
  void AwaitRestored(Topic& topic);
  // Stops the thread; a topic left unrestored answers publishes UNAVAILABLE (those waiting too).
  void StopThread();
  // StopThread, then, for a clean stop, checkpoints every topic changed since its last
  // checkpoint, for at most 10 s. Idempotent.
  void Stop();

 private:
  void Run(std::vector<std::shared_ptr<Topic>> loaded);
  // Takes the topic's restore for the caller: false if it is done or under way.
  static bool Claim(Topic& topic);
  // Opens and restores a claimed topic and sets it restored, with the error if any.
  void RestoreClaimed(Topic& topic);
  absl::Status Restore(Topic& topic);
  // Inserts the ids of partition records from `from[p]` on, in ingest-time order.
  absl::Status Replay(Topic& topic, const std::vector<uint64_t>& from,
                      const std::vector<uint64_t>& end);
  // Checkpoints `topic` when at least `min_new` ids were inserted since its last checkpoint,
  // unless its records are not acknowledged by `deadline_us`.
  absl::Status Checkpoint(Topic& topic, uint64_t min_new, int64_t deadline_us);
  // Every topic, until the deadline (INT64_MAX: the periodic pass, which gives way to a stop).
  void CheckpointAll(uint64_t min_new, int64_t deadline_us);
  bool stopping() {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }

  const BrokerOptions& options_;
  FileSystem& fs_;
  TopicRegistry& topics_;
  const storage::DataDir dir_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ = false;  // Stop's caller only
  // What the start's restores read.
  std::atomic<uint64_t> from_checkpoints_{0};
  std::atomic<uint64_t> from_logs_{0};
  std::thread thread_;
};

}  // namespace nodata::broker
