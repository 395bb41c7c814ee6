#include "components/abi.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace nodata::components {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

uint64_t Le(const std::string& s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<uint8_t>(s[at + i])} << (8 * i);
  return v;
}

TEST(BatchEncoder, WritesTheDocumentedLayout) {
  BatchEncoder enc;
  enc.Begin();
  DecodedRecord r;
  r.offset = Offset(0x0102030405060708);
  r.timestamp_us = -5;
  r.key = "k";
  r.data = "data";
  r.headers = {{"h", "vv"}};
  enc.Add(PartitionId(3), r);
  DecodedRecord empty;
  empty.offset = Offset(9);
  enc.Add(PartitionId(3), empty);
  const std::string b(enc.Finish());
  ASSERT_EQ(b.size(),
            4u + (4 + 8 + 8 + 4 + 1 + 4 + 4 + 4 + 4 + 1 + 4 + 2) + (4 + 8 + 8 + 4 + 4 + 4));
  EXPECT_EQ(Le(b, 0, 4), 2u);                         // count
  EXPECT_EQ(Le(b, 4, 4), 3u);                         // partition
  EXPECT_EQ(Le(b, 8, 8), 0x0102030405060708u);        // offset
  EXPECT_EQ(static_cast<int64_t>(Le(b, 16, 8)), -5);  // timestamp_us
  EXPECT_EQ(Le(b, 24, 4), 1u);
  EXPECT_EQ(b.substr(28, 1), "k");
  EXPECT_EQ(Le(b, 29, 4), 4u);
  EXPECT_EQ(b.substr(33, 4), "data");
  EXPECT_EQ(Le(b, 37, 4), 1u);  // header_count
  EXPECT_EQ(Le(b, 41, 4), 1u);
  EXPECT_EQ(b.substr(45, 1), "h");
  EXPECT_EQ(Le(b, 46, 4), 2u);
  EXPECT_EQ(b.substr(50, 2), "vv");
  EXPECT_EQ(Le(b, 56, 8), 9u);  // the second record's offset
  enc.Begin();
  EXPECT_EQ(std::string(enc.Finish()), std::string(4, '\0'));
}

TEST(BatchEncoder, OwnedAndDecodedRecordsEncodeAlikeAcrossReuse) {
  DecodedRecord view;
  view.offset = Offset(7);
  view.timestamp_us = 123;
  view.key = "key";
  view.data = std::string_view("d\0ta", 4);
  view.headers = {{"a", ""}, {"", "b"}, {"name", "value"}};
  const Record owned = Record::From(view);
  BatchEncoder a;
  BatchEncoder b;
  for (int batch = 0; batch < 2; ++batch) {  // the second batch reuses the grown buffer
    a.Begin();
    b.Begin();
    for (int i = 0; i < 50 - 40 * batch; ++i) {
      a.Add(PartitionId(i), view);
      b.Add(PartitionId(i), owned);
    }
    const std::string encoded(a.Finish());
    EXPECT_EQ(encoded, std::string(b.Finish()));
    EXPECT_EQ(encoded.size(), 4u + (50 - 40 * batch) * (24 + 3 + 4 + 4 + 4 + 3 * 8 + 1 + 1 + 9));
    EXPECT_EQ(Le(encoded, 0, 4), 50u - 40 * batch);
  }
}

TEST(DecodeOutput, RoundTripsAndChecksEveryLength) {
  OutputRecord r{1, -1, "key", "data", {{"a", "1"}, {"", ""}}};
  const std::string enc = EncodeOutput(r);
  OutputRecord got;
  ASSERT_EQ(DecodeOutput(Bytes(enc), 2, 1 << 20, &got), kEmitOk);
  EXPECT_EQ(got, r);
  // input_index must be below the batch's count.
  EXPECT_EQ(DecodeOutput(Bytes(enc), 1, 1 << 20, &got), kEmitMalformed);
  // Every truncation, and a byte too many, is malformed.
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_EQ(DecodeOutput(Bytes(enc.substr(0, n)), 2, 1 << 20, &got), kEmitMalformed) << n;
  }
  EXPECT_EQ(DecodeOutput(Bytes(enc + "x"), 2, 1 << 20, &got), kEmitMalformed);
  // A huge header count is refused before anything is allocated for it.
  std::string lying = EncodeOutput({0, 0, "", "", {}});
  lying[lying.size() - 1] = '\x7f';
  EXPECT_EQ(DecodeOutput(Bytes(lying), 1, 1 << 20, &got), kEmitMalformed);
  // Key, data and headers count towards the size limit.
  EXPECT_EQ(DecodeOutput(Bytes(enc), 2, 3 + 4 + 2 - 1, &got), kEmitTooLarge);
  EXPECT_EQ(DecodeOutput(Bytes(enc), 2, 3 + 4 + 2, &got), kEmitOk);
}

}  // namespace
}  // namespace nodata::components
