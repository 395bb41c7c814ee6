// The file-system interface under the storage modules (leveldb's Env idea): a POSIX
// implementation for the server, a fault-injecting one for tests (common/testing/fault_fs.h), and
// room for an object-store one later.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodata {

// A file opened for appending. Append/Truncate/Reserve are called by one thread at a time (the
// owner serializes them); Sync may run concurrently with Append from another thread.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends all of `data` or returns an error; on error the file may hold a prefix of `data`
  // (the caller truncates it back).
  virtual absl::Status Append(std::string_view data) = 0;
  // Makes every byte appended before the call durable (fdatasync).
  virtual absl::Status Sync() = 0;
  // Cuts the file to `size` bytes.
  virtual absl::Status Truncate(uint64_t size) = 0;
  // Reserves disk blocks so that appending up to `size` total bytes cannot fail for lack of
  // space; the visible file size does not change. A file system without support returns OK.
  virtual absl::Status Reserve(uint64_t size) = 0;
  virtual uint64_t Size() const = 0;
  virtual const std::string& path() const = 0;
};

// A file opened for positional reads; safe for concurrent use.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to `n` bytes at `offset` into `scratch`; returns how many were read (short at EOF).
  virtual absl::StatusOr<size_t> Read(uint64_t offset, size_t n, char* scratch) const = 0;
  virtual absl::StatusOr<uint64_t> Size() const = 0;
};

// Safe for concurrent use.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Opens `path` for appending at its end, creating it if missing.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> OpenAppendable(const std::string& path) = 0;
  virtual absl::StatusOr<std::unique_ptr<RandomAccessFile>> OpenReadable(
      const std::string& path) = 0;
  // Writes a whole file atomically: temporary file, fsync, rename, fsync of the directory.
  virtual absl::Status WriteFileAtomic(const std::string& path, std::string_view data) = 0;
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // Names (not paths) of the entries of `dir`, without "." and "..".
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  virtual absl::Status CreateDirs(const std::string& dir) = 0;
  virtual absl::Status RemoveFile(const std::string& path) = 0;
  virtual absl::Status RemoveAll(const std::string& path) = 0;
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  virtual absl::Status SyncDir(const std::string& dir) = 0;
  // Makes everything written to the file system holding `path` durable, data and metadata of
  // every file (syncfs(2)); fails if any writeback on it failed since the last call.
  virtual absl::Status SyncFileSystem(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
};

// The local POSIX file system. Lives for the whole process.
FileSystem& PosixFileSystem();

}  // namespace nodata
