#include <lz4frame.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <string>

#include "absl/base/internal/endian.h"
#include "common/crc32c.h"
#include "gtest/gtest.h"
#include "kafka/protocol.h"
#include "kafka/records.h"
#include "kafka/wire.h"

namespace nodata::kafka {
namespace {

TEST(Wire, IntegersAndVarintsRoundTrip) {
  std::string buf;
  Writer w(&buf);
  w.Int8(-5);
  w.Int16(-12345);
  w.Int32(INT32_MIN);
  w.Int64(INT64_MAX);
  for (int32_t v : {0, 1, -1, 63, -64, 64, 300, INT32_MAX, INT32_MIN}) w.Varint(v);
  for (int64_t v : {int64_t{0}, int64_t{-1}, INT64_MAX, INT64_MIN}) w.Varlong(v);
  w.UnsignedVarint(UINT32_MAX);
  // Big-endian on the wire.
  EXPECT_EQ(static_cast<uint8_t>(buf[1]), 0xcf);
  EXPECT_EQ(static_cast<uint8_t>(buf[2]), 0xc7);

  Reader r(buf);
  EXPECT_EQ(r.Int8(), -5);
  EXPECT_EQ(r.Int16(), -12345);
  EXPECT_EQ(r.Int32(), INT32_MIN);
  EXPECT_EQ(r.Int64(), INT64_MAX);
  for (int32_t v : {0, 1, -1, 63, -64, 64, 300, INT32_MAX, INT32_MIN}) EXPECT_EQ(r.Varint(), v);
  for (int64_t v : {int64_t{0}, int64_t{-1}, INT64_MAX, INT64_MIN}) EXPECT_EQ(r.Varlong(), v);
  EXPECT_EQ(r.UnsignedVarint(), UINT32_MAX);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(Wire, ZigZagMatchesTheProtocolGuide) {
  // The guide's examples: 0 -> 0, -1 -> 1, 1 -> 2, -2 -> 3; 300 as unsigned is AC 02.
  std::string buf;
  Writer w(&buf);
  w.Varint(-1);
  w.Varint(1);
  w.Varint(-2);
  w.UnsignedVarint(300);
  EXPECT_EQ(buf, std::string("\x01\x02\x03\xac\x02", 5));
}

TEST(Wire, StringsBytesAndArrays) {
  std::string buf;
  Writer w(&buf);
  w.String("topic", false);
  w.String("compact", true);
  w.NullableString(std::nullopt, false);
  w.NullableString(std::nullopt, true);
  w.Bytes("raw", false);
  w.NullBytes(true);
  w.ArrayLength(-1, false);
  w.ArrayLength(2, true);
  Reader r(buf);
  EXPECT_EQ(r.String(false), "topic");
  EXPECT_EQ(r.String(true), "compact");
  EXPECT_EQ(r.NullableString(false), std::nullopt);
  EXPECT_EQ(r.NullableString(true), std::nullopt);
  EXPECT_EQ(r.NullableBytes(false), "raw");
  EXPECT_EQ(r.NullableBytes(true), std::nullopt);
  EXPECT_EQ(r.ArrayLength(false), std::nullopt);
  EXPECT_EQ(r.ArrayLength(true, 0), 2);
  EXPECT_TRUE(r.ok());
}

TEST(Wire, TruncatedAndAbsurdInputFailsWithoutReadingPastTheEnd) {
  std::string buf;
  Writer w(&buf);
  w.Int16(100);  // a string of 100 bytes, with 2 there
  w.Raw("ab");
  Reader r(buf);
  r.String(false);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error().find("truncated"), std::string::npos);
  EXPECT_EQ(r.Int32(), 0);  // later reads give zero

  std::string arr;
  Writer(&arr).Int32(1'000'000'000);
  Reader a(arr);
  a.ArrayLength(false, 4);
  EXPECT_FALSE(a.ok());

  const std::string long_varint(6, '\xff');
  Reader v(long_varint);
  v.UnsignedVarint();
  EXPECT_FALSE(v.ok());
}

TEST(Protocol, HeadersAndVersions) {
  std::string buf;
  Writer w(&buf);
  w.Int16(kApiVersions);
  w.Int16(3);
  w.Int32(42);
  w.String("client", false);
  w.EmptyTaggedFields();
  Reader r(buf);
  RequestHeader h = ReadRequestHeader(r);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(h.correlation_id, 42);
  EXPECT_EQ(h.client_id, "client");
  EXPECT_TRUE(h.flexible);
  EXPECT_EQ(r.remaining(), 0u);
  ASSERT_NE(FindApi(kProduce), nullptr);
  EXPECT_EQ(FindApi(kProduce)->min, 3);  // record batches v2 only
  EXPECT_EQ(FindApi(12345), nullptr);
}

using Header = std::pair<std::string_view, std::string_view>;

std::string SampleBatch(int64_t base_offset) {
  std::string out;
  BatchWriter b(&out);
  b.Begin(base_offset, 1'700'000'000'000);
  std::vector<Header> none;
  std::vector<Header> two{{"h", "1"}, {"h", "2"}};
  b.Add(base_offset, 1'700'000'000'000, "k1", "v1", none);
  b.Add(base_offset + 1, 1'699'999'999'000, std::nullopt, "", two);
  b.Add(base_offset + 2, 1'700'000'000'500, "k3", std::string(300, 'x'), none);
  EXPECT_EQ(b.Finish(), out.size());
  return out;
}

void ExpectSample(const BatchHeader& h, const std::vector<KafkaRecord>& recs) {
  EXPECT_EQ(h.magic, 2);
  EXPECT_EQ(h.record_count, 3);
  EXPECT_EQ(h.last_offset_delta, 2);
  EXPECT_EQ(h.max_timestamp, 1'700'000'000'500);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].key, "k1");
  EXPECT_EQ(recs[0].value, "v1");
  EXPECT_EQ(recs[1].key, std::nullopt);
  EXPECT_EQ(recs[1].value, "");
  EXPECT_EQ(recs[1].timestamp_ms, 1'699'999'999'000);
  ASSERT_EQ(recs[1].headers.size(), 2u);  // repeated names kept, in order
  EXPECT_EQ(recs[1].headers[1].first, "h");
  EXPECT_EQ(recs[1].headers[1].second, "2");
  EXPECT_EQ(recs[2].offset_delta, 2);
  EXPECT_EQ(recs[2].value->size(), 300u);
}

TEST(Records, WrittenBatchDecodes) {
  const std::string batch = SampleBatch(1000) + SampleBatch(1003);
  int batches = 0;
  std::deque<std::string> keep;
  absl::Status st = DecodeBatches(batch, 1 << 20, &keep,
                                  [&](const BatchHeader& h, const std::vector<KafkaRecord>& r) {
                                    EXPECT_EQ(h.base_offset, 1000 + 3 * batches);
                                    ExpectSample(h, r);
                                    ++batches;
                                    return absl::OkStatus();
                                  });
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(batches, 2);
}

TEST(Records, CorruptionIsRefused) {
  std::deque<std::string> keep;
  auto decode = [&keep](const std::string& b) {
    return DecodeBatches(b, 1 << 20, &keep, [](const BatchHeader&, const auto&) {
      return absl::OkStatus();
    });
  };
  std::string flipped = SampleBatch(0);
  flipped[flipped.size() - 5] ^= 1;
  absl::Status st = decode(flipped);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("CRC"), std::string::npos) << st;

  std::string old = SampleBatch(0);
  old[16] = 1;  // magic 1
  EXPECT_NE(decode(old).message().find("magic"), std::string::npos);

  std::string cut = SampleBatch(0);
  cut.resize(cut.size() - 1);
  EXPECT_EQ(decode(cut).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(decode(std::string(10, '\0')).code(), absl::StatusCode::kInvalidArgument);
}

// The sample batch with its records section compressed by `compress`, attributes set to
// `codec` and the CRC recomputed: what a producer sends.
std::string Recompress(int codec, std::string (*compress)(std::string_view)) {
  std::string plain = SampleBatch(0);
  std::string out = plain.substr(0, kBatchHeaderBytes) +
                    compress(std::string_view(plain).substr(kBatchHeaderBytes));
  absl::big_endian::Store32(out.data() + 8, static_cast<uint32_t>(out.size() - 12));
  absl::big_endian::Store16(out.data() + 21, static_cast<uint16_t>(codec));
  absl::big_endian::Store32(out.data() + 17, crc32c::Extend(0, out.data() + 21, out.size() - 21));
  return out;
}

std::string Gzip(std::string_view in) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);  // gzip header
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Snappy(std::string_view in) {
  std::string out;
  snappy::Compress(in.data(), in.size(), &out);
  return out;
}

std::string XerialSnappy(std::string_view in) {
  std::string out("\x82SNAPPY\0\0\0\0\1\0\0\0\1", 16);
  const size_t half = in.size() / 2;
  for (std::string_view part : {in.substr(0, half), in.substr(half)}) {
    std::string block = Snappy(part);
    char len[4];
    absl::big_endian::Store32(len, static_cast<uint32_t>(block.size()));
    out.append(len, 4);
    out += block;
  }
  return out;
}

std::string Lz4(std::string_view in) {
  std::string out(LZ4F_compressFrameBound(in.size(), nullptr), '\0');
  out.resize(LZ4F_compressFrame(out.data(), out.size(), in.data(), in.size(), nullptr));
  return out;
}

std::string Zstd(std::string_view in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
  return out;
}

TEST(Records, CompressedBatchesDecode) {
  struct Case {
    int codec;
    std::string (*compress)(std::string_view);
  };
  for (const Case& c : {Case{kCompressionGzip, Gzip}, Case{kCompressionSnappy, Snappy},
                        Case{kCompressionSnappy, XerialSnappy}, Case{kCompressionLz4, Lz4},
                        Case{kCompressionZstd, Zstd}}) {
    SCOPED_TRACE(c.codec);
    std::deque<std::string> keep;
    int seen = 0;
    absl::Status st = DecodeBatches(Recompress(c.codec, c.compress), 1 << 20, &keep,
                                    [&](const BatchHeader& h, const auto& recs) {
                                      EXPECT_EQ(h.compression(), c.codec);
                                      ExpectSample(h, recs);
                                      ++seen;
                                      return absl::OkStatus();
                                    });
    EXPECT_TRUE(st.ok()) << st;
    EXPECT_EQ(seen, 1);
    // A bomb: the same batch with a limit below its decompressed size.
    keep.clear();
    absl::Status small = DecodeBatches(Recompress(c.codec, c.compress), 100, &keep,
                                       [](const BatchHeader&, const auto&) {
                                         return absl::OkStatus();
                                       });
    EXPECT_EQ(small.code(), absl::StatusCode::kInvalidArgument) << small;
  }
}

}  // namespace
}  // namespace nodata::kafka
