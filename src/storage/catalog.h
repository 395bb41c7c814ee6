// Durable metadata of the data directory in one SQLite file (DATA/meta.db), one store per
// concern. Schema and version history: docs/formats/catalog.md.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/aggregation_store.h"
#include "storage/component_store.h"
#include "storage/offset_store.h"
#include "storage/token_store.h"
#include "storage/topic_store.h"

namespace nodata::storage {

namespace internal {
struct SqliteDb;
}

// Owns the SQLite connection and the stores over it. Safe for concurrent use; the stores live
// as long as the Catalog. Every change is durable (WAL, synchronous=FULL) when the call returns.
//
// A later concern (such as the checkpoints of aggregations) gets its own
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
  ComponentStore& components() { return components_; }
  AggregationStore& aggregations() { return aggregations_; }
  TokenStore& tokens() { return tokens_; }

 private:
  explicit Catalog(std::unique_ptr<internal::SqliteDb> db);

  const std::unique_ptr<internal::SqliteDb> db_;
  TopicStore topics_;
  OffsetStore offsets_;
  ComponentStore components_;
  AggregationStore aggregations_;
  TokenStore tokens_;
};

}  // namespace nodata::storage
