#include "broker/internal/maintenance.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "spdlog/spdlog.h"

namespace nodata::broker {
namespace {

constexpr int64_t kHousekeepingPeriodMs = 1000;

}  // namespace

Maintenance::~Maintenance() { Stop(); }

void Maintenance::Start() {
  housekeeping_ = std::thread([this] { HousekeepingLoop(); });
  maintenance_ = std::thread([this] { MaintenanceLoop(); });
}

void Maintenance::Stop() {
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
}

void Maintenance::Flush(std::string_view name,
                        absl::AnyInvocable<void(absl::StatusOr<TopicInfo>) &&> done) {
  auto topic = topics_.Find(name);
  if (!topic.ok()) {
    std::move(done)(topic.status());
    return;
  }
  absl::MutexLock lock(&maintenance_mu_);
  flushes_.push_back(FlushRequest{std::move(*topic), std::move(done)});
}

absl::Status Maintenance::MaintainTopic(Topic& topic, bool flush) {
  absl::Status first;
  const storage::RetentionPolicy retention = topics_.RetentionOf(topic);
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

void Maintenance::MaintenanceLoop() {
  std::vector<FlushRequest> flushes;
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
    for (FlushRequest& f : flushes) {
      absl::Status s = MaintainTopic(*f.topic, /*flush=*/true);
      bool deleted;
      {
        absl::MutexLock lock(&f.topic->mu);
        deleted = f.topic->deleted;
      }
      if (deleted) s = absl::NotFoundError(StrCat("topic \"", f.topic->name, "\" was deleted"));
      if (s.ok()) {
        std::move(f.done)(topics_.Describe(*f.topic));
      } else {
        std::move(f.done)(s);
      }
    }
    flushes.clear();
    const int64_t now_ms = NowMicros() / 1000;
    if (now_ms - last_pass_ms < options_.maintenance_period_ms) continue;
    last_pass_ms = now_ms;
    for (const auto& topic : topics_.All()) {
      if (!topic->is_open()) continue;  // until a start's open reaches it (DedupeStore)
      absl::Status s = MaintainTopic(*topic, /*flush=*/false);
      if (!s.ok()) spdlog::warn("{} (retried at the next pass)", ToStd(s.message()));
    }
  }
  for (FlushRequest& f : flushes) {
    std::move(f.done)(absl::UnavailableError("the server is shutting down"));
  }
}

void Maintenance::HousekeepingLoop() {
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
    if (interval) topics_.SyncAll();
    const int64_t now_ms = NowMicros() / 1000;
    if (now_ms - last_roll_check >= kHousekeepingPeriodMs) {
      last_roll_check = now_ms;
      const int64_t now_us = NowMicros();
      for (const auto& topic : topics_.All()) {
        if (!topic->is_open()) continue;
        for (uint32_t p = 0; p < topic->count(); ++p) {
          topic->parts[p]->MaybeRollByAge(now_us).IgnoreError();
          topic->parts[p]->ReleaseIdle(now_us).IgnoreError();
        }
      }
    }
  }
}

}  // namespace nodata::broker
