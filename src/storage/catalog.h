// Durable metadata of the data directory (topics and their configuration) in SQLite.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/data_format.h"

struct sqlite3;

namespace nodata::storage {

// A topic's retention setting: kRetentionDefault follows the server's default,
// kRetentionUnlimited keeps everything.
inline constexpr int64_t kRetentionDefault = 0;
inline constexpr int64_t kRetentionUnlimited = -1;

struct TopicMeta {
  std::string name;
  uint32_t partitions = 0;
  int64_t created_at_us = 0;
  int64_t retention_ms = kRetentionDefault;     // by ingest time, per partition
  int64_t retention_bytes = kRetentionDefault;  // per partition
  // Declared formats of event keys and data, fixed at creation.
  DataFormat key_format = DataFormat::kBytes;
  DataFormat data_format = DataFormat::kBytes;
};

// Safe for concurrent use. Every change is durable (synchronous=FULL) when the call returns.
class Catalog {
 public:
  // Opens or creates the database at `path`.
  static absl::StatusOr<std::unique_ptr<Catalog>> Open(const std::string& path);
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // ALREADY_EXISTS when a topic of that name exists.
  absl::Status CreateTopic(const TopicMeta& topic);
  // NOT_FOUND when there is no such topic.
  absl::Status DeleteTopic(std::string_view name);
  absl::StatusOr<std::vector<TopicMeta>> ListTopics();
  // Stores consumer-group offsets (the next offset to read per partition), in one transaction.
  absl::Status CommitOffsets(std::string_view group, std::string_view topic,
                             const std::vector<std::pair<uint32_t, uint64_t>>& offsets);
  // Committed offsets of a group on a topic, by partition.
  absl::StatusOr<std::map<uint32_t, uint64_t>> GetOffsets(std::string_view group,
                                                          std::string_view topic);
  // Forgets a group's committed offsets on a topic; returns how many partitions had one.
  absl::StatusOr<int> DeleteOffsets(std::string_view group, std::string_view topic);
  // Every (group, topic) with committed offsets.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListGroups();

  // Sets a topic's retention; NOT_FOUND when there is no such topic.
  absl::Status SetRetention(std::string_view name, int64_t retention_ms, int64_t retention_bytes);
  // Sets a topic's partition count; NOT_FOUND when there is no such topic.
  absl::Status SetPartitions(std::string_view name, uint32_t partitions);

 private:
  explicit Catalog(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace nodata::storage
