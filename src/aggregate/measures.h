// The built-in measures: the fields a record contributes (found with simdjson in its data, one
// parse per record for the key and every measure), the accumulators of one (window, key), their
// stored bytes and the JSON `values` they read as.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregate/definition.h"
#include "aggregate/sketch.h"
#include "simdjson.h"

namespace nodata::aggregate {

// One measure's running summary. Which fields mean what depends on the measure.
struct Accumulator {
  uint64_t n = 0;      // values taken (count: records)
  int64_t i = 0;       // sum, avg: the integer part of the sum; last: the value's event time
  double d = 0;        // sum, avg: the non-integer part; min, max: the extreme
  bool real = false;   // sum: a non-integer was added (the sum reads as a real number)
  std::string last;    // last: the value's JSON text
  std::unique_ptr<DistinctSketch> distinct;
  std::unique_ptr<QuantileSketch> quantile;
};

using Accumulators = std::vector<Accumulator>;

// What a record's data holds at one path.
struct Field {
  enum class Kind : uint8_t { kMissing, kInt, kReal, kString, kOther } kind = Kind::kMissing;
  int64_t i = 0;
  double d = 0;
  std::string_view text;  // kString: the characters; otherwise the JSON text
};

class MeasureSet {
 public:
  // `key`: the key path to extract along (none for the event's key).
  MeasureSet(std::vector<MeasureSpec> measures, const KeySpec& key);

  // Parses `data` once and reads the key (when it comes from the data) and every measure's field
  // into `fields()`. False when the key path has no value (the record is skipped); an unparsable
  // document reads as every field missing.
  bool Extract(std::string_view data);
  // The key Extract read: a string's characters or another value's JSON text.
  std::string_view key() const { return key_; }

  Accumulators New() const;
  // Folds the fields Extract read, of a record with event time `time_us`.
  void Add(Accumulators& accs, int64_t time_us) const;
  void Merge(Accumulators& into, const Accumulators& from) const;
  void Serialize(const Accumulators& accs, std::string* out) const;
  // DATA_LOSS for bytes that are not this set's accumulators.
  absl::StatusOr<Accumulators> Parse(std::string_view bytes) const;
  // The `values` JSON object: {"name": value, …}; null for a measure without values yet.
  void Values(const Accumulators& accs, std::string* out) const;
  // Whether `name` is one of the measures (for order_by).
  bool Has(std::string_view name) const;
  size_t size() const { return measures_.size(); }

 private:
  bool Read(simdjson::ondemand::document& doc, const std::string& pointer, Field* out);

  std::vector<MeasureSpec> measures_;
  bool key_from_data_ = false;
  std::string key_pointer_;
  std::vector<std::string> pointers_;  // distinct paths of the measures
  std::vector<int> field_of_;          // per measure: its index in pointers_ (-1: none)
  std::vector<Field> fields_;
  std::string key_;
  simdjson::ondemand::parser parser_;
  std::string padded_;
};

// Formats a double as JSON: shortest round-trip form; null for NaN and infinities.
void AppendJsonNumber(std::string* out, double v);
// A JSON string literal of `s` (bytes that are not UTF-8 become U+FFFD).
void AppendJsonString(std::string* out, std::string_view s);

}  // namespace nodata::aggregate
