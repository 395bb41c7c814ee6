#include "broker/dedupe.h"

#include <string>

#include "gtest/gtest.h"

namespace nodata::broker {
namespace {

TEST(DedupeIndex, FindsIdsWithinTheWindow) {
  DedupeIndex index(/*window_us=*/1000, /*max_ids=*/100);
  index.Insert("a", {1, 10}, 0);
  index.Insert("b", {2, 20}, 500);
  ASSERT_NE(index.Find("a"), nullptr);
  EXPECT_EQ(index.Find("a")->offset, 10u);
  EXPECT_EQ(index.Find("zz"), nullptr);
  index.Expire(1200);  // "a" is 1200 us old, "b" 700
  EXPECT_EQ(index.Find("a"), nullptr);
  ASSERT_NE(index.Find("b"), nullptr);
  EXPECT_EQ(index.Find("b")->partition, 2u);
}

TEST(DedupeIndex, KeepsTheFirstLocationOfAnId) {
  DedupeIndex index(1000, 100);
  index.Insert("a", {1, 10}, 0);
  index.Insert("a", {3, 30}, 1);
  EXPECT_EQ(index.Find("a")->offset, 10u);
  EXPECT_EQ(index.size(), 1u);
}

TEST(DedupeIndex, EvictsOldestPastTheCap) {
  DedupeIndex index(1'000'000, 3);
  for (int i = 0; i < 5; ++i) index.Insert(std::to_string(i), {0, uint64_t(i)}, i);
  EXPECT_EQ(index.size(), 3u);
  EXPECT_EQ(index.Find("0"), nullptr);
  EXPECT_EQ(index.Find("1"), nullptr);
  EXPECT_NE(index.Find("4"), nullptr);
}

}  // namespace
}  // namespace nodata::broker
