#include "broker/dedupe.h"

#include <xxhash.h>

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <type_traits>

namespace nodata::broker {

IdFingerprint IdFingerprint::Of(std::string_view id) {
  XXH128_hash_t h = XXH3_128bits(id.data(), id.size());
  return IdFingerprint{h.low64, h.high64};
}

namespace {
constexpr size_t kMinCapacity = 1024;
constexpr size_t kHugePage = 2u << 20;
constexpr uintptr_t kPage = 4096;
// Tables from this size on have their pages mapped before the rehash (see Resize).
constexpr size_t kPopulateBytes = 64u << 10;
}  // namespace

// Tables below a huge page come from the heap: a topic's table grows through several sizes, and
// a mapping per size (with its unmapping, which interrupts every core) would cost more than the
// rehash itself when thousands of topics warm up at once.
void DedupeIndex::Unmap::operator()(Slot* p) const {
  if (bytes < kHugePage) {
    std::free(p);
  } else {
    ::munmap(p, bytes);
  }
}

int64_t DedupeIndex::FindSlot(const IdFingerprint& id) const {
  if (capacity_ == 0) return -1;
  for (uint64_t i = id.low & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.seq == kEmpty) return -1;
    if (s.low == id.low && s.high == id.high && Live(s)) return static_cast<int64_t>(i);
  }
}

std::optional<DedupeIndex::Location> DedupeIndex::Find(const IdFingerprint& id) const {
  int64_t i = FindSlot(id);
  if (i < 0) return std::nullopt;
  return Location{slots_[i].partition, slots_[i].offset};
}

std::optional<DedupeIndex::Location> DedupeIndex::FindOrInsert(const IdFingerprint& id,
                                                               Location location,
                                                               int64_t ingest_us) {
  if (max_ids_ == 0) return std::nullopt;
  if ((occupied_ + 1) * 10 > capacity_ * 7) {
    // Grow (a topic warming up) or, with mostly stale entries, rehash at the same size.
    const size_t live = next_seq_ - live_from_seq();
    Resize((live + 1) * 10 > capacity_ * 5 ? std::max(kMinCapacity, capacity_ * 2)
                                           : std::max(kMinCapacity, capacity_));
  }
  uint64_t free_slot = ~uint64_t{0};
  uint64_t i = id.low & mask_;
  for (;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.seq == kEmpty) break;
    if (!Live(s)) {
      if (free_slot == ~uint64_t{0}) free_slot = i;
    } else if (s.low == id.low && s.high == id.high) {
      return Location{s.partition, s.offset};
    }
  }
  if (free_slot == ~uint64_t{0}) {
    free_slot = i;
    ++occupied_;
  }
  slots_[free_slot] = Slot{id.low, id.high, location.offset, next_seq_ + 1, location.partition};
  if (marks_.empty() || marks_.back().ingest_us != ingest_us) {
    marks_.push_back(Mark{next_seq_, ingest_us});
  }
  ++next_seq_;
  Sweep(kSweepPerInsert);
  return std::nullopt;
}

void DedupeIndex::DeleteAt(uint64_t i) {
  // Backward-shift deletion: move each later entry of the run whose home is not in (i, j] into
  // the gap, so that lookups never need tombstones.
  for (uint64_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
    const Slot& s = slots_[j];
    if (s.seq == kEmpty) break;
    const uint64_t home = s.low & mask_;
    const bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
    if (!stays) {
      slots_[i] = s;
      i = j;
    }
  }
  slots_[i] = Slot{};
  --occupied_;
}

void DedupeIndex::Sweep(size_t slots) {
  // Nothing is stale until an id has passed the window or the cap (erasing leaves no stale
  // slot): a topic warming up skips the walk.
  if (live_from_seq() == 0) return;
  for (size_t n = 0; n < slots && occupied_ > 0; ++n) {
    const Slot& s = slots_[cursor_];
    if (s.seq != kEmpty && !Live(s)) {
      DeleteAt(cursor_);  // an entry may shift into cursor_: look at it again
      continue;
    }
    cursor_ = (cursor_ + 1) & mask_;
  }
}

void DedupeIndex::Erase(const IdFingerprint& id) {
  int64_t i = FindSlot(id);
  if (i >= 0) DeleteAt(static_cast<uint64_t>(i));
}

void DedupeIndex::Expire(int64_t now_us) {
  const int64_t cutoff = now_us - window_us_;
  while (!marks_.empty() && marks_.front().ingest_us < cutoff) {
    marks_.pop_front();
    expired_before_seq_ = marks_.empty() ? next_seq_ : marks_.front().first_seq;
  }
  const uint64_t live_from = live_from_seq();
  while (marks_.size() > 1 && marks_[1].first_seq <= live_from) marks_.pop_front();
  // A topic whose ids have all expired gives its memory back.
  if (capacity_ > kMinCapacity && live_from >= next_seq_) Resize(0);
}

void DedupeIndex::Resize(size_t capacity) {
  static_assert(std::is_trivially_copyable_v<Slot> && kEmpty == 0);
  std::unique_ptr<Slot[], Unmap> old = std::move(slots_);
  const size_t old_capacity = capacity_;
  capacity_ = capacity;
  mask_ = capacity == 0 ? 0 : capacity - 1;
  occupied_ = 0;
  cursor_ = 0;
  table_addr_.store(0, std::memory_order_relaxed);
  table_mask_.store(mask_, std::memory_order_relaxed);
  if (capacity == 0) return;
  const size_t bytes = capacity * sizeof(Slot);
  void* p;
  if (bytes < kHugePage) {
    p = std::calloc(capacity, sizeof(Slot));
    if (p == nullptr) throw std::bad_alloc();  // as std::vector would: out of memory
  } else {
    p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    ::madvise(p, bytes, MADV_HUGEPAGE);  // a hint; fine if refused
  }
  if (bytes >= kPopulateBytes) {
    // The rehash below writes all over the new table: map its pages in one call rather than a
    // page fault each (a hint; kernels before 5.14 refuse it, and the faults happen as before).
    const uintptr_t first = (reinterpret_cast<uintptr_t>(p) + kPage - 1) & ~(kPage - 1);
    const uintptr_t last = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kPage - 1);
    if (last > first) {
      ::madvise(reinterpret_cast<void*>(first), last - first, MADV_POPULATE_WRITE);
    }
  }
  slots_ = std::unique_ptr<Slot[], Unmap>(static_cast<Slot*>(p), Unmap{bytes});
  table_addr_.store(reinterpret_cast<uintptr_t>(p), std::memory_order_relaxed);
  // The old table is read in order, the new one written at random: its slots are prefetched
  // a few entries ahead.
  constexpr size_t kRehashAhead = 8;
  for (size_t k = 0; k < old_capacity; ++k) {
    if (k + kRehashAhead < old_capacity) {
      __builtin_prefetch(&slots_[old[k + kRehashAhead].low & mask_], 1);
    }
    const Slot& s = old[k];
    if (!Live(s)) continue;
    uint64_t i = s.low & mask_;
    while (slots_[i].seq != kEmpty) i = (i + 1) & mask_;
    slots_[i] = s;
    ++occupied_;
  }
}

void DedupeIndex::Reserve(size_t ids) {
  // At most half full once they are in, as a table that grew to hold them would be.
  size_t capacity = kMinCapacity;
  while (capacity < ids * 2) capacity *= 2;
  if (capacity > capacity_) Resize(capacity);
}

void DedupeIndex::Snapshot::Reserve(size_t ids, size_t runs) {
  // Resizing touches the pages; clearing keeps the capacity.
  live_.resize(std::max(live_.size(), ids));
  live_.clear();
  marks_.resize(std::max(marks_.size(), runs));
  marks_.clear();
}

void DedupeIndex::Clear() {
  Resize(0);
  marks_.clear();
  next_seq_ = 0;
  expired_before_seq_ = 0;
}

void DedupeIndex::Capture(Snapshot* out) const {
  out->live_.clear();
  out->marks_.clear();
  out->sorted_ = false;
  if (capacity_ == 0) return;
  for (size_t i = 0; i < capacity_; ++i) {
    if (Live(slots_[i])) out->live_.push_back(slots_[i]);
  }
  out->marks_.insert(out->marks_.end(), marks_.begin(), marks_.end());
}

void DedupeIndex::Snapshot::ForEach(absl::FunctionRef<void(const Entry&)> visit) {
  if (!sorted_) {
    std::sort(live_.begin(), live_.end(),
              [](const Slot& a, const Slot& b) { return a.seq < b.seq; });
    sorted_ = true;
  }
  // marks_ holds the first sequence number of each run of one ingest time, oldest first; every
  // live entry is at or after the first mark.
  size_t m = 0;
  for (const Slot& s : live_) {
    const uint64_t seq = s.seq - 1;
    while (m + 1 < marks_.size() && marks_[m + 1].first_seq <= seq) ++m;
    Entry e;
    e.id = IdFingerprint{s.low, s.high};
    e.location = Location{s.partition, s.offset};
    e.ingest_us = marks_.empty() ? 0 : marks_[m].ingest_us;
    visit(e);
  }
}

size_t DedupeIndex::size() const {
  size_t n = 0;
  for (size_t i = 0; i < capacity_; ++i) n += Live(slots_[i]);
  return n;
}

}  // namespace nodata::broker
