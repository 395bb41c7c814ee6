#include "aggregate/measures.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "xxhash.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"

namespace nodata::aggregate {
namespace {

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutFixed64(std::string* out, uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out->append(b, 8);
}

void PutDouble(std::string* out, double d) {
  uint64_t v;
  std::memcpy(&v, &d, 8);
  PutFixed64(out, v);
}

void PutBytes(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// Reads the stored form; every read checks the bounds (bytes from disk are not trusted).
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool Varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (s_.empty()) return false;
      const uint8_t b = static_cast<uint8_t>(s_.front());
      s_.remove_prefix(1);
      r |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *v = r;
        return true;
      }
    }
    return false;
  }
  bool Double(double* d) {
    if (s_.size() < 8) return false;
    std::memcpy(d, s_.data(), 8);
    s_.remove_prefix(8);
    return true;
  }
  bool Bytes(std::string_view* b) {
    uint64_t n = 0;
    if (!Varint(&n) || n > s_.size()) return false;
    *b = s_.substr(0, n);
    s_.remove_prefix(n);
    return true;
  }
  bool Byte(uint8_t* b) {
    if (s_.empty()) return false;
    *b = static_cast<uint8_t>(s_.front());
    s_.remove_prefix(1);
    return true;
  }
  bool done() const { return s_.empty(); }

 private:
  std::string_view s_;
};

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool NeedsNumber(MeasureFn fn) {
  return fn == MeasureFn::kSum || fn == MeasureFn::kMin || fn == MeasureFn::kMax ||
         fn == MeasureFn::kAvg || fn == MeasureFn::kQuantile;
}

double AsDouble(const Field& f) { return f.kind == Field::Kind::kInt ? static_cast<double>(f.i) : f.d; }

}  // namespace

void AppendJsonNumber(std::string* out, double v) {
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->append(nlohmann::json(std::string(s)).dump(-1, ' ', false,
                                                  nlohmann::json::error_handler_t::replace));
}

MeasureSet::MeasureSet(std::vector<MeasureSpec> measures, const KeySpec& key)
    : measures_(std::move(measures)) {
  key_from_data_ = !key.event_key;
  key_pointer_ = key.path.pointer;
  for (const MeasureSpec& m : measures_) {
    int index = -1;
    if (m.path) {
      for (size_t i = 0; i < pointers_.size(); ++i) {
        if (pointers_[i] == m.path->pointer) index = static_cast<int>(i);
      }
      if (index < 0) {
        index = static_cast<int>(pointers_.size());
        pointers_.push_back(m.path->pointer);
      }
    }
    field_of_.push_back(index);
  }
  fields_.resize(pointers_.size());
}

bool MeasureSet::Read(simdjson::ondemand::document& doc, const std::string& pointer, Field* out) {
  using simdjson::ondemand::json_type;
  out->kind = Field::Kind::kMissing;
  simdjson::ondemand::value v;
  if (doc.at_pointer(pointer).get(v) != simdjson::SUCCESS) return false;
  json_type type;
  if (v.type().get(type) != simdjson::SUCCESS) return false;
  switch (type) {
    case json_type::number: {
      simdjson::ondemand::number n;
      if (v.get_number().get(n) != simdjson::SUCCESS) return false;
      if (n.is_int64()) {
        out->kind = Field::Kind::kInt;
        out->i = n.get_int64();
      } else {
        out->kind = Field::Kind::kReal;
        out->d = n.as_double();
      }
      out->text = TrimRight(v.raw_json_token());
      return true;
    }
    case json_type::string: {
      std::string_view s;
      if (v.get_string().get(s) != simdjson::SUCCESS) return false;
      out->kind = Field::Kind::kString;
      out->text = s;
      return true;
    }
    case json_type::null:
      return false;
    case json_type::object: {
      simdjson::ondemand::object o;
      std::string_view raw;
      if (v.get_object().get(o) != simdjson::SUCCESS || o.raw_json().get(raw) != simdjson::SUCCESS) {
        return false;
      }
      out->kind = Field::Kind::kOther;
      out->text = raw;
      return true;
    }
    case json_type::array: {
      simdjson::ondemand::array a;
      std::string_view raw;
      if (v.get_array().get(a) != simdjson::SUCCESS || a.raw_json().get(raw) != simdjson::SUCCESS) {
        return false;
      }
      out->kind = Field::Kind::kOther;
      out->text = raw;
      return true;
    }
    case json_type::boolean: {
      out->kind = Field::Kind::kOther;
      out->text = TrimRight(v.raw_json_token());
      return true;
    }
  }
  return false;
}

bool MeasureSet::Extract(std::string_view data) {
  for (Field& f : fields_) f.kind = Field::Kind::kMissing;
  if (!key_from_data_ && pointers_.empty()) return true;
  // simdjson reads past the end of its input: the copy carries the padding it needs. Strings it
  // unescapes live in the parser's buffer until the next parse.
  padded_.assign(data);
  padded_.resize(data.size() + simdjson::SIMDJSON_PADDING);
  simdjson::ondemand::document doc;
  if (parser_.iterate(padded_.data(), data.size(), padded_.size()).get(doc) != simdjson::SUCCESS) {
    return !key_from_data_;
  }
  if (key_from_data_) {
    Field k;
    if (!Read(doc, key_pointer_, &k)) return false;
    // A string value's unescaped characters live in the parser; copy before the next read.
    key_.assign(k.text);
  }
  for (size_t i = 0; i < pointers_.size(); ++i) Read(doc, pointers_[i], &fields_[i]);
  return true;
}

Accumulators MeasureSet::New() const {
  Accumulators accs(measures_.size());
  for (size_t m = 0; m < measures_.size(); ++m) {
    if (measures_[m].fn == MeasureFn::kCountDistinct) accs[m].distinct = std::make_unique<DistinctSketch>();
    if (measures_[m].fn == MeasureFn::kQuantile) accs[m].quantile = std::make_unique<QuantileSketch>();
    if (measures_[m].fn == MeasureFn::kLast) accs[m].i = std::numeric_limits<int64_t>::min();
  }
  return accs;
}

void MeasureSet::Add(Accumulators& accs, int64_t time_us) const {
  for (size_t m = 0; m < measures_.size(); ++m) {
    const MeasureSpec& spec = measures_[m];
    Accumulator& a = accs[m];
    const Field* f = field_of_[m] >= 0 ? &fields_[field_of_[m]] : nullptr;
    if (spec.fn == MeasureFn::kCount) {
      if (f == nullptr || f->kind != Field::Kind::kMissing) ++a.n;
      continue;
    }
    if (f == nullptr || f->kind == Field::Kind::kMissing) continue;
    const bool number = f->kind == Field::Kind::kInt || f->kind == Field::Kind::kReal;
    if (NeedsNumber(spec.fn) && !number) continue;
    switch (spec.fn) {
      case MeasureFn::kSum:
      case MeasureFn::kAvg:
      {
        ++a.n;
        int64_t sum = 0;
        if (f->kind == Field::Kind::kInt && !__builtin_add_overflow(a.i, f->i, &sum)) {
          a.i = sum;
          break;
        }
        // A real number, or an integer sum past 64 bits: the sum reads as a real number.
        a.d += AsDouble(*f);
        a.real = true;
        break;
      }
      case MeasureFn::kMin:
        a.d = a.n == 0 ? AsDouble(*f) : std::min(a.d, AsDouble(*f));
        ++a.n;
        break;
      case MeasureFn::kMax:
        a.d = a.n == 0 ? AsDouble(*f) : std::max(a.d, AsDouble(*f));
        ++a.n;
        break;
      case MeasureFn::kLast:
        // The latest event time wins; of equal times, the record taken last.
        if (a.n == 0 || time_us >= a.i) {
          a.i = time_us;
          if (f->kind == Field::Kind::kString) {
            a.last.clear();
            AppendJsonString(&a.last, f->text);
          } else {
            a.last.assign(f->text);
          }
        }
        ++a.n;
        break;
      case MeasureFn::kCountDistinct: {
        // Strings and other values hash apart: "1" and 1 are distinct.
        const uint64_t h = XXH3_64bits_withSeed(f->text.data(), f->text.size(), f->kind == Field::Kind::kString ? 1 : 0);
        a.distinct->Add(h);
        ++a.n;
        break;
      }
      case MeasureFn::kQuantile:
        a.quantile->Add(AsDouble(*f));
        ++a.n;
        break;
      case MeasureFn::kCount:
        break;
    }
  }
}

void MeasureSet::Merge(Accumulators& into, const Accumulators& from) const {
  for (size_t m = 0; m < measures_.size(); ++m) {
    Accumulator& a = into[m];
    const Accumulator& b = from[m];
    if (b.n == 0) continue;
    switch (measures_[m].fn) {
      case MeasureFn::kCount:
        break;
      case MeasureFn::kSum:
      case MeasureFn::kAvg:
      {
        int64_t sum = 0;
        if (__builtin_add_overflow(a.i, b.i, &sum)) {
          a.d += static_cast<double>(b.i);
          a.real = true;
        } else {
          a.i = sum;
        }
      }
        a.d += b.d;
        a.real = a.real || b.real;
        break;
      case MeasureFn::kMin:
        a.d = a.n == 0 ? b.d : std::min(a.d, b.d);
        break;
      case MeasureFn::kMax:
        a.d = a.n == 0 ? b.d : std::max(a.d, b.d);
        break;
      case MeasureFn::kLast:
        if (a.n == 0 || b.i >= a.i) {
          a.i = b.i;
          a.last = b.last;
        }
        break;
      case MeasureFn::kCountDistinct:
        a.distinct->Merge(*b.distinct);
        break;
      case MeasureFn::kQuantile:
        a.quantile->Merge(*b.quantile);
        break;
    }
    a.n += b.n;
  }
}

// Stored form, per measure in definition order: varint n, then by function: sum/avg zigzag i,
// double d, byte real; min/max double d; last zigzag i, bytes; sketches bytes. Version 1.
void MeasureSet::Serialize(const Accumulators& accs, std::string* out) const {
  out->push_back(1);
  for (size_t m = 0; m < measures_.size(); ++m) {
    const Accumulator& a = accs[m];
    PutVarint(out, a.n);
    switch (measures_[m].fn) {
      case MeasureFn::kCount:
        break;
      case MeasureFn::kSum:
      case MeasureFn::kAvg:
        PutVarint(out, ZigZag(a.i));
        PutDouble(out, a.d);
        out->push_back(a.real ? 1 : 0);
        break;
      case MeasureFn::kMin:
      case MeasureFn::kMax:
        PutDouble(out, a.d);
        break;
      case MeasureFn::kLast:
        PutVarint(out, ZigZag(a.i));
        PutBytes(out, a.last);
        break;
      case MeasureFn::kCountDistinct: {
        std::string b;
        a.distinct->AppendTo(&b);
        PutBytes(out, b);
        break;
      }
      case MeasureFn::kQuantile: {
        std::string b;
        a.quantile->AppendTo(&b);
        PutBytes(out, b);
        break;
      }
    }
  }
}

absl::StatusOr<Accumulators> MeasureSet::Parse(std::string_view bytes) const {
  const auto damaged = [] { return absl::DataLossError("stored measure state is damaged"); };
  Reader r(bytes);
  uint8_t version = 0;
  if (!r.Byte(&version) || version != 1) return damaged();
  Accumulators accs = New();
  for (size_t m = 0; m < measures_.size(); ++m) {
    Accumulator& a = accs[m];
    if (!r.Varint(&a.n)) return damaged();
    uint64_t z = 0;
    std::string_view b;
    switch (measures_[m].fn) {
      case MeasureFn::kCount:
        break;
      case MeasureFn::kSum:
      case MeasureFn::kAvg: {
        uint8_t real = 0;
        if (!r.Varint(&z) || !r.Double(&a.d) || !r.Byte(&real)) return damaged();
        a.i = UnZigZag(z);
        a.real = real != 0;
        break;
      }
      case MeasureFn::kMin:
      case MeasureFn::kMax:
        if (!r.Double(&a.d)) return damaged();
        break;
      case MeasureFn::kLast:
        if (!r.Varint(&z) || !r.Bytes(&b)) return damaged();
        a.i = UnZigZag(z);
        a.last.assign(b);
        break;
      case MeasureFn::kCountDistinct: {
        if (!r.Bytes(&b)) return damaged();
        auto s = DistinctSketch::Parse(b);
        if (!s.ok()) return damaged();
        *a.distinct = *std::move(s);
        break;
      }
      case MeasureFn::kQuantile: {
        if (!r.Bytes(&b)) return damaged();
        auto s = QuantileSketch::Parse(b);
        if (!s.ok()) return damaged();
        *a.quantile = *std::move(s);
        break;
      }
    }
  }
  if (!r.done()) return damaged();
  return accs;
}

void MeasureSet::Values(const Accumulators& accs, std::string* out) const {
  out->push_back('{');
  for (size_t m = 0; m < measures_.size(); ++m) {
    const MeasureSpec& spec = measures_[m];
    const Accumulator& a = accs[m];
    if (m > 0) out->push_back(',');
    AppendJsonString(out, spec.name);
    out->push_back(':');
    if (spec.fn == MeasureFn::kCount) {
      out->append(std::to_string(a.n));
      continue;
    }
    if (a.n == 0) {
      out->append(spec.fn == MeasureFn::kCountDistinct ? "0" : "null");
      continue;
    }
    switch (spec.fn) {
      case MeasureFn::kSum:
        if (a.real) {
          AppendJsonNumber(out, static_cast<double>(a.i) + a.d);
        } else {
          out->append(std::to_string(a.i));
        }
        break;
      case MeasureFn::kAvg:
        AppendJsonNumber(out, (static_cast<double>(a.i) + a.d) / static_cast<double>(a.n));
        break;
      case MeasureFn::kMin:
      case MeasureFn::kMax:
        AppendJsonNumber(out, a.d);
        break;
      case MeasureFn::kLast:
        out->append(a.last);
        break;
      case MeasureFn::kCountDistinct:
        out->append(std::to_string(a.distinct->Estimate()));
        break;
      case MeasureFn::kQuantile:
        AppendJsonNumber(out, a.quantile->Quantile(spec.q));
        break;
      case MeasureFn::kCount:
        break;
    }
  }
  out->push_back('}');
}

bool MeasureSet::Has(std::string_view name) const {
  for (const MeasureSpec& m : measures_) {
    if (m.name == name) return true;
  }
  return false;
}

}  // namespace nodata::aggregate
