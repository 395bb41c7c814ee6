// Byte sinks and sources the Parquet writer and reader run over: a file of the
// project's FileSystem (common/fs.h) or an in-memory string.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/fs.h"

namespace nodata::parquet {

// An append-only byte sink. Not thread-safe.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual absl::Status Append(std::string_view data) = 0;
  // Flushes and releases the sink. Durability (fsync, rename) is the caller's
  // job.
  virtual absl::Status Close() = 0;
};

// Creates or truncates `path` on `fs`, which must outlive the sink. With
// `sync_on_close`, Close fsyncs the file's data before releasing it.
absl::StatusOr<std::unique_ptr<Sink>> OpenFileSink(const std::string& path,
                                                   FileSystem& fs = PosixFileSystem(),
                                                   bool sync_on_close = false);
// Appends to `*out`, which must outlive the sink.
std::unique_ptr<Sink> NewStringSink(std::string* out);

// Random-access bytes of fixed size. Safe for concurrent reads.
class Source {
 public:
  virtual ~Source() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly `n` bytes at `offset` into `*out`; OUT_OF_RANGE past the end.
  virtual absl::Status ReadAt(uint64_t offset, uint64_t n, std::string* out) const = 0;
};

// Opens `path` on `fs`, which must outlive the source.
absl::StatusOr<std::unique_ptr<Source>> OpenFileSource(const std::string& path,
                                                       FileSystem& fs = PosixFileSystem());
std::unique_ptr<Source> NewStringSource(std::string data);

}  // namespace nodata::parquet
