#include "aggregate/sketch.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cfloat>
#include <cmath>
#include <iterator>
#include <limits>

#include "absl/status/status.h"

namespace nodata::aggregate {
namespace {

// Persistent format. A serialized sketch is a leading byte naming its layout, then fields;
// varints are LEB128 in their shortest form (so the bytes of a sketch are canonical).
// count_distinct:
//   1 (sparse): varint n (<= 512), then the n hashes ascending: the first as a varint, each
//     next as a varint of its distance (>= 1) from the previous.
//   2 (dense, precision 14): 12288 bytes, registers 4i..4i+3 (each <= 51) packed into 3 bytes
//     little-endian, register 4i in the low 6 bits.
// quantile:
//   1 (alpha 0.01): varint zero count, then the negative and the positive store, each a varint
//     n (<= 2048) and n buckets ascending by index: the first index zigzag-encoded, each next
//     as its distance (>= 1) from the previous, each followed by a varint count (>= 1).
// The values are never renumbered; a change of layout or of a parameter is a new value.
constexpr uint8_t kDistinctSparseV1 = 1;
constexpr uint8_t kDistinctDenseV1 = 2;
constexpr uint8_t kQuantileV1 = 1;

// HyperLogLog: 2^14 registers indexed by a hash's top 14 bits, each holding the largest
// position of the first set bit among the remaining 50 bits (1-based, at most 51).
constexpr int kPrecision = 14;
constexpr size_t kRegisters = size_t{1} << kPrecision;
constexpr uint8_t kMaxRegister = 64 - kPrecision + 1;
constexpr size_t kPackedRegisterBytes = kRegisters / 4 * 3;
// The sparse list turns dense past 4 KiB of hashes: a quarter of the registers' 16 KiB.
constexpr size_t kMaxSparse = 512;

// DDSketch with relative accuracy 1%.
constexpr double kAlpha = 0.01;
constexpr double kGamma = (1 + kAlpha) / (1 - kAlpha);
constexpr size_t kMaxBuckets = 2048;  // per store

class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}

  bool Byte(uint8_t* v) {
    if (rest_.empty()) return false;
    *v = static_cast<uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return true;
  }

  // LEB128; false on truncation or a value that does not fit 64 bits.
  bool Varint(uint64_t* v) {
    uint64_t out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!Byte(&b)) return false;
      if (shift == 63 && b > 1) return false;
      // One encoding per value: a serialized sketch is canonical.
      if (shift > 0 && b == 0) return false;
      out |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) {
        *v = out;
        return true;
      }
    }
    return false;
  }

  bool Bytes(size_t n, std::string_view* v) {
    if (rest_.size() < n) return false;
    *v = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }

  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

absl::Status Invalid(std::string_view what, std::string_view why) {
  return absl::InvalidArgumentError(
      std::string(what).append(" sketch: ").append(why.data(), why.size()));
}

void AddToRegisters(std::vector<uint8_t>& registers, uint64_t hash) {
  const size_t index = hash >> (64 - kPrecision);
  const uint64_t rest = hash << kPrecision;
  const uint8_t rank =
      static_cast<uint8_t>(std::min<int>(std::countl_zero(rest) + 1, kMaxRegister));
  registers[index] = std::max(registers[index], rank);
}

// Ertl's sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1), for x in [0, 1).
double Sigma(double x) {
  double y = 1;
  double z = x;
  for (;;) {
    x *= x;
    const double before = z;
    z += x * y;
    y += y;
    if (z == before) return z;
  }
}

// Ertl's tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3, for x in [0, 1].
double Tau(double x) {
  if (x == 0 || x == 1) return 0;
  double y = 1;
  double z = 1 - x;
  for (;;) {
    x = std::sqrt(x);
    const double before = z;
    y *= 0.5;
    z -= (1 - x) * (1 - x) * y;
    if (z == before) return z / 3;
  }
}

double LogGamma() {
  static const double log_gamma = std::log(kGamma);
  return log_gamma;
}

// The bucket holding |x|, for x of magnitude in [DBL_MIN, DBL_MAX].
int32_t BucketIndex(double magnitude) {
  return static_cast<int32_t>(std::ceil(std::log(magnitude) / LogGamma()));
}

int32_t MinIndex() {
  static const int32_t index = BucketIndex(DBL_MIN);
  return index;
}

int32_t MaxIndex() {
  static const int32_t index = BucketIndex(DBL_MAX);
  return index;
}

// The value within kAlpha of every magnitude in the bucket: 2 gamma^index / (gamma + 1).
double BucketValue(int32_t index) {
  static const double log_scale = std::log(2 / (kGamma + 1));
  // In logs, so that gamma^index itself cannot overflow for the largest magnitudes.
  return std::min(std::exp(index * LogGamma() + log_scale), DBL_MAX);
}

}  // namespace

// DistinctSketch.

void DistinctSketch::ToDense() {
  registers_.assign(kRegisters, 0);
  for (uint64_t h : sparse_) AddToRegisters(registers_, h);
  std::vector<uint64_t>().swap(sparse_);
}

void DistinctSketch::Add(uint64_t hash) {
  if (registers_.empty()) {
    auto it = std::lower_bound(sparse_.begin(), sparse_.end(), hash);
    if (it != sparse_.end() && *it == hash) return;
    if (sparse_.size() < kMaxSparse) {
      sparse_.insert(it, hash);
      return;
    }
    ToDense();
  }
  AddToRegisters(registers_, hash);
}

void DistinctSketch::Merge(const DistinctSketch& other) {
  if (&other == this) return;
  if (!other.registers_.empty()) {
    if (registers_.empty()) ToDense();
    for (size_t i = 0; i < kRegisters; ++i) {
      registers_[i] = std::max(registers_[i], other.registers_[i]);
    }
    return;
  }
  if (!registers_.empty()) {
    for (uint64_t h : other.sparse_) AddToRegisters(registers_, h);
    return;
  }
  std::vector<uint64_t> merged;
  merged.reserve(sparse_.size() + other.sparse_.size());
  std::set_union(sparse_.begin(), sparse_.end(), other.sparse_.begin(), other.sparse_.end(),
                 std::back_inserter(merged));
  sparse_ = std::move(merged);
  if (sparse_.size() > kMaxSparse) {
    ToDense();
  } else {
    sparse_.shrink_to_fit();
  }
}

uint64_t DistinctSketch::Estimate() const {
  if (registers_.empty()) return sparse_.size();
  // Ertl's improved raw estimator ("New cardinality estimation algorithms for HyperLogLog
  // sketches", 2017, algorithm 6). The classic estimator switches to linear counting below
  // 2.5 m and is biased by about 3% around that point (40 000 distinct values); this one
  // folds the empty (sigma) and saturated (tau) registers into the harmonic mean and stays
  // unbiased over the whole range, with the same registers.
  std::array<uint32_t, kMaxRegister + 1> histogram{};
  for (uint8_t r : registers_) ++histogram[r];
  constexpr double m = kRegisters;
  constexpr int q = kMaxRegister - 1;
  if (histogram[0] == kRegisters) return 0;
  double z = m * Tau(1 - histogram[q + 1] / m);
  for (int k = q; k >= 1; --k) z = 0.5 * (z + histogram[k]);
  z += m * Sigma(histogram[0] / m);
  const double estimate = m * m / (2 * std::log(2.0)) / z;
  return static_cast<uint64_t>(std::llround(estimate));
}

void DistinctSketch::AppendTo(std::string* out) const {
  if (registers_.empty()) {
    out->push_back(static_cast<char>(kDistinctSparseV1));
    PutVarint(out, sparse_.size());
    uint64_t prev = 0;
    for (uint64_t h : sparse_) {
      PutVarint(out, h - prev);
      prev = h;
    }
    return;
  }
  out->push_back(static_cast<char>(kDistinctDenseV1));
  for (size_t i = 0; i < kRegisters; i += 4) {
    const uint32_t packed = registers_[i] | registers_[i + 1] << 6 | registers_[i + 2] << 12 |
                            registers_[i + 3] << 18;
    out->push_back(static_cast<char>(packed & 0xff));
    out->push_back(static_cast<char>(packed >> 8 & 0xff));
    out->push_back(static_cast<char>(packed >> 16 & 0xff));
  }
}

absl::StatusOr<DistinctSketch> DistinctSketch::Parse(std::string_view bytes) {
  constexpr std::string_view kWhat = "count_distinct";
  Reader in(bytes);
  uint8_t version;
  if (!in.Byte(&version)) return Invalid(kWhat, "empty");
  DistinctSketch sketch;
  if (version == kDistinctSparseV1) {
    uint64_t n;
    if (!in.Varint(&n)) return Invalid(kWhat, "truncated");
    if (n > kMaxSparse) return Invalid(kWhat, "too many sparse hashes");
    sketch.sparse_.reserve(n);
    uint64_t prev = 0;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t delta;
      if (!in.Varint(&delta)) return Invalid(kWhat, "truncated");
      // Strictly ascending, and the first may be 0.
      if ((i > 0 && delta == 0) || delta > std::numeric_limits<uint64_t>::max() - prev) {
        return Invalid(kWhat, "hashes out of order");
      }
      prev += delta;
      sketch.sparse_.push_back(prev);
    }
  } else if (version == kDistinctDenseV1) {
    std::string_view packed;
    if (!in.Bytes(kPackedRegisterBytes, &packed)) return Invalid(kWhat, "truncated");
    sketch.registers_.resize(kRegisters);
    for (size_t i = 0, j = 0; i < kRegisters; i += 4, j += 3) {
      const uint32_t v = static_cast<uint8_t>(packed[j]) |
                         static_cast<uint32_t>(static_cast<uint8_t>(packed[j + 1])) << 8 |
                         static_cast<uint32_t>(static_cast<uint8_t>(packed[j + 2])) << 16;
      for (size_t k = 0; k < 4; ++k) {
        const uint8_t r = v >> (6 * k) & 0x3f;
        if (r > kMaxRegister) return Invalid(kWhat, "register out of range");
        sketch.registers_[i + k] = r;
      }
    }
  } else {
    return Invalid(kWhat, "unknown version");
  }
  if (!in.done()) return Invalid(kWhat, "trailing bytes");
  return sketch;
}

size_t DistinctSketch::memory_bytes() const {
  return sizeof(*this) + sparse_.capacity() * sizeof(uint64_t) + registers_.capacity();
}

// QuantileSketch.

void QuantileSketch::Add(double value) {
  if (!std::isfinite(value)) return;
  const double magnitude = std::fabs(value);
  if (magnitude < DBL_MIN) {
    ++zero_count_;
    return;
  }
  const bool negative = value < 0;
  const int32_t index = BucketIndex(magnitude);
  const auto begin = buckets_.begin() + (negative ? 0 : negative_buckets_);
  const auto end = negative ? buckets_.begin() + negative_buckets_ : buckets_.end();
  auto it = std::lower_bound(begin, end, index,
                             [](const Bucket& b, int32_t i) { return b.index < i; });
  if (it != end && it->index == index) {
    ++it->count;
    return;
  }
  if (static_cast<size_t>(end - begin) == kMaxBuckets) {
    // Full: collapse before inserting, so the vector never outgrows both stores' limit.
    if (it == begin) {
      ++begin->count;  // below the lowest bucket, where collapsing would put it
      return;
    }
    (begin + 1)->count += begin->count;
    it = buckets_.erase(begin) + (it - begin - 1);
    if (negative) --negative_buckets_;
  }
  buckets_.insert(it, Bucket{index, 1});
  if (negative) ++negative_buckets_;
}

void QuantileSketch::Collapse(bool negative) {
  const size_t begin = negative ? 0 : negative_buckets_;
  const size_t end = negative ? negative_buckets_ : buckets_.size();
  if (end - begin <= kMaxBuckets) return;
  // The lowest buckets go into the lowest one kept: their values are the store's smallest
  // magnitudes, the least likely to be asked for with relative accuracy.
  const size_t excess = end - begin - kMaxBuckets;
  Bucket& kept = buckets_[begin + excess];
  for (size_t i = begin; i < begin + excess; ++i) kept.count += buckets_[i].count;
  buckets_.erase(buckets_.begin() + begin, buckets_.begin() + begin + excess);
  if (negative) negative_buckets_ -= excess;
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  std::vector<Bucket> merged;
  merged.reserve(buckets_.size() + other.buckets_.size());
  auto merge_store = [&merged](const Bucket* a, const Bucket* a_end, const Bucket* b,
                               const Bucket* b_end) {
    while (a != a_end || b != b_end) {
      if (b == b_end || (a != a_end && a->index < b->index)) {
        merged.push_back(*a++);
      } else if (a == a_end || b->index < a->index) {
        merged.push_back(*b++);
      } else {
        merged.push_back(Bucket{a->index, a->count + b->count});
        ++a;
        ++b;
      }
    }
  };
  const Bucket* mine = buckets_.data();
  const Bucket* theirs = other.buckets_.data();
  merge_store(mine, mine + negative_buckets_, theirs, theirs + other.negative_buckets_);
  const auto negative_buckets = static_cast<uint32_t>(merged.size());
  merge_store(mine + negative_buckets_, mine + buckets_.size(),
              theirs + other.negative_buckets_, theirs + other.buckets_.size());
  zero_count_ += other.zero_count_;
  buckets_ = std::move(merged);
  negative_buckets_ = negative_buckets;
  Collapse(true);
  Collapse(false);
  buckets_.shrink_to_fit();
}

uint64_t QuantileSketch::count() const {
  uint64_t n = zero_count_;
  for (const Bucket& b : buckets_) n += b.count;
  return n;
}

double QuantileSketch::Quantile(double q) const {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  if (!(q >= 0 && q <= 1)) return kNaN;
  uint64_t negative_count = 0;
  for (uint32_t i = 0; i < negative_buckets_; ++i) negative_count += buckets_[i].count;
  const uint64_t total = count();
  if (total == 0) return kNaN;
  // The DDSketch rank rule: the value of rank q (n - 1) in ascending order, 0-based.
  const double rank = q * static_cast<double>(total - 1);
  if (rank < static_cast<double>(negative_count)) {
    // Negative values descend as their magnitude's index ascends.
    const double reversed = static_cast<double>(negative_count) - 1 - rank;
    double running = 0;
    for (uint32_t i = 0; i < negative_buckets_; ++i) {
      running += static_cast<double>(buckets_[i].count);
      if (running >= reversed + 1) return -BucketValue(buckets_[i].index);
    }
    return -BucketValue(buckets_[negative_buckets_ - 1].index);
  }
  if (rank < static_cast<double>(negative_count + zero_count_)) return 0;
  const double positive_rank = rank - static_cast<double>(negative_count + zero_count_);
  double running = 0;
  for (size_t i = negative_buckets_; i < buckets_.size(); ++i) {
    running += static_cast<double>(buckets_[i].count);
    if (running > positive_rank) return BucketValue(buckets_[i].index);
  }
  // Only reached through rounding of very large counts.
  return buckets_.size() > negative_buckets_ ? BucketValue(buckets_.back().index) : 0;
}

void QuantileSketch::AppendTo(std::string* out) const {
  out->push_back(static_cast<char>(kQuantileV1));
  PutVarint(out, zero_count_);
  auto put_store = [out](const Bucket* b, const Bucket* end) {
    PutVarint(out, static_cast<uint64_t>(end - b));
    int64_t prev = 0;
    for (bool first = true; b != end; ++b, first = false) {
      // The first index zigzag, the rest as their (positive) distance from the previous.
      PutVarint(out, first ? ZigZag(b->index) : static_cast<uint64_t>(b->index - prev));
      PutVarint(out, b->count);
      prev = b->index;
    }
  };
  put_store(buckets_.data(), buckets_.data() + negative_buckets_);
  put_store(buckets_.data() + negative_buckets_, buckets_.data() + buckets_.size());
}

absl::StatusOr<QuantileSketch> QuantileSketch::Parse(std::string_view bytes) {
  constexpr std::string_view kWhat = "quantile";
  Reader in(bytes);
  uint8_t version;
  if (!in.Byte(&version)) return Invalid(kWhat, "empty");
  if (version != kQuantileV1) return Invalid(kWhat, "unknown version");
  QuantileSketch sketch;
  uint64_t total;
  if (!in.Varint(&total)) return Invalid(kWhat, "truncated");
  sketch.zero_count_ = total;
  for (const bool negative : {true, false}) {
    uint64_t n;
    if (!in.Varint(&n)) return Invalid(kWhat, "truncated");
    if (n > kMaxBuckets) return Invalid(kWhat, "too many buckets");
    sketch.buckets_.reserve(sketch.buckets_.size() + n);
    int64_t prev = 0;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t raw;
      uint64_t count;
      if (!in.Varint(&raw) || !in.Varint(&count)) return Invalid(kWhat, "truncated");
      // Bounded before any arithmetic, so nothing below can overflow.
      if (raw > uint64_t{1} << 40) return Invalid(kWhat, "bucket index out of range");
      const int64_t index = i == 0 ? UnZigZag(raw) : prev + static_cast<int64_t>(raw);
      if (i > 0 && raw == 0) return Invalid(kWhat, "buckets out of order");
      if (index < MinIndex() || index > MaxIndex()) {
        return Invalid(kWhat, "bucket index out of range");
      }
      if (count == 0) return Invalid(kWhat, "empty bucket");
      if (count > std::numeric_limits<uint64_t>::max() - total) {
        return Invalid(kWhat, "count overflows");
      }
      total += count;
      sketch.buckets_.push_back(Bucket{static_cast<int32_t>(index), count});
      prev = index;
    }
    if (negative) sketch.negative_buckets_ = static_cast<uint32_t>(n);
  }
  if (!in.done()) return Invalid(kWhat, "trailing bytes");
  return sketch;
}

size_t QuantileSketch::memory_bytes() const {
  return sizeof(*this) + buckets_.capacity() * sizeof(Bucket);
}

}  // namespace nodata::aggregate
