#include "common/testing/fault_fs.h"

#include <cerrno>

#include "common/status.h"

namespace nodata::testing {

class FaultFile final : public WritableFile {
 public:
  FaultFile(FaultFs& fs, std::unique_ptr<WritableFile> base) : fs_(fs), base_(std::move(base)) {}

  absl::Status Append(std::string_view data) override {
    int64_t budget = fs_.write_budget_.load();
    if (budget >= 0) {
      if (static_cast<int64_t>(data.size()) > budget) {
        fs_.write_budget_.store(0);
        fs_.injected_.fetch_add(1);
        // A real short write: part of the data lands, then the disk is full.
        absl::Status s = base_->Append(data.substr(0, static_cast<size_t>(budget)));
        if (!s.ok()) return s;
        return ErrnoToStatus(ENOSPC, "write " + path());
      }
      fs_.write_budget_.fetch_sub(static_cast<int64_t>(data.size()));
    }
    return base_->Append(data);
  }
  absl::Status Sync() override {
    const uint64_t n = fs_.sync_count_.fetch_add(1) + 1;
    const uint64_t every = fs_.fail_sync_every_.load();
    if (fs_.fail_sync_.load() || (every > 0 && n % every == 0)) {
      fs_.injected_.fetch_add(1);
      return ErrnoToStatus(EIO, "fdatasync " + path());
    }
    {
      absl::MutexLock lock(&fs_.hold_mu_);
      if (!fs_.hold_syncs_.empty() && path().find(fs_.hold_syncs_) != std::string::npos) {
        fs_.hold_mu_.Await(absl::Condition(
            +[](std::string* part) { return part->empty(); }, &fs_.hold_syncs_));
      }
    }
    return base_->Sync();
  }
  absl::Status Truncate(uint64_t size) override { return base_->Truncate(size); }
  absl::Status Reserve(uint64_t size) override {
    if (fs_.disk_full_.load() && size > base_->Size()) {
      fs_.injected_.fetch_add(1);
      return ErrnoToStatus(ENOSPC, "fallocate " + path());
    }
    return base_->Reserve(size);
  }
  uint64_t Size() const override { return base_->Size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultFs& fs_;
  std::unique_ptr<WritableFile> base_;
};

void FaultFs::HoldOpens(std::string suffix) {
  absl::MutexLock lock(&hold_mu_);
  hold_suffix_ = std::move(suffix);
}

void FaultFs::HoldSyncs(std::string part) {
  absl::MutexLock lock(&hold_mu_);
  hold_syncs_ = std::move(part);
}

int FaultFs::held_opens() {
  absl::MutexLock lock(&hold_mu_);
  return held_;
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultFs::OpenAppendable(const std::string& path) {
  {
    absl::MutexLock lock(&hold_mu_);
    if (!hold_suffix_.empty() && path.ends_with(hold_suffix_)) {
      ++held_;
      hold_mu_.Await(absl::Condition(
          +[](std::string* suffix) { return suffix->empty(); }, &hold_suffix_));
      --held_;
    }
  }
  auto base = base_.OpenAppendable(path);
  if (!base.ok()) return base.status();
  return std::unique_ptr<WritableFile>(std::make_unique<FaultFile>(*this, std::move(*base)));
}

absl::Status FaultFs::WriteFileAtomic(const std::string& path, std::string_view data) {
  if (disk_full_.load()) {
    injected_.fetch_add(1);
    return ErrnoToStatus(ENOSPC, "write " + path);
  }
  return base_.WriteFileAtomic(path, data);
}

absl::Status FaultFs::Rename(const std::string& from, const std::string& to) {
  int64_t budget = rename_budget_.load();
  while (budget >= 0) {
    if (rename_budget_.compare_exchange_weak(budget, budget - 1)) {
      if (budget == 0) {
        injected_.fetch_add(1);
        return ErrnoToStatus(EIO, "rename " + from);
      }
      break;
    }
  }
  int64_t left = renames_left_.load();
  while (left >= 0) {
    if (left == 0) {
      injected_.fetch_add(1);
      return ErrnoToStatus(EIO, "rename " + from);
    }
    if (renames_left_.compare_exchange_weak(left, left - 1)) break;
  }
  return base_.Rename(from, to);
}

absl::Status FaultFs::SyncFileSystem(const std::string& path) {
  if (fail_sync_.load()) {
    injected_.fetch_add(1);
    return ErrnoToStatus(EIO, "syncfs " + path);
  }
  fs_sync_count_.fetch_add(1);
  return base_.SyncFileSystem(path);
}

}  // namespace nodata::testing
