#include "storage/internal/sqlite.h"

#include <sqlite3.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/status.h"
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

std::string Statement::ColumnText(int i) {
  const unsigned char* p = sqlite3_column_text(stmt_, i);
  return std::string(p ? reinterpret_cast<const char*>(p) : "",
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, i)));
}

int64_t Statement::ColumnInt(int i) { return sqlite3_column_int64(stmt_, i); }

namespace {

// Prepares `sql`, binds its parameters and steps once: the step's result code.
absl::StatusOr<int> StepOnce(sqlite3* db, const char* sql,
                             absl::FunctionRef<void(Statement&)> bind) {
  Statement st(db, sql);
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  bind(st);
  return sqlite3_step(st.get());
}

}  // namespace

absl::Status InsertNamed(SqliteDb& db, std::string_view noun, std::string_view name,
                         const char* sql, absl::FunctionRef<void(Statement&)> bind) {
  absl::MutexLock lock(&db.mu);
  ASSIGN_OR_RETURN(const int rc, StepOnce(db.db, sql, bind));
  if ((rc & 0xff) == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(StrCat(noun, " \"", name, "\" already exists"));
  }
  if (rc != SQLITE_DONE) return SqliteError(db.db, rc, StrCat("create ", noun));
  return absl::OkStatus();
}

absl::Status ChangeNamed(SqliteDb& db, std::string_view noun, std::string_view name,
                         const char* sql, absl::FunctionRef<void(Statement&)> bind) {
  absl::MutexLock lock(&db.mu);
  ASSIGN_OR_RETURN(const int rc, StepOnce(db.db, sql, bind));
  if (rc != SQLITE_DONE) return SqliteError(db.db, rc, StrCat("change ", noun));
  if (sqlite3_changes(db.db) == 0) {
    return absl::NotFoundError(StrCat(noun, " \"", name, "\" does not exist"));
  }
  return absl::OkStatus();
}

absl::Status ForEachRow(SqliteDb& db, std::string_view what, const char* sql,
                        absl::FunctionRef<void(Statement&)> read) {
  absl::MutexLock lock(&db.mu);
  Statement st(db.db, sql);
  if (!st.ok()) return SqliteError(db.db, st.rc(), "prepare");
  for (;;) {
    const int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) return absl::OkStatus();
    if (rc != SQLITE_ROW) return SqliteError(db.db, rc, what);
    read(st);
  }
}

}  // namespace nodata::storage::internal
