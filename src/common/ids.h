// Strong ids for the values that cross module boundaries: a topic's name, a partition's number
// and a record's offset. Each wraps its value so that an offset cannot be passed where a
// partition goes (or a count where an offset goes, or any string where a checked name goes)
// without saying so; the integer ones cost nothing at run time.
#pragma once

#include <compare>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "common/names.h"

namespace nodata {

// A topic's name, checked by ValidateTopicName: safe as one directory name, which is what the
// data directory makes of it. Only Parse makes one, so a path built from a TopicName needs no
// further check. Reads as the string it holds.
class TopicName {
 public:
  static absl::StatusOr<TopicName> Parse(std::string_view name) {
    if (absl::Status s = ValidateTopicName(name); !s.ok()) return s;
    return TopicName(std::string(name));
  }

  const std::string& str() const { return name_; }
  operator std::string_view() const { return name_; }  // NOLINT: a name reads as its text

  friend bool operator==(const TopicName&, const TopicName&) = default;
  friend auto operator<=>(const TopicName&, const TopicName&) = default;
  friend std::ostream& operator<<(std::ostream& os, const TopicName& t) { return os << t.name_; }

 private:
  explicit TopicName(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

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
