// Durable metadata of the data directory in one SQLite file (DATA/meta.db), one store per
// concern. Schema and version history: docs/formats/catalog.md.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/offset_store.h"
#include "storage/topic_store.h"

namespace nodata::storage {

namespace internal {
struct SqliteDb;
}

// Owns the SQLite connection and the stores over it. Safe for concurrent use; the stores live
// as long as the Catalog. Every change is durable (WAL, synchronous=FULL) when the call returns.
//
// A later concern (the components a server runs, the checkpoints of aggregations) gets its own
// store class beside these, an accessor here, and its tables in a new migration step
// (internal/catalog_schema.cc), over the same connection.
class Catalog {
 public:
  // Opens or creates the database at `path` and migrates it to this binary's schema version
  // in one transaction. FAILED_PRECONDITION when a newer nodata wrote it.
  static absl::StatusOr<std::unique_ptr<Catalog>> Open(const std::string& path);
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  TopicStore& topics() { return topics_; }
  OffsetStore& offsets() { return offsets_; }

  // The store methods under their former names, until every caller names the store.
  absl::Status CreateTopic(const TopicMeta& topic) { return topics_.Create(topic); }
  absl::Status DeleteTopic(std::string_view name) { return topics_.Delete(name); }
  absl::StatusOr<std::vector<TopicMeta>> ListTopics() { return topics_.List(); }
  absl::Status SetRetention(std::string_view name, int64_t retention_ms, int64_t retention_bytes) {
    return topics_.SetRetention(name, retention_ms, retention_bytes);
  }
  absl::Status SetPartitions(std::string_view name, uint32_t partitions) {
    return topics_.SetPartitions(name, partitions);
  }
  absl::Status CommitOffsets(std::string_view group, std::string_view topic,
                             const std::vector<std::pair<uint32_t, uint64_t>>& offsets) {
    return offsets_.Commit(group, topic, offsets);
  }
  absl::StatusOr<std::map<uint32_t, uint64_t>> GetOffsets(std::string_view group,
                                                          std::string_view topic) {
    return offsets_.Get(group, topic);
  }
  absl::StatusOr<int> DeleteOffsets(std::string_view group, std::string_view topic) {
    return offsets_.Delete(group, topic);
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListGroups() {
    return offsets_.ListGroups();
  }

 private:
  explicit Catalog(std::unique_ptr<internal::SqliteDb> db);

  const std::unique_ptr<internal::SqliteDb> db_;
  TopicStore topics_;
  OffsetStore offsets_;
};

}  // namespace nodata::storage
