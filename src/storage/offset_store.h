// The catalog's committed consumer-group offsets, durable in the catalog's SQLite file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ids.h"

namespace nodata::storage {

namespace internal {
struct SqliteDb;
}

// The `group_offsets` table: per group, topic and partition the next offset to read. Offsets
// exist only for existing topics (deleting a topic deletes its offsets). Safe for concurrent
// use; lives as long as the Catalog that owns it. Every change is durable when the call returns.
class OffsetStore {
 public:
  // `db` outlives the store.
  explicit OffsetStore(internal::SqliteDb& db) : db_(db) {}
  OffsetStore(const OffsetStore&) = delete;
  OffsetStore& operator=(const OffsetStore&) = delete;

  // Stores a group's offsets (partition, next offset) on a topic, all or none. NOT_FOUND, and
  // nothing stored, when the topic does not exist (a commit racing the topic's deletion).
  absl::Status Commit(std::string_view group, std::string_view topic,
                      const std::vector<std::pair<PartitionId, Offset>>& offsets);
  // Committed offsets of a group on a topic, by partition.
  absl::StatusOr<std::map<PartitionId, Offset>> Get(std::string_view group, std::string_view topic);
  // Forgets a group's committed offsets on a topic; returns how many partitions had one.
  absl::StatusOr<int> Delete(std::string_view group, std::string_view topic);
  // Every (group, topic) with committed offsets, in order.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListGroups();

 private:
  internal::SqliteDb& db_;
};

}  // namespace nodata::storage
