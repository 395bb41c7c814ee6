#include "components/wasm_transform.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "common/strings.h"
#include "wasm/text.h"

namespace nodata::components {
namespace {

// The imports, the marker, and at 32768 (clear of the batches read to 0) an output record template: input_index (set per emit),
// timestamp -1 (the input's), key "k", data "hi", no headers: 27 bytes.
constexpr std::string_view kPrelude = R"(
  (import "nodata" "batch_read" (func $batch_read (param i32 i32) (result i32)))
  (import "nodata" "emit" (func $emit (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 32768) "\00\00\00\00\ff\ff\ff\ff\ff\ff\ff\ff\01\00\00\00k\02\00\00\00hi\00\00\00\00")
  (func (export "nodata_component_v1"))
  ;; Reads the whole batch to 0; returns its count.
  (func $read (param $n i32) (result i32)
    (drop (call $batch_read (i32.const 0) (local.get $n)))
    (i32.load (i32.const 0)))
  ;; Emits the template for input $i to output $out; non-zero when emit refused it.
  (func $emit_for (param $out i32) (param $i i32) (result i32)
    (i32.store (i32.const 32768) (local.get $i))
    (call $emit (local.get $out) (i32.const 32768) (i32.const 27)))
)";

// Every input to outputs 0 and 1.
constexpr std::string_view kFanOut = R"(
  (func (export "nd_process") (param $n i32) (result i32)
    (local $count i32) (local $i i32)
    (local.set $count (call $read (local.get $n)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (if (call $emit_for (i32.const 0) (local.get $i)) (then (return (i32.const 10))))
        (if (call $emit_for (i32.const 1) (local.get $i)) (then (return (i32.const 11))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))
)";

// Fails any batch of more than one record; alone, offset 3 traps, offset 4 returns 2, offset
// 5 loops forever, the rest emit once.
constexpr std::string_view kPoison = R"(
  (func (export "nd_process") (param $n i32) (result i32)
    (local $offset i64)
    (if (i32.ne (call $read (local.get $n)) (i32.const 1)) (then (return (i32.const 1))))
    (local.set $offset (i64.load (i32.const 8)))
    (if (i64.eq (local.get $offset) (i64.const 3)) (then unreachable))
    (if (i64.eq (local.get $offset) (i64.const 4)) (then (return (i32.const 2))))
    (if (i64.eq (local.get $offset) (i64.const 5)) (then (loop $forever (br $forever))))
    (call $emit_for (i32.const 0) (i32.const 0)))
)";

// Returns 0 only when emit answers as the ABI says to bad calls (and then emits nothing).
constexpr std::string_view kEmitCodes = R"(
  (func (export "nd_process") (param $n i32) (result i32)
    (local $count i32)
    (local.set $count (call $read (local.get $n)))
    (if (i32.ne (call $emit (i32.const 1) (i32.const 32768) (i32.const 27)) (i32.const -1))
      (then (return (i32.const 1))))
    (if (i32.ne (call $emit (i32.const -1) (i32.const 32768) (i32.const 27)) (i32.const -1))
      (then (return (i32.const 2))))
    (if (i32.ne (call $emit (i32.const 0) (i32.const 32768) (i32.const 26)) (i32.const -2))
      (then (return (i32.const 3))))
    (if (i32.ne (call $emit (i32.const 0) (i32.const 65530) (i32.const 27)) (i32.const -2))
      (then (return (i32.const 4))))
    (if (i32.ne (call $emit_for (i32.const 0) (local.get $count)) (i32.const -2))
      (then (return (i32.const 5))))
    (i32.const 0))
)";

constexpr std::string_view kWasiImports = R"(
  (import "nodata" "config" (func $config (param i32 i32) (result i32)))
  (import "nodata" "log" (func $log (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func $sched_yield (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
)";
constexpr std::string_view kWasi = R"(
  (data (i32.const 600) "hello\nwor")
  (data (i32.const 640) "a warning")
  (data (i32.const 660) "constructed")
  (func (export "_initialize")
    (call $log (i32.const 1) (i32.const 660) (i32.const 11)))
  (func (export "nd_init") (result i32)
    (call $log (i32.const 2) (i32.const 640) (i32.const 9))
    (i32.const 0))
  (func (export "nd_process") (param $n i32) (result i32)
    (drop (call $read (local.get $n)))
    (if (i64.eq (i64.load (i32.const 8)) (i64.const 9)) (then (call $proc_exit (i32.const 3))))
    ;; iovec {600, 9}: "hello\n" is a line, "wor" waits for its end.
    (i32.store (i32.const 512) (i32.const 600))
    (i32.store (i32.const 516) (i32.const 9))
    (if (call $fd_write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 520))
      (then (return (i32.const 1))))
    (if (i32.ne (i32.load (i32.const 520)) (i32.const 9)) (then (return (i32.const 2))))
    (if (i32.ne (call $fd_write (i32.const 7) (i32.const 512) (i32.const 1) (i32.const 520))
                (i32.const 8)) (then (return (i32.const 3))))
    (if (i32.ne (call $sched_yield) (i32.const 52)) (then (return (i32.const 4))))
    (if (i32.ne (call $fd_close (i32.const 3)) (i32.const 8)) (then (return (i32.const 5))))
    ;; config: its full length, and its bytes.
    (if (i32.ne (call $config (i32.const 700) (i32.const 100)) (i32.const 5))
      (then (return (i32.const 6))))
    (if (i32.ne (i32.load8_u (i32.const 704)) (i32.const 0x21)) (then (return (i32.const 7))))
    (call $emit_for (i32.const 0) (i32.const 0)))
)";

class WasmTransformTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto rt = wasm::Runtime::Create({});  // no cache: the interpreter only
    ASSERT_TRUE(rt.ok()) << rt.status();
    runtime_ = std::move(*rt);
  }

  // A module of `imports`, the prelude and `body` (imports come first in a module).
  absl::StatusOr<std::shared_ptr<wasm::Module>> Load(std::string_view body,
                                                     std::string_view imports = "") {
    auto bytes =
        wasm::AssembleText(StrCat("(module ", imports, kPrelude, body, ")"), "test.wat");
    if (!bytes.ok()) return bytes.status();
    return WasmTransform::Load(*runtime_, *bytes, wasm::Limits{}, /*native=*/false);
  }
  absl::StatusOr<std::shared_ptr<wasm::Module>> LoadRaw(std::string_view text) {
    auto bytes = wasm::AssembleText(text, "test.wat");
    if (!bytes.ok()) return bytes.status();
    return WasmTransform::Load(*runtime_, *bytes, wasm::Limits{}, /*native=*/false);
  }

  std::unique_ptr<WasmTransform> Make(std::string_view body, TransformOptions options = {},
                                      std::string_view imports = "") {
    auto module = Load(body, imports);
    EXPECT_TRUE(module.ok()) << module.status();
    if (!module.ok()) return nullptr;
    auto t = WasmTransform::Create(*module, std::move(options),
                                   [this](int level, std::string_view line) {
                                     log_.push_back(StrCat(level, ":", line));
                                   });
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }

  static std::vector<Record> Records(int n) {
    std::vector<Record> out(n);
    for (int i = 0; i < n; ++i) {
      out[i].offset = Offset(i);
      out[i].timestamp_us = 1000 + i;
      out[i].key = StrCat("key", i);
      out[i].data = StrCat("data", i);
    }
    return out;
  }

  std::unique_ptr<wasm::Runtime> runtime_;
  std::vector<std::string> log_;
};

TEST_F(WasmTransformTest, FansOutInInputOrderWithInheritedTimestamps) {
  TransformOptions options;
  options.outputs = 2;
  auto t = Make(kFanOut, options);
  ASSERT_NE(t, nullptr);
  const std::vector<Record> in = Records(5);
  auto r = t->Process(PartitionId(2), in);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->failed.empty());
  ASSERT_EQ(r->outputs.size(), 10u);
  for (uint32_t i = 0; i < 10; ++i) {
    const Output& o = r->outputs[i];
    EXPECT_EQ(o.input_index, i / 2);
    EXPECT_EQ(o.output, i % 2);
    EXPECT_EQ(o.timestamp_us, 1000 + i / 2);
    EXPECT_EQ(o.key, "k");
    EXPECT_EQ(o.data, "hi");
  }
  EXPECT_GT(r->fuel_used, 0u);
  // With one output only, emitting to output 1 fails the batch, and then each record alone.
  auto single = Make(kFanOut);
  auto failed = single->Process(PartitionId(0), in);
  ASSERT_TRUE(failed.ok());
  EXPECT_TRUE(failed->outputs.empty());
  ASSERT_EQ(failed->failed.size(), 5u);
  EXPECT_EQ(failed->failed[0].error, "nd_process returned 11");
}

TEST_F(WasmTransformTest, IsolatesFailingRecordsAndKeepsTheRest) {
  TransformOptions options;
  options.fuel_per_record = 1'000'000;
  auto t = Make(kPoison, options);
  ASSERT_NE(t, nullptr);
  const std::vector<Record> in = Records(7);
  auto r = t->Process(PartitionId(0), in);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<uint32_t> emitted;
  for (const Output& o : r->outputs) emitted.push_back(o.input_index);
  EXPECT_EQ(emitted, (std::vector<uint32_t>{0, 1, 2, 6}));
  ASSERT_EQ(r->failed.size(), 3u);
  EXPECT_EQ(r->failed[0].input_index, 3u);
  EXPECT_NE(r->failed[0].error.find("unreachable"), std::string::npos) << r->failed[0].error;
  EXPECT_EQ(r->failed[1].input_index, 4u);
  EXPECT_EQ(r->failed[1].error, "nd_process returned 2");
  EXPECT_EQ(r->failed[2].input_index, 5u);
  EXPECT_NE(r->failed[2].error.find("fuel of 1000000 exhausted"), std::string::npos)
      << r->failed[2].error;
  // The instance made after the traps goes on working.
  auto again = t->Process(PartitionId(0), absl::MakeConstSpan(in).subspan(6, 1));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->outputs.size(), 1u);
}

TEST_F(WasmTransformTest, EmitAnswersBadCallsWithTheAbiCodes) {
  auto t = Make(kEmitCodes);
  ASSERT_NE(t, nullptr);
  auto r = t->Process(PartitionId(0), Records(2));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->failed.empty()) << r->failed[0].error;
  EXPECT_TRUE(r->outputs.empty());
}

TEST_F(WasmTransformTest, WasiSubsetConfigAndLog) {
  TransformOptions options;
  options.config = "1234!";
  auto t = Make(kWasi, options, kWasiImports);
  ASSERT_NE(t, nullptr);
  // _initialize's line, then nd_init's.
  EXPECT_EQ(log_, (std::vector<std::string>{"1:constructed", "2:a warning"}));
  std::vector<Record> in = Records(1);
  auto r = t->Process(PartitionId(0), in);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->failed.empty()) << r->failed[0].error;
  EXPECT_EQ(r->outputs.size(), 1u);
  EXPECT_EQ(log_, (std::vector<std::string>{"1:constructed", "2:a warning", "1:hello"}));
  in[0].offset = Offset(9);  // proc_exit: a trap, the record fails
  r = t->Process(PartitionId(0), in);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->failed.size(), 1u);
  EXPECT_NE(r->failed[0].error.find("proc_exit(3)"), std::string::npos) << r->failed[0].error;
}

TEST_F(WasmTransformTest, LogIsRateLimited) {
  TransformOptions options;
  options.config = "1234!";
  options.log_lines_per_second = 1;
  auto t = Make(kWasi, options, kWasiImports);
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(t->Process(PartitionId(0), Records(1)).ok());
  // Three lines within about a second: at most two seconds' worth kept, the rest counted.
  EXPECT_EQ(log_.size() + t->log_lines_dropped(), 3u);
  EXPECT_GE(t->log_lines_dropped(), 1u);
}

TEST_F(WasmTransformTest, RefusesWhatIsNotAComponent) {
  auto plain = LoadRaw(R"((module (memory (export "memory") 1)
      (func (export "nd_process") (param i32) (result i32) (i32.const 0))))");
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(plain.status().message().find("not a nodata component"), std::string::npos);

  auto no_process = LoadRaw(R"((module (memory (export "memory") 1)
      (func (export "nodata_component_v1"))))");
  EXPECT_EQ(no_process.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_process.status().message().find("nd_process"), std::string::npos);

  constexpr std::string_view kNoop = R"((func (export "nd_process") (param i32) (result i32)
      (i32.const 0)))";
  auto foreign = Load(kNoop, R"((import "env" "now" (func (result i64))))");
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(foreign.status().message().find("env.now"), std::string::npos);

  auto unknown = Load(kNoop, R"((import "nodata" "publish" (func (param i32))))");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);

  auto wrong = LoadRaw(R"((module (import "nodata" "emit" (func (param i32 i32) (result i32)))
      (memory (export "memory") 1) (func (export "nodata_component_v1"))
      (func (export "nd_process") (param i32) (result i32) (i32.const 0))))");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.status().message().find("nodata.emit"), std::string::npos);

  auto failing_init = Load(R"((func (export "nd_init") (result i32) (i32.const 7))
      (func (export "nd_process") (param i32) (result i32) (i32.const 0)))");
  ASSERT_TRUE(failing_init.ok()) << failing_init.status();
  auto t = WasmTransform::Create(*failing_init, {}, nullptr);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(t.status().message().find("nd_init returned 7"), std::string::npos);
}

}  // namespace
}  // namespace nodata::components
