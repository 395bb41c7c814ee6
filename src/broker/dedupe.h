// The ids a topic has stored recently, for idempotent publishing.
#pragma once

#include <cstdint>
#include <deque>
#include <string_view>

#include <optional>
#include <vector>

namespace nodata::broker {

// A 128-bit fingerprint (XXH3-128) of an event id. The dedupe index keeps fingerprints, not ids:
// no allocation per id, 16 bytes each. Two distinct ids share a fingerprint with probability
// about n²/2¹²⁹ — for a million remembered ids, ~10⁻²⁷ — which is far below the disk's own
// undetected error rate.
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
// Built for one probe per published event: an open-addressing table of 16-byte slots (low half
// of the fingerprint, insertion sequence number) plus a ring, indexed by sequence number, with
// the high half and the location. An entry older than the window or the cap is not erased; it is
// stale by its sequence number, skipped by lookups and reused by inserts, and the table is
// rebuilt from its live entries when stale ones fill a quarter of it. Prefetch() lets a batch
// overlap its cache misses.
class DedupeIndex {
 public:
  struct Location {
    uint32_t partition = 0;
    uint64_t offset = 0;
  };

  DedupeIndex(int64_t window_us, size_t max_ids);

  // Starts loading the table slot `id` hashes to.
  void Prefetch(const IdFingerprint& id) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[id.low & slot_mask_]);
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
  // Forgets ids older than the window.
  void Expire(int64_t now_us);
  // Ids currently remembered.
  size_t size() const { return static_cast<size_t>(next_seq_ - live_from_seq()); }

 private:
  static constexpr uint64_t kEmpty = 0;
  static constexpr uint64_t kErased = ~uint64_t{0};
  struct Slot {
    uint64_t key = 0;  // IdFingerprint::low
    uint64_t tag = kEmpty;  // sequence number + 1, kEmpty or kErased
  };
  struct Seen {
    uint64_t high = 0;  // IdFingerprint::high
    uint64_t offset = 0;
    uint32_t partition = 0;
  };
  struct Mark {
    uint64_t first_seq;  // first entry inserted with this ingest time
    int64_t ingest_us;
  };

  uint64_t live_from_seq() const {
    uint64_t by_cap = next_seq_ > max_ids_ ? next_seq_ - max_ids_ : 0;
    return by_cap > expired_before_seq_ ? by_cap : expired_before_seq_;
  }
  bool Live(const Slot& s) const {
    return s.tag != kEmpty && s.tag != kErased && s.tag - 1 >= live_from_seq();
  }
  // Index of the live slot holding `id`, or -1.
  int64_t FindSlot(const IdFingerprint& id) const;
  // Rebuilds the table with `ring_capacity` ring entries and twice as many slots.
  void Rebuild(size_t ring_capacity);

  const int64_t window_us_;
  const uint64_t max_ids_;
  std::vector<Slot> slots_;
  uint64_t slot_mask_ = 0;
  uint64_t occupied_ = 0;  // slots not kEmpty
  std::vector<Seen> ring_;
  uint64_t ring_mask_ = 0;
  std::deque<Mark> marks_;           // ingest time of each run of entries, oldest first
  uint64_t next_seq_ = 0;            // sequence number of the next insert
  uint64_t expired_before_seq_ = 0;  // entries below this are past the window
};

}  // namespace nodata::broker
