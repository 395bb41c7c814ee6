#include "storage/data_dir.h"

#include "gtest/gtest.h"

namespace nodata::storage {
namespace {

// The paths are a persistent format: data directories written by earlier versions are found by
// them.
TEST(DataDir, PathsAreTheDocumentedLayout) {
  const DataDir dir("/data");
  EXPECT_EQ(dir.LockPath(), "/data/LOCK");
  EXPECT_EQ(dir.CatalogPath(), "/data/meta.db");
  EXPECT_EQ(dir.LogRoot(), "/data/log");
  EXPECT_EQ(dir.ColdRoot(), "/data/topics");
  const TopicName orders = *TopicName::Parse("orders");
  EXPECT_EQ(dir.TopicLogDir(orders), "/data/log/orders");
  EXPECT_EQ(dir.TopicColdDir(orders), "/data/topics/orders");
  EXPECT_EQ(dir.PartitionLogDir(orders, PartitionId(3)), "/data/log/orders/3");
  EXPECT_EQ(dir.PartitionColdDir(orders, PartitionId(3)), "/data/topics/orders/partition=3");
  EXPECT_EQ(DataDir::Child(dir.LogRoot(), "stray"), "/data/log/stray");
  EXPECT_EQ(dir.TrashRoot(), "/data/trash");
  const std::string entry = dir.TrashEntry("17-1");
  EXPECT_EQ(entry, "/data/trash/17-1");
  EXPECT_EQ(DataDir::TrashedName(entry), "/data/trash/17-1/topic");
  EXPECT_EQ(DataDir::TrashedLog(entry), "/data/trash/17-1/log");
  EXPECT_EQ(DataDir::TrashedCold(entry), "/data/trash/17-1/topics");
}

}  // namespace
}  // namespace nodata::storage
