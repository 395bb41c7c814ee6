#include "parquet/internal/codec.h"

#include <snappy.h>
#include <zstd.h>

#include "common/status.h"
#include "common/strings.h"

namespace nodata::parquet::internal {

namespace {

// Checks the frame's own size, when it records one, before allocating what the page header says.
// `ctx` may be null (a context is then made for this call).
absl::Status DecompressZstd(ZSTD_DCtx* ctx, std::string_view in, uint64_t uncompressed_size,
                            std::string* out) {
  unsigned long long frame_size = ZSTD_getFrameContentSize(in.data(), in.size());
  if (frame_size == ZSTD_CONTENTSIZE_ERROR ||
      (frame_size != ZSTD_CONTENTSIZE_UNKNOWN && frame_size != uncompressed_size)) {
    return absl::DataLossError("corrupt zstd page or size mismatch with its header");
  }
  out->resize(uncompressed_size);
  size_t n = ctx != nullptr
                 ? ZSTD_decompressDCtx(ctx, out->data(), out->size(), in.data(), in.size())
                 : ZSTD_decompress(out->data(), out->size(), in.data(), in.size());
  if (ZSTD_isError(n) || n != uncompressed_size) {
    return absl::DataLossError("corrupt zstd page or size mismatch with its header");
  }
  return absl::OkStatus();
}

}  // namespace

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

Compressor::Compressor(format::CompressionCodec codec, int zstd_level)
    : codec_(codec), zstd_level_(zstd_level) {}

Compressor::~Compressor() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(zstd_)); }

absl::Status Compressor::Compress(std::string_view in, std::string* out) {
  if (codec_ != format::CompressionCodec::ZSTD) {
    return internal::Compress(codec_, in, zstd_level_, out);
  }
  if (zstd_ == nullptr) {
    zstd_ = ZSTD_createCCtx();
    if (zstd_ == nullptr) return absl::ResourceExhaustedError("zstd: cannot allocate a context");
  }
  out->resize(ZSTD_compressBound(in.size()));
  size_t n = ZSTD_compressCCtx(static_cast<ZSTD_CCtx*>(zstd_), out->data(), out->size(),
                               in.data(), in.size(), zstd_level_);
  if (ZSTD_isError(n)) return absl::InternalError(StrCat("zstd: ", ZSTD_getErrorName(n)));
  out->resize(n);
  return absl::OkStatus();
}

absl::StatusOr<size_t> Compressor::CompressInto(std::string_view in, std::string* buffer) {
  if (codec_ != format::CompressionCodec::ZSTD) {
    RETURN_IF_ERROR(Compress(in, buffer));
    return buffer->size();
  }
  if (zstd_ == nullptr) {
    zstd_ = ZSTD_createCCtx();
    if (zstd_ == nullptr) return absl::ResourceExhaustedError("zstd: cannot allocate a context");
  }
  const size_t bound = ZSTD_compressBound(in.size());
  if (buffer->size() < bound) buffer->resize(bound);
  size_t n = ZSTD_compressCCtx(static_cast<ZSTD_CCtx*>(zstd_), buffer->data(), buffer->size(),
                               in.data(), in.size(), zstd_level_);
  if (ZSTD_isError(n)) return absl::InternalError(StrCat("zstd: ", ZSTD_getErrorName(n)));
  return n;
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
    case format::CompressionCodec::ZSTD:
      return DecompressZstd(nullptr, in, uncompressed_size, out);
    default:
      return absl::UnimplementedError(
          StrCat("Parquet codec ", static_cast<int>(codec),
                 " is not supported (supported: UNCOMPRESSED, SNAPPY, ZSTD)"));
  }
}


Decompressor::~Decompressor() { ZSTD_freeDCtx(static_cast<ZSTD_DCtx*>(zstd_)); }

absl::Status Decompressor::Decompress(format::CompressionCodec codec, std::string_view in,
                                      uint64_t uncompressed_size, std::string* out) {
  if (codec != format::CompressionCodec::ZSTD) {
    return internal::Decompress(codec, in, uncompressed_size, out);
  }
  if (zstd_ == nullptr) {
    zstd_ = ZSTD_createDCtx();
    if (zstd_ == nullptr) return absl::ResourceExhaustedError("zstd: cannot allocate a context");
  }
  return DecompressZstd(static_cast<ZSTD_DCtx*>(zstd_), in, uncompressed_size, out);
}

}  // namespace nodata::parquet::internal
