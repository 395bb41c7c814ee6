// Page compression codecs (Compression.md in parquet-format): UNCOMPRESSED,
// SNAPPY, ZSTD.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "parquet/format/parquet_types.h"

namespace nodata::parquet::internal {

absl::Status Compress(format::CompressionCodec codec, std::string_view in, int zstd_level,
                      std::string* out);
// Decompresses `in`, which must expand to exactly `uncompressed_size` bytes
// (from the page header).
absl::Status Decompress(format::CompressionCodec codec, std::string_view in,
                        uint64_t uncompressed_size, std::string* out);

}  // namespace nodata::parquet::internal
