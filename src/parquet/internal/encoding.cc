#include "parquet/internal/encoding.h"

#include <algorithm>
#include <bit>

#include "common/strings.h"

namespace nodata::parquet::internal {
namespace {

// Reads `width` (<= 64) bits starting at `bit_offset`, least significant bit
// first, as the hybrid's bit-packed runs and DELTA_BINARY_PACKED miniblocks
// store them. The caller has checked that the bits are inside `data`.
uint64_t ReadBits(const uint8_t* data, uint64_t bit_offset, int width) {
  uint64_t value = 0;
  for (int i = 0; i < width;) {
    uint64_t pos = bit_offset + i;
    int shift = static_cast<int>(pos % 8);
    int take = std::min(8 - shift, width - i);
    uint64_t bits = (data[pos / 8] >> shift) & ((1u << take) - 1);
    value |= bits << i;
    i += take;
  }
  return value;
}

absl::Status Corrupt(std::string_view what) {
  return absl::DataLossError(StrCat("corrupt Parquet encoding: ", what));
}

int64_t ZigZagDecode(uint64_t v) { return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1)); }

}  // namespace

int BitWidth(uint64_t max_value) { return max_value == 0 ? 0 : 64 - std::countl_zero(max_value); }

void PutUleb128(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

absl::Status GetUleb128(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in->empty()) return Corrupt("truncated varint");
    uint8_t byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return absl::OkStatus();
    }
  }
  return Corrupt("varint longer than 64 bits");
}

void EncodeRleHybrid(std::span<const uint32_t> values, int bit_width, std::string* out) {
  const size_t n = values.size();
  const size_t value_bytes = static_cast<size_t>((bit_width + 7) / 8);
  auto run_length_at = [&](size_t i) {
    size_t j = i + 1;
    while (j < n && values[j] == values[i]) ++j;
    return j - i;
  };
  // Runs of at least this many equal values are stored as RLE runs, the rest
  // bit-packed in groups of 8. Only the last group of a sequence may be padded, so
  // bit-packing stops at a group boundary before a long run.
  constexpr size_t kMinRleRun = 8;
  size_t i = 0;
  while (i < n) {
    size_t run = run_length_at(i);
    if (run >= kMinRleRun) {
      PutUleb128(static_cast<uint64_t>(run) << 1, out);
      for (size_t b = 0; b < value_bytes; ++b)
        out->push_back(static_cast<char>(values[i] >> (8 * b)));
      i += run;
      continue;
    }
    size_t start = i;
    size_t groups = 0;
    do {
      i = std::min(i + 8, n);
      ++groups;
    } while (i < n && run_length_at(i) < kMinRleRun);
    PutUleb128((static_cast<uint64_t>(groups) << 1) | 1, out);
    size_t offset = out->size();
    out->append(groups * static_cast<size_t>(bit_width), '\0');
    auto* data = reinterpret_cast<uint8_t*>(out->data() + offset);
    // Values go in least significant bit first through a 64-bit accumulator; the padding of
    // the last group stays zero.
    uint64_t acc = 0;
    int acc_bits = 0;
    for (size_t k = start; k < i; ++k) {
      acc |= static_cast<uint64_t>(values[k]) << acc_bits;
      acc_bits += bit_width;
      while (acc_bits >= 8) {
        *data++ = static_cast<uint8_t>(acc);
        acc >>= 8;
        acc_bits -= 8;
      }
    }
    if (acc_bits > 0) *data = static_cast<uint8_t>(acc);
  }
}

absl::Status DecodeRleHybrid(std::string_view in, int bit_width, size_t count,
                             std::vector<uint32_t>* out) {
  if (bit_width < 0 || bit_width > 32) return Corrupt("bit width above 32");
  const size_t value_bytes = static_cast<size_t>((bit_width + 7) / 8);
  size_t remaining = count;
  while (remaining > 0) {
    uint64_t header;
    if (auto s = GetUleb128(&in, &header); !s.ok()) return s;
    if (header & 1) {
      uint64_t groups = header >> 1;
      if (groups == 0 || groups > (uint64_t{1} << 28)) return Corrupt("bad bit-packed run length");
      uint64_t bytes = groups * static_cast<uint64_t>(bit_width);
      uint64_t values = groups * 8;
      // The final run may be cut short of its padded size only if it covers all
      // we need.
      uint64_t take = std::min<uint64_t>(values, remaining);
      uint64_t needed_bytes = (take * bit_width + 7) / 8;
      if (needed_bytes > in.size()) return Corrupt("truncated bit-packed run");
      const auto* data = reinterpret_cast<const uint8_t*>(in.data());
      for (uint64_t k = 0; k < take; ++k) {
        out->push_back(static_cast<uint32_t>(ReadBits(data, k * bit_width, bit_width)));
      }
      in.remove_prefix(std::min<uint64_t>(bytes, in.size()));
      remaining -= take;
    } else {
      uint64_t run = header >> 1;
      if (run == 0) return Corrupt("empty RLE run");
      if (value_bytes > in.size()) return Corrupt("truncated RLE run");
      uint32_t value = 0;
      for (size_t b = 0; b < value_bytes; ++b) {
        value |= static_cast<uint32_t>(static_cast<uint8_t>(in[b])) << (8 * b);
      }
      if (bit_width < 32 && (value >> bit_width) != 0)
        return Corrupt("RLE value wider than bit width");
      in.remove_prefix(value_bytes);
      uint64_t take = std::min<uint64_t>(run, remaining);
      out->insert(out->end(), take, value);
      remaining -= take;
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeDeltaBinaryPacked(std::string_view* in, size_t max_count,
                                     std::vector<int64_t>* out) {
  uint64_t block_size, miniblocks, total, first_zz;
  for (uint64_t* field : {&block_size, &miniblocks, &total, &first_zz}) {
    if (auto s = GetUleb128(in, field); !s.ok()) return s;
  }
  if (block_size == 0 || block_size % 128 != 0 || block_size > (1u << 20) || miniblocks == 0 ||
      block_size % miniblocks != 0 || (block_size / miniblocks) % 32 != 0) {
    return Corrupt("bad DELTA_BINARY_PACKED header");
  }
  if (total > max_count) return Corrupt("DELTA_BINARY_PACKED holds more values than the page");
  if (total == 0) return absl::OkStatus();
  const uint64_t per_mini = block_size / miniblocks;
  uint64_t value = static_cast<uint64_t>(ZigZagDecode(first_zz));
  out->push_back(static_cast<int64_t>(value));
  uint64_t produced = 1;
  while (produced < total) {
    uint64_t min_delta_zz;
    if (auto s = GetUleb128(in, &min_delta_zz); !s.ok()) return s;
    const uint64_t min_delta = static_cast<uint64_t>(ZigZagDecode(min_delta_zz));
    if (in->size() < miniblocks) return Corrupt("truncated miniblock widths");
    std::string_view widths = in->substr(0, miniblocks);
    in->remove_prefix(miniblocks);
    for (uint64_t m = 0; m < miniblocks && produced < total; ++m) {
      int width = static_cast<uint8_t>(widths[m]);
      if (width > 64) return Corrupt("miniblock bit width above 64");
      uint64_t bytes = per_mini * width / 8;
      if (bytes > in->size()) return Corrupt("truncated miniblock");
      const auto* data = reinterpret_cast<const uint8_t*>(in->data());
      for (uint64_t k = 0; k < per_mini && produced < total; ++k, ++produced) {
        value += min_delta + ReadBits(data, k * width, width);
        out->push_back(static_cast<int64_t>(value));
      }
      in->remove_prefix(bytes);
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeDeltaLengthByteArray(std::string_view in, size_t count,
                                        std::vector<std::string>* out) {
  std::vector<int64_t> lengths;
  if (auto s = DecodeDeltaBinaryPacked(&in, count, &lengths); !s.ok()) return s;
  if (lengths.size() != count) return Corrupt("DELTA_LENGTH_BYTE_ARRAY value count mismatch");
  for (int64_t len : lengths) {
    if (len < 0 || static_cast<uint64_t>(len) > in.size()) return Corrupt("bad byte array length");
    out->emplace_back(in.substr(0, static_cast<size_t>(len)));
    in.remove_prefix(static_cast<size_t>(len));
  }
  return absl::OkStatus();
}

absl::Status DecodeDeltaByteArray(std::string_view in, size_t count,
                                  std::vector<std::string>* out) {
  std::vector<int64_t> prefixes;
  if (auto s = DecodeDeltaBinaryPacked(&in, count, &prefixes); !s.ok()) return s;
  if (prefixes.size() != count) return Corrupt("DELTA_BYTE_ARRAY value count mismatch");
  std::vector<std::string> suffixes;
  if (auto s = DecodeDeltaLengthByteArray(in, count, &suffixes); !s.ok()) return s;
  std::string previous;
  for (size_t i = 0; i < count; ++i) {
    if (prefixes[i] < 0 || static_cast<uint64_t>(prefixes[i]) > previous.size()) {
      return Corrupt("DELTA_BYTE_ARRAY prefix longer than the previous value");
    }
    std::string value = previous.substr(0, static_cast<size_t>(prefixes[i]));
    value += suffixes[i];
    out->push_back(value);
    previous = std::move(value);
  }
  return absl::OkStatus();
}

}  // namespace nodata::parquet::internal
