#include "storage/internal/catalog_schema.h"

#include <sqlite3.h>

#include <iterator>

#include "absl/status/statusor.h"
#include "common/status.h"
#include "common/strings.h"
#include "storage/internal/sqlite.h"

namespace nodata::storage::internal {
namespace {

struct Migration {
  int version;      // the schema version the step produces
  const char* sql;  // run inside the migration's transaction
};

// In order. A released step never changes: data directories in the field ran it as written.
constexpr Migration kMigrations[] = {
    // 1: topics, and the table holding the schema version.
    {1,
     "CREATE TABLE IF NOT EXISTS topics ("
     "  name TEXT PRIMARY KEY,"
     "  partitions INTEGER NOT NULL,"
     "  created_at_us INTEGER NOT NULL);"
     "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"},
    // 2: per-topic retention (0: the server's default, -1: unlimited).
    {2,
     "ALTER TABLE topics ADD COLUMN retention_ms INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE topics ADD COLUMN retention_bytes INTEGER NOT NULL DEFAULT 0;"},
    // 3: declared key and data formats, by name (DataFormatName); older topics are bytes.
    // Also the group offsets and the triggers tying them to their topic: binaries of version
    // 2 created them, when missing, on every open without changing the version, so a
    // version 2 database may lack them.
    {3,
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
     "ALTER TABLE topics ADD COLUMN key_format TEXT NOT NULL DEFAULT 'bytes';"
     "ALTER TABLE topics ADD COLUMN data_format TEXT NOT NULL DEFAULT 'bytes';"},
    // 4: the components a server runs (docs/formats/component-abi.md); module bytes are files.
    {4,
     "CREATE TABLE IF NOT EXISTS components ("
     "  name TEXT PRIMARY KEY,"
     "  kind TEXT NOT NULL,"
     "  spec TEXT NOT NULL,"
     "  module_sha256 TEXT NOT NULL,"
     "  created_at_us INTEGER NOT NULL,"
     "  updated_at_us INTEGER NOT NULL);"},
    // 5: the aggregations a server maintains; reducer module bytes are files, their state is
    // kept by the aggregate module.
    {5,
     "CREATE TABLE IF NOT EXISTS aggregations ("
     "  name TEXT PRIMARY KEY,"
     "  spec TEXT NOT NULL,"
     "  module_sha256 TEXT NOT NULL,"
     "  created_at_us INTEGER NOT NULL,"
     "  updated_at_us INTEGER NOT NULL);"},
    // 6: access tokens (docs/formats/catalog.md): a slow salted hash, never the secret.
    {6,
     "CREATE TABLE IF NOT EXISTS tokens ("
     "  name TEXT PRIMARY KEY,"
     "  id TEXT NOT NULL UNIQUE,"
     "  hash TEXT NOT NULL,"
     "  scopes TEXT NOT NULL,"
     "  created_at_us INTEGER NOT NULL,"
     "  expires_at_us INTEGER NOT NULL DEFAULT 0,"
     "  revoked_at_us INTEGER NOT NULL DEFAULT 0);"},
};
static_assert(kMigrations[std::size(kMigrations) - 1].version == kCatalogSchemaVersion);

// The stored version; 0 for a new database (no `schema_version` table, or no row in it).
absl::StatusOr<int> StoredVersion(sqlite3* db) {
  {
    Statement st(db,
                 "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'");
    if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
    const int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) return 0;
    if (rc != SQLITE_ROW) return SqliteError(db, rc, "read schema version");
  }
  Statement st(db, "SELECT version FROM schema_version");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_DONE) return 0;
  if (rc != SQLITE_ROW) return SqliteError(db, rc, "read schema version");
  return sqlite3_column_int(st.get(), 0);
}

absl::Status Migrate(sqlite3* db, std::string_view path) {
  ASSIGN_OR_RETURN(const int stored, StoredVersion(db));
  if (stored > kCatalogSchemaVersion) {
    return absl::FailedPreconditionError(
        StrCat("metadata ", path, " has schema version ", stored,
               ", newer than this nodata knows (", kCatalogSchemaVersion,
               "): a newer nodata wrote it; run that version or a later one"));
  }
  if (stored == kCatalogSchemaVersion) return absl::OkStatus();
  for (const Migration& m : kMigrations) {
    if (m.version <= stored) continue;
    absl::Status s = Exec(db, m.sql);
    if (!s.ok()) {
      return absl::Status(s.code(), StrCat(s.message(), " (migrating ", path,
                                           " to schema version ", m.version, ")"));
    }
  }
  RETURN_IF_ERROR(Exec(db, "DELETE FROM schema_version;"));
  Statement st(db, "INSERT INTO schema_version (version) VALUES (?)");
  if (!st.ok()) return SqliteError(db, st.rc(), "prepare");
  st.BindInt(1, kCatalogSchemaVersion);
  const int rc = sqlite3_step(st.get());
  if (rc != SQLITE_DONE) return SqliteError(db, rc, "write schema version");
  return absl::OkStatus();
}

}  // namespace

absl::Status MigrateCatalog(sqlite3* db, std::string_view path) {
  // IMMEDIATE: takes the write lock before reading the version, so two openers cannot both
  // decide to migrate.
  RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE;"));
  absl::Status s = Migrate(db, path);
  if (s.ok()) s = Exec(db, "COMMIT;");
  if (!s.ok()) Rollback(db);
  return s;
}

}  // namespace nodata::storage::internal
