#include "broker/dedupe.h"

#include <xxhash.h>

#include <sys/mman.h>

#include <new>
#include <type_traits>

namespace nodata::broker {

IdFingerprint IdFingerprint::Of(std::string_view id) {
  XXH128_hash_t h = XXH3_128bits(id.data(), id.size());
  return IdFingerprint{h.low64, h.high64};
}

namespace {
constexpr size_t kMinCapacity = 1024;

size_t PowerOfTwoAtLeast(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}
}  // namespace

void DedupeIndex::Table::Unmap::operator()(Slot* p) const { ::munmap(p, bytes); }

std::unique_ptr<DedupeIndex::Table::Slot[], DedupeIndex::Table::Unmap>
DedupeIndex::Table::Allocate(size_t capacity) {
  static_assert(std::is_trivially_copyable_v<Slot> && kEmpty == 0);
  const size_t bytes = capacity * sizeof(Slot);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();  // as std::vector would: out of memory
  constexpr size_t kHugePage = 2u << 20;
  if (bytes >= kHugePage) ::madvise(p, bytes, MADV_HUGEPAGE);  // a hint; fine if refused
  return std::unique_ptr<Slot[], Unmap>(static_cast<Slot*>(p), Unmap{bytes});
}

void DedupeIndex::Table::Reset(size_t capacity) {
  slots_.reset();
  if (capacity > 0) slots_ = Allocate(capacity);
  capacity_ = capacity;
  mask_ = capacity == 0 ? 0 : capacity - 1;
  count_ = 0;
  min_seq_ = kEmpty;
}

DedupeIndex::Table::Slot* DedupeIndex::Table::Find(const IdFingerprint& id) {
  if (capacity_ == 0) return nullptr;
  for (uint64_t i = id.low & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.seq == kEmpty) return nullptr;
    if (s.low == id.low && s.high == id.high && s.seq != kErased) return &s;
  }
}

void DedupeIndex::Table::Insert(const IdFingerprint& id, uint64_t seq, Location location) {
  if ((count_ + 1) * 2 > capacity_) {
    std::unique_ptr<Slot[], Unmap> old = std::move(slots_);
    const size_t old_capacity = capacity_;
    const size_t count = count_;
    const uint64_t min_seq = min_seq_;
    Reset(std::max(kMinCapacity, old_capacity * 2));
    for (size_t k = 0; k < old_capacity; ++k) {
      const Slot& s = old[k];
      if (s.seq == kEmpty || s.seq == kErased) continue;
      uint64_t i = s.low & mask_;
      while (slots_[i].seq != kEmpty) i = (i + 1) & mask_;
      slots_[i] = s;
    }
    count_ = count;
    min_seq_ = min_seq;
  }
  uint64_t i = id.low & mask_;
  while (slots_[i].seq != kEmpty) i = (i + 1) & mask_;
  slots_[i] = Slot{id.low, id.high, location.offset, seq + 1, location.partition};
  ++count_;
  if (min_seq_ == kEmpty) min_seq_ = seq + 1;
}

DedupeIndex::DedupeIndex(int64_t window_us, size_t max_ids)
    : window_us_(window_us), max_ids_(max_ids), generation_ids_((max_ids + 1) / 2) {}

std::optional<DedupeIndex::Location> DedupeIndex::Find(const IdFingerprint& id) const {
  for (const Table* t : {&current_, &previous_}) {
    const Table::Slot* s = t->Find(id);
    if (Live(s)) return Location{s->partition, s->offset};
  }
  return std::nullopt;
}

std::optional<DedupeIndex::Location> DedupeIndex::FindOrInsert(const IdFingerprint& id,
                                                               Location location,
                                                               int64_t ingest_us) {
  if (max_ids_ == 0) return std::nullopt;
  Table::Slot* in_current = current_.Find(id);
  if (Live(in_current)) return Location{in_current->partition, in_current->offset};
  const Table::Slot* in_previous = previous_.Find(id);
  if (Live(in_previous)) return Location{in_previous->partition, in_previous->offset};
  if (in_current != nullptr) {
    // Remembered once but expired: the id is new again, in its old slot.
    *in_current = Table::Slot{id.low, id.high, location.offset, next_seq_ + 1,
                              location.partition};
    NoteInsert(ingest_us);
    return std::nullopt;
  }
  if (current_.count() >= generation_ids_) {
    // The current generation is full: it becomes the previous one; the new one starts at the
    // size the last one grew to, so a warm topic never rehashes.
    const size_t capacity = current_.capacity();
    previous_ = std::move(current_);
    current_.Reset(capacity);
  }
  current_.Insert(id, next_seq_, location);
  NoteInsert(ingest_us);
  return std::nullopt;
}

void DedupeIndex::NoteInsert(int64_t ingest_us) {
  if (marks_.empty() || marks_.back().ingest_us != ingest_us) {
    marks_.push_back(Mark{next_seq_, ingest_us});
  }
  ++next_seq_;
}

void DedupeIndex::Erase(const IdFingerprint& id) {
  for (Table* t : {&current_, &previous_}) {
    if (Table::Slot* s = t->Find(id)) s->seq = Table::kErased;  // keeps probe chains intact
  }
}

void DedupeIndex::Expire(int64_t now_us) {
  const int64_t cutoff = now_us - window_us_;
  while (!marks_.empty() && marks_.front().ingest_us < cutoff) {
    marks_.pop_front();
    expired_before_seq_ = marks_.empty() ? next_seq_ : marks_.front().first_seq;
  }
  const uint64_t live_from = live_from_seq();
  while (marks_.size() > 1 && marks_[1].first_seq <= live_from) marks_.pop_front();
  // Give back the memory of generations that hold only expired ids.
  if (previous_.capacity() > 0 && (previous_.count() == 0 || current_.min_seq() == Table::kEmpty ||
                                   current_.min_seq() - 1 <= live_from)) {
    previous_.Reset(0);
  }
  if (current_.count() > 0 && live_from >= next_seq_) current_.Reset(0);
}

size_t DedupeIndex::size() const {
  size_t n = 0;
  for (const Table* t : {&current_, &previous_}) n += t->CountIf([this](const Table::Slot& s) {
    return Live(&s);
  });
  return n;
}

}  // namespace nodata::broker
