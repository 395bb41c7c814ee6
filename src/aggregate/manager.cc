#include "aggregate/manager.h"

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "aggregate/aggregation.h"
#include "broker/subscription.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "common/worker_pool.h"
#include "components/manager.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "spdlog/spdlog.h"
#include "storage/aggregation_store.h"
#include "storage/data_dir.h"
#include "wasm/runtime.h"

namespace nodata::aggregate {
namespace {

constexpr absl::Duration kTick = absl::Milliseconds(50);
// A failed runner (its input unreadable, a publish refused) starts again after this.
constexpr absl::Duration kRestartDelay = absl::Seconds(1);

std::string StateRoot(const std::string& data_dir) { return data_dir + "/aggregations"; }
// A generation per start from scratch (creation, reset): the state of the one before can close
// and go while the new one opens.
std::string StateDir(const std::string& data_dir, std::string_view name, int64_t generation) {
  return StrCat(StateRoot(data_dir), "/", name, "/", generation);
}

broker::StartSpec ToBrokerStart(const StartSpec& s) {
  broker::StartSpec b;
  switch (s.kind) {
    case StartSpec::Kind::kEarliest:
      b.kind = broker::StartSpec::Kind::kEarliest;
      break;
    case StartSpec::Kind::kLatest:
      b.kind = broker::StartSpec::Kind::kLatest;
      break;
    case StartSpec::Kind::kTime:
      b.kind = broker::StartSpec::Kind::kTime;
      b.time_us = s.time_us;
      break;
  }
  return b;
}

}  // namespace

const char* StateName(State s) {
  switch (s) {
    case State::kBackfilling:
      return "BACKFILLING";
    case State::kRunning:
      return "RUNNING";
    case State::kFailed:
      return "FAILED";
  }
  return "?";
}

// One registered aggregation and its runner: a group member of `aggregation.<name>` on the input
// that folds each batch, checkpoints when due and asks for the next.
struct Entry : std::enable_shared_from_this<Entry> {
  AggregationSpec spec;
  int64_t created_at_us = 0;
  int64_t generation = 0;  // the catalog row's update time
  std::unique_ptr<Aggregation> agg;  // set before the entry is shared; lives as long as it

  // Held by whatever works on `agg` for the runner (a batch, a checkpoint); Stop waits on it.
  absl::Mutex run_mu ABSL_ACQUIRED_BEFORE(mu);
  absl::Mutex mu;
  std::shared_ptr<broker::Subscription> sub ABSL_GUARDED_BY(mu);
  bool stopped ABSL_GUARDED_BY(mu) = false;
  bool failed ABSL_GUARDED_BY(mu) = false;
  std::string last_error ABSL_GUARDED_BY(mu);
  // Backfill: the records between the start positions and the ends when the runner started.
  uint64_t backfill_total ABSL_GUARDED_BY(mu) = 0;
  uint64_t backfill_base ABSL_GUARDED_BY(mu) = 0;  // records_in when it started
  int64_t backfill_started_us ABSL_GUARDED_BY(mu) = 0;
  bool backfilled ABSL_GUARDED_BY(mu) = false;
};

class Manager::Impl {
 public:
  Impl(ManagerOptions options, broker::Broker& broker, FileSystem& fs,
       prometheus::Registry& registry)
      : options_(std::move(options)), broker_(broker), fs_(fs),
        records_(prometheus::BuildCounter()
                     .Name("nodata_aggregation_records_total")
                     .Help("Input records folded into an aggregation's state")
                     .Register(registry)),
        pool_(options_.threads > 0 ? options_.threads
                                   : std::max(2, static_cast<int>(std::thread::hardware_concurrency()))) {}

  ~Impl() {
    std::vector<std::shared_ptr<Entry>> all;
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
      for (auto& [name, e] : entries_) all.push_back(e);
    }
    for (auto& e : all) Stop(*e);
    pool_.WaitIdle();
    // A last checkpoint: a clean stop replays nothing.
    for (auto& e : all) {
      if (absl::Status s = e->agg->Checkpoint(); !s.ok()) {
        spdlog::warn("aggregation {}: last checkpoint: {}", e->spec.name, s.ToString());
      }
      e->agg->CloseWatchers();
    }
  }

  absl::Status Open() {
    if (options_.runtime == nullptr) return absl::InvalidArgumentError("no WebAssembly runtime");
    RETURN_IF_ERROR(fs_.CreateDirs(StateRoot(options_.data_dir)));
    ASSIGN_OR_RETURN(std::vector<storage::AggregationRow> rows, store().List());
    std::map<std::string, int64_t> names;  // → generation
    for (const storage::AggregationRow& row : rows) {
      names[row.name] = row.updated_at_us;
      ASSIGN_OR_RETURN(AggregationSpec spec, FromJson(row.spec));
      auto e = std::make_shared<Entry>();
      e->spec = std::move(spec);
      e->created_at_us = row.created_at_us;
      e->generation = row.updated_at_us;
      absl::Status opened =
          OpenState(*e, /*fresh=*/false, options_.state_cache_bytes / rows.size());
      if (!opened.ok()) {
        return absl::Status(opened.code(), StrCat("aggregation \"", row.name, "\": ",
                                                  ToStd(opened.message())));
      }
      absl::MutexLock lock(&mu_);
      entries_[row.name] = e;
    }
    // State left by an aggregation removed while the server stopped.
    std::error_code ec;
    for (const auto& d : std::filesystem::directory_iterator(StateRoot(options_.data_dir), ec)) {
      const auto it = names.find(d.path().filename().string());
      if (it == names.end()) {
        std::filesystem::remove_all(d.path(), ec);
        continue;
      }
      for (const auto& g : std::filesystem::directory_iterator(d.path(), ec)) {
        if (g.path().filename().string() != std::to_string(it->second)) {
          std::filesystem::remove_all(g.path(), ec);
        }
      }
    }
    std::vector<std::shared_ptr<Entry>> all;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [name, e] : entries_) all.push_back(e);
    }
    for (auto& e : all) StartRunner(e);
    pool_.ScheduleAfter(kTick, [this] { Tick(); });
    return absl::OkStatus();
  }

  storage::AggregationStore& store() { return broker_.aggregation_store(); }

  absl::StatusOr<std::unique_ptr<WasmReducer>> MakeReducer(const AggregationSpec& spec,
                                                           std::string_view bytes) {
    ASSIGN_OR_RETURN(std::shared_ptr<wasm::Module> module,
                     WasmReducer::Load(*options_.runtime,
                                       {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()},
                                       wasm::Limits{}, options_.native));
    if (spec.window.kind == WindowKind::kSession && !WasmReducer::HasMerge(*module)) {
      return absl::InvalidArgumentError(
          "session windows with a WebAssembly reducer need its nd_merge export");
    }
    ReducerOptions ro;
    ro.config = spec.config;
    ro.fuel_per_record = spec.fuel_per_record;
    const std::string name = spec.name;
    return WasmReducer::Create(std::move(module), std::move(ro),
                               [name](int level, std::string_view line) {
                                 spdlog::log(level >= 3   ? spdlog::level::err
                                             : level == 2 ? spdlog::level::warn
                                                          : spdlog::level::info,
                                             "aggregation {}: {}", name, line);
                               });
  }

  // Opens the aggregation's store and state; a fresh one starts at its `from`.
  // The share of the memory bound each aggregation gets, with `more` aggregations besides the
  // ones there are.
  uint64_t CacheShare(size_t more) {
    absl::MutexLock lock(&mu_);
    return options_.state_cache_bytes / std::max<size_t>(1, entries_.size() + more);
  }
  void Rebalance() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto& [name, e] : entries_) {
      e->agg->SetCacheBytes(options_.state_cache_bytes / entries_.size());
    }
  }

  // Opens the aggregation's store and state, its windows in memory bounded by `cache_bytes`.
  absl::Status OpenState(Entry& e, bool fresh, uint64_t cache_bytes) {
    const std::string dir = StateDir(options_.data_dir, e.spec.name, e.generation);
    std::error_code ec;
    if (fresh) std::filesystem::remove_all(dir, ec);
    RETURN_IF_ERROR(fs_.CreateDirs(dir));
    std::unique_ptr<WasmReducer> reducer;
    if (e.spec.is_wasm()) {
      ASSIGN_OR_RETURN(std::string bytes,
                       fs_.ReadFile(storage::DataDir(options_.data_dir).ComponentModule(e.spec.module_sha256)));
      ASSIGN_OR_RETURN(reducer, MakeReducer(e.spec, bytes));
    }
    ASSIGN_OR_RETURN(std::unique_ptr<Store> st, Store::Open(dir, 8u << 20));
    ASSIGN_OR_RETURN(std::optional<CheckpointMeta> meta, st->ReadMeta());
    ASSIGN_OR_RETURN(e.agg, Aggregation::Open(e.spec, std::move(st), std::move(reducer), broker_,
                                              cache_bytes));
    if (!meta) {
      // No checkpoint yet: the start positions are resolved once and kept, so that a restart
      // before the first checkpoint starts at the same place.
      ASSIGN_OR_RETURN(broker::TopicInfo info, broker_.GetTopic(e.spec.input));
      std::map<uint32_t, uint64_t> starts;
      const broker::StartSpec from = ToBrokerStart(e.spec.from);
      for (const broker::PartitionInfo& p : info.partitions) {
        ASSIGN_OR_RETURN(Offset o, broker_.ResolveStart(e.spec.input, p.partition, from, std::nullopt));
        starts[p.partition.value()] = o.value();
      }
      RETURN_IF_ERROR(e.agg->SetStart(starts));
    }
    return absl::OkStatus();
  }

  class Sink final : public broker::SubscriptionSink {
   public:
    Sink(Impl& impl, std::weak_ptr<Entry> entry) : impl_(impl), entry_(std::move(entry)) {}
    void OnAssignment(const broker::Assignment&) override {
      std::shared_ptr<Entry> e = entry_.lock();
      if (!e) return;
      std::shared_ptr<broker::Subscription> sub;
      {
        absl::MutexLock lock(&e->mu);
        if (e->stopped) return;
        sub = e->sub;
      }
      if (sub) sub->Ready();
    }
    void OnBatch(broker::RecordBatch& batch) override {
      std::shared_ptr<Entry> e = entry_.lock();
      if (!e) return;
      absl::ReleasableMutexLock run(&e->run_mu);
      std::shared_ptr<broker::Subscription> sub;
      {
        absl::MutexLock lock(&e->mu);
        if (e->stopped || e->failed) return;
        sub = e->sub;
      }
      if (impl_.options_.before_batch) impl_.options_.before_batch(e->spec.name);
      uint64_t folded = 0;
      size_t delivered = 0;
      absl::Status s = e->agg->Fold(
          batch.partition().value(), [&](auto visit) { delivered = batch.ForEach(visit); },
          &folded);
      impl_.records_.Add({{"aggregation", e->spec.name}}).Increment(static_cast<double>(folded));
      if (s.ok() && e->agg->CheckpointDue(NowMicros())) {
        s = e->agg->Checkpoint();
      }
      run.Release();
      if (!s.ok()) {
        impl_.Fail(e, s);
        return;
      }
      // An empty batch (caught up, or a read error that ends the subscription) wants no Ready:
      // one would ask for the next batch at once and spin instead of waiting for appends.
      if (sub && delivered > 0) sub->Ready();
    }
    void OnEnd(absl::Status status) override {
      std::shared_ptr<Entry> e = entry_.lock();
      if (!e || status.ok()) return;
      {
        absl::MutexLock lock(&e->mu);
        if (e->stopped) return;
      }
      impl_.Fail(e, status, /*restart=*/true);
    }

   private:
    Impl& impl_;
    std::weak_ptr<Entry> entry_;
  };

  void StartRunner(const std::shared_ptr<Entry>& e) {
    const std::map<uint32_t, uint64_t> positions = e->agg->CheckpointOffsets();
    // The group starts where the state does.
    std::vector<std::pair<PartitionId, Offset>> offsets;
    for (const auto& [p, o] : positions) offsets.emplace_back(PartitionId(p), Offset(o));
    if (absl::Status s = broker_.CommitOffsets(e->spec.group(), e->spec.input, offsets); !s.ok()) {
      Fail(e, s, /*restart=*/true);
      return;
    }
    uint64_t total = 0;
    if (auto info = broker_.GetTopic(e->spec.input); info.ok()) {
      for (const broker::PartitionInfo& p : info->partitions) {
        const auto it = positions.find(p.partition.value());
        const uint64_t at = it == positions.end() ? p.stats.start_offset.value() : it->second;
        if (p.stats.end_offset.value() > at) total += p.stats.end_offset.value() - at;
      }
    }
    broker::SubscriptionOptions o;
    o.topic = e->spec.input;
    o.group = e->spec.group();
    o.consumer_id = e->spec.group();
    o.peer = "aggregation";
    o.max_records = options_.max_batch_records;
    o.max_bytes = 16u << 20;
    o.start = broker::StartSpec{broker::StartSpec::Kind::kEarliest};
    auto sub = broker::Subscription::Open(broker_, pool_, std::move(o),
                                          std::make_shared<Sink>(*this, e));
    if (!sub.ok()) {
      Fail(e, sub.status(), /*restart=*/true);
      return;
    }
    std::shared_ptr<broker::Subscription> started;
    {
      absl::MutexLock lock(&e->mu);
      if (e->stopped) return;
      e->sub = std::move(*sub);
      e->failed = false;
      e->backfill_total = total;
      e->backfill_base = e->agg->GetStats().records_in;
      e->backfill_started_us = NowMicros();
      e->backfilled = total == 0;
      started = e->sub;
    }
    started->Start();
  }

  void Fail(const std::shared_ptr<Entry>& e, const absl::Status& s, bool restart = false) {
    std::shared_ptr<broker::Subscription> sub;
    {
      absl::MutexLock lock(&e->mu);
      if (e->stopped) return;
      e->failed = true;
      e->last_error = std::string(s.message());
      sub = std::move(e->sub);
    }
    spdlog::warn("aggregation {}: {}", e->spec.name, s.ToString());
    // Closing from a sink callback is not allowed: the pool does it.
    pool_.Schedule([sub = std::move(sub)]() mutable {
      if (sub) sub->Close();
    });
    if (!restart) return;
    std::weak_ptr<Entry> weak = e;
    pool_.ScheduleAfter(kRestartDelay, [this, weak] {
      std::shared_ptr<Entry> e = weak.lock();
      if (!e) return;
      {
        absl::MutexLock lock(&mu_);
        if (closing_) return;
      }
      {
        absl::MutexLock lock(&e->mu);
        if (e->stopped || !e->failed) return;
      }
      StartRunner(e);
    });
  }

  // Once Stop returns, nothing of the runner works on the aggregation, nor will.
  void Stop(Entry& e) {
    std::shared_ptr<broker::Subscription> sub;
    {
      absl::MutexLock lock(&e.mu);
      e.stopped = true;
      sub = std::move(e.sub);
    }
    if (sub) sub->Close();
    absl::MutexLock wait(&e.run_mu);
  }

  void Tick() {
    std::vector<std::shared_ptr<Entry>> all;
    {
      absl::MutexLock lock(&mu_);
      if (closing_) return;
      for (auto& [name, e] : entries_) all.push_back(e);
    }
    const int64_t now = NowMicros();
    for (auto& e : all) {
      absl::ReleasableMutexLock run(&e->run_mu);
      {
        absl::MutexLock lock(&e->mu);
        if (e->stopped || e->failed) continue;
      }
      if (e->agg->CheckpointDue(now)) {
        absl::Status s = e->agg->Checkpoint();
        run.Release();
        if (!s.ok()) Fail(e, s, /*restart=*/true);
      }
    }
    absl::MutexLock lock(&mu_);
    if (!closing_) pool_.ScheduleAfter(kTick, [this] { Tick(); });
  }

  absl::StatusOr<std::shared_ptr<Entry>> Find(std::string_view name) {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(std::string(name));
    if (it == entries_.end()) {
      return absl::NotFoundError(StrCat("aggregation \"", name, "\" does not exist"));
    }
    return it->second;
  }

  AggregationInfo Info(Entry& e) {
    AggregationInfo info;
    info.spec = e.spec;
    info.created_at_us = e.created_at_us;
    const Aggregation::Stats s = e.agg->GetStats();
    info.records_in = s.records_in;
    info.late = s.late;
    info.skipped = s.skipped;
    info.keys = s.keys;
    info.open_windows = s.open_windows;
    info.memory_bytes = s.memory_bytes;
    info.watermark_us = s.watermark_us;
    info.tier = e.agg->tier();
    if (auto topic = broker_.GetTopic(e.spec.input); topic.ok()) {
      for (const broker::PartitionInfo& p : topic->partitions) {
        const auto it = s.positions.find(p.partition.value());
        const uint64_t at = it == s.positions.end() ? p.stats.start_offset.value() : it->second;
        if (p.stats.end_offset.value() > at) info.lag += p.stats.end_offset.value() - at;
      }
    }
    absl::MutexLock lock(&e.mu);
    info.last_error = e.last_error;
    const uint64_t done = s.records_in - std::min(s.records_in, e.backfill_base);
    if (!e.backfilled && (done >= e.backfill_total || info.lag == 0)) e.backfilled = true;
    info.backfill.total = e.backfill_total;
    info.backfill.done = e.backfilled ? e.backfill_total : done;
    const double secs = static_cast<double>(NowMicros() - e.backfill_started_us) / 1e6;
    info.backfill.rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    info.backfill.eta_seconds =
        e.backfilled || info.backfill.rate <= 0
            ? 0
            : static_cast<double>(e.backfill_total - info.backfill.done) / info.backfill.rate;
    info.state = e.failed ? State::kFailed : e.backfilled ? State::kRunning : State::kBackfilling;
    return info;
  }

  absl::StatusOr<AggregationInfo> Add(AggregationSpec spec, std::string module_bytes) {
    if (!module_bytes.empty()) spec.module_sha256 = components::Sha256Hex(module_bytes);
    RETURN_IF_ERROR(Validate(spec));
    ASSIGN_OR_RETURN(broker::TopicInfo input, broker_.GetTopic(spec.input));
    std::unique_ptr<WasmReducer> reducer;
    if (!module_bytes.empty()) {
      // Loaded now to refuse a bad module before anything is registered.
      ASSIGN_OR_RETURN(reducer, MakeReducer(spec, module_bytes));
      storage::DataDir dir(options_.data_dir);
      RETURN_IF_ERROR(fs_.CreateDirs(dir.ComponentsRoot()));
      RETURN_IF_ERROR(fs_.WriteFileAtomic(dir.ComponentModule(spec.module_sha256), module_bytes));
    } else if (spec.is_wasm()) {
      return absl::InvalidArgumentError("a WebAssembly reducer needs its module bytes");
    }
    {
      absl::MutexLock lock(&mu_);
      if (entries_.contains(spec.name)) {
        return absl::AlreadyExistsError(StrCat("aggregation \"", spec.name, "\" already exists"));
      }
    }
    for (const std::string& topic : {spec.results_topic(), spec.late_topic()}) {
      if (broker_.GetTopic(topic).ok()) continue;
      if (auto made = broker_.CreateTopic(topic, input.partition_count); !made.ok() &&
                                                                       !absl::IsAlreadyExists(made.status())) {
        return made.status();
      }
    }
    auto e = std::make_shared<Entry>();
    e->spec = spec;
    e->created_at_us = NowMicros();
    e->generation = e->created_at_us;
    storage::AggregationRow row;
    row.name = spec.name;
    row.spec = ToJson(spec);
    row.module_sha256 = spec.module_sha256;
    row.created_at_us = row.updated_at_us = e->created_at_us;
    // Offsets a group of this name kept from before are not this aggregation's.
    (void)broker_.DeleteGroup(spec.group(), spec.input);
    RETURN_IF_ERROR(store().Create(row));
    if (absl::Status s = OpenState(*e, /*fresh=*/true, CacheShare(/*more=*/1)); !s.ok()) {
      (void)store().Delete(spec.name);
      return s;
    }
    {
      absl::MutexLock lock(&mu_);
      entries_[spec.name] = e;
      Rebalance();
    }
    StartRunner(e);
    return Info(*e);
  }

  absl::Status Remove(std::string_view name) {
    std::shared_ptr<Entry> e;
    {
      absl::MutexLock lock(&mu_);
      auto it = entries_.find(std::string(name));
      if (it == entries_.end()) {
        return absl::NotFoundError(StrCat("aggregation \"", name, "\" does not exist"));
      }
      e = it->second;
      entries_.erase(it);
      Rebalance();
    }
    Stop(*e);
    e->agg->CloseWatchers();
    // Its state goes once the last reader lets go of it.
    e->agg->DropOnClose();
    RETURN_IF_ERROR(store().Delete(name));
    WaitForLeave(e->spec);
    (void)broker_.DeleteGroup(e->spec.group(), e->spec.input);
    return absl::OkStatus();
  }

  void WaitForLeave(const AggregationSpec& spec) {
    for (int i = 0; i < 500 && broker_.groups().HasMembers(spec.group(), spec.input); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  absl::StatusOr<AggregationInfo> Reset(std::string_view name, const StartSpec& to) {
    ASSIGN_OR_RETURN(std::shared_ptr<Entry> old, Find(name));
    Stop(*old);
    old->agg->CloseWatchers();
    old->agg->DropOnClose();
    WaitForLeave(old->spec);
    auto e = std::make_shared<Entry>();
    e->spec = old->spec;
    e->spec.from = to;
    e->created_at_us = old->created_at_us;
    e->generation = std::max(NowMicros(), old->generation + 1);
    storage::AggregationRow row;
    row.name = e->spec.name;
    row.spec = ToJson(e->spec);
    row.module_sha256 = e->spec.module_sha256;
    row.created_at_us = e->created_at_us;
    row.updated_at_us = e->generation;
    RETURN_IF_ERROR(store().Update(row));
    (void)broker_.DeleteGroup(e->spec.group(), e->spec.input);
    RETURN_IF_ERROR(OpenState(*e, /*fresh=*/true, CacheShare(/*more=*/0)));
    {
      absl::MutexLock lock(&mu_);
      entries_[e->spec.name] = e;
    }
    StartRunner(e);
    return Info(*e);
  }

  ManagerOptions options_;
  broker::Broker& broker_;
  FileSystem& fs_;
  prometheus::Family<prometheus::Counter>& records_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  // Watchers open (shared: a watcher may outlive the manager).
  std::shared_ptr<std::atomic<size_t>> watches_ = std::make_shared<std::atomic<size_t>>(0);
  WorkerPool pool_;  // last: its jobs use the members above, and it joins them when destroyed
};

Manager::Manager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Manager::~Manager() = default;

absl::StatusOr<std::unique_ptr<Manager>> Manager::Open(ManagerOptions options,
                                                       broker::Broker& broker, FileSystem& fs,
                                                       prometheus::Registry& registry) {
  auto impl = std::make_unique<Impl>(std::move(options), broker, fs, registry);
  RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<Manager>(new Manager(std::move(impl)));
}

absl::StatusOr<AggregationInfo> Manager::Add(AggregationSpec spec, std::string module_bytes) {
  return impl_->Add(std::move(spec), std::move(module_bytes));
}

absl::StatusOr<AggregationInfo> Manager::Get(std::string_view name) {
  ASSIGN_OR_RETURN(std::shared_ptr<Entry> e, impl_->Find(name));
  return impl_->Info(*e);
}

std::vector<AggregationInfo> Manager::List() {
  std::vector<std::shared_ptr<Entry>> all;
  {
    absl::MutexLock lock(&impl_->mu_);
    for (auto& [name, e] : impl_->entries_) all.push_back(e);
  }
  std::vector<AggregationInfo> out;
  for (auto& e : all) out.push_back(impl_->Info(*e));
  return out;
}

absl::Status Manager::Remove(std::string_view name) { return impl_->Remove(name); }

absl::StatusOr<AggregationInfo> Manager::Reset(std::string_view name, const StartSpec& to) {
  return impl_->Reset(name, to);
}

absl::StatusOr<KeyResult> Manager::GetKey(std::string_view name, const KeyQuery& query) {
  ASSIGN_OR_RETURN(std::shared_ptr<Entry> e, impl_->Find(name));
  return e->agg->GetKey(query);
}

absl::StatusOr<WindowResult> Manager::ListWindow(std::string_view name, const WindowQuery& query) {
  ASSIGN_OR_RETURN(std::shared_ptr<Entry> e, impl_->Find(name));
  return e->agg->ListWindow(query);
}

namespace {

// A watcher that holds one of the manager's watch slots while it lives.
class CountedWatcher final : public Watcher {
 public:
  CountedWatcher(std::unique_ptr<Watcher> inner, std::shared_ptr<std::atomic<size_t>> open)
      : inner_(std::move(inner)), open_(std::move(open)) {}
  ~CountedWatcher() override { open_->fetch_sub(1); }
  absl::StatusOr<std::vector<Update>> Next(int timeout_ms, uint64_t* dropped) override {
    return inner_->Next(timeout_ms, dropped);
  }

 private:
  std::unique_ptr<Watcher> inner_;
  std::shared_ptr<std::atomic<size_t>> open_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Watcher>> Manager::Watch(std::string_view name,
                                                        std::optional<std::string> key) {
  ASSIGN_OR_RETURN(std::shared_ptr<Entry> e, impl_->Find(name));
  const std::shared_ptr<std::atomic<size_t>>& open = impl_->watches_;
  if (open->fetch_add(1) >= impl_->options_.max_watches) {
    open->fetch_sub(1);
    return absl::ResourceExhaustedError(
        StrCat("too many watches: ", impl_->options_.max_watches,
               " are open, the most this server keeps; close one first"));
  }
  return std::make_unique<CountedWatcher>(e->agg->NewWatcher(std::move(key)), open);
}

}  // namespace nodata::aggregate
