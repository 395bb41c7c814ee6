// The catalog's registered components, durable in the catalog's SQLite file. The store keeps
// each component's definition as the components module wrote it (opaque text here) and the
// hash of its module, whose bytes live in the data directory (DataDir::ComponentModule).
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

struct ComponentRow {
  std::string name;
  std::string kind;           // "wasm"
  std::string spec;           // the components module's definition (JSON)
  std::string module_sha256;  // hex
  int64_t created_at_us = 0;
  int64_t updated_at_us = 0;
};

// The `components` table. Safe for concurrent use; lives as long as the Catalog that owns it.
// Every change is durable when the call returns.
class ComponentStore {
 public:
  explicit ComponentStore(internal::SqliteDb& db) : db_(db) {}
  ComponentStore(const ComponentStore&) = delete;
  ComponentStore& operator=(const ComponentStore&) = delete;

  // ALREADY_EXISTS when a component of that name is registered.
  absl::Status Create(const ComponentRow& row);
  // Replaces the spec, module hash and update time; NOT_FOUND when there is none.
  absl::Status Update(const ComponentRow& row);
  // NOT_FOUND when there is none.
  absl::Status Delete(std::string_view name);
  // Every component, by name.
  absl::StatusOr<std::vector<ComponentRow>> List();

 private:
  internal::SqliteDb& db_;
};

}  // namespace nodata::storage
