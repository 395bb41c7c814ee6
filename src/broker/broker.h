// The broker owns topics and their partitions: it validates and routes published events,
// dedupes them by id, appends them to the partition logs and acknowledges them once durable.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "broker/groups.h"
#include "common/data_format.h"
#include "common/fs.h"
#include "common/ids.h"
#include "common/record.h"
#include "storage/catalog.h"
// The only door to the tiers: it also declares the log and Parquet option types used below
// (log::LogOptions, parquet::WriterOptions).
#include "storage/partition.h"

namespace prometheus {
class Registry;
}

namespace nodata::broker {

// Every limit with its default; the server's flags set them.
struct BrokerOptions {
  std::string data_dir;
  uint32_t default_partitions = 4;
  uint32_t max_partitions = 1024;
  bool auto_create_topics = true;
  // An event's size: the bytes of its topic, id, key, data and header names and values.
  uint64_t max_event_bytes = 1ull << 20;
  uint64_t max_batch_events = 100000;
  uint64_t max_batch_bytes = 64ull << 20;
  int64_t dedupe_window_ms = 10 * 60 * 1000;
  uint64_t dedupe_max_ids = 1000000;
  // How often each topic's dedupe state is checkpointed (when it took 16384 new ids since),
  // so that a restart reads only the ids after it from the log; 0: never.
  int64_t dedupe_checkpoint_ms = 10'000;
  log::LogOptions log;  // on_sync is set by the broker
  int64_t fsync_interval_ms = 0;  // with FsyncPolicy::kInterval
  int sync_threads = 4;
  // With fsync always: appends are acknowledged by one shared journal's fdatasync, segments
  // synced behind by checkpoints (log/journal.h). Off: by an fdatasync of each partition.
  bool journal = true;
  uint64_t journal_file_bytes = 64ull << 20;
  int64_t journal_checkpoint_ms = 10'000;
  // Segment files the hot tier keeps open, over all partitions (least recently used closed
  // first); 0: half the process's open-file limit.
  uint64_t max_open_files = 0;
  // The cold tier: how Parquet files are written and when records move there. keep_hot_us is
  // set to the dedupe window by the broker.
  parquet::WriterOptions parquet;
  storage::CompactionPolicy compaction;
  // Retention of topics that do not set their own (per partition; -1, and also 0: unlimited).
  int64_t retention_ms = storage::kRetentionUnlimited;
  int64_t retention_bytes = storage::kRetentionUnlimited;
  // How often the maintenance thread looks for due compaction and retention.
  int64_t maintenance_period_ms = 1000;
};

// Per-topic settings. Retention values: 0 follows the server's default, -1 is unlimited.
struct TopicConfig {
  int64_t retention_ms = 0;
  int64_t retention_bytes = 0;
  // Declared formats of keys and data: publishing refuses values not of them, Parquet files
  // carry them as logical types. Fixed at creation (SetRetention ignores them).
  DataFormat key_format = DataFormat::kBytes;
  DataFormat data_format = DataFormat::kBytes;
};

// One event as published, borrowed from the request for the duration of Publish's callback.
struct EventIn {
  std::string_view topic;
  std::string_view id;
  std::string_view key;
  std::string_view data;
  std::optional<int64_t> timestamp_us;  // unset: ingest time
  absl::Span<const std::pair<std::string_view, std::string_view>> headers;
  // The partition the publisher chose (a Kafka producer does); unset: routed by key or id.
  // INVALID_ARGUMENT when the topic has no such partition.
  std::optional<uint32_t> partition;
};

struct AckOut {
  PartitionId partition{};
  Offset offset{};
  bool duplicate = false;
  std::string assigned_id;  // set when the server assigned the id
};

struct PartitionInfo {
  PartitionId partition{};
  storage::StorageStats stats;
};

struct TopicInfo {
  std::string name;
  uint32_t partition_count = 0;
  int64_t created_at_us = 0;
  TopicConfig config;             // as set on the topic
  int64_t retention_ms = -1;     // in effect (-1: unlimited)
  int64_t retention_bytes = -1;  // in effect (-1: unlimited)
  std::vector<PartitionInfo> partitions;
};

// Where a reader starts in a partition.
struct StartSpec {
  enum class Kind { kEarliest, kLatest, kCommitted, kOffset, kTime };
  Kind kind = Kind::kEarliest;
  Offset offset{};      // kOffset
  int64_t time_us = 0;  // kTime: ingest time
};

struct GroupPartitionInfo {
  PartitionId partition{};
  std::optional<Offset> committed;
  Offset end_offset{};
  uint64_t lag = 0;   // from the committed offset (the partition's start without one) to the end
  std::string owner;  // consumer id of the live member reading it
};

struct GroupDescription {
  std::string group;
  std::string topic;
  GroupInfo live;
  std::vector<GroupPartitionInfo> partitions;
};

struct GroupSummary {
  std::string group;
  std::string topic;
  uint32_t members = 0;
  uint64_t lag = 0;
};

using PublishDone = absl::AnyInvocable<void(absl::Status, std::vector<AckOut>) &&>;

// Safe for concurrent use.
class Broker {
 public:
  // Opens the data directory: the catalog and every topic's partitions (recovering them); each
  // topic's dedupe state is restored in the background from its checkpoint and the logs, and
  // publishes to the topic wait for it. `fs` and `registry` must outlive the broker.
  static absl::StatusOr<std::unique_ptr<Broker>> Open(BrokerOptions options, FileSystem& fs,
                                                      prometheus::Registry& registry);
  ~Broker();

  // Stores `events` and calls `done` once all are acknowledged under the fsync policy, with one
  // AckOut per event in order, or with the first error. `events` must stay valid until then.
  // `done` may run inline or on a sync thread.
  void Publish(absl::Span<const EventIn> events, PublishDone done);

  // `partitions` 0 means the default.
  absl::StatusOr<TopicInfo> CreateTopic(std::string_view name, uint32_t partitions,
                                        TopicConfig config = {});
  // Changes a topic's retention; it applies at the next maintenance pass.
  absl::StatusOr<TopicInfo> SetRetention(std::string_view name, TopicConfig config);
  // Grows a topic to `partitions` partitions, durably. Records stay where they are; keyed events
  // published from now on are routed by the new count, so a key may move to another partition.
  // INVALID_ARGUMENT for fewer partitions than the topic has or more than max_partitions; the
  // same count is a no-op.
  absl::StatusOr<TopicInfo> AddPartitions(std::string_view name, uint32_t partitions);
  // Seals every partition of the topic and compacts all its acknowledged records into Parquet
  // now; calls `done` (on the maintenance thread) once the files are durable.
  void FlushTopic(std::string_view name, absl::AnyInvocable<void(absl::StatusOr<TopicInfo>) &&> done);
  absl::StatusOr<TopicInfo> GetTopic(std::string_view name);
  std::vector<TopicInfo> ListTopics();
  absl::Status DeleteTopic(std::string_view name);

  // Reads acknowledged records of one partition from either tier; see storage::Partition::Read.
  absl::Status Read(std::string_view topic, PartitionId partition, Offset from,
                    size_t max_records, size_t max_bytes, std::vector<Record>* out);
  // Read without copies, from either tier like Read: `visit` sees views valid during the call
  // only.
  absl::Status Scan(std::string_view topic, PartitionId partition, Offset from,
                    size_t max_records, size_t max_bytes,
                    absl::FunctionRef<void(const DecodedRecord&)> visit);

  // Consumption. Calls `fn` once the record at `offset` of the partition is acknowledged (at
  // once when it is, or when the topic or partition does not exist: the next read says why).
  // `owner` as in storage::Partition::WhenReadable.
  void WhenReadable(std::string_view topic, PartitionId partition, Offset offset,
                    std::weak_ptr<const void> owner, absl::AnyInvocable<void() &&> fn);
  // When the topic of that name was created (it changes when the topic is deleted and created
  // again); nullopt when there is none.
  std::optional<int64_t> TopicCreatedAt(std::string_view topic);
  // The offset a reader starting at `start` reads first. OUT_OF_RANGE for an offset below the
  // start or past the end; `committed` is the group's offset for kCommitted.
  absl::StatusOr<Offset> ResolveStart(std::string_view topic, PartitionId partition,
                                      const StartSpec& start, std::optional<Offset> committed);
  // One past the partition's last acknowledged record: where a read of what is stored now
  // ends (the end offset less records appended but not yet acknowledged).
  absl::StatusOr<Offset> AckedEnd(std::string_view topic, PartitionId partition);
  // The partition's first stored offset and its acknowledged end (Kafka's log start offset
  // and high watermark), read together.
  absl::StatusOr<std::pair<Offset, Offset>> Bounds(std::string_view topic,
                                                   PartitionId partition);
  GroupCoordinator& groups();
  // Durably stores a group's next offsets; OUT_OF_RANGE past a partition's end. With a
  // generation, FAILED_PRECONDITION unless `consumer_id` owns every partition in it.
  absl::Status CommitOffsets(std::string_view group, std::string_view topic,
                             const std::vector<std::pair<PartitionId, Offset>>& offsets,
                             uint64_t generation = 0, std::string_view consumer_id = {});
  absl::StatusOr<std::map<PartitionId, Offset>> CommittedOffsets(std::string_view group,
                                                                  std::string_view topic);
  // NOT_FOUND for a group with neither members nor committed offsets on the topic.
  absl::StatusOr<GroupDescription> DescribeGroup(std::string_view group, std::string_view topic);
  // Groups with members or committed offsets; `topic` empty: on every topic.
  absl::StatusOr<std::vector<GroupSummary>> ListGroups(std::string_view topic);
  // Moves a group's committed offsets; FAILED_PRECONDITION while it has live members.
  absl::StatusOr<std::vector<std::pair<PartitionId, Offset>>> ResetOffsets(
      std::string_view group, std::string_view topic, const StartSpec& to,
      const std::vector<PartitionId>& partitions);
  // Forgets a group's committed offsets on a topic. FAILED_PRECONDITION while the group has live
  // members there, NOT_FOUND when it has no committed offset on the topic.
  absl::Status DeleteGroup(std::string_view group, std::string_view topic);
  // INVALID_ARGUMENT for a bad group name, and for one starting with '-' unless the group
  // exists on `topic` (members or committed offsets): only new names must not read as a flag.
  absl::Status ValidateGroup(std::string_view group, std::string_view topic);
  // Updates the consumer lag gauges (for a /metrics scrape).
  void RefreshGroupMetrics();
  // Sets every gauge (partition offsets and sizes, consumer lag) from the state now: what a
  // /metrics scrape calls before it collects. Queries set no gauge.
  void RefreshMetrics();
  // The first step of a stop, before the transports drain: restoring dedupe state ends, and
  // publishes still waiting for a topic's state are answered UNAVAILABLE.
  void BeginShutdown();

  // Flushes every partition to disk; for the interval policy and shutdown.
  void SyncAll();
  // OK, or why the storage refuses appends until a restart (a failed fdatasync of the journal:
  // what the page cache holds can no longer be trusted).
  absl::Status Health();

  // The catalog's store of components: the components module keeps its registry in the
  // catalog the broker opened, under the data directory lock the broker holds.
  storage::ComponentStore& component_store();
  // The catalog's store of aggregation definitions, lent to the aggregate module the same way.
  storage::AggregationStore& aggregation_store();
  // The catalog's access tokens, which the server's authentication reads.
  storage::TokenStore& token_store();
  const std::string& data_dir() const;

  class Impl;

 private:
  explicit Broker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// INVALID_ARGUMENT unless `partition` is below `partition_count`: the one "partition in range"
// check, whose message names the topic and its partition count.
absl::Status CheckPartition(std::string_view topic, uint32_t partition_count,
                            PartitionId partition);

// INVALID_ARGUMENT unless each retention is positive, 0 (the server's default) or -1 (unlimited).
absl::Status ValidateTopicConfig(const TopicConfig& config);

// Partition of an event: from its key, or from its id when the key is empty. Stable across
// versions (clients rely on key order): FNV-1a 64 with a final mix, modulo the partition count.
PartitionId PartitionFor(std::string_view key, std::string_view id, uint32_t partitions);

}  // namespace nodata::broker
