// The leaf columns of nodata's record schema, shared by the writer and the
// reader.
#pragma once

#include <array>
#include <string_view>

namespace nodata::parquet::internal {

enum class Leaf { kOffset, kTimestamp, kIngestTime, kId, kKey, kData, kHeaderKey, kHeaderValue };
inline constexpr int kNumLeaves = 8;

struct LeafSpec {
  Leaf leaf;
  std::string_view path;  // dotted path in the schema
  bool is_int64;          // INT64, else BYTE_ARRAY
  bool is_utf8;           // STRING logical type (statistics truncation keeps valid UTF-8)
  int max_def;            // in files nodata writes
  int max_rep;
};

// Persistent format: column order in files nodata writes.
inline constexpr std::array<LeafSpec, kNumLeaves> kLeaves = {{
    {Leaf::kOffset, "offset", true, false, 0, 0},
    {Leaf::kTimestamp, "timestamp", true, false, 0, 0},
    {Leaf::kIngestTime, "ingest_time", true, false, 0, 0},
    {Leaf::kId, "id", false, true, 0, 0},
    {Leaf::kKey, "key", false, false, 1, 0},
    {Leaf::kData, "data", false, false, 0, 0},
    {Leaf::kHeaderKey, "headers.key_value.key", false, true, 2, 1},
    {Leaf::kHeaderValue, "headers.key_value.value", false, true, 3, 1},
}};

}  // namespace nodata::parquet::internal
