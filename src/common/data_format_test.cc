#include "common/data_format.h"

#include <string>

#include "gtest/gtest.h"

namespace nodata {
namespace {

TEST(DataFormat, NamesRoundTrip) {
  for (DataFormat f : {DataFormat::kBytes, DataFormat::kString, DataFormat::kJson}) {
    EXPECT_EQ(ParseDataFormat(DataFormatName(f)), f);
  }
  EXPECT_EQ(DataFormatName(DataFormat::kJson), "json");
  EXPECT_FALSE(ParseDataFormat("JSON").has_value());
  EXPECT_FALSE(ParseDataFormat("").has_value());
}

TEST(DataFormat, BytesAcceptAnything) {
  EXPECT_TRUE(CheckDataFormat(DataFormat::kBytes, std::string("\xff\x00{", 3)).ok());
  EXPECT_TRUE(CheckDataFormat(DataFormat::kBytes, "").ok());
}

TEST(DataFormat, StringRefusesInvalidUtf8) {
  EXPECT_TRUE(CheckDataFormat(DataFormat::kString, "h\xc3\xa9llo").ok());
  EXPECT_TRUE(CheckDataFormat(DataFormat::kString, "").ok());
  absl::Status s = CheckDataFormat(DataFormat::kString, "caf\xc3");  // truncated sequence
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "not valid UTF-8");
  EXPECT_FALSE(CheckDataFormat(DataFormat::kString, "\xed\xa0\x80").ok());  // a surrogate
}

TEST(DataFormat, JsonAcceptsAnyValueAndRefusesTheRest) {
  for (const char* good : {"{\"amt\":18,\"n\":[1,2,{}]}", "18", "\"x\"", "null", " [ ] "}) {
    EXPECT_TRUE(CheckDataFormat(DataFormat::kJson, good).ok()) << good;
  }
  for (const char* bad : {"", "{\"amt\":", "{amt:1}", "1 2", "{\"a\":1}}", "'x'"}) {
    absl::Status s = CheckDataFormat(DataFormat::kJson, bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(s.message().substr(0, 14), "not valid JSON") << s.message();
  }
  EXPECT_FALSE(CheckDataFormat(DataFormat::kJson, "\"\xff\"").ok());
}

}  // namespace
}  // namespace nodata
