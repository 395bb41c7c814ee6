// Mergeable approximate summaries for the built-in measures `count_distinct` (HyperLogLog) and
// `quantile` (DDSketch), with their serialized forms (part of an aggregation's stored state:
// persistent, versioned by a leading byte). Both stay small while they have seen few values, as
// most (window, key) groups do.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace nodata::aggregate {

// Distinct count estimate of 64-bit hashes. Exact while it holds few hashes (a sorted sparse
// list), then HyperLogLog with 2^14 registers: relative standard error 1.04/sqrt(2^14) ≈ 0.81%.
class DistinctSketch {
 public:
  void Add(uint64_t hash);
  void Merge(const DistinctSketch& other);
  uint64_t Estimate() const;
  void AppendTo(std::string* out) const;
  // INVALID_ARGUMENT for bytes that are not a serialized sketch.
  static absl::StatusOr<DistinctSketch> Parse(std::string_view bytes);
  size_t memory_bytes() const;
};

// Quantiles with relative accuracy: a returned quantile is within 1% of the true value
// (DDSketch, alpha = 0.01) for positive and negative values alike; zero exact.
class QuantileSketch {
 public:
  void Add(double value);
  void Merge(const QuantileSketch& other);
  uint64_t count() const;
  // q in [0, 1]; NaN when empty.
  double Quantile(double q) const;
  void AppendTo(std::string* out) const;
  static absl::StatusOr<QuantileSketch> Parse(std::string_view bytes);
  size_t memory_bytes() const;
};

}  // namespace nodata::aggregate
