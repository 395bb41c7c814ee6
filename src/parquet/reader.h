// Reads Apache Parquet files holding nodata's record schema (see writer.h and
// README.md): files nodata writes and files other writers (DuckDB) produce for
// the same column names and types.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
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
  // The annotation: "STRING", "JSON", "TIMESTAMP(MICROS,true)", ... (the logical type, else the
  // converted type); empty when there is none.
  std::string logical_type;
  // Of a TIMESTAMP column: nanoseconds per stored unit (1000 for MICROS); 0 for other columns.
  int64_t timestamp_unit_nanos = 0;
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

// One BYTE_ARRAY column of a row group as Reader::ReadByteArrayColumn returns
// it: values without records around them. A plain value, not thread-safe.
struct ByteArrayColumn {
  // The non-null values in file order. They view bytes in `storage`: valid
  // while this object lives (moving it keeps them valid) and until the next
  // read into it.
  std::vector<std::string_view> values;
  // Levels, one per entry (per row unless the column is repeated); each is
  // empty when the column's max level is 0, i.e. a required column has no
  // definition levels and exactly one value per row.
  std::vector<uint32_t> definition_levels;
  std::vector<uint32_t> repetition_levels;
  int64_t num_levels = 0;
  // The column chunk's bytes and its decompressed pages, owned here and reused
  // (with their capacity) by the next read into this object.
  std::vector<std::unique_ptr<std::string>> storage;
};

// One data page's worth of a BYTE_ARRAY column as Reader::ScanByteArrayColumn
// hands it out. The spans and views are valid only during the callback.
struct ByteArrayPage {
  std::span<const std::string_view> values;  // non-null values in file order
  // As in ByteArrayColumn: empty when the column's max level is 0.
  std::span<const uint32_t> definition_levels;
  std::span<const uint32_t> repetition_levels;
  int64_t num_levels = 0;
};

// Buffers ScanByteArrayColumn reuses between calls; a plain value, one per
// scanning thread.
struct ByteArrayScratch {
  std::vector<std::unique_ptr<std::string>> buffers;
  std::vector<std::string_view> values;
};

// A row group's records as columns of views, as Reader::ReadRowGroupViews returns them: one
// entry per row in every vector but `headers`. Nulls read as ReadRowGroup reads them (0, empty,
// no headers). The views point into `storage`: valid while this object lives (moving it keeps
// them valid). A plain value, not thread-safe.
struct RowGroupViews {
  std::vector<int64_t> offset;
  std::vector<int64_t> timestamp_us;
  std::vector<int64_t> ingest_time_us;
  std::vector<std::string_view> id;
  std::vector<std::string_view> key;
  std::vector<std::string_view> data;
  // Row r's headers are headers[header_begin[r], header_begin[r + 1]), in file order.
  std::vector<uint32_t> header_begin;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  // The decompressed pages the views point into.
  std::vector<ByteArrayColumn> storage;

  size_t rows() const { return offset.size(); }
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
  // value an empty value. An INT32 column "partition" (an export's) fills
  // Record::partition.
  absl::StatusOr<std::vector<Record>> ReadRowGroup(int index) const;
  // The same records without a copy of any value: the byte-array columns are decoded into views
  // of their decompressed pages (as ReadByteArrayColumn does). An export's "partition" column
  // is not read.
  absl::StatusOr<RowGroupViews> ReadRowGroupViews(int index) const;

  // Reads only the BYTE_ARRAY leaf column `path` (dotted, as in schema()) of
  // row group `index`, for scans that need one column: PLAIN and dictionary
  // values are views into the decompressed pages (uncompressed pages: into the
  // chunk's bytes), nothing is copied per value. `*out` is overwritten; its
  // buffers are reused, so scanning many row groups into one object allocates
  // little. NOT_FOUND for a missing column, INVALID_ARGUMENT for another type.
  absl::Status ReadByteArrayColumn(int index, std::string_view path, ByteArrayColumn* out) const;

  // Like ReadByteArrayColumn, but hands the values out one data page at a
  // time to `fn`: every data page is decompressed into the same buffer, which
  // stays in cache, instead of all pages of the chunk being kept. A non-OK
  // status from `fn` stops the scan and is returned. `scratch` (may be null)
  // carries buffers from one call to the next.
  absl::Status ScanByteArrayColumn(int index, std::string_view path,
                                   const std::function<absl::Status(const ByteArrayPage&)>& fn,
                                   ByteArrayScratch* scratch = nullptr) const;

  class Impl;

 private:
  explicit Reader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodata::parquet
