#include "broker/broker.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <set>
#include <tuple>
#include <random>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "broker/dedupe.h"
#include "broker/internal/probe.h"
#include "broker/internal/topic.h"
#include "common/names.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "fmt/format.h"
#include "prometheus/counter.h"
#include "log/syncer.h"
#include "spdlog/spdlog.h"
#include "storage/catalog.h"
#include "storage/data_dir.h"
#include "storage/data_dir_lock.h"

namespace nodata::broker {
namespace {

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // splitmix64 finalizer: spreads short keys over all bits before the modulo.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

// Unique ids for events published without one: a random per-process prefix and a counter.
class IdGenerator {
 public:
  IdGenerator() {
    std::random_device rd;
    uint64_t r = (uint64_t{rd()} << 32) ^ rd();
    prefix_ = fmt::format("{:012x}-", r & 0xffffffffffffull);
  }
  std::string Next() { return StrCat(prefix_, counter_.fetch_add(1, std::memory_order_relaxed)); }

 private:
  std::string prefix_;
  std::atomic<uint64_t> counter_{0};
};

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr int64_t kHousekeepingPeriodMs = 1000;

}  // namespace

uint32_t PartitionFor(std::string_view key, std::string_view id, uint32_t partitions) {
  return static_cast<uint32_t>(Fnv1a(key.empty() ? id : key) % partitions);
}


namespace {

// Completion of one Publish call across the partitions it waits on. Held by shared_ptr: each
// partition's acknowledgement callback, on whichever sync thread, holds a reference.
struct PublishState {
  explicit PublishState(size_t n, PublishDone d) : acks(n), done(std::move(d)) {}

  // Records an error; the first one is what the caller gets.
  void Fail(absl::Status s) {
    absl::MutexLock lock(&mu);
    if (status.ok()) status = std::move(s);
  }

  // Releases one reference of `pending`; the last one calls `done`.
  void Complete(absl::Status s) {
    if (!s.ok()) Fail(std::move(s));
    if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      absl::Status final_status;
      {
        absl::MutexLock lock(&mu);
        final_status = status;
      }
      std::move(done)(final_status, final_status.ok() ? std::move(acks) : std::vector<AckOut>{});
    }
  }

  std::atomic<int> pending{1};  // one for the caller until all waits are registered
  absl::Mutex mu;
  absl::Status status ABSL_GUARDED_BY(mu);
  std::vector<AckOut> acks;
  PublishDone done;
};

}  // namespace

class Broker::Impl {
 public:
  Impl(BrokerOptions options, FileSystem& fs, prometheus::Registry& registry)
      : options_(std::move(options)),
        dir_(options_.data_dir),
        fs_(fs),
        syncer_(options_.sync_threads),
        probe_(registry) {
    options_.compaction.keep_hot_us = options_.dedupe_window_ms * 1000;
    options_.log.on_sync = [this](double seconds, uint64_t records) {
      probe_.ObserveSync(seconds, records);
    };
  }

  ~Impl() {
    {
      absl::MutexLock lock(&housekeeping_mu_);
      stopping_ = true;
    }
    if (housekeeping_.joinable()) housekeeping_.join();
    cancel_compaction_ = true;
    {
      absl::MutexLock lock(&maintenance_mu_);
      maintenance_stopping_ = true;
    }
    if (maintenance_.joinable()) maintenance_.join();
    SyncAll();
  }

  absl::Status Open() {
    // Before anything is read or written: a second process on the same directory would
    // overwrite the first one's files and catalog.
    ASSIGN_OR_RETURN(lock_, storage::DataDirLock::Acquire(options_.data_dir));
    RETURN_IF_ERROR(fs_.CreateDirs(dir_.LogRoot()));
    ASSIGN_OR_RETURN(catalog_, storage::Catalog::Open(dir_.CatalogPath()));
    RETURN_IF_ERROR(FinishDeletes());
    RETURN_IF_ERROR(fs_.RemoveAll(dir_.TrashRoot()));
    ASSIGN_OR_RETURN(std::vector<storage::TopicMeta> metas, catalog_->ListTopics());
    absl::flat_hash_map<std::string, bool> known;
    for (const auto& meta : metas) {
      ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, OpenTopic(meta));
      known[meta.name] = true;
      absl::MutexLock lock(&topics_mu_);
      topics_[meta.name] = std::move(topic);
    }
    // Directories without a catalog entry are left over from a create or delete cut short.
    ASSIGN_OR_RETURN(std::vector<std::string> dirs, fs_.ListDir(dir_.LogRoot()));
    for (const std::string& dir : dirs) {
      if (!known.contains(dir)) RETURN_IF_ERROR(fs_.RemoveAll(dir_.TopicLogDir(dir)));
    }
    RETURN_IF_ERROR(fs_.CreateDirs(dir_.ColdRoot()));
    ASSIGN_OR_RETURN(std::vector<std::string> cold_dirs, fs_.ListDir(dir_.ColdRoot()));
    for (const std::string& dir : cold_dirs) {
      if (!known.contains(dir)) RETURN_IF_ERROR(fs_.RemoveAll(dir_.TopicColdDir(dir)));
    }
    housekeeping_ = std::thread([this] { Housekeeping(); });
    maintenance_ = std::thread([this] { Maintenance(); });
    return absl::OkStatus();
  }

  void Publish(absl::Span<const EventIn> events, PublishDone done);
  absl::StatusOr<TopicInfo> CreateTopic(std::string_view name, uint32_t partitions,
                                        TopicConfig config);
  absl::StatusOr<TopicInfo> GetTopic(std::string_view name);
  std::vector<TopicInfo> ListTopics();
  absl::Status DeleteTopic(std::string_view name);
  absl::Status Read(std::string_view topic, uint32_t partition, uint64_t from, size_t max_records,
                    size_t max_bytes, std::vector<log::Record>* out);
  absl::Status Scan(std::string_view topic, uint32_t partition, uint64_t from, size_t max_records,
                    size_t max_bytes, absl::FunctionRef<void(const log::DecodedRecord&)> visit);
  absl::StatusOr<TopicInfo> SetRetention(std::string_view name, TopicConfig config);
  absl::StatusOr<TopicInfo> AddPartitions(std::string_view name, uint32_t partitions);
  void FlushTopic(std::string_view name,
                  absl::AnyInvocable<void(absl::StatusOr<TopicInfo>) &&> done) {
    auto topic = Find(name);
    if (!topic.ok()) {
      std::move(done)(topic.status());
      return;
    }
    absl::MutexLock lock(&maintenance_mu_);
    flushes_.push_back(Flush{std::move(*topic), std::move(done)});
  }

  void WhenReadable(std::string_view name, uint32_t partition, uint64_t offset,
                    std::weak_ptr<const void> owner, absl::AnyInvocable<void() &&> fn) {
    auto topic = Find(name);
    if (!topic.ok() || !CheckPartition(name, (*topic)->count(), partition).ok()) {
      std::move(fn)();  // the next read says why
      return;
    }
    (*topic)->parts[partition]->WhenReadable(offset, std::move(owner), std::move(fn));
  }
  std::optional<int64_t> TopicCreatedAt(std::string_view name) {
    auto topic = Find(name);
    if (!topic.ok()) return std::nullopt;
    return (*topic)->created_at_us;
  }
  absl::StatusOr<uint64_t> ResolveStart(std::string_view topic, uint32_t partition,
                                        const StartSpec& start, std::optional<uint64_t> committed);
  GroupCoordinator& groups() { return groups_; }
  absl::Status CommitOffsets(std::string_view group, std::string_view topic,
                             const std::vector<std::pair<uint32_t, uint64_t>>& offsets,
                             uint64_t generation, std::string_view consumer_id);
  absl::StatusOr<std::map<uint32_t, uint64_t>> CommittedOffsets(std::string_view group,
                                                                std::string_view topic) {
    RETURN_IF_ERROR(ValidateName("group", group));
    ASSIGN_OR_RETURN(std::shared_ptr<Topic> t, Find(topic));
    return catalog_->GetOffsets(group, topic);
  }
  absl::StatusOr<GroupDescription> DescribeGroup(std::string_view group, std::string_view topic);
  absl::StatusOr<std::vector<GroupSummary>> ListGroups(std::string_view topic);
  absl::StatusOr<std::vector<std::pair<uint32_t, uint64_t>>> ResetOffsets(
      std::string_view group, std::string_view topic, const StartSpec& to,
      const std::vector<uint32_t>& partitions);
  absl::Status DeleteGroup(std::string_view group, std::string_view topic);
  absl::Status ValidateGroup(std::string_view group, std::string_view topic);
  void RefreshGroupMetrics();
  void RefreshMetrics() {
    probe_.RefreshPartitions(AllTopics());
    RefreshGroupMetrics();
  }

  void SyncAll() {
    for (const auto& topic : AllTopics()) {
      for (uint32_t p = 0; p < topic->count(); ++p) topic->parts[p]->Sync().IgnoreError();
    }
  }

 private:
  // A delete whose files moved into the trash but whose catalog entry stayed (a crash between
  // the two) is completed: the move decided it.
  absl::Status FinishDeletes();

  storage::RetentionPolicy RetentionOf(const Topic& topic) const {
    storage::RetentionPolicy p;
    const int64_t ms = topic.retention_ms.load();
    const int64_t bytes = topic.retention_bytes.load();
    // The topic's own setting, else (0) the server's default; -1 and 0 in the policy: none.
    const int64_t eff_ms = ms != storage::kRetentionDefault ? ms : options_.retention_ms;
    const int64_t eff_bytes =
        bytes != storage::kRetentionDefault ? bytes : options_.retention_bytes;
    p.max_age_us = eff_ms > 0 ? eff_ms * 1000 : 0;
    p.max_bytes = eff_bytes > 0 ? static_cast<uint64_t>(eff_bytes) : 0;
    return p;
  }
  void Maintenance();
  // One pass of compaction and retention over `topic`; `flush` compacts everything now.
  absl::Status MaintainTopic(Topic& topic, bool flush);

  absl::StatusOr<std::shared_ptr<Topic>> OpenTopic(const storage::TopicMeta& meta);
  absl::StatusOr<std::unique_ptr<storage::Partition>> OpenPartition(const Topic& topic,
                                                                    uint32_t p);
  // The open topic `name`: INVALID_ARGUMENT for a bad name, NOT_FOUND for a missing topic.
  absl::StatusOr<std::shared_ptr<Topic>> Find(std::string_view name);
  absl::StatusOr<std::shared_ptr<Topic>> FindOrCreate(std::string_view name);
  // INVALID_ARGUMENT naming the first of `indices` whose key or data is not of the topic's
  // declared format.
  absl::Status CheckFormats(const Topic& topic, absl::Span<const EventIn> events,
                            const std::vector<uint32_t>& indices);
  absl::Status AppendToTopic(Topic& topic, absl::Span<const EventIn> events,
                             const std::vector<uint32_t>& indices, PublishState& state,
                             std::vector<std::pair<uint32_t, uint64_t>>* waits);
  TopicInfo Describe(const Topic& topic) const;
  std::vector<std::shared_ptr<Topic>> AllTopics() {
    absl::MutexLock lock(&topics_mu_);
    std::vector<std::shared_ptr<Topic>> out;
    for (const auto& [name, topic] : topics_) out.push_back(topic);
    return out;
  }
  void Housekeeping();

  BrokerOptions options_;
  const storage::DataDir dir_;
  FileSystem& fs_;
  // Released last, once everything else of the data directory is closed.
  std::unique_ptr<storage::DataDirLock> lock_;
  log::Syncer syncer_;
  std::unique_ptr<storage::Catalog> catalog_;
  IdGenerator ids_;

  // Declared before the topics: their logs report syncs to it until they close.
  Probe probe_;

  // Serializes topic creation and deletion (catalog, directories, map).
  absl::Mutex admin_mu_;
  uint64_t trash_seq_ ABSL_GUARDED_BY(admin_mu_) = 0;
  absl::Mutex topics_mu_ ABSL_ACQUIRED_AFTER(admin_mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Topic>> topics_ ABSL_GUARDED_BY(topics_mu_);

  absl::Mutex housekeeping_mu_;
  bool stopping_ ABSL_GUARDED_BY(housekeeping_mu_) = false;
  std::thread housekeeping_;


  GroupCoordinator groups_;

  // The maintenance thread: compaction, retention and flush requests.
  struct Flush {
    std::shared_ptr<Topic> topic;
    absl::AnyInvocable<void(absl::StatusOr<TopicInfo>) &&> done;
  };
  absl::Mutex maintenance_mu_;
  std::deque<Flush> flushes_ ABSL_GUARDED_BY(maintenance_mu_);
  bool maintenance_stopping_ ABSL_GUARDED_BY(maintenance_mu_) = false;
  std::atomic<bool> cancel_compaction_{false};
  std::thread maintenance_;
};

absl::Status Broker::Impl::FinishDeletes() {
  if (!fs_.Exists(dir_.TrashRoot())) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> entries, fs_.ListDir(dir_.TrashRoot()));
  for (const std::string& entry : entries) {
    const std::string path = dir_.TrashEntry(entry);
    // Without its log directory, the delete never moved anything.
    if (!fs_.Exists(storage::DataDir::TrashedLog(path))) continue;
    auto name = fs_.ReadFile(storage::DataDir::TrashedName(path));
    if (!name.ok() || !ValidateTopicName(*name).ok()) continue;
    if (fs_.Exists(dir_.TopicLogDir(*name))) continue;  // moved back, or a newer topic
    absl::Status s = catalog_->DeleteTopic(*name);
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) return s;
    if (s.ok()) spdlog::info("topic {}: finished its delete cut short", *name);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Topic>> Broker::Impl::OpenTopic(const storage::TopicMeta& meta) {
  auto topic = std::make_shared<Topic>(
      meta.name, meta.partitions, std::max(meta.partitions, options_.max_partitions),
      meta.created_at_us, options_.dedupe_window_ms * 1000,
      static_cast<size_t>(options_.dedupe_max_ids));
  topic->retention_ms = meta.retention_ms;
  topic->retention_bytes = meta.retention_bytes;
  topic->key_format = meta.key_format;
  topic->data_format = meta.data_format;
  for (uint32_t p = 0; p < meta.partitions; ++p) {
    ASSIGN_OR_RETURN(topic->parts[p], OpenPartition(*topic, p));
  }
  // Rebuild the dedupe state from the logs: every id stored within the window, oldest first.
  struct Seen {
    int64_t ingest_us;
    uint32_t partition;
    uint64_t offset;
    IdFingerprint id;
  };
  std::vector<Seen> seen;
  const int64_t now = NowMicros();
  const int64_t since = now - options_.dedupe_window_ms * 1000;
  for (uint32_t p = 0; p < meta.partitions; ++p) {
    RETURN_IF_ERROR(topic->parts[p]->ScanRecent(
        since, options_.dedupe_max_ids, [&](const log::DecodedRecord& r) {
          if (!r.id.empty()) {
            seen.push_back(Seen{r.ingest_time_us, p, r.offset, IdFingerprint::Of(r.id)});
          }
        }));
  }
  std::stable_sort(seen.begin(), seen.end(), [](const Seen& a, const Seen& b) {
    return a.ingest_us < b.ingest_us;
  });
  {
    absl::MutexLock lock(&topic->mu);
    for (const Seen& s : seen) topic->dedupe.Insert(s.id, {s.partition, s.offset}, s.ingest_us);
    topic->dedupe.Expire(now);
  }
  probe_.AddTopic(*topic);
  return topic;
}

absl::StatusOr<std::unique_ptr<storage::Partition>> Broker::Impl::OpenPartition(
    const Topic& topic, uint32_t p) {
  const std::string& name = topic.name;
  // Parquet files carry the topic's formats as logical types.
  parquet::WriterOptions parquet_options = options_.parquet;
  parquet_options.key_format = topic.key_format;
  parquet_options.data_format = topic.data_format;
  auto part = storage::Partition::Open(fs_, dir_.PartitionLogDir(name, p),
                                       dir_.PartitionColdDir(name, p), options_.log, syncer_,
                                       parquet_options);
  if (!part.ok()) {
    return absl::Status(part.status().code(), StrCat("topic ", name, " partition ", p, ": ",
                                                     ToStd(part.status().message())));
  }
  return part;
}

absl::Status CheckPartition(std::string_view topic, uint32_t partition_count,
                            uint32_t partition) {
  if (partition < partition_count) return absl::OkStatus();
  return absl::InvalidArgumentError(StrCat("topic \"", topic, "\" has ", partition_count,
                                           " partitions; ", partition, " is out of range"));
}

absl::Status ValidateTopicConfig(const TopicConfig& config) {
  if (config.retention_ms < -1 || config.retention_bytes < -1 ||
      config.retention_ms > INT64_MAX / 1000) {
    return absl::InvalidArgumentError(
        "retention_ms and retention_bytes must be positive, 0 (the server's default) or -1 "
        "(unlimited)");
  }
  return absl::OkStatus();
}

absl::StatusOr<TopicInfo> Broker::Impl::CreateTopic(std::string_view name, uint32_t partitions,
                                                    TopicConfig config) {
  RETURN_IF_ERROR(ValidateNewName("topic", name));
  RETURN_IF_ERROR(ValidateTopicConfig(config));
  if (partitions == 0) partitions = options_.default_partitions;
  if (partitions > options_.max_partitions) {
    return absl::InvalidArgumentError(StrCat("partitions is ", partitions, "; the limit is ",
                                             options_.max_partitions));
  }
  absl::MutexLock admin(&admin_mu_);
  {
    absl::MutexLock lock(&topics_mu_);
    if (topics_.contains(Absl(name))) {
      return absl::AlreadyExistsError(StrCat("topic \"", name, "\" already exists"));
    }
  }
  storage::TopicMeta meta{std::string(name), partitions, NowMicros(), config.retention_ms,
                          config.retention_bytes, config.key_format, config.data_format};
  // Directories first: a crash before the catalog entry leaves an orphan that the next start
  // removes; the catalog entry then makes the topic exist.
  const std::string dir = dir_.TopicLogDir(meta.name);
  const std::string cold_dir = dir_.TopicColdDir(meta.name);
  RETURN_IF_ERROR(fs_.RemoveAll(dir));
  RETURN_IF_ERROR(fs_.RemoveAll(cold_dir));
  auto topic = OpenTopic(meta);
  if (!topic.ok()) {
    fs_.RemoveAll(dir).IgnoreError();
    fs_.RemoveAll(cold_dir).IgnoreError();
    return topic.status();
  }
  absl::Status s = fs_.SyncDir(dir_.LogRoot());
  if (s.ok()) s = fs_.SyncDir(dir_.ColdRoot());
  if (s.ok()) s = catalog_->CreateTopic(meta);
  if (!s.ok()) {
    topic->reset();
    fs_.RemoveAll(dir).IgnoreError();
    fs_.RemoveAll(cold_dir).IgnoreError();
    return s;
  }
  TopicInfo info = Describe(**topic);
  absl::MutexLock lock(&topics_mu_);
  topics_[meta.name] = std::move(*topic);
  return info;
}

absl::StatusOr<std::shared_ptr<Topic>> Broker::Impl::FindOrCreate(std::string_view name) {
  {
    absl::MutexLock lock(&topics_mu_);
    auto it = topics_.find(Absl(name));
    if (it != topics_.end()) return it->second;
  }
  if (!options_.auto_create_topics) {
    return absl::NotFoundError(
        StrCat("topic \"", name, "\" does not exist and auto-create is off"));
  }
  auto created = CreateTopic(name, 0, TopicConfig{});
  if (!created.ok() && created.status().code() != absl::StatusCode::kAlreadyExists) {
    return created.status();
  }
  absl::MutexLock lock(&topics_mu_);
  auto it = topics_.find(Absl(name));
  if (it == topics_.end()) return absl::NotFoundError(StrCat("topic \"", name, "\" was deleted"));
  return it->second;
}

absl::StatusOr<std::shared_ptr<Topic>> Broker::Impl::Find(std::string_view name) {
  RETURN_IF_ERROR(ValidateTopicName(name));
  absl::MutexLock lock(&topics_mu_);
  auto it = topics_.find(Absl(name));
  if (it == topics_.end()) {
    return absl::NotFoundError(StrCat("topic \"", name, "\" does not exist"));
  }
  return it->second;
}

absl::StatusOr<TopicInfo> Broker::Impl::GetTopic(std::string_view name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  return Describe(*topic);
}

std::vector<TopicInfo> Broker::Impl::ListTopics() {
  std::vector<TopicInfo> out;
  for (const auto& topic : AllTopics()) out.push_back(Describe(*topic));
  std::sort(out.begin(), out.end(),
            [](const TopicInfo& a, const TopicInfo& b) { return a.name < b.name; });
  return out;
}

TopicInfo Broker::Impl::Describe(const Topic& topic) const {
  TopicInfo info;
  info.name = topic.name;
  info.partition_count = topic.count();
  info.created_at_us = topic.created_at_us;
  info.config.retention_ms = topic.retention_ms.load();
  info.config.retention_bytes = topic.retention_bytes.load();
  info.config.key_format = topic.key_format;
  info.config.data_format = topic.data_format;
  const storage::RetentionPolicy policy = RetentionOf(topic);
  info.retention_ms = policy.max_age_us > 0 ? policy.max_age_us / 1000 : -1;
  info.retention_bytes = policy.max_bytes > 0 ? static_cast<int64_t>(policy.max_bytes) : -1;
  for (uint32_t p = 0; p < topic.count(); ++p) {
    PartitionInfo pi;
    pi.partition = p;
    pi.stats = topic.parts[p]->Stats();
    info.partitions.push_back(pi);
  }
  return info;
}

absl::Status Broker::Impl::DeleteTopic(std::string_view name) {
  RETURN_IF_ERROR(ValidateTopicName(name));
  absl::MutexLock admin(&admin_mu_);
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  // All or nothing: the topic's directories move into a trash entry of a short, unique name
  // (any topic name fits under it), and only then does the catalog entry go. Should a step
  // fail, the earlier ones are undone and the topic stays as it was (if the files cannot be
  // moved back, the topic goes at once, as the next start would decide). The entry's `topic` file
  // lets the next start finish a delete cut short after the first move (see Open).
  const std::string dir = dir_.TopicLogDir(name);
  const std::string cold_dir = dir_.TopicColdDir(name);
  const std::string trash = dir_.TrashEntry(StrCat(NowMicros(), "-", ++trash_seq_));
  const std::string trash_log = storage::DataDir::TrashedLog(trash);
  const std::string trash_cold = storage::DataDir::TrashedCold(trash);
  auto cleanup = [&](absl::Status s) {
    fs_.RemoveAll(trash).IgnoreError();
    return absl::Status(s.code(), StrCat("deleting topic \"", name, "\" (nothing was deleted): ",
                                         ToStd(s.message())));
  };
  if (absl::Status s = fs_.CreateDirs(trash); !s.ok()) return cleanup(s);
  if (absl::Status s = fs_.WriteFileAtomic(storage::DataDir::TrashedName(trash), name); !s.ok()) return cleanup(s);
  // Running compaction finishes its file first and none starts after this. Before topic->mu:
  // a compaction can take seconds, and publishes need not wait for it. They wait for the moves
  // below only; one that got in first is stored before the delete and goes with the topic.
  for (uint32_t p = 0; p < topic->count(); ++p) topic->parts[p]->Close();
  // A failed step; the topic stays when its files are moved back (`undone`).
  absl::Status failed;
  bool undone = false;
  {
    absl::MutexLock lock(&topic->mu);
    failed = fs_.Rename(dir, trash_log);
    const bool log_moved = failed.ok();
    bool cold_moved = false;
    if (failed.ok() && fs_.Exists(cold_dir)) {
      failed = fs_.Rename(cold_dir, trash_cold);
      cold_moved = failed.ok();
    }
    if (failed.ok()) failed = catalog_->DeleteTopic(name);
    if (!failed.ok()) {
      absl::Status back;
      if (cold_moved) back = fs_.Rename(trash_cold, cold_dir);
      if (log_moved && back.ok()) back = fs_.Rename(trash_log, dir);
      undone = back.ok();
      if (!undone) {
        // Short of a broken disk, a move just made can be reversed. If not, the hot tier's
        // files are in the trash entry and the next start completes the delete: the topic
        // goes now, so that no publish is acknowledged into files about to be removed.
        spdlog::error("topic {}: cannot move its files back from {}: {}", name, trash,
                      ToStd(back.message()));
        failed = absl::Status(failed.code(),
                              StrCat("deleting topic \"", name, "\": ", ToStd(failed.message()),
                                     "; its files cannot be moved back, so the topic is deleted "
                                     "now and its files are removed at the next start"));
      }
    }
    if (!undone) {
      topic->deleted = true;
      probe_.RemoveTopic(*topic);
    }
  }
  if (undone) {
    for (uint32_t p = 0; p < topic->count(); ++p) topic->parts[p]->Resume();
    return cleanup(failed);
  }
  {
    absl::MutexLock lock(&topics_mu_);
    topics_.erase(Absl(name));
  }
  // Subscribers waiting for records read again and find the topic gone.
  for (uint32_t p = 0; p < topic->count(); ++p) topic->parts[p]->WakeReaders();
  groups_.RevokeTopic(std::string(name));
  // The catalog dropped the topic's group offsets with its row (a trigger).
  probe_.RemoveTopicLag(name);
  if (!failed.ok()) return failed;
  // The topic is gone; files left in the trash (a publish in flight may hold some open) are
  // removed at the next start.
  if (absl::Status s = fs_.RemoveAll(trash); !s.ok()) {
    spdlog::warn("topic {} deleted; its files stay in {} until the next start: {}", name, trash,
                 ToStd(s.message()));
  }
  return absl::OkStatus();
}

absl::Status Broker::Impl::Read(std::string_view name, uint32_t partition, uint64_t from,
                                size_t max_records, size_t max_bytes,
                                std::vector<log::Record>* out) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  RETURN_IF_ERROR(CheckPartition(name, topic->count(), partition));
  return topic->parts[partition]->Read(from, max_records, max_bytes, out);
}

absl::Status Broker::Impl::Scan(std::string_view name, uint32_t partition, uint64_t from,
                                size_t max_records, size_t max_bytes,
                                absl::FunctionRef<void(const log::DecodedRecord&)> visit) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  RETURN_IF_ERROR(CheckPartition(name, topic->count(), partition));
  return topic->parts[partition]->Scan(from, max_records, max_bytes, visit);
}

void Broker::Impl::Publish(absl::Span<const EventIn> events, PublishDone done) {
  if (events.empty()) {
    std::move(done)(absl::InvalidArgumentError("the batch has no events"), {});
    return;
  }
  if (events.size() > options_.max_batch_events) {
    std::move(done)(absl::InvalidArgumentError(StrCat("the batch has ", events.size(),
                                                      " events; the limit is ",
                                                      options_.max_batch_events)),
                    {});
    return;
  }
  // Validate everything before storing anything.
  uint64_t batch_bytes = 0;
  std::string_view checked_topic;
  bool single_topic = true;
  for (size_t i = 0; i < events.size(); ++i) {
    const EventIn& e = events[i];
    if (i == 0 || e.topic != checked_topic) {
      absl::Status s = ValidateTopicName(e.topic);
      // A name no new topic may have is refused here unless its topic exists, before any
      // topic of the batch is created.
      if (s.ok() && !ValidateNewName("topic", e.topic).ok() && !Find(e.topic).ok()) {
        s = ValidateNewName("topic", e.topic);
      }
      if (!s.ok()) {
        std::move(done)(absl::InvalidArgumentError(StrCat("event ", i, ": ", ToStd(s.message()))),
                        {});
        return;
      }
      if (i > 0) single_topic = false;
      checked_topic = e.topic;
    }
    uint64_t size = e.topic.size() + e.id.size() + e.key.size() + e.data.size();
    for (const auto& [k, v] : e.headers) size += k.size() + v.size();
    if (size > options_.max_event_bytes) {
      std::move(done)(absl::InvalidArgumentError(StrCat("event ", i, " is ", size,
                                                        " bytes; the limit is ",
                                                        options_.max_event_bytes)),
                      {});
      return;
    }
    batch_bytes += size;
  }
  if (batch_bytes > options_.max_batch_bytes) {
    std::move(done)(absl::InvalidArgumentError(StrCat("the batch is ", batch_bytes,
                                                      " bytes; the limit is ",
                                                      options_.max_batch_bytes)),
                    {});
    return;
  }

  // Group by topic, keeping request order within each group.
  std::vector<std::pair<std::shared_ptr<Topic>, std::vector<uint32_t>>> groups;
  if (single_topic) {
    auto topic = FindOrCreate(events[0].topic);
    if (!topic.ok()) {
      std::move(done)(topic.status(), {});
      return;
    }
    std::vector<uint32_t> all(events.size());
    for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    groups.emplace_back(std::move(*topic), std::move(all));
  } else {
    absl::flat_hash_map<absl::string_view, size_t> group_of;
    for (uint32_t i = 0; i < events.size(); ++i) {
      auto [it, inserted] = group_of.try_emplace(Absl(events[i].topic), groups.size());
      if (inserted) {
        auto topic = FindOrCreate(events[i].topic);
        if (!topic.ok()) {
          std::move(done)(topic.status(), {});
          return;
        }
        groups.emplace_back(std::move(*topic), std::vector<uint32_t>{});
      }
      groups[it->second].second.push_back(i);
    }
  }

  // Keys and data against the formats their topics declare, before anything of the batch is
  // stored.
  for (const auto& [topic, indices] : groups) {
    absl::Status s = CheckFormats(*topic, events, indices);
    if (!s.ok()) {
      std::move(done)(std::move(s), {});
      return;
    }
  }

  auto state = std::make_shared<PublishState>(events.size(), std::move(done));
  std::vector<std::pair<uint32_t, uint64_t>> waits;  // partition, end offset
  for (auto& [topic, indices] : groups) {
    waits.clear();
    absl::Status s = AppendToTopic(*topic, events, indices, *state, &waits);
    if (!s.ok()) {
      if (&topic != &groups.front().first) {
        s = absl::Status(s.code(), StrCat(ToStd(s.message()),
                                          "; the batch's events of earlier topics were stored"));
      }
      state->Fail(std::move(s));
      break;
    }
    for (const auto& [partition, end] : waits) {
      state->pending.fetch_add(1, std::memory_order_relaxed);
      topic->parts[partition]->WhenAcked(end, [state](absl::Status st) {
        state->Complete(std::move(st));
      });
    }
  }
  state->Complete(absl::OkStatus());
}

absl::Status Broker::Impl::CheckFormats(const Topic& topic, absl::Span<const EventIn> events,
                                        const std::vector<uint32_t>& indices) {
  if (topic.key_format == DataFormat::kBytes && topic.data_format == DataFormat::kBytes) {
    return absl::OkStatus();
  }
  for (uint32_t i : indices) {
    // An empty key is no key (stored as null), whatever the format.
    absl::Status s = events[i].key.empty() ? absl::OkStatus()
                                           : CheckDataFormat(topic.key_format, events[i].key);
    std::string_view what = "key";
    if (s.ok()) {
      s = CheckDataFormat(topic.data_format, events[i].data);
      what = "data";
    }
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          StrCat("event ", i, ": ", what, " is ", ToStd(s.message()), " (topic \"", topic.name,
                 "\" has ", what, " format ",
                 DataFormatName(what == "key" ? topic.key_format : topic.data_format), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status Broker::Impl::AppendToTopic(Topic& topic, absl::Span<const EventIn> events,
                                         const std::vector<uint32_t>& indices,
                                         PublishState& state,
                                         std::vector<std::pair<uint32_t, uint64_t>>* waits) {
  // Sized outside the lock; a grow in between (rare) resizes them under it.
  uint32_t n = topic.count();
  std::vector<std::vector<log::RecordView>> views(n);
  std::vector<std::vector<uint32_t>> owners(n);  // event index of each view
  std::vector<IdFingerprint> fingerprints(events.size());
  std::vector<uint64_t> wait_end(n, 0);
  std::vector<uint64_t> next(n);
  uint64_t dups = 0;

  absl::MutexLock lock(&topic.mu);
  if (topic.deleted) return absl::NotFoundError(StrCat("topic \"", topic.name, "\" was deleted"));
  // The count that routes this batch is read under topic.mu, which a grow holds to raise it:
  // routing and appends use one count, and a key's events keep their order across a grow.
  if (const uint32_t now_n = topic.count(); now_n != n) {
    n = now_n;
    views.resize(n);
    owners.resize(n);
    wait_end.resize(n, 0);
    next.resize(n);
  }
  // Appends to the topic's partitions happen only under topic.mu, so the offsets each record
  // will get are known now, and dedupe needs one probe per event: claim the id at its future
  // location, or find where it already is (stored earlier or earlier in this batch).
  for (uint32_t p = 0; p < n; ++p) next[p] = topic.parts[p]->end_offset();
  const int64_t now = NowMicros();
  topic.dedupe.Expire(now);
  for (uint32_t i : indices) {
    std::string_view id = events[i].id;
    if (id.empty()) {
      state.acks[i].assigned_id = ids_.Next();
      id = state.acks[i].assigned_id;
    }
    fingerprints[i] = IdFingerprint::Of(id);
  }
  // The dedupe lookups are cache misses: keep a few in flight ahead of the one being decided.
  constexpr size_t kPrefetchDistance = 8;
  for (size_t j = 0; j < std::min(kPrefetchDistance, indices.size()); ++j) {
    topic.dedupe.Prefetch(fingerprints[indices[j]]);
  }
  for (size_t j = 0; j < indices.size(); ++j) {
    if (j + kPrefetchDistance < indices.size()) {
      topic.dedupe.Prefetch(fingerprints[indices[j + kPrefetchDistance]]);
    }
    const uint32_t i = indices[j];
    const EventIn& e = events[i];
    AckOut& ack = state.acks[i];
    // Every event has an id, its own or one the server assigned (which the producer learns
    // from the Ack and may publish again): all are deduped alike.
    const bool assigned = !ack.assigned_id.empty();
    std::string_view id = assigned ? std::string_view(ack.assigned_id) : e.id;
    const uint32_t p = PartitionFor(e.key, id, n);
    std::optional<DedupeIndex::Location> known =
        topic.dedupe.FindOrInsert(fingerprints[i], {p, next[p]}, now);
    if (known) {
      ack.partition = known->partition;
      ack.offset = known->offset;
      ack.duplicate = true;
      wait_end[known->partition] = std::max(wait_end[known->partition], known->offset + 1);
      ++dups;
      continue;
    }
    const uint32_t flags = assigned ? log::kFlagServerAssignedId : 0;
    ack.partition = p;
    ack.offset = next[p]++;
    log::RecordView v;
    v.id = id;
    v.key = e.key;
    v.data = e.data;
    v.ingest_time_us = now;
    v.timestamp_us = e.timestamp_us.value_or(now);
    v.flags = flags;
    v.headers = e.headers;
    views[p].push_back(v);
    owners[p].push_back(i);
  }

  absl::Status status;
  uint64_t stored = 0;
  uint64_t stored_bytes = 0;
  for (uint32_t p = 0; p < n; ++p) {
    if (views[p].empty()) continue;
    absl::StatusOr<uint64_t> first =
        status.ok() ? topic.parts[p]->Append(views[p]) : absl::StatusOr<uint64_t>(status);
    if (first.ok() && *first != state.acks[owners[p][0]].offset) {
      first = absl::InternalError(StrCat("topic ", topic.name, " partition ", p, ": offset ",
                                         *first, " where ", state.acks[owners[p][0]].offset,
                                         " was expected"));
    }
    if (!first.ok()) {
      // Not stored: forget the ids claimed for this partition. Partitions appended before keep
      // their records and ids, so a retry with the same ids is answered as duplicates.
      for (size_t k = 0; k < views[p].size(); ++k) topic.dedupe.Erase(fingerprints[owners[p][k]]);
      if (status.ok()) {
        status = absl::Status(first.status().code(),
                              StrCat("topic ", topic.name, " partition ", p, ": ",
                                     ToStd(first.status().message())));
      }
      continue;
    }
    for (const log::RecordView& v : views[p]) {
      stored_bytes += v.id.size() + v.key.size() + v.data.size();
    }
    stored += views[p].size();
    wait_end[p] = std::max(wait_end[p], next[p]);
  }
  topic.events_in->Increment(static_cast<double>(stored));
  topic.bytes_in->Increment(static_cast<double>(stored_bytes));
  if (!status.ok()) {
    if (stored == 0) return status;
    return absl::Status(status.code(),
                        StrCat(ToStd(status.message()), "; ", stored,
                               " events of the batch were stored before this (publishing them "
                               "again with the same ids answers duplicates)"));
  }
  topic.duplicates->Increment(static_cast<double>(dups));
  for (uint32_t p = 0; p < n; ++p) {
    if (wait_end[p] > 0) waits->emplace_back(p, wait_end[p]);
  }
  return absl::OkStatus();
}

absl::StatusOr<TopicInfo> Broker::Impl::AddPartitions(std::string_view name,
                                                      uint32_t partitions) {
  absl::MutexLock admin(&admin_mu_);
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  const uint32_t current = topic->count();
  if (partitions < current) {
    return absl::InvalidArgumentError(StrCat("topic \"", name, "\" has ", current,
                                             " partitions; partitions can only be added, not "
                                             "removed (asked for ", partitions, ")"));
  }
  const uint32_t limit = std::min<uint32_t>(options_.max_partitions, topic->parts.size());
  if (partitions > limit) {
    return absl::InvalidArgumentError(StrCat("partitions is ", partitions, "; the limit is ",
                                             limit));
  }
  if (partitions == current) return Describe(*topic);
  // New partitions' directories first (any leftover of a grow cut short goes), then the catalog
  // entry makes them exist; until then no record is routed to them.
  const std::string dir = dir_.TopicLogDir(name);
  const std::string cold_dir = dir_.TopicColdDir(name);
  std::vector<std::unique_ptr<storage::Partition>> added;
  auto undo = [&](absl::Status s) {
    added.clear();
    for (uint32_t p = current; p < partitions; ++p) {
      fs_.RemoveAll(dir_.PartitionLogDir(name, p)).IgnoreError();
      fs_.RemoveAll(dir_.PartitionColdDir(name, p)).IgnoreError();
    }
    return s;
  };
  for (uint32_t p = current; p < partitions; ++p) {
    absl::Status clean = fs_.RemoveAll(dir_.PartitionLogDir(name, p));
    if (clean.ok()) clean = fs_.RemoveAll(dir_.PartitionColdDir(name, p));
    if (!clean.ok()) return undo(clean);
    auto part = OpenPartition(*topic, p);
    if (!part.ok()) return undo(part.status());
    added.push_back(std::move(*part));
  }
  absl::Status s = fs_.SyncDir(dir);
  if (s.ok() && fs_.Exists(cold_dir)) s = fs_.SyncDir(cold_dir);
  if (s.ok()) s = catalog_->SetPartitions(name, partitions);
  if (!s.ok()) return undo(s);
  {
    // Publishes route under topic->mu: each one sees either the old count or the new one.
    absl::MutexLock lock(&topic->mu);
    for (uint32_t p = current; p < partitions; ++p) {
      topic->parts[p] = std::move(added[p - current]);
      probe_.AddPartition(*topic, p);
    }
    topic->partitions.store(partitions, std::memory_order_release);
  }
  // Subscribers reading every partition wait on the old ones: they look again and find the new.
  for (uint32_t p = 0; p < current; ++p) topic->parts[p]->WakeReaders();
  groups_.GrowTopic(topic->name, partitions);
  spdlog::info("topic {}: {} partitions, was {}", name, partitions, current);
  return Describe(*topic);
}

absl::StatusOr<TopicInfo> Broker::Impl::SetRetention(std::string_view name, TopicConfig config) {
  RETURN_IF_ERROR(ValidateTopicConfig(config));
  absl::MutexLock admin(&admin_mu_);
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  RETURN_IF_ERROR(catalog_->SetRetention(name, config.retention_ms, config.retention_bytes));
  topic->retention_ms = config.retention_ms;
  topic->retention_bytes = config.retention_bytes;
  return Describe(*topic);
}

absl::StatusOr<uint64_t> Broker::Impl::ResolveStart(std::string_view name, uint32_t partition,
                                                    const StartSpec& start,
                                                    std::optional<uint64_t> committed) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  RETURN_IF_ERROR(CheckPartition(name, topic->count(), partition));
  storage::Partition& part = *topic->parts[partition];
  const storage::StorageStats s = part.Stats();
  switch (start.kind) {
    case StartSpec::Kind::kEarliest:
      return s.start_offset;
    case StartSpec::Kind::kLatest:
      return s.end_offset;
    case StartSpec::Kind::kCommitted:
      if (!committed) return s.start_offset;
      // Retention may have deleted past the committed offset: go on from what is left.
      return std::clamp(*committed, s.start_offset, s.end_offset);
    case StartSpec::Kind::kOffset:
      if (start.offset < s.start_offset) {
        return absl::OutOfRangeError(StrCat("offset ", start.offset, " of partition ", partition,
                                            " was deleted; the earliest is ", s.start_offset));
      }
      if (start.offset > s.end_offset) {
        return absl::OutOfRangeError(StrCat("offset ", start.offset, " is past the end ",
                                            s.end_offset, " of partition ", partition));
      }
      return start.offset;
    case StartSpec::Kind::kTime:
      return part.OffsetForTime(start.time_us);
  }
  return absl::InternalError("unknown start position");
}

absl::Status Broker::Impl::CommitOffsets(std::string_view group, std::string_view name,
                                         const std::vector<std::pair<uint32_t, uint64_t>>& offsets,
                                         uint64_t generation, std::string_view consumer_id) {
  RETURN_IF_ERROR(ValidateGroup(group, name));
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  if (offsets.empty()) return absl::InvalidArgumentError("no offsets to commit");
  if (generation > 0) {
    // Fenced commit: only the current owner of each partition, in the current generation.
    const GroupInfo live = groups_.Describe(std::string(group), std::string(name));
    if (live.generation != generation) {
      return absl::FailedPreconditionError(
          StrCat("group \"", group, "\" is at generation ", live.generation, ", not ",
                 generation, ": the commit is from before a rebalance"));
    }
    for (const auto& [p, offset] : offsets) {
      auto owner = live.owner.find(p);
      if (owner == live.owner.end() || owner->second != consumer_id) {
        return absl::FailedPreconditionError(StrCat("partition ", p, " is not assigned to \"",
                                                    consumer_id, "\" in generation ",
                                                    generation));
      }
    }
  }
  for (const auto& [p, offset] : offsets) {
    RETURN_IF_ERROR(CheckPartition(name, topic->count(), p));
    const uint64_t end = topic->parts[p]->end_offset();
    if (offset > end) {
      return absl::OutOfRangeError(StrCat("offset ", offset, " is past the end ", end,
                                          " of partition ", p));
    }
  }
  RETURN_IF_ERROR(catalog_->CommitOffsets(group, name, offsets));
  return absl::OkStatus();
}

absl::StatusOr<GroupDescription> Broker::Impl::DescribeGroup(std::string_view group,
                                                             std::string_view name) {
  RETURN_IF_ERROR(ValidateName("group", group));
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  ASSIGN_OR_RETURN(auto committed, catalog_->GetOffsets(group, name));
  GroupDescription d;
  d.group = std::string(group);
  d.topic = std::string(name);
  d.live = groups_.Describe(d.group, d.topic);
  if (d.live.members.empty() && committed.empty()) {
    return absl::NotFoundError(
        StrCat("group \"", group, "\" has no members and no committed offsets on topic \"",
               name, "\""));
  }
  for (uint32_t p = 0; p < topic->count(); ++p) {
    const storage::StorageStats s = topic->parts[p]->Stats();
    GroupPartitionInfo gp;
    gp.partition = p;
    gp.end_offset = s.end_offset;
    auto it = committed.find(p);
    if (it != committed.end()) gp.committed = it->second;
    const uint64_t from = std::clamp(gp.committed.value_or(s.start_offset), s.start_offset,
                                     s.end_offset);
    gp.lag = s.end_offset - from;
    auto owner = d.live.owner.find(p);
    if (owner != d.live.owner.end()) gp.owner = owner->second;
    d.partitions.push_back(std::move(gp));
  }
  return d;
}

absl::StatusOr<std::vector<GroupSummary>> Broker::Impl::ListGroups(std::string_view topic) {
  if (!topic.empty()) RETURN_IF_ERROR(Find(topic).status());
  ASSIGN_OR_RETURN(auto stored, catalog_->ListGroups());
  std::set<std::pair<std::string, std::string>> keys(stored.begin(), stored.end());
  for (const auto& [key, n] : groups_.Live()) keys.insert(key);
  std::vector<GroupSummary> out;
  for (const auto& [group, name] : keys) {
    if (!topic.empty() && name != topic) continue;
    auto d = DescribeGroup(group, name);
    if (!d.ok()) continue;  // its topic was deleted meanwhile
    GroupSummary sum{group, name, static_cast<uint32_t>(d->live.members.size()), 0};
    for (const auto& p : d->partitions) sum.lag += p.lag;
    out.push_back(std::move(sum));
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<uint32_t, uint64_t>>> Broker::Impl::ResetOffsets(
    std::string_view group, std::string_view name, const StartSpec& to,
    const std::vector<uint32_t>& partitions) {
  RETURN_IF_ERROR(ValidateGroup(group, name));
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, Find(name));
  if (to.kind == StartSpec::Kind::kCommitted) {
    return absl::InvalidArgumentError("reset needs earliest, latest, an offset or a timestamp");
  }
  std::vector<uint32_t> chosen = partitions;
  if (chosen.empty()) {
    for (uint32_t p = 0; p < topic->count(); ++p) chosen.push_back(p);
  }
  std::vector<std::pair<uint32_t, uint64_t>> offsets;
  for (uint32_t p : chosen) {
    ASSIGN_OR_RETURN(uint64_t offset, ResolveStart(name, p, to, std::nullopt));
    offsets.emplace_back(p, offset);
  }
  // Atomic with joins, as in DeleteGroup: a member's commits would mix with the reset.
  absl::Status committed;
  if (!groups_.IfNoMembers(std::string(group), std::string(name),
                           [&] { committed = catalog_->CommitOffsets(group, name, offsets); })) {
    return absl::FailedPreconditionError(
        StrCat("group \"", group, "\" has live members on topic \"", name,
               "\"; stop them before resetting its offsets"));
  }
  RETURN_IF_ERROR(committed);
  return offsets;
}

absl::Status Broker::Impl::ValidateGroup(std::string_view group, std::string_view topic) {
  RETURN_IF_ERROR(ValidateName("group", group));
  absl::Status fresh = ValidateNewName("group", group);
  if (fresh.ok() || groups_.HasMembers(std::string(group), std::string(topic))) {
    return absl::OkStatus();
  }
  // A group stored before new names were refused a leading '-' goes on working.
  auto committed = catalog_->GetOffsets(group, topic);
  if (committed.ok() && !committed->empty()) return absl::OkStatus();
  return fresh;
}

absl::Status Broker::Impl::DeleteGroup(std::string_view group, std::string_view name) {
  RETURN_IF_ERROR(ValidateName("group", group));
  RETURN_IF_ERROR(Find(name).status());
  // Atomic with joins: a member joining meanwhile could commit and then lose its offsets.
  absl::StatusOr<int> deleted = 0;
  if (!groups_.IfNoMembers(std::string(group), std::string(name),
                           [&] { deleted = catalog_->DeleteOffsets(group, name); })) {
    return absl::FailedPreconditionError(
        StrCat("group \"", group, "\" has live members on topic \"", name,
               "\"; stop them before deleting the group"));
  }
  RETURN_IF_ERROR(deleted.status());
  if (*deleted == 0) {
    return absl::NotFoundError(
        StrCat("group \"", group, "\" has no committed offsets on topic \"", name, "\""));
  }
  probe_.RemoveGroupLag(group, name);
  return absl::OkStatus();
}

void Broker::Impl::RefreshGroupMetrics() {
  auto stored = catalog_->ListGroups();
  std::set<std::pair<std::string, std::string>> keys;
  if (stored.ok()) keys.insert(stored->begin(), stored->end());
  for (const auto& [key, n] : groups_.Live()) keys.insert(key);
  for (const auto& [group, topic] : keys) {
    auto d = DescribeGroup(group, topic);
    if (d.ok()) probe_.RefreshLag(*d);
  }
}

absl::Status Broker::Impl::MaintainTopic(Topic& topic, bool flush) {
  absl::Status first;
  const storage::RetentionPolicy retention = RetentionOf(topic);
  for (uint32_t p = 0; p < topic.count(); ++p) {
    storage::Partition& part = *topic.parts[p];
    auto compacted = part.Compact(options_.compaction, NowMicros(), flush, &cancel_compaction_);
    if (compacted.ok()) {
      probe_.CountCompaction(compacted->files, compacted->records);
    } else if (compacted.status().code() != absl::StatusCode::kCancelled) {
      probe_.CountMaintenanceError();
      if (first.ok()) {
        first = absl::Status(compacted.status().code(),
                             StrCat("compacting topic ", topic.name, " partition ", p, ": ",
                                    ToStd(compacted.status().message())));
      }
    }
    auto dropped = part.ApplyRetention(retention, NowMicros());
    if (dropped.ok()) {
      probe_.CountRetentionDeletes(*dropped);
    } else {
      probe_.CountMaintenanceError();
      if (first.ok()) first = dropped.status();
    }
  }
  return first;
}

void Broker::Impl::Maintenance() {
  std::vector<Flush> flushes;
  int64_t last_pass_ms = 0;
  for (;;) {
    {
      absl::MutexLock lock(&maintenance_mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(maintenance_mu_) {
        return maintenance_stopping_ || !flushes_.empty();
      };
      maintenance_mu_.AwaitWithTimeout(absl::Condition(&wake),
                                       absl::Milliseconds(options_.maintenance_period_ms));
      if (maintenance_stopping_) {
        flushes.assign(std::make_move_iterator(flushes_.begin()),
                       std::make_move_iterator(flushes_.end()));
        flushes_.clear();
        break;
      }
      flushes.assign(std::make_move_iterator(flushes_.begin()),
                     std::make_move_iterator(flushes_.end()));
      flushes_.clear();
    }
    for (Flush& f : flushes) {
      absl::Status s = MaintainTopic(*f.topic, /*flush=*/true);
      bool deleted;
      {
        absl::MutexLock lock(&f.topic->mu);
        deleted = f.topic->deleted;
      }
      if (deleted) s = absl::NotFoundError(StrCat("topic \"", f.topic->name, "\" was deleted"));
      if (s.ok()) {
        std::move(f.done)(Describe(*f.topic));
      } else {
        std::move(f.done)(s);
      }
    }
    flushes.clear();
    const int64_t now_ms = NowMicros() / 1000;
    if (now_ms - last_pass_ms < options_.maintenance_period_ms) continue;
    last_pass_ms = now_ms;
    for (const auto& topic : AllTopics()) {
      absl::Status s = MaintainTopic(*topic, /*flush=*/false);
      if (!s.ok()) spdlog::warn("{} (retried at the next pass)", ToStd(s.message()));
    }
  }
  for (Flush& f : flushes) {
    std::move(f.done)(absl::UnavailableError("the server is shutting down"));
  }
}

void Broker::Impl::Housekeeping() {
  const bool interval = options_.log.fsync == log::FsyncPolicy::kInterval;
  const int64_t period_ms =
      interval ? std::max<int64_t>(1, std::min(options_.fsync_interval_ms, kHousekeepingPeriodMs))
               : kHousekeepingPeriodMs;
  int64_t last_roll_check = 0;
  for (;;) {
    {
      absl::MutexLock lock(&housekeeping_mu_);
      housekeeping_mu_.AwaitWithTimeout(
          absl::Condition(
              +[](bool* stopping) { return *stopping; }, &stopping_),
          absl::Milliseconds(period_ms));
      if (stopping_) return;
    }
    if (interval) SyncAll();
    const int64_t now_ms = NowMicros() / 1000;
    if (now_ms - last_roll_check >= kHousekeepingPeriodMs) {
      last_roll_check = now_ms;
      const int64_t now_us = NowMicros();
      for (const auto& topic : AllTopics()) {
        for (uint32_t p = 0; p < topic->count(); ++p) {
          topic->parts[p]->MaybeRollByAge(now_us).IgnoreError();
        }
      }
    }
  }
}

Broker::Broker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Broker::~Broker() = default;

absl::StatusOr<std::unique_ptr<Broker>> Broker::Open(BrokerOptions options, FileSystem& fs,
                                                     prometheus::Registry& registry) {
  auto impl = std::make_unique<Impl>(std::move(options), fs, registry);
  RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<Broker>(new Broker(std::move(impl)));
}

void Broker::Publish(absl::Span<const EventIn> events, PublishDone done) {
  impl_->Publish(events, std::move(done));
}
absl::StatusOr<TopicInfo> Broker::CreateTopic(std::string_view name, uint32_t partitions,
                                              TopicConfig config) {
  return impl_->CreateTopic(name, partitions, config);
}
absl::StatusOr<TopicInfo> Broker::SetRetention(std::string_view name, TopicConfig config) {
  return impl_->SetRetention(name, config);
}
absl::StatusOr<TopicInfo> Broker::AddPartitions(std::string_view name, uint32_t partitions) {
  return impl_->AddPartitions(name, partitions);
}
void Broker::FlushTopic(std::string_view name,
                        absl::AnyInvocable<void(absl::StatusOr<TopicInfo>) &&> done) {
  impl_->FlushTopic(name, std::move(done));
}
absl::StatusOr<TopicInfo> Broker::GetTopic(std::string_view name) { return impl_->GetTopic(name); }
std::vector<TopicInfo> Broker::ListTopics() { return impl_->ListTopics(); }
absl::Status Broker::DeleteTopic(std::string_view name) { return impl_->DeleteTopic(name); }
absl::Status Broker::Read(std::string_view topic, uint32_t partition, uint64_t from,
                          size_t max_records, size_t max_bytes, std::vector<log::Record>* out) {
  return impl_->Read(topic, partition, from, max_records, max_bytes, out);
}
void Broker::SyncAll() { impl_->SyncAll(); }
absl::Status Broker::Scan(std::string_view topic, uint32_t partition, uint64_t from,
                          size_t max_records, size_t max_bytes,
                          absl::FunctionRef<void(const log::DecodedRecord&)> visit) {
  return impl_->Scan(topic, partition, from, max_records, max_bytes, visit);
}
void Broker::WhenReadable(std::string_view topic, uint32_t partition, uint64_t offset,
                          std::weak_ptr<const void> owner, absl::AnyInvocable<void() &&> fn) {
  impl_->WhenReadable(topic, partition, offset, std::move(owner), std::move(fn));
}
std::optional<int64_t> Broker::TopicCreatedAt(std::string_view topic) {
  return impl_->TopicCreatedAt(topic);
}
absl::StatusOr<uint64_t> Broker::ResolveStart(std::string_view topic, uint32_t partition,
                                              const StartSpec& start,
                                              std::optional<uint64_t> committed) {
  return impl_->ResolveStart(topic, partition, start, committed);
}
GroupCoordinator& Broker::groups() { return impl_->groups(); }
absl::Status Broker::CommitOffsets(std::string_view group, std::string_view topic,
                                   const std::vector<std::pair<uint32_t, uint64_t>>& offsets,
                                   uint64_t generation, std::string_view consumer_id) {
  return impl_->CommitOffsets(group, topic, offsets, generation, consumer_id);
}
absl::StatusOr<std::map<uint32_t, uint64_t>> Broker::CommittedOffsets(std::string_view group,
                                                                      std::string_view topic) {
  return impl_->CommittedOffsets(group, topic);
}
absl::StatusOr<GroupDescription> Broker::DescribeGroup(std::string_view group,
                                                       std::string_view topic) {
  return impl_->DescribeGroup(group, topic);
}
absl::StatusOr<std::vector<GroupSummary>> Broker::ListGroups(std::string_view topic) {
  return impl_->ListGroups(topic);
}
absl::StatusOr<std::vector<std::pair<uint32_t, uint64_t>>> Broker::ResetOffsets(
    std::string_view group, std::string_view topic, const StartSpec& to,
    const std::vector<uint32_t>& partitions) {
  return impl_->ResetOffsets(group, topic, to, partitions);
}
absl::Status Broker::DeleteGroup(std::string_view group, std::string_view topic) {
  return impl_->DeleteGroup(group, topic);
}
absl::Status Broker::ValidateGroup(std::string_view group, std::string_view topic) {
  return impl_->ValidateGroup(group, topic);
}
void Broker::RefreshGroupMetrics() { impl_->RefreshGroupMetrics(); }
void Broker::RefreshMetrics() { impl_->RefreshMetrics(); }

}  // namespace nodata::broker
