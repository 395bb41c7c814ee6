// Mergeable approximate summaries for the built-in measures `count_distinct` (HyperLogLog) and
// `quantile` (DDSketch), with their serialized forms (part of an aggregation's stored state:
// persistent, versioned by a leading byte). Both stay small while they have seen few values, as
// most (window, key) groups do.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nodata::aggregate {

// Distinct count estimate of 64-bit hashes. Exact while it holds few hashes (a sorted sparse
// list), then HyperLogLog with 2^14 registers: relative standard error 1.04/sqrt(2^14) ≈ 0.81%.
// The hashes must be uniformly distributed (a good 64-bit hash of the values). Not thread-safe.
class DistinctSketch {
 public:
  void Add(uint64_t hash);
  void Merge(const DistinctSketch& other);
  uint64_t Estimate() const;
  void AppendTo(std::string* out) const;
  // INVALID_ARGUMENT for bytes that are not a serialized sketch.
  static absl::StatusOr<DistinctSketch> Parse(std::string_view bytes);
  size_t memory_bytes() const;

 private:
  void ToDense();

  std::vector<uint64_t> sparse_;  // sorted, unique; in use while registers_ is empty
  std::vector<uint8_t> registers_;  // 2^14 HyperLogLog registers, one per byte, once dense
};

// Quantiles with relative accuracy: a returned quantile is within 1% of the true value
// (DDSketch, alpha = 0.01) for positive and negative values alike; zero exact. Values of
// magnitude below the smallest normal double count as zero; NaN and infinities are ignored.
// Each sign keeps at most 2048 buckets; beyond that its smallest magnitudes are merged, which
// only coarsens quantiles among values 1.0202^2048 (about 6e17) times smaller than its
// largest. Not thread-safe.
class QuantileSketch {
 public:
  void Add(double value);
  void Merge(const QuantileSketch& other);
  uint64_t count() const;
  // q in [0, 1]; NaN when empty or q is outside [0, 1].
  double Quantile(double q) const;
  void AppendTo(std::string* out) const;
  // INVALID_ARGUMENT for bytes that are not a serialized sketch.
  static absl::StatusOr<QuantileSketch> Parse(std::string_view bytes);
  size_t memory_bytes() const;

 private:
  // count values x with gamma^(index-1) < |x| <= gamma^index.
  struct Bucket {
    int32_t index;
    uint64_t count;
  };

  // Keeps a store within its bucket limit by merging its lowest buckets.
  void Collapse(bool negative);

  // buckets_[0, negative_buckets_) is the store of negative values (by |x|), the rest the
  // store of positive values; each ascending by index. One vector keeps a sketch of a few
  // values small.
  std::vector<Bucket> buckets_;
  uint64_t zero_count_ = 0;
  uint32_t negative_buckets_ = 0;
};

}  // namespace nodata::aggregate
