// SQLite plumbing shared by the catalog's stores: the one connection, statements, error mapping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

struct sqlite3;
struct sqlite3_stmt;

namespace nodata::storage::internal {

// The catalog's one SQLite connection. Every statement or transaction runs with `mu` held, so
// the stores over it never interleave inside one another's transactions.
struct SqliteDb {
  explicit SqliteDb(sqlite3* handle) : db(handle) {}
  ~SqliteDb();  // closes the connection
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  absl::Mutex mu;
  sqlite3* const db ABSL_PT_GUARDED_BY(mu);
};

// "metadata <what>: <SQLite's message>" with the canonical code of SQLite's result code.
absl::Status SqliteError(sqlite3* db, int rc, std::string_view what);

// Runs one or more statements that return no rows.
absl::Status Exec(sqlite3* db, const char* sql);

// Ends a transaction that failed; the first error is what the caller reports.
void Rollback(sqlite3* db);

// Owns a prepared statement.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const;
  int rc() const { return rc_; }
  sqlite3_stmt* get() { return stmt_; }
  void BindText(int i, std::string_view s);
  void BindInt(int i, int64_t v);
  // Column `i` of the row the last step returned; "" for NULL.
  std::string ColumnText(int i);
  int64_t ColumnInt(int i);

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

// Statements on a table of definitions keyed by a `name` column (components, aggregations),
// each under `db.mu`. `noun` names a row in messages: "component \"x\" already exists".

// Runs the INSERT `sql` with the parameters `bind` sets; ALREADY_EXISTS when a row of that
// name exists.
absl::Status InsertNamed(SqliteDb& db, std::string_view noun, std::string_view name,
                         const char* sql, absl::FunctionRef<void(Statement&)> bind);
// Runs the UPDATE or DELETE `sql` with the parameters `bind` sets; NOT_FOUND when it changed
// no row.
absl::Status ChangeNamed(SqliteDb& db, std::string_view noun, std::string_view name,
                         const char* sql, absl::FunctionRef<void(Statement&)> bind);
// Runs the SELECT `sql`, calling `read` on each row; `what` names the query in messages.
absl::Status ForEachRow(SqliteDb& db, std::string_view what, const char* sql,
                        absl::FunctionRef<void(Statement&)> read);

}  // namespace nodata::storage::internal
