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

PartitionId PartitionFor(std::string_view key, std::string_view id, uint32_t partitions) {
  return PartitionId(static_cast<uint32_t>(Fnv1a(key.empty() ? id : key) % partitions));
}

IdGenerator::IdGenerator() {
  std::random_device rd;
  uint64_t r = (uint64_t{rd()} << 32) ^ rd();
  prefix_ = fmt::format("{:012x}-", r & 0xffffffffffffull);
}

std::string IdGenerator::Next() {
  return StrCat(prefix_, counter_.fetch_add(1, std::memory_order_relaxed));
}

// Completion of one Publish call across the partitions it waits on. Held by shared_ptr: each
// partition's acknowledgement callback, on whichever sync thread, holds a reference.
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

  // Group by topic, keeping request order within each group.
  std::vector<std::pair<std::shared_ptr<Topic>, std::vector<uint32_t>>> groups;
  if (single_topic) {
    auto topic = topics_.FindOrCreate(events[0].topic);
    if (!topic.ok()) {
      std::move(done)(topic.status(), {});
      return;
    }
    std::vector<uint32_t> all(events.size());
    for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    groups.emplace_back(std::move(*topic), std::move(all));
  } else {
    absl::flat_hash_map<absl::string_view, size_t> group_of;
    for (uint32_t i = 0; i < events.size(); ++i) {
      auto [it, inserted] = group_of.try_emplace(Absl(events[i].topic), groups.size());
      if (inserted) {
        auto topic = topics_.FindOrCreate(events[i].topic);
        if (!topic.ok()) {
          std::move(done)(topic.status(), {});
          return;
        }
        groups.emplace_back(std::move(*topic), std::vector<uint32_t>{});
      }
      groups[it->second].second.push_back(i);
    }
  }

  // Keys and data against the formats their topics declare, before anything of the batch is
  // stored.
  for (const auto& [topic, indices] : groups) {
    absl::Status s = CheckFormats(*topic, events, indices);
    if (!s.ok()) {
      std::move(done)(std::move(s), {});
      return;
    }
  }

  auto state = std::make_shared<State>(events.size(), std::move(done));
  std::vector<std::pair<uint32_t, uint64_t>> waits;  // partition, end offset
  for (auto& [topic, indices] : groups) {
    waits.clear();
    absl::Status s = AppendToTopic(*topic, events, indices, *state, &waits);
    if (!s.ok()) {
      if (&topic != &groups.front().first) {
        s = absl::Status(s.code(), StrCat(ToStd(s.message()),
                                          "; the batch's events of earlier topics were stored"));
      }
      state->Fail(std::move(s));
      break;
    }
    for (const auto& [partition, end] : waits) {
      state->pending.fetch_add(1, std::memory_order_relaxed);
      topic->parts[partition]->WhenAcked(Offset(end), [state](absl::Status st) {
        state->Complete(std::move(st));
      });
    }
  }
  state->Complete(absl::OkStatus());
}

absl::Status Publisher::CheckFormats(const Topic& topic, absl::Span<const EventIn> events,
                                     const std::vector<uint32_t>& indices) {
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
                                      const std::vector<uint32_t>& indices, State& state,
                                      std::vector<std::pair<uint32_t, uint64_t>>* waits) {
  // Sized outside the lock; a grow in between (rare) resizes them under it.
  uint32_t n = topic.count();
  std::vector<std::vector<RecordView>> views(n);
  std::vector<std::vector<uint32_t>> owners(n);  // position in `indices` of each view
  std::vector<IdFingerprint> fingerprints(indices.size());  // by position in `indices`
  std::vector<uint64_t> wait_end(n, 0);
  std::vector<uint64_t> next(n);
  uint64_t dups = 0;

  // A topic opened at start takes publishes once its dedupe state is restored.
  absl::MutexLock lock(&topic.mu, absl::Condition(&topic.dedupe_restored));
  if (topic.deleted) return absl::NotFoundError(StrCat("topic \"", topic.name, "\" was deleted"));
  if (!topic.dedupe_status.ok()) return topic.dedupe_status;
  // The count that routes this batch is read under topic.mu, which a grow holds to raise it:
  // routing and appends use one count, and a key's events keep their order across a grow.
  if (const uint32_t now_n = topic.count(); now_n != n) {
    n = now_n;
    views.resize(n);
    owners.resize(n);
    wait_end.resize(n, 0);
    next.resize(n);
  }
  // Appends to the topic's partitions happen only under topic.mu, so the offsets each record
  // will get are known now, and dedupe needs one probe per event: claim the id at its future
  // location, or find where it already is (stored earlier or earlier in this batch).
  // Read when a partition is first routed to: a batch spread over many topics touches few of
  // each topic's partitions.
  constexpr uint64_t kUnread = UINT64_MAX;
  std::fill(next.begin(), next.end(), kUnread);
  const int64_t now = NowMicros();
  topic.dedupe.Expire(now);
  for (size_t j = 0; j < indices.size(); ++j) {
    const uint32_t i = indices[j];
    std::string_view id = events[i].id;
    if (id.empty()) {
      state.acks[i].assigned_id = ids_.Next();
      id = state.acks[i].assigned_id;
    }
    fingerprints[j] = IdFingerprint::Of(id);
  }
  // The dedupe lookups are cache misses: keep a few in flight ahead of the one being decided.
  constexpr size_t kPrefetchDistance = 8;
  for (size_t j = 0; j < std::min(kPrefetchDistance, indices.size()); ++j) {
    topic.dedupe.Prefetch(fingerprints[j]);
  }
  for (size_t j = 0; j < indices.size(); ++j) {
    if (j + kPrefetchDistance < indices.size()) {
      topic.dedupe.Prefetch(fingerprints[j + kPrefetchDistance]);
    }
    const uint32_t i = indices[j];
    const EventIn& e = events[i];
    AckOut& ack = state.acks[i];
    // Every event has an id, its own or one the server assigned (which the producer learns
    // from the Ack and may publish again): all are deduped alike.
    const bool assigned = !ack.assigned_id.empty();
    std::string_view id = assigned ? std::string_view(ack.assigned_id) : e.id;
    const uint32_t p = PartitionFor(e.key, id, n).value();
    if (next[p] == kUnread) next[p] = topic.parts[p]->end_offset().value();
    std::optional<DedupeIndex::Location> known =
        topic.dedupe.FindOrInsert(fingerprints[j], {p, next[p]}, now);
    if (known) {
      ack.partition = PartitionId(known->partition);
      ack.offset = Offset(known->offset);
      ack.duplicate = true;
      wait_end[known->partition] = std::max(wait_end[known->partition], known->offset + 1);
      ++dups;
      continue;
    }
    const uint32_t flags = assigned ? kFlagServerAssignedId : 0;
    ack.partition = PartitionId(p);
    ack.offset = Offset(next[p]++);
    RecordView v;
    v.id = id;
    v.key = e.key;
    v.data = e.data;
    v.ingest_time_us = now;
    v.timestamp_us = e.timestamp_us.value_or(now);
    v.flags = flags;
    v.headers = e.headers;
    views[p].push_back(v);
    owners[p].push_back(static_cast<uint32_t>(j));
  }

  absl::Status status;
  uint64_t stored = 0;
  uint64_t stored_bytes = 0;
  for (uint32_t p = 0; p < n; ++p) {
    if (views[p].empty()) continue;
    absl::StatusOr<Offset> first =
        status.ok() ? topic.parts[p]->Append(views[p]) : absl::StatusOr<Offset>(status);
    const AckOut& first_ack = state.acks[indices[owners[p][0]]];
    if (first.ok() && *first != first_ack.offset) {
      first = absl::InternalError(StrCat("topic ", topic.name, " partition ", p, ": offset ",
                                         *first, " where ", first_ack.offset,
                                         " was expected"));
    }
    if (!first.ok()) {
      // Not stored: forget the ids claimed for this partition. Partitions appended before keep
      // their records and ids, so a retry with the same ids is answered as duplicates.
      for (size_t k = 0; k < views[p].size(); ++k) topic.dedupe.Erase(fingerprints[owners[p][k]]);
      if (status.ok()) {
        status = absl::Status(first.status().code(),
                              StrCat("topic ", topic.name, " partition ", p, ": ",
                                     ToStd(first.status().message())));
      }
      continue;
    }
    for (const RecordView& v : views[p]) {
      stored_bytes += v.id.size() + v.key.size() + v.data.size();
    }
    stored += views[p].size();
    wait_end[p] = std::max(wait_end[p], next[p]);
  }
  topic.events_in->Increment(static_cast<double>(stored));
  topic.bytes_in->Increment(static_cast<double>(stored_bytes));
  if (!status.ok()) {
    if (stored == 0) return status;
    return absl::Status(status.code(),
                        StrCat(ToStd(status.message()), "; ", stored,
                               " events of the batch were stored before this (publishing them "
                               "again with the same ids answers duplicates)"));
  }
  topic.duplicates->Increment(static_cast<double>(dups));
  for (uint32_t p = 0; p < n; ++p) {
    if (wait_end[p] > 0) waits->emplace_back(p, wait_end[p]);
  }
  return absl::OkStatus();
}


}  // namespace nodata::broker
