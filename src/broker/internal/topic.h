// A topic and its partitions, as the broker's parts share it. Internal to broker/.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
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

// A topic's partition slots, up to a capacity fixed when the topic is loaded. Slots live in
// chunks of 16 made as partitions are added, and never move: a slot that is read is not
// written, and a slot's chunk exists before the slot is filled. Slots are filled under the
// topic's admin or open lock; see Topic for how readers find them without one.
class PartitionSlots {
 public:
  explicit PartitionSlots(uint32_t capacity)
      : capacity_(capacity), chunks_((capacity + kChunk - 1) / kChunk) {}

  uint32_t size() const { return capacity_; }
  // A slot below size(); its chunk is made when missing.
  std::unique_ptr<storage::Partition>& operator[](uint32_t p) {
    std::unique_ptr<Chunk>& chunk = chunks_[p / kChunk];
    if (!chunk) chunk = std::make_unique<Chunk>();
    return chunk->slots[p % kChunk];
  }
  // A filled slot.
  const std::unique_ptr<storage::Partition>& operator[](uint32_t p) const {
    return chunks_[p / kChunk]->slots[p % kChunk];
  }
  // The steps to a filled slot's partition, for prefetching ahead (Publisher): the chunk's
  // pointer, then the slot, then the partition. Chunks are never freed and a slot below the
  // topic's count is filled before the count is raised, so none of this needs a lock.
  void PrefetchChunk(uint32_t p) const { __builtin_prefetch(&chunks_[p / kChunk]); }
  void PrefetchSlot(uint32_t p) const {
    if (const Chunk* c = chunks_[p / kChunk].get()) __builtin_prefetch(&c->slots[p % kChunk]);
  }
  const storage::Partition* Peek(uint32_t p) const {
    const Chunk* c = chunks_[p / kChunk].get();
    return c == nullptr ? nullptr : c->slots[p % kChunk].get();
  }

 private:
  static constexpr uint32_t kChunk = 16;
  struct Chunk {
    std::unique_ptr<storage::Partition> slots[kChunk];
  };
  const uint32_t capacity_;
  std::vector<std::unique_ptr<Chunk>> chunks_;
};

// Held by shared_ptr: a publish in flight keeps it alive while DeleteTopic drops it from the
// registry.
//
// Partitions only grow (AddPartitions). `parts` holds slots up to the largest count the topic
// may reach; a new partition's slot is filled before `partitions` is raised (release), so a
// reader that loaded `partitions` finds every slot below it set, without a lock. Slots at or
// above `partitions` are not read.
struct Topic {
  Topic(TopicName n, uint32_t p, uint32_t capacity, int64_t created, int64_t window_us,
        size_t max_ids)
      : name(std::move(n)),
        partitions(p),
        created_at_us(created),
        parts(capacity),
        dedupe(window_us, max_ids) {}

  uint32_t count() const { return partitions.load(std::memory_order_acquire); }
  // A partition below count() (see CheckPartition) of an opened topic.
  storage::Partition& part(PartitionId p) const { return *parts[p.value()]; }
  // Whether `parts` holds the partitions: see `opened`.
  bool is_open() const { return opened.load(std::memory_order_acquire); }
  // Starts loading the members a publish reads and writes, reading none of them: a batch
  // spread over many topics calls it for the topics ahead of the one it appends to. Always
  // inlined, as log::PartitionLog::PrefetchForAppend.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void PrefetchForPublish() const {
    __builtin_prefetch(&partitions);
    __builtin_prefetch(&parts);
    __builtin_prefetch(&opened);
    __builtin_prefetch(&key_format);
    __builtin_prefetch(&mu);
    const char* d = reinterpret_cast<const char*>(&dedupe);
    for (size_t at = 0; at < sizeof dedupe; at += 64) __builtin_prefetch(d + at);
    __builtin_prefetch(&dedupe_pending);
    __builtin_prefetch(&deleted);
    __builtin_prefetch(&events_in);
  }

  const TopicName name;
  std::atomic<uint32_t> partitions;
  const int64_t created_at_us;
  PartitionSlots parts;
  // A start opens most topics behind the serving (TopicRegistry::EnsureOpen): until then the
  // slots of `parts` are empty and `opened` is false; it is set (release) once they are filled,
  // and never cleared. Whoever needs the partitions first opens them, under open_mu; an open
  // that fails leaves its error in open_status, which every later need answers.
  std::atomic<bool> opened{true};
  absl::Mutex open_mu ABSL_ACQUIRED_BEFORE(mu);
  absl::Status open_status ABSL_GUARDED_BY(open_mu);
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
  // A restore under way: the thread that set it (DedupeStore's, or a publish that would
  // otherwise wait for it) finishes it. `dedupe_pending` mirrors !dedupe_restored for the
  // publish path's check without the lock.
  bool dedupe_restoring ABSL_GUARDED_BY(mu) = false;
  std::atomic<bool> dedupe_pending{false};
  // dedupe.inserted() as of the last checkpoint: set by the restore (under mu, with
  // dedupe_restored), then DedupeStore's thread alone uses it.
  uint64_t dedupe_checkpointed = 0;
  bool deleted ABSL_GUARDED_BY(mu) = false;
  // The topic's counters, registered by the Probe and removed by it (under `mu`, with
  // `deleted` set) when the topic is deleted: the publish path increments them under `mu`.
  prometheus::Counter* events_in = nullptr;
  prometheus::Counter* bytes_in = nullptr;
  prometheus::Counter* duplicates = nullptr;
};

}  // namespace nodata::broker
