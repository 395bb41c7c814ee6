#include "log/file_cache.h"

#include <dirent.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/strings.h"
#include "common/testing/fault_fs.h"
#include "gtest/gtest.h"

namespace nodata::log {
namespace {

namespace fs = std::filesystem;

// Descriptors this process has open.
size_t OpenDescriptors() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

class FileCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / StrCat("nodata-file-cache-", ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(int i) const { return (dir_ / StrCat("f", i)).string(); }

  fs::path dir_;
  testing::FaultFs fs_;
};

TEST_F(FileCacheTest, HoldsAtMostItsCapacityAndReopensWhatItClosed) {
  FileCache cache(fs_, 8);
  const size_t before = OpenDescriptors();
  for (int i = 0; i < 100; ++i) {
    auto w = cache.Writer(Path(i));
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->Append(StrCat("file ", i)).ok());
  }
  EXPECT_EQ(cache.size(), 8u);
  EXPECT_LE(OpenDescriptors(), before + 8);
  // Every file reads back through a handle opened again.
  for (int i = 0; i < 100; ++i) {
    auto r = cache.Reader(Path(i));
    ASSERT_TRUE(r.ok()) << r.status();
    std::string buf(32, '\0');
    auto n = (*r)->Read(0, buf.size(), buf.data());
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(buf.substr(0, *n), StrCat("file ", i));
  }
  EXPECT_EQ(cache.size(), 8u);
  EXPECT_LE(OpenDescriptors(), before + 8);
  EXPECT_EQ(cache.opens(), 200u);
  // A writer opened again appends at the end.
  auto w = cache.Writer(Path(0));
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("+").ok());
  auto r = cache.Reader(Path(0));
  std::string buf(32, '\0');
  auto n = (*r)->Read(0, buf.size(), buf.data());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(buf.substr(0, *n), "file 0+");
}

TEST_F(FileCacheTest, HitsKeepTheirHandleAndAHandleInUseOutlivesItsEviction) {
  FileCache cache(fs_, 2);
  auto a = cache.Reader(Path(0));
  EXPECT_FALSE(a.ok()) << "a reader does not create the file";
  ASSERT_TRUE(cache.Writer(Path(0)).ok());
  auto first = cache.Reader(Path(0));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(cache.Reader(Path(0))->get(), first->get());
  // Evicted while held: still readable by its holder.
  ASSERT_TRUE(cache.Writer(Path(1)).ok());
  ASSERT_TRUE(cache.Writer(Path(2)).ok());
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_NE(cache.Reader(Path(0))->get(), first->get());
  EXPECT_TRUE((*first)->Size().ok());
  cache.Forget(Path(0));
  cache.Forget(Path(1));
  cache.Forget(Path(2));
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace nodata::log
