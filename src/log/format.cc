#include "log/format.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "fmt/format.h"
#include "common/crc32c.h"
#include "common/fixed.h"

namespace nodata::log {
namespace {


static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the on-disk format is little endian");

constexpr char kIndexMagic[8] = {'N', 'D', 'L', 'O', 'G', 'I', 'D', 'X'};
constexpr size_t kIndexFixedBytes = 8 + 8 + 8 + 8 + 8 + 8 + 4;  // + entries + crc(4)

}  // namespace

size_t FrameSize(const RecordView& r) {
  size_t n = kFrameHeaderBytes + kMinBodyBytes + r.id.size() + r.key.size() + r.data.size();
  for (const auto& [k, v] : r.headers) n += 8 + k.size() + v.size();
  return n;
}

void EncodeFrame(uint64_t offset, const RecordView& r, std::string* out) {
  const size_t frame = FrameSize(r);
  const size_t start = out->size();
  out->resize(start + frame);
  char* base = out->data() + start;
  char* p = base + kFrameHeaderBytes;
  Store64(p, offset);
  Store64(p + 8, static_cast<uint64_t>(r.timestamp_us));
  Store64(p + 16, static_cast<uint64_t>(r.ingest_time_us));
  Store32(p + 24, r.flags);
  p += 28;
  auto put_bytes = [&p](std::string_view s) {
    Store32(p, static_cast<uint32_t>(s.size()));
    if (!s.empty()) std::memcpy(p + 4, s.data(), s.size());
    p += 4 + s.size();
  };
  put_bytes(r.id);
  put_bytes(r.key);
  put_bytes(r.data);
  Store32(p, static_cast<uint32_t>(r.headers.size()));
  p += 4;
  for (const auto& [k, v] : r.headers) {
    put_bytes(k);
    put_bytes(v);
  }
  const uint32_t body = static_cast<uint32_t>(frame - kFrameHeaderBytes);
  Store32(base + 4, body);
  Store32(base, crc32c::Mask(crc32c::Extend(0, base + 4, 4 + body)));
}

FrameResult DecodeFrame(std::string_view buf, size_t* frame_bytes, DecodedRecord* record) {
  if (buf.size() < kFrameHeaderBytes) return FrameResult::kIncomplete;
  const uint32_t body = Load32(buf.data() + 4);
  if (body < kMinBodyBytes || body > kMaxBodyBytes) return FrameResult::kCorrupt;
  if (buf.size() < kFrameHeaderBytes + body) return FrameResult::kIncomplete;
  const uint32_t expected = crc32c::Unmask(Load32(buf.data()));
  if (crc32c::Extend(0, buf.data() + 4, 4 + body) != expected) return FrameResult::kCorrupt;

  const char* p = buf.data() + kFrameHeaderBytes;
  const char* end = p + body;
  record->offset = Offset(Load64(p));
  record->timestamp_us = static_cast<int64_t>(Load64(p + 8));
  record->ingest_time_us = static_cast<int64_t>(Load64(p + 16));
  record->flags = Load32(p + 24);
  p += 28;
  bool ok = true;
  auto get_bytes = [&](std::string_view* s) {
    if (!ok || end - p < 4) return ok = false;
    uint32_t n = Load32(p);
    p += 4;
    if (static_cast<size_t>(end - p) < n) return ok = false;
    *s = std::string_view(p, n);
    p += n;
    return true;
  };
  get_bytes(&record->id);
  get_bytes(&record->key);
  get_bytes(&record->data);
  if (!ok || end - p < 4) return FrameResult::kCorrupt;
  uint32_t count = Load32(p);
  p += 4;
  if (count > body / 8) return FrameResult::kCorrupt;
  record->headers.clear();
  for (uint32_t i = 0; i < count; ++i) {
    std::string_view k, v;
    get_bytes(&k);
    get_bytes(&v);
    if (!ok) return FrameResult::kCorrupt;
    record->headers.emplace_back(k, v);
  }
  if (p != end) return FrameResult::kCorrupt;
  *frame_bytes = kFrameHeaderBytes + body;
  return FrameResult::kOk;
}

std::string EncodeSegmentHeader(uint64_t base_offset) {
  std::string h(kSegmentHeaderBytes, '\0');
  std::memcpy(h.data(), kSegmentMagic, 8);
  Store32(h.data() + 8, kSegmentVersion);
  Store32(h.data() + 12, 0);  // flags, reserved
  Store64(h.data() + 16, base_offset);
  Store32(h.data() + 24, crc32c::Mask(crc32c::Extend(0, h.data(), 24)));
  return h;  // bytes 28..31 reserved, zero
}

bool CheckSegmentHeader(std::string_view h, uint64_t base_offset) {
  if (h.size() < kSegmentHeaderBytes) return false;
  if (std::memcmp(h.data(), kSegmentMagic, 8) != 0) return false;
  if (crc32c::Unmask(Load32(h.data() + 24)) != crc32c::Extend(0, h.data(), 24)) return false;
  return Load32(h.data() + 8) == kSegmentVersion && Load64(h.data() + 16) == base_offset;
}

std::string EncodeIndex(const SegmentIndex& index) {
  std::string out(kIndexFixedBytes + index.entries.size() * 8 + 4, '\0');
  char* p = out.data();
  std::memcpy(p, kIndexMagic, 8);
  Store64(p + 8, index.base_offset);
  Store64(p + 16, index.end_offset);
  Store64(p + 24, index.log_bytes);
  Store64(p + 32, static_cast<uint64_t>(index.min_ingest_us));
  Store64(p + 40, static_cast<uint64_t>(index.max_ingest_us));
  Store32(p + 48, static_cast<uint32_t>(index.entries.size()));
  p += kIndexFixedBytes;
  for (const IndexEntry& e : index.entries) {
    Store32(p, e.relative_offset);
    Store32(p + 4, e.position);
    p += 8;
  }
  Store32(p, crc32c::Mask(crc32c::Extend(0, out.data(), out.size() - 4)));
  return out;
}

absl::StatusOr<SegmentIndex> DecodeIndex(std::string_view bytes) {
  if (bytes.size() < kIndexFixedBytes + 4 || std::memcmp(bytes.data(), kIndexMagic, 8) != 0) {
    return absl::DataLossError("index file: bad header");
  }
  const char* p = bytes.data();
  uint32_t count = Load32(p + 48);
  if (bytes.size() != kIndexFixedBytes + uint64_t{count} * 8 + 4) {
    return absl::DataLossError("index file: bad length");
  }
  if (crc32c::Unmask(Load32(p + bytes.size() - 4)) !=
      crc32c::Extend(0, bytes.data(), bytes.size() - 4)) {
    return absl::DataLossError("index file: bad checksum");
  }
  SegmentIndex index;
  index.base_offset = Load64(p + 8);
  index.end_offset = Load64(p + 16);
  index.log_bytes = Load64(p + 24);
  index.min_ingest_us = static_cast<int64_t>(Load64(p + 32));
  index.max_ingest_us = static_cast<int64_t>(Load64(p + 40));
  index.entries.resize(count);
  p += kIndexFixedBytes;
  for (uint32_t i = 0; i < count; ++i, p += 8) {
    index.entries[i] = IndexEntry{Load32(p), Load32(p + 4)};
  }
  return index;
}

std::string NumberedFileName(uint64_t n, std::string_view suffix) {
  return fmt::format("{:020}{}", n, suffix);
}
std::string SegmentFileName(uint64_t base_offset) { return NumberedFileName(base_offset, ".log"); }
std::string IndexFileName(uint64_t base_offset) { return NumberedFileName(base_offset, ".index"); }

bool ParseNumberedFileName(std::string_view name, std::string_view suffix, uint64_t* n) {
  if (name.size() != 20 + suffix.size() || name.substr(20) != suffix) return false;
  uint64_t v = 0;
  for (char c : name.substr(0, 20)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != v) return false;  // overflow
    v = next;
  }
  *n = v;
  return true;
}

bool ParseSegmentFileName(std::string_view name, uint64_t* base_offset) {
  return ParseNumberedFileName(name, ".log", base_offset);
}

bool ParseIndexFileName(std::string_view name, uint64_t* base_offset) {
  return ParseNumberedFileName(name, ".index", base_offset);
}

}  // namespace nodata::log
