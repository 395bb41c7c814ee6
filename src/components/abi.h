// The component ABI, version 1 (docs/formats/component-abi.md): the byte layouts a component and
// its host exchange. Pure encoding and decoding, no runtime: the guest's bytes are untrusted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "common/ids.h"
#include "common/record.h"

namespace nodata::components {

// What the `emit` import returns (persistent: guests compare against these).
inline constexpr int32_t kEmitOk = 0;
inline constexpr int32_t kEmitNoSuchOutput = -1;
inline constexpr int32_t kEmitMalformed = -2;
inline constexpr int32_t kEmitTooLarge = -3;

// Appends the encoding of one record of an input batch (partition, offset, timestamp, key,
// data, headers) to `*out`: the record layout both the component and the aggregation batches use.
void AppendRecord(PartitionId partition, const DecodedRecord& r, std::string* out);
void AppendRecord(PartitionId partition, const Record& r, std::string* out);

// The input batch `batch_read` hands out: records of one partition, in offset order.
class BatchEncoder {
 public:
  void Begin();
  void Add(PartitionId partition, const DecodedRecord& r);
  void Add(PartitionId partition, const Record& r);
  uint32_t count() const { return count_; }
  // The encoding; valid until the next Begin.
  std::string_view Finish();

 private:
  std::string buf_;
  uint32_t count_ = 0;
};

// An output record as `emit` passes it, copied out of guest memory.
struct OutputRecord {
  uint32_t input_index = 0;
  int64_t timestamp_us = -1;  // negative: the input record's
  std::string key;
  std::string data;
  std::vector<std::pair<std::string, std::string>> headers;

  friend bool operator==(const OutputRecord&, const OutputRecord&) = default;
};

// Decodes `bytes` as an output record of a batch of `batch_count` records into `*out`. Returns
// kEmitOk, kEmitMalformed (a length past the end, bytes left over, an input_index not below
// `batch_count`) or kEmitTooLarge (key, data and header bytes together above `max_bytes`).
int32_t DecodeOutput(absl::Span<const uint8_t> bytes, uint32_t batch_count, uint64_t max_bytes,
                     OutputRecord* out);

// The encoding of `r` as `emit` takes it (what SDKs write); for tests and tools.
std::string EncodeOutput(const OutputRecord& r);

}  // namespace nodata::components
