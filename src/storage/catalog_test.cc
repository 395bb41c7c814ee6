#include "storage/catalog.h"

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

}  // namespace
}  // namespace nodata::storage
