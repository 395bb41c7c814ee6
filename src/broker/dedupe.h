// The ids a topic has stored recently, for idempotent publishing.
#pragma once

#include <cstdint>
#include <deque>
#include <string_view>

#include <memory>
#include <optional>

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
// most `max_ids` (the oldest go first, a generation at a time). Not thread-safe: the topic's lock
// guards it.
//
// Built for a constant, small cost per published event and no pauses: two generations of
// open-addressing tables (32-byte slots). New ids go into the current generation; when it holds
// max_ids/2 ids it becomes the previous one and the old previous one is dropped whole, so there is
// no per-id eviction and no rebuild once a topic has warmed up. A lookup probes both generations;
// Prefetch() lets a batch overlap those cache misses. An id is remembered for at least the window
// unless at least max_ids/2 newer ids pushed its generation out; exactly max_ids at most.
class DedupeIndex {
 public:
  struct Location {
    uint32_t partition = 0;
    uint64_t offset = 0;
  };

  DedupeIndex(int64_t window_us, size_t max_ids);

  // Starts loading the slots `id` hashes to.
  void Prefetch(const IdFingerprint& id) const {
    current_.Prefetch(id);
    previous_.Prefetch(id);
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
  // Ids currently remembered (counts them: for tests and tools).
  size_t size() const;

 private:
  // One generation: linear probing, at most half full.
  class Table {
   public:
    struct Slot {
      uint64_t low = 0;
      uint64_t high = 0;
      uint64_t offset = 0;
      uint64_t seq = kEmpty;  // insertion sequence number + 1, or kEmpty / kErased
      uint32_t partition = 0;
    };
    static constexpr uint64_t kEmpty = 0;
    static constexpr uint64_t kErased = ~uint64_t{0};

    // Drops every entry; `capacity` slots (a power of two, or 0).
    void Reset(size_t capacity);
    void Prefetch(const IdFingerprint& id) const {
      if (capacity_ > 0) __builtin_prefetch(&slots_[id.low & mask_]);
    }
    Slot* Find(const IdFingerprint& id);
    const Slot* Find(const IdFingerprint& id) const {
      return const_cast<Table*>(this)->Find(id);
    }
    // Inserts an id known to be absent; grows when half full.
    void Insert(const IdFingerprint& id, uint64_t seq, Location location);
    size_t count() const { return count_; }
    template <typename Pred>
    size_t CountIf(Pred pred) const {
      size_t n = 0;
      for (size_t i = 0; i < capacity_; ++i) n += (slots_[i].seq != kEmpty && pred(slots_[i]));
      return n;
    }
    size_t capacity() const { return capacity_; }
    uint64_t min_seq() const { return min_seq_; }  // smallest seq + 1 inserted, or kEmpty

   private:
    // Anonymous memory: an all-zero slot is empty, and fresh pages come zeroed by the kernel on
    // first touch, so a new generation costs no pause to clear. Large tables ask for huge pages:
    // lookups are random, and 4 KiB pages would add a TLB miss to nearly every one.
    struct Unmap {
      Unmap() : bytes(0) {}
      explicit Unmap(size_t b) : bytes(b) {}
      void operator()(Slot* p) const;
      size_t bytes;
    };
    static std::unique_ptr<Slot[], Unmap> Allocate(size_t capacity);
    std::unique_ptr<Slot[], Unmap> slots_;
    size_t capacity_ = 0;
    uint64_t mask_ = 0;
    size_t count_ = 0;
    uint64_t min_seq_ = kEmpty;
  };
  struct Mark {
    uint64_t first_seq;  // first entry inserted with this ingest time
    int64_t ingest_us;
  };

  void NoteInsert(int64_t ingest_us);
  uint64_t live_from_seq() const {
    uint64_t by_cap = next_seq_ > max_ids_ ? next_seq_ - max_ids_ : 0;
    return by_cap > expired_before_seq_ ? by_cap : expired_before_seq_;
  }
  bool Live(const Table::Slot* s) const {
    return s != nullptr && s->seq != Table::kErased && s->seq - 1 >= live_from_seq();
  }

  const int64_t window_us_;
  const uint64_t max_ids_;
  const size_t generation_ids_;
  Table current_;
  Table previous_;
  std::deque<Mark> marks_;           // ingest time of each run of entries, oldest first
  uint64_t next_seq_ = 0;            // sequence number of the next insert
  uint64_t expired_before_seq_ = 0;  // entries below this are past the window
};

}  // namespace nodata::broker
