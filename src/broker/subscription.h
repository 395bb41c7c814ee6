// A subscription: the one way anything reads a topic, whatever carries the records (a gRPC
// stream, a component, a test). Given a topic and either partitions, every partition or a group
// membership, it reads batches of records from both tiers, waits on the append notification
// when caught up, follows rebalances, commits a group's offsets and survives retention; it hands
// each batch to a sink and goes on once the sink is ready for the next.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "common/worker_pool.h"
#include "common/record.h"

namespace nodata::broker {

// Records per batch when the reader sets no limit, and the most it may ask for.
inline constexpr size_t kDefaultBatchRecords = 1000;
inline constexpr size_t kMaxBatchRecords = 10000;

struct SubscriptionOptions {
  std::string topic;
  // A group member: the group assigns the partitions, which start at its committed offsets.
  std::string group;
  std::string consumer_id;  // empty: one is made up
  std::string peer;         // shown by DescribeGroup
  // Without a group: the partitions read; none means every partition, and those a grow adds.
  std::vector<PartitionId> partitions;
  // Per-partition starts (partition, offset) overriding `start`; not in a group.
  std::vector<std::pair<PartitionId, Offset>> start_offsets;
  StartSpec start;  // kCommitted needs a group
  // An offset outside a partition's range starts at its nearest end instead of failing.
  bool clamp_start = false;
  size_t max_records = kDefaultBatchRecords;  // 0: the default
  size_t max_bytes = 1u << 20;                // one record may go past it
  // Commits what the sink took, at most a second apart and when the subscription closes.
  bool auto_commit = false;
  // A snapshot: reads each partition, in the order given (repeats included), up to its end
  // offset when the subscription opened, then ends with OK. Not with a group.
  bool stop_at_end = false;
};

class SubscriptionImpl;

// The records of one partition handed to the sink, read from storage while the sink visits
// them, so that a transport encodes straight from the log's buffers (whose views last for one
// record only: a batch of views cannot outlive the read).
class RecordBatch {
 public:
  PartitionId partition() const { return partition_; }
  // Visits the batch's records in offset order; the views are valid during `visit` only. Once
  // per OnBatch. Returns how many were visited: 0 when the partition had nothing new after all,
  // and then the sink delivers nothing and does not call Ready.
  size_t ForEach(absl::FunctionRef<void(const DecodedRecord&)> visit);

 private:
  friend class SubscriptionImpl;
  RecordBatch(Broker& broker, const std::string& topic, PartitionId partition, Offset& next,
              Offset end, size_t max_records, size_t max_bytes)
      : broker_(broker), topic_(topic), partition_(partition), next_(next), end_(end),
        max_records_(max_records), max_bytes_(max_bytes) {}

  Broker& broker_;
  const std::string& topic_;
  PartitionId partition_;
  Offset& next_;  // the partition's read position, moved past what is visited
  Offset end_;    // nothing at or past it is visited
  size_t max_records_;
  size_t max_bytes_;
  size_t count_ = 0;
  absl::Status status_;
};

// What a subscription delivers to. Calls come from the subscription's pool one at a time,
// never concurrently. After OnAssignment, and after an OnBatch that visited records, nothing
// more is delivered until the sink calls Subscription::Ready.
class SubscriptionSink {
 public:
  virtual ~SubscriptionSink() = default;
  // A group member's partitions changed (the first assignment included).
  virtual void OnAssignment(const Assignment& assignment) = 0;
  virtual void OnBatch(RecordBatch& batch) = 0;
  // The subscription ended: OK when a snapshot is complete, else why. Called at most once, last.
  virtual void OnEnd(absl::Status status) = 0;
};

// A handle on a running subscription; safe for concurrent use. Destroying it closes it.
class Subscription {
 public:
  // Validates `options` (INVALID_ARGUMENT, NOT_FOUND and OUT_OF_RANGE with the messages a
  // client sees) and resolves the start positions. Nothing is delivered before Start. The
  // subscription holds `sink` until it ends or closes: a job on the pool may still be running
  // when the transport goes away, and the sink must outlive it. `broker` and `pool` outlive
  // the subscription and the jobs it schedules.
  static absl::StatusOr<std::unique_ptr<Subscription>> Open(
      Broker& broker, WorkerPool& pool, SubscriptionOptions options,
      std::shared_ptr<SubscriptionSink> sink);
  ~Subscription();

  // Joins the group, or starts reading.
  void Start();
  // The sink finished the last delivery: OK, it takes the next one (with auto-commit, what it
  // took counts as consumed); an error ends the subscription with it (OnEnd).
  void Ready(absl::Status delivered = absl::OkStatus());
  // Ends the subscription with `status` (OnEnd) as soon as no delivery is in flight.
  void Stop(absl::Status status);
  // The sink is going away: nothing more is delivered to it; the last auto-commit and leaving
  // the group happen on the pool. Waits for a sink callback running on another thread to
  // return, so that once Close returns no callback runs and none uses this handle. Not from a
  // sink callback; the destructor does it too.
  void Close();

  // The member's consumer id (made up when none was given).
  const std::string& consumer_id() const;

 private:
  explicit Subscription(std::shared_ptr<SubscriptionImpl> impl) : impl_(std::move(impl)) {}
  // Shared with the pool's jobs and the notifications that call back into it.
  std::shared_ptr<SubscriptionImpl> impl_;
};

}  // namespace nodata::broker
