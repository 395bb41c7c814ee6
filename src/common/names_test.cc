#include "common/names.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace nodata {
namespace {

TEST(TopicName, AcceptsTheAllowedAlphabet) {
  EXPECT_TRUE(ValidateTopicName("orders").ok());
  EXPECT_TRUE(ValidateTopicName("a.b_c-D9").ok());
  EXPECT_TRUE(ValidateTopicName("...").ok());
  EXPECT_TRUE(ValidateTopicName(std::string(249, 'x')).ok());
}

TEST(TopicName, RefusesPathsAndOddCharacters) {
  for (const std::string& bad : std::vector<std::string>{"", ".", "..", "a/b", "../etc", "a b", "é", std::string(250, 'x'),
                          std::string("a\0b", 3)}) {
    absl::Status s = ValidateTopicName(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(s.message().empty());
  }
}

TEST(TopicName, RefusesALeadingDashThatReadsAsAFlagInNewNames) {
  EXPECT_TRUE(ValidateNewName("topic", "a-b-").ok());
  for (const std::string& bad : {std::string("-"), std::string("-x"), std::string("--help")}) {
    absl::Status s = ValidateNewName("topic", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(std::string(s.message()).find("reads as a command-line flag"), std::string::npos)
        << s;
  }
  EXPECT_EQ(ValidateNewName("group", "-g").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateNewName("group", "a/b").code(), absl::StatusCode::kInvalidArgument);
}

TEST(TopicName, LooksUpExistingNamesThatStartWithADash) {
  // Names stored before the rule for new names stay reachable.
  EXPECT_TRUE(ValidateTopicName("-tmp").ok());
  EXPECT_TRUE(ValidateName("group", "-g").ok());
  EXPECT_EQ(ValidateTopicName("-a/b").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nodata
