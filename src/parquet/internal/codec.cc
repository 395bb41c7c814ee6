#include "parquet/internal/codec.h"

#include <snappy.h>
#include <zstd.h>

#include "common/strings.h"

namespace nodata::parquet::internal {

absl::Status Compress(format::CompressionCodec codec, std::string_view in, int zstd_level,
                      std::string* out) {
  switch (codec) {
    case format::CompressionCodec::UNCOMPRESSED:
      out->assign(in);
      return absl::OkStatus();
    case format::CompressionCodec::SNAPPY: {
      out->resize(snappy::MaxCompressedLength(in.size()));
      size_t n = 0;
      snappy::RawCompress(in.data(), in.size(), out->data(), &n);
      out->resize(n);
      return absl::OkStatus();
    }
    case format::CompressionCodec::ZSTD: {
      out->resize(ZSTD_compressBound(in.size()));
      size_t n = ZSTD_compress(out->data(), out->size(), in.data(), in.size(), zstd_level);
      if (ZSTD_isError(n)) return absl::InternalError(StrCat("zstd: ", ZSTD_getErrorName(n)));
      out->resize(n);
      return absl::OkStatus();
    }
    default:
      return absl::UnimplementedError(
          StrCat("Parquet writer does not support codec ", static_cast<int>(codec)));
  }
}

absl::Status Decompress(format::CompressionCodec codec, std::string_view in,
                        uint64_t uncompressed_size, std::string* out) {
  switch (codec) {
    case format::CompressionCodec::UNCOMPRESSED:
      if (in.size() != uncompressed_size) {
        return absl::DataLossError("uncompressed page size does not match its header");
      }
      out->assign(in);
      return absl::OkStatus();
    case format::CompressionCodec::SNAPPY: {
      size_t n = 0;
      if (!snappy::GetUncompressedLength(in.data(), in.size(), &n) || n != uncompressed_size) {
        return absl::DataLossError("snappy page size does not match its header");
      }
      out->resize(n);
      if (!snappy::RawUncompress(in.data(), in.size(), out->data())) {
        return absl::DataLossError("corrupt snappy page");
      }
      return absl::OkStatus();
    }
    case format::CompressionCodec::ZSTD: {
      // Check the frame's own size, when it records one, before allocating what
      // the header says.
      unsigned long long frame_size = ZSTD_getFrameContentSize(in.data(), in.size());
      if (frame_size == ZSTD_CONTENTSIZE_ERROR ||
          (frame_size != ZSTD_CONTENTSIZE_UNKNOWN && frame_size != uncompressed_size)) {
        return absl::DataLossError("corrupt zstd page or size mismatch with its header");
      }
      out->resize(uncompressed_size);
      size_t n = ZSTD_decompress(out->data(), out->size(), in.data(), in.size());
      if (ZSTD_isError(n) || n != uncompressed_size) {
        return absl::DataLossError("corrupt zstd page or size mismatch with its header");
      }
      return absl::OkStatus();
    }
    default:
      return absl::UnimplementedError(
          StrCat("Parquet codec ", static_cast<int>(codec),
                 " is not supported (supported: UNCOMPRESSED, SNAPPY, ZSTD)"));
  }
}

}  // namespace nodata::parquet::internal
