#include "storage/data_dir_lock.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/strings.h"
#include "gtest/gtest.h"

namespace nodata::storage {
namespace {

namespace fs = std::filesystem;

class DataDirLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            StrCat("nodata-lock-", ::getpid(), "-",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(DataDirLockTest, SecondHolderIsRefusedWithDirectoryAndPid) {
  auto first = DataDirLock::Acquire(dir_);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = DataDirLock::Acquire(dir_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(),
            StrCat("data directory ", dir_, " is in use by another nodata process (pid ",
                   ::getpid(), ")"));
  first->reset();
  EXPECT_TRUE(DataDirLock::Acquire(dir_).ok());
}

TEST_F(DataDirLockTest, LockOfAKilledProcessDoesNotBlock) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto lock = DataDirLock::Acquire(dir_);
    char c = lock.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto held = DataDirLock::Acquire(dir_);
  ASSERT_FALSE(held.ok());
  EXPECT_NE(std::string(held.status().message()).find(StrCat("(pid ", child, ")")),
            std::string::npos)
      << held.status();
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  EXPECT_TRUE(DataDirLock::Acquire(dir_).ok());
}

}  // namespace
}  // namespace nodata::storage
