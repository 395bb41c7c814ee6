#include "common/ids.h"

#include <map>
#include <sstream>
#include <type_traits>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"

namespace nodata {
namespace {

// The point of the types: neither converts from a bare integer or into the other.
static_assert(!std::is_convertible_v<uint32_t, PartitionId>);
static_assert(!std::is_convertible_v<uint64_t, Offset>);
static_assert(!std::is_convertible_v<PartitionId, Offset>);
static_assert(!std::is_convertible_v<Offset, PartitionId>);
static_assert(sizeof(PartitionId) == sizeof(uint32_t) && sizeof(Offset) == sizeof(uint64_t));
static_assert(std::is_trivially_copyable_v<PartitionId> && std::is_trivially_copyable_v<Offset>);
// A name is made only by Parse: no string becomes one unchecked.
static_assert(!std::is_convertible_v<std::string, TopicName>);
static_assert(!std::is_constructible_v<TopicName, std::string_view>);
static_assert(std::is_convertible_v<TopicName, std::string_view>);

TEST(Ids, OffsetArithmeticCountsRecords) {
  constexpr Offset start(10);
  static_assert((start + 5).value() == 15);
  EXPECT_EQ(Offset(15) - start, 5u);
  EXPECT_EQ(start.Next(), Offset(11));
  EXPECT_LT(start, start.Next());
  EXPECT_EQ(Offset(), Offset(0));
}

TEST(Ids, OrderHashAndPrint) {
  std::map<PartitionId, Offset> next{{PartitionId(2), Offset(7)}, {PartitionId(0), Offset(3)}};
  EXPECT_EQ(next.begin()->first, PartitionId(0));
  absl::flat_hash_set<PartitionId> seen{PartitionId(1), PartitionId(1), PartitionId(4)};
  EXPECT_EQ(seen.size(), 2u);
  absl::flat_hash_set<Offset> offsets{Offset(1), Offset(1ull << 40)};
  EXPECT_TRUE(offsets.contains(Offset(1ull << 40)));
  std::ostringstream os;
  os << PartitionId(3) << "@" << Offset(42);
  EXPECT_EQ(os.str(), "3@42");
}

TEST(Ids, TopicNameParsesOnlySafeNames) {
  auto name = TopicName::Parse("orders.v2_eu-1");
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(name->str(), "orders.v2_eu-1");
  EXPECT_EQ(std::string_view(*name), "orders.v2_eu-1");
  for (std::string_view bad : {"", ".", "..", "a/b", "../x", "a b", "x\\y", "caf\xc3\xa9"}) {
    auto parsed = TopicName::Parse(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(TopicName::Parse(std::string(kMaxTopicNameLength + 1, 'a')).ok());
  EXPECT_TRUE(TopicName::Parse(std::string(kMaxTopicNameLength, 'a')).ok());
  EXPECT_LT(*TopicName::Parse("a"), *TopicName::Parse("b"));
}

}  // namespace
}  // namespace nodata
