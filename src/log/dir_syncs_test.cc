#include "log/dir_syncs.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "common/testing/fault_fs.h"
#include "gtest/gtest.h"

namespace nodata::log {
namespace {

namespace fs = std::filesystem;

class DirSyncsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / StrCat("nodata-dir-syncs-", ::getpid())).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_;
  testing::FaultFs fs_;
};

TEST_F(DirSyncsTest, SyncsAChangedDirectoryOnceForEveryChangeBeforeIt) {
  DirSyncs syncs(fs_);
  ASSERT_TRUE(syncs.Sync(dir_).ok());
  EXPECT_EQ(fs_.dir_sync_count(), 0u);  // nothing changed
  for (int i = 0; i < 4; ++i) {
    fs::create_directories(StrCat(dir_, "/p", i));
    syncs.Changed(dir_);
  }
  EXPECT_EQ(syncs.pending(), 1u);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(syncs.Sync(dir_).ok());
  EXPECT_EQ(fs_.dir_sync_count(), 1u);
  EXPECT_EQ(syncs.pending(), 0u);
  syncs.Changed(dir_);
  ASSERT_TRUE(syncs.Sync(dir_).ok());
  EXPECT_EQ(fs_.dir_sync_count(), 2u);
}

TEST_F(DirSyncsTest, AFailedSyncLeavesTheDirectoryToSyncAgain) {
  DirSyncs syncs(fs_);
  const std::string gone = StrCat(dir_, "/gone");
  syncs.Changed(gone);
  EXPECT_FALSE(syncs.Sync(gone).ok());
  EXPECT_EQ(syncs.pending(), 1u);
  fs::create_directories(gone);
  EXPECT_TRUE(syncs.Sync(gone).ok());
  EXPECT_EQ(syncs.pending(), 0u);
}

TEST_F(DirSyncsTest, ConcurrentChangesAreEachCoveredByASyncAfterThem) {
  DirSyncs syncs(fs_);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        fs::create_directories(StrCat(dir_, "/t", t, "-", i));
        syncs.Changed(dir_);
        ASSERT_TRUE(syncs.Sync(dir_).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  // Every change was followed by a sync that found it covered or made it so.
  EXPECT_EQ(syncs.pending(), 0u);
  EXPECT_GE(fs_.dir_sync_count(), 1u);
  EXPECT_LE(fs_.dir_sync_count(), 200u);
}

}  // namespace
}  // namespace nodata::log
