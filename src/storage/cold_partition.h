// The cold tier of one partition: Parquet files in a Hive layout that DuckDB, Spark and pandas
// read directly. Layout and guarantees: docs/formats/parquet-layout.md.
//
//   <dir> = DATA/topics/<topic>/partition=<p>
//   <dir>/date=<YYYY-MM-DD>/<first offset, 20 digits>-<last offset, 20 digits>.parquet
//
// Files cover consecutive offset ranges; the date is the UTC ingest date of every record in the
// file. A file is written under a temporary name, fsynced, renamed and its directory fsynced,
// so a file with a final name is always complete.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/fs.h"
#include "log/format.h"
#include "parquet/writer.h"

namespace nodata::parquet {
class Reader;
}

namespace nodata::storage {

struct ColdFile {
  uint64_t first_offset = 0;
  uint64_t last_offset = 0;  // inclusive
  std::string date;          // YYYY-MM-DD
  std::string path;
  uint64_t size_bytes = 0;
  int64_t max_ingest_us = 0;  // from the footer statistics
};

struct ColdStats {
  uint32_t file_count = 0;
  uint64_t bytes = 0;
  uint64_t start_offset = 0;  // first offset held (end_offset when there are no files)
  uint64_t end_offset = 0;    // one past the last offset held or dropped
};

// Days since the Unix epoch of a time in microseconds, in UTC (floor, also before 1970).
int64_t UtcDay(int64_t micros);
// "YYYY-MM-DD" of a time in microseconds since the Unix epoch, in UTC.
std::string UtcDate(int64_t micros);

// Safe for concurrent use: reads run alongside the (single) writer and retention.
class ColdPartition {
 public:
  // Opens `dir`, removing unfinished temporary files and reading every file's footer. A file
  // whose footer cannot be read stays listed (reads of it fail with DATA_LOSS).
  static absl::StatusOr<std::unique_ptr<ColdPartition>> Open(FileSystem& fs, std::string dir,
                                                             parquet::WriterOptions options);
  ~ColdPartition();

  ColdStats Stats() const;
  bool empty() const;
  std::vector<ColdFile> Files() const;

  // Reads records from `from` on within one file, until `max_records` or about `max_bytes`.
  // Decodes at most one row group per call (found through the offset column's statistics), so
  // memory stays bounded by the row group size whatever the file size. OUT_OF_RANGE outside
  // the files; DATA_LOSS for a missing range or a damaged file.
  // `visit` sees each record's views into the decoded row group, valid during the call only.
  absl::Status Scan(uint64_t from, size_t max_records, size_t max_bytes,
                    absl::FunctionRef<void(const DecodedRecord&)> visit) const;

  // Writes one new file after the last one. Records must come with consecutive offsets, from
  // `first_offset` on, all of the same UTC ingest date.
  class FileBuilder {
   public:
    ~FileBuilder();  // without Finish the temporary file is removed
    absl::Status Add(const Record& record);
    uint64_t records() const { return next_offset_ - first_offset_; }
    uint64_t raw_bytes() const { return raw_bytes_; }
    const std::string& date() const { return date_; }
    // Closes, fsyncs and publishes the file under its final name; then it is readable.
    absl::StatusOr<ColdFile> Finish();

   private:
    friend class ColdPartition;
    FileBuilder(ColdPartition& owner, uint64_t first_offset, std::string date);
    ColdPartition& owner_;
    const uint64_t first_offset_;
    uint64_t next_offset_;
    const std::string date_;
    std::string dir_;
    std::string tmp_path_;
    std::unique_ptr<parquet::Writer> writer_;
    uint64_t raw_bytes_ = 0;
    int64_t max_ingest_us_ = INT64_MIN;
    bool finished_ = false;
  };
  // FAILED_PRECONDITION unless `first_offset` is the cold tier's end (or it is empty).
  absl::StatusOr<std::unique_ptr<FileBuilder>> StartFile(uint64_t first_offset, std::string date);

  // Deletes the oldest file; start_offset moves past it.
  absl::Status DropOldest();

 private:
  struct CachedGroup;
  ColdPartition(FileSystem& fs, std::string dir, parquet::WriterOptions options)
      : fs_(fs), dir_(std::move(dir)), options_(std::move(options)) {}
  absl::Status Load();
  absl::StatusOr<std::shared_ptr<const parquet::Reader>> OpenReader(const ColdFile& file) const;
  absl::Status Publish(ColdFile file);
  absl::Status EnsureDir(const std::string& dir);

  FileSystem& fs_;
  const std::string dir_;
  const parquet::WriterOptions options_;

  mutable absl::Mutex mu_;
  std::vector<ColdFile> files_ ABSL_GUARDED_BY(mu_);  // by offset, contiguous unless damaged
  uint64_t end_offset_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Recently used readers (footers parsed) and the last decoded row group: a reader going
  // through a file decodes each row group once.
  mutable std::vector<std::pair<std::string, std::shared_ptr<const parquet::Reader>>> readers_
      ABSL_GUARDED_BY(mu_);
  mutable std::shared_ptr<const CachedGroup> last_group_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodata::storage
