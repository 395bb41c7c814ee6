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
#include "broker/internal/group_manager.h"
#include "broker/internal/probe.h"
#include "broker/internal/publisher.h"
#include "broker/internal/topic.h"
#include "broker/internal/topic_registry.h"
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

constexpr int64_t kHousekeepingPeriodMs = 1000;

}  // namespace

class Broker::Impl {
 public:
  Impl(BrokerOptions options, FileSystem& fs, prometheus::Registry& registry)
      : options_(std::move(options)), fs_(fs), probe_(registry) {
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
    if (topics_) topics_->SyncAll();
  }

  absl::Status Open() {
    const storage::DataDir dir(options_.data_dir);
    // Before anything is read or written: a second process on the same directory would
    // overwrite the first one's files and catalog.
    ASSIGN_OR_RETURN(lock_, storage::DataDirLock::Acquire(dir.root()));
    RETURN_IF_ERROR(fs_.CreateDirs(dir.LogRoot()));
    ASSIGN_OR_RETURN(catalog_, storage::Catalog::Open(dir.CatalogPath()));
    topics_ = std::make_unique<TopicRegistry>(options_, fs_, *catalog_, probe_, coordinator_);
    RETURN_IF_ERROR(topics_->Open());
    groups_ = std::make_unique<GroupManager>(*topics_, *catalog_, coordinator_, probe_);
    publisher_ = std::make_unique<Publisher>(options_, *topics_);
    housekeeping_ = std::thread([this] { Housekeeping(); });
    maintenance_ = std::thread([this] { Maintenance(); });
    return absl::OkStatus();
  }

  void FlushTopic(std::string_view name,
                  absl::AnyInvocable<void(absl::StatusOr<TopicInfo>) &&> done) {
    auto topic = topics_->Find(name);
    if (!topic.ok()) {
      std::move(done)(topic.status());
      return;
    }
    absl::MutexLock lock(&maintenance_mu_);
    flushes_.push_back(Flush{std::move(*topic), std::move(done)});
  }


  void Maintenance();
  // One pass of compaction and retention over `topic`; `flush` compacts everything now.
  absl::Status MaintainTopic(Topic& topic, bool flush);
  void Housekeeping();

  BrokerOptions options_;
  FileSystem& fs_;
  // Released last, once everything else of the data directory is closed.
  std::unique_ptr<storage::DataDirLock> lock_;
  Probe probe_;
  GroupCoordinator coordinator_;
  std::unique_ptr<storage::Catalog> catalog_;
  std::unique_ptr<TopicRegistry> topics_;
  std::unique_ptr<GroupManager> groups_;
  std::unique_ptr<Publisher> publisher_;

  absl::Mutex housekeeping_mu_;
  bool stopping_ ABSL_GUARDED_BY(housekeeping_mu_) = false;
  std::thread housekeeping_;

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

absl::Status Broker::Impl::MaintainTopic(Topic& topic, bool flush) {
  absl::Status first;
  const storage::RetentionPolicy retention = topics_->RetentionOf(topic);
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
        std::move(f.done)(topics_->Describe(*f.topic));
      } else {
        std::move(f.done)(s);
      }
    }
    flushes.clear();
    const int64_t now_ms = NowMicros() / 1000;
    if (now_ms - last_pass_ms < options_.maintenance_period_ms) continue;
    last_pass_ms = now_ms;
    for (const auto& topic : topics_->All()) {
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
    if (interval) topics_->SyncAll();
    const int64_t now_ms = NowMicros() / 1000;
    if (now_ms - last_roll_check >= kHousekeepingPeriodMs) {
      last_roll_check = now_ms;
      const int64_t now_us = NowMicros();
      for (const auto& topic : topics_->All()) {
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
  impl_->publisher_->Publish(events, std::move(done));
}
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
  impl_->FlushTopic(name, std::move(done));
}
absl::StatusOr<TopicInfo> Broker::GetTopic(std::string_view name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, impl_->topics_->Find(name));
  return impl_->topics_->Describe(*topic);
}
std::vector<TopicInfo> Broker::ListTopics() {
  std::vector<TopicInfo> out;
  for (const auto& topic : impl_->topics_->All()) out.push_back(impl_->topics_->Describe(*topic));
  std::sort(out.begin(), out.end(),
            [](const TopicInfo& a, const TopicInfo& b) { return a.name < b.name; });
  return out;
}
absl::Status Broker::DeleteTopic(std::string_view name) { return impl_->topics_->Delete(name); }
std::optional<int64_t> Broker::TopicCreatedAt(std::string_view name) {
  auto topic = impl_->topics_->Find(name);
  if (!topic.ok()) return std::nullopt;
  return (*topic)->created_at_us;
}
void Broker::SyncAll() { impl_->topics_->SyncAll(); }

// Reads.
absl::Status Broker::Read(std::string_view name, uint32_t partition, uint64_t from,
                          size_t max_records, size_t max_bytes, std::vector<log::Record>* out) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, impl_->topics_->Find(name));
  RETURN_IF_ERROR(CheckPartition(name, topic->count(), partition));
  return topic->parts[partition]->Read(from, max_records, max_bytes, out);
}
absl::Status Broker::Scan(std::string_view name, uint32_t partition, uint64_t from,
                          size_t max_records, size_t max_bytes,
                          absl::FunctionRef<void(const log::DecodedRecord&)> visit) {
  ASSIGN_OR_RETURN(std::shared_ptr<Topic> topic, impl_->topics_->Find(name));
  RETURN_IF_ERROR(CheckPartition(name, topic->count(), partition));
  return topic->parts[partition]->Scan(from, max_records, max_bytes, visit);
}
void Broker::WhenReadable(std::string_view name, uint32_t partition, uint64_t offset,
                          std::weak_ptr<const void> owner, absl::AnyInvocable<void() &&> fn) {
  auto topic = impl_->topics_->Find(name);
  if (!topic.ok() || !CheckPartition(name, (*topic)->count(), partition).ok()) {
    std::move(fn)();  // the next read says why
    return;
  }
  (*topic)->parts[partition]->WhenReadable(offset, std::move(owner), std::move(fn));
}
absl::StatusOr<uint64_t> Broker::ResolveStart(std::string_view topic, uint32_t partition,
                                              const StartSpec& start,
                                              std::optional<uint64_t> committed) {
  return impl_->topics_->ResolveStart(topic, partition, start, committed);
}
GroupCoordinator& Broker::groups() { return impl_->coordinator_; }
absl::Status Broker::CommitOffsets(std::string_view group, std::string_view topic,
                                   const std::vector<std::pair<uint32_t, uint64_t>>& offsets,
                                   uint64_t generation, std::string_view consumer_id) {
  return impl_->groups_->CommitOffsets(group, topic, offsets, generation, consumer_id);
}
absl::StatusOr<std::map<uint32_t, uint64_t>> Broker::CommittedOffsets(std::string_view group,
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
absl::StatusOr<std::vector<std::pair<uint32_t, uint64_t>>> Broker::ResetOffsets(
    std::string_view group, std::string_view topic, const StartSpec& to,
    const std::vector<uint32_t>& partitions) {
  return impl_->groups_->ResetOffsets(group, topic, to, partitions);
}
absl::Status Broker::DeleteGroup(std::string_view group, std::string_view topic) {
  return impl_->groups_->DeleteGroup(group, topic);
}
absl::Status Broker::ValidateGroup(std::string_view group, std::string_view topic) {
  return impl_->groups_->ValidateGroup(group, topic);
}
void Broker::RefreshGroupMetrics() {
  for (const GroupDescription& d : impl_->groups_->DescribeAll()) impl_->probe_.RefreshLag(d);
}
void Broker::RefreshMetrics() {
  impl_->probe_.RefreshPartitions(impl_->topics_->All());
  RefreshGroupMetrics();
}

}  // namespace nodata::broker
