#include "kafka/records.h"

#include <lz4frame.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>

#include "absl/base/internal/endian.h"
#include "common/crc32c.h"
#include "common/strings.h"
#include "kafka/wire.h"

namespace nodata::kafka {
namespace {

// Offset of the attributes field: the CRC covers from there to the batch's end.
constexpr size_t kCrcStart = 21;
constexpr size_t kCrcAt = 17;

absl::Status TooBig(size_t max_bytes) {
  return absl::InvalidArgumentError(
      StrCat("record batch decompresses to more than ", max_bytes, " bytes"));
}

// The decompressed bytes of one batch, appended to `out` chunk by chunk up to a bound.
class Inflating {
 public:
  Inflating(std::string* out, size_t input_size, size_t max_bytes)
      : out_(*out), start_(out->size()), chunk_(std::max<size_t>(input_size * 2, 65536)),
        max_bytes_(max_bytes) {}
  // Room for the next chunk (its size in `room`); null once `max_bytes` are out.
  char* Next(size_t* room) {
    const size_t have = out_.size() - start_;
    if (have >= max_bytes_) return nullptr;
    *room = std::min(chunk_, max_bytes_ - have);
    out_.resize(out_.size() + *room);
    return out_.data() + start_ + have;
  }
  // `n` bytes of the last room were written.
  void Wrote(size_t room, size_t n) { out_.resize(out_.size() - room + n); }

 private:
  std::string& out_;
  const size_t start_;
  const size_t chunk_;
  const size_t max_bytes_;
};

absl::Status Gunzip(std::string_view in, size_t max_bytes, std::string* out) {
  z_stream z{};
  // 15 + 32: a gzip or zlib header, detected.
  if (inflateInit2(&z, 15 + 32) != Z_OK) return absl::InternalError("inflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  Inflating output(out, in.size(), max_bytes);
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    size_t room = 0;
    char* to = output.Next(&room);
    if (to == nullptr) {
      inflateEnd(&z);
      return TooBig(max_bytes);
    }
    z.next_out = reinterpret_cast<Bytef*>(to);
    z.avail_out = static_cast<uInt>(room);
    rc = inflate(&z, Z_NO_FLUSH);
    output.Wrote(room, room - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) break;
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return absl::InvalidArgumentError("gzip records are corrupt");
  return absl::OkStatus();
}

absl::Status SnappyBlock(std::string_view in, size_t max_bytes, std::string* out) {
  size_t n = 0;
  if (!snappy::GetUncompressedLength(in.data(), in.size(), &n)) {
    return absl::InvalidArgumentError("snappy records are corrupt");
  }
  if (n > max_bytes - std::min(max_bytes, out->size())) return TooBig(max_bytes);
  const size_t at = out->size();
  out->resize(at + n);
  if (!snappy::RawUncompress(in.data(), in.size(), out->data() + at)) {
    return absl::InvalidArgumentError("snappy records are corrupt");
  }
  return absl::OkStatus();
}

// Kafka's Java client frames snappy the way xerial's SnappyOutputStream does: a magic header,
// then blocks of (int32 length, raw snappy). Others send one raw snappy block.
absl::Status Unsnappy(std::string_view in, size_t max_bytes, std::string* out) {
  static constexpr std::string_view kXerial("\x82SNAPPY\0", 8);
  if (!in.starts_with(kXerial)) return SnappyBlock(in, max_bytes, out);
  if (in.size() < 16) return absl::InvalidArgumentError("snappy records are truncated");
  in.remove_prefix(16);  // magic, version, compatible version
  while (!in.empty()) {
    if (in.size() < 4) return absl::InvalidArgumentError("snappy records are truncated");
    const uint32_t n = absl::big_endian::Load32(in.data());
    in.remove_prefix(4);
    if (n > in.size()) return absl::InvalidArgumentError("snappy records are truncated");
    if (absl::Status st = SnappyBlock(in.substr(0, n), max_bytes, out); !st.ok()) return st;
    in.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::Status Unlz4(std::string_view in, size_t max_bytes, std::string* out) {
  LZ4F_dctx* ctx = nullptr;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION))) {
    return absl::InternalError("LZ4F_createDecompressionContext failed");
  }
  Inflating output(out, in.size(), max_bytes);
  const char* src = in.data();
  size_t left = in.size();
  size_t hint = 1;
  absl::Status status;
  while (left > 0 && hint != 0) {
    size_t room = 0;
    char* to = output.Next(&room);
    if (to == nullptr) {
      status = TooBig(max_bytes);
      break;
    }
    size_t dst_size = room;
    size_t src_size = left;
    hint = LZ4F_decompress(ctx, to, &dst_size, src, &src_size, nullptr);
    output.Wrote(room, dst_size);
    if (LZ4F_isError(hint)) {
      status = absl::InvalidArgumentError(
          StrCat("lz4 records are corrupt: ", LZ4F_getErrorName(hint)));
      break;
    }
    src += src_size;
    left -= src_size;
    if (src_size == 0 && dst_size == 0) {
      status = absl::InvalidArgumentError("lz4 records are truncated");
      break;
    }
  }
  LZ4F_freeDecompressionContext(ctx);
  if (status.ok() && hint != 0) status = absl::InvalidArgumentError("lz4 records are truncated");
  return status;
}

absl::Status Unzstd(std::string_view in, size_t max_bytes, std::string* out) {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  if (ctx == nullptr) return absl::InternalError("ZSTD_createDCtx failed");
  Inflating inflating(out, in.size(), max_bytes);
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  size_t rc = 1;
  absl::Status status;
  while (rc != 0) {
    size_t room = 0;
    char* to = inflating.Next(&room);
    if (to == nullptr) {
      status = TooBig(max_bytes);
      break;
    }
    ZSTD_outBuffer output{to, room, 0};
    rc = ZSTD_decompressStream(ctx, &output, &input);
    inflating.Wrote(room, output.pos);
    if (ZSTD_isError(rc)) {
      status = absl::InvalidArgumentError(
          StrCat("zstd records are corrupt: ", ZSTD_getErrorName(rc)));
      break;
    }
    if (rc != 0 && input.pos == input.size && output.pos < room) {
      status = absl::InvalidArgumentError("zstd records are truncated");
      break;
    }
  }
  ZSTD_freeDCtx(ctx);
  return status;
}

absl::Status DecodeRecords(std::string_view bytes, const BatchHeader& h,
                           std::vector<KafkaRecord>* records) {
  Reader r(bytes);
  records->clear();
  for (int32_t i = 0; i < h.record_count; ++i) {
    const int32_t length = r.Varint();
    if (!r.ok() || length < 0 || static_cast<size_t>(length) > r.remaining()) {
      return absl::InvalidArgumentError(StrCat("record ", i, " of the batch is truncated"));
    }
    Reader rec(r.Raw(static_cast<size_t>(length)));
    KafkaRecord& k = records->emplace_back();
    rec.Int8();  // attributes: unused
    k.timestamp_ms = h.base_timestamp + rec.Varlong();
    k.offset_delta = rec.Varint();
    if (const int32_t n = rec.Varint(); n >= 0) {
      k.key = rec.Raw(static_cast<size_t>(n));
    } else if (n != -1) {
      rec.Fail("negative key length");
    }
    if (const int32_t n = rec.Varint(); n >= 0) {
      k.value = rec.Raw(static_cast<size_t>(n));
    } else if (n != -1) {
      rec.Fail("negative value length");
    }
    const int32_t headers = rec.Varint();
    if (headers < 0 || static_cast<size_t>(headers) > rec.remaining()) {
      rec.Fail("bad header count");
    }
    for (int32_t j = 0; j < headers && rec.ok(); ++j) {
      const int32_t kn = rec.Varint();
      if (kn < 0) rec.Fail("negative header key length");
      std::string_view name = rec.Raw(static_cast<size_t>(std::max(kn, 0)));
      std::optional<std::string_view> value;
      if (const int32_t vn = rec.Varint(); vn >= 0) {
        value = rec.Raw(static_cast<size_t>(vn));
      } else if (vn != -1) {
        rec.Fail("negative header value length");
      }
      k.headers.emplace_back(name, value);
    }
    if (!rec.ok()) {
      return absl::InvalidArgumentError(StrCat("record ", i, " of the batch: ", rec.error()));
    }
    if (k.offset_delta < 0 || k.offset_delta > h.last_offset_delta) {
      return absl::InvalidArgumentError(StrCat("record ", i, " has offset delta ",
                                               k.offset_delta, " outside the batch's 0..",
                                               h.last_offset_delta));
    }
  }
  if (r.remaining() != 0) {
    return absl::InvalidArgumentError(
        StrCat("record batch holds ", r.remaining(), " bytes after its ", h.record_count,
               " records"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Decompress(int codec, std::string_view in, size_t max_bytes, std::string* out) {
  switch (codec) {
    case kCompressionGzip:
      return Gunzip(in, max_bytes, out);
    case kCompressionSnappy:
      return Unsnappy(in, max_bytes, out);
    case kCompressionLz4:
      return Unlz4(in, max_bytes, out);
    case kCompressionZstd:
      return Unzstd(in, max_bytes, out);
    default:
      return absl::InvalidArgumentError(StrCat("unknown compression codec ", codec));
  }
}

absl::Status DecodeBatches(
    std::string_view bytes, size_t max_bytes, std::deque<std::string>* decompressed,
    absl::FunctionRef<absl::Status(const BatchHeader&, const std::vector<KafkaRecord>&)> visit) {
  std::vector<KafkaRecord> records;
  while (!bytes.empty()) {
    if (bytes.size() < kBatchHeaderBytes) {
      return absl::InvalidArgumentError(
          StrCat("record batch of ", bytes.size(), " bytes is shorter than its header"));
    }
    Reader r(bytes);
    BatchHeader h;
    h.base_offset = r.Int64();
    h.length = r.Int32();
    h.partition_leader_epoch = r.Int32();
    h.magic = r.Int8();
    h.crc = static_cast<uint32_t>(r.Int32());
    h.attributes = r.Int16();
    h.last_offset_delta = r.Int32();
    h.base_timestamp = r.Int64();
    h.max_timestamp = r.Int64();
    h.producer_id = r.Int64();
    h.producer_epoch = r.Int16();
    h.base_sequence = r.Int32();
    h.record_count = r.Int32();
    if (h.magic != 2) {
      return absl::InvalidArgumentError(
          StrCat("record batch has magic ", static_cast<int>(h.magic),
                 "; only message format v2 (magic 2) is accepted"));
    }
    const int64_t total = int64_t{12} + h.length;
    if (h.length < static_cast<int32_t>(kBatchHeaderBytes - 12) ||
        static_cast<uint64_t>(total) > bytes.size()) {
      return absl::InvalidArgumentError(StrCat("record batch length ", h.length,
                                               " does not fit the ", bytes.size(),
                                               " bytes given"));
    }
    std::string_view batch = bytes.substr(0, static_cast<size_t>(total));
    const uint32_t crc = crc32c::Extend(0, batch.data() + kCrcStart, batch.size() - kCrcStart);
    if (crc != h.crc) {
      return absl::InvalidArgumentError(
          StrCat("record batch CRC-32C is ", crc, ", the batch says ", h.crc));
    }
    if (h.record_count < 0 || h.last_offset_delta < 0 ||
        h.record_count > h.last_offset_delta + 1) {
      return absl::InvalidArgumentError(StrCat("record batch counts ", h.record_count,
                                               " records for offset delta ",
                                               h.last_offset_delta));
    }
    std::string_view body = batch.substr(kBatchHeaderBytes);
    if (h.compression() != kCompressionNone && !h.control()) {
      std::string& inflated = decompressed->emplace_back();
      if (absl::Status st = Decompress(h.compression(), body, max_bytes, &inflated); !st.ok()) {
        return st;
      }
      body = inflated;
    }
    if (absl::Status st = DecodeRecords(body, h, &records); !st.ok()) return st;
    if (absl::Status st = visit(h, records); !st.ok()) return st;
    bytes.remove_prefix(batch.size());
  }
  return absl::OkStatus();
}

void BatchWriter::Begin(int64_t base_offset, int64_t base_timestamp_ms) {
  start_ = out_.size();
  base_offset_ = base_offset;
  base_timestamp_ = base_timestamp_ms;
  max_timestamp_ = base_timestamp_ms;
  last_offset_ = base_offset;
  count_ = 0;
  out_.resize(start_ + kBatchHeaderBytes);  // filled in by Finish
}

void BatchWriter::Add(int64_t offset, int64_t timestamp_ms, std::optional<std::string_view> key,
                      std::optional<std::string_view> value,
                      const std::vector<std::pair<std::string_view, std::string_view>>& headers) {
  const int64_t ts_delta = timestamp_ms - base_timestamp_;
  const int64_t off_delta = offset - base_offset_;
  auto len_size = [](const std::optional<std::string_view>& s) {
    return s ? VarintSize(static_cast<int64_t>(s->size())) + s->size() : VarintSize(-1);
  };
  size_t body = 1 + VarintSize(ts_delta) + VarintSize(off_delta) + len_size(key) +
                len_size(value) + VarintSize(static_cast<int64_t>(headers.size()));
  for (const auto& [name, v] : headers) {
    body += VarintSize(static_cast<int64_t>(name.size())) + name.size() +
            VarintSize(static_cast<int64_t>(v.size())) + v.size();
  }
  Writer w(&out_);
  w.Varlong(static_cast<int64_t>(body));
  w.Int8(0);
  w.Varlong(ts_delta);
  w.Varlong(off_delta);
  auto put = [&w](const std::optional<std::string_view>& s) {
    if (!s) return w.Varint(-1);
    w.Varlong(static_cast<int64_t>(s->size()));
    w.Raw(*s);
  };
  put(key);
  put(value);
  w.Varlong(static_cast<int64_t>(headers.size()));
  for (const auto& [name, v] : headers) {
    put(name);
    put(v);
  }
  max_timestamp_ = std::max(max_timestamp_, timestamp_ms);
  last_offset_ = offset;
  ++count_;
}

size_t BatchWriter::Finish() {
  if (count_ == 0) {
    out_.resize(start_);
    return 0;
  }
  const size_t size = out_.size() - start_;
  std::string header;
  Writer w(&header);
  w.Int64(base_offset_);
  w.Int32(static_cast<int32_t>(size - 12));
  w.Int32(0);   // partition leader epoch
  w.Int8(2);    // magic
  w.Int32(0);   // CRC, below
  w.Int16(0);   // attributes: no compression, create time
  w.Int32(static_cast<int32_t>(last_offset_ - base_offset_));
  w.Int64(base_timestamp_);
  w.Int64(max_timestamp_);
  w.Int64(-1);  // producer id
  w.Int16(-1);  // producer epoch
  w.Int32(-1);  // base sequence
  w.Int32(count_);
  std::memcpy(out_.data() + start_, header.data(), kBatchHeaderBytes);
  const uint32_t crc = crc32c::Extend(0, out_.data() + start_ + kCrcStart, size - kCrcStart);
  absl::big_endian::Store32(out_.data() + start_ + kCrcAt, crc);
  return size;
}

}  // namespace nodata::kafka
