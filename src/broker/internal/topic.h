// A topic and its partitions, as the broker's parts share it. Internal to broker/.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "broker/dedupe.h"
#include "common/data_format.h"
#include "common/ids.h"
#include "storage/partition.h"

namespace prometheus {
class Counter;
}

namespace nodata::broker {

// Held by shared_ptr: a publish in flight keeps it alive while DeleteTopic drops it from the
// registry.
//
// Partitions only grow (AddPartitions). `parts` is sized to the largest count the topic may
// reach when it is opened and never resized; a new partition's slot is filled before
// `partitions` is raised (release), so a reader that loaded `partitions` finds every slot below
// it set, without a lock. Slots at or above `partitions` are not read.
struct Topic {
  Topic(TopicName n, uint32_t p, uint32_t capacity, int64_t created, int64_t window_us,
        size_t max_ids)
      : name(std::move(n)),
        partitions(p),
        created_at_us(created),
        parts(capacity),
        dedupe(window_us, max_ids) {}

  uint32_t count() const { return partitions.load(std::memory_order_acquire); }
  // A partition below count() (see CheckPartition).
  storage::Partition& part(PartitionId p) const { return *parts[p.value()]; }

  const TopicName name;
  std::atomic<uint32_t> partitions;
  const int64_t created_at_us;
  std::vector<std::unique_ptr<storage::Partition>> parts;
  std::atomic<int64_t> retention_ms{0};     // as configured: 0 default, -1 unlimited
  std::atomic<int64_t> retention_bytes{0};
  DataFormat key_format = DataFormat::kBytes;  // fixed at creation
  DataFormat data_format = DataFormat::kBytes;

  // Serializes dedupe and appends of the topic, so that two publishes of one id cannot both be
  // stored and each partition's offsets follow the order of the dedupe decisions.
  absl::Mutex mu;
  DedupeIndex dedupe ABSL_GUARDED_BY(mu);
  // False while a start restores `dedupe` (DedupeStore): publishing waits for it. A restore
  // that cannot finish leaves its error in dedupe_status, which publishes then answer.
  bool dedupe_restored ABSL_GUARDED_BY(mu) = true;
  absl::Status dedupe_status ABSL_GUARDED_BY(mu);
  // dedupe.inserted() as of the last checkpoint: DedupeStore's thread alone uses it.
  uint64_t dedupe_checkpointed = 0;
  bool deleted ABSL_GUARDED_BY(mu) = false;
  // The topic's counters, registered by the Probe and removed by it (under `mu`, with
  // `deleted` set) when the topic is deleted: the publish path increments them under `mu`.
  prometheus::Counter* events_in = nullptr;
  prometheus::Counter* bytes_in = nullptr;
  prometheus::Counter* duplicates = nullptr;
};

}  // namespace nodata::broker
