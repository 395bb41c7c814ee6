// The ids a topic has stored recently, for idempotent publishing.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <string_view>

#include <memory>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"

namespace nodata::broker {

// A 128-bit fingerprint (XXH3-128) of an event id. The dedupe index keeps fingerprints, not ids:
// no allocation per id (the fingerprint is 16 of a slot's 40 bytes, see DedupeIndex). Two
// distinct ids share a fingerprint with probability about n²/2¹²⁹ — for a million remembered
// ids, ~10⁻²⁷ — which is far below the disk's own undetected error rate.
struct IdFingerprint {
  uint64_t low = 0;
  uint64_t high = 0;

  static IdFingerprint Of(std::string_view id);
  bool operator==(const IdFingerprint&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const IdFingerprint& f) {
    return H::combine(std::move(h), f.low);  // already uniformly distributed
  }
};

// Maps an event id to where the event was stored, for ids seen within a time window, holding at
// most `max_ids` (the oldest go first). Not thread-safe: the topic's lock guards it.
//
// Built for one cache miss per published event and no pauses: a linear-probing table of 40-byte
// slots on huge pages. An id older than the window or the cap is not removed when it expires; it
// is stale by its sequence number, skipped by lookups and reused by inserts, and a sweeper that
// walks a few slots per insert (once any id has expired) deletes it for good (backward-shift
// deletion, so no tombstones), keeping the table's load bounded without ever rebuilding it at
// steady state. Prefetch() and PrefetchUnlocked() let a batch overlap its cache misses.
//
// Size and load, stated here only: a slot is 40 bytes (36 of fields, padded to 8). Once an insert
// would fill more than 70% of the slots (live or stale), the table doubles if more than half of
// them hold live ids, else rehashes at its size without the stale ones: the load stays at most
// 70%. A topic at the default cap of 1M ids thus has 2^21 slots, 80 MiB.
class DedupeIndex {
 public:
  struct Location {
    uint32_t partition = 0;
    uint64_t offset = 0;
  };

  DedupeIndex(int64_t window_us, size_t max_ids) : window_us_(window_us), max_ids_(max_ids) {}

  // Starts loading the slot `id` hashes to.
  void Prefetch(const IdFingerprint& id) const {
    if (capacity_ > 0) __builtin_prefetch(&slots_[id.low & mask_]);
  }
  // The same without the topic's lock, for a batch's topics ahead of the one being appended:
  // from a copy of the table's address and mask that Resize keeps. A stale copy (a resize in
  // between) only wastes the prefetch, which never faults.
  void PrefetchUnlocked(const IdFingerprint& id) const {
    const uintptr_t base = table_addr_.load(std::memory_order_relaxed);
    if (base == 0) return;
    const uint64_t i = id.low & table_mask_.load(std::memory_order_relaxed);
    __builtin_prefetch(reinterpret_cast<const void*>(base + i * sizeof(Slot)));
  }
  // Where the id was stored, or nullopt when it was not seen within the window.
  std::optional<Location> Find(const IdFingerprint& id) const;
  // Records `id` at `location` unless it is already known; returns its known location then.
  // Ids must arrive in non-decreasing ingest time.
  std::optional<Location> FindOrInsert(const IdFingerprint& id, Location location,
                                       int64_t ingest_us);
  void Insert(const IdFingerprint& id, Location location, int64_t ingest_us) {
    FindOrInsert(id, location, ingest_us);
  }
  // Forgets `id` (to undo an insert whose append failed).
  void Erase(const IdFingerprint& id);
  // Makes room for `ids` entries at once (before restoring a checkpoint), so that inserting them
  // never rehashes.
  void Reserve(size_t ids);
  // Inserts made so far (a count that only grows): tells whether anything changed since.
  uint64_t inserted() const { return next_seq_; }
  // Ids remembered, at most: those not past the cap or the window (some may have been erased).
  size_t live_bound() const { return next_seq_ - live_from_seq(); }
  // Runs of ids of one ingest time that it keeps (what a Snapshot copies besides the ids).
  size_t runs() const { return marks_.size(); }
  // Forgets everything, as a new index.
  void Clear();

  // One remembered id, as a checkpoint keeps it.
  struct Entry {
    IdFingerprint id;
    Location location;
    int64_t ingest_us = 0;
  };
  // The live entries at one moment, taken under the topic's lock (one pass over the table, no
  // sort) and put in order outside it.
  class Snapshot;
  // Fills `out` (made ready with Snapshot::Reserve outside the lock, so that the pass only
  // copies into memory already mapped).
  void Capture(Snapshot* out) const;

  // Forgets ids older than the window.
  void Expire(int64_t now_us);
  // Ids currently remembered (counts them: for tests and tools).
  size_t size() const;

 private:
  static constexpr uint64_t kEmpty = 0;
  static constexpr uint64_t kErased = ~uint64_t{0};
  struct Slot {
    uint64_t low = 0;
    uint64_t high = 0;
    uint64_t offset = 0;
    uint64_t seq = kEmpty;  // insertion sequence number + 1, or kEmpty / kErased
    uint32_t partition = 0;
  };
  static_assert(sizeof(Slot) == 40, "the class comment states the slot size");
  // Zeroed memory (an all-zero slot is empty): from the heap below 2 MiB, above it anonymous
  // memory, whose fresh pages come zeroed on first touch. Large tables ask for huge pages:
  // lookups are random, and 4 KiB pages would add a TLB miss to nearly every one.
  struct Unmap {
    Unmap() : bytes(0) {}
    explicit Unmap(size_t b) : bytes(b) {}
    void operator()(Slot* p) const;
    size_t bytes;
  };
  struct Mark {
    uint64_t first_seq;  // first entry inserted with this ingest time
    int64_t ingest_us;
  };
  // Slots the sweeper examines per insert: it bounds the stale entries at about capacity/16, so
  // that live ids, not stale ones, decide when the table grows.
  static constexpr size_t kSweepPerInsert = 16;

  uint64_t live_from_seq() const {
    uint64_t by_cap = next_seq_ > max_ids_ ? next_seq_ - max_ids_ : 0;
    return by_cap > expired_before_seq_ ? by_cap : expired_before_seq_;
  }
  bool Live(const Slot& s) const {
    return s.seq != kEmpty && s.seq != kErased && s.seq - 1 >= live_from_seq();
  }
  // Index of the live slot holding `id`, or -1.
  int64_t FindSlot(const IdFingerprint& id) const;
  // Empties slot `i`, shifting later entries of its probe run back into the gap.
  void DeleteAt(uint64_t i);
  void Sweep(size_t slots);
  // Rehashes the live entries into a table of `capacity` slots (a power of two, or 0).
  void Resize(size_t capacity);

  const int64_t window_us_;
  const uint64_t max_ids_;
  std::unique_ptr<Slot[], Unmap> slots_;
  size_t capacity_ = 0;
  uint64_t mask_ = 0;
  size_t occupied_ = 0;  // slots that are neither kEmpty
  uint64_t cursor_ = 0;  // the sweeper's position
  std::deque<Mark> marks_;           // ingest time of each run of entries, oldest first
  uint64_t next_seq_ = 0;            // sequence number of the next insert
  uint64_t expired_before_seq_ = 0;  // entries below this are past the window
  // slots_ and mask_, for PrefetchUnlocked.
  std::atomic<uintptr_t> table_addr_{0};
  std::atomic<uint64_t> table_mask_{0};
};

class DedupeIndex::Snapshot {
 public:
  size_t size() const { return live_.size(); }
  // Room for `ids` entries and `runs` runs, with its memory touched: Capture then takes no
  // page faults.
  void Reserve(size_t ids, size_t runs);
  // Visits the entries in insertion order (which is ingest-time order), each with its ingest
  // time. Sorts on the first call.
  void ForEach(absl::FunctionRef<void(const Entry&)> visit);

 private:
  friend class DedupeIndex;
  std::vector<Slot> live_;
  std::vector<Mark> marks_;
  bool sorted_ = false;
};

}  // namespace nodata::broker
