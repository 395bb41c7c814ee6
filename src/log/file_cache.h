// The open files of the partitions' segments, held as a cache: at most `capacity` handles are
// kept open by it, the least recently used closed first, so that the number of partitions is
// not bounded by the process's file limit. A handle in use (a scan reading it, a sync or an
// append in flight) stays open until its user lets go of it, so the process may briefly hold a
// few more than `capacity`. Opening again after an eviction costs an open(2).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/fs.h"

namespace nodata::log {

// Safe for concurrent use.
class FileCache {
 public:
  // `capacity` handles at most (at least 2).
  FileCache(FileSystem& fs, size_t capacity);
  FileCache(const FileCache&) = delete;
  FileCache& operator=(const FileCache&) = delete;

  // The file at `path` opened for positional reads.
  absl::StatusOr<std::shared_ptr<RandomAccessFile>> Reader(const std::string& path);
  // The file at `path` opened for appending (created when missing: ask only for files that
  // exist or are being created).
  absl::StatusOr<std::shared_ptr<WritableFile>> Writer(const std::string& path);
  // Drops the cache's handles on `path` (the file is sealed, idle or about to be deleted).
  void Forget(const std::string& path);
  void ForgetWriter(const std::string& path);

  size_t capacity() const { return capacity_; }
  // Handles the cache holds now.
  size_t size() const;
  // Files opened since the start: the cache's misses.
  uint64_t opens() const;

 private:
  struct Entry {
    std::string key;  // the path and a "r" or "w"
    std::shared_ptr<RandomAccessFile> reader;
    std::shared_ptr<WritableFile> writer;
  };
  // The handle in `slot` of the entry `key`, opened with `open` on a miss.
  template <typename File, typename Open>
  absl::StatusOr<std::shared_ptr<File>> Get(const std::string& key,
                                            std::shared_ptr<File> Entry::*slot, Open open);
  // Moves a hit to the front; nullptr on a miss.
  Entry* FindLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds a new entry at the front and evicts past the capacity into `closing`, which the caller
  // destroys after releasing the lock (closing a file is a system call).
  void InsertLocked(Entry entry, std::vector<Entry>* closing) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(const std::string& key, std::vector<Entry>* closing)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  FileSystem& fs_;
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // most recently used first
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  uint64_t opens_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace nodata::log
