#include "storage/topic_store.h"

#include <sqlite3.h>

#include <optional>
#include <utility>

#include "common/strings.h"
#include "storage/internal/sqlite.h"

namespace nodata::storage {

using internal::SqliteError;
using internal::Statement;

absl::Status TopicStore::Create(const TopicMeta& topic) {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db,
               "INSERT INTO topics (name, partitions, created_at_us, retention_ms, "
               "retention_bytes, key_format, data_format) VALUES (?, ?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  st.BindText(1, topic.name);
  st.BindInt(2, topic.partitions);
  st.BindInt(3, topic.created_at_us);
  st.BindInt(4, topic.retention_ms);
  st.BindInt(5, topic.retention_bytes);
  st.BindText(6, DataFormatName(topic.key_format));
  st.BindText(7, DataFormatName(topic.data_format));
  int rc = sqlite3_step(st.get());
  if ((rc & 0xff) == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(StrCat("topic \"", topic.name, "\" already exists"));
  }
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "create topic");
  return absl::OkStatus();
}

absl::Status TopicStore::Delete(std::string_view name) {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db, "DELETE FROM topics WHERE name = ?");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  st.BindText(1, name);
  int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "delete topic");
  if (sqlite3_changes(db) == 0) {
    return absl::NotFoundError(StrCat("topic \"", name, "\" does not exist"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TopicMeta>> TopicStore::List() {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db,
               "SELECT name, partitions, created_at_us, retention_ms, retention_bytes, key_format, "
               "data_format FROM topics ORDER BY name");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  std::vector<TopicMeta> out;
  for (;;) {
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db, rc, "list topics");
    TopicMeta t;
    t.name = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
    t.partitions = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 1));
    t.created_at_us = sqlite3_column_int64(st.get(), 2);
    t.retention_ms = sqlite3_column_int64(st.get(), 3);
    t.retention_bytes = sqlite3_column_int64(st.get(), 4);
    for (auto [column, format] : {std::pair{5, &t.key_format}, std::pair{6, &t.data_format}}) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), column));
      std::optional<DataFormat> parsed = ParseDataFormat(text ? text : "");
      if (!parsed) {
        return absl::DataLossError(StrCat("metadata: topic \"", t.name, "\" has an unknown ",
                                          column == 5 ? "key" : "data", " format \"",
                                          text ? text : "", "\""));
      }
      *format = *parsed;
    }
    out.push_back(std::move(t));
  }
  return out;
}

absl::Status TopicStore::SetRetention(std::string_view name, int64_t retention_ms,
                                      int64_t retention_bytes) {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db, "UPDATE topics SET retention_ms = ?, retention_bytes = ? WHERE name = ?");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  st.BindInt(1, retention_ms);
  st.BindInt(2, retention_bytes);
  st.BindText(3, name);
  int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "set retention");
  if (sqlite3_changes(db) == 0) {
    return absl::NotFoundError(StrCat("topic \"", name, "\" does not exist"));
  }
  return absl::OkStatus();
}

absl::Status TopicStore::SetPartitions(std::string_view name, uint32_t partitions) {
  absl::MutexLock lock(&db_.mu);
  sqlite3* const db = db_.db;
  Statement st(db, "UPDATE topics SET partitions = ? WHERE name = ?");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  st.BindInt(1, partitions);
  st.BindText(2, name);
  int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "set partitions");
  if (sqlite3_changes(db) == 0) {
    return absl::NotFoundError(StrCat("topic \"", name, "\" does not exist"));
  }
  return absl::OkStatus();
}

}  // namespace nodata::storage
