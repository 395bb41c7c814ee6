#include "storage/catalog.h"

#include <sqlite3.h>

#include "common/status.h"
#include "common/strings.h"
#include "storage/internal/catalog_schema.h"
#include "storage/internal/sqlite.h"

namespace nodata::storage {

absl::StatusOr<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path) {
  sqlite3* handle = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &handle,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = internal::SqliteError(handle, rc, StrCat("open ", path));
    sqlite3_close(handle);
    return s;
  }
  auto db = std::make_unique<internal::SqliteDb>(handle);
  {
    absl::MutexLock lock(&db->mu);
    sqlite3_busy_timeout(db->db, 5000);
    // The journal mode is stored in the file and cannot change inside a transaction; the
    // synchronous level is the connection's.
    RETURN_IF_ERROR(internal::Exec(db->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));
    RETURN_IF_ERROR(internal::MigrateCatalog(db->db, path));
  }
  return std::unique_ptr<Catalog>(new Catalog(std::move(db)));
}

Catalog::Catalog(std::unique_ptr<internal::SqliteDb> db)
    : db_(std::move(db)), topics_(*db_), offsets_(*db_), components_(*db_),
      aggregations_(*db_),
      tokens_(*db_) {}

Catalog::~Catalog() = default;

}  // namespace nodata::storage
