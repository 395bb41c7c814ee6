#include "storage/offset_store.h"

#include <sqlite3.h>

#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "storage/internal/sqlite.h"

namespace nodata::storage {

using internal::Exec;
using internal::Rollback;
using internal::SqliteError;
using internal::Statement;

absl::Status OffsetStore::Commit(std::string_view group, std::string_view topic,
                                 const std::vector<std::pair<PartitionId, Offset>>& offsets) {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE;"));
  const int64_t now = NowMicros();
  // Only while the topic exists: a commit racing the topic's deletion writes nothing.
  Statement st(db,
               "INSERT INTO group_offsets (grp, topic, partition, next_offset, updated_at_us) "
               "SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM topics WHERE name = ?2) "
               "ON CONFLICT (grp, topic, partition) DO UPDATE SET "
               "next_offset = excluded.next_offset, updated_at_us = excluded.updated_at_us");
  if (!st.ok()) {
    Rollback(db);
    return SqliteError(db, st.rc(), "prepare");
  }
  for (const auto& [partition, offset] : offsets) {
    sqlite3_reset(st.get());
    st.BindText(1, group);
    st.BindText(2, topic);
    st.BindInt(3, partition.value());
    st.BindInt(4, static_cast<int64_t>(offset.value()));
    st.BindInt(5, now);
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE) {
      absl::Status s = SqliteError(db, rc, "commit offsets");
      Rollback(db);
      return s;
    }
    if (sqlite3_changes(db) == 0) {
      Rollback(db);
      return absl::NotFoundError(StrCat("topic \"", topic, "\" does not exist"));
    }
  }
  absl::Status s = Exec(db, "COMMIT;");
  if (!s.ok()) Rollback(db);
  return s;
}

absl::StatusOr<std::map<PartitionId, Offset>> OffsetStore::Get(std::string_view group,
                                                              std::string_view topic) {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db, "SELECT partition, next_offset FROM group_offsets WHERE grp = ? AND topic = ?");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  st.BindText(1, group);
  st.BindText(2, topic);
  std::map<PartitionId, Offset> out;
  for (;;) {
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db, rc, "get offsets");
    out[PartitionId(static_cast<uint32_t>(sqlite3_column_int64(st.get(), 0)))] =
        Offset(static_cast<uint64_t>(sqlite3_column_int64(st.get(), 1)));
  }
  return out;
}

absl::StatusOr<int> OffsetStore::Delete(std::string_view group, std::string_view topic) {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db, "DELETE FROM group_offsets WHERE grp = ? AND topic = ?");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  st.BindText(1, group);
  st.BindText(2, topic);
  int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "delete offsets");
  return sqlite3_changes(db);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> OffsetStore::ListGroups() {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db, "SELECT DISTINCT grp, topic FROM group_offsets ORDER BY grp, topic");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  std::vector<std::pair<std::string, std::string>> out;
  for (;;) {
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db, rc, "list groups");
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0)),
                     reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 1)));
  }
  return out;
}

}  // namespace nodata::storage
