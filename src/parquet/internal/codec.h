// Page compression codecs (Compression.md in parquet-format): UNCOMPRESSED,
// SNAPPY, ZSTD.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "parquet/format/parquet_types.h"

namespace nodata::parquet::internal {

absl::Status Compress(format::CompressionCodec codec, std::string_view in, int zstd_level,
                      std::string* out);

// Compress with state kept between calls (zstd's compression context, whose tables are costly
// to allocate per page). Not thread-safe.
class Compressor {
 public:
  Compressor(format::CompressionCodec codec, int zstd_level);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  // Replaces `*out` with the compressed `in` (keeping its capacity).
  absl::Status Compress(std::string_view in, std::string* out);
  // Compresses `in` into the front of `*buffer`, growing it when it is too small for the worst
  // case but never shrinking it (so a reused buffer is not zero-filled again); returns the
  // compressed size.
  absl::StatusOr<size_t> CompressInto(std::string_view in, std::string* buffer);

 private:
  format::CompressionCodec codec_;
  int zstd_level_;
  void* zstd_ = nullptr;  // ZSTD_CCtx, created on first use
};
// Decompresses `in`, which must expand to exactly `uncompressed_size` bytes
// (from the page header).
absl::Status Decompress(format::CompressionCodec codec, std::string_view in,
                        uint64_t uncompressed_size, std::string* out);

// Decompress with zstd's decompression context kept between calls (one per column chunk
// read rather than one per page). Not thread-safe.
class Decompressor {
 public:
  Decompressor() = default;
  ~Decompressor();
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  // As the free function Decompress.
  absl::Status Decompress(format::CompressionCodec codec, std::string_view in,
                          uint64_t uncompressed_size, std::string* out);

 private:
  void* zstd_ = nullptr;  // ZSTD_DCtx, created on first use
};

}  // namespace nodata::parquet::internal
