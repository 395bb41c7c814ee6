#include "kafka/wire.h"

#include "absl/base/internal/endian.h"
#include "common/strings.h"

namespace nodata::kafka {

void Reader::Fail(std::string_view why) {
  if (!ok_) return;
  ok_ = false;
  error_ = StrCat(why, " at byte ", pos_);
}

bool Reader::Need(size_t n) {
  if (!ok_) return false;
  if (data_.size() - pos_ < n) {
    Fail(StrCat("truncated: ", n, " bytes wanted, ", data_.size() - pos_, " left"));
    return false;
  }
  return true;
}

std::string_view Reader::Raw(size_t n) {
  if (!Need(n)) return {};
  std::string_view v = data_.substr(pos_, n);
  pos_ += n;
  return v;
}

int8_t Reader::Int8() {
  if (!Need(1)) return 0;
  return static_cast<int8_t>(data_[pos_++]);
}

int16_t Reader::Int16() {
  if (!Need(2)) return 0;
  uint16_t v = absl::big_endian::Load16(data_.data() + pos_);
  pos_ += 2;
  return static_cast<int16_t>(v);
}

int32_t Reader::Int32() {
  if (!Need(4)) return 0;
  uint32_t v = absl::big_endian::Load32(data_.data() + pos_);
  pos_ += 4;
  return static_cast<int32_t>(v);
}

int64_t Reader::Int64() {
  if (!Need(8)) return 0;
  uint64_t v = absl::big_endian::Load64(data_.data() + pos_);
  pos_ += 8;
  return static_cast<int64_t>(v);
}

uint32_t Reader::UnsignedVarint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (!Need(1)) return 0;
    const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      if (v > UINT32_MAX) break;
      return static_cast<uint32_t>(v);
    }
  }
  Fail("varint longer than 5 bytes");
  return 0;
}

int32_t Reader::Varint() {
  const uint32_t u = UnsignedVarint();
  return static_cast<int32_t>((u >> 1) ^ (~(u & 1) + 1));
}

int64_t Reader::Varlong() {
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (!Need(1)) return 0;
    const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
    if (shift == 63 && (b & 0x7e) != 0) break;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
  }
  Fail("varlong longer than 10 bytes");
  return 0;
}

std::optional<std::string_view> Reader::NullableString(bool compact) {
  int64_t n = compact ? static_cast<int64_t>(UnsignedVarint()) - 1 : Int16();
  if (!ok_) return std::string_view();
  if (n < 0) {
    if (n != -1) Fail("negative string length");
    return std::nullopt;
  }
  return Raw(static_cast<size_t>(n));
}

std::string_view Reader::String(bool compact) { return NullableString(compact).value_or(""); }

std::optional<std::string_view> Reader::NullableBytes(bool compact) {
  int64_t n = compact ? static_cast<int64_t>(UnsignedVarint()) - 1 : Int32();
  if (!ok_) return std::string_view();
  if (n < 0) {
    if (n != -1) Fail("negative bytes length");
    return std::nullopt;
  }
  return Raw(static_cast<size_t>(n));
}

std::optional<int32_t> Reader::ArrayLength(bool compact, size_t min_element_bytes) {
  int64_t n = compact ? static_cast<int64_t>(UnsignedVarint()) - 1 : Int32();
  if (!ok_) return 0;
  if (n < 0) {
    if (n != -1) Fail("negative array length");
    return std::nullopt;
  }
  if (min_element_bytes > 0 && static_cast<uint64_t>(n) > remaining() / min_element_bytes) {
    Fail(StrCat("array of ", n, " elements longer than the request"));
    return 0;
  }
  return static_cast<int32_t>(n);
}

void Reader::SkipTaggedFields() {
  const uint32_t n = UnsignedVarint();
  for (uint32_t i = 0; i < n && ok_; ++i) {
    UnsignedVarint();  // tag
    Raw(UnsignedVarint());
  }
}

void Writer::Int16(int16_t v) {
  char b[2];
  absl::big_endian::Store16(b, static_cast<uint16_t>(v));
  out_.append(b, 2);
}

void Writer::Int32(int32_t v) {
  char b[4];
  absl::big_endian::Store32(b, static_cast<uint32_t>(v));
  out_.append(b, 4);
}

void Writer::Int64(int64_t v) {
  char b[8];
  absl::big_endian::Store64(b, static_cast<uint64_t>(v));
  out_.append(b, 8);
}

void Writer::PatchInt32(size_t at, int32_t v) {
  absl::big_endian::Store32(out_.data() + at, static_cast<uint32_t>(v));
}

void Writer::PatchInt16(size_t at, int16_t v) {
  absl::big_endian::Store16(out_.data() + at, static_cast<uint16_t>(v));
}

void Writer::UnsignedVarint(uint32_t v) {
  char b[5];
  size_t n = 0;
  while (v >= 0x80) {
    b[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  b[n++] = static_cast<char>(v);
  out_.append(b, n);
}

void Writer::Varint(int32_t v) {
  UnsignedVarint((static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31));
}

void Writer::Varlong(int64_t v) {
  uint64_t u = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  char b[10];
  size_t n = 0;
  while (u >= 0x80) {
    b[n++] = static_cast<char>((u & 0x7f) | 0x80);
    u >>= 7;
  }
  b[n++] = static_cast<char>(u);
  out_.append(b, n);
}

void Writer::String(std::string_view s, bool compact) {
  if (compact) {
    UnsignedVarint(static_cast<uint32_t>(s.size() + 1));
  } else {
    Int16(static_cast<int16_t>(s.size()));
  }
  out_.append(s);
}

void Writer::NullableString(const std::optional<std::string_view>& s, bool compact) {
  if (s) return String(*s, compact);
  if (compact) {
    UnsignedVarint(0);
  } else {
    Int16(-1);
  }
}

void Writer::Bytes(std::string_view b, bool compact) {
  if (compact) {
    UnsignedVarint(static_cast<uint32_t>(b.size() + 1));
  } else {
    Int32(static_cast<int32_t>(b.size()));
  }
  out_.append(b);
}

void Writer::NullBytes(bool compact) {
  if (compact) {
    UnsignedVarint(0);
  } else {
    Int32(-1);
  }
}

void Writer::ArrayLength(int32_t n, bool compact) {
  if (compact) {
    UnsignedVarint(static_cast<uint32_t>(n + 1));
  } else {
    Int32(n);
  }
}

size_t VarintSize(int64_t v) {
  uint64_t u = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  size_t n = 1;
  while (u >= 0x80) {
    u >>= 7;
    ++n;
  }
  return n;
}

}  // namespace nodata::kafka
