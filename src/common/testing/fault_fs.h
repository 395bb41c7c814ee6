// A FileSystem for tests that forwards to the POSIX one and injects faults: short writes, a full
// disk, failed fsyncs. Safe for concurrent use.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include "common/fs.h"

namespace nodata::testing {

class FaultFs final : public FileSystem {
 public:
  explicit FaultFs(FileSystem& base = PosixFileSystem()) : base_(base) {}

  // Appends fail with ENOSPC once this many more bytes have been written; the failing append
  // writes a prefix first, like a real short write. Negative: no limit.
  void SetWriteBudget(int64_t bytes) { write_budget_.store(bytes); }
  // Reserve() fails with ENOSPC while set.
  void SetDiskFull(bool full) { disk_full_.store(full); }
  // Sync() fails with EIO while set.
  void SetFailSync(bool fail) { fail_sync_.store(fail); }
  // Every n-th Sync() fails with EIO (0: none), a disk that fails now and then.
  void SetFailSyncEvery(uint64_t n) { fail_sync_every_.store(n); }
  // Faults returned so far: failed syncs, short writes, refused reservations and renames.
  uint64_t injected() const { return injected_.load(); }
  uint64_t sync_count() const { return sync_count_.load(); }
  uint64_t dir_sync_count() const { return dir_sync_count_.load(); }
  // The rename after this many more successful ones fails with EIO, once. Negative: none fails.
  void FailRenameAfter(int64_t renames) { rename_budget_.store(renames); }
  // Every rename after this many more successful ones fails with EIO, until this is called
  // with a negative count (a disk that broke).
  void FailRenamesFrom(int64_t renames) { renames_left_.store(renames); }
  // OpenAppendable of a path ending in `suffix` waits until ReleaseOpens (a slow disk).
  void HoldOpens(std::string suffix);
  void ReleaseOpens() { HoldOpens(""); }
  // How many opens wait now.
  int held_opens();
  // Sync() of a file whose path contains `part` waits until ReleaseSyncs (a slow disk).
  void HoldSyncs(std::string part);
  void ReleaseSyncs() { HoldSyncs(""); }

  absl::StatusOr<std::unique_ptr<WritableFile>> OpenAppendable(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> OpenReadable(const std::string& path) override {
    return base_.OpenReadable(path);
  }
  absl::Status WriteFileAtomic(const std::string& path, std::string_view data) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    return base_.ReadFile(path);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    return base_.ListDir(dir);
  }
  absl::Status CreateDirs(const std::string& dir) override { return base_.CreateDirs(dir); }
  absl::Status RemoveFile(const std::string& path) override { return base_.RemoveFile(path); }
  absl::Status RemoveAll(const std::string& path) override { return base_.RemoveAll(path); }
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status SyncDir(const std::string& dir) override {
    dir_sync_count_.fetch_add(1);
    return base_.SyncDir(dir);
  }
  // Fails with EIO while SetFailSync is set, like a file's Sync.
  absl::Status SyncFileSystem(const std::string& path) override;
  uint64_t fs_sync_count() const { return fs_sync_count_.load(); }
  bool Exists(const std::string& path) override { return base_.Exists(path); }

 private:
  friend class FaultFile;
  FileSystem& base_;
  std::atomic<int64_t> write_budget_{-1};
  std::atomic<bool> disk_full_{false};
  std::atomic<bool> fail_sync_{false};
  std::atomic<uint64_t> fail_sync_every_{0};
  std::atomic<uint64_t> injected_{0};
  std::atomic<int64_t> rename_budget_{-1};
  std::atomic<int64_t> renames_left_{-1};
  std::atomic<uint64_t> sync_count_{0};
  std::atomic<uint64_t> dir_sync_count_{0};
  std::atomic<uint64_t> fs_sync_count_{0};
  absl::Mutex hold_mu_;
  std::string hold_suffix_ ABSL_GUARDED_BY(hold_mu_);
  int held_ ABSL_GUARDED_BY(hold_mu_) = 0;
  std::string hold_syncs_ ABSL_GUARDED_BY(hold_mu_);
};

}  // namespace nodata::testing
