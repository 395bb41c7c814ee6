#include "storage/catalog.h"

#include <sqlite3.h>

#include <optional>

#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"

namespace nodata::storage {
namespace {

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

// Owns a prepared statement.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  int rc() const { return rc_; }
  sqlite3_stmt* get() { return stmt_; }
  void BindText(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db, rc, StrCat("open ", path));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<Catalog> catalog(new Catalog(db));
  absl::MutexLock lock(&catalog->mu_);
  absl::Status s = catalog->Exec(
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS topics ("
      "  name TEXT PRIMARY KEY,"
      "  partitions INTEGER NOT NULL,"
      "  created_at_us INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS group_offsets ("
      "  grp TEXT NOT NULL,"
      "  topic TEXT NOT NULL,"
      "  partition INTEGER NOT NULL,"
      "  next_offset INTEGER NOT NULL,"
      "  updated_at_us INTEGER NOT NULL,"
      "  PRIMARY KEY (grp, topic, partition));"
      // A topic's group offsets go with it, in the same statement's transaction, and a topic
      // created again under an old name starts with none.
      "CREATE TRIGGER IF NOT EXISTS topics_delete_offsets AFTER DELETE ON topics BEGIN"
      "  DELETE FROM group_offsets WHERE topic = OLD.name; END;"
      "CREATE TRIGGER IF NOT EXISTS topics_insert_offsets AFTER INSERT ON topics BEGIN"
      "  DELETE FROM group_offsets WHERE topic = NEW.name; END;"
      "INSERT INTO schema_version SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_version);");
  if (!s.ok()) return s;
  // Version 2: per-topic retention.
  int version = 0;
  {
    Statement st(db, "SELECT version FROM schema_version");
    if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
    if (sqlite3_step(st.get()) == SQLITE_ROW) version = sqlite3_column_int(st.get(), 0);
  }
  if (version < 2) {
    s = catalog->Exec(
        "BEGIN IMMEDIATE;"
        "ALTER TABLE topics ADD COLUMN retention_ms INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE topics ADD COLUMN retention_bytes INTEGER NOT NULL DEFAULT 0;"
        "UPDATE schema_version SET version = 2;"
        "COMMIT;");
    if (!s.ok()) {
      catalog->Exec("ROLLBACK;").IgnoreError();
      return s;
    }
  }
  // Version 3: declared key and data formats, by name (DataFormatName); older topics are bytes.
  if (version < 3) {
    s = catalog->Exec(
        "BEGIN IMMEDIATE;"
        "ALTER TABLE topics ADD COLUMN key_format TEXT NOT NULL DEFAULT 'bytes';"
        "ALTER TABLE topics ADD COLUMN data_format TEXT NOT NULL DEFAULT 'bytes';"
        "UPDATE schema_version SET version = 3;"
        "COMMIT;");
    if (!s.ok()) {
      catalog->Exec("ROLLBACK;").IgnoreError();
      return s;
    }
  }
  return catalog;
}

Catalog::~Catalog() { sqlite3_close(db_); }

absl::Status Catalog::Exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, "exec");
  return absl::OkStatus();
}

absl::Status Catalog::CreateTopic(const TopicMeta& topic) {
  absl::MutexLock lock(&mu_);
  Statement st(db_,
               "INSERT INTO topics (name, partitions, created_at_us, retention_ms, "
               "retention_bytes, key_format, data_format) VALUES (?, ?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return SqliteError(db_, st.rc(), "prepare");
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
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, "create topic");
  return absl::OkStatus();
}

absl::Status Catalog::DeleteTopic(std::string_view name) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "DELETE FROM topics WHERE name = ?");
  if (!st.ok()) return SqliteError(db_, st.rc(), "prepare");
  st.BindText(1, name);
  int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, "delete topic");
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(StrCat("topic \"", name, "\" does not exist"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TopicMeta>> Catalog::ListTopics() {
  absl::MutexLock lock(&mu_);
  Statement st(db_,
               "SELECT name, partitions, created_at_us, retention_ms, retention_bytes, key_format, "
               "data_format FROM topics ORDER BY name");
  if (!st.ok()) return SqliteError(db_, st.rc(), "prepare");
  std::vector<TopicMeta> out;
  for (;;) {
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db_, rc, "list topics");
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

absl::Status Catalog::CommitOffsets(std::string_view group, std::string_view topic,
                                    const std::vector<std::pair<uint32_t, uint64_t>>& offsets) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE;"));
  const int64_t now = NowMicros();
  // Only while the topic exists: a commit racing the topic's deletion writes nothing.
  Statement st(db_,
               "INSERT INTO group_offsets (grp, topic, partition, next_offset, updated_at_us) "
               "SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM topics WHERE name = ?2) "
               "ON CONFLICT (grp, topic, partition) DO UPDATE SET "
               "next_offset = excluded.next_offset, updated_at_us = excluded.updated_at_us");
  if (!st.ok()) {
    Exec("ROLLBACK;").IgnoreError();
    return SqliteError(db_, st.rc(), "prepare");
  }
  for (const auto& [partition, offset] : offsets) {
    sqlite3_reset(st.get());
    st.BindText(1, group);
    st.BindText(2, topic);
    st.BindInt(3, partition);
    st.BindInt(4, static_cast<int64_t>(offset));
    st.BindInt(5, now);
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE) {
      absl::Status s = SqliteError(db_, rc, "commit offsets");
      Exec("ROLLBACK;").IgnoreError();
      return s;
    }
    if (sqlite3_changes(db_) == 0) {
      Exec("ROLLBACK;").IgnoreError();
      return absl::NotFoundError(StrCat("topic \"", topic, "\" does not exist"));
    }
  }
  absl::Status s = Exec("COMMIT;");
  // SQLite does not always end the transaction when COMMIT fails: end it, or every later write
  // would run inside it and never become durable.
  if (!s.ok()) Exec("ROLLBACK;").IgnoreError();
  return s;
}

absl::StatusOr<std::map<uint32_t, uint64_t>> Catalog::GetOffsets(std::string_view group,
                                                                 std::string_view topic) {
  absl::MutexLock lock(&mu_);
  Statement st(db_,
               "SELECT partition, next_offset FROM group_offsets WHERE grp = ? AND topic = ?");
  if (!st.ok()) return SqliteError(db_, st.rc(), "prepare");
  st.BindText(1, group);
  st.BindText(2, topic);
  std::map<uint32_t, uint64_t> out;
  for (;;) {
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db_, rc, "get offsets");
    out[static_cast<uint32_t>(sqlite3_column_int64(st.get(), 0))] =
        static_cast<uint64_t>(sqlite3_column_int64(st.get(), 1));
  }
  return out;
}

absl::StatusOr<int> Catalog::DeleteOffsets(std::string_view group, std::string_view topic) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "DELETE FROM group_offsets WHERE grp = ? AND topic = ?");
  if (!st.ok()) return SqliteError(db_, st.rc(), "prepare");
  st.BindText(1, group);
  st.BindText(2, topic);
  int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, "delete offsets");
  return sqlite3_changes(db_);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Catalog::ListGroups() {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT DISTINCT grp, topic FROM group_offsets ORDER BY grp, topic");
  if (!st.ok()) return SqliteError(db_, st.rc(), "prepare");
  std::vector<std::pair<std::string, std::string>> out;
  for (;;) {
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db_, rc, "list groups");
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0)),
                     reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 1)));
  }
  return out;
}

absl::Status Catalog::SetRetention(std::string_view name, int64_t retention_ms,
                                   int64_t retention_bytes) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "UPDATE topics SET retention_ms = ?, retention_bytes = ? WHERE name = ?");
  if (!st.ok()) return SqliteError(db_, st.rc(), "prepare");
  st.BindInt(1, retention_ms);
  st.BindInt(2, retention_bytes);
  st.BindText(3, name);
  int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, "set retention");
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(StrCat("topic \"", name, "\" does not exist"));
  }
  return absl::OkStatus();
}

absl::Status Catalog::SetPartitions(std::string_view name, uint32_t partitions) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "UPDATE topics SET partitions = ? WHERE name = ?");
  if (!st.ok()) return SqliteError(db_, st.rc(), "prepare");
  st.BindInt(1, partitions);
  st.BindText(2, name);
  int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, "set partitions");
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(StrCat("topic \"", name, "\" does not exist"));
  }
  return absl::OkStatus();
}

}  // namespace nodata::storage
