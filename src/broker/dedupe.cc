#include "broker/dedupe.h"

#include "absl/strings/string_view.h"

namespace nodata::broker {
namespace {
absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
}  // namespace

const DedupeIndex::Location* DedupeIndex::Find(std::string_view id) const {
  auto it = map_.find(Absl(id));
  if (it == map_.end()) return nullptr;
  return &it->second.location;
}

void DedupeIndex::Insert(std::string_view id, Location location, int64_t ingest_us) {
  if (max_ids_ == 0) return;
  auto [it, inserted] = map_.try_emplace(std::string(id), Entry{location, ingest_us});
  if (!inserted) return;
  order_.push_back(&it->first);
  while (map_.size() > max_ids_) EvictOldest();
}

void DedupeIndex::Expire(int64_t now_us) {
  const int64_t cutoff = now_us - window_us_;
  while (!order_.empty()) {
    auto it = map_.find(*order_.front());
    if (it->second.ingest_us >= cutoff) break;
    EvictOldest();
  }
}

void DedupeIndex::EvictOldest() {
  const std::string* key = order_.front();
  order_.pop_front();
  map_.erase(*key);
}

}  // namespace nodata::broker
