// The leaf columns of nodata's record schema, shared by the writer and the
// reader.
#pragma once

#include <array>
#include <string_view>

namespace nodata::parquet::internal {

enum class Leaf {
  kOffset,
  kTimestamp,
  kIngestTime,
  kId,
  kKey,
  kData,
  kHeaderKey,
  kHeaderValue,
  kPartition,
};
inline constexpr int kNumLeaves = 8;  // the record's columns, in every file
inline constexpr int kMaxLeaves = kNumLeaves + 1;

struct LeafSpec {
  Leaf leaf;
  std::string_view path;  // dotted path in the schema
  bool is_int64;          // INT64, else BYTE_ARRAY
  bool is_utf8;           // STRING logical type (statistics truncation keeps valid UTF-8)
  int max_def;            // in files nodata writes
  int max_rep;
  bool is_int32 = false;  // INT32 (neither INT64 nor BYTE_ARRAY)
};

// Persistent format: column order in files nodata writes.
inline constexpr std::array<LeafSpec, kNumLeaves> kLeaves = {{
    {Leaf::kOffset, "offset", true, false, 0, 0, false},
    {Leaf::kTimestamp, "timestamp", true, false, 0, 0, false},
    {Leaf::kIngestTime, "ingest_time", true, false, 0, 0, false},
    {Leaf::kId, "id", false, true, 0, 0, false},
    {Leaf::kKey, "key", false, false, 1, 0, false},
    {Leaf::kData, "data", false, false, 0, 0, false},
    {Leaf::kHeaderKey, "headers.key_value.key", false, true, 2, 1, false},
    {Leaf::kHeaderValue, "headers.key_value.value", false, true, 3, 1, false},
}};

// The export's extra column (WriterOptions::partition_column), after the record's columns.
inline constexpr LeafSpec kPartitionLeaf = {
    Leaf::kPartition, "partition", false, false, 0, 0, true};

}  // namespace nodata::parquet::internal
