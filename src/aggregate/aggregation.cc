#include "aggregate/aggregation.h"

#include <algorithm>
#include <cmath>
#include <future>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "components/abi.h"
#include "simdjson.h"
#include "spdlog/spdlog.h"
#include "xxhash.h"

namespace nodata::aggregate {
namespace {

// Pending results and late records past which a checkpoint comes early.
constexpr size_t kMaxPendingOutputs = 50'000;
// Updates a watcher holds before it drops the oldest.
constexpr size_t kWatchQueueLimit = 10'000;
// A window's memory beyond its key and accumulators, roughly (for the cache bound).
constexpr uint64_t kWindowOverhead = sizeof(void*) * 16;

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::string Rfc3339(int64_t us) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::FromUnixMicros(us), absl::UTCTimeZone());
}

// A stable id for a window's result: the same window and key always publish the same id, so a
// result published again after a crash is dropped as a duplicate.
std::string ResultId(int64_t start, int64_t end, std::string_view key) {
  const XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  char buf[96];
  const int n = std::snprintf(buf, sizeof buf, "w%llx-%llx-%016llx%016llx",
                              static_cast<unsigned long long>(start),
                              static_cast<unsigned long long>(end),
                              static_cast<unsigned long long>(h.high64),
                              static_cast<unsigned long long>(h.low64));
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

class WatchQueue final : public Watcher {
 public:
  explicit WatchQueue(std::optional<std::string> key) : key_(std::move(key)) {}

  bool Wants(std::string_view key) const { return !key_ || *key_ == key; }

  void Push(Update u) {
    absl::MutexLock lock(&mu_);
    if (queue_.size() >= kWatchQueueLimit) {
      queue_.pop_front();
      ++dropped_;
    }
    queue_.push_back(std::move(u));
  }

  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }

  absl::StatusOr<std::vector<Update>> Next(int timeout_ms, uint64_t* dropped) override {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return cancelled_ || !queue_.empty(); };
    mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(timeout_ms));
    if (dropped) *dropped = std::exchange(dropped_, 0);
    if (!queue_.empty()) {
      std::vector<Update> out(std::make_move_iterator(queue_.begin()),
                              std::make_move_iterator(queue_.end()));
      queue_.clear();
      return out;
    }
    if (cancelled_) return absl::CancelledError("the aggregation is gone");
    return std::vector<Update>{};
  }

 private:
  const std::optional<std::string> key_;
  absl::Mutex mu_;
  std::deque<Update> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

Aggregation::Aggregation(AggregationSpec spec, std::unique_ptr<Store> store,
                         std::unique_ptr<WasmReducer> reducer, broker::Broker& broker,
                         uint64_t cache_bytes)
    : spec_(std::move(spec)), cache_bytes_(cache_bytes), store_(std::move(store)), broker_(broker) {
  absl::MutexLock fold(&fold_mu_);
  absl::MutexLock lock(&mu_);
  reducer_ = std::move(reducer);
  measures_ = std::make_unique<MeasureSet>(spec_.measures, spec_.key);
  reader_ = std::make_unique<MeasureSet>(spec_.measures, spec_.key);
}

Aggregation::~Aggregation() { CloseWatchers(); }

absl::StatusOr<std::unique_ptr<Aggregation>> Aggregation::Open(AggregationSpec spec,
                                                               std::unique_ptr<Store> store,
                                                               std::unique_ptr<WasmReducer> reducer,
                                                               broker::Broker& broker,
                                                               uint64_t cache_bytes) {
  std::unique_ptr<Aggregation> a(new Aggregation(std::move(spec), std::move(store),
                                                 std::move(reducer), broker, cache_bytes));
  RETURN_IF_ERROR(a->Restore());
  return a;
}

absl::Status Aggregation::Restore() {
  ASSIGN_OR_RETURN(std::optional<CheckpointMeta> meta, store_->ReadMeta());
  absl::MutexLock fold(&fold_mu_);
  absl::MutexLock lock(&mu_);
  last_checkpoint_us_ = NowMicros();
  if (!meta) return absl::OkStatus();
  positions_ = checkpointed_ = meta->offsets;
  max_event_us_ = meta->max_event_us;
  event_time_us_ = meta->event_time_us;
  partition_max_us_ = meta->partition_max_us;
  results_scan_from_ = meta->results_scan_from;
  late_scan_from_ = meta->late_scan_from;
  RETURN_IF_ERROR(ReadPublished(spec_.results_topic(), results_scan_from_));
  RETURN_IF_ERROR(ReadPublished(spec_.late_topic(), late_scan_from_));
  late_ = meta->late;
  skipped_ = meta->skipped;
  // Every window that may still be open is scheduled to close; the keys' windows are loaded
  // while they fit in the cache, a key with all its open windows or none of them (the rest
  // load when a record or a close needs them).
  const uint64_t cache_bytes = cache_bytes_.load(std::memory_order_relaxed);
  absl::flat_hash_set<std::string, KeyHash, KeyEq> left_out;  // keys first seen past the bound
  absl::Status loaded;
  RETURN_IF_ERROR(store_->ScanFrom(meta->min_open_start_us, [&](std::string_view key, StoredWindow sw) {
    fold_mu_.AssertHeld();
    mu_.AssertHeld();
    if (sw.final) return true;
    if (spec_.window.kind != WindowKind::kGlobal) closing_[sw.end_us].emplace_back(key);
    ++open_windows_;
    auto it = keys_.find(key);
    if (it == keys_.end() && (memory_bytes_ > cache_bytes || left_out.contains(key))) {
      if (!left_out.contains(key)) left_out.emplace(key);
      evicted_floor_ = std::min(evicted_floor_, sw.start_us);
      return true;
    }
    absl::StatusOr<Window> w = Load(std::move(sw));
    if (!w.ok()) {
      loaded = w.status();
      return false;
    }
    if (it == keys_.end()) it = keys_.try_emplace(std::string(key)).first;
    auto& windows = it->second.windows;
    const auto pos = std::lower_bound(windows.begin(), windows.end(), w->start,
                                      [](const Window& x, int64_t s) { return x.start < s; });
    memory_bytes_ += WindowBytes(key, *w);
    windows.insert(pos, *std::move(w));
    return true;
  }));
  RETURN_IF_ERROR(loaded);
  // A key's windows all load with its first, so memory may pass the bound by the later windows
  // of the keys that fit: those beyond it go again.
  if (memory_bytes_ > cache_bytes) Evict(cache_bytes / 4 * 3);
  return absl::OkStatus();
}

uint64_t Aggregation::WindowBytes(std::string_view key, const Window& w) const {
  return kWindowOverhead + key.size() + 32 * spec_.measures.size() + w.state.size() +
         w.pending.size();
}

absl::StatusOr<Aggregation::Window> Aggregation::Load(StoredWindow sw) {
  Window w;
  w.start = sw.start_us;
  w.end = sw.end_us;
  w.stored_start = sw.start_us;
  if (spec_.is_wasm()) {
    w.state = std::move(sw.state);
    w.values = std::move(sw.values);
  } else {
    ASSIGN_OR_RETURN(w.accs, measures_->Parse(sw.state));
  }
  return w;
}

absl::Status Aggregation::LoadKey(std::string_view key) {
  std::vector<Window> windows;
  absl::Status parsed;
  RETURN_IF_ERROR(store_->ScanKey(key, evicted_floor_, INT64_MAX, SIZE_MAX, [&](StoredWindow sw) {
    fold_mu_.AssertHeld();
    mu_.AssertHeld();
    if (sw.final || !parsed.ok()) return;
    absl::StatusOr<Window> w = Load(std::move(sw));
    if (w.ok()) {
      windows.push_back(*std::move(w));
    } else {
      parsed = w.status();
    }
  }));
  RETURN_IF_ERROR(parsed);
  if (windows.empty()) return absl::OkStatus();
  KeyState& ks = keys_[key];
  for (Window& w : windows) {
    memory_bytes_ += WindowBytes(key, w);
    ks.windows.push_back(std::move(w));  // ascending by start, as scanned
  }
  return absl::OkStatus();
}

void Aggregation::Evict(uint64_t target) {
  if (const int64_t wm = Watermark();
      (spec_.window.kind == WindowKind::kTumbling || spec_.window.kind == WindowKind::kHopping) &&
      evicted_floor_ != INT64_MAX && wm > INT64_MIN + spec_.window.size_us) {
    // Every window that ended by the watermark is closed: an open one starts after it less
    // the window's size.
    evicted_floor_ = std::max(evicted_floor_, wm - spec_.window.size_us + 1);
  }
  std::vector<std::pair<uint64_t, std::string_view>> lru;
  lru.reserve(keys_.size());
  for (const auto& [key, ks] : keys_) {
    bool clean = true;
    for (const Window& w : ks.windows) clean = clean && !w.dirty && w.pending_count == 0;
    if (clean) lru.emplace_back(ks.touched, key);
  }
  std::sort(lru.begin(), lru.end());
  for (const auto& [touched, key] : lru) {
    if (memory_bytes_ <= target) break;
    const auto it = keys_.find(key);
    for (const Window& w : it->second.windows) {
      memory_bytes_ -= std::min(memory_bytes_, WindowBytes(it->first, w));
      if (!w.final) evicted_floor_ = std::min(evicted_floor_, w.start);
    }
    keys_.erase(it);
  }
}

std::map<uint32_t, uint64_t> Aggregation::CheckpointOffsets() {
  absl::MutexLock lock(&mu_);
  return checkpointed_;
}

absl::Status Aggregation::SetStart(const std::map<uint32_t, uint64_t>& offsets) {
  absl::MutexLock fold(&fold_mu_);
  CheckpointMeta meta;
  // Whatever the output topics hold already (an earlier generation's) is not this one's.
  results_scan_from_ = meta.results_scan_from = TopicEnds(spec_.results_topic());
  late_scan_from_ = meta.late_scan_from = TopicEnds(spec_.late_topic());
  {
    absl::MutexLock lock(&mu_);
    positions_ = offsets;
    meta.offsets = offsets;
    meta.max_event_us = max_event_us_;
    meta.event_time_us = event_time_us_;
    meta.partition_max_us = partition_max_us_;
  }
  Store::Batch batch;
  batch.SetMeta(meta);
  RETURN_IF_ERROR(store_->Commit(batch));
  absl::MutexLock lock(&mu_);
  checkpointed_ = offsets;
  return absl::OkStatus();
}

int64_t Aggregation::Watermark() const {
  if (spec_.window.kind == WindowKind::kGlobal || event_time_us_ == INT64_MIN) return INT64_MIN;
  return event_time_us_ - spec_.lateness_us;
}

std::map<uint32_t, uint64_t> Aggregation::TopicEnds(const std::string& topic) {
  std::map<uint32_t, uint64_t> ends;
  absl::StatusOr<broker::TopicInfo> info = broker_.GetTopic(topic);
  if (!info.ok()) return ends;
  for (const broker::PartitionInfo& p : info->partitions) {
    ends[p.partition.value()] = p.stats.end_offset.value();
  }
  return ends;
}

absl::Status Aggregation::ReadPublished(const std::string& topic,
                                        const std::map<uint32_t, uint64_t>& from) {
  const std::map<uint32_t, uint64_t> ends = TopicEnds(topic);
  for (const auto& [p, start] : from) {
    const auto end = ends.find(p);
    if (end == ends.end()) continue;
    uint64_t next = start;
    while (next < end->second) {
      const uint64_t before = next;
      absl::Status s = broker_.Scan(topic, PartitionId(p), Offset(next), 10'000, 16u << 20,
                                    [&](const DecodedRecord& r) {
        fold_mu_.AssertHeld();
        published_since_checkpoint_.emplace(r.id);
        next = r.offset.value() + 1;
      });
      if (absl::IsOutOfRange(s)) break;  // deleted by retention: nothing to find there
      RETURN_IF_ERROR(s);
      if (next == before) break;
    }
  }
  return absl::OkStatus();
}

std::optional<int64_t> Aggregation::Hold(const std::map<uint32_t, uint64_t>& ends,
                                         std::optional<uint32_t> except) const {
  int64_t hold = INT64_MAX;
  for (const auto& [p, position] : positions_) {
    if (p == except) continue;
    const auto end = ends.find(p);
    if (end != ends.end() && position >= end->second) continue;  // caught up
    const auto max = partition_max_us_.find(p);
    // Behind, and nothing of it folded yet: its first records may be the oldest.
    if (max == partition_max_us_.end()) return std::nullopt;
    hold = std::min(hold, max->second);
  }
  return hold;
}

void Aggregation::AdvanceEventTime(const std::map<uint32_t, uint64_t>& ends) {
  const std::optional<int64_t> hold = Hold(ends, std::nullopt);
  if (!hold) return;
  const int64_t clock = *hold == INT64_MAX ? max_event_us_ : *hold;
  event_time_us_ = std::max(event_time_us_, clock);
}

absl::Status Aggregation::Fold(
    uint32_t partition,
    absl::FunctionRef<void(absl::FunctionRef<void(const DecodedRecord&)>)> for_each,
    uint64_t* folded) {
  absl::MutexLock fold(&fold_mu_);
  absl::Status status;
  const std::map<uint32_t, uint64_t> ends_before = TopicEnds(spec_.input);
  {
    absl::MutexLock lock(&mu_);
    const uint64_t records_before = records_in_;
    uint64_t& position = positions_[partition];
    int64_t& partition_max = partition_max_us_.try_emplace(partition, INT64_MIN).first->second;
    // The clock moves record by record with this partition, as far as the others allow: which
    // records are late does not depend on where batches begin and end.
    const std::optional<int64_t> hold = Hold(ends_before, partition);
    for_each([&](const DecodedRecord& r) {
      fold_mu_.AssertHeld();
      mu_.AssertHeld();
      if (r.offset.value() < position || !status.ok()) return;  // in state already; or failed
      position = r.offset.value() + 1;
      ++records_in_;
      changed_since_checkpoint_ = true;
      std::string_view key;
      if (spec_.key.event_key) {
        key = r.key;
        if (!spec_.is_wasm() && measures_->size() > 0) measures_->Extract(r.data);
      } else {
        if (!measures_->Extract(r.data)) {
          ++skipped_;
          return;
        }
        key = measures_->key();
      }
      if (!FoldOne(key, r, partition, &status)) {
        if (!status.ok()) {
          --records_in_;
          position = r.offset.value();  // not folded
          return;
        }
        ++late_;
        PendingOut out;
        out.id = StrCat("late-", partition, "-", r.offset.value());
        out.key.assign(r.key);
        out.data.assign(r.data);
        out.timestamp_us = r.timestamp_us;
        for (const auto& [k, v] : r.headers) out.headers.emplace_back(k, v);
        late_out_.push_back(std::move(out));
      }
      if (r.timestamp_us > partition_max) {
        partition_max = r.timestamp_us;
        if (hold) event_time_us_ = std::max(event_time_us_, std::min(partition_max, *hold));
      }
    });
    if (partition_max > max_event_us_) max_event_us_ = partition_max;
    if (partition_max == INT64_MIN) partition_max_us_.erase(partition);
    *folded = records_in_ - records_before;
  }
  // Where the partitions' ends are now, after this batch: read without the locks, which the
  // broker's reads do not need.
  const std::map<uint32_t, uint64_t> ends = TopicEnds(spec_.input);
  {
    absl::MutexLock lock(&mu_);
    AdvanceEventTime(ends);
    if (reducer_ && status.ok()) status = ReducePending();
    if (status.ok()) status = CloseWindows();
    Notify();
  }
  return status;
}

bool Aggregation::FoldOne(std::string_view key, const DecodedRecord& r, uint32_t partition,
                          absl::Status* error) {
  const int64_t t = r.timestamp_us;
  const int64_t watermark = Watermark();
  auto it = keys_.find(key);
  if (it == keys_.end() && evicted_floor_ != INT64_MAX) {
    // Its open windows may be on disk only.
    if (absl::Status s = LoadKey(key); !s.ok()) {
      *error = absl::Status(s.code(), StrCat("loading evicted state: ", ToStd(s.message())));
      return false;
    }
    it = keys_.find(key);
  }
  if (it == keys_.end()) it = keys_.try_emplace(std::string(key)).first;
  KeyState& ks = it->second;
  ks.touched = records_in_;
  const WindowSpec& ws = spec_.window;
  if (ws.kind == WindowKind::kSession) return FoldSession(ks, it->first, r, partition);
  absl::InlinedVector<std::pair<int64_t, int64_t>, 4> windows;
  switch (ws.kind) {
    case WindowKind::kTumbling: {
      const int64_t s = FloorDiv(t, ws.size_us) * ws.size_us;
      windows.emplace_back(s, s + ws.size_us);
      break;
    }
    case WindowKind::kHopping: {
      const int64_t last = FloorDiv(t, ws.hop_us) * ws.hop_us;
      for (int64_t s = last - ws.size_us + ws.hop_us; s <= last; s += ws.hop_us) {
        windows.emplace_back(s, s + ws.size_us);
      }
      break;
    }
    case WindowKind::kGlobal:
      windows.emplace_back(kGlobalStartUs, kGlobalEndUs);
      break;
    case WindowKind::kSession:
      break;
  }
  bool taken = false;
  for (const auto& [start, end] : windows) {
    if (end <= watermark) continue;  // closed: too late for this window
    auto pos = std::lower_bound(ks.windows.begin(), ks.windows.end(), start,
                                [](const Window& x, int64_t s) { return x.start < s; });
    Window* w;
    if (pos != ks.windows.end() && pos->start == start && !pos->final) {
      w = &*pos;
    } else if (pos != ks.windows.end() && pos->start == start) {
      continue;  // final already (its close came before this record's window passed)
    } else {
      w = &NewWindow(ks, it->first, start, end);
    }
    AddRecord(it->first, *w, r, partition);
    Touch(it->first, *w);
    taken = true;
  }
  if (!taken && ks.windows.empty()) keys_.erase(it);
  return taken;
}

Aggregation::Window& Aggregation::NewWindow(KeyState& ks, std::string_view key, int64_t start,
                                            int64_t end) {
  auto pos = std::lower_bound(ks.windows.begin(), ks.windows.end(), start,
                              [](const Window& x, int64_t s) { return x.start < s; });
  Window w;
  w.start = start;
  w.end = end;
  if (!spec_.is_wasm()) w.accs = measures_->New();
  pos = ks.windows.insert(pos, std::move(w));
  if (spec_.window.kind != WindowKind::kGlobal) closing_[end].emplace_back(key);
  ++open_windows_;
  memory_bytes_ += kWindowOverhead + key.size() + 32 * spec_.measures.size();
  return *pos;
}

void Aggregation::AddRecord(std::string_view key, Window& w, const DecodedRecord& r,
                            uint32_t partition) {
  if (reducer_) {
    if (w.pending_count == 0 && !pending_keys_.contains(key)) pending_keys_.emplace(key);
    const size_t before = w.pending.size();
    components::AppendRecord(PartitionId(partition), r, &w.pending);
    ++w.pending_count;
    memory_bytes_ += w.pending.size() - before;
  } else {
    measures_->Add(w.accs, r.timestamp_us);
  }
}

void Aggregation::Touch(std::string_view key, Window& w) {
  w.dirty = true;
  if (!watchers_.empty()) changed_.emplace_back(std::string(key), w.start);
}

bool Aggregation::FoldSession(KeyState& ks, std::string_view key, const DecodedRecord& r,
                              uint32_t partition) {
  const int64_t t = r.timestamp_us;
  const int64_t gap = spec_.window.gap_us;
  // The open sessions the record joins: those with an event within `gap` of it.
  std::vector<size_t> joined;
  for (size_t i = 0; i < ks.windows.size(); ++i) {
    const Window& w = ks.windows[i];
    if (!w.final && t + gap > w.start && t < w.end) joined.push_back(i);
  }
  if (joined.empty()) {
    if (t + gap <= Watermark()) return false;  // its session would be closed already
    Window& w = NewWindow(ks, key, t, t + gap);
    AddRecord(key, w, r, partition);
    Touch(key, w);
    return true;
  }
  // Merge every joined session into the first (windows are sorted by start).
  Window* into = &ks.windows[joined[0]];
  for (size_t j = joined.size(); j-- > 1;) {
    Window& from = ks.windows[joined[j]];
    if (absl::Status s = MergeInto(key, *into, from); !s.ok()) {
      spdlog::warn("aggregation {}: merging sessions of key: {}", spec_.name, s.ToString());
    }
    memory_bytes_ -= std::min(memory_bytes_, WindowBytes(key, from));
    into->end = std::max(into->end, from.end);
    if (from.stored_start) deletes_.emplace_back(std::string(key), *from.stored_start);
    --open_windows_;
    ks.windows.erase(ks.windows.begin() + static_cast<std::ptrdiff_t>(joined[j]));
    into = &ks.windows[joined[0]];
  }
  const int64_t old_end = into->end;
  into->start = std::min(into->start, t);
  into->end = std::max(into->end, t + gap);
  if (into->end != old_end) closing_[into->end].emplace_back(key);
  AddRecord(key, *into, r, partition);
  Touch(key, *into);
  // A start that moved back keeps the order: the session stays where it sorts.
  std::sort(ks.windows.begin(), ks.windows.end(),
            [](const Window& a, const Window& b) { return a.start < b.start; });
  return true;
}

absl::Status Aggregation::MergeInto(std::string_view key, Window& into, Window& from) {
  if (!reducer_) {
    measures_->Merge(into.accs, from.accs);
    return absl::OkStatus();
  }
  // The reducer merges states: the records of both not yet folded are folded first.
  RETURN_IF_ERROR(ReducePending());
  MergeInput m;
  m.window_start_us = std::min(into.start, from.start);
  m.window_end_us = std::max(into.end, from.end);
  m.key = key;
  m.state_a = into.start <= from.start ? into.state : from.state;
  m.state_b = into.start <= from.start ? from.state : into.state;
  ASSIGN_OR_RETURN(std::vector<ReduceOutput> out, reducer_->Merge(absl::MakeConstSpan(&m, 1)));
  if (out.size() == 1) {
    if (out[0].state_written) {
      memory_bytes_ += out[0].state.size();
      memory_bytes_ -= std::min<uint64_t>(memory_bytes_, into.state.size());
      into.state = std::move(out[0].state);
    }
    if (out[0].values_written) into.values = std::move(out[0].values);
  }
  return absl::OkStatus();
}

absl::Status Aggregation::ReducePending() {
  std::vector<ReduceGroup> groups;
  std::vector<Window*> windows;
  // The keys this batch added records to, not every key in memory.
  for (const std::string& pending : pending_keys_) {
    auto it = keys_.find(pending);
    if (it == keys_.end()) continue;
    for (Window& w : it->second.windows) {
      if (w.pending_count == 0) continue;
      windows.push_back(&w);
      ReduceGroup& g = groups.emplace_back();
      g.window_start_us = w.start;
      g.window_end_us = w.end;
      g.key = it->first;
      g.state = w.state;
      g.records = w.pending;
      g.record_count = w.pending_count;
    }
  }
  pending_keys_.clear();
  if (windows.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<ReduceOutput>> out = reducer_->Reduce(groups);
  if (!out.ok()) {
    return absl::Status(out.status().code(),
                        StrCat("the reducer failed: ", ToStd(out.status().message())));
  }
  for (size_t i = 0; i < windows.size() && i < out->size(); ++i) {
    Window& w = *windows[i];
    ReduceOutput& o = (*out)[i];
    memory_bytes_ -= std::min<uint64_t>(memory_bytes_, w.pending.size());
    std::string().swap(w.pending);
    w.pending_count = 0;
    if (o.state_written) {
      memory_bytes_ += o.state.size();
      memory_bytes_ -= std::min<uint64_t>(memory_bytes_, w.state.size());
      w.state = std::move(o.state);
    }
    if (o.values_written) w.values = std::move(o.values);
  }
  return absl::OkStatus();
}

std::string Aggregation::ValuesOf(const Window& w) const {
  if (spec_.is_wasm()) return w.values.empty() ? "{}" : w.values;
  std::string out;
  reader_->Values(w.accs, &out);
  return out;
}

absl::Status Aggregation::CloseWindows() {
  const int64_t watermark = Watermark();
  while (!closing_.empty() && closing_.begin()->first <= watermark) {
    const int64_t end = closing_.begin()->first;
    std::vector<std::string>& keys = closing_.begin()->second;
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::string& key = keys[i];
      auto it = keys_.find(key);
      if (it == keys_.end() && evicted_floor_ != INT64_MAX) {
        // Evicted windows come back to close; a failed read leaves the rest for later. What
        // comes back is due a checkpoint, which evicts it again.
        if (absl::Status s = LoadKey(key); !s.ok()) {
          keys.erase(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(i));
          return absl::Status(s.code(), StrCat("loading evicted state: ", ToStd(s.message())));
        }
        it = keys_.find(key);
        if (it != keys_.end()) changed_since_checkpoint_ = true;
      }
      if (it == keys_.end()) continue;
      for (Window& w : it->second.windows) {
        if (w.final || w.end != end) continue;
        // A close makes a checkpoint due, which publishes the result, whatever moved the
        // watermark.
        changed_since_checkpoint_ = true;
        w.final = true;
        --open_windows_;
        Touch(key, w);
        PendingOut out;
        out.id = ResultId(w.start, w.end, key);
        out.key = key;
        out.timestamp_us = w.start;
        out.data = "{\"key\":";
        AppendJsonString(&out.data, key);
        out.data += StrCat(",\"start\":\"", Rfc3339(w.start), "\",\"end\":\"", Rfc3339(w.end),
                           "\",\"values\":", ValuesOf(w), "}");
        outputs_.push_back(std::move(out));
      }
    }
    closing_.erase(closing_.begin());
  }
  return absl::OkStatus();
}

void Aggregation::Notify() {
  if (changed_.empty()) return;
  std::vector<std::shared_ptr<WatchQueue>> live;
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    if (auto w = it->lock()) {
      live.push_back(std::move(w));
      ++it;
    } else {
      it = watchers_.erase(it);
    }
  }
  if (live.empty()) {
    changed_.clear();
    return;
  }
  absl::flat_hash_set<std::pair<std::string, int64_t>> seen;
  for (auto& [key, start] : changed_) {
    if (!seen.insert({key, start}).second) continue;
    auto it = keys_.find(key);
    if (it == keys_.end()) continue;
    for (const Window& w : it->second.windows) {
      if (w.start != start) continue;
      Update u;
      u.key = key;
      u.window.start_us = w.start;
      u.window.end_us = w.end;
      u.window.final = w.final;
      u.window.values = ValuesOf(w);
      for (const auto& q : live) {
        if (q->Wants(key)) q->Push(u);
      }
    }
  }
  changed_.clear();
}

bool Aggregation::CheckpointDue(int64_t now_us) {
  absl::MutexLock lock(&mu_);
  if (!changed_since_checkpoint_ && deletes_.empty()) return false;
  return now_us - last_checkpoint_us_ >= spec_.checkpoint_interval_us ||
         memory_bytes_ > cache_bytes_.load(std::memory_order_relaxed) ||
         outputs_.size() + late_out_.size() >= kMaxPendingOutputs;
}

absl::Status Aggregation::Checkpoint() {
  absl::MutexLock fold(&fold_mu_);
  Store::Batch batch;
  CheckpointMeta meta;
  std::vector<PendingOut> results, late;
  {
    absl::MutexLock lock(&mu_);
    if (!changed_since_checkpoint_ && deletes_.empty()) return absl::OkStatus();
    for (const auto& [key, start] : deletes_) batch.Delete(key, start);
    int64_t min_open = INT64_MAX;
    std::string state;
    for (auto& [key, ks] : keys_) {
      for (Window& w : ks.windows) {
        if (!w.final) min_open = std::min(min_open, w.start);
        if (!w.dirty) continue;
        if (w.stored_start && *w.stored_start != w.start) batch.Delete(key, *w.stored_start);
        StoredWindow sw;
        sw.start_us = w.start;
        sw.end_us = w.end;
        sw.final = w.final;
        if (spec_.is_wasm()) {
          sw.state = w.state;
          sw.values = w.values;
        } else {
          measures_->Serialize(w.accs, &sw.state);
          sw.values = ValuesOf(w);
        }
        batch.Put(key, sw, /*indexed=*/w.stored_start == w.start);
      }
    }
    meta.offsets = positions_;
    meta.max_event_us = max_event_us_;
    meta.event_time_us = event_time_us_;
    meta.partition_max_us = partition_max_us_;
    // Nothing open: every stored window is final, and a restart loads none.
    meta.min_open_start_us = std::min(min_open, evicted_floor_);
    meta.late = late_;
    meta.skipped = skipped_;
    results.swap(outputs_);
    late.swap(late_out_);
  }
  // Outputs already published before a crash are made again once: skipped, once each.
  if (!published_since_checkpoint_.empty()) {
    for (std::vector<PendingOut>* outs : {&results, &late}) {
      std::erase_if(*outs, [&](const PendingOut& o) {
        fold_mu_.AssertHeld();
        return published_since_checkpoint_.erase(o.id) > 0;
      });
    }
  }
  // Results and late records are acknowledged before the checkpoint that reflects them: a crash
  // in between publishes them again under the same ids, which the topics' dedupe drops.
  // Every chunk is handed to the broker before any acknowledgement is awaited, so that their
  // writes and fsyncs overlap (the broker appends them in call order).
  auto publish = [&](const std::string& topic, std::vector<PendingOut>& outs) -> absl::Status {
    if (outs.empty()) return absl::OkStatus();
    constexpr size_t kChunk = 10'000;
    // Owned by its acknowledgement callback: the events stay valid until it has run.
    struct Chunk {
      std::vector<broker::EventIn> events;
      std::vector<std::vector<std::pair<std::string_view, std::string_view>>> headers;
      std::promise<absl::Status> done;
    };
    std::vector<std::future<absl::Status>> acks;
    for (size_t i = 0; i < outs.size(); i += kChunk) {
      const size_t n = std::min(kChunk, outs.size() - i);
      auto chunk = std::make_shared<Chunk>();
      std::vector<broker::EventIn>& events = chunk->events;
      auto& headers = chunk->headers;
      events.resize(n);
      headers.resize(n);
      for (size_t j = 0; j < n; ++j) {
        const PendingOut& o = outs[i + j];
        for (const auto& [k, v] : o.headers) headers[j].emplace_back(k, v);
        events[j].topic = topic;
        events[j].id = o.id;
        events[j].key = o.key;
        events[j].data = o.data;
        events[j].timestamp_us = o.timestamp_us;
        events[j].headers = headers[j];
      }
      acks.push_back(chunk->done.get_future());
      broker_.Publish(chunk->events, [chunk](absl::Status s, std::vector<broker::AckOut>) {
        chunk->done.set_value(std::move(s));
      });
    }
    absl::Status status;
    for (std::future<absl::Status>& ack : acks) status.Update(ack.get());
    return status;
  };
  absl::Status published = publish(spec_.results_topic(), results);
  if (published.ok()) published = publish(spec_.late_topic(), late);
  if (!published.ok()) {
    // Kept for the next attempt: nothing is checkpointed past unpublished output.
    absl::MutexLock lock(&mu_);
    results.insert(results.end(), std::make_move_iterator(outputs_.begin()),
                   std::make_move_iterator(outputs_.end()));
    outputs_ = std::move(results);
    late.insert(late.end(), std::make_move_iterator(late_out_.begin()),
                std::make_move_iterator(late_out_.end()));
    late_out_ = std::move(late);
    return absl::Status(published.code(),
                        StrCat("publishing results: ", ToStd(published.message())));
  }
  if (published_since_checkpoint_.empty()) {
    results_scan_from_ = TopicEnds(spec_.results_topic());
    late_scan_from_ = TopicEnds(spec_.late_topic());
  }
  meta.results_scan_from = results_scan_from_;
  meta.late_scan_from = late_scan_from_;
  batch.SetMeta(meta);
  RETURN_IF_ERROR(store_->Commit(batch));
  {
    absl::MutexLock lock(&mu_);
    deletes_.clear();
    checkpointed_ = meta.offsets;
    changed_since_checkpoint_ = false;
    last_checkpoint_us_ = NowMicros();
    // Final windows are on disk now: memory keeps the open ones only.
    for (auto it = keys_.begin(); it != keys_.end();) {
      auto& windows = it->second.windows;
      for (auto w = windows.begin(); w != windows.end();) {
        if (w->final) {
          memory_bytes_ -= std::min(memory_bytes_, WindowBytes(it->first, *w));
          w = windows.erase(w);
        } else {
          w->dirty = false;
          w->stored_start = w->start;
          ++w;
        }
      }
      if (windows.empty()) {
        keys_.erase(it++);
      } else {
        ++it;
      }
    }
    // Past the bound, the open windows of the least recently folded keys go too (they are all
    // on disk as of this checkpoint), down to three quarters of it.
    if (const uint64_t bound = cache_bytes_.load(std::memory_order_relaxed); memory_bytes_ > bound) {
      Evict(bound / 4 * 3);
    }
  }
  std::vector<std::pair<PartitionId, Offset>> offsets;
  for (const auto& [p, o] : meta.offsets) offsets.emplace_back(PartitionId(p), Offset(o));
  if (absl::Status s = broker_.CommitOffsets(spec_.group(), spec_.input, offsets); !s.ok()) {
    // The store holds the positions; the group's offsets only show progress.
    spdlog::debug("aggregation {}: committing the group's offsets: {}", spec_.name, s.ToString());
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyResult> Aggregation::GetKey(const KeyQuery& q) {
  const int64_t from = q.from_us.value_or(INT64_MIN);
  const int64_t to = q.to_us.value_or(INT64_MAX);
  std::map<int64_t, WindowValues> windows;
  std::vector<int64_t> hidden;  // stored under a start that no longer holds it
  bool known = false;           // the key has state, in the range or not
  {
    absl::MutexLock lock(&mu_);
    if (auto it = keys_.find(q.key); it != keys_.end()) {
      known = !it->second.windows.empty();
      for (const Window& w : it->second.windows) {
        if (w.stored_start && *w.stored_start != w.start) hidden.push_back(*w.stored_start);
        if (w.start < from || w.start >= to) continue;
        windows[w.start] = WindowValues{w.start, w.end, w.final, ValuesOf(w)};
      }
    }
    for (const auto& [key, start] : deletes_) {
      if (key == q.key) hidden.push_back(start);
    }
  }
  const size_t want = std::max<size_t>(q.limit, 1);
  RETURN_IF_ERROR(store_->ScanKey(q.key, from, to, want + hidden.size() + windows.size(),
                                  [&](StoredWindow sw) {
    if (std::find(hidden.begin(), hidden.end(), sw.start_us) != hidden.end()) return;
    windows.try_emplace(sw.start_us, WindowValues{sw.start_us, sw.end_us, sw.final,
                                                  std::move(sw.values)});
  }));
  if (windows.empty() && !known && (q.from_us || q.to_us)) {
    // Nothing in the range: a key with windows elsewhere reads as an empty list.
    RETURN_IF_ERROR(store_->ScanKey(q.key, INT64_MIN, INT64_MAX, hidden.size() + 1,
                                    [&](StoredWindow sw) {
      known = known || std::find(hidden.begin(), hidden.end(), sw.start_us) == hidden.end();
    }));
  }
  if (windows.empty() && !known) {
    return absl::NotFoundError(StrCat("aggregation \"", spec_.name, "\" has no state for key \"",
                                      q.key, "\""));
  }
  KeyResult r;
  r.key = q.key;
  for (auto& [start, w] : windows) {
    if (r.windows.size() >= want) break;
    if (w.values.empty()) w.values = "{}";
    r.windows.push_back(std::move(w));
  }
  return r;
}

namespace {

// The number at `measure` in a values object; NaN when it is not a number there.
double MeasureOf(std::string_view values, std::string_view measure, simdjson::ondemand::parser& p,
                 std::string& buf) {
  buf.assign(values);
  buf.resize(values.size() + simdjson::SIMDJSON_PADDING);
  simdjson::ondemand::document doc;
  if (p.iterate(buf.data(), values.size(), buf.size()).get(doc) != simdjson::SUCCESS) return NAN;
  simdjson::ondemand::object o;
  if (doc.get_object().get(o) != simdjson::SUCCESS) return NAN;
  double d = 0;
  simdjson::ondemand::value v;
  if (o.find_field_unordered(measure).get(v) != simdjson::SUCCESS) return NAN;
  if (v.get_double().get(d) != simdjson::SUCCESS) return NAN;
  return d;
}

}  // namespace

absl::StatusOr<WindowResult> Aggregation::ListWindow(const WindowQuery& q) {
  if (!q.order_by.empty() && !spec_.is_wasm()) {
    bool known = false;
    for (const MeasureSpec& m : spec_.measures) known = known || m.name == q.order_by;
    if (!known) {
      return absl::InvalidArgumentError(StrCat("aggregation \"", spec_.name,
                                               "\" has no measure \"", q.order_by, "\""));
    }
  }
  WindowResult r;
  std::map<std::string, WindowResult::Entry, std::less<>> entries;
  std::optional<int64_t> start = q.start_us;
  std::vector<std::string> hidden;
  {
    absl::MutexLock lock(&mu_);
    if (!start) {
      for (const auto& [key, ks] : keys_) {
        if (!ks.windows.empty()) start = std::max(start.value_or(INT64_MIN), ks.windows.back().start);
      }
    }
  }
  if (!start) {
    ASSIGN_OR_RETURN(std::optional<int64_t> latest, store_->LatestStart());
    start = latest;
  } else if (!q.start_us) {
    ASSIGN_OR_RETURN(std::optional<int64_t> latest, store_->LatestStart());
    if (latest && *latest > *start) start = latest;
  }
  if (!start) {
    return absl::NotFoundError(StrCat("aggregation \"", spec_.name, "\" has no windows yet"));
  }
  r.start_us = *start;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, ks] : keys_) {
      for (const Window& w : ks.windows) {
        if (w.stored_start && *w.stored_start == *start && w.start != *start) hidden.push_back(key);
        if (w.start != *start) continue;
        r.end_us = w.end;
        entries[key] = WindowResult::Entry{key, ValuesOf(w), w.final};
      }
    }
    for (const auto& [key, s] : deletes_) {
      if (s == *start) hidden.push_back(key);
    }
  }
  std::vector<std::string> stored_keys;
  RETURN_IF_ERROR(store_->ScanWindow(*start, [&](std::string_view key) {
    if (!entries.contains(key) &&
        std::find(hidden.begin(), hidden.end(), key) == hidden.end()) {
      stored_keys.emplace_back(key);
    }
    return true;
  }));
  for (const std::string& key : stored_keys) {
    ASSIGN_OR_RETURN(std::optional<StoredWindow> w, store_->Get(key, *start));
    if (!w) continue;
    r.end_us = w->end_us;
    entries[key] = WindowResult::Entry{key, w->values.empty() ? "{}" : w->values, w->final};
  }
  if (entries.empty()) {
    return absl::NotFoundError(StrCat("aggregation \"", spec_.name, "\" has no keys in the window starting ",
                                      Rfc3339(*start)));
  }
  std::vector<WindowResult::Entry> sorted;
  sorted.reserve(entries.size());
  for (auto& [k, e] : entries) sorted.push_back(std::move(e));
  if (!q.order_by.empty()) {
    simdjson::ondemand::parser parser;
    std::string buf;
    std::vector<std::pair<double, size_t>> order;
    order.reserve(sorted.size());
    for (size_t i = 0; i < sorted.size(); ++i) {
      order.emplace_back(MeasureOf(sorted[i].values, q.order_by, parser, buf), i);
    }
    // NaN (no value) sorts last either way; ties by key.
    std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
      const bool an = std::isnan(a.first), bn = std::isnan(b.first);
      if (an != bn) return bn;
      if (!an && a.first != b.first) return q.desc ? a.first > b.first : a.first < b.first;
      return a.second < b.second;
    });
    std::vector<WindowResult::Entry> reordered;
    reordered.reserve(sorted.size());
    for (const auto& [v, i] : order) reordered.push_back(std::move(sorted[i]));
    sorted = std::move(reordered);
  } else if (q.desc) {
    std::reverse(sorted.begin(), sorted.end());
  }
  size_t first = 0;
  if (q.after) {
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (sorted[i].key == *q.after) first = i + 1;
    }
  }
  const size_t limit = std::max<size_t>(q.limit, 1);
  for (size_t i = first; i < sorted.size() && r.keys.size() < limit; ++i) {
    r.keys.push_back(std::move(sorted[i]));
  }
  if (first + r.keys.size() < sorted.size() && !r.keys.empty()) r.next = r.keys.back().key;
  return r;
}

std::unique_ptr<Watcher> Aggregation::NewWatcher(std::optional<std::string> key) {
  auto q = std::make_shared<WatchQueue>(std::move(key));
  {
    absl::MutexLock lock(&mu_);
    watchers_.push_back(q);
  }
  // The handle owns the queue; the aggregation holds it weakly.
  struct Handle final : Watcher {
    std::shared_ptr<WatchQueue> q;
    absl::StatusOr<std::vector<Update>> Next(int timeout_ms, uint64_t* dropped) override {
      return q->Next(timeout_ms, dropped);
    }
  };
  auto h = std::make_unique<Handle>();
  h->q = std::move(q);
  return h;
}

void Aggregation::CloseWatchers() {
  absl::MutexLock lock(&mu_);
  for (auto& w : watchers_) {
    if (auto q = w.lock()) q->Cancel();
  }
  watchers_.clear();
}

Aggregation::Stats Aggregation::GetStats() {
  absl::MutexLock lock(&mu_);
  Stats s;
  s.records_in = records_in_;
  s.late = late_;
  s.skipped = skipped_;
  s.keys = keys_.size();
  s.open_windows = open_windows_;
  s.watermark_us = Watermark();
  s.memory_bytes = memory_bytes_;
  s.positions = positions_;
  return s;
}

std::string Aggregation::tier() const {
  absl::MutexLock fold(&fold_mu_);
  if (!reducer_) return "";
  return wasm::TierName(reducer_->tier());
}

}  // namespace nodata::aggregate
