// The ids a topic has stored recently, for idempotent publishing.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "absl/container/node_hash_map.h"

namespace nodata::broker {

// Maps a producer's event id to where the event was stored, for ids seen within a time window,
// holding at most `max_ids` (the oldest go first). Not thread-safe: the topic's lock guards it.
class DedupeIndex {
 public:
  struct Location {
    uint32_t partition;
    uint64_t offset;
  };

  DedupeIndex(int64_t window_us, size_t max_ids) : window_us_(window_us), max_ids_(max_ids) {}

  // Where `id` was stored, or nullptr when it was not seen within the window.
  const Location* Find(std::string_view id) const;
  // Records `id`; ids must arrive in non-decreasing ingest time. An id already present is kept.
  void Insert(std::string_view id, Location location, int64_t ingest_us);
  // Forgets ids older than the window.
  void Expire(int64_t now_us);
  size_t size() const { return map_.size(); }

 private:
  struct Entry {
    Location location;
    int64_t ingest_us;
  };
  void EvictOldest();

  const int64_t window_us_;
  const size_t max_ids_;
  absl::node_hash_map<std::string, Entry> map_;
  // Keys of map_ in insertion order; node_hash_map keeps them at stable addresses.
  std::deque<const std::string*> order_;
};

}  // namespace nodata::broker
