#include "parquet/internal/encoding.h"

#include <random>

#include "gtest/gtest.h"

namespace nodata::parquet::internal {
namespace {

TEST(RleHybrid, BitPacksLeastSignificantBitFirstAsInTheSpec) {
  // Encodings.md: 0..7 with bit width 3 pack to 10001000 11000110 11111010.
  std::vector<uint32_t> values = {0, 1, 2, 3, 4, 5, 6, 7};
  std::string out;
  EncodeRleHybrid(values, 3, &out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(static_cast<uint8_t>(out[0]), (1 << 1) | 1);
  EXPECT_EQ(static_cast<uint8_t>(out[1]), 0b10001000);
  EXPECT_EQ(static_cast<uint8_t>(out[2]), 0b11000110);
  EXPECT_EQ(static_cast<uint8_t>(out[3]), 0b11111010);
}

TEST(RleHybrid, RoundTripsMixedRunsAtEveryWidth) {
  std::mt19937 rng(7);
  for (int width = 0; width <= 32; ++width) {
    const uint64_t max = width == 0 ? 0 : (width == 32 ? 0xffffffffu : (1u << width) - 1);
    std::vector<uint32_t> values;
    for (int run = 0; run < 200; ++run) {
      uint32_t v = static_cast<uint32_t>(rng() % (max + 1));
      int len = (rng() % 3 == 0) ? static_cast<int>(rng() % 40) : 1;
      for (int i = 0; i < len; ++i)
        values.push_back(i % 5 == 4 ? static_cast<uint32_t>(rng() % (max + 1)) : v);
    }
    std::string encoded;
    EncodeRleHybrid(values, width, &encoded);
    std::vector<uint32_t> decoded;
    ASSERT_TRUE(DecodeRleHybrid(encoded, width, values.size(), &decoded).ok()) << width;
    EXPECT_EQ(decoded, values) << width;
  }
}

TEST(RleHybrid, TruncatedInputIsAnError) {
  std::vector<uint32_t> values(100);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<uint32_t>(i % 7);
  std::string encoded;
  EncodeRleHybrid(values, 3, &encoded);
  // The last byte holds only padding past the 100th value, so it may be
  // missing.
  for (size_t cut = 0; cut + 1 < encoded.size(); ++cut) {
    std::vector<uint32_t> decoded;
    EXPECT_FALSE(
        DecodeRleHybrid(std::string_view(encoded).substr(0, cut), 3, values.size(), &decoded).ok());
  }
}

TEST(DeltaBinaryPacked, DecodesConstantDeltas) {
  // block 128 values, 4 miniblocks, 5 values, first value 1; min delta 1, all
  // widths 0.
  std::string in = {'\x80', '\x01', '\x04', '\x05', '\x02', '\x02', 0, 0, 0, 0};
  std::string_view view = in;
  std::vector<int64_t> out;
  ASSERT_TRUE(DecodeDeltaBinaryPacked(&view, 5, &out).ok());
  EXPECT_EQ(out, (std::vector<int64_t>{1, 2, 3, 4, 5}));
  std::string_view again = in;
  out.clear();
  EXPECT_FALSE(DecodeDeltaBinaryPacked(&again, 4, &out).ok());
}

}  // namespace
}  // namespace nodata::parquet::internal
