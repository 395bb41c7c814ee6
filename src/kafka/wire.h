// The Kafka protocol's primitive types (the protocol guide's "Protocol Primitive Types"):
// big-endian integers, zig-zag varints, strings and byte arrays with int16/int32 lengths or,
// in flexible versions, compact (unsigned varint length + 1) ones, arrays, and tagged fields.
// Reads never run past the buffer: a short or malformed field sets the reader's error, and
// every later read returns a zero value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nodata::kafka {

class Reader {
 public:
  explicit Reader(std::string_view bytes) : data_(bytes) {}

  int8_t Int8();
  int16_t Int16();
  int32_t Int32();
  int64_t Int64();
  uint32_t UnsignedVarint();
  int32_t Varint();   // zig-zag
  int64_t Varlong();  // zig-zag
  bool Bool() { return Int8() != 0; }

  // STRING / NULLABLE_STRING (int16 length, -1 null) and their compact forms.
  std::optional<std::string_view> NullableString(bool compact);
  std::string_view String(bool compact);  // null reads as empty
  // BYTES / NULLABLE_BYTES / RECORDS (int32 length, -1 null) and compact forms.
  std::optional<std::string_view> NullableBytes(bool compact);
  // An array's element count: -1 (null) as nullopt. Fails when the count is more than the
  // bytes left could hold (each element takes at least `min_element_bytes`).
  std::optional<int32_t> ArrayLength(bool compact, size_t min_element_bytes = 1);
  int32_t ArrayCount(bool compact, size_t min_element_bytes = 1) {
    return ArrayLength(compact, min_element_bytes).value_or(0);
  }
  // A tagged-field section (flexible versions): skipped.
  void SkipTaggedFields();
  std::string_view Raw(size_t n);

  bool ok() const { return ok_; }
  size_t remaining() const { return ok_ ? data_.size() - pos_ : 0; }
  // Why the read failed (empty while ok).
  const std::string& error() const { return error_; }
  void Fail(std::string_view why);

 private:
  bool Need(size_t n);
  std::string_view data_;
  size_t pos_ = 0;
  bool ok_ = true;
  std::string error_;
};

class Writer {
 public:
  explicit Writer(std::string* out) : out_(*out) {}

  void Int8(int8_t v) { out_.push_back(static_cast<char>(v)); }
  void Int16(int16_t v);
  void Int32(int32_t v);
  void Int64(int64_t v);
  void UnsignedVarint(uint32_t v);
  void Varint(int32_t v);
  void Varlong(int64_t v);
  void Bool(bool v) { Int8(v ? 1 : 0); }
  void String(std::string_view s, bool compact);
  void NullableString(const std::optional<std::string_view>& s, bool compact);
  void Bytes(std::string_view b, bool compact);
  void NullBytes(bool compact);
  void ArrayLength(int32_t n, bool compact);  // -1: null
  void EmptyTaggedFields() { UnsignedVarint(0); }
  void Raw(std::string_view b) { out_.append(b); }

  // Where the next byte goes, and an int32 written over earlier bytes (a length or CRC known
  // only once what follows is written).
  size_t size() const { return out_.size(); }
  void PatchInt32(size_t at, int32_t v);
  void PatchInt16(size_t at, int16_t v);
  std::string& buffer() { return out_; }

 private:
  std::string& out_;
};

// Sizes of zig-zag varints, for laying out records before writing them.
size_t VarintSize(int64_t v);

}  // namespace nodata::kafka
