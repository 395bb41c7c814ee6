#include "broker/internal/probe.h"

#include <algorithm>

#include "common/strings.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace nodata::broker {

Probe::Probe(prometheus::Registry& registry)
    : events_in_(prometheus::BuildCounter()
                     .Name("nodata_events_in_total")
                     .Help("Events stored, per topic")
                     .Register(registry)),
      bytes_in_(prometheus::BuildCounter()
                    .Name("nodata_bytes_in_total")
                    .Help("Bytes of events stored (topic, id, key, data, headers), per topic")
                    .Register(registry)),
      duplicates_(prometheus::BuildCounter()
                      .Name("nodata_duplicates_total")
                      .Help("Events not stored again because their id was seen, per topic")
                      .Register(registry)),
      end_offset_(prometheus::BuildGauge()
                      .Name("nodata_partition_end_offset")
                      .Help("The next offset to be written, per partition")
                      .Register(registry)),
      disk_bytes_(prometheus::BuildGauge()
                      .Name("nodata_disk_bytes")
                      .Help("Bytes of hot-tier segments on disk, per partition")
                      .Register(registry)),
      fsync_latency_(prometheus::BuildHistogram()
                         .Name("nodata_fsync_latency_seconds")
                         .Help("Duration of each fdatasync that acknowledges appends: of the journal, or "
                               "of a partition log without one")
                         .Register(registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries{
                                      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025, 0.05, 0.1, 0.25, 1})),
      fsync_batch_(prometheus::BuildHistogram()
                       .Name("nodata_fsync_batch_records")
                       .Help("Records made durable by one fdatasync (group commit size)")
                       .Register(registry)
                       .Add({}, prometheus::Histogram::BucketBoundaries{
                                    1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000})),
      checkpoint_latency_(prometheus::BuildHistogram()
                              .Name("nodata_journal_checkpoint_seconds")
                              .Help("Duration of each journal checkpoint (syncing the "
                                    "partitions it covers, then deleting its files)")
                              .Register(registry)
                              .Add({}, prometheus::Histogram::BucketBoundaries{
                                           0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})),
      checkpoint_partitions_(prometheus::BuildCounter()
                                 .Name("nodata_journal_checkpoint_partitions_total")
                                 .Help("Partitions synced by journal checkpoints")
                                 .Register(registry)
                                 .Add({})),
      whole_fs_checkpoints_(prometheus::BuildCounter()
                                .Name("nodata_journal_whole_fs_checkpoints_total")
                                .Help("Journal checkpoints that made their partitions durable "
                                      "with one syncfs of the data directory's file system")
                                .Register(registry)
                                .Add({})),
      parquet_files_(prometheus::BuildGauge()
                         .Name("nodata_parquet_files")
                         .Help("Parquet files of the cold tier, per partition")
                         .Register(registry)),
      parquet_bytes_(prometheus::BuildGauge()
                         .Name("nodata_parquet_bytes")
                         .Help("Bytes of Parquet files of the cold tier, per partition")
                         .Register(registry)),
      compacted_files_(prometheus::BuildCounter()
                           .Name("nodata_compaction_files_total")
                           .Help("Parquet files written by compaction")
                           .Register(registry)
                           .Add({})),
      compacted_records_(prometheus::BuildCounter()
                             .Name("nodata_compaction_records_total")
                             .Help("Records moved from the hot tier into Parquet files")
                             .Register(registry)
                             .Add({})),
      compaction_errors_(prometheus::BuildCounter()
                             .Name("nodata_compaction_errors_total")
                             .Help("Compaction or retention passes that failed (retried)")
                             .Register(registry)
                             .Add({})),
      retention_files_(prometheus::BuildCounter()
                           .Name("nodata_retention_deleted_files_total")
                           .Help("Parquet files deleted by retention")
                           .Register(registry)
                           .Add({})),
      consumer_lag_(prometheus::BuildGauge()
                        .Name("nodata_consumer_lag")
                        .Help("Records between a group's committed offset and the partition's "
                              "end, per group and partition")
                        .Register(registry)),
      files_open_(prometheus::BuildGauge()
                      .Name("nodata_segment_files_open")
                      .Help("Hot-tier segment files held open (bounded by --max-open-files)")
                      .Register(registry)
                      .Add({})),
      file_opens_(prometheus::BuildCounter()
                      .Name("nodata_segment_file_opens_total")
                      .Help("Hot-tier segment files opened: misses of the open-file cache")
                      .Register(registry)
                      .Add({})) {}

Probe::~Probe() = default;

void Probe::ObserveSync(double seconds, uint64_t records) {
  fsync_latency_.Observe(seconds);
  fsync_batch_.Observe(static_cast<double>(records));
}

void Probe::ObserveCheckpoint(double seconds, uint64_t partitions, bool whole_fs) {
  checkpoint_latency_.Observe(seconds);
  checkpoint_partitions_.Increment(static_cast<double>(partitions));
  if (whole_fs) whole_fs_checkpoints_.Increment();
}

void Probe::AddTopic(Topic& topic) {
  topic.events_in = &events_in_.Add({{"topic", topic.name.str()}});
  topic.bytes_in = &bytes_in_.Add({{"topic", topic.name.str()}});
  topic.duplicates = &duplicates_.Add({{"topic", topic.name.str()}});
  for (uint32_t p = 0; p < topic.count(); ++p) AddPartition(topic, p);
}

void Probe::AddPartition(const Topic& topic, uint32_t p) {
  const std::map<std::string, std::string> labels{{"topic", topic.name.str()},
                                                  {"partition", StrCat(p)}};
  PartitionGauges g;
  g.end_offset = &end_offset_.Add(labels);
  g.disk_bytes = &disk_bytes_.Add(labels);
  g.parquet_files = &parquet_files_.Add(labels);
  g.parquet_bytes = &parquet_bytes_.Add(labels);
  Set(g, topic.parts[p]->Stats());
  absl::MutexLock lock(&mu_);
  TopicSeries& series = topics_[topic.name.str()];
  if (series.topic != &topic) series = TopicSeries{&topic, {}};
  if (series.partitions.size() <= p) series.partitions.resize(p + 1);
  series.partitions[p] = g;
}

void Probe::RemoveTopic(Topic& topic) {
  events_in_.Remove(topic.events_in);
  bytes_in_.Remove(topic.bytes_in);
  duplicates_.Remove(topic.duplicates);
  absl::MutexLock lock(&mu_);
  auto it = topics_.find(topic.name.str());
  if (it == topics_.end() || it->second.topic != &topic) return;
  for (const PartitionGauges& g : it->second.partitions) {
    end_offset_.Remove(g.end_offset);
    disk_bytes_.Remove(g.disk_bytes);
    parquet_files_.Remove(g.parquet_files);
    parquet_bytes_.Remove(g.parquet_bytes);
  }
  topics_.erase(it);
}

void Probe::RemoveTopicLag(std::string_view topic) {
  absl::MutexLock lock(&mu_);
  for (auto it = lag_.begin(); it != lag_.end();) {
    if (std::get<1>(it->first) == topic) {
      consumer_lag_.Remove(it->second);
      it = lag_.erase(it);
    } else {
      ++it;
    }
  }
}

void Probe::RemoveGroupLag(std::string_view group, std::string_view topic) {
  absl::MutexLock lock(&mu_);
  for (auto it = lag_.begin(); it != lag_.end();) {
    if (std::get<0>(it->first) == group && std::get<1>(it->first) == topic) {
      consumer_lag_.Remove(it->second);
      it = lag_.erase(it);
    } else {
      ++it;
    }
  }
}

void Probe::CountCompaction(uint32_t files, uint64_t records) {
  compacted_files_.Increment(files);
  compacted_records_.Increment(static_cast<double>(records));
}
void Probe::CountMaintenanceError() { compaction_errors_.Increment(); }
void Probe::CountRetentionDeletes(uint32_t files) { retention_files_.Increment(files); }

void Probe::Set(const PartitionGauges& g, const storage::StorageStats& s) {
  g.end_offset->Set(static_cast<double>(s.end_offset.value()));
  g.disk_bytes->Set(static_cast<double>(s.hot.bytes_on_disk));
  g.parquet_files->Set(static_cast<double>(s.cold.file_count));
  g.parquet_bytes->Set(static_cast<double>(s.cold.bytes));
}

void Probe::RefreshPartitions(const std::vector<std::shared_ptr<Topic>>& topics) {
  absl::MutexLock lock(&mu_);
  for (const auto& topic : topics) {
    auto it = topics_.find(topic->name.str());
    if (it == topics_.end() || it->second.topic != topic.get()) continue;
    const std::vector<PartitionGauges>& gauges = it->second.partitions;
    const uint32_t n = std::min<uint32_t>(topic->count(), gauges.size());
    for (uint32_t p = 0; p < n; ++p) Set(gauges[p], topic->parts[p]->Stats());
  }
}

void Probe::RefreshLag(const GroupDescription& group) {
  absl::MutexLock lock(&mu_);
  for (const GroupPartitionInfo& gp : group.partitions) {
    auto key = std::make_tuple(group.group, group.topic, gp.partition);
    auto g = lag_.find(key);
    if (g == lag_.end()) {
      g = lag_.emplace(key, &consumer_lag_.Add({{"group", group.group},
                                                {"topic", group.topic},
                                                {"partition", StrCat(gp.partition)}}))
              .first;
    }
    g->second->Set(static_cast<double>(gp.lag));
  }
}

void Probe::RefreshFiles(const log::FileCache& files) {
  files_open_.Set(static_cast<double>(files.size()));
  const uint64_t opens = files.opens();
  absl::MutexLock lock(&mu_);
  if (opens > file_opens_seen_) file_opens_.Increment(static_cast<double>(opens - file_opens_seen_));
  file_opens_seen_ = opens;
}

}  // namespace nodata::broker
