#include "storage/component_store.h"

#include <sqlite3.h>

#include "common/status.h"
#include "common/strings.h"
#include "storage/internal/sqlite.h"

namespace nodata::storage {

using internal::SqliteError;
using internal::Statement;

absl::Status ComponentStore::Create(const ComponentRow& row) {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db,
               "INSERT INTO components (name, kind, spec, module_sha256, created_at_us, "
               "updated_at_us) VALUES (?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  st.BindText(1, row.name);
  st.BindText(2, row.kind);
  st.BindText(3, row.spec);
  st.BindText(4, row.module_sha256);
  st.BindInt(5, row.created_at_us);
  st.BindInt(6, row.updated_at_us);
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(StrCat("component \"", row.name, "\" already exists"));
  }
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "create component");
  return absl::OkStatus();
}

absl::Status ComponentStore::Update(const ComponentRow& row) {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db,
               "UPDATE components SET spec = ?, module_sha256 = ?, updated_at_us = ? "
               "WHERE name = ?");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  st.BindText(1, row.spec);
  st.BindText(2, row.module_sha256);
  st.BindInt(3, row.updated_at_us);
  st.BindText(4, row.name);
  const int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "update component");
  if (sqlite3_changes(db) == 0) {
    return absl::NotFoundError(StrCat("component \"", row.name, "\" does not exist"));
  }
  return absl::OkStatus();
}

absl::Status ComponentStore::Delete(std::string_view name) {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db, "DELETE FROM components WHERE name = ?");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  st.BindText(1, name);
  const int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "delete component");
  if (sqlite3_changes(db) == 0) {
    return absl::NotFoundError(StrCat("component \"", name, "\" does not exist"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ComponentRow>> ComponentStore::List() {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db,
               "SELECT name, kind, spec, module_sha256, created_at_us, updated_at_us "
               "FROM components ORDER BY name");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  std::vector<ComponentRow> out;
  auto text = [&](int col) {
    const unsigned char* p = sqlite3_column_text(st.get(), col);
    return std::string(p ? reinterpret_cast<const char*>(p) : "",
                       static_cast<size_t>(sqlite3_column_bytes(st.get(), col)));
  };
  for (;;) {
    const int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db, rc, "list components");
    ComponentRow row;
    row.name = text(0);
    row.kind = text(1);
    row.spec = text(2);
    row.module_sha256 = text(3);
    row.created_at_us = sqlite3_column_int64(st.get(), 4);
    row.updated_at_us = sqlite3_column_int64(st.get(), 5);
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace nodata::storage
