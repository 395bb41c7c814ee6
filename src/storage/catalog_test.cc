#include "storage/catalog.h"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "common/strings.h"
#include "gtest/gtest.h"

namespace nodata::storage {
namespace {

TEST(Catalog, TopicsSurviveReopen) {
  auto dir = std::filesystem::temp_directory_path() / StrCat("nodata-catalog-", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string path = (dir / "meta.db").string();
  {
    auto catalog = Catalog::Open(path);
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    ASSERT_TRUE((*catalog)->CreateTopic({"b", 3, 10}).ok());
    ASSERT_TRUE((*catalog)->CreateTopic({"a", 1, 20}).ok());
    EXPECT_EQ((*catalog)->CreateTopic({"a", 2, 30}).code(), absl::StatusCode::kAlreadyExists);
  }
  auto catalog = Catalog::Open(path);
  ASSERT_TRUE(catalog.ok());
  auto topics = (*catalog)->ListTopics();
  ASSERT_TRUE(topics.ok());
  ASSERT_EQ(topics->size(), 2u);
  EXPECT_EQ((*topics)[0].name, "a");
  EXPECT_EQ((*topics)[1].partitions, 3u);
  EXPECT_TRUE((*catalog)->DeleteTopic("a").ok());
  EXPECT_EQ((*catalog)->DeleteTopic("a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*catalog)->ListTopics()->size(), 1u);
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
    ASSERT_TRUE((*catalog)->CreateTopic(json).ok());
    ASSERT_TRUE((*catalog)->CreateTopic({"b", 1, 20}).ok());
  }
  auto catalog = Catalog::Open(path);
  ASSERT_TRUE(catalog.ok());
  auto topics = (*catalog)->ListTopics();
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
  auto topics = (*catalog)->ListTopics();
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
  ASSERT_TRUE(c.CreateTopic({"t", 2, 10}).ok());
  ASSERT_TRUE(c.CommitOffsets("g", "t", {{0, 5}, {1, 7}}).ok());
  ASSERT_TRUE(c.CommitOffsets("g", "t", {{1, 9}}).ok());
  EXPECT_EQ(*c.GetOffsets("g", "t"), (std::map<uint32_t, uint64_t>{{0, 5}, {1, 9}}));
  EXPECT_EQ(c.ListGroups()->size(), 1u);
  // Deleting the topic deletes its offsets; a topic created again under the name has none.
  ASSERT_TRUE(c.DeleteTopic("t").ok());
  EXPECT_TRUE(c.GetOffsets("g", "t")->empty());
  // A commit for a topic that does not exist (racing its deletion) writes nothing.
  EXPECT_EQ(c.CommitOffsets("g", "t", {{0, 1}}).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(c.CreateTopic({"t", 2, 20}).ok());
  EXPECT_TRUE(c.GetOffsets("g", "t")->empty());
  EXPECT_TRUE(c.ListGroups()->empty());
  // The catalog still takes writes after the refused commit (no transaction left open).
  ASSERT_TRUE(c.CommitOffsets("g", "t", {{0, 3}}).ok());
  EXPECT_EQ(*c.GetOffsets("g", "t"), (std::map<uint32_t, uint64_t>{{0, 3}}));
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
    ASSERT_TRUE(c.CreateTopic({"t", 2, 10}).ok());
    ASSERT_TRUE(c.CommitOffsets("g", "t", {{0, 5}, {1, 7}}).ok());
    ASSERT_TRUE(c.CommitOffsets("h", "t", {{0, 1}}).ok());
    EXPECT_EQ(*c.DeleteOffsets("g", "t"), 2);
    EXPECT_EQ(*c.DeleteOffsets("g", "t"), 0);
    EXPECT_TRUE(c.GetOffsets("g", "t")->empty());
    EXPECT_EQ(c.GetOffsets("h", "t")->size(), 1u);
    ASSERT_TRUE(c.SetPartitions("t", 5).ok());
    EXPECT_EQ(c.SetPartitions("missing", 5).code(), absl::StatusCode::kNotFound);
  }
  auto catalog = Catalog::Open(path);
  ASSERT_TRUE(catalog.ok());
  EXPECT_EQ((*(*catalog)->ListTopics())[0].partitions, 5u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nodata::storage
