#include "server/record_encoder.h"

#include "gtest/gtest.h"
#include "nodata/v1/nodata.pb.h"

namespace nodata::server {
namespace {

DecodedRecord Rec(uint64_t offset, int64_t ts_us, std::string_view id, std::string_view key,
                       std::string_view data) {
  DecodedRecord r;
  r.offset = Offset(offset);
  r.timestamp_us = ts_us;
  r.ingest_time_us = ts_us + 7;
  r.id = id;
  r.key = key;
  r.data = data;
  return r;
}

TEST(RecordBatchEncoder, GeneratedCodeParsesEveryField) {
  RecordBatchEncoder enc;
  const std::string big(300, 'b');  // lengths past one varint byte
  const std::string binary("\0\xff\x01", 3);
  for (int round = 0; round < 2; ++round) {  // the buffer is reused
    enc.Begin("orders");
    DecodedRecord a = Rec(0, 0, "", "", "");  // every field at its default
    DecodedRecord b = Rec(1234567890123, 1700000000123456, "id-1", binary, big);
    b.headers = {{"h", "v"}, {"", ""}, {"k", big}};
    DecodedRecord c = Rec(5, -1500001, "neg", "k", "d");  // before 1970
    enc.Add(PartitionId(0), a);
    enc.Add(PartitionId(3), b);
    enc.Add(PartitionId(4000000000u), c);
    ASSERT_EQ(enc.count(), 3u);
    std::string_view bytes = enc.Finish();
    nodata::v1::SubscribeResponse resp;
    ASSERT_TRUE(resp.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
    ASSERT_TRUE(resp.has_records());
    const auto& rs = resp.records().records();
    ASSERT_EQ(rs.size(), 3);
    EXPECT_EQ(rs[0].partition(), 0u);
    EXPECT_EQ(rs[0].offset(), 0u);
    EXPECT_EQ(rs[0].event().topic(), "orders");
    EXPECT_EQ(rs[0].event().id(), "");
    EXPECT_TRUE(rs[0].event().has_timestamp());
    EXPECT_EQ(rs[0].ingest_time().nanos(), 7000);
    EXPECT_EQ(rs[1].partition(), 3u);
    EXPECT_EQ(rs[1].offset(), 1234567890123u);
    EXPECT_EQ(rs[1].event().id(), "id-1");
    EXPECT_EQ(rs[1].event().key(), binary);
    EXPECT_EQ(rs[1].event().data(), big);
    EXPECT_EQ(rs[1].event().timestamp().seconds(), 1700000000);
    EXPECT_EQ(rs[1].event().timestamp().nanos(), 123456000);
    EXPECT_EQ(rs[1].event().headers().size(), 3u);
    EXPECT_EQ(rs[1].event().headers().at("h"), "v");
    EXPECT_EQ(rs[1].event().headers().at(""), "");
    EXPECT_EQ(rs[1].event().headers().at("k"), big);
    EXPECT_EQ(rs[2].partition(), 4000000000u);
    EXPECT_EQ(rs[2].event().timestamp().seconds(), -2);
    EXPECT_EQ(rs[2].event().timestamp().nanos(), 499999000);
  }
  enc.Begin("t");
  std::string_view empty = enc.Finish();
  nodata::v1::SubscribeResponse resp;
  ASSERT_TRUE(resp.ParseFromArray(empty.data(), static_cast<int>(empty.size())));
  EXPECT_TRUE(resp.has_records());
  EXPECT_EQ(resp.records().records_size(), 0);
}

// Every varint length (offsets at each 7-bit boundary, up to 10 bytes) and batches whose topics
// change length from one Begin to the next.
TEST(RecordBatchEncoder, VarintBoundariesAndTopicsOfEveryLength) {
  RecordBatchEncoder enc;
  const std::string long_topic(200, 't');  // a length of two varint bytes
  for (std::string_view topic : {std::string_view(long_topic), std::string_view("a"),
                                 std::string_view("orders")}) {
    enc.Begin(topic);
    std::vector<uint64_t> offsets;
    for (int bits = 0; bits <= 64; bits += 7) {
      const uint64_t edge = bits == 63 ? ~uint64_t{0} : (uint64_t{1} << bits);
      offsets.push_back(edge - 1);
      offsets.push_back(edge);
    }
    for (uint64_t offset : offsets) enc.Add(PartitionId(1), Rec(offset, 1, "i", "k", "d"));
    std::string_view bytes = enc.Finish();
    nodata::v1::SubscribeResponse resp;
    ASSERT_TRUE(resp.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
    ASSERT_EQ(resp.records().records_size(), static_cast<int>(offsets.size()));
    for (size_t i = 0; i < offsets.size(); ++i) {
      const auto& r = resp.records().records(static_cast<int>(i));
      EXPECT_EQ(r.offset(), offsets[i]);
      EXPECT_EQ(r.event().topic(), topic);
      EXPECT_EQ(r.event().data(), "d");
    }
  }
}

}  // namespace
}  // namespace nodata::server
