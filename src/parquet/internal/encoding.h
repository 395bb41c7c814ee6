// Parquet value and level encodings (Encodings.md in parquet-format): the
// RLE/bit-packing hybrid, ULEB128, and the DELTA_* decoders. Decoders take
// untrusted bytes and never read out of bounds or allocate more than the
// caller's expected value count.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace nodata::parquet::internal {

// Number of bits needed to store values in [0, max_value].
int BitWidth(uint64_t max_value);

void PutUleb128(uint64_t v, std::string* out);
// Reads a ULEB128 value from the front of `*in` and consumes it.
absl::Status GetUleb128(std::string_view* in, uint64_t* v);

// Appends the RLE/bit-packed hybrid encoding of `values` (no length prefix).
// Each value must fit in `bit_width` bits (0..32).
void EncodeRleHybrid(std::span<const uint32_t> values, int bit_width, std::string* out);

// Decodes exactly `count` values from `in` (no length prefix) and appends them
// to `*out`. Trailing bytes after `count` values are ignored, as bit-packed
// runs may be padded.
absl::Status DecodeRleHybrid(std::string_view in, int bit_width, size_t count,
                             std::vector<uint32_t>* out);

// DELTA_BINARY_PACKED: decodes up to `max_count` values from the front of
// `*in`, consuming them. Fails when the encoded value count exceeds
// `max_count`.
absl::Status DecodeDeltaBinaryPacked(std::string_view* in, size_t max_count,
                                     std::vector<int64_t>* out);
// DELTA_LENGTH_BYTE_ARRAY and DELTA_BYTE_ARRAY: decode exactly `count` byte
// arrays.
absl::Status DecodeDeltaLengthByteArray(std::string_view in, size_t count,
                                        std::vector<std::string>* out);
absl::Status DecodeDeltaByteArray(std::string_view in, size_t count, std::vector<std::string>* out);

}  // namespace nodata::parquet::internal
