// Kafka record batches, message format v2 (the protocol guide's "Record Batch"): decoding what
// producers send, CRC-32C checked and decompressed (gzip, snappy, lz4, zstd), and encoding
// what fetches return (uncompressed).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace nodata::kafka {

// The batch header's fields, in wire order.
struct BatchHeader {
  int64_t base_offset = 0;
  int32_t length = 0;  // bytes after this field
  int32_t partition_leader_epoch = -1;
  int8_t magic = 2;
  uint32_t crc = 0;
  int16_t attributes = 0;
  int32_t last_offset_delta = 0;
  int64_t base_timestamp = 0;
  int64_t max_timestamp = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
  int32_t record_count = 0;

  int compression() const { return attributes & 0x7; }
  bool log_append_time() const { return (attributes & 0x8) != 0; }
  bool transactional() const { return (attributes & 0x10) != 0; }
  bool control() const { return (attributes & 0x20) != 0; }
};

inline constexpr int kCompressionNone = 0;
inline constexpr int kCompressionGzip = 1;
inline constexpr int kCompressionSnappy = 2;
inline constexpr int kCompressionLz4 = 3;
inline constexpr int kCompressionZstd = 4;
inline constexpr size_t kBatchHeaderBytes = 61;

// One record of a batch; the views point into the request or the decompressed records.
struct KafkaRecord {
  int32_t offset_delta = 0;
  int64_t timestamp_ms = 0;  // base timestamp plus the record's delta
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  std::vector<std::pair<std::string_view, std::optional<std::string_view>>> headers;
};

// Decodes every batch in `bytes` (a Produce partition's records) and calls `visit` with each
// batch's header and records, whose views point into `bytes` or into the decompressed batches
// added to `decompressed` (valid while both are). INVALID_ARGUMENT (with what is wrong) for a
// magic other than 2, a CRC mismatch, a truncated or inconsistent batch, an unknown codec or a
// batch decompressing to more than `max_bytes`; the first error of `visit` is returned as is.
absl::Status DecodeBatches(
    std::string_view bytes, size_t max_bytes, std::deque<std::string>* decompressed,
    absl::FunctionRef<absl::Status(const BatchHeader&, const std::vector<KafkaRecord>&)> visit);

// Decompresses one batch's records section with `codec`, appending to `out`; at most
// `max_bytes` (INVALID_ARGUMENT past it).
absl::Status Decompress(int codec, std::string_view in, size_t max_bytes, std::string* out);

// Writes one uncompressed v2 batch at the end of `out`: Begin, Add for each record in offset
// order, Finish (which fills in the length, counts, timestamps and CRC).
class BatchWriter {
 public:
  explicit BatchWriter(std::string* out) : out_(*out) {}
  void Begin(int64_t base_offset, int64_t base_timestamp_ms);
  void Add(int64_t offset, int64_t timestamp_ms, std::optional<std::string_view> key,
           std::optional<std::string_view> value,
           const std::vector<std::pair<std::string_view, std::string_view>>& headers);
  // The batch's size in bytes; nothing is written when no record was added.
  size_t Finish();
  int32_t records() const { return count_; }

 private:
  std::string& out_;
  size_t start_ = 0;
  int64_t base_offset_ = 0;
  int64_t base_timestamp_ = 0;
  int64_t max_timestamp_ = 0;
  int64_t last_offset_ = 0;
  int32_t count_ = 0;
};

}  // namespace nodata::kafka
