// Strong ids for the values that cross module boundaries: a partition's number and a record's
// offset. Each wraps its integer so that an offset cannot be passed where a partition goes (or
// a count where an offset goes) without saying so; they cost nothing at run time.
#pragma once

#include <compare>
#include <cstdint>
#include <ostream>
#include <utility>

namespace nodata {

// A partition's number within its topic, from 0.
class PartitionId {
 public:
  constexpr PartitionId() = default;
  constexpr explicit PartitionId(uint32_t value) : value_(value) {}
  constexpr uint32_t value() const { return value_; }

  friend constexpr auto operator<=>(PartitionId, PartitionId) = default;
  template <typename H>
  friend H AbslHashValue(H h, PartitionId p) {
    return H::combine(std::move(h), p.value_);
  }
  friend std::ostream& operator<<(std::ostream& os, PartitionId p) { return os << p.value_; }

 private:
  uint32_t value_ = 0;
};

// A record's position in its partition, from 0: the n-th record stored has offset n. An end
// offset is the offset the next record will get.
class Offset {
 public:
  constexpr Offset() = default;
  constexpr explicit Offset(uint64_t value) : value_(value) {}
  constexpr uint64_t value() const { return value_; }

  // The offset `n` records later.
  constexpr Offset operator+(uint64_t n) const { return Offset(value_ + n); }
  // How many records lie from `from` up to this one; `from` must not be past it.
  constexpr uint64_t operator-(Offset from) const { return value_ - from.value_; }
  constexpr Offset Next() const { return Offset(value_ + 1); }

  friend constexpr auto operator<=>(Offset, Offset) = default;
  template <typename H>
  friend H AbslHashValue(H h, Offset o) {
    return H::combine(std::move(h), o.value_);
  }
  friend std::ostream& operator<<(std::ostream& os, Offset o) { return os << o.value_; }

 private:
  uint64_t value_ = 0;
};

}  // namespace nodata
