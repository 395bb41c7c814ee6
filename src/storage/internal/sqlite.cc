#include "storage/internal/sqlite.h"

#include <sqlite3.h>

#include <string>

#include "common/strings.h"

namespace nodata::storage::internal {

SqliteDb::~SqliteDb() { sqlite3_close(db); }

absl::Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string message = StrCat("metadata ", what, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::ResourceExhaustedError(message);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return absl::PermissionDeniedError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) return SqliteError(db, rc, "exec");
  return absl::OkStatus();
}

void Rollback(sqlite3* db) {
  // SQLite does not always end the transaction when a statement or COMMIT fails: end it, or
  // every later write would run inside it and never become durable. Without an open
  // transaction ROLLBACK fails harmlessly.
  Exec(db, "ROLLBACK;").IgnoreError();
}

Statement::Statement(sqlite3* db, const char* sql) {
  rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

bool Statement::ok() const { return rc_ == SQLITE_OK; }

void Statement::BindText(int i, std::string_view s) {
  sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
}

void Statement::BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }

}  // namespace nodata::storage::internal
