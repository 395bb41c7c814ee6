// The publish path. Internal to broker/.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "broker/broker.h"
#include "broker/internal/dedupe_store.h"
#include "broker/internal/topic.h"
#include "broker/internal/topic_registry.h"

namespace nodata::broker {

// Unique ids for events published without one: a random per-process prefix and a counter.
// Safe for concurrent use.
class IdGenerator {
 public:
  IdGenerator();
  std::string Next();

 private:
  std::string prefix_;
  std::atomic<uint64_t> counter_{0};
};

// Validates a batch, routes its events to topics (created on first use when allowed) and
// partitions, checks their declared formats, dedupes them by id, appends them and calls back
// once they are acknowledged. Safe for concurrent use; `options` and `topics` must outlive it.
class Publisher {
 public:
  Publisher(const BrokerOptions& options, TopicRegistry& topics, DedupeStore& dedupe)
      : options_(options), topics_(topics), dedupe_(dedupe) {}

  // See Broker::Publish.
  void Publish(absl::Span<const EventIn> events, PublishDone done);

 // Per-thread working memory of the publish path (publisher.cc).
  struct Scratch;

 private:
  struct State;
  // INVALID_ARGUMENT naming the first of `indices` whose key or data is not of the topic's
  // declared format.
  static absl::Status CheckFormats(const Topic& topic, absl::Span<const EventIn> events,
                                   absl::Span<const uint32_t> indices);
  // Dedupes and appends the topic's events of the batch (`indices`, in request order) under
  // topic.mu. What the batch then waits for: `journal_lsn` is raised to the journal position
  // of its appends through the journal; s.waits gets the end offset to be acknowledged of
  // each other partition, and of each partition a duplicate points into.
  absl::Status AppendToTopic(Topic& topic, absl::Span<const EventIn> events,
                             absl::Span<const uint32_t> indices, State& state, Scratch& s,
                             uint64_t* journal_lsn);

  const BrokerOptions& options_;
  TopicRegistry& topics_;
  DedupeStore& dedupe_;
  IdGenerator ids_;
};

}  // namespace nodata::broker
