// The catalog's defined aggregations, durable in the catalog's SQLite file. The store keeps
// each aggregation's definition as the aggregate module wrote it (opaque text here) and the
// hash of its WebAssembly reducer, if any, whose bytes live in the data directory
// (DataDir::ComponentModule). Its state and checkpoints live elsewhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodata::storage {

namespace internal {
struct SqliteDb;
}

struct AggregationRow {
  std::string name;
  std::string spec;           // the aggregate module's definition (JSON)
  std::string module_sha256;  // hex; "" for built-in measures
  int64_t created_at_us = 0;
  int64_t updated_at_us = 0;
};

// The `aggregations` table. Safe for concurrent use; lives as long as the Catalog that owns it.
// Every change is durable when the call returns.
class AggregationStore {
 public:
  explicit AggregationStore(internal::SqliteDb& db) : db_(db) {}
  AggregationStore(const AggregationStore&) = delete;
  AggregationStore& operator=(const AggregationStore&) = delete;

  // ALREADY_EXISTS when an aggregation of that name is defined.
  absl::Status Create(const AggregationRow& row);
  // Replaces the spec, module hash and update time; NOT_FOUND when there is none.
  absl::Status Update(const AggregationRow& row);
  // NOT_FOUND when there is none.
  absl::Status Delete(std::string_view name);
  // Every aggregation, by name.
  absl::StatusOr<std::vector<AggregationRow>> List();

 private:
  internal::SqliteDb& db_;
};

}  // namespace nodata::storage
