// The catalog's schema: the version this binary writes and the ordered migrations reaching it.
// The tables are written up in docs/formats/catalog.md.
#pragma once

#include <string_view>

#include "absl/status/status.h"

struct sqlite3;

namespace nodata::storage::internal {

// Persistent format: the schema version stored in `schema_version`. Each version names one
// migration step for good; a new concern (a table, a column) is a new step and a new version.
inline constexpr int kCatalogSchemaVersion = 6;

// Brings the database to kCatalogSchemaVersion in one transaction: every migration above the
// stored version, in order, then the new version; a failure leaves the database as it was.
// FAILED_PRECONDITION, changing nothing, when the stored version is newer than this binary
// knows. `path` names the database in messages. Call with the connection to itself.
absl::Status MigrateCatalog(sqlite3* db, std::string_view path);

}  // namespace nodata::storage::internal
