// Directories whose new entries are not yet durable, shared by the partitions of a server: a
// directory that many logs were created in (a topic's, holding its partitions') is synced once
// for all of them rather than once by each.
#pragma once

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/fs.h"

namespace nodata::log {

// Safe for concurrent use.
class DirSyncs {
 public:
  explicit DirSyncs(FileSystem& fs) : fs_(fs) {}
  DirSyncs(const DirSyncs&) = delete;
  DirSyncs& operator=(const DirSyncs&) = delete;

  // An entry was added to `dir` (call after the change).
  void Changed(const std::string& dir);
  // Makes every entry added to `dir` before this call durable: an fsync of it, unless one that
  // started after the last Changed has already succeeded.
  absl::Status Sync(const std::string& dir);

  // Directories with changes not yet synced.
  size_t pending() const;
  // The number of the last change so far; after a sync of the whole file system that started
  // later, SyncedUpTo(it) forgets every change up to it.
  uint64_t Mark() const;
  void SyncedUpTo(uint64_t mark);

 private:
  FileSystem& fs_;
  mutable absl::Mutex mu_;
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  // A changed directory and the number of its last change.
  absl::flat_hash_map<std::string, uint64_t> changed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodata::log
