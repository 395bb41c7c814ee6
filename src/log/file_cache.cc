#include "log/file_cache.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/status.h"

namespace nodata::log {
namespace {

std::string Key(const std::string& path, char kind) {
  std::string key = path;
  key.push_back('\0');
  key.push_back(kind);
  return key;
}

}  // namespace

FileCache::FileCache(FileSystem& fs, size_t capacity)
    : fs_(fs), capacity_(std::max<size_t>(2, capacity)) {}

FileCache::Entry* FileCache::FindLocked(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &*it->second;
}

void FileCache::InsertLocked(Entry entry, std::vector<Entry>* closing) {
  lru_.push_front(std::move(entry));
  index_[lru_.front().key] = lru_.begin();
  ++opens_;
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().key);
    closing->push_back(std::move(lru_.back()));
    lru_.pop_back();
  }
}

void FileCache::EraseLocked(const std::string& key, std::vector<Entry>* closing) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  closing->push_back(std::move(*it->second));
  lru_.erase(it->second);
  index_.erase(it);
}

template <typename File, typename Open>
absl::StatusOr<std::shared_ptr<File>> FileCache::Get(const std::string& key,
                                                     std::shared_ptr<File> Entry::*slot,
                                                     Open open) {
  {
    absl::MutexLock lock(&mu_);
    if (Entry* e = FindLocked(key)) return e->*slot;
  }
  // Opened outside the lock: two callers may both open it, and the second keeps the first's.
  ASSIGN_OR_RETURN(std::shared_ptr<File> file, open());
  std::vector<Entry> closing;
  absl::MutexLock lock(&mu_);
  if (Entry* e = FindLocked(key)) return e->*slot;
  Entry entry;
  entry.key = key;
  entry.*slot = file;
  InsertLocked(std::move(entry), &closing);
  return file;
}

absl::StatusOr<std::shared_ptr<RandomAccessFile>> FileCache::Reader(const std::string& path) {
  return Get(Key(path, 'r'), &Entry::reader,
             [&]() -> absl::StatusOr<std::shared_ptr<RandomAccessFile>> {
               return fs_.OpenReadable(path);
             });
}

absl::StatusOr<std::shared_ptr<WritableFile>> FileCache::Writer(const std::string& path) {
  return Get(Key(path, 'w'), &Entry::writer,
             [&]() -> absl::StatusOr<std::shared_ptr<WritableFile>> {
               return fs_.OpenAppendable(path);
             });
}

void FileCache::Forget(const std::string& path) {
  std::vector<Entry> closing;
  absl::MutexLock lock(&mu_);
  EraseLocked(Key(path, 'r'), &closing);
  EraseLocked(Key(path, 'w'), &closing);
}

void FileCache::ForgetWriter(const std::string& path) {
  std::vector<Entry> closing;
  absl::MutexLock lock(&mu_);
  EraseLocked(Key(path, 'w'), &closing);
}

size_t FileCache::size() const {
  absl::MutexLock lock(&mu_);
  return lru_.size();
}

uint64_t FileCache::opens() const {
  absl::MutexLock lock(&mu_);
  return opens_;
}

}  // namespace nodata::log
