#include "components/manager.h"

#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "broker/subscription.h"
#include "common/names.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "components/program.h"
#include "components/wasm_transform.h"
#include "nlohmann/json.hpp"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "spdlog/spdlog.h"
#include "storage/component_store.h"
#include "storage/data_dir.h"

namespace nodata::components {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxNameLength = 200;
// A runner that stopped on an error starts again after this long.
constexpr absl::Duration kRestartDelay = absl::Seconds(1);
// A runner's pipeline: batches handed to Publish and not yet acknowledged, at most this many
// and this many bytes of outputs; past either, the next batch waits for an acknowledgement.
constexpr size_t kMaxBatchesInFlight = 16;
constexpr uint64_t kMaxBytesInFlight = 64u << 20;
// Acknowledged input offsets are committed (an fsync'ed transaction) at most this often while
// batches are in flight, at once when none is.
constexpr absl::Duration kCommitInterval = absl::Milliseconds(5);


std::string SpecJson(const ComponentSpec& s) {
  json j = {{"input", s.input},
            {"outputs", s.outputs},
            {"config_base64", absl::Base64Escape(s.config)},
            {"on_error", OnErrorName(s.on_error)},
            {"fuel_per_record", s.fuel_per_record},
            {"parallelism", s.parallelism}};
  if (s.is_program()) {
    j["exec"] = s.exec;
    j["args"] = s.args;
  }
  if (!s.owner.empty()) {
    j["owner"] = s.owner;
    j["owner_scopes"] = s.owner_scopes;
  }
  return j.dump();
}

absl::StatusOr<ComponentSpec> SpecFromJson(std::string_view name, std::string_view text) {
  ComponentSpec s;
  s.name = std::string(name);
  try {
    const json j = json::parse(text);
    s.input = j.at("input").get<std::string>();
    s.outputs = j.at("outputs").get<std::vector<std::string>>();
    std::string config;
    if (!absl::Base64Unescape(j.at("config_base64").get<std::string>(), &config)) {
      return absl::DataLossError("bad config_base64");
    }
    s.config = std::move(config);
    auto on_error = OnErrorFromName(j.at("on_error").get<std::string>());
    if (!on_error) return absl::DataLossError("bad on_error");
    s.on_error = *on_error;
    s.fuel_per_record = j.at("fuel_per_record").get<uint64_t>();
    s.parallelism = j.at("parallelism").get<uint32_t>();
    s.exec = j.value("exec", std::string());
    s.args = j.value("args", std::vector<std::string>());
    s.owner = j.value("owner", std::string());
    s.owner_scopes = j.value("owner_scopes", std::string());
  } catch (const json::exception& e) {
    return absl::DataLossError(StrCat("component \"", name, "\": bad spec in the catalog: ",
                                      e.what()));
  }
  return s;
}

std::string GroupOf(std::string_view name) { return StrCat("component.", name); }
std::string DeadLetterTopic(std::string_view name) { return StrCat(name, ".dead-letter"); }
// The group whose committed offsets on each output topic are the component's scan-from
// positions (docs/formats/component-abi.md, "Exactly-once output").
std::string ScanGroupOf(std::string_view name) { return StrCat("component.", name, ".scan"); }
// Scan-from positions are saved at most this often (an older position stays valid: it only
// makes the scan at start longer).
constexpr int64_t kScanPositionsEveryUs = 1'000'000;

// The input partition and offset an output id of component `name` names
// (`<name>:<partition>:<offset>:<index>` or `...:dead-letter`); nullopt for other ids.
std::optional<std::pair<uint32_t, uint64_t>> ParseOutputId(std::string_view name,
                                                           std::string_view id) {
  if (id.size() <= name.size() || id.substr(0, name.size()) != name || id[name.size()] != ':') {
    return std::nullopt;
  }
  std::string_view rest = id.substr(name.size() + 1);
  const size_t a = rest.find(':');
  if (a == std::string_view::npos) return std::nullopt;
  const size_t b = rest.find(':', a + 1);
  if (b == std::string_view::npos || rest.find(':', b + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  uint64_t partition = 0;
  uint64_t offset = 0;
  if (!absl::SimpleAtoi(absl::string_view(rest.data(), a), &partition) ||
      !absl::SimpleAtoi(absl::string_view(rest.data() + a + 1, b - a - 1), &offset) ||
      partition > UINT32_MAX) {
    return std::nullopt;
  }
  return std::make_pair(static_cast<uint32_t>(partition), offset);
}

// How far a component's group is behind in each partition of its input.
std::vector<PartitionLag> GroupLag(broker::Broker& broker, std::string_view name,
                                   const std::string& input) {
  std::vector<PartitionLag> lag;
  auto group = broker.DescribeGroup(GroupOf(name), input);
  if (group.ok()) {
    for (const auto& p : group->partitions) {
      lag.push_back({p.partition.value(), p.committed.value_or(Offset()).value(),
                     p.end_offset.value(), p.lag});
    }
  }
  return lag;
}

// What a program component is checked for beyond what every component is.
absl::Status CheckProgram(const ComponentSpec& spec) {
  if (spec.exec.front() != '/') {
    return absl::InvalidArgumentError(
        StrCat("exec \"", spec.exec, "\" is not an absolute path"));
  }
  struct stat st;
  if (stat(spec.exec.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      access(spec.exec.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(
        StrCat("exec \"", spec.exec, "\" is not an executable file"));
  }
  if (spec.input.empty() && spec.outputs.empty()) {
    return absl::InvalidArgumentError(
        "a program component needs an input (a sink), outputs (a source) or both (a transform)");
  }
  if (spec.config.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        "a program component's configuration is text: it cannot hold a NUL byte");
  }
  return absl::OkStatus();
}

// A program component: its registration and the process that runs it.
struct ProgramComponent {
  ComponentSpec spec;
  int64_t created_at_us = 0;
  int64_t updated_at_us = 0;
  std::shared_ptr<ComponentLog> log;
  std::unique_ptr<Program> program;  // null until the server's address is known
  uint64_t earlier_starts = 0;       // of the processes this one replaced (update, reset)
};

}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : digest) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

const char* OnErrorName(OnError e) {
  switch (e) {
    case OnError::kDeadLetter: return "dead-letter";
    case OnError::kSkip: return "skip";
    case OnError::kStop: return "stop";
  }
  return "dead-letter";
}
std::optional<OnError> OnErrorFromName(std::string_view name) {
  if (name == "dead-letter" || name.empty()) return OnError::kDeadLetter;
  if (name == "skip") return OnError::kSkip;
  if (name == "stop") return OnError::kStop;
  return std::nullopt;
}
const char* StateName(State s) {
  switch (s) {
    case State::kStarting: return "STARTING";
    case State::kRunning: return "RUNNING";
    case State::kFailed: return "FAILED";
    case State::kStopped: return "STOPPED";
  }
  return "STARTING";
}

// The /metrics series of the components, labelled by component.
struct Metrics {
  explicit Metrics(prometheus::Registry& registry)
      : records_in(prometheus::BuildCounter()
                       .Name("nodata_component_records_in_total")
                       .Help("Input records a component processed")
                       .Register(registry)),
        records_out(prometheus::BuildCounter()
                        .Name("nodata_component_records_out_total")
                        .Help("Output records a component published")
                        .Register(registry)),
        errors(prometheus::BuildCounter()
                   .Name("nodata_component_errors_total")
                   .Help("Input records that failed in a component (a trap, fuel, non-zero)")
                   .Register(registry)),
        dead_lettered(prometheus::BuildCounter()
                          .Name("nodata_component_dead_lettered_total")
                          .Help("Failed input records published to <component>.dead-letter")
                          .Register(registry)),
        lag(prometheus::BuildGauge()
                .Name("nodata_component_lag")
                .Help("Input records not yet committed by a component, all partitions")
                .Register(registry)),
        process_seconds(prometheus::BuildHistogram()
                            .Name("nodata_component_process_seconds")
                            .Help("Time a component took over one batch of input records")
                            .Register(registry)) {}

  prometheus::Family<prometheus::Counter>& records_in;
  prometheus::Family<prometheus::Counter>& records_out;
  prometheus::Family<prometheus::Counter>& errors;
  prometheus::Family<prometheus::Counter>& dead_lettered;
  prometheus::Family<prometheus::Gauge>& lag;
  prometheus::Family<prometheus::Histogram>& process_seconds;
};

// One component's series; removed with the component.
class Series {
 public:
  Series(Metrics& m, const std::string& name) : m_(m) {
    const std::map<std::string, std::string> labels{{"component", name}};
    in_ = &m.records_in.Add(labels);
    out_ = &m.records_out.Add(labels);
    errors_ = &m.errors.Add(labels);
    dead_ = &m.dead_lettered.Add(labels);
    lag_ = &m.lag.Add(labels);
    process_ = &m.process_seconds.Add(
        labels, prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
                                                        5});
  }
  ~Series() {
    m_.records_in.Remove(in_);
    m_.records_out.Remove(out_);
    m_.errors.Remove(errors_);
    m_.dead_lettered.Remove(dead_);
    m_.lag.Remove(lag_);
    m_.process_seconds.Remove(process_);
  }
  prometheus::Counter* in_;
  prometheus::Counter* out_;
  prometheus::Counter* errors_;
  prometheus::Counter* dead_;
  prometheus::Gauge* lag_;
  prometheus::Histogram* process_;

 private:
  Metrics& m_;
};

// Jobs in flight, all components together (publishes awaiting their acknowledgement, commits
// and partitions' batch jobs, scheduled or running): the manager waits for them before its pool
// goes (an acknowledgement schedules the commit on that pool).
class InFlight {
 public:
  void Add() {
    absl::MutexLock lock(&mu_);
    ++n_;
  }
  void Done() {
    absl::MutexLock lock(&mu_);
    --n_;
  }
  void WaitNone() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(+[](int* n) { return *n == 0; }, &n_));
  }

 private:
  absl::Mutex mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};

// One component at work: a group member on its input topic, one transform per input partition,
// batches processed per partition in input order (partitions concurrently, `parallelism` at
// most), published then committed. Shared with the subscription's sink and the jobs in flight.
class Runner : public std::enable_shared_from_this<Runner> {
 public:
  Runner(broker::Broker& broker, WorkerPool& pool, InFlight& in_flight,
         const ManagerOptions& options, std::shared_ptr<Series> series,
         std::shared_ptr<ComponentLog> log, ComponentSpec spec, std::string sha256,
         std::shared_ptr<wasm::Module> module, int64_t created_at_us, int64_t updated_at_us)
      : broker_(broker), pool_(pool), in_flight_(in_flight), options_(options),
        series_(std::move(series)), log_(std::move(log)),
        spec_(std::move(spec)), sha256_(std::move(sha256)), module_(std::move(module)),
        created_at_us_(created_at_us), updated_at_us_(updated_at_us) {}

  // Joins the group and starts delivering; on failure the runner is FAILED and retries later.
  void Start();
  // Leaves the group; no callback or job of it runs once it returns. Not from its jobs.
  void Stop();

  // Each partition swaps its instance at its next batch boundary (a batch being processed
  // finishes on the old one).
  void SetModule(std::string sha256, std::shared_ptr<wasm::Module> module,
                 std::optional<std::string> config, int64_t now_us) {
    absl::MutexLock lock(&mu_);
    sha256_ = std::move(sha256);
    module_ = std::move(module);
    ++module_version_;
    if (config) spec_.config = std::move(*config);
    updated_at_us_ = now_us;
  }

  ComponentInfo Info();
  const ComponentSpec& spec() const { return spec_; }
  const std::shared_ptr<Series>& series() const { return series_; }
  const std::shared_ptr<ComponentLog>& log() const { return log_; }
  // Counts go on across a reset: the new runner starts from the old one's.
  void InheritCounters(const Runner& old) {
    records_in_ = old.records_in_.load();
    records_out_ = old.records_out_.load();
    errors_ = old.errors_.load();
    dead_lettered_ = old.dead_lettered_.load();
    fuel_ = old.fuel_.load();
  }
  // The component stops with `status` as its last error; with `restart`, it rejoins later.
  void Fail(const absl::Status& status, bool restart);
  // Forgets the scan-from positions (reset, remove): a start then scans nothing.
  void DropScanPositions();

 private:
  class Sink;
  friend class Sink;

  void Ready() {
    std::shared_ptr<broker::Subscription> sub;
    {
      absl::MutexLock lock(&mu_);
      sub = subscription_;
    }
    if (sub != nullptr) sub->Ready();
  }

  // A delivered batch awaiting its partition's job.
  struct Batch {
    std::vector<Record> records;
    uint64_t bytes = 0;  // keys and data: counted in bytes_in_flight_ until it is published
  };
  // One input partition's work: its queue of batches, drained by at most one job at a time on
  // the pool (process, publish, then the next), so that its batches are processed and
  // published in input order and its transform is never used by two threads.
  struct Strand {
    explicit Strand(PartitionId p) : partition(p) {}
    const PartitionId partition;
    // Under mu_:
    std::deque<Batch> queue;
    bool scheduled = false;  // its job is on the pool or waiting for a slot (`waiting_`)
    bool dropped = false;    // revoked, or of an earlier start: nothing more of it is published
    // Only its job uses these:
    std::unique_ptr<WasmTransform> transform;
    uint64_t module_version = 0;  // of `transform`
  };

  void OnAssignment(const broker::Assignment& a) {
    absl::MutexLock lock(&mu_);
    generation_ = a.generation;
    // The queues and instances of partitions no longer read go (an instance at work goes with
    // its job).
    auto lost = [&](PartitionId p) {
      return std::find(a.partitions.begin(), a.partitions.end(), p) == a.partitions.end();
    };
    for (auto it = strands_.begin(); it != strands_.end();) {
      if (!lost(it->first)) {
        ++it;
        continue;
      }
      DropStrandLocked(*it->second);
      it = strands_.erase(it);
    }
    // Batches of a partition another member reads now are never committed here: that member
    // processes them again (their outputs are duplicates).
    std::erase_if(flights_, [&](const auto& f) { return lost(f.first); });
    std::erase_if(to_commit_, [&](const auto& c) { return lost(c.first); });
    if (state_ == State::kStarting) state_ = State::kRunning;
  }
  void OnBatch(broker::RecordBatch& batch);
  void OnEnd(absl::Status status);
  // Partitions processing at once at most: `parallelism` (0: every partition), and no more
  // than the pool's threads but one (at least one): the deliveries, acknowledgements and
  // commits run on the pool too, and a module on every thread starves them (measured: the
  // interpreter on two threads of two cores ran slower than on one).
  size_t MaxActiveLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const size_t threads = static_cast<size_t>(std::max(2, options_.threads)) - 1;
    return spec_.parallelism == 0 ? threads : std::min<size_t>(spec_.parallelism, threads);
  }
  // Gives `strand` a job (or a place in `waiting_`) when it has batches and none.
  void WakeLocked(const std::shared_ptr<Strand>& strand) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleStrandLocked(std::shared_ptr<Strand> strand) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a strand's job: runs it again (at the back of the pool's queue, so that other
  // partitions and the acknowledgements get their turn), or lets a waiting strand have its
  // slot.
  void NextLocked(const std::shared_ptr<Strand>& strand) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartWaitingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Its queued batches leave the pipeline's bounds; its job publishes nothing more.
  void DropStrandLocked(Strand& strand) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A strand's job: its next batch through its transform, then published.
  void RunStrand(const std::shared_ptr<Strand>& strand);
  void Process(Strand& strand, Batch batch, uint64_t epoch);
  // Whether a job's batch still counts: of this start, its partition still read here. A job
  // outlives the start it was scheduled by (and the subscription's Close); its errors then
  // must not fail the next start.
  bool Current(const Strand& strand, uint64_t epoch) {
    absl::MutexLock lock(&mu_);
    return epoch == epoch_ && !strand.dropped;
  }
  // The pipeline (see the README): a batch's outputs go to Publish and the next batch is
  // taken while they are acknowledged (within the bounds); acknowledged batches are committed
  // in input order, the longest acknowledged prefix per partition, coalesced.
  struct Pending;
  struct Flight {
    uint64_t seq = 0;
    Offset next;  // the input offset to commit once it and the batches before it are acked
    bool acked = false;
    bool stop_after = false;
    std::string stop_error;
  };
  void Publish(Strand& strand, std::shared_ptr<Pending> pending, uint64_t input_bytes);
  void OnPublished(const Pending& pending, const absl::Status& published);
  // Takes the next batch when one is owed and the pipeline is under its bounds.
  void MaybeReady();
  void ScheduleCommitLocked(bool now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Commit(uint64_t epoch);

  // Exactly-once beyond the dedupe window. Positions: per output topic, (partition, offset).
  using Positions = std::map<std::string, std::vector<std::pair<PartitionId, Offset>>>;
  // The output topics: the outputs and the dead-letter topic when there is one.
  std::vector<std::string> OutputTopics();
  absl::StatusOr<Positions> OutputEnds(const std::vector<std::string>& topics);
  absl::Status SavePositions(const Positions& positions);
  // Before the first batch of a start: reads the outputs from the saved positions and keeps
  // the ids of outputs of inputs not yet committed (they are not published again); without
  // saved positions, saves the outputs' ends.
  absl::Status RecoverPublished();

  broker::Broker& broker_;
  WorkerPool& pool_;
  InFlight& in_flight_;
  const ManagerOptions& options_;
  const std::shared_ptr<Series> series_;  // shared with the runner a reset replaces it by
  const std::shared_ptr<ComponentLog> log_;  // likewise
  std::atomic<int64_t> lag_refreshed_us_{0};

  absl::Mutex mu_;
  ComponentSpec spec_;
  std::string sha256_;
  std::shared_ptr<wasm::Module> module_;
  uint64_t module_version_ = 0;  // moves with each update: the strands make new instances
  const int64_t created_at_us_;
  int64_t updated_at_us_;
  State state_ = State::kStarting;
  std::string last_error_;
  uint64_t generation_ = 0;
  std::string tier_;
  std::shared_ptr<broker::Subscription> subscription_;
  bool stopped_ = false;

  // The pipeline, of the current start (`epoch_`): acknowledgements of an earlier one are
  // ignored, its uncommitted batches are processed again.
  uint64_t epoch_ = 0;
  bool broken_ = false;      // failed: nothing more is taken or committed until a restart
  bool ready_owed_ = false;  // a batch was delivered and Ready not yet called for it
  bool halting_ ABSL_GUARDED_BY(mu_) = false;  // --on-error stop hit: no batch is taken
  uint64_t next_seq_ = 0;
  // Queued or processing (input bytes), or handed to Publish and not yet acknowledged
  // (output bytes).
  size_t batches_in_flight_ = 0;
  uint64_t bytes_in_flight_ = 0;
  std::map<PartitionId, std::shared_ptr<Strand>> strands_ ABSL_GUARDED_BY(mu_);  // this start's
  // Strands with batches waiting for a slot (past MaxActiveLocked), in turn.
  std::deque<std::shared_ptr<Strand>> waiting_ ABSL_GUARDED_BY(mu_);
  // Strands with a job on the pool (of any start: an earlier start's job frees its slot when
  // it returns).
  size_t active_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<PartitionId, std::deque<Flight>> flights_;  // per partition, in input order
  std::map<PartitionId, Offset> to_commit_;            // acknowledged, not yet committed
  bool commit_scheduled_ = false;  // a Commit is scheduled or running (one at a time)
  bool stop_pending_ = false;      // --on-error stop: fail once to_commit_ is committed
  std::string stop_error_;
  // Ids of outputs already stored for inputs not yet committed (found at start): skipped.
  std::set<std::string, std::less<>> published_;
  // Output ends read before publishing the batch of that sequence number (and every later
  // one): a valid scan-from position while no batch before it is uncommitted. Oldest first.
  std::deque<std::pair<uint64_t, Positions>> snapshots_;
  int64_t snapshot_us_ = 0;
  int64_t positions_saved_us_ = 0;
  uint64_t positions_saved_seq_ = 0;

  std::atomic<uint64_t> records_in_{0};
  std::atomic<uint64_t> records_out_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> dead_lettered_{0};
  std::atomic<uint64_t> fuel_{0};
};

class Runner::Sink final : public broker::SubscriptionSink {
 public:
  explicit Sink(std::weak_ptr<Runner> runner) : runner_(std::move(runner)) {}
  void OnAssignment(const broker::Assignment& a) override {
    if (auto r = runner_.lock()) {
      r->OnAssignment(a);
      r->Ready();
    }
  }
  void OnBatch(broker::RecordBatch& batch) override {
    if (auto r = runner_.lock()) r->OnBatch(batch);
  }
  void OnEnd(absl::Status status) override {
    if (auto r = runner_.lock()) r->OnEnd(std::move(status));
  }

 private:
  std::weak_ptr<Runner> runner_;
};

// A batch's outputs on their way: the events borrow from the owned strings here.
struct Runner::Pending {
  uint64_t epoch = 0;
  uint64_t seq = 0;
  uint64_t bytes = 0;
  PartitionId partition;
  Offset next;  // the input offset to commit once the events are acknowledged
  std::vector<Record> records;  // the inputs (dead letters borrow from them)
  // What the events borrow; deques, so that adding never moves what was lent.
  std::deque<std::string> strings;
  std::deque<std::vector<std::pair<std::string_view, std::string_view>>> headers;
  std::vector<broker::EventIn> events;
  uint64_t outputs = 0;
  uint64_t dead_lettered = 0;
  bool stop_after = false;  // --on-error stop: the runner fails once this batch is committed
  std::string stop_error;
};

void Runner::Start() {
  broker::SubscriptionOptions o;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    o.topic = spec_.input;
    o.group = GroupOf(spec_.name);
    o.consumer_id = GroupOf(spec_.name);
    o.peer = "component";
    o.max_records = options_.max_batch_records;
    o.max_bytes = 16u << 20;
    o.auto_commit = false;  // committed after the outputs are acknowledged
    ++epoch_;
    broken_ = false;
    ready_owed_ = false;
    halting_ = false;
    batches_in_flight_ = 0;
    bytes_in_flight_ = 0;
    // The earlier start's queues go (their batches are delivered again); a job of it still at
    // work publishes nothing.
    for (auto& [p, strand] : strands_) {
      strand->dropped = true;
      strand->queue.clear();
    }
    strands_.clear();
    for (auto& strand : waiting_) strand->scheduled = false;
    waiting_.clear();
    flights_.clear();
    to_commit_.clear();
    commit_scheduled_ = false;
    stop_pending_ = false;
  }
  if (absl::Status recovered = RecoverPublished(); !recovered.ok()) {
    Fail(absl::Status(recovered.code(), StrCat("reading what it published before: ",
                                               ToStd(recovered.message()))),
         /*restart=*/true);
    return;
  }
  auto sub = broker::Subscription::Open(broker_, pool_, std::move(o),
                                        std::make_shared<Sink>(weak_from_this()));
  if (!sub.ok()) {
    Fail(sub.status(), /*restart=*/true);
    return;
  }
  std::shared_ptr<broker::Subscription> started;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    subscription_ = std::move(*sub);
    started = subscription_;
  }
  started->Start();
}

std::vector<std::string> Runner::OutputTopics() {
  std::vector<std::string> topics;
  std::string name;
  {
    absl::MutexLock lock(&mu_);
    topics = spec_.outputs;
    name = spec_.name;
  }
  // The dead-letter topic exists under the dead-letter policy, and stays after an update.
  if (broker_.GetTopic(DeadLetterTopic(name)).ok()) topics.push_back(DeadLetterTopic(name));
  return topics;
}

absl::StatusOr<Runner::Positions> Runner::OutputEnds(const std::vector<std::string>& topics) {
  Positions ends;
  for (const std::string& t : topics) {
    ASSIGN_OR_RETURN(broker::TopicInfo info, broker_.GetTopic(t));
    auto& v = ends[t];
    for (const broker::PartitionInfo& p : info.partitions) {
      v.emplace_back(p.partition, p.stats.end_offset);
    }
  }
  return ends;
}

absl::Status Runner::SavePositions(const Positions& positions) {
  const std::string group = ScanGroupOf(spec_.name);
  for (const auto& [topic, offsets] : positions) {
    if (offsets.empty()) continue;
    RETURN_IF_ERROR(broker_.CommitOffsets(group, topic, offsets));
  }
  return absl::OkStatus();
}

void Runner::DropScanPositions() {
  const std::string group = ScanGroupOf(spec_.name);
  for (const std::string& t : OutputTopics()) {
    absl::Status s = broker_.DeleteGroup(group, t);
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
      spdlog::warn("component {}: dropping its scan positions on {}: {}", spec_.name, t,
                   ToStd(s.message()));
    }
  }
}

absl::Status Runner::RecoverPublished() {
  const std::vector<std::string> topics = OutputTopics();
  const std::string scan_group = ScanGroupOf(spec_.name);
  Positions saved;
  bool any_saved = false;
  for (const std::string& t : topics) {
    auto offsets = broker_.CommittedOffsets(scan_group, t);
    if (!offsets.ok()) {
      if (offsets.status().code() == absl::StatusCode::kNotFound) continue;
      return offsets.status();
    }
    auto& v = saved[t];
    for (const auto& [p, o] : *offsets) v.emplace_back(p, o);
    any_saved = any_saved || !v.empty();
  }
  std::set<std::string, std::less<>> published;
  Positions start_positions;
  if (!any_saved) {
    // New, reset, or from a version without positions: nothing of it awaits a commit (or, for
    // the latter, only what the dedupe window covers). Every later output lands past the ends.
    ASSIGN_OR_RETURN(start_positions, OutputEnds(topics));
    RETURN_IF_ERROR(SavePositions(start_positions));
  } else {
    ASSIGN_OR_RETURN(Positions ends, OutputEnds(topics));
    auto committed_or = broker_.CommittedOffsets(GroupOf(spec_.name), spec_.input);
    std::map<PartitionId, Offset> committed;
    if (committed_or.ok()) {
      committed = *committed_or;
    } else if (committed_or.status().code() != absl::StatusCode::kNotFound) {
      return committed_or.status();
    }
    for (const auto& [topic, partitions] : ends) {
      std::map<PartitionId, Offset> from(saved[topic].begin(), saved[topic].end());
      for (const auto& [p, end] : partitions) {
        // A partition without a position (the topic grew since) is read from its start.
        auto f = from.find(p);
        Offset next = f == from.end() ? Offset(0) : f->second;
        absl::Status read;
        while (next < end && read.ok()) {
          const Offset before = next;
          read = broker_.Scan(topic, p, next, 10000, 16u << 20, [&](const DecodedRecord& r) {
            next = r.offset.Next();
            auto from_input = ParseOutputId(spec_.name, r.id);
            if (!from_input) return;
            auto c = committed.find(PartitionId(from_input->first));
            const uint64_t done = c == committed.end() ? 0 : c->second.value();
            if (from_input->second >= done) published.emplace(r.id);
          });
          if (read.code() == absl::StatusCode::kOutOfRange && next == before) {
            // Below the partition's start (retention): from there.
            auto info = broker_.GetTopic(topic);
            if (!info.ok()) return info.status();
            for (const auto& pi : info->partitions) {
              if (pi.partition == p && pi.stats.start_offset > next) {
                next = pi.stats.start_offset;
                read = absl::OkStatus();
              }
            }
          }
          if (read.ok() && next == before) break;  // nothing more readable
        }
        RETURN_IF_ERROR(read);
      }
    }
    start_positions = std::move(saved);
  }
  absl::MutexLock lock(&mu_);
  published_ = std::move(published);
  snapshots_.clear();
  snapshots_.emplace_back(next_seq_, std::move(start_positions));
  snapshot_us_ = NowMicros();
  positions_saved_us_ = snapshot_us_;
  positions_saved_seq_ = next_seq_;
  return absl::OkStatus();
}

void Runner::Stop() {
  std::shared_ptr<broker::Subscription> sub;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    state_ = State::kStopped;
    sub = std::move(subscription_);
  }
  if (sub != nullptr) sub->Close();
  // The partitions' jobs: those queued return at once, one in the module finishes its batch
  // (and publishes nothing).
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(+[](size_t* active) { return *active == 0; }, &active_));
}

void Runner::Fail(const absl::Status& status, bool restart) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    state_ = State::kFailed;
    broken_ = true;
    last_error_ = std::string(ToStd(status.message()));
  }
  // ComponentLog mirrors it to the server's log.
  log_->Append("server", 2, restart ? StrCat(status.message(), "; starting again in ",
                                             absl::FormatDuration(kRestartDelay))
                                    : StrCat(status.message(), "; stopped"));
  if (!restart) return;
  std::weak_ptr<Runner> weak = weak_from_this();
  pool_.ScheduleAfter(kRestartDelay, [weak] {
    auto self = weak.lock();
    if (!self) return;
    std::shared_ptr<broker::Subscription> old;
    {
      absl::MutexLock lock(&self->mu_);
      if (self->stopped_) return;
      old = std::move(self->subscription_);
      self->state_ = State::kStarting;
    }
    if (old != nullptr) old->Close();
    self->Start();
  });
}

void Runner::OnEnd(absl::Status status) {
  if (status.ok()) status = absl::AbortedError("the input subscription ended");
  Fail(status, /*restart=*/true);
}

void Runner::OnBatch(broker::RecordBatch& batch) {
  Batch taken;
  batch.ForEach([&](const DecodedRecord& r) { taken.records.push_back(Record::From(r)); });
  if (taken.records.empty()) return;
  for (const Record& r : taken.records) taken.bytes += r.key.size() + r.data.size();
  {
    absl::MutexLock lock(&mu_);
    if (broken_ || stopped_ || halting_) return;  // no Ready: a restart takes over, or the stop
    std::shared_ptr<Strand>& strand = strands_[batch.partition()];
    if (strand == nullptr) strand = std::make_shared<Strand>(batch.partition());
    ++batches_in_flight_;
    bytes_in_flight_ += taken.bytes;
    strand->queue.push_back(std::move(taken));
    ready_owed_ = true;
    WakeLocked(strand);
  }
  // The next batch is taken now, while this one waits for (or is in) its partition's job.
  MaybeReady();
}

void Runner::WakeLocked(const std::shared_ptr<Strand>& strand) {
  if (strand->scheduled || strand->queue.empty()) return;
  strand->scheduled = true;
  if (active_ < MaxActiveLocked()) {
    ++active_;
    ScheduleStrandLocked(strand);
  } else {
    waiting_.push_back(strand);
  }
}

void Runner::ScheduleStrandLocked(std::shared_ptr<Strand> strand) {
  in_flight_.Add();
  pool_.Schedule([self = shared_from_this(), strand = std::move(strand), &in_flight = in_flight_] {
    self->RunStrand(strand);
    in_flight.Done();
  });
}

void Runner::NextLocked(const std::shared_ptr<Strand>& strand) {
  const bool more = !strand->queue.empty() && !strand->dropped && !broken_ && !stopped_;
  if (more && waiting_.empty()) {
    ScheduleStrandLocked(strand);  // keeps its slot
    return;
  }
  if (more) {
    waiting_.push_back(strand);
  } else {
    strand->scheduled = false;
  }
  --active_;
  StartWaitingLocked();
}

void Runner::StartWaitingLocked() {
  while (!waiting_.empty() && active_ < MaxActiveLocked()) {
    std::shared_ptr<Strand> strand = std::move(waiting_.front());
    waiting_.pop_front();
    if (strand->dropped || strand->queue.empty() || broken_ || stopped_) {
      strand->scheduled = false;
      continue;
    }
    ++active_;
    ScheduleStrandLocked(std::move(strand));
  }
}

void Runner::DropStrandLocked(Strand& strand) {
  strand.dropped = true;
  for (const Batch& b : strand.queue) {
    --batches_in_flight_;
    bytes_in_flight_ -= b.bytes;
  }
  strand.queue.clear();
}

void Runner::RunStrand(const std::shared_ptr<Strand>& strand) {
  Batch batch;
  uint64_t epoch;
  {
    absl::MutexLock lock(&mu_);
    if (strand->dropped || strand->queue.empty() || broken_ || stopped_) {
      NextLocked(strand);
      return;
    }
    batch = std::move(strand->queue.front());
    strand->queue.pop_front();
    epoch = epoch_;
  }
  Process(*strand, std::move(batch), epoch);
  absl::MutexLock lock(&mu_);
  NextLocked(strand);
}

void Runner::Process(Strand& strand, Batch batch, uint64_t epoch) {
  const PartitionId partition = strand.partition;
  std::vector<Record>& records = batch.records;
  records_in_ += records.size();
  series_->in_->Increment(static_cast<double>(records.size()));
  const int64_t started_us = NowMicros();

  std::shared_ptr<wasm::Module> module;
  uint64_t module_version;
  ComponentSpec spec;
  {
    absl::MutexLock lock(&mu_);
    module = module_;
    module_version = module_version_;
    spec = spec_;
  }
  // A new instance on the first batch of the partition, and on the first after an update (the
  // batch boundary where the module is swapped).
  if (strand.transform == nullptr || strand.module_version != module_version) {
    strand.transform.reset();
    TransformOptions t;
    t.outputs = static_cast<uint32_t>(spec.outputs.size());
    t.config = spec.config;
    t.fuel_per_record = spec.fuel_per_record;
    t.max_event_bytes = options_.max_event_bytes;
    auto log = [component_log = log_](int level, std::string_view line) {
      component_log->Append("log", level, line);
    };
    auto made = WasmTransform::Create(module, std::move(t), std::move(log));
    if (!made.ok()) {
      // No more batches: the component stays stopped until it is updated or reset.
      if (Current(strand, epoch)) Fail(made.status(), /*restart=*/false);
      return;
    }
    strand.transform = std::move(*made);
    strand.module_version = module_version;
    absl::MutexLock lock(&mu_);
    tier_ = wasm::TierName(strand.transform->tier());
  }
  if (options_.before_process) options_.before_process(spec.name, partition.value());
  // The strand's job is the only user of its transform.
  auto result = strand.transform->Process(partition, records);
  if (!result.ok()) {
    if (Current(strand, epoch)) Fail(result.status(), /*restart=*/true);
    return;
  }
  fuel_ += result->fuel_used;
  series_->process_->Observe(static_cast<double>(NowMicros() - started_us) / 1e6);
  series_->errors_->Increment(static_cast<double>(result->failed.size()));

  auto pending = std::make_shared<Pending>();
  pending->epoch = epoch;
  pending->partition = partition;
  pending->next = records.back().offset.Next();
  pending->records = std::move(records);  // moving the vector leaves its strings in place
  const std::vector<Record>& inputs = pending->records;
  auto keep = [&](std::string s) -> std::string_view {
    pending->strings.push_back(std::move(s));
    return pending->strings.back();
  };
  bool recovering;
  {
    absl::MutexLock lock(&mu_);
    recovering = !published_.empty();
  }
  // Outputs found stored at start are not published again (beyond the dedupe window too).
  auto stored = [&](const std::string& id) {
    if (!recovering) return false;
    absl::MutexLock lock(&mu_);
    return published_.erase(id) > 0;
  };
  std::vector<uint32_t> index(inputs.size(), 0);
  std::vector<Offset> event_input;  // the input offset of each output event
  for (Output& o : result->outputs) {
    const Record& in = inputs[o.input_index];
    std::string id = StrCat(spec.name, ":", partition, ":", in.offset, ":", index[o.input_index]++);
    if (stored(id)) continue;
    event_input.push_back(in.offset);
    broker::EventIn e;
    e.topic = keep(spec.outputs[o.output]);
    e.id = keep(std::move(id));
    e.key = keep(std::move(o.key));
    e.data = keep(std::move(o.data));
    e.timestamp_us = o.timestamp_us;
    auto& h = pending->headers.emplace_back();
    for (auto& [k, v] : o.headers) h.emplace_back(keep(std::move(k)), keep(std::move(v)));
    e.headers = h;
    pending->events.push_back(e);
  }
  pending->outputs = pending->events.size();
  for (const FailedRecord& f : result->failed) {
    ++errors_;
    const Record& in = inputs[f.input_index];
    {
      absl::MutexLock lock(&mu_);
      last_error_ = StrCat("record ", partition, "/", in.offset, ": ", f.error);
    }
    if (spec.on_error == OnError::kStop) {
      // Commit up to the failing record; outputs of it and of later inputs are not published
      // (outputs come in input order, so they are the tail).
      pending->next = in.offset;
      pending->stop_after = true;
      pending->stop_error = StrCat("record ", partition, "/", in.offset, ": ", f.error);
      size_t keep_events = 0;
      for (Offset from : event_input) {
        if (from < in.offset) ++keep_events;
      }
      pending->events.resize(keep_events);
      pending->outputs = keep_events;
      break;
    }
    if (spec.on_error == OnError::kSkip) continue;
    std::string id = StrCat(spec.name, ":", partition, ":", in.offset, ":dead-letter");
    if (stored(id)) continue;
    broker::EventIn e;
    e.topic = keep(DeadLetterTopic(spec.name));
    e.id = keep(std::move(id));
    e.key = in.key;
    e.data = in.data;
    e.timestamp_us = in.timestamp_us;
    auto& h = pending->headers.emplace_back();
    for (const auto& [k, v] : in.headers) h.emplace_back(k, v);
    h.emplace_back("nodata-error", keep(f.error));
    h.emplace_back("nodata-source", keep(StrCat(spec.input, "/", partition, "/", in.offset)));
    h.emplace_back("nodata-component", keep(spec.name));
    e.headers = h;
    pending->events.push_back(e);
    ++pending->dead_lettered;
  }
  Publish(strand, std::move(pending), batch.bytes);
}

void Runner::Publish(Strand& strand, std::shared_ptr<Pending> pending, uint64_t input_bytes) {
  for (const broker::EventIn& e : pending->events) {
    pending->bytes += e.key.size() + e.data.size() + e.id.size();
  }
  // Now and then, the output ends before this batch is published: a scan-from position for
  // when no batch before it (in sequence numbers, taken after the read) awaits its commit.
  bool read_ends = false;
  {
    absl::MutexLock lock(&mu_);
    if (NowMicros() - snapshot_us_ >= kScanPositionsEveryUs) {
      snapshot_us_ = NowMicros();
      read_ends = true;
    }
  }
  std::optional<Positions> ends;
  if (read_ends) {
    auto read = OutputEnds(OutputTopics());
    if (read.ok()) ends = std::move(*read);
  }
  {
    absl::MutexLock lock(&mu_);
    // Failed or of an earlier start: no Ready, a restart takes over (and resets the bounds).
    if (pending->epoch != epoch_ || broken_ || stopped_) return;
    if (strand.dropped) {
      // Revoked while it was processed: not published, never committed here.
      --batches_in_flight_;
      bytes_in_flight_ -= input_bytes;
      pending = nullptr;
    } else {
      pending->seq = next_seq_++;
      if (ends) snapshots_.emplace_back(pending->seq, std::move(*ends));
      Flight f;
      f.seq = pending->seq;
      f.next = pending->next;
      f.stop_after = pending->stop_after;
      f.stop_error = pending->stop_error;
      flights_[pending->partition].push_back(std::move(f));
      bytes_in_flight_ += pending->bytes;
      bytes_in_flight_ -= input_bytes;  // its inputs were counted until now
      if (pending->stop_after) {
        // --on-error stop: no batch is taken any more, none of its partition processed.
        halting_ = true;
        DropStrandLocked(strand);
      }
    }
  }
  if (pending == nullptr) {
    MaybeReady();
    return;
  }
  if (pending->events.empty()) {
    OnPublished(*pending, absl::OkStatus());
    MaybeReady();
    return;
  }
  in_flight_.Add();
  // Publish appends to each output partition before it returns, in call order (under the
  // topic's lock), and a partition's batches are published one at a time from its strand: a
  // later batch's outputs never precede an earlier one's of the same input partition in an
  // output partition.
  broker_.Publish(pending->events, [self = shared_from_this(), pending](
                                       absl::Status s, std::vector<broker::AckOut>) mutable {
    // Acknowledged on a sync thread: the bookkeeping (and a Ready that may read) is the pool's.
    WorkerPool& pool = self->pool_;
    pool.Schedule([self = std::move(self), pending = std::move(pending), s = std::move(s)] {
      self->OnPublished(*pending, s);
      self->MaybeReady();
      self->in_flight_.Done();
    });
  });
  MaybeReady();
}

void Runner::OnPublished(const Pending& pending, const absl::Status& published) {
  if (!published.ok()) {
    Fail(published, /*restart=*/true);
    return;
  }
  records_out_ += pending.outputs;
  dead_lettered_ += pending.dead_lettered;
  series_->out_->Increment(static_cast<double>(pending.outputs));
  series_->dead_->Increment(static_cast<double>(pending.dead_lettered));
  absl::MutexLock lock(&mu_);
  if (pending.epoch != epoch_ || broken_ || stopped_) return;
  --batches_in_flight_;
  bytes_in_flight_ -= pending.bytes;
  auto it = flights_.find(pending.partition);
  if (it == flights_.end()) return;  // the partition went to another member
  std::deque<Flight>& q = it->second;
  for (Flight& f : q) {
    if (f.seq == pending.seq) f.acked = true;
  }
  // The acknowledged prefix is committable: acknowledgements of different batches may come in
  // any order (different output partitions sync apart), commits never skip a batch.
  bool moved = false;
  while (!q.empty() && q.front().acked) {
    to_commit_[pending.partition] = q.front().next;
    if (q.front().stop_after) {
      stop_pending_ = true;
      stop_error_ = q.front().stop_error;
    }
    q.pop_front();
    moved = true;
  }
  if (q.empty()) flights_.erase(it);
  if (moved) ScheduleCommitLocked(/*now=*/batches_in_flight_ == 0);
}

void Runner::MaybeReady() {
  {
    absl::MutexLock lock(&mu_);
    if (!ready_owed_ || broken_ || stopped_ || halting_) return;
    if (batches_in_flight_ >= kMaxBatchesInFlight || bytes_in_flight_ >= kMaxBytesInFlight) {
      return;  // an acknowledgement calls again
    }
    ready_owed_ = false;
  }
  Ready();
}

void Runner::ScheduleCommitLocked(bool now) {
  if (commit_scheduled_) return;  // the running or scheduled commit takes what is there
  commit_scheduled_ = true;
  in_flight_.Add();
  std::weak_ptr<Runner> weak = weak_from_this();
  auto job = [weak, epoch = epoch_, &in_flight = in_flight_] {
    if (auto self = weak.lock()) self->Commit(epoch);
    in_flight.Done();
  };
  if (now) {
    pool_.Schedule(std::move(job));
  } else {
    pool_.ScheduleAfter(kCommitInterval, std::move(job));
  }
}

void Runner::Commit(uint64_t epoch) {
  std::vector<std::pair<PartitionId, Offset>> offsets;
  uint64_t generation;
  std::string group;
  std::string input;
  bool stop;
  std::string stop_error;
  std::optional<Positions> positions;
  {
    absl::MutexLock lock(&mu_);
    if (epoch != epoch_ || broken_ || stopped_) return;
    offsets.assign(to_commit_.begin(), to_commit_.end());
    to_commit_.clear();
    generation = generation_;
    group = GroupOf(spec_.name);
    input = spec_.input;
    stop = stop_pending_;
    stop_error = stop_error_;
    // The scan-from positions once this commit is made: the newest ends read before the
    // oldest batch still uncommitted was published (every output of an uncommitted input
    // lies past them). Saved after the commit: a crash in between leaves older, lower
    // positions, which are valid too.
    uint64_t oldest = next_seq_;
    for (const auto& [p, q] : flights_) {
      if (!q.empty()) oldest = std::min(oldest, q.front().seq);
    }
    while (snapshots_.size() > 1 && snapshots_[1].first <= oldest) snapshots_.pop_front();
    if (!snapshots_.empty() && snapshots_.front().first > positions_saved_seq_ &&
        NowMicros() - positions_saved_us_ >= kScanPositionsEveryUs) {
      positions = snapshots_.front().second;
      positions_saved_seq_ = snapshots_.front().first;
      positions_saved_us_ = NowMicros();
    }
  }
  absl::Status s = offsets.empty() ? absl::OkStatus()
                                   : broker_.CommitOffsets(group, input, offsets, generation,
                                                           group);
  if (s.ok() && positions) s = SavePositions(*positions);
  if (!s.ok()) {
    // Fenced or gone: the partition moved on; a restart rejoins the group.
    Fail(s, /*restart=*/true);
    return;
  }
  // The lag gauge, at most about once a second (it reads the group's committed offsets).
  const int64_t now = NowMicros();
  if (now - lag_refreshed_us_.load() > 1'000'000) {
    lag_refreshed_us_ = now;
    auto d = broker_.DescribeGroup(group, input);
    if (d.ok()) {
      uint64_t lag = 0;
      for (const auto& p : d->partitions) lag += p.lag;
      series_->lag_->Set(static_cast<double>(lag));
    }
  }
  if (stop) {
    Fail(absl::AbortedError(stop_error), /*restart=*/false);
    return;
  }
  absl::MutexLock lock(&mu_);
  if (epoch != epoch_) return;
  commit_scheduled_ = false;
  // What was acknowledged while this commit ran goes in the next one.
  if (!to_commit_.empty()) ScheduleCommitLocked(/*now=*/batches_in_flight_ == 0);
}

ComponentInfo Runner::Info() {
  ComponentInfo info;
  {
    absl::MutexLock lock(&mu_);
    info.spec = spec_;
    info.module_sha256 = sha256_;
    info.state = state_;
    info.tier = tier_;
    info.last_error = last_error_;
    info.created_at_us = created_at_us_;
    info.updated_at_us = updated_at_us_;
  }
  info.records_in = records_in_;
  info.records_out = records_out_;
  info.errors = errors_;
  info.dead_lettered = dead_lettered_;
  info.mean_fuel_per_record =
      info.records_in == 0 ? 0 : static_cast<double>(fuel_) / static_cast<double>(info.records_in);
  info.lag = GroupLag(broker_, info.spec.name, info.spec.input);
  return info;
}

class Manager::Impl {
 public:
  Impl(ManagerOptions options, broker::Broker& broker, FileSystem& fs,
       prometheus::Registry& registry)
      : options_(WithThreads(std::move(options))), broker_(broker), fs_(fs),
        dir_(options_.data_dir), metrics_(registry), pool_(options_.threads) {}

  absl::Status Open() {
    if (options_.runtime == nullptr) return absl::InvalidArgumentError("no WebAssembly runtime");
    RETURN_IF_ERROR(fs_.CreateDirs(dir_.ComponentsRoot()));
    ASSIGN_OR_RETURN(std::vector<storage::ComponentRow> rows, store().List());
    std::set<std::string> used;
    for (const storage::ComponentRow& row : rows) {
      ASSIGN_OR_RETURN(ComponentSpec spec, SpecFromJson(row.name, row.spec));
      if (spec.is_program()) {
        auto pc = std::make_shared<ProgramComponent>();
        pc->spec = std::move(spec);
        pc->created_at_us = row.created_at_us;
        pc->updated_at_us = row.updated_at_us;
        pc->log = std::make_shared<ComponentLog>(row.name);
        absl::MutexLock lock(&mu_);
        logs_[row.name] = pc->log;
        programs_[row.name] = std::move(pc);
        continue;
      }
      used.insert(row.module_sha256 + ".wasm");
      auto bytes = fs_.ReadFile(dir_.ComponentModule(row.module_sha256));
      std::shared_ptr<wasm::Module> module;
      absl::Status loaded = bytes.status();
      if (bytes.ok()) {
        auto m = LoadModule(*bytes);
        loaded = m.status();
        if (m.ok()) module = *m;
      }
      auto series = std::make_shared<Series>(metrics_, row.name);
      auto log = std::make_shared<ComponentLog>(row.name);
      auto runner = std::make_shared<Runner>(broker_, pool_, in_flight_, options_,
                                             series, log, std::move(spec),
                                             row.module_sha256, module, row.created_at_us,
                                             row.updated_at_us);
      {
        absl::MutexLock lock(&mu_);
        runners_[row.name] = runner;
        logs_[row.name] = log;
      }
      if (!loaded.ok()) {
        runner->Fail(absl::Status(loaded.code(), StrCat("loading its module: ",
                                                        ToStd(loaded.message()))),
                     /*restart=*/false);
        continue;
      }
      runner->Start();
    }
    // Module files no component names (a crash between writing one and its row).
    auto files = fs_.ListDir(dir_.ComponentsRoot());
    if (files.ok()) {
      for (const std::string& f : *files) {
        if (!used.contains(f)) {
          fs_.RemoveFile(storage::DataDir::Child(dir_.ComponentsRoot(), f)).IgnoreError();
        }
      }
    }
    return absl::OkStatus();
  }

  ~Impl() {
    StopPrograms();
    std::map<std::string, std::shared_ptr<Runner>> runners;
    {
      absl::MutexLock lock(&mu_);
      runners.swap(runners_);
    }
    for (auto& [name, runner] : runners) runner->Stop();
    in_flight_.WaitNone();  // before the pool goes: acknowledgements schedule onto it
  }

  absl::StatusOr<ComponentInfo> Add(ComponentSpec spec, std::string bytes) {
    RETURN_IF_ERROR(ValidateNewName("component", spec.name));
    if (spec.name.size() > kMaxNameLength) {
      return absl::InvalidArgumentError(
          StrCat("component name is ", spec.name.size(), " bytes; the limit is ", kMaxNameLength));
    }
    if (spec.is_program()) {
      if (!bytes.empty()) {
        return absl::InvalidArgumentError(
            "a component is a WebAssembly module (wasm) or a program (exec), not both");
      }
      RETURN_IF_ERROR(CheckProgram(spec));
    } else if (bytes.empty()) {
      return absl::InvalidArgumentError(
          "a component needs a WebAssembly module (wasm) or a program (exec)");
    } else if (spec.outputs.empty()) {
      return absl::InvalidArgumentError("a transform needs an output topic");
    }
    if (!spec.input.empty() || !spec.is_program()) {
      RETURN_IF_ERROR(broker_.GetTopic(spec.input).status());
    }
    for (const std::string& out : spec.outputs) {
      if (out == spec.input) {
        return absl::InvalidArgumentError(
            StrCat("topic \"", out, "\" is both the input and an output"));
      }
      RETURN_IF_ERROR(broker_.GetTopic(out).status());
    }
    if (spec.is_program()) {
      absl::MutexLock admin(&admin_mu_);
      return AddProgram(std::move(spec));
    }
    ASSIGN_OR_RETURN(std::shared_ptr<wasm::Module> module, LoadModule(bytes));
    if (spec.on_error == OnError::kDeadLetter) {
      auto created = broker_.CreateTopic(DeadLetterTopic(spec.name), 1);
      if (!created.ok() && created.status().code() != absl::StatusCode::kAlreadyExists) {
        return created.status();
      }
    }
    absl::MutexLock admin(&admin_mu_);
    {
      absl::MutexLock lock(&mu_);
      if (Exists(spec.name)) {
        return absl::AlreadyExistsError(StrCat("component \"", spec.name, "\" already exists"));
      }
    }
    const std::string sha = Sha256Hex(bytes);
    RETURN_IF_ERROR(fs_.WriteFileAtomic(dir_.ComponentModule(sha), bytes));
    const int64_t now = NowMicros();
    storage::ComponentRow row{spec.name, "wasm", SpecJson(spec), sha, now, now};
    RETURN_IF_ERROR(store().Create(row));
    auto log = std::make_shared<ComponentLog>(spec.name);
    auto runner = std::make_shared<Runner>(broker_, pool_, in_flight_, options_,
                                           std::make_shared<Series>(metrics_, spec.name), log,
                                           spec, sha, module, now, now);
    {
      absl::MutexLock lock(&mu_);
      runners_[spec.name] = runner;
      logs_[spec.name] = log;
    }
    runner->Start();
    return runner->Info();
  }

  absl::StatusOr<ComponentInfo> Get(std::string_view name) {
    if (std::shared_ptr<ProgramComponent> pc = FindProgram(name)) return ProgramInfo(*pc);
    ASSIGN_OR_RETURN(std::shared_ptr<Runner> runner, Find(name));
    return runner->Info();
  }

  std::vector<ComponentInfo> List() {
    std::vector<std::shared_ptr<Runner>> runners;
    std::vector<std::shared_ptr<ProgramComponent>> programs;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [name, r] : runners_) runners.push_back(r);
      for (auto& [name, p] : programs_) programs.push_back(p);
    }
    std::vector<ComponentInfo> out;
    for (auto& r : runners) out.push_back(r->Info());
    for (auto& p : programs) out.push_back(ProgramInfo(*p));
    std::sort(out.begin(), out.end(), [](const ComponentInfo& a, const ComponentInfo& b) {
      return a.spec.name < b.spec.name;
    });
    return out;
  }

  absl::StatusOr<ComponentInfo> Update(std::string_view name, std::string bytes,
                                       std::optional<std::string> config, std::string exec,
                                       std::vector<std::string> args,
                                       std::optional<std::pair<std::string, std::string>> owner) {
    absl::MutexLock admin(&admin_mu_);
    if (std::shared_ptr<ProgramComponent> pc = FindProgram(name)) {
      if (!bytes.empty()) {
        return absl::InvalidArgumentError(StrCat(
            "component \"", name, "\" is a program: update it with exec, not a module"));
      }
      ComponentSpec spec = pc->spec;
      if (config) spec.config = *config;
      if (owner) std::tie(spec.owner, spec.owner_scopes) = *owner;
      if (!exec.empty()) {
        spec.exec = std::move(exec);
        spec.args = std::move(args);
      }
      RETURN_IF_ERROR(CheckProgram(spec));
      const int64_t now = NowMicros();
      RETURN_IF_ERROR(store().Update({spec.name, "program", SpecJson(spec), "", 0, now}));
      return ReplaceProgram(pc, std::move(spec), now);
    }
    if (!exec.empty()) {
      return absl::InvalidArgumentError(StrCat(
          "component \"", name, "\" is a WebAssembly component: update it with a module"));
    }
    ASSIGN_OR_RETURN(std::shared_ptr<Runner> runner, Find(name));
    if (bytes.empty()) {
      if (!config) {
        return absl::InvalidArgumentError("nothing to update: give a module or a configuration");
      }
      // A new configuration alone: the module stays, loaded again (fresh instances read it).
      ASSIGN_OR_RETURN(bytes, fs_.ReadFile(dir_.ComponentModule(runner->Info().module_sha256)));
    }
    ASSIGN_OR_RETURN(std::shared_ptr<wasm::Module> module, LoadModule(bytes));
    const std::string sha = Sha256Hex(bytes);
    RETURN_IF_ERROR(fs_.WriteFileAtomic(dir_.ComponentModule(sha), bytes));
    ComponentSpec spec = runner->Info().spec;
    if (config) spec.config = *config;
    if (owner) std::tie(spec.owner, spec.owner_scopes) = *owner;
    const int64_t now = NowMicros();
    RETURN_IF_ERROR(store().Update({spec.name, "wasm", SpecJson(spec), sha, 0, now}));
    runner->SetModule(sha, std::move(module), std::move(config), now);
    return runner->Info();
  }

  absl::StatusOr<ComponentInfo> Reset(std::string_view name, const broker::StartSpec& to) {
    absl::MutexLock admin(&admin_mu_);
    if (std::shared_ptr<ProgramComponent> pc = FindProgram(name)) {
      if (pc->spec.input.empty()) {
        return absl::FailedPreconditionError(
            StrCat("component \"", name, "\" is a source: it has no input to reset"));
      }
      // The program's subscription ends with its process; the group's offsets then move.
      StopProgram(*pc);
      WaitNoMembers(name, pc->spec.input);
      absl::Status reset = broker_.ResetOffsets(GroupOf(name), pc->spec.input, to, {}).status();
      ASSIGN_OR_RETURN(ComponentInfo info, ReplaceProgram(pc, pc->spec, NowMicros()));
      if (!reset.ok()) return reset;
      return info;
    }
    ASSIGN_OR_RETURN(std::shared_ptr<Runner> runner, Find(name));
    const ComponentInfo before = runner->Info();
    // The group's offsets move only without members: stop, reset, start a new runner.
    runner->Stop();
    // The member leaves the group on the pool, just after: an admin call waits for it briefly.
    auto reset = broker_.ResetOffsets(GroupOf(name), before.spec.input, to, {});
    for (int i = 0; i < 500 && reset.status().code() == absl::StatusCode::kFailedPrecondition;
         ++i) {
      // Gone between the refused reset and this look: once more, and that answers.
      const bool members = broker_.groups().HasMembers(GroupOf(name), before.spec.input);
      if (members) absl::SleepFor(absl::Milliseconds(10));
      reset = broker_.ResetOffsets(GroupOf(name), before.spec.input, to, {});
      if (!members) break;
    }
    runner->DropScanPositions();  // the new start reprocesses from the reset offsets
    std::shared_ptr<wasm::Module> module;
    {
      auto bytes = fs_.ReadFile(dir_.ComponentModule(before.module_sha256));
      if (bytes.ok()) {
        auto m = LoadModule(*bytes);
        if (m.ok()) module = *m;
      }
    }
    auto fresh = std::make_shared<Runner>(broker_, pool_, in_flight_, options_,
                                          runner->series(), runner->log(), before.spec,
                                          before.module_sha256, module, before.created_at_us,
                                          NowMicros());
    fresh->InheritCounters(*runner);
    {
      absl::MutexLock lock(&mu_);
      runners_[std::string(name)] = fresh;
    }
    fresh->Start();
    if (!reset.ok()) return reset.status();
    return fresh->Info();
  }

  absl::Status Remove(std::string_view name) {
    absl::MutexLock admin(&admin_mu_);
    if (std::shared_ptr<ProgramComponent> pc = FindProgram(name)) {
      StopProgram(*pc);
      RETURN_IF_ERROR(store().Delete(name));
      {
        absl::MutexLock lock(&mu_);
        programs_.erase(std::string(name));
        logs_.erase(std::string(name));
      }
      pc->log->Close();
      if (!pc->spec.input.empty()) {
        WaitNoMembers(name, pc->spec.input);
        DropGroup(name, pc->spec.input);
      }
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(std::shared_ptr<Runner> runner, Find(name));
    runner->Stop();
    RETURN_IF_ERROR(store().Delete(name));
    runner->DropScanPositions();
    WaitNoMembers(name, runner->spec().input);  // the member leaves on the pool, just after
    {
      absl::MutexLock lock(&mu_);
      runners_.erase(std::string(name));
      if (auto log = logs_.find(std::string(name)); log != logs_.end()) {
        log->second->Close();
        logs_.erase(log);
      }
    }
    DropGroup(name, runner->spec().input);
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<ComponentLog>> Log(std::string_view name) {
    absl::MutexLock lock(&mu_);
    auto it = logs_.find(std::string(name));
    if (it == logs_.end()) {
      return absl::NotFoundError(StrCat("component \"", name, "\" does not exist"));
    }
    return it->second;
  }

  void StartPrograms(std::string grpc_address) {
    absl::MutexLock lock(&mu_);
    grpc_address_ = std::move(grpc_address);
    for (auto& [name, pc] : programs_) {
      if (pc->program == nullptr) StartProgramLocked(*pc);
    }
  }

  void StopPrograms() {
    std::vector<std::shared_ptr<ProgramComponent>> programs;
    {
      absl::MutexLock lock(&mu_);
      grpc_address_.clear();  // none starts from now on
      for (auto& [name, pc] : programs_) programs.push_back(pc);
    }
    // Every program is asked at once, then each is waited for: one grace period in all.
    for (auto& pc : programs) {
      if (pc->program != nullptr) pc->program->RequestStop();
    }
    for (auto& pc : programs) {
      if (pc->program != nullptr) pc->program->Join();
    }
  }

 private:
  bool Exists(std::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return runners_.contains(std::string(name)) || programs_.contains(std::string(name));
  }

  void WaitNoMembers(std::string_view name, const std::string& input) {
    for (int i = 0; i < 500 && broker_.groups().HasMembers(GroupOf(name), input); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  void DropGroup(std::string_view name, const std::string& input) {
    absl::Status dropped = broker_.DeleteGroup(GroupOf(name), input);
    if (!dropped.ok() && dropped.code() != absl::StatusCode::kNotFound) {
      spdlog::warn("component {}: removing its group: {}", name, ToStd(dropped.message()));
    }
  }

  absl::StatusOr<ComponentInfo> AddProgram(ComponentSpec spec)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(admin_mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (Exists(spec.name)) {
        return absl::AlreadyExistsError(StrCat("component \"", spec.name, "\" already exists"));
      }
    }
    const int64_t now = NowMicros();
    RETURN_IF_ERROR(store().Create({spec.name, "program", SpecJson(spec), "", now, now}));
    auto pc = std::make_shared<ProgramComponent>();
    pc->spec = std::move(spec);
    pc->created_at_us = now;
    pc->updated_at_us = now;
    pc->log = std::make_shared<ComponentLog>(pc->spec.name);
    {
      absl::MutexLock lock(&mu_);
      programs_[pc->spec.name] = pc;
      logs_[pc->spec.name] = pc->log;
      StartProgramLocked(*pc);
    }
    return ProgramInfo(*pc);
  }

  // A program component replaced by one with `spec` (an update or a reset): the old process
  // stops, a new one starts; the log and the counts go on.
  absl::StatusOr<ComponentInfo> ReplaceProgram(const std::shared_ptr<ProgramComponent>& old,
                                               ComponentSpec spec, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(admin_mu_) {
    StopProgram(*old);
    auto pc = std::make_shared<ProgramComponent>();
    pc->spec = std::move(spec);
    pc->created_at_us = old->created_at_us;
    pc->updated_at_us = now;
    pc->log = old->log;
    {
      absl::MutexLock lock(&mu_);
      pc->earlier_starts =
          old->earlier_starts + (old->program != nullptr ? old->program->status().starts : 0);
      programs_[pc->spec.name] = pc;
      StartProgramLocked(*pc);
    }
    return ProgramInfo(*pc);
  }

  void StopProgram(ProgramComponent& pc) {
    Program* program;
    {
      absl::MutexLock lock(&mu_);
      program = pc.program.get();
    }
    if (program != nullptr) program->Stop();
  }

  void StartProgramLocked(ProgramComponent& pc) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (grpc_address_.empty() || pc.program != nullptr) return;
    const ComponentSpec& spec = pc.spec;
    ProgramOptions o;
    o.path = spec.exec;
    o.work_dir = dir_.ProgramWorkDir(spec.name);
    if (absl::Status made = fs_.CreateDirs(o.work_dir); !made.ok()) {
      pc.log->Append("server", 3, StrCat("creating its working directory: ", made.message()));
    }
    o.args = spec.args;
    o.env = {{"NODATA_ADDR", grpc_address_},
             {"NODATA_COMPONENT", spec.name},
             {"NODATA_GROUP", GroupOf(spec.name)},
             {"NODATA_INPUTS", spec.input},
             {"NODATA_OUTPUTS", absl::StrJoin(spec.outputs, ",")},
             {"NODATA_CONFIG", spec.config},
             // The address above needs no TLS (a unix socket when the server speaks TLS): the
             // server's own client settings, if any, must not reach the program.
             {"NODATA_TLS", ""},
             {"NODATA_TLS_CA", ""},
             {"NODATA_TLS_CERT", ""},
             {"NODATA_TLS_KEY", ""},
             {"NODATA_TOKEN", options_.program_token ? options_.program_token(spec) : ""}};
    pc.program = std::make_unique<Program>(std::move(o), pc.log);
    pc.program->Start();
  }

  std::shared_ptr<ProgramComponent> FindProgram(std::string_view name) {
    absl::MutexLock lock(&mu_);
    auto it = programs_.find(std::string(name));
    return it == programs_.end() ? nullptr : it->second;
  }

  ComponentInfo ProgramInfo(ProgramComponent& pc) {
    ComponentInfo info;
    info.spec = pc.spec;
    info.kind = "program";
    info.created_at_us = pc.created_at_us;
    info.updated_at_us = pc.updated_at_us;
    ProgramStatus status;
    bool started;
    {
      absl::MutexLock lock(&mu_);
      started = pc.program != nullptr;
      if (started) status = pc.program->status();
    }
    const uint64_t starts = pc.earlier_starts + status.starts;
    info.restarts = starts > 0 ? starts - 1 : 0;
    info.pid = status.pid;
    if (status.running) {
      info.state = State::kRunning;
    } else if (!status.last_exit.empty()) {
      info.state = State::kFailed;  // exited; starting again after its backoff
      info.last_error = status.last_exit;
    } else {
      info.state = State::kStarting;
    }
    if (!pc.spec.input.empty()) info.lag = GroupLag(broker_, pc.spec.name, pc.spec.input);
    return info;
  }

  storage::ComponentStore& store() { return broker_.component_store(); }

  // The pool's size resolved: the runners bound their partitions at once by it.
  static ManagerOptions WithThreads(ManagerOptions options) {
    if (options.threads <= 0) {
      options.threads = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
    }
    return options;
  }

  absl::StatusOr<std::shared_ptr<wasm::Module>> LoadModule(std::string_view bytes) {
    return WasmTransform::Load(
        *options_.runtime, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()},
        wasm::Limits{}, options_.native);
  }

  absl::StatusOr<std::shared_ptr<Runner>> Find(std::string_view name) {
    absl::MutexLock lock(&mu_);
    auto it = runners_.find(std::string(name));
    if (it == runners_.end()) {
      return absl::NotFoundError(StrCat("component \"", name, "\" does not exist"));
    }
    return it->second;
  }

  const ManagerOptions options_;
  broker::Broker& broker_;
  FileSystem& fs_;
  const storage::DataDir dir_;
  Metrics metrics_;
  InFlight in_flight_;
  WorkerPool pool_;
  absl::Mutex admin_mu_;  // serializes add, update, reset and remove
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Runner>> runners_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<ProgramComponent>> programs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<ComponentLog>> logs_ ABSL_GUARDED_BY(mu_);
  std::string grpc_address_ ABSL_GUARDED_BY(mu_);  // empty: programs do not start
};

absl::StatusOr<std::unique_ptr<Manager>> Manager::Open(ManagerOptions options,
                                                       broker::Broker& broker, FileSystem& fs,
                                                       prometheus::Registry& registry) {
  auto impl = std::make_unique<Impl>(std::move(options), broker, fs, registry);
  RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<Manager>(new Manager(std::move(impl)));
}

Manager::Manager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Manager::~Manager() = default;

absl::StatusOr<ComponentInfo> Manager::Add(ComponentSpec spec, std::string module_bytes) {
  return impl_->Add(std::move(spec), std::move(module_bytes));
}
absl::StatusOr<ComponentInfo> Manager::Get(std::string_view name) { return impl_->Get(name); }
std::vector<ComponentInfo> Manager::List() { return impl_->List(); }
absl::StatusOr<ComponentInfo> Manager::Update(
    std::string_view name, std::string module_bytes, std::optional<std::string> config,
    std::string exec, std::vector<std::string> args,
    std::optional<std::pair<std::string, std::string>> owner) {
  return impl_->Update(name, std::move(module_bytes), std::move(config), std::move(exec),
                       std::move(args), std::move(owner));
}
absl::StatusOr<ComponentInfo> Manager::Reset(std::string_view name, const broker::StartSpec& to) {
  return impl_->Reset(name, to);
}
absl::Status Manager::Remove(std::string_view name) { return impl_->Remove(name); }
absl::StatusOr<std::shared_ptr<ComponentLog>> Manager::Log(std::string_view name) {
  return impl_->Log(name);
}
void Manager::StartPrograms(std::string grpc_address) {
  impl_->StartPrograms(std::move(grpc_address));
}
void Manager::StopPrograms() { impl_->StopPrograms(); }

}  // namespace nodata::components
