#include "components/component_log.h"

#include <atomic>
#include <string>

#include "common/strings.h"
#include "gtest/gtest.h"

namespace nodata::components {
namespace {

TEST(ComponentLogTest, KeepsTheLatestLinesInOrder) {
  ComponentLog log("c");
  for (int i = 0; i < 5; ++i) log.Append("stdout", 1, StrCat("line ", i, "\n"));
  std::vector<LogLine> lines = log.Read(0, 100);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].seq, 1u);
  EXPECT_EQ(lines[0].text, "line 0");  // the newline is not part of the line
  EXPECT_EQ(lines[4].seq, 5u);
  EXPECT_EQ(log.Read(3, 100).size(), 2u);
  EXPECT_EQ(log.Read(3, 1).front().text, "line 3");
  EXPECT_TRUE(log.Read(5, 100).empty());
  EXPECT_EQ(log.SeqBeforeLast(2), 3u);
  EXPECT_EQ(log.SeqBeforeLast(0), 0u);
  EXPECT_EQ(log.SeqBeforeLast(50), 0u);
}

TEST(ComponentLogTest, DropsTheOldestBeyondItsBounds) {
  ComponentLog log("c");
  const size_t n = ComponentLog::kMaxLines + 10;
  for (size_t i = 0; i < n; ++i) log.Append("log", 1, StrCat(i));
  std::vector<LogLine> lines = log.Read(0, n);
  ASSERT_EQ(lines.size(), ComponentLog::kMaxLines);
  EXPECT_EQ(lines.front().seq, 11u);  // seqs go on: the gap says 10 lines were dropped
  EXPECT_EQ(lines.front().text, "10");
  EXPECT_EQ(log.Read(3, 1).front().seq, 11u);

  ComponentLog big("c");
  const std::string line(ComponentLog::kMaxLineBytes + 100, 'x');
  EXPECT_EQ((big.Append("stdout", 1, line), big.Read(0, 1).front().text.size()),
            ComponentLog::kMaxLineBytes);
  for (size_t i = 0; i < 2 * ComponentLog::kMaxBytes / ComponentLog::kMaxLineBytes; ++i) {
    big.Append("stdout", 1, line);
  }
  size_t bytes = 0;
  for (const LogLine& l : big.Read(0, ComponentLog::kMaxLines)) bytes += l.text.size();
  EXPECT_LE(bytes, ComponentLog::kMaxBytes);
  EXPECT_GT(bytes, ComponentLog::kMaxBytes / 2);
}

TEST(ComponentLogTest, WatchersHearOfLinesAndTheCloseUntilUnwatched) {
  ComponentLog log("c");
  std::atomic<int> heard{0};
  const uint64_t token = log.Watch([&] { ++heard; });
  log.Append("stderr", 2, "a");
  log.Append("stderr", 2, "b");
  EXPECT_EQ(heard.load(), 2);
  log.Close();
  EXPECT_EQ(heard.load(), 3);
  EXPECT_TRUE(log.closed());
  log.Append("stderr", 2, "after the close");
  EXPECT_EQ(log.Read(0, 10).size(), 2u);
  log.Unwatch(token);
  log.Close();
  EXPECT_EQ(heard.load(), 3);
}

}  // namespace
}  // namespace nodata::components
