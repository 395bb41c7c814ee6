#include "aggregate/wasm_reducer.h"

#include <deque>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "common/strings.h"
#include "components/abi.h"
#include "wasm/test_support.h"
#include "wasm/text.h"

namespace nodata::aggregate {
namespace {

using wasm::Tier;

constexpr int64_t kMinuteUs = 60'000'000;

// Little-endian bytes, written independently of the host's encoder: the tests hold the host to
// the documented layouts.
struct Bytes {
  std::string s;
  template <typename T>
  Bytes& Le(T v) {
    const auto u = static_cast<std::make_unsigned_t<T>>(v);
    for (size_t i = 0; i < sizeof v; ++i) s.push_back(static_cast<char>(u >> (8 * i)));
    return *this;
  }
  Bytes& Str(std::string_view b) {
    Le(static_cast<uint32_t>(b.size()));
    s.append(b);
    return *this;
  }
};

// The count-and-sum reducer's state: the count and the sum as little-endian int64.
std::string Totals(int64_t count, int64_t sum) { return Bytes().Le(count).Le(sum).s; }

Record Event(int64_t offset, std::string data) {
  Record r;
  r.offset = Offset(offset);
  r.timestamp_us = 1'700'000'000'000'000 + offset;
  r.key = StrCat("k", offset);
  r.data = std::move(data);
  return r;
}

// `records` in the ABI's record layout, from `partitions` (parallel; empty: all partition 0).
// The bytes live as long as the test binary.
ReduceGroup Group(int64_t start_us, int64_t end_us, std::string_view key, std::string_view state,
                  absl::Span<const Record* const> records = {},
                  absl::Span<const PartitionId> partitions = {}) {
  static std::deque<std::string> encoded;
  std::string& bytes = encoded.emplace_back();
  for (size_t i = 0; i < records.size(); ++i) {
    components::AppendRecord(partitions.empty() ? PartitionId(0) : partitions[i], *records[i],
                             &bytes);
  }
  ReduceGroup g;
  g.window_start_us = start_us;
  g.window_end_us = end_us;
  g.key = key;
  g.state = state;
  g.records = bytes;
  g.record_count = static_cast<uint32_t>(records.size());
  return g;
}

// Every test module on the interpreter and on native code (the latter compiled once per
// module into the test binary's shared cache).
class WasmReducerTest : public ::testing::TestWithParam<Tier> {
 protected:
  static wasm::Runtime& Interpreter() {
    static auto* runtime = wasm::Runtime::Create({}).value().release();  // no cache
    return *runtime;
  }

  absl::StatusOr<std::shared_ptr<wasm::Module>> Load(const std::string& name,
                                                     wasm::Limits limits = {}) {
    const std::vector<uint8_t> bytes = wasm::test::TestModule(name);
    if (bytes.empty()) return absl::NotFoundError(StrCat("no test module ", name));
    const bool native = GetParam() == Tier::kNative;
    auto module = WasmReducer::Load(native ? wasm::test::SharedRuntime() : Interpreter(), bytes,
                                    limits, native);
    if (module.ok() && native) {
      const wasm::NativeStatus status = (*module)->WaitNative(300'000);
      EXPECT_EQ(status.state, wasm::NativeStatus::State::kReady) << status.detail;
    }
    return module;
  }

  std::unique_ptr<WasmReducer> Make(const std::string& name, ReducerOptions options = {},
                                    wasm::Limits limits = {}) {
    auto module = Load(name, limits);
    EXPECT_TRUE(module.ok()) << module.status();
    if (!module.ok()) return nullptr;
    auto reducer = WasmReducer::Create(*module, std::move(options),
                                       [this](int level, std::string_view line) {
                                         log_.push_back(StrCat(level, ":", line));
                                       });
    EXPECT_TRUE(reducer.ok()) << reducer.status();
    if (!reducer.ok()) return nullptr;
    EXPECT_EQ((*reducer)->tier(), GetParam());
    return std::move(*reducer);
  }

  std::vector<std::string> log_;
};

TEST_P(WasmReducerTest, CountsAndSumsEachGroupAndMergesSessions) {
  auto reducer = Make("count_sum");
  ASSERT_NE(reducer, nullptr);
  const std::vector<Record> events = {
      Event(0, R"({"user":"alice","amount":5})"),
      Event(1, R"({"amount": 7, "note": {"amount": 1000}})"),
      Event(2, R"({"note":"no amount"})"),
      Event(3, R"({"amount":-2})"),
      Event(4, R"({"amount":100,"user":"bob"})"),
      Event(5, R"({"amount":2.5})"),  // not an integer: counted, not summed
  };
  const std::vector<const Record*> alice = {&events[0], &events[1], &events[2], &events[3]};
  const std::vector<const Record*> bob = {&events[4], &events[5]};
  const std::vector<PartitionId> bob_partitions = {PartitionId(2), PartitionId(0)};
  const std::string bob_state = Totals(3, 10);
  const std::string carol_state = Totals(1, 1);
  std::vector<ReduceGroup> groups = {
      Group(0, kMinuteUs, "alice", "", alice),
      Group(kGlobalStartUs, kGlobalEndUs, "bob/\xce\xb2", bob_state, bob, bob_partitions),
      Group(kMinuteUs, 2 * kMinuteUs, "carol", carol_state),
  };

  auto out = reducer->Reduce(groups);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 3u);
  EXPECT_TRUE((*out)[0].state_written);
  EXPECT_EQ((*out)[0].state, Totals(4, 10));
  EXPECT_TRUE((*out)[0].values_written);
  EXPECT_EQ((*out)[0].values, R"({"count":4,"sum":10})");
  EXPECT_EQ((*out)[1].state, Totals(5, 110));
  EXPECT_EQ((*out)[1].values, R"({"count":5,"sum":110})");
  EXPECT_EQ((*out)[2].state, Totals(1, 1));
  EXPECT_EQ((*out)[2].values, R"({"count":1,"sum":1})");
  EXPECT_GT(reducer->last_fuel_used(), 0u);

  // The same input gives the same output (what exactly-once replay rests on).
  auto again = reducer->Reduce(groups);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)[1].state, (*out)[1].state);

  ASSERT_TRUE(WasmReducer::HasMerge(*Load("count_sum").value()));
  const std::string a = Totals(4, 10);
  const std::string b = Totals(5, -110);
  std::vector<MergeInput> merges(2);
  merges[0] = {0, 3 * kMinuteUs, "alice", a, b};
  merges[1] = {kMinuteUs, 2 * kMinuteUs, "new", "", ""};
  auto merged = reducer->Merge(merges);
  ASSERT_TRUE(merged.ok()) << merged.status();
  ASSERT_EQ(merged->size(), 2u);
  EXPECT_EQ((*merged)[0].state, Totals(9, -100));
  EXPECT_EQ((*merged)[0].values, R"({"count":9,"sum":-100})");
  EXPECT_EQ((*merged)[1].state, Totals(0, 0));
  EXPECT_EQ((*merged)[1].values, R"({"count":0,"sum":0})");

  EXPECT_TRUE(reducer->Reduce({}).value().empty());
}

TEST_P(WasmReducerTest, HandsOutTheDocumentedBatchLayouts) {
  ReducerOptions options;
  options.config = "cfg";
  auto reducer = Make("echo", options);
  ASSERT_NE(reducer, nullptr);
  Record with_headers = Event(7, "{}");
  with_headers.headers = {{"h", "v1"}, {"trace", ""}};
  const Record plain = Event(8, "x");
  const std::vector<const Record*> records = {&with_headers, &plain};
  const std::vector<PartitionId> partitions = {PartitionId(3), PartitionId(1)};
  std::vector<ReduceGroup> groups = {
      Group(-kMinuteUs, 0, "key", "old", records, partitions),
      Group(kGlobalStartUs, kGlobalEndUs, "", ""),
  };
  auto out = reducer->Reduce(groups);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);

  Bytes expected;
  expected.Le(uint32_t{2});
  expected.Le(-kMinuteUs).Le(int64_t{0}).Str("key").Str("old").Le(uint32_t{2});
  expected.Le(uint32_t{3}).Le(uint64_t{7}).Le(with_headers.timestamp_us).Str("k7").Str("{}");
  expected.Le(uint32_t{2}).Str("h").Str("v1").Str("trace").Str("");
  expected.Le(uint32_t{1}).Le(uint64_t{8}).Le(plain.timestamp_us).Str("k8").Str("x");
  expected.Le(uint32_t{0});
  expected.Le(INT64_MIN).Le(INT64_MAX).Str("").Str("").Le(uint32_t{0});
  EXPECT_EQ((*out)[0].state, expected.s);
  EXPECT_EQ((*out)[0].values, R"({"echo":true})");
  EXPECT_TRUE((*out)[1].state_written);
  EXPECT_EQ((*out)[1].state, "cfg");
  EXPECT_FALSE((*out)[1].values_written);
  EXPECT_EQ(log_, std::vector<std::string>{"1:echo"});

  std::vector<MergeInput> merges = {{5, 6, "k", "aa", "bbb"}};
  auto merged = reducer->Merge(merges);
  ASSERT_TRUE(merged.ok()) << merged.status();
  ASSERT_EQ(merged->size(), 1u);
  EXPECT_EQ((*merged)[0].state,
            Bytes().Le(uint32_t{1}).Le(int64_t{5}).Le(int64_t{6}).Str("k").Str("aa").Str("bbb").s);
}

TEST_P(WasmReducerTest, TrapFailsTheBatchAndTheNextBatchRuns) {
  auto reducer = Make("traps");
  ASSERT_NE(reducer, nullptr);
  auto failed = reducer->Reduce(std::vector<ReduceGroup>{Group(0, 1, "fine", ""),
                                                         Group(0, 1, "boom", "")});
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(failed.status().message().find("nd_aggregate: "), std::string::npos)
      << failed.status();
  EXPECT_NE(failed.status().message().find("unreachable"), std::string::npos) << failed.status();
  auto next = reducer->Reduce(std::vector<ReduceGroup>{Group(0, 1, "fine", "")});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->at(0).state, "ok");
  EXPECT_FALSE(next->at(0).values_written);

  EXPECT_FALSE(WasmReducer::HasMerge(*Load("traps").value()));
  std::vector<MergeInput> merges = {{0, 1, "k", "", ""}};
  EXPECT_EQ(reducer->Merge(merges).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(WasmReducerTest, RunawayIsStoppedByFuel) {
  ReducerOptions options;
  options.fuel_per_record = 1'000'000;
  auto reducer = Make("loops", options);
  ASSERT_NE(reducer, nullptr);
  const std::vector<Record> events = {Event(0, "{}"), Event(1, "{}")};
  const std::vector<const Record*> records = {&events[0], &events[1]};
  auto out = reducer->Reduce(std::vector<ReduceGroup>{Group(0, 1, "k", "", records)});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(out.status().message().find("fuel of 2000000 exhausted"), std::string::npos)
      << out.status();
  // Without records a batch still has one record's fuel.
  out = reducer->Reduce(std::vector<ReduceGroup>{Group(0, 1, "k", "")});
  EXPECT_NE(out.status().message().find("fuel of 1000000 exhausted"), std::string::npos)
      << out.status();
}

TEST_P(WasmReducerTest, WallClockDeadlineStopsARunaway) {
  ReducerOptions options;
  options.fuel_per_record = 0;  // the module's fuel, unlimited: only the deadline stops it
  wasm::Limits limits;
  limits.fuel = 0;
  limits.deadline_ms = 200;
  auto reducer = Make("loops", options, limits);
  ASSERT_NE(reducer, nullptr);
  auto out = reducer->Reduce(std::vector<ReduceGroup>{Group(0, 1, "k", "")});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted) << out.status();
  EXPECT_NE(out.status().message().find("deadline of 200 ms exceeded"), std::string::npos)
      << out.status();
}

TEST_P(WasmReducerTest, ValueWriteTakesOnlyOneJsonObjectWithinTheLimits) {
  ReducerOptions options;
  options.max_state_bytes = 1024;
  auto reducer = Make("bad_values", options);
  ASSERT_NE(reducer, nullptr);
  auto out = reducer->Reduce(std::vector<ReduceGroup>{Group(0, 1, "k", "")});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(out->at(0).state_written);
  EXPECT_EQ(out->at(0).values,
            R"({"malformed":-2,"array":-2,"trailing":-2,"bad_utf8":-2,"values_too_large":-3,)"
            R"("state_too_large":-3,"outside_memory":-2})");
}

TEST_P(WasmReducerTest, WritesToNoSuchGroupAreRefusedAndFailTheBatch) {
  auto reducer = Make("bad_group");
  ASSERT_NE(reducer, nullptr);
  // The module checks state_write's -1 for group 2 and -1 itself, then returns value_write's
  // answer for group 2: -1 fails the batch, and group 0's write is not kept.
  auto out = reducer->Reduce(std::vector<ReduceGroup>{Group(0, 1, "a", ""), Group(0, 1, "b", "")});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(std::string(out.status().message()), "nd_aggregate returned -1");
}

INSTANTIATE_TEST_SUITE_P(Tiers, WasmReducerTest,
                         ::testing::Values(Tier::kInterpreter, Tier::kNative),
                         [](const auto& info) { return std::string(wasm::TierName(info.param)); });

TEST(WasmReducerLoad, RefusesWhatIsNotAnAggregationModule) {
  auto runtime = wasm::Runtime::Create({}).value();
  auto load = [&](std::string_view wat_or_name) -> absl::Status {
    std::vector<uint8_t> bytes;
    if (wat_or_name.front() == '(') {
      auto assembled = wasm::AssembleText(wat_or_name, "test.wat");
      if (!assembled.ok()) return assembled.status();
      bytes = std::move(*assembled);
    } else {
      bytes = wasm::test::TestModule(std::string(wat_or_name));
    }
    return WasmReducer::Load(*runtime, bytes, wasm::Limits{}, /*native=*/false).status();
  };
  absl::Status s = load("no_marker");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(s.message()),
            "not a nodata aggregation module: the module does not export nodata_aggregate_v1");

  s = load(R"((module (memory (export "memory") 1) (func (export "nodata_component_v1"))
      (func (export "nd_process") (param i32) (result i32) (i32.const 0))))");
  EXPECT_NE(s.message().find("not a nodata aggregation module"), std::string::npos) << s;

  s = load(R"((module (memory (export "memory") 1) (func (export "nodata_aggregate_v1"))))");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(s.message()),
            "an aggregation module must export nd_aggregate (i32) -> (i32)");

  s = load(R"((module (memory (export "memory") 1) (func (export "nodata_aggregate_v1"))
      (func (export "nd_aggregate") (param i32) (result i32) (i32.const 0))
      (func (export "nd_merge") (param i64) (result i32) (i32.const 0))))");
  EXPECT_EQ(std::string(s.message()), "export nd_merge must be a function (i32) -> (i32)");

  // The component ABI's `emit` is no aggregation import.
  s = load(R"((module (import "nodata" "emit" (func (param i32 i32 i32) (result i32)))
      (memory (export "memory") 1) (func (export "nodata_aggregate_v1"))
      (func (export "nd_aggregate") (param i32) (result i32) (i32.const 0))))");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(s.message()),
            "the module imports nodata.emit, which the aggregation ABI does not have");

  s = load(R"((module (import "nodata" "state_write" (func (param i32 i32) (result i32)))
      (memory (export "memory") 1) (func (export "nodata_aggregate_v1"))
      (func (export "nd_aggregate") (param i32) (result i32) (i32.const 0))))");
  EXPECT_NE(s.message().find("nodata.state_write"), std::string::npos) << s;

  // nd_init's failure fails Create.
  auto echo = WasmReducer::Load(*runtime, wasm::test::TestModule("echo"), {}, false);
  ASSERT_TRUE(echo.ok()) << echo.status();
  ReducerOptions options;
  options.config = "fail-init";
  auto reducer = WasmReducer::Create(*echo, options, nullptr);
  EXPECT_EQ(reducer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(reducer.status().message()), "nd_init returned 7");
}

}  // namespace
}  // namespace nodata::aggregate
