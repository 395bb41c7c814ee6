// Reads Apache Parquet files holding nodata's record schema (see writer.h and
// README.md): files nodata writes and files other writers (DuckDB) produce for
// the same column names and types.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parquet/io.h"
#include "parquet/writer.h"

namespace nodata::parquet {

// A leaf column of the file's schema.
struct ColumnSchema {
  std::string path;       // dotted, e.g. "headers.key_value.key"
  int physical_type = 0;  // Parquet Type enum value (2 = INT64, 6 = BYTE_ARRAY)
  int max_definition_level = 0;
  int max_repetition_level = 0;
};

// Column chunk statistics as stored: values are PLAIN-encoded (INT64: 8 bytes
// little-endian; byte arrays: the raw bytes, possibly a truncated bound).
struct ColumnStatistics {
  std::optional<int64_t> null_count;
  std::optional<std::string> min_value;
  std::optional<std::string> max_value;
};

struct ColumnChunkInfo {
  std::string path;
  int codec = 0;  // Parquet CompressionCodec enum value
  int64_t num_values = 0;
  int64_t total_compressed_size = 0;
  int64_t total_uncompressed_size = 0;
  std::vector<int> encodings;  // Parquet Encoding enum values
  bool has_dictionary_page = false;
  ColumnStatistics statistics;
};

struct RowGroupInfo {
  int64_t num_rows = 0;
  int64_t total_byte_size = 0;
  std::vector<ColumnChunkInfo> columns;  // in schema leaf order
};

// An open Parquet file. The footer is parsed and validated by Open; column data
// is read on demand. Safe for concurrent use after Open (reads are positional).
class Reader {
 public:
  static absl::StatusOr<std::unique_ptr<Reader>> Open(const std::string& path);
  static absl::StatusOr<std::unique_ptr<Reader>> Open(std::unique_ptr<Source> source);
  ~Reader();

  const std::vector<ColumnSchema>& schema() const;
  const std::vector<RowGroupInfo>& row_groups() const;
  int64_t num_rows() const;
  const std::string& created_by() const;

  // Reads every column of row group `index` and assembles its records. A null
  // key becomes an empty key, a null headers map no headers, a null header
  // value an empty value.
  absl::StatusOr<std::vector<Record>> ReadRowGroup(int index) const;

  class Impl;

 private:
  explicit Reader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodata::parquet
