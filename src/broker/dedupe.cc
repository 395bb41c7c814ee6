#include "broker/dedupe.h"

#include <xxhash.h>

namespace nodata::broker {

IdFingerprint IdFingerprint::Of(std::string_view id) {
  XXH128_hash_t h = XXH3_128bits(id.data(), id.size());
  return IdFingerprint{h.low64, h.high64};
}

namespace {
constexpr size_t kMinRing = 1024;
}  // namespace

DedupeIndex::DedupeIndex(int64_t window_us, size_t max_ids)
    : window_us_(window_us), max_ids_(max_ids) {}

int64_t DedupeIndex::FindSlot(const IdFingerprint& id) const {
  if (slots_.empty()) return -1;
  for (uint64_t i = id.low & slot_mask_;; i = (i + 1) & slot_mask_) {
    const Slot& s = slots_[i];
    if (s.tag == kEmpty) return -1;
    if (s.key == id.low && Live(s) && ring_[(s.tag - 1) & ring_mask_].high == id.high) {
      return static_cast<int64_t>(i);
    }
  }
}

std::optional<DedupeIndex::Location> DedupeIndex::Find(const IdFingerprint& id) const {
  int64_t i = FindSlot(id);
  if (i < 0) return std::nullopt;
  const Seen& seen = ring_[(slots_[i].tag - 1) & ring_mask_];
  return Location{seen.partition, seen.offset};
}

std::optional<DedupeIndex::Location> DedupeIndex::FindOrInsert(const IdFingerprint& id,
                                                               Location location,
                                                               int64_t ingest_us) {
  if (max_ids_ == 0) return std::nullopt;
  // Room for one more live entry in the ring, and a table at most 3/4 occupied.
  const uint64_t live = next_seq_ - live_from_seq();
  if (ring_.empty() || live + 1 > ring_.size()) {
    Rebuild(std::max(kMinRing, ring_.size() * 2));
  } else if (occupied_ + 1 > slots_.size() / 4 * 3) {
    Rebuild(ring_.size());
  }
  uint64_t free_slot = ~uint64_t{0};
  uint64_t i = id.low & slot_mask_;
  for (;; i = (i + 1) & slot_mask_) {
    const Slot& s = slots_[i];
    if (s.tag == kEmpty) break;
    if (!Live(s)) {
      if (free_slot == ~uint64_t{0}) free_slot = i;
    } else if (s.key == id.low) {
      const Seen& seen = ring_[(s.tag - 1) & ring_mask_];
      if (seen.high == id.high) return Location{seen.partition, seen.offset};
    }
  }
  if (free_slot == ~uint64_t{0}) {
    free_slot = i;
    ++occupied_;
  }
  slots_[free_slot] = Slot{id.low, next_seq_ + 1};
  ring_[next_seq_ & ring_mask_] = Seen{id.high, location.offset, location.partition};
  if (marks_.empty() || marks_.back().ingest_us != ingest_us) {
    marks_.push_back(Mark{next_seq_, ingest_us});
  }
  ++next_seq_;
  return std::nullopt;
}

void DedupeIndex::Erase(const IdFingerprint& id) {
  int64_t i = FindSlot(id);
  if (i >= 0) slots_[i].tag = kErased;  // keeps probe chains through it intact
}

void DedupeIndex::Expire(int64_t now_us) {
  const int64_t cutoff = now_us - window_us_;
  while (!marks_.empty() && marks_.front().ingest_us < cutoff) {
    marks_.pop_front();
    expired_before_seq_ = marks_.empty() ? next_seq_ : marks_.front().first_seq;
  }
  const uint64_t live_from = live_from_seq();
  while (marks_.size() > 1 && marks_[1].first_seq <= live_from) marks_.pop_front();
  // A topic gone quiet gives its memory back.
  if (ring_.size() > kMinRing && size() * 8 < ring_.size()) {
    Rebuild(std::max(kMinRing, ring_.size() / 2));
  }
}

void DedupeIndex::Rebuild(size_t ring_capacity) {
  std::vector<Slot> old_slots = std::move(slots_);
  std::vector<Seen> old_ring = std::move(ring_);
  const uint64_t old_ring_mask = ring_mask_;
  ring_.assign(ring_capacity, Seen{});
  ring_mask_ = ring_capacity - 1;
  slots_.assign(ring_capacity * 2, Slot{});
  slot_mask_ = slots_.size() - 1;
  occupied_ = 0;
  const uint64_t live_from = live_from_seq();
  for (const Slot& s : old_slots) {
    if (s.tag == kEmpty || s.tag == kErased || s.tag - 1 < live_from) continue;
    const uint64_t seq = s.tag - 1;
    uint64_t i = s.key & slot_mask_;
    while (slots_[i].tag != kEmpty) i = (i + 1) & slot_mask_;
    slots_[i] = s;
    ++occupied_;
    ring_[seq & ring_mask_] = old_ring[seq & old_ring_mask];
  }
}

}  // namespace nodata::broker
