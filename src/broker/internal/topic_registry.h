// The open topics of a data directory. Internal to broker/.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "broker/broker.h"
#include "broker/groups.h"
#include "broker/internal/probe.h"
#include "broker/internal/topic.h"
#include "common/fs.h"
#include "common/worker_pool.h"
#include "storage/topic_store.h"
#include "storage/data_dir.h"

namespace nodata::broker {

// Opens, creates, grows, reconfigures, finds and deletes topics: the catalog entries, the
// partitions' directories and the map of open topics. Creates and deletes are all or nothing
// (see Delete). Safe for concurrent use; admin operations are serialized.
//
// `options`, `fs`, `topic_store`, `probe` and `groups` must outlive the registry. Topic series are
// registered with `probe`; a delete or grow tells `groups` (its members are revoked or
// rebalanced).
class TopicRegistry {
 public:
  TopicRegistry(const BrokerOptions& options, FileSystem& fs, storage::TopicStore& topic_store,
                Probe& probe, GroupCoordinator& groups);
  ~TopicRegistry();

  // Finishes deletes cut short, loads every topic of the catalog and removes directories no
  // topic owns. No partition is opened: topics open on first need (EnsureOpen), or behind the
  // serving, where DedupeStore's thread first calls TakeJournal, then opens the others as it
  // restores their dedupe state.
  absl::Status Open();
  // Opens the topics with partitions holding records that recovery found in the journal, and
  // then lets the journal's files go (Journal::RecoveryDone; no journal checkpoint runs before).
  // Done when Open found none. A topic that cannot be opened holds the journal's files back:
  // its error is logged, and deletes answer it.
  void TakeJournal(absl::FunctionRef<bool()> stopping);

  absl::StatusOr<TopicInfo> Create(std::string_view name, uint32_t partitions,
                                   TopicConfig config);
  absl::StatusOr<TopicInfo> SetRetention(std::string_view name, TopicConfig config);
  absl::StatusOr<TopicInfo> AddPartitions(std::string_view name, uint32_t partitions);
  absl::Status Delete(std::string_view name);

  // The topic `name`, opened: INVALID_ARGUMENT for a bad name, NOT_FOUND for a missing topic,
  // the open's error (such as DATA_LOSS) for a topic whose partitions cannot be opened.
  absl::StatusOr<std::shared_ptr<Topic>> Find(std::string_view name);
  // Find without opening the topic (its partitions may not be: Topic::is_open).
  absl::StatusOr<std::shared_ptr<Topic>> Lookup(std::string_view name);
  // Find, creating the topic with the defaults when auto-create is on.
  absl::StatusOr<std::shared_ptr<Topic>> FindOrCreate(std::string_view name);
  // FindOrCreate for each of `names` into the same index of `out` (resized to fit): the first
  // error is returned. Existing topics are looked up under one lock, each a few names ahead of
  // the one taken, for a batch spread over many topics.
  absl::Status FindOrCreateAll(absl::Span<const std::string_view> names,
                               std::vector<std::shared_ptr<Topic>>* out);
  // Every topic, opened or not (Topic::is_open).
  std::vector<std::shared_ptr<Topic>> All();
  // Opens the topic's partitions (recovering them) unless that was done: on the caller's
  // thread, or waiting for the one opening them. The open's error stays the topic's.
  absl::Status EnsureOpen(Topic& topic);

  TopicInfo Describe(const Topic& topic) const;
  // The retention in effect: the topic's own, else the server's default.
  storage::RetentionPolicy RetentionOf(const Topic& topic) const;
  // The offset a reader starting at `start` reads first; see Broker::ResolveStart.
  absl::StatusOr<Offset> ResolveStart(std::string_view name, PartitionId partition,
                                      const StartSpec& start, std::optional<Offset> committed);
  // Flushes every partition to disk.
  void SyncAll();

 private:
  // A delete whose files moved into the trash but whose catalog entry stayed (a crash between
  // the two) is completed: the move decided it.
  absl::Status FinishDeletes();
  // The topic `name` as the map holds it (null if none), unopened perhaps and unvalidated.
  std::shared_ptr<Topic> Get(std::string_view name);
  // The topic of a catalog entry, its partitions not opened yet.
  absl::StatusOr<std::shared_ptr<Topic>> MakeTopic(const storage::TopicMeta& meta);
  // Whether the journal holds records of a partition of `topic` that recovery found.
  bool HoldsJournaled(const Topic& topic) const;
  // Waits until TakeJournal is done (OK) or failed (its error).
  absl::Status AwaitJournalTaken();
  absl::StatusOr<std::unique_ptr<storage::Partition>> OpenPartition(const Topic& topic,
                                                                    PartitionId p);

  const BrokerOptions& options_;
  FileSystem& fs_;
  const storage::DataDir dir_;
  storage::TopicStore& topic_store_;
  Probe& probe_;
  GroupCoordinator& groups_;
  // Declared before the topics: their logs use it until they close.
  WorkerPool syncer_;

  // Serializes topic creation and deletion (catalog, directories, map).
  absl::Mutex admin_mu_;
  uint64_t trash_seq_ ABSL_GUARDED_BY(admin_mu_) = 0;
  absl::Mutex topics_mu_ ABSL_ACQUIRED_AFTER(admin_mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Topic>> topics_ ABSL_GUARDED_BY(topics_mu_);

  // Open's, then TakeJournal's.
  std::vector<std::shared_ptr<Topic>> journaled_;
  absl::Mutex journal_mu_;
  bool journal_taken_ ABSL_GUARDED_BY(journal_mu_) = false;
  absl::Status journal_status_ ABSL_GUARDED_BY(journal_mu_);
};

}  // namespace nodata::broker
