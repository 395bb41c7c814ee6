// Exclusive ownership of a data directory by one process, as leveldb's LOCK file: anything that
// opens a data directory for writing (the server, offline commands of the CLI) holds it first.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace nodata::storage {

// An advisory lock (flock) on DATA/LOCK, held while the object lives; the file holds the holder's
// pid for the message others get. The kernel drops the lock when the process dies, so a lock left
// by a crashed or killed process never blocks. Not thread-safe; move-only by its unique_ptr.
class DataDirLock {
 public:
  // Creates `dir` when missing and locks it. FAILED_PRECONDITION naming the directory and the
  // holder's pid when another process (or another lock in this one) holds it.
  static absl::StatusOr<std::unique_ptr<DataDirLock>> Acquire(const std::string& dir);
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  const int fd_;
};

}  // namespace nodata::storage
