#include "components/abi.h"

#include <bit>
#include <cstring>

namespace nodata::components {
namespace {

void Put32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}
void Put64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}
void PutBytes(std::string* out, std::string_view s) {
  Put32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
template <typename Headers>
void PutHeaders(std::string* out, const Headers& headers) {
  Put32(out, static_cast<uint32_t>(headers.size()));
  for (const auto& [name, value] : headers) {
    PutBytes(out, name);
    PutBytes(out, value);
  }
}

// Reads little-endian fields off untrusted bytes; any read past the end sets `ok` false.
class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> bytes) : p_(bytes.data()), left_(bytes.size()) {}
  bool ok() const { return ok_; }
  size_t left() const { return left_; }
  uint64_t Get(int n) {
    if (!ok_ || left_ < static_cast<size_t>(n)) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{p_[i]} << (8 * i);
    p_ += n;
    left_ -= n;
    return v;
  }
  std::string_view Bytes() {
    const uint64_t n = Get(4);
    if (!ok_ || left_ < n) {
      ok_ = false;
      return {};
    }
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    left_ -= n;
    return s;
  }

 private:
  const uint8_t* p_;
  size_t left_;
  bool ok_ = true;
};

// Writes little-endian fields into space already sized for them. The batch encoding is on the
// path of every record a transform sees: one resize per record and plain stores, rather than an
// append (with its length checks) per field.
class Cursor {
 public:
  explicit Cursor(char* p) : p_(p) {}
  template <typename T>
  void Le(T v) {
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(p_, &v, sizeof v);
    } else {
      for (size_t i = 0; i < sizeof v; ++i) p_[i] = static_cast<char>(v >> (8 * i));
    }
    p_ += sizeof v;
  }
  void Bytes(std::string_view s) {
    Le(static_cast<uint32_t>(s.size()));
    if (!s.empty()) std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }

 private:
  char* p_;
};

template <typename R>
void PutRecord(PartitionId partition, const R& r, std::string* buf) {
  size_t size = 4 + 8 + 8 + 4 + r.key.size() + 4 + r.data.size() + 4;
  for (const auto& [name, value] : r.headers) size += 8 + name.size() + value.size();
  const size_t at = buf->size();
  buf->resize(at + size);
  Cursor out(buf->data() + at);
  out.Le(partition.value());
  out.Le(r.offset.value());
  out.Le(static_cast<uint64_t>(r.timestamp_us));
  out.Bytes(r.key);
  out.Bytes(r.data);
  out.Le(static_cast<uint32_t>(r.headers.size()));
  for (const auto& [name, value] : r.headers) {
    out.Bytes(name);
    out.Bytes(value);
  }
}

}  // namespace

void AppendRecord(PartitionId partition, const DecodedRecord& r, std::string* out) {
  PutRecord(partition, r, out);
}
void AppendRecord(PartitionId partition, const Record& r, std::string* out) {
  PutRecord(partition, r, out);
}

void BatchEncoder::Begin() {
  buf_.assign(4, '\0');
  count_ = 0;
}

void BatchEncoder::Add(PartitionId partition, const DecodedRecord& r) {
  AppendRecord(partition, r, &buf_);
  ++count_;
}
void BatchEncoder::Add(PartitionId partition, const Record& r) {
  AppendRecord(partition, r, &buf_);
  ++count_;
}

std::string_view BatchEncoder::Finish() {
  for (int i = 0; i < 4; ++i) buf_[i] = static_cast<char>(count_ >> (8 * i));
  return buf_;
}

int32_t DecodeOutput(absl::Span<const uint8_t> bytes, uint32_t batch_count, uint64_t max_bytes,
                     OutputRecord* out) {
  Reader in(bytes);
  const auto input_index = static_cast<uint32_t>(in.Get(4));
  const auto timestamp_us = static_cast<int64_t>(in.Get(8));
  const std::string_view key = in.Bytes();
  const std::string_view data = in.Bytes();
  const uint64_t header_count = in.Get(4);
  // Each header takes at least 8 bytes: a count beyond what is left is malformed before any
  // allocation.
  if (!in.ok() || header_count > in.left() / 8 || input_index >= batch_count) {
    return kEmitMalformed;
  }
  uint64_t size = key.size() + data.size();
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  headers.reserve(header_count);
  for (uint64_t i = 0; i < header_count; ++i) {
    std::string_view name = in.Bytes();
    std::string_view value = in.Bytes();
    if (!in.ok()) return kEmitMalformed;
    headers.emplace_back(name, value);
    size += name.size() + value.size();
  }
  if (in.left() != 0) return kEmitMalformed;
  if (size > max_bytes) return kEmitTooLarge;
  out->input_index = input_index;
  out->timestamp_us = timestamp_us;
  out->key.assign(key);
  out->data.assign(data);
  out->headers.clear();
  for (const auto& [name, value] : headers) out->headers.emplace_back(name, value);
  return kEmitOk;
}

std::string EncodeOutput(const OutputRecord& r) {
  std::string out;
  Put32(&out, r.input_index);
  Put64(&out, static_cast<uint64_t>(r.timestamp_us));
  PutBytes(&out, r.key);
  PutBytes(&out, r.data);
  PutHeaders(&out, r.headers);
  return out;
}

}  // namespace nodata::components
