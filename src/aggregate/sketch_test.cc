#include "aggregate/sketch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace nodata::aggregate {
namespace {

// A well-mixed 64-bit hash of i (splitmix64's finalizer), standing in for the hash of a value.
uint64_t Hash(uint64_t i) {
  uint64_t z = i + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

DistinctSketch Distinct(uint64_t from, uint64_t to) {
  DistinctSketch s;
  for (uint64_t i = from; i < to; ++i) s.Add(Hash(i));
  return s;
}

template <typename Sketch>
std::string Bytes(const Sketch& s) {
  std::string out;
  s.AppendTo(&out);
  return out;
}

// Every prefix of a valid serialization is refused, and random bytes never crash the parser.
template <typename Sketch>
void ExpectRejectsTruncationsAndSurvivesGarbage(const std::string& valid) {
  for (size_t n = 0; n < valid.size(); ++n) {
    auto parsed = Sketch::Parse(valid.substr(0, n));
    ASSERT_FALSE(parsed.ok()) << "prefix of " << n << " bytes";
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(Sketch::Parse(valid + "x").status().code(), absl::StatusCode::kInvalidArgument);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes;
    const size_t len = rng() % 64;
    // Half start with a valid version byte, to get past the first check.
    if (i % 2 == 0 && !valid.empty()) bytes.push_back(valid[0]);
    for (size_t j = 0; j < len; ++j) bytes.push_back(static_cast<char>(rng()));
    auto parsed = Sketch::Parse(bytes);
    if (parsed.ok()) {
      // Whatever parses is a usable sketch that serializes back to the same bytes.
      EXPECT_EQ(Bytes(*parsed), bytes);
    } else {
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  // Random mutations of a valid serialization.
  for (int i = 0; i < 2000; ++i) {
    std::string bytes = valid;
    for (int k = 0; k < 3; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    auto parsed = Sketch::Parse(bytes);
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(DistinctSketch, EmptyCountsZero) {
  DistinctSketch s;
  EXPECT_EQ(s.Estimate(), 0u);
}

TEST(DistinctSketch, SmallCountsAreExact) {
  for (uint64_t n : {1u, 2u, 3u, 10u, 100u, 512u}) {
    DistinctSketch s;
    for (int round = 0; round < 3; ++round) {
      for (uint64_t i = 0; i < n; ++i) s.Add(Hash(i));
    }
    EXPECT_EQ(s.Estimate(), n);
  }
}

TEST(DistinctSketch, LargeCountsWithinThreeStandardErrors) {
  // 3 × 1.04 / sqrt(2^14) ≈ 2.4%.
  for (uint64_t n : {600u, 5000u, 30000u, 40000u, 50000u, 100000u, 1000000u}) {
    for (uint64_t seed : {0u, 1u}) {
      const uint64_t base = seed * 10'000'000;
      DistinctSketch s = Distinct(base, base + n);
      for (uint64_t i = 0; i < n; i += 3) s.Add(Hash(base + i));  // repeats change nothing
      const double error = std::fabs(static_cast<double>(s.Estimate()) - n) / n;
      EXPECT_LT(error, 0.025) << "n=" << n << " estimate=" << s.Estimate();
    }
  }
}

TEST(DistinctSketch, MergeEqualsAddingAll) {
  struct Case {
    uint64_t a_end, b_begin, b_end;
  };
  // sparse + sparse, sparse + sparse turning dense, sparse + dense, dense + sparse,
  // dense + dense; overlapping ranges.
  for (const Case c : {Case{100, 50, 200}, Case{400, 300, 700}, Case{100, 0, 5000},
                       Case{5000, 4000, 4100}, Case{30000, 20000, 60000}}) {
    DistinctSketch a = Distinct(0, c.a_end);
    const DistinctSketch b = Distinct(c.b_begin, c.b_end);
    a.Merge(b);
    DistinctSketch all = Distinct(0, c.a_end);
    for (uint64_t i = c.b_begin; i < c.b_end; ++i) all.Add(Hash(i));
    EXPECT_EQ(Bytes(a), Bytes(all)) << c.a_end << " " << c.b_begin << " " << c.b_end;
    EXPECT_EQ(a.Estimate(), all.Estimate());
  }
  DistinctSketch self = Distinct(0, 10);
  self.Merge(self);
  EXPECT_EQ(self.Estimate(), 10u);
}

TEST(DistinctSketch, SerializationRoundTrips) {
  for (uint64_t n : {0u, 1u, 7u, 512u, 513u, 100000u}) {
    const DistinctSketch s = Distinct(0, n);
    const std::string bytes = Bytes(s);
    auto parsed = DistinctSketch::Parse(bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->Estimate(), s.Estimate());
    EXPECT_EQ(Bytes(*parsed), bytes);
    // A parsed sketch goes on counting like the original.
    DistinctSketch more = *parsed;
    more.Add(Hash(n));
    DistinctSketch expected = s;
    expected.Add(Hash(n));
    EXPECT_EQ(Bytes(more), Bytes(expected));
  }
  EXPECT_LE(Bytes(Distinct(0, 1)).size(), 12u);
}

TEST(DistinctSketch, ParseRejectsBadInput) {
  EXPECT_EQ(DistinctSketch::Parse("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DistinctSketch::Parse(std::string("\x09\x00", 2)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Sparse hashes out of order (a zero delta after the first) and an overlong count.
  EXPECT_FALSE(DistinctSketch::Parse(std::string("\x01\x02\x05\x00", 4)).ok());
  EXPECT_FALSE(DistinctSketch::Parse(std::string("\x01\x80\x20", 3)).ok());
  // A dense register above 51.
  std::string dense = Bytes(Distinct(0, 100000));
  dense[1] = static_cast<char>(0x3f);
  EXPECT_FALSE(DistinctSketch::Parse(dense).ok());
  // An 11-byte varint.
  EXPECT_FALSE(DistinctSketch::Parse(std::string("\x01\x01") + std::string(10, '\xff') + "\x01")
                   .ok());

  ExpectRejectsTruncationsAndSurvivesGarbage<DistinctSketch>(Bytes(Distinct(0, 300)));
  ExpectRejectsTruncationsAndSurvivesGarbage<DistinctSketch>(Bytes(Distinct(0, 100000)));
}

TEST(DistinctSketch, StaysSmallForFewValues) {
  EXPECT_LT(Distinct(0, 1).memory_bytes(), 64u);
  EXPECT_LT(Distinct(0, 8).memory_bytes(), 128u);
  EXPECT_LE(Distinct(0, 1000000).memory_bytes(), 17u * 1024);
  DistinctSketch a = Distinct(0, 2);
  a.Merge(Distinct(1, 3));
  EXPECT_LT(a.memory_bytes(), 96u);
}

// The exact value of rank q (n - 1), the one the sketch approximates.
double ExactQuantile(const std::vector<double>& sorted, double q) {
  return sorted[static_cast<size_t>(std::floor(q * static_cast<double>(sorted.size() - 1)))];
}

void ExpectWithinOnePercent(QuantileSketch& sketch, std::vector<double> values) {
  std::sort(values.begin(), values.end());
  ASSERT_EQ(sketch.count(), values.size());
  for (double q : {0.0, 0.001, 0.01, 0.1, 0.25, 0.3, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0}) {
    const double exact = ExactQuantile(values, q);
    const double got = sketch.Quantile(q);
    if (exact == 0) {
      EXPECT_EQ(got, 0) << "q=" << q;
    } else {
      EXPECT_LE(std::fabs(got - exact), 0.01 * std::fabs(exact) * (1 + 1e-9))
          << "q=" << q << " exact=" << exact << " got=" << got;
    }
  }
}

TEST(QuantileSketch, EmptyIsNaN) {
  QuantileSketch s;
  EXPECT_EQ(s.count(), 0u);
  EXPECT_TRUE(std::isnan(s.Quantile(0.5)));
  s.Add(3);
  EXPECT_TRUE(std::isnan(s.Quantile(1.5)));
  EXPECT_TRUE(std::isnan(s.Quantile(std::nan(""))));
}

TEST(QuantileSketch, WithinOnePercentOnSeveralDistributions) {
  constexpr int kN = 100000;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> uniform(0, 1000);
  std::exponential_distribution<double> exponential(0.01);
  std::normal_distribution<double> normal(10, 100);
  std::lognormal_distribution<double> lognormal(0, 3);
  auto run = [&](const char* name, auto draw) {
    SCOPED_TRACE(name);
    QuantileSketch s;
    std::vector<double> values;
    for (int i = 0; i < kN; ++i) {
      const double v = draw();
      values.push_back(v);
      s.Add(v);
    }
    ExpectWithinOnePercent(s, values);
  };
  run("uniform", [&] { return uniform(rng); });
  run("exponential", [&] { return exponential(rng); });
  run("with negatives", [&] { return normal(rng); });
  run("with zeros", [&] {
    const uint64_t r = rng() % 10;
    if (r < 3) return 0.0;
    if (r < 5) return -lognormal(rng);
    return lognormal(rng);
  });
  run("all negative", [&] { return -exponential(rng) - 1e-6; });
  run("integers", [&] { return static_cast<double>(rng() % 50); });
}

TEST(QuantileSketch, IgnoresNaNAndInfinities) {
  QuantileSketch s;
  s.Add(std::nan(""));
  s.Add(INFINITY);
  s.Add(-INFINITY);
  EXPECT_EQ(s.count(), 0u);
  s.Add(5e-324);  // below the smallest normal: zero
  s.Add(-0.0);
  EXPECT_EQ(s.count(), 2u);
  EXPECT_EQ(s.Quantile(0.5), 0);
  s.Add(1.7e308);
  EXPECT_NEAR(s.Quantile(1), 1.7e308, 1.7e306);
}

TEST(QuantileSketch, MergeEqualsAddingAll) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal(0, 50);
  QuantileSketch a, b, all;
  std::vector<double> values;
  for (int i = 0; i < 20000; ++i) {
    const double v = i % 7 == 0 ? 0.0 : normal(rng);
    values.push_back(v);
    (i % 3 == 0 ? a : b).Add(v);
    all.Add(v);
  }
  a.Merge(b);
  EXPECT_EQ(Bytes(a), Bytes(all));
  ExpectWithinOnePercent(a, values);
  QuantileSketch empty;
  empty.Merge(all);
  EXPECT_EQ(Bytes(empty), Bytes(all));
}

TEST(QuantileSketch, CollapsesLowestBucketsAndKeepsHighQuantiles) {
  // Magnitudes from 1e-300 to 1e300 need about 69000 buckets per sign.
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> exponent(-300, 300);
  QuantileSketch s, half;
  std::vector<double> values;
  for (int i = 0; i < 100000; ++i) {
    const double v = std::pow(10.0, exponent(rng)) * (i % 2 ? 1 : -1);
    values.push_back(v);
    s.Add(v);
    if (i % 2) half.Add(v);
  }
  EXPECT_LE(s.memory_bytes(), 2 * 2048 * 16 + 1024);
  std::sort(values.begin(), values.end());
  // The collapsed buckets hold the smallest magnitudes: quantiles at both ends stay exact to
  // 1%, ranks near zero are coarse.
  for (double q : {0.0, 0.001, 0.005, 0.995, 0.999, 1.0}) {
    const double exact = ExactQuantile(values, q);
    EXPECT_LE(std::fabs(s.Quantile(q) - exact), 0.01 * std::fabs(exact) * (1 + 1e-9))
        << "q=" << q;
  }
  // Merging collapsed sketches stays bounded too.
  half.Merge(s);
  EXPECT_LE(half.memory_bytes(), 2 * 2048 * 16 + 1024);
  EXPECT_EQ(half.count(), 150000u);
  auto parsed = QuantileSketch::Parse(Bytes(s));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(Bytes(*parsed), Bytes(s));
}

TEST(QuantileSketch, SerializationRoundTrips) {
  std::mt19937_64 rng(9);
  std::normal_distribution<double> normal(0, 1000);
  QuantileSketch s;
  for (int n : {0, 1, 10, 10000}) {
    while (s.count() < static_cast<uint64_t>(n)) s.Add(s.count() % 5 == 0 ? 0 : normal(rng));
    const std::string bytes = Bytes(s);
    auto parsed = QuantileSketch::Parse(bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(Bytes(*parsed), bytes);
    EXPECT_EQ(parsed->count(), s.count());
    for (double q : {0.0, 0.5, 0.99, 1.0}) {
      if (n == 0) {
        EXPECT_TRUE(std::isnan(parsed->Quantile(q)));
      } else {
        EXPECT_EQ(parsed->Quantile(q), s.Quantile(q));
      }
    }
    // A parsed sketch goes on like the original.
    QuantileSketch more = *parsed, expected = s;
    more.Add(-2.5);
    expected.Add(-2.5);
    EXPECT_EQ(Bytes(more), Bytes(expected));
  }
}

TEST(QuantileSketch, ParseRejectsBadInput) {
  auto code = [](std::string_view bytes) { return QuantileSketch::Parse(bytes).status().code(); };
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(""), kInvalid);
  EXPECT_EQ(code(std::string("\x02\x00\x00\x00", 4)), kInvalid);  // unknown version
  // Zero count 0; negative store: 2 buckets at 4 and 4 (out of order).
  EXPECT_EQ(code(std::string("\x01\x00\x02\x08\x01\x00\x01\x00", 8)), kInvalid);
  // A bucket with count 0.
  EXPECT_EQ(code(std::string("\x01\x00\x00\x01\x08\x00", 6)), kInvalid);
  // A bucket index beyond the range of doubles.
  EXPECT_EQ(code(std::string("\x01\x00\x00\x01\xff\xff\x07\x01", 8)), kInvalid);
  // Counts that overflow 64 bits.
  std::string overflow("\x01", 1);
  overflow += std::string(9, '\xff') + '\x01';  // zero count 2^64 - 1
  overflow += std::string("\x00\x01\x02\x01", 4);
  EXPECT_EQ(code(overflow), kInvalid);
  // More than 2048 buckets in a store.
  EXPECT_EQ(code(std::string("\x01\x00\x81\x10", 4)), kInvalid);

  QuantileSketch s;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(0, 10);
  for (int i = 0; i < 300; ++i) s.Add(i % 10 == 0 ? 0 : normal(rng));
  ExpectRejectsTruncationsAndSurvivesGarbage<QuantileSketch>(Bytes(s));
}

TEST(QuantileSketch, StaysSmallForFewValues) {
  QuantileSketch s;
  s.Add(12.5);
  EXPECT_LT(s.memory_bytes(), 64u);
  EXPECT_LT(Bytes(s).size(), 10u);
  for (int i = 0; i < 8; ++i) s.Add(i * 10.0);
  EXPECT_LE(s.memory_bytes(), 40u + 16 * 16);
}

}  // namespace
}  // namespace nodata::aggregate
