// The facade: opens the data directory and wires the broker's parts together; each method
// forwards to the part that owns its concern (see README.md).
#include "broker/broker.h"

#include <sys/resource.h>

#include <algorithm>

#include "broker/internal/group_manager.h"
#include "broker/internal/dedupe_store.h"
#include "broker/internal/maintenance.h"
#include "broker/internal/probe.h"
#include "broker/internal/publisher.h"
#include "broker/internal/topic_registry.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "common/strings.h"
#include "storage/catalog.h"
#include "storage/data_dir.h"
#include "storage/data_dir_lock.h"

namespace nodata::broker {
namespace {

// A server without the journal must not start over records only the journal holds.
absl::Status RefuseJournal(FileSystem& fs, const std::string& dir) {
  if (!fs.Exists(dir)) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> names, fs.ListDir(dir));
  for (const std::string& name : names) {
    if (name.ends_with(".wal")) {
      return absl::FailedPreconditionError(
          StrCat(dir, " holds records a crash left in the journal only: start once with "
                      "--fsync always and --journal (the defaults) to restore them"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

class Broker::Impl {
 public:
  Impl(BrokerOptions options, FileSystem& fs, prometheus::Registry& registry)
      : options_(std::move(options)), fs_(fs), probe_(registry) {
    options_.compaction.keep_hot_us = options_.dedupe_window_ms * 1000;
    options_.log.on_sync = [this](double seconds, uint64_t records) {
      probe_.ObserveSync(seconds, records);
    };
    options_.log.on_failure = [this](const absl::Status& status) {
      absl::MutexLock lock(&health_mu_);
      if (log_failed_.ok()) log_failed_ = status;
    };
    uint64_t max_open = options_.max_open_files;
    if (max_open == 0) {
      rlimit limit{};
      max_open = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                     ? limit.rlim_cur / 2
                     : 4096;
    }
    options_.log.files = std::make_shared<log::FileCache>(fs_, max_open);
    options_.log.dir_syncs = std::make_shared<log::DirSyncs>(fs_);
  }

  ~Impl() {
    if (maintenance_) maintenance_->Stop();
    if (dedupe_) dedupe_->Stop();
    if (topics_) topics_->SyncAll();
    // Everything is in the segments now: the journal's files go.
    if (topics_ && options_.log.journal) options_.log.journal->Checkpoint().IgnoreError();
    // The partitions, then the journal (whose threads call back into them and into the probe),
    // before the probe and the data directory's lock go.
    maintenance_.reset();
    dedupe_.reset();
    publisher_.reset();
    groups_.reset();
    topics_.reset();
    options_.log.journal.reset();
  }

  absl::Status Open() {
    const storage::DataDir dir(options_.data_dir);
    // Before anything is read or written: a second process on the same directory would
    // overwrite the first one's files and catalog.
    ASSIGN_OR_RETURN(lock_, storage::DataDirLock::Acquire(dir.root()));
    if (!fs_.Exists(dir.LogRoot())) {
      RETURN_IF_ERROR(fs_.CreateDirs(dir.LogRoot()));
      RETURN_IF_ERROR(fs_.SyncDir(dir.root()));
    }
    // Topic and partition directories come with a partition's first record, which syncs them.
    options_.log.dir_root = dir.LogRoot();
    if (options_.journal && options_.log.fsync == log::FsyncPolicy::kAlways) {
      log::JournalOptions jo;
      jo.key_root = dir.LogRoot();
      jo.file_bytes = options_.journal_file_bytes;
      jo.checkpoint_ms = options_.journal_checkpoint_ms;
      jo.sync_threads = options_.sync_threads;
      jo.sync_fs_path = dir.root();
      jo.dir_syncs = options_.log.dir_syncs;
      jo.on_sync = [this](double seconds, uint64_t records) {
        probe_.ObserveSync(seconds, records);
      };
      jo.on_checkpoint = [this](double seconds, uint64_t partitions, bool whole_fs) {
        probe_.ObserveCheckpoint(seconds, partitions, whole_fs);
      };
      ASSIGN_OR_RETURN(std::unique_ptr<log::Journal> journal,
                       log::Journal::Open(fs_, dir.JournalRoot(), std::move(jo)));
      options_.log.journal = std::move(journal);
    } else {
      // Without the journal, nothing may be left in it: its records would be lost.
      RETURN_IF_ERROR(RefuseJournal(fs_, dir.JournalRoot()));
    }
    ASSIGN_OR_RETURN(catalog_, storage::Catalog::Open(dir.CatalogPath()));
    topics_ = std::make_unique<TopicRegistry>(options_, fs_, catalog_->topics(), probe_,
                                              coordinator_);
    RETURN_IF_ERROR(topics_->Open());
    // Serving starts now; publishes to each topic wait until its dedupe state is restored.
    dedupe_ = std::make_unique<DedupeStore>(options_, fs_, *topics_);
    dedupe_->Start(topics_->All());
    groups_ = std::make_unique<GroupManager>(*topics_, catalog_->offsets(), coordinator_, probe_);
    publisher_ = std::make_unique<Publisher>(options_, *topics_, *dedupe_);
    maintenance_ = std::make_unique<Maintenance>(options_, *topics_, probe_);
    maintenance_->Start();
    return absl::OkStatus();
  }

  BrokerOptions options_;
  FileSystem& fs_;
  // The first partition log that failed for good (LogOptions::on_failure); Health reports it.
  absl::Mutex health_mu_;
  absl::Status log_failed_ ABSL_GUARDED_BY(health_mu_);
  // Released last, once everything else of the data directory is closed.
  std::unique_ptr<storage::DataDirLock> lock_;
  Probe probe_;
  GroupCoordinator coordinator_;
  std::unique_ptr<storage::Catalog> catalog_;
  std::unique_ptr<TopicRegistry> topics_;
  std::unique_ptr<GroupManager> groups_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<Maintenance> maintenance_;
  std::unique_ptr<DedupeStore> dedupe_;
};

Broker::Broker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Broker::~Broker() = default;

absl::StatusOr<std::unique_ptr<Broker>> Broker::Open(BrokerOptions options, FileSystem& fs,
                                                     prometheus::Registry& registry) {
  auto impl = std::make_unique<Impl>(std::move(options), fs, registry);
  RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<Broker>(new Broker(std::move(impl)));
}

// Publishing.
void Broker::Publish(absl::Span<const EventIn> events, PublishDone done) {
  impl_->publisher_->Publish(events, std::move(done));
}

// Topics.
absl::StatusOr<TopicInfo> Broker::CreateTopic(std::string_view name, uint32_t partitions,
                                              TopicConfig config) {
  return impl_->topics_->Create(name, partitions, config);
}
absl::StatusOr<TopicInfo> Broker::SetRetention(std::string_view name, TopicConfig config) {
  return impl_->topics_->SetRetention(name, config);
}
absl::StatusOr<TopicInfo> Broker::AddPartitions(std::string_view name, uint32_t partitions) {
  return impl_->topics_->AddPartitions(name, partitions);
}
void Broker::FlushTopic(std::string_view name,
                        absl::AnyInvocable<void(absl::StatusOr<TopicInfo>) &&> done) {
  impl_->maintenance_->Flush(name, std::move(done));
}
absl::StatusOr<TopicInfo> Broker::GetTopic(std::string_view name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, impl_->topics_->Find(name));
  return impl_->topics_->Describe(*topic);
}
std::vector<TopicInfo> Broker::ListTopics() {
  std::vector<TopicInfo> out;
  for (const auto& topic : impl_->topics_->All()) {
    // Topics a start has not opened yet are opened for their figures; one that cannot be opened
    // is listed without partitions (naming it answers the error).
    impl_->topics_->EnsureOpen(*topic).IgnoreError();
    out.push_back(impl_->topics_->Describe(*topic));
  }
  std::sort(out.begin(), out.end(),
            [](const TopicInfo& a, const TopicInfo& b) { return a.name < b.name; });
  return out;
}
absl::Status Broker::DeleteTopic(std::string_view name) { return impl_->topics_->Delete(name); }
std::optional<int64_t> Broker::TopicCreatedAt(std::string_view name) {
  auto topic = impl_->topics_->Lookup(name);
  if (!topic.ok()) return std::nullopt;
  return (*topic)->created_at_us;
}
void Broker::SyncAll() { impl_->topics_->SyncAll(); }
absl::Status Broker::Health() {
  const std::shared_ptr<log::Journal>& journal = impl_->options_.log.journal;
  if (journal) RETURN_IF_ERROR(journal->Health());
  absl::MutexLock lock(&impl_->health_mu_);
  return impl_->log_failed_;
}
storage::ComponentStore& Broker::component_store() { return impl_->catalog_->components(); }
storage::AggregationStore& Broker::aggregation_store() {
  return impl_->catalog_->aggregations();
}

storage::TokenStore& Broker::token_store() { return impl_->catalog_->tokens(); }
const std::string& Broker::data_dir() const { return impl_->options_.data_dir; }

// Reads.
absl::Status Broker::Read(std::string_view name, PartitionId partition, Offset from,
                          size_t max_records, size_t max_bytes, std::vector<Record>* out) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, impl_->topics_->Find(name));
  RETURN_IF_ERROR(CheckPartition(name, topic->count(), partition));
  return topic->part(partition).Read(from, max_records, max_bytes, out);
}
absl::Status Broker::Scan(std::string_view name, PartitionId partition, Offset from,
                          size_t max_records, size_t max_bytes,
                          absl::FunctionRef<void(const DecodedRecord&)> visit) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, impl_->topics_->Find(name));
  RETURN_IF_ERROR(CheckPartition(name, topic->count(), partition));
  return topic->part(partition).Scan(from, max_records, max_bytes, visit);
}
void Broker::WhenReadable(std::string_view name, PartitionId partition, Offset offset,
                          std::weak_ptr<const void> owner, absl::AnyInvocable<void() &&> fn) {
  auto topic = impl_->topics_->Find(name);
  if (!topic.ok() || !CheckPartition(name, (*topic)->count(), partition).ok()) {
    std::move(fn)();  // the next read says why
    return;
  }
  (*topic)->part(partition).WhenReadable(offset, std::move(owner), std::move(fn));
}
absl::StatusOr<Offset> Broker::AckedEnd(std::string_view topic, PartitionId partition) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> t, impl_->topics_->Find(topic));
  RETURN_IF_ERROR(CheckPartition(topic, t->count(), partition));
  return t->part(partition).Stats().acked_end;
}
absl::StatusOr<std::pair<Offset, Offset>> Broker::Bounds(std::string_view topic,
                                                         PartitionId partition) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> t, impl_->topics_->Find(topic));
  RETURN_IF_ERROR(CheckPartition(topic, t->count(), partition));
  const storage::StorageStats s = t->part(partition).Stats();
  return std::pair{s.start_offset, s.acked_end};
}

absl::StatusOr<Offset> Broker::ResolveStart(std::string_view topic, PartitionId partition,
                                            const StartSpec& start,
                                            std::optional<Offset> committed) {
  return impl_->topics_->ResolveStart(topic, partition, start, committed);
}

// Groups and offsets.
GroupCoordinator& Broker::groups() { return impl_->coordinator_; }
absl::Status Broker::CommitOffsets(std::string_view group, std::string_view topic,
                                   const std::vector<std::pair<PartitionId, Offset>>& offsets,
                                   uint64_t generation, std::string_view consumer_id) {
  return impl_->groups_->CommitOffsets(group, topic, offsets, generation, consumer_id);
}
absl::StatusOr<std::map<PartitionId, Offset>> Broker::CommittedOffsets(std::string_view group,
                                                                        std::string_view topic) {
  return impl_->groups_->CommittedOffsets(group, topic);
}
absl::StatusOr<GroupDescription> Broker::DescribeGroup(std::string_view group,
                                                       std::string_view topic) {
  return impl_->groups_->DescribeGroup(group, topic);
}
absl::StatusOr<std::vector<GroupSummary>> Broker::ListGroups(std::string_view topic) {
  return impl_->groups_->ListGroups(topic);
}
absl::StatusOr<std::vector<std::pair<PartitionId, Offset>>> Broker::ResetOffsets(
    std::string_view group, std::string_view topic, const StartSpec& to,
    const std::vector<PartitionId>& partitions) {
  return impl_->groups_->ResetOffsets(group, topic, to, partitions);
}
absl::Status Broker::DeleteGroup(std::string_view group, std::string_view topic) {
  return impl_->groups_->DeleteGroup(group, topic);
}
absl::Status Broker::ValidateGroup(std::string_view group, std::string_view topic) {
  return impl_->groups_->ValidateGroup(group, topic);
}

// Metrics.
void Broker::RefreshGroupMetrics() {
  for (const GroupDescription& d : impl_->groups_->DescribeAll()) impl_->probe_.RefreshLag(d);
}
void Broker::BeginShutdown() {
  if (impl_->dedupe_) impl_->dedupe_->StopThread();
}

void Broker::RefreshMetrics() {
  impl_->probe_.RefreshPartitions(impl_->topics_->All());
  impl_->probe_.RefreshFiles(*impl_->options_.log.files);
  RefreshGroupMetrics();
}

}  // namespace nodata::broker
