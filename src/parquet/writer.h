// Writes nodata records as an Apache Parquet file (format spec:
// parquet-format). See README.md for the schema, encodings and statistics
// written.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data_format.h"
#include "parquet/io.h"

namespace nodata::parquet {

// One record of a topic partition as stored in the cold tier, in the file's physical types
// (the offset is a Parquet INT64); storage/ converts it to and from the common record model.
struct Record {
  int64_t offset = 0;
  int64_t timestamp_us = 0;    // producer timestamp, microseconds since the Unix epoch (UTC)
  int64_t ingest_time_us = 0;  // broker append time, microseconds since the Unix epoch (UTC)
  std::string id;
  std::string key;  // empty is stored as null
  std::string data;
  std::vector<std::pair<std::string, std::string>> headers;  // order is preserved
  int32_t partition = 0;  // written only with WriterOptions::partition_column

  friend bool operator==(const Record&, const Record&) = default;
};

// Persistent format: the Parquet CompressionCodec values.
enum class Codec { kUncompressed = 0, kSnappy = 1, kZstd = 6 };

struct WriterOptions {
  Codec codec = Codec::kZstd;
  int zstd_level = 3;
  // A data page is cut once its encoded values reach this size (pages end on
  // row boundaries).
  uint64_t page_size_bytes = 1 << 20;
  // WriteBatch flushes a row group by itself once it holds this many rows.
  uint64_t row_group_rows = 1 << 20;
  // ...or once its rows hold this many bytes of ids, keys, data and headers: what bounds the
  // writer's memory (and a reader's, which decodes one row group at a time).
  uint64_t row_group_bytes = 64ull << 20;
  // A byte-array column chunk is dictionary-encoded when its dictionary is at
  // most this big and dictionary plus indices are smaller than
  // `dictionary_max_ratio` of the plain encoding.
  uint64_t dictionary_max_bytes = 1 << 20;
  double dictionary_max_ratio = 0.75;
  // min/max statistics longer than this are truncated to a valid lower/upper
  // bound.
  uint64_t statistics_max_bytes = 64;
  std::string created_by = "nodata version 0.1.0";
  // Threads a write may use, the caller's included (1: only the caller's). Above 1, the writer
  // starts threads - 1 workers: a full row group is encoded, compressed and written by them in
  // the background (the caller joins in when it has filled the next row group first) while the
  // caller shreds the next one, so up to two row groups are held in memory. An error of a
  // background flush is returned by a later WriteBatch, Write, FlushRowGroup or Close;
  // FlushRowGroup and Close return once everything is written. The file is the same for any
  // value.
  int threads = 1;
  // The topic's declared formats: the key and data columns stay BYTE_ARRAY and get the logical
  // type STRING (kString) or JSON (kJson), so that engines read them as text or JSON.
  DataFormat key_format = DataFormat::kBytes;
  DataFormat data_format = DataFormat::kBytes;
  // Adds a required INT32 column "partition" after the record's columns (Record::partition):
  // for a file holding records of several partitions, as `nodata topic export` writes.
  bool partition_column = false;
};

// Writes one Parquet file. Rows are buffered per row group in memory. Not
// thread-safe.
class Writer {
 public:
  static absl::StatusOr<std::unique_ptr<Writer>> Open(const std::string& path,
                                                      const WriterOptions& options = {});
  static absl::StatusOr<std::unique_ptr<Writer>> Open(std::unique_ptr<Sink> sink,
                                                      const WriterOptions& options = {});
  ~Writer();

  // Buffers `records` into the current row group, flushing it when it reaches
  // row_group_rows or row_group_bytes.
  absl::Status WriteBatch(const std::vector<Record>& records);
  absl::Status Write(const Record& record);
  // Writes the buffered rows as a row group; a no-op when none are buffered.
  absl::Status FlushRowGroup();
  // Flushes, writes the footer and closes the sink. Without Close the file is
  // incomplete.
  absl::Status Close();

  uint64_t rows_written() const;
  // Bytes of the file so far (what is written, not what is buffered or being flushed in the
  // background).
  uint64_t bytes_written() const;

  class Impl;

 private:
  explicit Writer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodata::parquet
