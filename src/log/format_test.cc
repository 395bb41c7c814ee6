#include "log/format.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace nodata::log {
namespace {

RecordView Sample(const std::vector<std::pair<std::string_view, std::string_view>>& headers) {
  RecordView r;
  r.id = "evt-1";
  r.key = "user-42";
  r.data = std::string_view("pay\0load", 8);
  r.timestamp_us = 1700000000123456;
  r.ingest_time_us = 1700000000999999;
  r.flags = kFlagServerAssignedId;
  r.headers = headers;
  return r;
}

TEST(Framing, RoundTripsEveryField) {
  std::vector<std::pair<std::string_view, std::string_view>> headers = {{"a", "1"}, {"bb", ""}};
  RecordView in = Sample(headers);
  std::string buf;
  EncodeFrame(77, in, &buf);
  ASSERT_EQ(buf.size(), FrameSize(in));
  DecodedRecord out;
  size_t n = 0;
  ASSERT_EQ(DecodeFrame(buf, &n, &out), FrameResult::kOk);
  EXPECT_EQ(n, buf.size());
  EXPECT_EQ(out.offset.value(), 77u);
  EXPECT_EQ(out.id, in.id);
  EXPECT_EQ(out.key, in.key);
  EXPECT_EQ(out.data, in.data);
  EXPECT_EQ(out.timestamp_us, in.timestamp_us);
  EXPECT_EQ(out.ingest_time_us, in.ingest_time_us);
  EXPECT_EQ(out.flags, kFlagServerAssignedId);
  ASSERT_EQ(out.headers.size(), 2u);
  EXPECT_EQ(out.headers[1].first, "bb");
}

TEST(Framing, EveryPrefixIsIncomplete) {
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string buf;
  EncodeFrame(1, Sample(headers), &buf);
  DecodedRecord out;
  size_t n;
  for (size_t len = 0; len < buf.size(); ++len) {
    FrameResult r = DecodeFrame(std::string_view(buf).substr(0, len), &n, &out);
    EXPECT_NE(r, FrameResult::kOk) << len;
  }
}

TEST(Framing, DetectsEveryFlippedBit) {
  std::vector<std::pair<std::string_view, std::string_view>> headers = {{"k", "v"}};
  std::string buf;
  EncodeFrame(5, Sample(headers), &buf);
  DecodedRecord out;
  size_t n;
  for (size_t bit = 0; bit < buf.size() * 8; ++bit) {
    std::string bad = buf;
    bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    EXPECT_NE(DecodeFrame(bad, &n, &out), FrameResult::kOk) << "bit " << bit;
  }
}

TEST(Framing, RefusesAbsurdLength) {
  std::string buf(16, '\0');
  buf[4] = '\xff';
  buf[5] = '\xff';
  buf[6] = '\xff';
  buf[7] = '\x7f';
  DecodedRecord out;
  size_t n;
  EXPECT_EQ(DecodeFrame(buf, &n, &out), FrameResult::kCorrupt);
}

TEST(SegmentHeader, ChecksMagicVersionAndBase) {
  std::string h = EncodeSegmentHeader(1234);
  EXPECT_TRUE(CheckSegmentHeader(h, 1234));
  EXPECT_FALSE(CheckSegmentHeader(h, 1235));
  h[3] ^= 1;
  EXPECT_FALSE(CheckSegmentHeader(h, 1234));
}

TEST(Index, RoundTripsAndRejectsDamage) {
  SegmentIndex index{100, 250, 9000, 1, 2, {{0, 32}, {40, 4100}, {120, 8200}}};
  std::string bytes = EncodeIndex(index);
  auto back = DecodeIndex(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->end_offset, 250u);
  ASSERT_EQ(back->entries.size(), 3u);
  EXPECT_EQ(back->entries[2].position, 8200u);
  bytes[20] ^= 4;
  EXPECT_EQ(DecodeIndex(bytes).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(DecodeIndex(bytes.substr(0, 10)).ok());
}

TEST(FileNames, SortLikeOffsets) {
  EXPECT_EQ(SegmentFileName(42), "00000000000000000042.log");
  uint64_t base;
  ASSERT_TRUE(ParseSegmentFileName("00000000000000000042.log", &base));
  EXPECT_EQ(base, 42u);
  EXPECT_FALSE(ParseSegmentFileName("0000000000000000042.log", &base));
  EXPECT_FALSE(ParseSegmentFileName("0000000000000000004x.log", &base));
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000042.index", &base));
}

}  // namespace
}  // namespace nodata::log
