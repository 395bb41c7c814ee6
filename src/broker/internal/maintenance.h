// The broker's background work. Internal to broker/.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/broker.h"
#include "broker/internal/probe.h"
#include "broker/internal/topic.h"
#include "broker/internal/topic_registry.h"

namespace nodata::broker {

// Two background threads over the registry's topics. The maintenance thread runs compaction and
// retention every maintenance_period_ms and serves flush requests; the housekeeping thread
// syncs partitions under the interval fsync policy and rolls segments by age. Safe for
// concurrent use; `options`, `topics` and `probe` must outlive it.
class Maintenance {
 public:
  Maintenance(const BrokerOptions& options, TopicRegistry& topics, Probe& probe)
      : options_(options), topics_(topics), probe_(probe) {}
  // Stops the threads (see Stop).
  ~Maintenance();

  void Start();
  // Joins both threads: a running compaction stops at its next file, and queued flushes are
  // answered UNAVAILABLE. Idempotent.
  void Stop();

  // See Broker::FlushTopic.
  void Flush(std::string_view name, absl::AnyInvocable<void(absl::StatusOr<TopicInfo>) &&> done);

 private:
  struct FlushRequest {
    std::shared_ptr<Topic> topic;
    absl::AnyInvocable<void(absl::StatusOr<TopicInfo>) &&> done;
  };
  void MaintenanceLoop();
  void HousekeepingLoop();
  // One pass of compaction and retention over `topic`; `flush` compacts everything now.
  absl::Status MaintainTopic(Topic& topic, bool flush);

  const BrokerOptions& options_;
  TopicRegistry& topics_;
  Probe& probe_;

  absl::Mutex housekeeping_mu_;
  bool stopping_ ABSL_GUARDED_BY(housekeeping_mu_) = false;
  std::thread housekeeping_;

  absl::Mutex maintenance_mu_;
  std::deque<FlushRequest> flushes_ ABSL_GUARDED_BY(maintenance_mu_);
  bool maintenance_stopping_ ABSL_GUARDED_BY(maintenance_mu_) = false;
  std::atomic<bool> cancel_compaction_{false};
  std::thread maintenance_;
};

}  // namespace nodata::broker
