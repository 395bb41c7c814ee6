#include "components/manager.h"

#include <unistd.h>

#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/strings.h"
#include "common/testing/fault_fs.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "wasm/text.h"

namespace nodata::components {
namespace {

namespace fs = std::filesystem;

// Every input to outputs 0 and 1 (the template at 32768: key "k", data "hi", the input's
// timestamp); an input whose offset is 3 (mod 100) traps.
constexpr std::string_view kFanOutWithPoison = R"((module
  (import "nodata" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (import "nodata" "emit" (func $emit (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 32768) "\00\00\00\00\ff\ff\ff\ff\ff\ff\ff\ff\01\00\00\00k\02\00\00\00hi\00\00\00\00")
  (func (export "nodata_component_v1"))
  (func (export "nd_process") (param $n i32) (result i32)
    (local $count i32) (local $i i32) (local $p i32)
    (drop (call $batch_read (i32.const 0) (local.get $n)))
    (local.set $count (i32.load (i32.const 0)))
    ;; Walks the records (no headers): a record whose offset is 3 mod 100 traps when alone and
    ;; fails a larger batch (the host then isolates it).
    (local.set $p (i32.const 4))
    (block $ok (loop $scan
      (br_if $ok (i32.ge_u (local.get $i) (local.get $count)))
      (if (i64.eq (i64.rem_u (i64.load offset=4 (local.get $p)) (i64.const 100)) (i64.const 3))
        (then (if (i32.eq (local.get $count) (i32.const 1)) (then unreachable))
              (return (i32.const 1))))
      ;; partition 4, offset 8, timestamp 8, key, data, header count
      (local.set $p (i32.add (i32.add (local.get $p) (i32.const 24))
                             (i32.load offset=20 (local.get $p))))
      (local.set $p (i32.add (i32.add (local.get $p) (i32.const 8))
                             (i32.load (local.get $p))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $scan)))
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (i32.store (i32.const 32768) (local.get $i))
        (if (call $emit (i32.const 0) (i32.const 32768) (i32.const 27)) (then (return (i32.const 10))))
        (if (call $emit (i32.const 1) (i32.const 32768) (i32.const 27)) (then (return (i32.const 11))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0)))
)";

// A series' value (a counter's or a histogram's sample count) by name and labels; nullopt when
// the registry has none.
std::optional<double> Series(prometheus::Registry& registry, const std::string& name,
                             const std::string& component) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      for (const auto& l : m.label) {
        if (l.name != "component" || l.value != component) continue;
        if (family.type == prometheus::MetricType::Histogram) {
          return static_cast<double>(m.histogram.sample_count);
        }
        return family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
      }
    }
  }
  return std::nullopt;
}

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           StrCat("nodata-components-", ::getpid(), "-",
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    OpenBroker();
    for (const char* t : {"in", "out-a", "out-b"}) ASSERT_TRUE(broker_->CreateTopic(t, 2).ok());
    auto bytes = wasm::AssembleText(kFanOutWithPoison, "fanout.wat");
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    module_.assign(bytes->begin(), bytes->end());
  }
  void TearDown() override {
    manager_.reset();
    broker_.reset();
    fs::remove_all(dir_);
  }

  void OpenBroker(int64_t dedupe_window_ms = 10 * 60 * 1000, FileSystem& fs = PosixFileSystem()) {
    broker::BrokerOptions options;
    options.data_dir = dir_.string();
    options.dedupe_window_ms = dedupe_window_ms;
    auto broker = broker::Broker::Open(options, fs, registry_);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(*broker);
  }
  void OpenManager(size_t max_batch_records = 1000, int threads = 0,
                   std::function<void(std::string_view, uint32_t)> before_process = nullptr) {
    ManagerOptions options;
    options.data_dir = dir_.string();
    options.max_batch_records = max_batch_records;
    options.threads = threads;
    options.before_process = std::move(before_process);
    options.runtime = runtime_.get();
    options.native = false;  // this test binary is no translator
    auto m = Manager::Open(options, *broker_, PosixFileSystem(), registry_);
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
  }

  void Publish(const std::string& topic, int from, int n) {
    std::vector<std::string> ids;
    for (int i = from; i < from + n; ++i) ids.push_back(StrCat("e", i));
    std::vector<broker::EventIn> events(n);
    for (int i = 0; i < n; ++i) {
      events[i].topic = topic;
      events[i].id = ids[i];
      events[i].data = ids[i];
    }
    std::promise<absl::Status> done;
    broker_->Publish(events,
                     [&](absl::Status s, std::vector<broker::AckOut>) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  // Every record of a topic: id -> count.
  std::map<std::string, int> Ids(const std::string& topic) {
    std::map<std::string, int> out;
    auto info = broker_->GetTopic(topic);
    if (!info.ok()) return out;
    for (const auto& p : info->partitions) {
      std::vector<Record> records;
      EXPECT_TRUE(broker_->Read(topic, p.partition, p.stats.start_offset, 1'000'000, 1u << 30,
                                &records)
                      .ok());
      for (const Record& r : records) ++out[r.id];
    }
    return out;
  }

  // The fan-out component on "in", to out-a and out-b.
  static ComponentSpec FanSpec() {
    ComponentSpec spec;
    spec.name = "fan";
    spec.input = "in";
    spec.outputs = {"out-a", "out-b"};
    return spec;
  }
  // Inputs the fan-out module fails on (offsets 3 mod 100 of each partition).
  uint64_t Poisoned(const std::string& input = "in") {
    uint64_t poisoned = 0;
    auto in = broker_->GetTopic(input);
    EXPECT_TRUE(in.ok());
    if (!in.ok()) return 0;
    for (const auto& p : in->partitions) {
      for (uint64_t o = 3; o < p.stats.end_offset.value(); o += 100) ++poisoned;
    }
    return poisoned;
  }

  // Waits until the component committed every input record.
  bool WaitCaughtUp(const std::string& name) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      auto info = manager_->Get(name);
      if (info.ok() && !info->lag.empty()) {
        uint64_t lag = 0;
        for (const auto& p : info->lag) lag += p.end - p.committed;
        if (lag == 0) return true;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  // The outputs of fan-out component `name` of `inputs` records of `input`: each input's exist
  // once, and within an output partition they follow input order per input partition.
  void ExpectOutputsOnceInInputOrder(const std::string& name, const std::string& input,
                                     uint64_t inputs) {
    const uint64_t poisoned = Poisoned(input);
    for (const std::string topic : {"out-a", "out-b"}) {
      auto info = broker_->GetTopic(topic);
      ASSERT_TRUE(info.ok());
      std::set<std::string> seen;
      for (const auto& p : info->partitions) {
        std::vector<Record> records;
        ASSERT_TRUE(broker_->Read(topic, p.partition, p.stats.start_offset, 1'000'000, 1u << 30,
                                  &records)
                        .ok());
        std::map<uint64_t, uint64_t> last;  // input partition -> last input offset seen
        for (const Record& r : records) {
          if (!r.id.starts_with(name + ":")) continue;
          EXPECT_TRUE(seen.insert(r.id).second) << "twice: " << r.id;
          // fan:<partition>:<offset>:<index>
          std::vector<std::string> parts;
          for (size_t at = 0, next; at <= r.id.size(); at = next + 1) {
            next = r.id.find(':', at);
            if (next == std::string::npos) next = r.id.size();
            parts.push_back(r.id.substr(at, next - at));
          }
          ASSERT_EQ(parts.size(), 4u) << r.id;
          const uint64_t in_partition = std::stoull(parts[1]);
          const uint64_t in_offset = std::stoull(parts[2]);
          auto it = last.find(in_partition);
          if (it != last.end()) {
            EXPECT_GT(in_offset, it->second) << topic << "/" << p.partition << ": " << r.id;
          }
          last[in_partition] = in_offset;
        }
      }
      EXPECT_EQ(seen.size(), inputs - poisoned) << topic;
    }
  }

  fs::path dir_;
  nodata::testing::FaultFs fault_fs_;  // outlives the broker that may use it
  prometheus::Registry registry_;
  // Interpreter only: the test binary is no translator.
  std::unique_ptr<wasm::Runtime> runtime_ = *wasm::Runtime::Create({});
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<Manager> manager_;
  std::string module_;
};

TEST_F(ManagerTest, TransformsFansOutDeadLettersAndSurvivesARestart) {
  OpenManager();
  ComponentSpec spec;
  spec.name = "fan";
  spec.input = "in";
  spec.outputs = {"out-a", "out-b"};
  Publish("in", 0, 300);
  auto added = manager_->Add(spec, module_);
  ASSERT_TRUE(added.ok()) << added.status();
  ASSERT_TRUE(WaitCaughtUp("fan"));
  auto info = manager_->Get("fan");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, State::kRunning) << info->last_error;
  EXPECT_EQ(info->records_in, 300u);

  // Offsets 3, 103, 203 of each partition trap: dead-lettered with the error named.
  std::map<std::string, int> a = Ids("out-a"), b = Ids("out-b"), dl = Ids("fan.dead-letter");
  uint64_t poisoned = 0;
  {
    auto topic = broker_->GetTopic("in");
    for (const auto& p : topic->partitions) {
      for (uint64_t o = 3; o < p.stats.end_offset.value(); o += 100) ++poisoned;
    }
  }
  EXPECT_EQ(dl.size(), poisoned);
  EXPECT_EQ(a.size(), 300 - poisoned);
  EXPECT_EQ(b.size(), 300 - poisoned);
  for (const auto& [id, n] : a) EXPECT_EQ(n, 1) << id;
  EXPECT_EQ(info->records_out, 2 * (300 - poisoned));
  EXPECT_EQ(info->dead_lettered, poisoned);
  // The same counts on /metrics.
  EXPECT_EQ(Series(registry_, "nodata_component_records_in_total", "fan"), 300.0);
  EXPECT_EQ(Series(registry_, "nodata_component_records_out_total", "fan"),
            2.0 * static_cast<double>(300 - poisoned));
  EXPECT_EQ(Series(registry_, "nodata_component_errors_total", "fan"),
            static_cast<double>(poisoned));
  EXPECT_EQ(Series(registry_, "nodata_component_dead_lettered_total", "fan"),
            static_cast<double>(poisoned));
  EXPECT_GE(Series(registry_, "nodata_component_process_seconds", "fan").value_or(0), 1.0);
  EXPECT_TRUE(Series(registry_, "nodata_component_lag", "fan").has_value());
  // Output ids name the input: <component>:<partition>:<offset>:<index>; b's are index 1.
  EXPECT_EQ(a.count("fan:0:0:0") + a.count("fan:1:0:0"), 2u);
  EXPECT_EQ(b.count("fan:0:0:1") + b.count("fan:1:0:1"), 2u);
  std::vector<Record> dead;
  ASSERT_TRUE(broker_->Read("fan.dead-letter", PartitionId(0), Offset(0), 10, 1 << 20, &dead).ok());
  ASSERT_FALSE(dead.empty());
  std::map<std::string, std::string> headers(dead[0].headers.begin(), dead[0].headers.end());
  EXPECT_NE(headers["nodata-error"].find("unreachable"), std::string::npos);
  EXPECT_EQ(headers["nodata-component"], "fan");

  // Restart: the component is loaded from the catalog and goes on; nothing is published twice.
  manager_.reset();
  broker_.reset();
  OpenBroker();
  OpenManager();
  Publish("in", 300, 100);
  ASSERT_TRUE(WaitCaughtUp("fan"));
  a = Ids("out-a");
  for (const auto& [id, n] : a) EXPECT_EQ(n, 1) << id;
  EXPECT_GE(a.size(), 400 - poisoned - 4);

  // Reset to earliest reprocesses every input: the outputs are duplicates, dropped by id.
  const size_t before = a.size();
  const uint64_t read_before = manager_->Get("fan")->records_in;  // since the restart
  auto reset = manager_->Reset("fan", broker::StartSpec{});
  ASSERT_TRUE(reset.ok()) << reset.status();
  ASSERT_TRUE(WaitCaughtUp("fan"));
  auto again = manager_->Get("fan");
  EXPECT_EQ(again->records_in, read_before + 400);  // every input read again, counts go on
  EXPECT_EQ(Ids("out-a").size(), before);

  // Remove: gone, and its group with it.
  ASSERT_TRUE(manager_->Remove("fan").ok());
  EXPECT_EQ(Series(registry_, "nodata_component_records_in_total", "fan"), std::nullopt);
  EXPECT_EQ(manager_->Get("fan").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(broker_->DescribeGroup("component.fan", "in").status().code(),
            absl::StatusCode::kNotFound);
}

// Many small batches through the pipeline (several in flight at once): each input's outputs
// exist once, and within an output partition they follow input order per input partition.
TEST_F(ManagerTest, ManyBatchesKeepInputOrderPerPartition) {
  OpenManager(/*max_batch_records=*/7);
  Publish("in", 0, 1500);
  ASSERT_TRUE(manager_->Add(FanSpec(), module_).ok());
  Publish("in", 1500, 1500);  // more while it runs
  ASSERT_TRUE(WaitCaughtUp("fan"));
  EXPECT_EQ(manager_->Get("fan")->state, State::kRunning);

  ExpectOutputsOnceInInputOrder("fan", "in", 3000);
  EXPECT_EQ(Ids("fan.dead-letter").size(), Poisoned());
}

// What the runner's jobs do at once, seen from the hook called before each batch runs through
// the module.
struct ProcessProbe {
  absl::Mutex mu;
  int now = 0;             // batches between the hook and its return
  int most = 0;            // the most at once
  int same_partition = 0;  // a partition entered while it was already in: must stay 0
  std::set<uint32_t> busy;
  std::set<uint32_t> entered;  // partitions entered at least once
  // The first batch of all waits (up to 20 s) until `meet` partitions are in at once; `met`
  // tells whether they were.
  int meet = 0;
  bool met = false;

  void Enter(uint32_t partition) {
    absl::MutexLock lock(&mu);
    ++now;
    most = std::max(most, now);
    if (!busy.insert(partition).second) ++same_partition;
    if (meet > 0 && now >= meet) met = true;  // seen by the entering thread: it may not last
    const bool first = entered.empty();
    entered.insert(partition);
    if (first && meet > 0) mu.AwaitWithTimeout(absl::Condition(&met), absl::Seconds(20));
  }
  void Leave(uint32_t partition) {
    absl::MutexLock lock(&mu);
    --now;
    busy.erase(partition);
  }
  std::function<void(std::string_view, uint32_t)> Hook(std::shared_ptr<ProcessProbe> self,
                                                       absl::Duration hold) {
    return [self, hold](std::string_view, uint32_t partition) {
      self->Enter(partition);
      absl::SleepFor(hold);
      self->Leave(partition);
    };
  }
};

// Two input partitions are processed at once: the first batch waits until another partition's
// is in the module too, which a runner that processes one batch at a time never reaches.
TEST_F(ManagerTest, ProcessesInputPartitionsConcurrently) {
  auto probe = std::make_shared<ProcessProbe>();
  probe->meet = 2;
  // Three threads: two partitions' batches at once at most (one thread is the deliveries').
  OpenManager(/*max_batch_records=*/50, /*threads=*/3, probe->Hook(probe, absl::ZeroDuration()));
  Publish("in", 0, 400);
  ASSERT_TRUE(manager_->Add(FanSpec(), module_).ok());
  ASSERT_TRUE(WaitCaughtUp("fan"));
  absl::MutexLock lock(&probe->mu);
  EXPECT_TRUE(probe->met) << "the two partitions' first batches never ran at once";
  EXPECT_EQ(probe->most, 2);
  EXPECT_EQ(probe->same_partition, 0);
}

// `parallelism` caps the partitions processed at once, whatever the pool's threads; many small
// batches over 4 partitions keep input order per partition.
TEST_F(ManagerTest, ParallelismCapsPartitionsAtOnceAndKeepsOrder) {
  ASSERT_TRUE(broker_->CreateTopic("in4", 4).ok());
  for (const uint32_t parallelism : {2u, 1u}) {
    SCOPED_TRACE(StrCat("parallelism ", parallelism));
    auto probe = std::make_shared<ProcessProbe>();
    probe->meet = parallelism == 2 ? 2 : 0;
    OpenManager(/*max_batch_records=*/7, /*threads=*/4, probe->Hook(probe, absl::Milliseconds(1)));
    ComponentSpec spec = FanSpec();
    spec.name = StrCat("fan", parallelism);
    spec.input = "in4";
    spec.parallelism = parallelism;
    if (parallelism == 2) Publish("in4", 0, 1000);
    ASSERT_TRUE(manager_->Add(spec, module_).ok());
    if (parallelism == 2) Publish("in4", 1000, 1000);  // more while it runs
    ASSERT_TRUE(WaitCaughtUp(spec.name));
    auto info = manager_->Get(spec.name);
    EXPECT_EQ(info->state, State::kRunning) << info->last_error;
    EXPECT_EQ(info->records_in, 2000u);
    {
      absl::MutexLock lock(&probe->mu);
      EXPECT_EQ(probe->met, parallelism == 2);
      EXPECT_EQ(probe->most, static_cast<int>(parallelism));
      EXPECT_EQ(probe->same_partition, 0);
      EXPECT_EQ(probe->entered.size(), 4u);
    }
    ExpectOutputsOnceInInputOrder(spec.name, "in4", 2000);
    manager_.reset();
  }
}

// Every input to output 0 only, data "v2" (reads just the batch's record count).
constexpr std::string_view kToFirstOutput = R"((module
  (import "nodata" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (import "nodata" "emit" (func $emit (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "\00\00\00\00\ff\ff\ff\ff\ff\ff\ff\ff\01\00\00\00k\02\00\00\00v2\00\00\00\00")
  (func (export "nodata_component_v1"))
  (func (export "nd_process") (param $n i32) (result i32)
    (local $count i32) (local $i i32)
    (drop (call $batch_read (i32.const 0) (i32.const 4)))
    (local.set $count (i32.load (i32.const 0)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (i32.store (i32.const 1024) (local.get $i))
        (if (call $emit (i32.const 0) (i32.const 1024) (i32.const 27)) (then (return (i32.const 10))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0)))
)";

// An update reaches every partition's instance at its next batch: after it, every input of
// each of 4 partitions runs through the new module (one output, "v2"), none through the old.
TEST_F(ManagerTest, UpdateSwapsTheModuleOfEveryPartition) {
  ASSERT_TRUE(broker_->CreateTopic("in4", 4).ok());
  OpenManager(/*max_batch_records=*/20, /*threads=*/2);
  ComponentSpec spec = FanSpec();
  spec.input = "in4";
  Publish("in4", 0, 400);
  ASSERT_TRUE(manager_->Add(spec, module_).ok());
  ASSERT_TRUE(WaitCaughtUp("fan"));
  std::map<uint64_t, uint64_t> ends;  // input partition -> its end before the update
  auto before = broker_->GetTopic("in4");
  ASSERT_TRUE(before.ok());
  for (const auto& p : before->partitions) {
    ends[p.partition.value()] = p.stats.end_offset.value();
  }
  auto v2 = wasm::AssembleText(kToFirstOutput, "v2.wat");
  ASSERT_TRUE(v2.ok()) << v2.status();
  auto updated = manager_->Update("fan", std::string(v2->begin(), v2->end()), std::nullopt);
  ASSERT_TRUE(updated.ok()) << updated.status();
  Publish("in4", 400, 400);
  ASSERT_TRUE(WaitCaughtUp("fan"));
  EXPECT_EQ(manager_->Get("fan")->state, State::kRunning);

  std::map<uint64_t, int> after;  // input partition -> outputs of inputs after the update
  for (const std::string topic : {"out-a", "out-b"}) {
    auto info = broker_->GetTopic(topic);
    ASSERT_TRUE(info.ok());
    for (const auto& p : info->partitions) {
      std::vector<Record> records;
      ASSERT_TRUE(broker_->Read(topic, p.partition, p.stats.start_offset, 1'000'000, 1u << 30,
                                &records)
                      .ok());
      for (const Record& r : records) {
        // fan:<partition>:<offset>:<index>
        const size_t a = r.id.find(':'), b = r.id.find(':', a + 1), c = r.id.find(':', b + 1);
        const uint64_t in_partition = std::stoull(r.id.substr(a + 1, b - a - 1));
        const uint64_t in_offset = std::stoull(r.id.substr(b + 1, c - b - 1));
        if (in_offset < ends[in_partition]) continue;
        EXPECT_EQ(topic, "out-a") << r.id << ": the old module's second output";
        EXPECT_EQ(r.data, "v2") << r.id;
        ++after[in_partition];
      }
    }
  }
  int total = 0;
  auto in = broker_->GetTopic("in4");
  ASSERT_TRUE(in.ok());
  for (const auto& p : in->partitions) {
    const uint64_t n = p.stats.end_offset.value() - ends[p.partition.value()];
    EXPECT_GT(n, 0u) << "partition " << p.partition;
    EXPECT_EQ(after[p.partition.value()], static_cast<int>(n)) << "partition " << p.partition;
    total += after[p.partition.value()];
  }
  EXPECT_EQ(total, 400);
}

// While no output is synced (so none is acknowledged), the runner goes on taking batches, up to
// its bound: a runner that waits for each batch's acknowledgement would stop after the first.
TEST_F(ManagerTest, TakesMoreBatchesWhileOutputsAwaitTheirAcknowledgement) {
  broker_.reset();
  OpenBroker(10 * 60 * 1000, fault_fs_);
  OpenManager(/*max_batch_records=*/10);
  Publish("in", 0, 400);
  fault_fs_.HoldSyncs("/journal/");  // what acknowledges appends
  ASSERT_TRUE(manager_->Add(FanSpec(), module_).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (manager_->Get("fan")->records_in < 30 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  auto info = manager_->Get("fan");
  EXPECT_GE(info->records_in, 30u) << "batches taken while the first awaits its sync";
  EXPECT_LE(info->records_in, 16u * 10u) << "at most 16 batches await acknowledgement";
  EXPECT_EQ(info->records_out, 0u);
  for (const auto& p : info->lag) EXPECT_EQ(p.committed, 0u) << "nothing committed yet";
  fault_fs_.ReleaseSyncs();
  ASSERT_TRUE(WaitCaughtUp("fan"));
  EXPECT_EQ(Ids("out-a").size(), 400 - Poisoned());
}

// A crash after outputs were published and before their inputs were committed, with the server
// down longer than the dedupe window: the restarted component finds the stored outputs from its
// scan-from positions and publishes each missing output once, none twice.
TEST_F(ManagerTest, OutputsExactlyOnceBeyondTheDedupeWindow) {
  constexpr int64_t kWindowMs = 20;
  broker_.reset();
  OpenBroker(kWindowMs);
  OpenManager(/*max_batch_records=*/50);
  Publish("in", 0, 200);
  ASSERT_TRUE(manager_->Add(FanSpec(), module_).ok());
  ASSERT_TRUE(WaitCaughtUp("fan"));
  // Positions are saved at most once a second, with a commit: more input after a second.
  absl::SleepFor(absl::Milliseconds(1100));
  Publish("in", 200, 200);
  ASSERT_TRUE(WaitCaughtUp("fan"));
  absl::SleepFor(absl::Milliseconds(1100));
  Publish("in", 400, 200);
  ASSERT_TRUE(WaitCaughtUp("fan"));
  auto scan = broker_->CommittedOffsets("component.fan.scan", "out-a");
  ASSERT_TRUE(scan.ok()) << scan.status();
  uint64_t scan_from = 0;
  for (const auto& [p, o] : *scan) scan_from += o.value();
  EXPECT_GT(scan_from, 0u) << "positions moved on with the commits";
  manager_.reset();

  // What a crash leaves: new inputs whose outputs were partly published (as the component
  // publishes them: same ids, same topics) and never committed.
  Publish("in", 600, 300);
  auto committed = broker_->CommittedOffsets("component.fan", "in");
  ASSERT_TRUE(committed.ok());
  std::vector<broker::EventIn> events;
  std::deque<std::string> ids;
  auto in = broker_->GetTopic("in");
  ASSERT_TRUE(in.ok());
  size_t published_before = 0;
  for (const auto& p : in->partitions) {
    const Offset from = (*committed)[p.partition];
    std::vector<Record> records;
    ASSERT_TRUE(broker_->Read("in", p.partition, from, 1'000'000, 1u << 30, &records).ok());
    for (size_t i = 0; i < records.size() * 2 / 3; ++i) {
      const uint64_t o = records[i].offset.value();
      if (o % 100 == 3) continue;  // poison: dead-lettered on the restart
      for (int index = 0; index < 2; ++index) {
        ids.push_back(StrCat("fan:", p.partition, ":", o, ":", index));
        broker::EventIn e;
        e.topic = index == 0 ? "out-a" : "out-b";
        e.id = ids.back();
        e.key = "k";
        e.data = "hi";
        events.push_back(e);
      }
      ++published_before;
    }
  }
  ASSERT_GT(published_before, 100u);
  std::promise<absl::Status> done;
  broker_->Publish(events, [&](absl::Status s, std::vector<broker::AckOut>) { done.set_value(s); });
  ASSERT_TRUE(done.get_future().get().ok());

  // Down longer than the dedupe window, then up again.
  broker_.reset();
  absl::SleepFor(absl::Milliseconds(5 * kWindowMs));
  OpenBroker(kWindowMs);
  OpenManager(/*max_batch_records=*/50);
  ASSERT_TRUE(WaitCaughtUp("fan"));
  const uint64_t poisoned = Poisoned();
  for (const std::string topic : {"out-a", "out-b"}) {
    std::map<std::string, int> got = Ids(topic);
    EXPECT_EQ(got.size(), 900 - poisoned) << topic;
    for (const auto& [id, n] : got) EXPECT_EQ(n, 1) << topic << ": " << id;
  }
  std::map<std::string, int> dead = Ids("fan.dead-letter");
  EXPECT_EQ(dead.size(), poisoned);
  for (const auto& [id, n] : dead) EXPECT_EQ(n, 1) << id;
}

TEST_F(ManagerTest, AddRefusesBadComponents) {
  OpenManager();
  ComponentSpec spec;
  spec.name = "x";
  spec.input = "in";
  spec.outputs = {"out-a"};
  EXPECT_EQ(manager_->Add(spec, "not wasm").status().code(), absl::StatusCode::kInvalidArgument);
  auto plain = wasm::AssembleText("(module (memory (export \"memory\") 1))", "plain.wat");
  auto refused = manager_->Add(spec, std::string(plain->begin(), plain->end()));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("not a nodata component"), std::string::npos);
  spec.outputs = {"in"};
  EXPECT_EQ(manager_->Add(spec, module_).status().code(), absl::StatusCode::kInvalidArgument);
  spec.outputs = {"missing"};
  EXPECT_EQ(manager_->Add(spec, module_).status().code(), absl::StatusCode::kNotFound);
  spec.outputs = {};
  EXPECT_EQ(manager_->Add(spec, module_).status().code(), absl::StatusCode::kInvalidArgument);
  spec.outputs = {"out-a"};
  spec.name = "../evil";
  EXPECT_EQ(manager_->Add(spec, module_).status().code(), absl::StatusCode::kInvalidArgument);
  spec.name = "ok";
  ASSERT_TRUE(manager_->Add(spec, module_).ok());
  EXPECT_EQ(manager_->Add(spec, module_).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(manager_->List().size(), 1u);
}

}  // namespace
}  // namespace nodata::components
