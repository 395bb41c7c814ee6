#include "log/dir_syncs.h"

namespace nodata::log {

void DirSyncs::Changed(const std::string& dir) {
  absl::MutexLock lock(&mu_);
  changed_[dir] = ++changes_;
}

absl::Status DirSyncs::Sync(const std::string& dir) {
  uint64_t change;
  {
    absl::MutexLock lock(&mu_);
    auto it = changed_.find(dir);
    if (it == changed_.end()) return absl::OkStatus();
    change = it->second;
  }
  // Covers every change made before it starts; one made meanwhile keeps the entry.
  absl::Status s = fs_.SyncDir(dir);
  if (!s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (auto it = changed_.find(dir); it != changed_.end() && it->second == change) {
    changed_.erase(it);
  }
  return absl::OkStatus();
}

uint64_t DirSyncs::Mark() const {
  absl::MutexLock lock(&mu_);
  return changes_;
}

void DirSyncs::SyncedUpTo(uint64_t mark) {
  absl::MutexLock lock(&mu_);
  absl::erase_if(changed_, [mark](const auto& entry) { return entry.second <= mark; });
}

size_t DirSyncs::pending() const {
  absl::MutexLock lock(&mu_);
  return changed_.size();
}

}  // namespace nodata::log
