#include "storage/catalog.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/strings.h"
#include "common/testing/ids.h"
#include "gtest/gtest.h"

namespace nodata::storage {
namespace {

using ::nodata::testing::OffsetMap;
using ::nodata::testing::PartitionOffsets;

// A fresh directory for one test's database, removed at the end.
class TempDb {
 public:
  explicit TempDb(std::string_view name)
      : dir_(std::filesystem::temp_directory_path() /
             StrCat("nodata-catalog-", name, "-", ::getpid())) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~TempDb() { std::filesystem::remove_all(dir_); }
  std::string path() const { return (dir_ / "meta.db").string(); }

 private:
  std::filesystem::path dir_;
};

// Runs `sql` on the database at `path` with SQLite alone, as an older nodata would have.
void RunSql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

// The first column of every row of `sql`, as text ("" for NULL).
std::vector<std::string> Column(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  std::vector<std::string> out;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  while (sqlite3_step(st) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    out.emplace_back(text ? text : "");
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

// `sqlite3 meta.db .dump` of a data directory written by nodata 0.1.0 at schema version 3:
// three topics (retention, formats) and a group that committed offsets on one of them.
constexpr const char* kVersionThreeDump = R"sql(
CREATE TABLE topics (  name TEXT PRIMARY KEY,  partitions INTEGER NOT NULL,  created_at_us INTEGER NOT NULL, retention_ms INTEGER NOT NULL DEFAULT 0, retention_bytes INTEGER NOT NULL DEFAULT 0, key_format TEXT NOT NULL DEFAULT 'bytes', data_format TEXT NOT NULL DEFAULT 'bytes');
INSERT INTO topics VALUES('events',3,1796291145402721,86400000,0,'bytes','bytes');
INSERT INTO topics VALUES('json-topic',2,1796291145487971,0,-1,'string','json');
INSERT INTO topics VALUES('plain',4,1796291145590419,0,0,'bytes','bytes');
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES(3);
CREATE TABLE group_offsets (  grp TEXT NOT NULL,  topic TEXT NOT NULL,  partition INTEGER NOT NULL,  next_offset INTEGER NOT NULL,  updated_at_us INTEGER NOT NULL,  PRIMARY KEY (grp, topic, partition));
INSERT INTO group_offsets VALUES('billing','events',0,2,1796291146046850);
INSERT INTO group_offsets VALUES('billing','events',1,2,1796291146059838);
INSERT INTO group_offsets VALUES('billing','events',2,1,1796291146067913);
CREATE TRIGGER topics_delete_offsets AFTER DELETE ON topics BEGIN  DELETE FROM group_offsets WHERE topic = OLD.name; END;
CREATE TRIGGER topics_insert_offsets AFTER INSERT ON topics BEGIN  DELETE FROM group_offsets WHERE topic = NEW.name; END;
PRAGMA journal_mode=WAL;
)sql";

// What nodata at schema version 4 changed in that directory when it opened it and registered a
// component (its `.dump` is kVersionThreeDump with these rows).
constexpr const char* kVersionFourChanges = R"sql(
CREATE TABLE components (  name TEXT PRIMARY KEY,  kind TEXT NOT NULL,  spec TEXT NOT NULL,  module_sha256 TEXT NOT NULL,  created_at_us INTEGER NOT NULL,  updated_at_us INTEGER NOT NULL);
INSERT INTO components VALUES('upper','wasm','{"input":"events","outputs":["upper"],"config_base64":"","on_error":"dead-letter","fuel_per_record":1000000,"parallelism":1}','9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',1796291147000000,1796291147000000);
DELETE FROM schema_version;
INSERT INTO schema_version VALUES(4);
)sql";

constexpr const char* kSchemaSql =
    "SELECT type || ' ' || name || ': ' || sql FROM sqlite_master ORDER BY name";

TEST(Catalog, TopicsSurviveReopen) {
  auto dir = std::filesystem::temp_directory_path() / StrCat("nodata-catalog-", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string path = (dir / "meta.db").string();
  {
    auto catalog = Catalog::Open(path);
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    ASSERT_TRUE((*catalog)->topics().Create({"b", 3, 10}).ok());
    ASSERT_TRUE((*catalog)->topics().Create({"a", 1, 20}).ok());
    EXPECT_EQ((*catalog)->topics().Create({"a", 2, 30}).code(), absl::StatusCode::kAlreadyExists);
  }
  auto catalog = Catalog::Open(path);
  ASSERT_TRUE(catalog.ok());
  auto topics = (*catalog)->topics().List();
  ASSERT_TRUE(topics.ok());
  ASSERT_EQ(topics->size(), 2u);
  EXPECT_EQ((*topics)[0].name, "a");
  EXPECT_EQ((*topics)[1].partitions, 3u);
  EXPECT_TRUE((*catalog)->topics().Delete("a").ok());
  EXPECT_EQ((*catalog)->topics().Delete("a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*catalog)->topics().List()->size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(Catalog, DataFormatsSurviveReopen) {
  auto dir = std::filesystem::temp_directory_path() / StrCat("nodata-catalog-formats-", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "meta.db").string();
  {
    auto catalog = Catalog::Open(path);
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    TopicMeta json{"j", 2, 10};
    json.key_format = DataFormat::kString;
    json.data_format = DataFormat::kJson;
    ASSERT_TRUE((*catalog)->topics().Create(json).ok());
    ASSERT_TRUE((*catalog)->topics().Create({"b", 1, 20}).ok());
  }
  auto catalog = Catalog::Open(path);
  ASSERT_TRUE(catalog.ok());
  auto topics = (*catalog)->topics().List();
  ASSERT_TRUE(topics.ok());
  ASSERT_EQ(topics->size(), 2u);
  EXPECT_EQ((*topics)[0].name, "b");
  EXPECT_EQ((*topics)[0].key_format, DataFormat::kBytes);
  EXPECT_EQ((*topics)[0].data_format, DataFormat::kBytes);
  EXPECT_EQ((*topics)[1].key_format, DataFormat::kString);
  EXPECT_EQ((*topics)[1].data_format, DataFormat::kJson);
  std::filesystem::remove_all(dir);
}

TEST(Catalog, OpensAVersionTwoDatabaseWithItsTopicsAsBytes) {
  auto dir = std::filesystem::temp_directory_path() / StrCat("nodata-catalog-v2-", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "meta.db").string();
  {
    // The tables as schema version 2 left them.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER NOT "
                           "NULL, created_at_us INTEGER NOT NULL, retention_ms INTEGER NOT NULL "
                           "DEFAULT 0, retention_bytes INTEGER NOT NULL DEFAULT 0);"
                           "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                           "INSERT INTO schema_version VALUES (2);"
                           "INSERT INTO topics VALUES ('old', 3, 5, 1000, -1);",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto catalog = Catalog::Open(path);
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  auto topics = (*catalog)->topics().List();
  ASSERT_TRUE(topics.ok()) << topics.status();
  ASSERT_EQ(topics->size(), 1u);
  EXPECT_EQ((*topics)[0].partitions, 3u);
  EXPECT_EQ((*topics)[0].retention_ms, 1000);
  EXPECT_EQ((*topics)[0].retention_bytes, -1);
  EXPECT_EQ((*topics)[0].key_format, DataFormat::kBytes);
  EXPECT_EQ((*topics)[0].data_format, DataFormat::kBytes);
  std::filesystem::remove_all(dir);
}

TEST(Catalog, GroupOffsetsGoWithTheirTopicAndNeverComeBack) {
  auto dir = std::filesystem::temp_directory_path() / StrCat("nodata-catalog-offsets-", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto catalog = Catalog::Open((dir / "meta.db").string());
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  Catalog& c = **catalog;
  ASSERT_TRUE(c.topics().Create({"t", 2, 10}).ok());
  ASSERT_TRUE(c.offsets().Commit("g", "t", PartitionOffsets({{0, 5}, {1, 7}})).ok());
  ASSERT_TRUE(c.offsets().Commit("g", "t", PartitionOffsets({{1, 9}})).ok());
  EXPECT_EQ(*c.offsets().Get("g", "t"), OffsetMap({{0, 5}, {1, 9}}));
  EXPECT_EQ(c.offsets().ListGroups()->size(), 1u);
  // Deleting the topic deletes its offsets; a topic created again under the name has none.
  ASSERT_TRUE(c.topics().Delete("t").ok());
  EXPECT_TRUE(c.offsets().Get("g", "t")->empty());
  // A commit for a topic that does not exist (racing its deletion) writes nothing.
  EXPECT_EQ(c.offsets().Commit("g", "t", PartitionOffsets({{0, 1}})).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(c.topics().Create({"t", 2, 20}).ok());
  EXPECT_TRUE(c.offsets().Get("g", "t")->empty());
  EXPECT_TRUE(c.offsets().ListGroups()->empty());
  // The catalog still takes writes after the refused commit (no transaction left open).
  ASSERT_TRUE(c.offsets().Commit("g", "t", PartitionOffsets({{0, 3}})).ok());
  EXPECT_EQ(*c.offsets().Get("g", "t"), OffsetMap({{0, 3}}));
  std::filesystem::remove_all(dir);
}

TEST(Catalog, DeleteOffsetsAndSetPartitions) {
  auto dir = std::filesystem::temp_directory_path() / StrCat("nodata-catalog-admin-", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "meta.db").string();
  {
    auto catalog = Catalog::Open(path);
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    Catalog& c = **catalog;
    ASSERT_TRUE(c.topics().Create({"t", 2, 10}).ok());
    ASSERT_TRUE(c.offsets().Commit("g", "t", PartitionOffsets({{0, 5}, {1, 7}})).ok());
    ASSERT_TRUE(c.offsets().Commit("h", "t", PartitionOffsets({{0, 1}})).ok());
    EXPECT_EQ(*c.offsets().Delete("g", "t"), 2);
    EXPECT_EQ(*c.offsets().Delete("g", "t"), 0);
    EXPECT_TRUE(c.offsets().Get("g", "t")->empty());
    EXPECT_EQ(c.offsets().Get("h", "t")->size(), 1u);
    ASSERT_TRUE(c.topics().SetPartitions("t", 5).ok());
    EXPECT_EQ(c.topics().SetPartitions("missing", 5).code(), absl::StatusCode::kNotFound);
  }
  auto catalog = Catalog::Open(path);
  ASSERT_TRUE(catalog.ok());
  EXPECT_EQ((*(*catalog)->topics().List())[0].partitions, 5u);
  std::filesystem::remove_all(dir);
}

// What the step to version 4 adds to a version 3 catalog, as kSchemaSql lists it (the primary
// key's automatic index has no SQL: an empty row).
constexpr const char* kComponentsTableSql =
    "table components: CREATE TABLE components (  name TEXT PRIMARY KEY,  kind TEXT NOT NULL,  spec TEXT NOT NULL,"
    "  module_sha256 TEXT NOT NULL,  created_at_us INTEGER NOT NULL,"
    "  updated_at_us INTEGER NOT NULL)";
// What the step to version 5 adds.
constexpr const char* kAggregationsTableSql =
    "table aggregations: CREATE TABLE aggregations (  name TEXT PRIMARY KEY,  spec TEXT NOT NULL,"
    "  module_sha256 TEXT NOT NULL,  created_at_us INTEGER NOT NULL,"
    "  updated_at_us INTEGER NOT NULL)";
// What the step to version 6 adds (with two automatic indexes: the primary key and the id).
constexpr const char* kTokensTableSql =
    "table tokens: CREATE TABLE tokens (  name TEXT PRIMARY KEY,  id TEXT NOT NULL UNIQUE,"
    "  hash TEXT NOT NULL,  scopes TEXT NOT NULL,  created_at_us INTEGER NOT NULL,"
    "  expires_at_us INTEGER NOT NULL DEFAULT 0,  revoked_at_us INTEGER NOT NULL DEFAULT 0)";

TEST(CatalogSchema, OpensACatalogWrittenByVersionThreeAndAddsComponents) {
  TempDb tmp("v3");
  RunSql(tmp.path(), kVersionThreeDump);
  std::vector<std::string> schema_before = Column(tmp.path(), kSchemaSql);
  {
    auto catalog = Catalog::Open(tmp.path());
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    Catalog& c = **catalog;
    auto topics = c.topics().List();
    ASSERT_TRUE(topics.ok()) << topics.status();
    ASSERT_EQ(topics->size(), 3u);
    const TopicMeta& events = (*topics)[0];
    EXPECT_EQ(events.name, "events");
    EXPECT_EQ(events.partitions, 3u);
    EXPECT_EQ(events.created_at_us, 1796291145402721);
    EXPECT_EQ(events.retention_ms, 86400000);
    EXPECT_EQ(events.retention_bytes, kRetentionDefault);
    const TopicMeta& json = (*topics)[1];
    EXPECT_EQ(json.retention_bytes, kRetentionUnlimited);
    EXPECT_EQ(json.key_format, DataFormat::kString);
    EXPECT_EQ(json.data_format, DataFormat::kJson);
    EXPECT_EQ((*topics)[2].partitions, 4u);
    EXPECT_EQ(*c.offsets().Get("billing", "events"), OffsetMap({{0, 2}, {1, 2}, {2, 1}}));
    EXPECT_EQ(*c.offsets().ListGroups(),
              (std::vector<std::pair<std::string, std::string>>{{"billing", "events"}}));
    // The triggers written by version 3 still tie offsets to their topic.
    ASSERT_TRUE(c.topics().Delete("events").ok());
    EXPECT_TRUE(c.offsets().ListGroups()->empty());
    // Version 4's components table, empty.
    EXPECT_TRUE(c.components().List()->empty());
  }
  // Nothing of version 3 changed; the components, aggregations and tokens tables came.
  schema_before.insert(schema_before.end(), {kComponentsTableSql, "", kAggregationsTableSql, "",
                                             kTokensTableSql, "", ""});
  std::vector<std::string> schema_after = Column(tmp.path(), kSchemaSql);
  std::sort(schema_before.begin(), schema_before.end());
  std::sort(schema_after.begin(), schema_after.end());
  EXPECT_EQ(schema_after, schema_before);
  EXPECT_EQ(Column(tmp.path(), "SELECT version FROM schema_version"),
            std::vector<std::string>{"6"});
  EXPECT_EQ(Column(tmp.path(), "PRAGMA journal_mode"), std::vector<std::string>{"wal"});
}

TEST(CatalogSchema, ANewDatabaseHasTheTablesVersionThreeWroteAndTheLaterOnes) {
  TempDb written("v3-written");
  RunSql(written.path(), kVersionThreeDump);
  TempDb fresh("fresh");
  ASSERT_TRUE(Catalog::Open(fresh.path()).ok());
  std::vector<std::string> want = Column(written.path(), kSchemaSql);
  want.insert(want.end(),
              {kComponentsTableSql, "", kAggregationsTableSql, "", kTokensTableSql, "", ""});
  std::vector<std::string> got = Column(fresh.path(), kSchemaSql);
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(Column(fresh.path(), "SELECT version FROM schema_version"),
            std::vector<std::string>{"6"});
  EXPECT_EQ(Column(fresh.path(), "PRAGMA journal_mode"), std::vector<std::string>{"wal"});
}

TEST(CatalogSchema, OpensAVersionOneDatabase) {
  TempDb tmp("v1");
  RunSql(tmp.path(),
         "CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, "
         "created_at_us INTEGER NOT NULL);"
         "CREATE TABLE schema_version (version INTEGER NOT NULL);"
         "INSERT INTO schema_version VALUES (1);"
         "INSERT INTO topics VALUES ('first', 2, 7);");
  auto catalog = Catalog::Open(tmp.path());
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  auto topics = (*catalog)->topics().List();
  ASSERT_TRUE(topics.ok()) << topics.status();
  ASSERT_EQ(topics->size(), 1u);
  EXPECT_EQ((*topics)[0].partitions, 2u);
  EXPECT_EQ((*topics)[0].retention_ms, kRetentionDefault);
  EXPECT_EQ((*topics)[0].data_format, DataFormat::kBytes);
  // Version 1 had no group offsets: the migration created them.
  ASSERT_TRUE((*catalog)->offsets().Commit("g", "first", PartitionOffsets({{1, 4}})).ok());
  EXPECT_EQ(*(*catalog)->offsets().Get("g", "first"), OffsetMap({{1, 4}}));
  EXPECT_EQ(Column(tmp.path(), "SELECT version FROM schema_version"),
            std::vector<std::string>{"6"});
}

TEST(CatalogSchema, RefusesADatabaseOfANewerVersionAndLeavesItAlone) {
  TempDb tmp("newer");
  ASSERT_TRUE(Catalog::Open(tmp.path()).ok());
  RunSql(tmp.path(), "UPDATE schema_version SET version = 7; CREATE TABLE later (x INTEGER);");
  const std::vector<std::string> schema_before = Column(tmp.path(), kSchemaSql);
  auto catalog = Catalog::Open(tmp.path());
  ASSERT_EQ(catalog.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(catalog.status().message());
  EXPECT_NE(message.find("schema version 7"), std::string::npos) << message;
  EXPECT_NE(message.find(tmp.path()), std::string::npos) << message;
  EXPECT_NE(message.find("newer nodata"), std::string::npos) << message;
  EXPECT_EQ(Column(tmp.path(), kSchemaSql), schema_before);
  EXPECT_EQ(Column(tmp.path(), "SELECT version FROM schema_version"),
            std::vector<std::string>{"7"});
}

TEST(CatalogSchema, OpensACatalogWrittenByVersionFourAndAddsAggregations) {
  TempDb tmp("v4");
  RunSql(tmp.path(), kVersionThreeDump);
  RunSql(tmp.path(), kVersionFourChanges);
  std::vector<std::string> schema_before = Column(tmp.path(), kSchemaSql);
  const char* const kRowsSql =
      "SELECT 'topic ' || name || ' ' || partitions || ' ' || retention_ms || ' ' || "
      "retention_bytes || ' ' || key_format || ' ' || data_format FROM topics UNION ALL "
      "SELECT 'offset ' || grp || ' ' || topic || ' ' || partition || ' ' || next_offset "
      "FROM group_offsets UNION ALL "
      "SELECT 'component ' || name || ' ' || kind || ' ' || spec || ' ' || module_sha256 || ' ' "
      "|| created_at_us || ' ' || updated_at_us FROM components ORDER BY 1";
  const std::vector<std::string> rows_before = Column(tmp.path(), kRowsSql);
  ASSERT_EQ(rows_before.size(), 7u);
  {
    auto catalog = Catalog::Open(tmp.path());
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    Catalog& c = **catalog;
    auto components = c.components().List();
    ASSERT_TRUE(components.ok()) << components.status();
    ASSERT_EQ(components->size(), 1u);
    EXPECT_EQ((*components)[0].name, "upper");
    EXPECT_EQ((*components)[0].created_at_us, 1796291147000000);
    EXPECT_EQ(c.topics().List()->size(), 3u);
    EXPECT_EQ(*c.offsets().Get("billing", "events"), OffsetMap({{0, 2}, {1, 2}, {2, 1}}));
    // Version 5's aggregations table, empty and usable.
    auto aggregations = c.aggregations().List();
    ASSERT_TRUE(aggregations.ok()) << aggregations.status();
    EXPECT_TRUE(aggregations->empty());
    ASSERT_TRUE(c.aggregations().Create({"per-user", "{}", "", 1, 1}).ok());
    // Version 6's tokens table, empty and usable; a revoked token keeps its row and name.
    EXPECT_TRUE(c.tokens().List()->empty());
    ASSERT_TRUE(c.tokens().Create({"ops", "0a", "scrypt$h", "admin", 1, 0, 0}).ok());
    EXPECT_EQ(c.tokens().Create({"ops", "0b", "scrypt$h", "admin", 2, 0, 0}).code(),
              absl::StatusCode::kAlreadyExists);
    EXPECT_FALSE(c.tokens().Create({"other", "0a", "scrypt$h", "admin", 2, 0, 0}).ok())
        << "ids are unique";
    ASSERT_TRUE(c.tokens().Revoke("ops", 7).ok());
    EXPECT_EQ(c.tokens().Revoke("ops", 8).code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(c.tokens().Revoke("nobody", 8).code(), absl::StatusCode::kNotFound);
    auto tokens = c.tokens().List();
    ASSERT_TRUE(tokens.ok() && tokens->size() == 1u);
    EXPECT_EQ((*tokens)[0].revoked_at_us, 7);
  }
  // Every row and table of version 4 is as it was; the aggregations and tokens tables came.
  EXPECT_EQ(Column(tmp.path(), kRowsSql), rows_before);
  schema_before.insert(schema_before.end(),
                       {kAggregationsTableSql, "", kTokensTableSql, "", ""});
  std::vector<std::string> schema_after = Column(tmp.path(), kSchemaSql);
  std::sort(schema_before.begin(), schema_before.end());
  std::sort(schema_after.begin(), schema_after.end());
  EXPECT_EQ(schema_after, schema_before);
  EXPECT_EQ(Column(tmp.path(), "SELECT version FROM schema_version"),
            std::vector<std::string>{"6"});
  EXPECT_EQ(Column(tmp.path(), "SELECT name FROM aggregations"),
            std::vector<std::string>{"per-user"});
}

TEST(Catalog, ComponentsAreCreatedUpdatedListedAndDeleted) {
  TempDb tmp("components");
  auto catalog = Catalog::Open(tmp.path());
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  ComponentStore& store = (*catalog)->components();
  ComponentRow a{"b-filter", "wasm", R"({"input":"in"})", "aa", 10, 10};
  ComponentRow b{"a-map", "wasm", "{}", "bb", 11, 11};
  ASSERT_TRUE(store.Create(a).ok());
  ASSERT_TRUE(store.Create(b).ok());
  EXPECT_EQ(store.Create(a).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store.Create(a).message(), "component \"b-filter\" already exists");
  a.spec = R"({"input":"other"})";
  a.module_sha256 = "cc";
  a.updated_at_us = 20;
  ASSERT_TRUE(store.Update(a).ok());
  auto rows = store.List();
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].name, "a-map");  // by name
  EXPECT_EQ((*rows)[1].spec, R"({"input":"other"})");
  EXPECT_EQ((*rows)[1].module_sha256, "cc");
  EXPECT_EQ((*rows)[1].created_at_us, 10);
  EXPECT_EQ((*rows)[1].updated_at_us, 20);
  ASSERT_TRUE(store.Delete("a-map").ok());
  EXPECT_EQ(store.Delete("a-map").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Update(b).code(), absl::StatusCode::kNotFound);
  catalog->reset();
  // Durable: a new open sees what was left.
  auto again = Catalog::Open(tmp.path());
  ASSERT_TRUE(again.ok());
  ASSERT_EQ((*again)->components().List()->size(), 1u);
}

TEST(Catalog, AggregationsAreCreatedUpdatedListedAndDeleted) {
  TempDb tmp("aggregations");
  auto catalog = Catalog::Open(tmp.path());
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  AggregationStore& store = (*catalog)->aggregations();
  AggregationRow a{"sales/by-user", R"({"input":"orders"})", "", 10, 10};
  AggregationRow b{"clicks", R"({"input":"clicks"})", "aa", 11, 11};
  ASSERT_TRUE(store.Create(a).ok());
  ASSERT_TRUE(store.Create(b).ok());
  const absl::Status again = store.Create(a);
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(again.message(), "aggregation \"sales/by-user\" already exists");
  // A component of the same name is another concern.
  ASSERT_TRUE((*catalog)->components().Create({"clicks", "wasm", "{}", "bb", 1, 1}).ok());
  a.spec = R"({"input":"orders","lateness_us":5000000})";
  a.module_sha256 = "cc";
  a.updated_at_us = 20;
  ASSERT_TRUE(store.Update(a).ok());
  auto rows = store.List();
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].name, "clicks");  // by name
  EXPECT_EQ((*rows)[0].module_sha256, "aa");
  const AggregationRow& updated = (*rows)[1];
  EXPECT_EQ(updated.name, "sales/by-user");
  EXPECT_EQ(updated.spec, R"({"input":"orders","lateness_us":5000000})");
  EXPECT_EQ(updated.module_sha256, "cc");
  EXPECT_EQ(updated.created_at_us, 10);  // Update keeps the creation time
  EXPECT_EQ(updated.updated_at_us, 20);
  ASSERT_TRUE(store.Delete("clicks").ok());
  const absl::Status gone = store.Delete("clicks");
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(gone.message(), "aggregation \"clicks\" does not exist");
  EXPECT_EQ(store.Update(b).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*catalog)->components().List()->size(), 1u);
  catalog->reset();
  // Durable: a new open sees what was left.
  auto reopened = Catalog::Open(tmp.path());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto left = (*reopened)->aggregations().List();
  ASSERT_TRUE(left.ok()) << left.status();
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].name, "sales/by-user");
  EXPECT_EQ((*left)[0].module_sha256, "cc");
}

TEST(CatalogSchema, AFailedMigrationChangesNothing) {
  TempDb tmp("failed");
  // A version 2 database whose topics already have a key_format column: the step to version
  // 3 fails at its ALTER TABLE, after it created group_offsets.
  RunSql(tmp.path(),
         "CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, "
         "created_at_us INTEGER NOT NULL, retention_ms INTEGER NOT NULL DEFAULT 0, "
         "retention_bytes INTEGER NOT NULL DEFAULT 0, key_format TEXT);"
         "CREATE TABLE schema_version (version INTEGER NOT NULL);"
         "INSERT INTO schema_version VALUES (2);");
  const std::vector<std::string> schema_before = Column(tmp.path(), kSchemaSql);
  auto catalog = Catalog::Open(tmp.path());
  ASSERT_FALSE(catalog.ok());
  EXPECT_NE(catalog.status().message().find("to schema version 3"), absl::string_view::npos)
      << catalog.status();
  EXPECT_EQ(Column(tmp.path(), kSchemaSql), schema_before);
  EXPECT_EQ(Column(tmp.path(), "SELECT version FROM schema_version"),
            std::vector<std::string>{"2"});
}

}  // namespace
}  // namespace nodata::storage
