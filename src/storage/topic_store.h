// The catalog's topics: each topic's configuration, durable in the catalog's SQLite file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data_format.h"

namespace nodata::storage {

namespace internal {
struct SqliteDb;
}

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

// The `topics` table. Safe for concurrent use; lives as long as the Catalog that owns it. Every
// change is durable when the call returns.
class TopicStore {
 public:
  // `db` outlives the store.
  explicit TopicStore(internal::SqliteDb& db) : db_(db) {}
  TopicStore(const TopicStore&) = delete;
  TopicStore& operator=(const TopicStore&) = delete;

  // ALREADY_EXISTS when a topic of that name exists. A topic created under the name of a
  // deleted one starts with no committed group offsets.
  absl::Status Create(const TopicMeta& topic);
  // NOT_FOUND when there is no such topic. The topic's committed group offsets go with it.
  absl::Status Delete(std::string_view name);
  // Every topic, by name.
  absl::StatusOr<std::vector<TopicMeta>> List();
  // Sets a topic's retention; NOT_FOUND when there is no such topic.
  absl::Status SetRetention(std::string_view name, int64_t retention_ms, int64_t retention_bytes);
  // Sets a topic's partition count; NOT_FOUND when there is no such topic.
  absl::Status SetPartitions(std::string_view name, uint32_t partitions);

 private:
  internal::SqliteDb& db_;
};

}  // namespace nodata::storage
