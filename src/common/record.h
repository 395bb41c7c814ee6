// The one record model every module shares: an event as stored, with the offset the partition
// gave it. The hot tier encodes and decodes it (log/format.h), the cold tier converts it to and
// from Parquet rows, the broker appends and reads it, the transports encode it. Only log/ knows
// how it is framed on disk.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "common/ids.h"

namespace nodata {

// Record flag bits (persistent: stored in every log frame and Parquet row).
inline constexpr uint32_t kFlagServerAssignedId = 1u << 0;

// An event to store, borrowed from the caller; the partition assigns its offset.
struct RecordView {
  std::string_view id;
  std::string_view key;
  std::string_view data;
  int64_t timestamp_us = 0;
  int64_t ingest_time_us = 0;
  uint32_t flags = 0;
  absl::Span<const std::pair<std::string_view, std::string_view>> headers;
};

// A stored record read without copies; the views point into the reader's buffer and are valid
// only as long as the read that produced them says.
struct DecodedRecord {
  Offset offset{};
  int64_t timestamp_us = 0;
  int64_t ingest_time_us = 0;
  uint32_t flags = 0;
  std::string_view id;
  std::string_view key;
  std::string_view data;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
};

// An owned stored record, as copying reads return it.
struct Record {
  Offset offset{};
  int64_t timestamp_us = 0;
  int64_t ingest_time_us = 0;
  uint32_t flags = 0;
  std::string id;
  std::string key;
  std::string data;
  std::vector<std::pair<std::string, std::string>> headers;

  static Record From(const DecodedRecord& r);
};

}  // namespace nodata
