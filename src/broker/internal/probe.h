// The broker's metrics. Internal to broker/.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "broker/broker.h"
#include "broker/internal/topic.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace nodata::broker {

// Owns the broker's Prometheus families and every topic's, partition's and group's series.
// Counters and histograms count as things happen; gauges are set only by Refresh*, which the
// /metrics scrape calls (through Broker::RefreshMetrics), never by queries. Safe for concurrent
// use; never calls back into the broker.
class Probe {
 public:
  // Registers the families in `registry`, which must outlive the probe.
  explicit Probe(prometheus::Registry& registry);
  ~Probe();

  // For LogOptions::on_sync: one fdatasync of a partition log.
  void ObserveSync(double seconds, uint64_t records);
  // A journal checkpoint: its duration and how many partitions it synced.
  void ObserveCheckpoint(double seconds, uint64_t partitions, bool whole_fs);

  // Registers the topic's counters (in `topic`) and its first `topic.count()` partitions'
  // gauges; every slot below that is set.
  void AddTopic(Topic& topic);
  // Registers the gauges of partition `p`, whose slot in topic.parts is set, with its values.
  void AddPartition(const Topic& topic, uint32_t p);
  // Removes the topic's counters and partition gauges. Under topic.mu with topic.deleted set.
  void RemoveTopic(Topic& topic);
  // Removes the lag gauges of every group on `topic` (its offsets went with it).
  void RemoveTopicLag(std::string_view topic);
  // Removes the lag gauges of `group` on `topic` (its offsets were deleted).
  void RemoveGroupLag(std::string_view group, std::string_view topic);

  void CountCompaction(uint32_t files, uint64_t records);
  void CountMaintenanceError();
  void CountRetentionDeletes(uint32_t files);

  // Sets every partition gauge of `topics` from their storage state now. A topic removed
  // meanwhile (deleted) is skipped.
  void RefreshPartitions(const std::vector<std::shared_ptr<Topic>>& topics);
  // Sets the lag gauges of one group on one topic, registering them on first sight.
  void RefreshLag(const GroupDescription& group);
  // Sets the segment files the hot tier holds open and counts the opens since the last call.
  void RefreshFiles(const log::FileCache& files);

 private:
  struct PartitionGauges {
    prometheus::Gauge* end_offset = nullptr;
    prometheus::Gauge* disk_bytes = nullptr;
    prometheus::Gauge* parquet_files = nullptr;
    prometheus::Gauge* parquet_bytes = nullptr;
  };
  struct TopicSeries {
    const Topic* topic = nullptr;  // which incarnation of the name the series belong to
    std::vector<PartitionGauges> partitions;
  };
  static void Set(const PartitionGauges& g, const storage::StorageStats& s);

  prometheus::Family<prometheus::Counter>& events_in_;
  prometheus::Family<prometheus::Counter>& bytes_in_;
  prometheus::Family<prometheus::Counter>& duplicates_;
  prometheus::Family<prometheus::Gauge>& end_offset_;
  prometheus::Family<prometheus::Gauge>& disk_bytes_;
  prometheus::Histogram& fsync_latency_;
  prometheus::Histogram& fsync_batch_;
  prometheus::Histogram& checkpoint_latency_;
  prometheus::Counter& checkpoint_partitions_;
  prometheus::Counter& whole_fs_checkpoints_;
  prometheus::Family<prometheus::Gauge>& parquet_files_;
  prometheus::Family<prometheus::Gauge>& parquet_bytes_;
  prometheus::Counter& compacted_files_;
  prometheus::Counter& compacted_records_;
  prometheus::Counter& compaction_errors_;
  prometheus::Counter& retention_files_;
  prometheus::Family<prometheus::Gauge>& consumer_lag_;
  prometheus::Gauge& files_open_;
  prometheus::Counter& file_opens_;

  absl::Mutex mu_;
  uint64_t file_opens_seen_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, TopicSeries, std::less<>> topics_ ABSL_GUARDED_BY(mu_);
  std::map<std::tuple<std::string, std::string, PartitionId>, prometheus::Gauge*> lag_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace nodata::broker
