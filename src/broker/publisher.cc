#include "broker/internal/publisher.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "broker/dedupe.h"
#include "common/names.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "fmt/format.h"
#include "prometheus/counter.h"

namespace nodata::broker {
namespace {

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // splitmix64 finalizer: spreads short keys over all bits before the modulo.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

namespace {

// The routing rule, in two steps so that the publish path hashes outside the topic's lock and
// takes the modulo under it, where the partition count is read.
uint64_t RoutingHash(std::string_view key, std::string_view id) {
  return Fnv1a(key.empty() ? id : key);
}
uint32_t Route(uint64_t hash, uint32_t partitions) {
  return static_cast<uint32_t>(hash % partitions);
}

}  // namespace

PartitionId PartitionFor(std::string_view key, std::string_view id, uint32_t partitions) {
  return PartitionId(Route(RoutingHash(key, id), partitions));
}

IdGenerator::IdGenerator() {
  std::random_device rd;
  uint64_t r = (uint64_t{rd()} << 32) ^ rd();
  prefix_ = fmt::format("{:012x}-", r & 0xffffffffffffull);
}

std::string IdGenerator::Next() {
  return StrCat(prefix_, counter_.fetch_add(1, std::memory_order_relaxed));
}

// Completion of one Publish call across what it waits on: the journal (one wait for every
// partition appended through it) and partitions acknowledged on their own. Held by shared_ptr:
// each acknowledgement callback, on whichever thread, holds a reference.
struct Publisher::State {
  explicit State(size_t n, PublishDone d) : acks(n), done(std::move(d)) {}

  // Records an error; the first one is what the caller gets.
  void Fail(absl::Status s) {
    absl::MutexLock lock(&mu);
    if (status.ok()) status = std::move(s);
  }

  // Releases one reference of `pending`; the last one calls `done`.
  void Complete(absl::Status s) {
    if (!s.ok()) Fail(std::move(s));
    if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      absl::Status final_status;
      {
        absl::MutexLock lock(&mu);
        final_status = status;
      }
      std::move(done)(final_status, final_status.ok() ? std::move(acks) : std::vector<AckOut>{});
    }
  }

  std::atomic<int> pending{1};  // one for the caller until all waits are registered
  absl::Mutex mu;
  absl::Status status ABSL_GUARDED_BY(mu);
  std::vector<AckOut> acks;
  PublishDone done;
};

// The publish path's working memory, kept per thread: once its vectors have grown to the
// batches a thread sees, a publish allocates nothing here, however many topics and partitions
// a batch spreads over. Per-partition entries are sized to the largest partition count seen
// and reset after each topic (only the ones it touched).
struct Publisher::Scratch {
  struct Group {
    std::shared_ptr<Topic> topic;
    uint32_t begin = 0;  // its events: order[begin, end)
    uint32_t end = 0;
  };
  std::vector<Group> groups;
  std::vector<uint32_t> group_of;  // by event
  std::vector<std::string_view> names;  // by group: its topic's name
  std::vector<std::shared_ptr<Topic>> found;
  std::vector<uint32_t> order;     // event indices grouped by topic, request order within

  // By event.
  std::vector<IdFingerprint> fingerprints;
  std::vector<uint64_t> hashes;  // RoutingHash
  static constexpr uint32_t kRouted = UINT32_MAX;
  std::vector<uint32_t> chosen;  // the partition the publisher chose, or kRouted

  // The partition of event `i` in a topic of `n` partitions.
  uint32_t PartitionOf(uint32_t i, uint32_t n) const {
    return chosen[i] != kRouted ? chosen[i] : Route(hashes[i], n);
  }

  // By position in one topic's group.
  std::vector<uint32_t> partition;  // where it is appended, or kDuplicate

  // By partition.
  static constexpr uint64_t kUnread = UINT64_MAX;
  std::vector<uint64_t> next;      // the offset its next record gets; kUnread until routed to
  std::vector<uint32_t> count;     // records of the batch for it
  std::vector<uint32_t> cursor;    // where its views go, then their end
  std::vector<uint64_t> dup_end;   // one past the furthest duplicate found in it
  std::vector<uint32_t> touched;   // partitions routed to, in first-use order
  std::vector<uint32_t> dup_touched;

  std::vector<RecordView> views;  // the records to append, grouped by partition
  std::vector<uint32_t> owners;   // position in the group of each view
  std::vector<std::pair<uint32_t, uint64_t>> waits;  // partition, end offset

  bool in_use = false;

  void Size(uint32_t n) {
    if (next.size() >= n) return;
    next.resize(n, kUnread);
    count.resize(n, 0);
    cursor.resize(n, 0);
    dup_end.resize(n, 0);
  }
};

namespace {

constexpr uint32_t kDuplicate = UINT32_MAX;

// The calling thread's scratch, or a fresh one if a callback of this thread's publish
// publishes again.
class ScratchLease {
 public:
  explicit ScratchLease(Publisher::Scratch& mine) {
    if (mine.in_use) {
      own_ = std::make_unique<Publisher::Scratch>();
      scratch_ = own_.get();
    } else {
      scratch_ = &mine;
    }
    scratch_->in_use = true;
  }
  ~ScratchLease() {
    scratch_->groups.clear();  // holds topics alive
    scratch_->found.clear();
    scratch_->in_use = false;
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  Publisher::Scratch& operator*() const { return *scratch_; }

 private:
  std::unique_ptr<Publisher::Scratch> own_;
  Publisher::Scratch* scratch_;
};

// The events of a group, by index into the batch.
absl::Span<const uint32_t> Indices(const Publisher::Scratch& s,
                                   const Publisher::Scratch::Group& g) {
  return absl::MakeConstSpan(s.order).subspan(g.begin, g.end - g.begin);
}

// A batch spread over many topics appends to each of them once or a few times, and each append
// starts with cache misses on objects reached one through another: the topic, the chunk of its
// partition slots, the slot, the partition, its log. The append loop walks that chain for the
// groups ahead of the one it appends, one step per group appended, so that a group's objects
// are loaded by the time it comes. Steps, by how many groups ahead they run:
constexpr uint32_t kAheadTopic = 5;      // the topic's members
constexpr uint32_t kAheadChunk = 4;      // its dedupe slots and partition chunk pointers
constexpr uint32_t kAheadSlot = 3;       // the partition slots
constexpr uint32_t kAheadPartition = 2;  // the partitions
constexpr uint32_t kAheadLog = 1;        // the partitions' logs
// Events of a group whose partitions and dedupe slots are prefetched (a group of more events
// prefetches its own dedupe slots under the lock, see AppendToTopic).
constexpr uint32_t kAheadEvents = 4;

// One step of the walk for group `g` (none past the last group). Reads the topic's partition
// count and slots, which need no lock below the count, and the dedupe table's address copy.
void PrefetchAhead(const Publisher::Scratch& s, size_t g, uint32_t step)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (g >= s.groups.size()) return;
  const Publisher::Scratch::Group& group = s.groups[g];
  const Topic& topic = *group.topic;
  if (step == kAheadTopic) {
    topic.PrefetchForPublish();
    return;
  }
  if (!topic.is_open()) return;
  const uint32_t n = topic.count();
  const uint32_t end = group.begin + std::min(group.end - group.begin, kAheadEvents);
  for (uint32_t k = group.begin; k < end; ++k) {
    const uint32_t i = s.order[k];
    const uint32_t p = s.PartitionOf(i, n);
    if (p >= n) continue;  // refused under the topic's lock
    switch (step) {
      case kAheadChunk:
        topic.dedupe.PrefetchUnlocked(s.fingerprints[i]);
        topic.parts.PrefetchChunk(p);
        break;
      case kAheadSlot:
        topic.parts.PrefetchSlot(p);
        break;
      case kAheadPartition:
        if (const storage::Partition* part = topic.parts.Peek(p)) __builtin_prefetch(part);
        break;
      case kAheadLog:
        if (const storage::Partition* part = topic.parts.Peek(p)) part->PrefetchForAppend();
        break;
      default:
        break;
    }
  }
}

}  // namespace

void Publisher::Publish(absl::Span<const EventIn> events, PublishDone done) {
  if (events.empty()) {
    std::move(done)(absl::InvalidArgumentError("the batch has no events"), {});
    return;
  }
  if (events.size() > options_.max_batch_events) {
    std::move(done)(absl::InvalidArgumentError(StrCat("the batch has ", events.size(),
                                                      " events; the limit is ",
                                                      options_.max_batch_events)),
                    {});
    return;
  }
  // Validate everything before storing anything.
  uint64_t batch_bytes = 0;
  std::string_view checked_topic;
  bool single_topic = true;
  for (size_t i = 0; i < events.size(); ++i) {
    const EventIn& e = events[i];
    if (i == 0 || e.topic != checked_topic) {
      absl::Status s = ValidateTopicName(e.topic);
      // A name no new topic may have is refused here unless its topic exists, before any
      // topic of the batch is created.
      if (s.ok() && !ValidateNewName("topic", e.topic).ok() && !topics_.Find(e.topic).ok()) {
        s = ValidateNewName("topic", e.topic);
      }
      if (!s.ok()) {
        std::move(done)(absl::InvalidArgumentError(StrCat("event ", i, ": ", ToStd(s.message()))),
                        {});
        return;
      }
      if (i > 0) single_topic = false;
      checked_topic = e.topic;
    }
    uint64_t size = e.topic.size() + e.id.size() + e.key.size() + e.data.size();
    for (const auto& [k, v] : e.headers) size += k.size() + v.size();
    if (size > options_.max_event_bytes) {
      std::move(done)(absl::InvalidArgumentError(StrCat("event ", i, " is ", size,
                                                        " bytes; the limit is ",
                                                        options_.max_event_bytes)),
                      {});
      return;
    }
    batch_bytes += size;
  }
  if (batch_bytes > options_.max_batch_bytes) {
    std::move(done)(absl::InvalidArgumentError(StrCat("the batch is ", batch_bytes,
                                                      " bytes; the limit is ",
                                                      options_.max_batch_bytes)),
                    {});
    return;
  }

  thread_local Scratch mine;
  ScratchLease lease(mine);
  Scratch& s = *lease;
  const auto n_events = static_cast<uint32_t>(events.size());

  // Group by topic, keeping request order within each group.
  s.order.resize(n_events);
  if (single_topic) {
    auto topic = topics_.FindOrCreate(events[0].topic);
    if (!topic.ok()) {
      std::move(done)(topic.status(), {});
      return;
    }
    for (uint32_t i = 0; i < n_events; ++i) s.order[i] = i;
    s.groups.push_back(Scratch::Group{std::move(*topic), 0, n_events});
  } else {
    absl::flat_hash_map<absl::string_view, uint32_t> group_index;
    group_index.reserve(n_events);  // one allocation, no rehash
    s.group_of.resize(n_events);
    s.names.clear();
    for (uint32_t i = 0; i < n_events; ++i) {
      auto [it, inserted] =
          group_index.try_emplace(Absl(events[i].topic), static_cast<uint32_t>(s.groups.size()));
      if (inserted) {
        s.groups.push_back(Scratch::Group{nullptr, 0, 0});
        s.names.push_back(events[i].topic);
      }
      s.group_of[i] = it->second;
      ++s.groups[it->second].end;  // its size, for now
    }
    // The topics, in the order their groups were made.
    if (absl::Status st = topics_.FindOrCreateAll(s.names, &s.found); !st.ok()) {
      std::move(done)(std::move(st), {});
      return;
    }
    for (size_t g = 0; g < s.groups.size(); ++g) s.groups[g].topic = std::move(s.found[g]);
    uint32_t at = 0;
    for (Scratch::Group& g : s.groups) {
      g.begin = at;
      at += g.end;
      g.end = g.begin;  // the fill cursor, which ends at the group's end
    }
    for (uint32_t i = 0; i < n_events; ++i) s.order[s.groups[s.group_of[i]].end++] = i;
  }

  // Keys and data against the formats their topics declare, before anything of the batch is
  // stored.
  for (const Scratch::Group& g : s.groups) {
    absl::Status st = CheckFormats(*g.topic, events, Indices(s, g));
    if (!st.ok()) {
      std::move(done)(std::move(st), {});
      return;
    }
  }

  auto state = std::make_shared<State>(events.size(), std::move(done));
  // Ids (assigned where missing), their fingerprints and routing hashes, outside any lock.
  s.fingerprints.resize(n_events);
  s.hashes.resize(n_events);
  s.chosen.resize(n_events);
  for (uint32_t i = 0; i < n_events; ++i) {
    const EventIn& e = events[i];
    std::string_view id = e.id;
    if (id.empty()) {
      state->acks[i].assigned_id = ids_.Next();
      id = state->acks[i].assigned_id;
    }
    s.fingerprints[i] = IdFingerprint::Of(id);
    s.hashes[i] = RoutingHash(e.key, id);
    s.chosen[i] = e.partition.value_or(Scratch::kRouted);
  }

  uint64_t journal_lsn = 0;  // the furthest journal position of the batch's appends
  const size_t n_groups = s.groups.size();
  if (n_groups > 1) {
    // The walk's first steps for the first groups (as if groups before them were appended).
    for (uint32_t before = kAheadTopic; before >= 1; --before) {
      for (uint32_t step = kAheadTopic; step >= before; --step) {
        PrefetchAhead(s, step - before, step);
      }
    }
  }
  for (size_t gi = 0; gi < n_groups; ++gi) {
    const Scratch::Group& g = s.groups[gi];
    if (n_groups > 1) {
      for (uint32_t step = kAheadTopic; step >= kAheadLog; --step) {
        PrefetchAhead(s, gi + step, step);
      }
    }
    s.waits.clear();
    absl::Status st = AppendToTopic(*g.topic, events, Indices(s, g), *state, s, &journal_lsn);
    if (!st.ok()) {
      if (&g != &s.groups.front()) {
        st = absl::Status(st.code(), StrCat(ToStd(st.message()),
                                            "; the batch's events of earlier topics were stored"));
      }
      state->Fail(std::move(st));
      break;
    }
    for (const auto& [partition, end] : s.waits) {
      state->pending.fetch_add(1, std::memory_order_relaxed);
      g.topic->parts[partition]->WhenAcked(Offset(end), [state](absl::Status st) {
        state->Complete(std::move(st));
      });
    }
  }
  if (journal_lsn != 0) {
    // One wait for every partition the batch was journaled to.
    state->pending.fetch_add(1, std::memory_order_relaxed);
    options_.log.journal->WhenDurable(journal_lsn, [state](absl::Status st) {
      state->Complete(std::move(st));
    });
  }
  state->Complete(absl::OkStatus());
}

absl::Status Publisher::CheckFormats(const Topic& topic, absl::Span<const EventIn> events,
                                     absl::Span<const uint32_t> indices) {
  if (topic.key_format == DataFormat::kBytes && topic.data_format == DataFormat::kBytes) {
    return absl::OkStatus();
  }
  for (uint32_t i : indices) {
    // An empty key is no key (stored as null), whatever the format.
    absl::Status s = events[i].key.empty() ? absl::OkStatus()
                                           : CheckDataFormat(topic.key_format, events[i].key);
    std::string_view what = "key";
    if (s.ok()) {
      s = CheckDataFormat(topic.data_format, events[i].data);
      what = "data";
    }
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          StrCat("event ", i, ": ", what, " is ", ToStd(s.message()), " (topic \"", topic.name,
                 "\" has ", what, " format ",
                 DataFormatName(what == "key" ? topic.key_format : topic.data_format), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status Publisher::AppendToTopic(Topic& topic, absl::Span<const EventIn> events,
                                      absl::Span<const uint32_t> indices, State& state,
                                      Scratch& s, uint64_t* journal_lsn) {
  const size_t m = indices.size();
  s.partition.resize(m);
  uint64_t dups = 0;

  // A topic opened at start takes publishes once its dedupe state is restored: here, unless the
  // restore is under way on another thread (then this waits for it).
  dedupe_.AwaitRestored(topic);
  absl::MutexLock lock(&topic.mu, absl::Condition(&topic.dedupe_restored));
  if (topic.deleted) return absl::NotFoundError(StrCat("topic \"", topic.name, "\" was deleted"));
  if (!topic.dedupe_status.ok()) return topic.dedupe_status;
  // The count that routes this batch is read under topic.mu, which a grow holds to raise it:
  // routing and appends use one count, and a key's events keep their order across a grow.
  const uint32_t n = topic.count();
  for (uint32_t i : indices) {
    if (s.chosen[i] != Scratch::kRouted) {
      RETURN_IF_ERROR(CheckPartition(topic.name, n, PartitionId(s.chosen[i])));
    }
  }
  s.Size(n);
  s.touched.clear();
  s.dup_touched.clear();
  // Appends to the topic's partitions happen only under topic.mu, so the offsets each record
  // will get are known now, and dedupe needs one probe per event: claim the id at its future
  // location, or find where it already is (stored earlier or earlier in this batch).
  // A partition's end is read when it is first routed to: a batch spread over many topics
  // touches few of each topic's partitions.
  const int64_t now = NowMicros();
  topic.dedupe.Expire(now);
  // The dedupe lookups are cache misses: keep a few in flight ahead of the one being decided.
  constexpr size_t kPrefetchDistance = 8;
  for (size_t j = 0; j < std::min(kPrefetchDistance, m); ++j) {
    topic.dedupe.Prefetch(s.fingerprints[indices[j]]);
  }
  for (size_t j = 0; j < m; ++j) {
    if (j + kPrefetchDistance < m) {
      topic.dedupe.Prefetch(s.fingerprints[indices[j + kPrefetchDistance]]);
    }
    AckOut& ack = state.acks[indices[j]];
    const uint32_t p = s.PartitionOf(indices[j], n);
    if (s.next[p] == Scratch::kUnread) {
      s.next[p] = topic.parts[p]->end_offset().value();
      s.touched.push_back(p);
    }
    std::optional<DedupeIndex::Location> known =
        topic.dedupe.FindOrInsert(s.fingerprints[indices[j]], {p, s.next[p]}, now);
    if (known) {
      // Every event has an id, its own or one the server assigned (which the producer learns
      // from the Ack and may publish again): all are deduped alike.
      ack.partition = PartitionId(known->partition);
      ack.offset = Offset(known->offset);
      ack.duplicate = true;
      uint64_t& end = s.dup_end[known->partition];
      if (end == 0) s.dup_touched.push_back(known->partition);
      end = std::max(end, known->offset + 1);
      s.partition[j] = kDuplicate;
      ++dups;
      continue;
    }
    ack.partition = PartitionId(p);
    ack.offset = Offset(s.next[p]++);
    s.partition[j] = p;
    ++s.count[p];
  }

  // The records laid out by partition, in request order within each.
  uint32_t total = 0;
  for (uint32_t p : s.touched) {
    s.cursor[p] = total;
    total += s.count[p];
  }
  s.views.resize(total);
  s.owners.resize(total);
  for (size_t j = 0; j < m; ++j) {
    const uint32_t p = s.partition[j];
    if (p == kDuplicate) continue;
    const uint32_t i = indices[j];
    const EventIn& e = events[i];
    const AckOut& ack = state.acks[i];
    const uint32_t k = s.cursor[p]++;
    RecordView& v = s.views[k];
    v.id = ack.assigned_id.empty() ? e.id : std::string_view(ack.assigned_id);
    v.key = e.key;
    v.data = e.data;
    v.ingest_time_us = now;
    v.timestamp_us = e.timestamp_us.value_or(now);
    v.flags = ack.assigned_id.empty() ? 0 : kFlagServerAssignedId;
    v.headers = e.headers;
    s.owners[k] = static_cast<uint32_t>(j);
  }

  absl::Status status;
  uint64_t stored = 0;
  uint64_t stored_bytes = 0;
  for (uint32_t p : s.touched) {
    const uint32_t c = s.count[p];
    if (c == 0) continue;
    const uint32_t begin = s.cursor[p] - c;
    const auto views = absl::MakeConstSpan(s.views).subspan(begin, c);
    uint64_t lsn = 0;
    absl::StatusOr<Offset> first =
        status.ok() ? topic.parts[p]->Append(views, &lsn) : absl::StatusOr<Offset>(status);
    const AckOut& first_ack = state.acks[indices[s.owners[begin]]];
    if (first.ok() && *first != first_ack.offset) {
      first = absl::InternalError(StrCat("topic ", topic.name, " partition ", p, ": offset ",
                                         *first, " where ", first_ack.offset,
                                         " was expected"));
    }
    if (!first.ok()) {
      // Not stored: forget the ids claimed for this partition. Partitions appended before keep
      // their records and ids, so a retry with the same ids is answered as duplicates.
      for (uint32_t k = begin; k < begin + c; ++k) {
        topic.dedupe.Erase(s.fingerprints[indices[s.owners[k]]]);
      }
      if (status.ok()) {
        status = absl::Status(first.status().code(),
                              StrCat("topic ", topic.name, " partition ", p, ": ",
                                     ToStd(first.status().message())));
      }
      continue;
    }
    for (const RecordView& v : views) stored_bytes += v.id.size() + v.key.size() + v.data.size();
    stored += c;
    if (lsn != 0) {
      *journal_lsn = std::max(*journal_lsn, lsn);  // acknowledged by the journal
    } else {
      s.waits.emplace_back(p, s.next[p]);
    }
  }
  // Duplicates wait for the records they point at (stored by an earlier publish, possibly
  // not yet acknowledged, or by this one).
  for (uint32_t p : s.dup_touched) {
    s.waits.emplace_back(p, s.dup_end[p]);
    s.dup_end[p] = 0;
  }
  for (uint32_t p : s.touched) {
    s.next[p] = Scratch::kUnread;
    s.count[p] = 0;
  }
  if (stored > 0) {
    topic.events_in->Increment(static_cast<double>(stored));
    topic.bytes_in->Increment(static_cast<double>(stored_bytes));
  }
  if (!status.ok()) {
    if (stored == 0) return status;
    return absl::Status(status.code(),
                        StrCat(ToStd(status.message()), "; ", stored,
                               " events of the batch were stored before this (publishing them "
                               "again with the same ids answers duplicates)"));
  }
  if (dups > 0) topic.duplicates->Increment(static_cast<double>(dups));
  return absl::OkStatus();
}


}  // namespace nodata::broker
