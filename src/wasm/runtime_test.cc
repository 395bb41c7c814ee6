// The runtime's behaviour on both tiers: calls, host functions, memory, limits, traps on many
// threads, tier switching, the compile cache, and refusal of unsupported or hostile modules.
#include "wasm/runtime.h"

#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "wasm/native/rt.h"
#include "wasm/test_support.h"

namespace nodata::wasm {

// Readable test names in CTest's listing.
void PrintTo(Tier tier, std::ostream* os) { *os << TierName(tier); }

namespace {

using test::SharedRuntime;
using test::TempDir;
using test::TestOptions;
using test::TestModule;

std::vector<HostFunction> BasicsImports(std::atomic<int>* host_calls = nullptr) {
  std::vector<HostFunction> imports;
  imports.push_back({"host", "add", {ValType::kI32, ValType::kI32}, {ValType::kI32},
                     [host_calls](HostContext&, absl::Span<const Value> args,
                                  absl::Span<Value> results) {
                       if (host_calls != nullptr) ++*host_calls;
                       results[0] = Value::I32(args[0].i32() + args[1].i32());
                       return absl::OkStatus();
                     }});
  imports.push_back({"host", "fail", {ValType::kI32}, {},
                     [](HostContext& ctx, absl::Span<const Value> args, absl::Span<Value>) {
                       // Reads guest memory through the bounds-checked view, then fails.
                       uint8_t word[6];
                       absl::Status read = ctx.memory().Read(16, word);
                       if (!read.ok()) return read;
                       return absl::FailedPreconditionError(
                           "refused " + std::to_string(args[0].i32()) + " " +
                           std::string(reinterpret_cast<char*>(word), 6));
                     }});
  imports.push_back({"host", "mix", {ValType::kI64, ValType::kF32, ValType::kF64}, {ValType::kF64},
                     [](HostContext&, absl::Span<const Value> args, absl::Span<Value> results) {
                       results[0] = Value::F64(static_cast<double>(args[0].i64()) + args[1].f32() +
                                               args[2].f64());
                       return absl::OkStatus();
                     }});
  return imports;
}

// Loads basics.wasm under `limits` and instantiates it on `tier`.
std::unique_ptr<Instance> Basics(Tier tier, const Limits& limits = Limits(),
                                 std::atomic<int>* host_calls = nullptr) {
  auto module = SharedRuntime().Load(TestModule("basics"), limits, tier == Tier::kNative);
  EXPECT_TRUE(module.ok()) << module.status();
  if (tier == Tier::kNative) {
    NativeStatus status = (*module)->WaitNative(120'000);
    EXPECT_EQ(status.state, NativeStatus::State::kReady) << status.detail;
  }
  auto instance = (*module)->Instantiate(BasicsImports(host_calls), tier);
  EXPECT_TRUE(instance.ok()) << instance.status();
  EXPECT_EQ((*instance)->tier(), tier);
  return std::move(instance).value();
}

// Calls `name` and returns its single result, failing the test on an error.
Value CallOne(Instance& instance, const std::string& name, std::vector<Value> args) {
  auto fn = instance.Function(name);
  EXPECT_TRUE(fn.ok()) << fn.status();
  Value out[1];
  absl::Status status = instance.Call(*fn, args, absl::MakeSpan(out, fn->results.size()));
  EXPECT_TRUE(status.ok()) << name << ": " << status;
  return out[0];
}

Trap CallTrap(Instance& instance, const std::string& name, std::vector<Value> args,
              absl::Status* status_out = nullptr) {
  auto fn = instance.Function(name);
  EXPECT_TRUE(fn.ok()) << fn.status();
  Value out[1];
  Trap trap;
  absl::Status status = instance.Call(*fn, args, absl::MakeSpan(out, fn->results.size()), &trap);
  EXPECT_FALSE(status.ok()) << name << " should have trapped";
  if (status_out != nullptr) *status_out = status;
  return trap;
}

// An executable shell script `name` in `dir` with `body` after the #! line.
std::string Script(const TempDir& dir, const std::string& name, const std::string& body) {
  std::string path = dir.path() + "/" + name;
  {
    std::ofstream out(path);
    out << "#!/bin/sh\n" << body << "\n";
  }
  chmod(path.c_str(), 0755);
  return path;
}

class TierTest : public testing::TestWithParam<Tier> {};

TEST_P(TierTest, CallsHostFunctionsAndReadsMemory) {
  std::atomic<int> host_calls{0};
  auto instance = Basics(GetParam(), Limits(), &host_calls);
  EXPECT_EQ(CallOne(*instance, "add", {Value::I32(40), Value::I32(2)}).i32(), 42);
  EXPECT_EQ(CallOne(*instance, "call_host", {Value::I32(-5), Value::I32(8)}).i32(), 3);
  EXPECT_EQ(host_calls.load(), 1);
  EXPECT_DOUBLE_EQ(
      CallOne(*instance, "call_mix", {Value::I64(1 << 20), Value::F32(0.5f), Value::F64(0.25)}).f64(),
      1048576.75);

  // Memory through the bounds-checked accessor, both directions.
  GuestMemory memory = instance->memory();
  ASSERT_EQ(memory.size(), 65536u);
  uint8_t word[6];
  ASSERT_TRUE(memory.Read(16, word).ok());
  EXPECT_EQ(std::string(reinterpret_cast<char*>(word), 6), "nodata");
  uint8_t bytes[4] = {1, 2, 3, 4};
  ASSERT_TRUE(memory.Write(100, bytes).ok());
  EXPECT_EQ(CallOne(*instance, "load", {Value::I32(100)}).i32(), 0x04030201);
  EXPECT_EQ(CallOne(*instance, "sum_bytes", {Value::I32(100), Value::I32(4)}).i64(), 10);
  EXPECT_EQ(memory.Read(65535, absl::MakeSpan(word, 2)).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(memory.Write(UINT64_MAX - 1, bytes).code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(memory.View(65536, 1).empty());

  // Wrong arguments are refused before running anything.
  auto add = instance->Function("add");
  Value out[1];
  EXPECT_EQ(instance->Call(*add, {Value::I32(1)}, out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(instance->Call(*add, {Value::I32(1), Value::I64(2)}, out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(instance->Function("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(instance->Function("__nodata_fuel").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(TierTest, HostErrorTrapsAndInstanceStaysUsable) {
  auto instance = Basics(GetParam());
  absl::Status status;
  Trap trap = CallTrap(*instance, "call_fail", {Value::I32(7)}, &status);
  EXPECT_EQ(trap.kind, TrapKind::kHost);
  EXPECT_THAT(trap.message, testing::HasSubstr("host.fail: refused 7 nodata"));
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(CallOne(*instance, "add", {Value::I32(1), Value::I32(2)}).i32(), 3);
}

TEST_P(TierTest, GuestTrapsAreReportedByKind) {
  auto instance = Basics(GetParam());
  EXPECT_EQ(CallTrap(*instance, "div", {Value::I32(1), Value::I32(0)}).kind,
            TrapKind::kIntegerDivideByZero);
  EXPECT_EQ(CallTrap(*instance, "div", {Value::I32(INT32_MIN), Value::I32(-1)}).kind,
            TrapKind::kIntegerOverflow);
  EXPECT_EQ(CallTrap(*instance, "load", {Value::I32(65533)}).kind, TrapKind::kOutOfBounds);
  EXPECT_EQ(CallTrap(*instance, "store", {Value::I32(-1), Value::I32(1)}).kind,
            TrapKind::kOutOfBounds);
  EXPECT_EQ(CallOne(*instance, "load", {Value::I32(65532)}).i32(), 0);
}

TEST_P(TierTest, FuelIsDeterministicAndStopsInfiniteLoops) {
  Limits limits;
  limits.fuel = 1'000'000;
  limits.deadline_ms = 0;
  auto instance = Basics(GetParam(), limits);
  // spin(n): one unit on entry, one per branch back to the loop (n of them).
  EXPECT_EQ(CallOne(*instance, "spin", {Value::I32(1000)}).i32(), 1000);
  EXPECT_EQ(instance->last_fuel_used(), 1001u);
  EXPECT_EQ(CallOne(*instance, "spin", {Value::I32(0)}).i32(), 0);
  EXPECT_EQ(instance->last_fuel_used(), 1u);
  // recurse(n): n + 1 function entries.
  EXPECT_EQ(CallOne(*instance, "recurse", {Value::I32(50)}).i32(), 50);
  EXPECT_EQ(instance->last_fuel_used(), 51u);

  absl::Status status;
  Trap trap = CallTrap(*instance, "forever", {}, &status);
  EXPECT_EQ(trap.kind, TrapKind::kFuelExhausted);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(instance->last_fuel_used(), 1'000'000u);
  // A loop that fits the budget exactly, and one that does not.
  EXPECT_EQ(CallOne(*instance, "spin", {Value::I32(999'999)}).i32(), 999'999);
  EXPECT_EQ(instance->last_fuel_used(), 1'000'000u);
  EXPECT_EQ(CallTrap(*instance, "spin", {Value::I32(1'000'000)}).kind, TrapKind::kFuelExhausted);
  // The instance keeps working after a fuel trap.
  EXPECT_EQ(CallOne(*instance, "add", {Value::I32(2), Value::I32(2)}).i32(), 4);

  // A budget set for the calls that follow replaces the module's, on both tiers.
  instance->SetFuel(101);
  EXPECT_EQ(CallOne(*instance, "spin", {Value::I32(100)}).i32(), 100);
  EXPECT_EQ(CallTrap(*instance, "spin", {Value::I32(101)}, &status).kind,
            TrapKind::kFuelExhausted);
  EXPECT_NE(std::string(status.message()).find("fuel of 101 exhausted"), std::string::npos)
      << status;
  instance->SetFuel(0);
  EXPECT_EQ(CallOne(*instance, "spin", {Value::I32(999'999)}).i32(), 999'999);
}

TEST_P(TierTest, WatchdogStopsRunawayCall) {
  Limits limits;
  limits.fuel = 0;  // unlimited: only the watchdog can stop it
  limits.deadline_ms = 200;
  auto instance = Basics(GetParam(), limits);
  for (const char* name : {"busy", "busy_host"}) {
    SCOPED_TRACE(name);
    auto started = std::chrono::steady_clock::now();
    absl::Status status;
    Trap trap = CallTrap(*instance, name, {}, &status);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    EXPECT_EQ(trap.kind, TrapKind::kDeadlineExceeded);
    EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_GE(seconds, 0.19);
    EXPECT_LT(seconds, 5.0);
    EXPECT_EQ(CallOne(*instance, "add", {Value::I32(2), Value::I32(3)}).i32(), 5);
  }
}

// A host function that calls into another instance: the inner call's deadline stops the inner
// call only; the outer call goes on and returns.
TEST_P(TierTest, NestedCallsKeepTheirOwnDeadlines) {
  Limits inner_limits;
  inner_limits.fuel = 0;
  inner_limits.deadline_ms = 150;
  auto inner = Basics(GetParam(), inner_limits);
  auto busy = inner->Function("busy");
  ASSERT_TRUE(busy.ok());
  Trap inner_trap;
  auto imports = BasicsImports();
  imports[0].callback = [&](HostContext&, absl::Span<const Value> args, absl::Span<Value> results) {
    absl::Status s = inner->Call(*busy, {}, {}, &inner_trap);
    results[0] = Value::I32(args[0].i32() + args[1].i32());
    return s.code() == absl::StatusCode::kDeadlineExceeded ? absl::OkStatus() : s;
  };
  auto module = SharedRuntime().Load(TestModule("basics"), Limits(), GetParam() == Tier::kNative);
  ASSERT_TRUE(module.ok());
  if (GetParam() == Tier::kNative) (*module)->WaitNative(120'000);
  auto outer = std::move((*module)->Instantiate(imports, GetParam()).value());
  EXPECT_EQ(CallOne(*outer, "call_host", {Value::I32(20), Value::I32(22)}).i32(), 42);
  EXPECT_EQ(inner_trap.kind, TrapKind::kDeadlineExceeded);
}

TEST_P(TierTest, CallDepthIsLimited) {
  Limits limits;
  limits.max_call_depth = 500;
  auto instance = Basics(GetParam(), limits);
  EXPECT_EQ(CallOne(*instance, "recurse", {Value::I32(499)}).i32(), 499);
  absl::Status status;
  EXPECT_EQ(CallTrap(*instance, "recurse", {Value::I32(500)}, &status).kind,
            TrapKind::kCallStackExhausted);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CallTrap(*instance, "endless", {Value::I32(1)}).kind, TrapKind::kCallStackExhausted);
  // The depth counter unwinds with the trap: the next call starts from zero.
  EXPECT_EQ(CallOne(*instance, "recurse", {Value::I32(499)}).i32(), 499);
}

TEST_P(TierTest, MemoryGrowthStopsAtTheLimit) {
  Limits limits;
  limits.max_memory_pages = 3;  // the module itself allows 4
  auto instance = Basics(GetParam(), limits);
  EXPECT_EQ(CallOne(*instance, "grow", {Value::I32(1)}).i32(), 1);
  EXPECT_EQ(CallOne(*instance, "grow", {Value::I32(1)}).i32(), 2);
  EXPECT_EQ(CallOne(*instance, "grow", {Value::I32(1)}).i32(), -1);
  EXPECT_EQ(CallOne(*instance, "pages", {}).i32(), 3);
  EXPECT_EQ(instance->memory().size(), 3u * 65536);
  CallOne(*instance, "store", {Value::I32(3 * 65536 - 4), Value::I32(9)});
  EXPECT_EQ(CallOne(*instance, "load", {Value::I32(3 * 65536 - 4)}).i32(), 9);

  Limits tiny;
  tiny.max_memory_pages = 100;
  auto refused = SharedRuntime().Load(TestModule("big_memory"), tiny, false);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), testing::HasSubstr("1000 initial pages"));
}

TEST_P(TierTest, BatchCallRunsEveryRow) {
  auto instance = Basics(GetParam());
  auto add = instance->Function("add");
  std::vector<Value> args, results(1000);
  for (int i = 0; i < 1000; ++i) {
    args.push_back(Value::I32(i));
    args.push_back(Value::I32(i * 2));
  }
  ASSERT_TRUE(instance->CallBatch(*add, 1000, args, absl::MakeSpan(results)).ok());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(results[i].i32(), i * 3);
  // The first trap ends the batch.
  auto div = instance->Function("div");
  std::vector<Value> div_args = {Value::I32(6), Value::I32(3), Value::I32(1), Value::I32(0)};
  Trap trap;
  EXPECT_FALSE(instance->CallBatch(*div, 2, div_args, absl::MakeSpan(results), &trap).ok());
  EXPECT_EQ(trap.kind, TrapKind::kIntegerDivideByZero);
}

TEST_P(TierTest, TrapsOnManyThreadsAtOnce) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto instance = Basics(GetParam());
      auto div = instance->Function("div");
      auto load = instance->Function("load");
      for (int i = 0; i < kRounds; ++i) {
        Value out[1];
        Trap trap;
        if ((i + t) % 2 == 0) {
          bool ok = instance->Call(*div, {Value::I32(i), Value::I32(0)}, out, &trap).ok();
          if (ok || trap.kind != TrapKind::kIntegerDivideByZero) ++wrong;
        } else {
          bool ok = instance->Call(*load, {Value::I32(70000 + i)}, out, &trap).ok();
          if (ok || trap.kind != TrapKind::kOutOfBounds) ++wrong;
        }
        if (!instance->Call(*div, {Value::I32(i), Value::I32(1)}, out).ok() || out[0].i32() != i) {
          ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_P(TierTest, StartFunctionTrapFailsInstantiation) {
  auto module = SharedRuntime().Load(TestModule("start"), Limits(), GetParam() == Tier::kNative);
  ASSERT_TRUE(module.ok()) << module.status();
  if (GetParam() == Tier::kNative) (*module)->WaitNative(120'000);
  auto instance = (*module)->Instantiate({}, GetParam());
  EXPECT_EQ(instance.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(instance.status().message()), testing::HasSubstr("out of bounds"));
}

INSTANTIATE_TEST_SUITE_P(Tiers, TierTest, testing::Values(Tier::kInterpreter, Tier::kNative),
                         [](const testing::TestParamInfo<Tier>& info) {
                           return std::string(info.param == Tier::kNative ? "native"
                                                                          : "interpreter");
                         });

// Deep recursion with the depth limit out of the way: the native stack's guard page stops it, on
// a worker thread, as the same trap; the process survives.
TEST(NativeTest, StackOverflowOnWorkerThreadIsATrap) {
  Limits limits;
  limits.max_call_depth = 2'000'000'000;
  limits.fuel = 0;
  std::thread worker([&] {
    auto instance = Basics(Tier::kNative, limits);
    EXPECT_EQ(CallTrap(*instance, "endless", {Value::I32(1)}).kind, TrapKind::kCallStackExhausted);
    EXPECT_EQ(CallOne(*instance, "add", {Value::I32(1), Value::I32(1)}).i32(), 2);
    EXPECT_EQ(CallTrap(*instance, "endless", {Value::I32(1)}).kind, TrapKind::kCallStackExhausted);
    // Calling the host at every level: the host is never entered without a reserve of stack.
    EXPECT_EQ(CallTrap(*instance, "endless_host", {Value::I32(1)}).kind,
              TrapKind::kCallStackExhausted);
    EXPECT_EQ(CallOne(*instance, "add", {Value::I32(2), Value::I32(2)}).i32(), 4);
  });
  worker.join();
}

// A host function may not call back into the instance that called it.
TEST_P(TierTest, ReentryFromAHostFunctionIsRefused) {
  std::unique_ptr<Instance> instance;
  absl::Status reentry;
  auto imports = BasicsImports();
  imports[0].callback = [&](HostContext&, absl::Span<const Value>, absl::Span<Value> results) {
    auto add = instance->Function("add");
    Value out[1];
    reentry = instance->Call(*add, {Value::I32(1), Value::I32(1)}, out);
    results[0] = Value::I32(7);
    return absl::OkStatus();
  };
  auto module = SharedRuntime().Load(TestModule("basics"), Limits(), GetParam() == Tier::kNative);
  if (GetParam() == Tier::kNative) (*module)->WaitNative(120'000);
  instance = std::move((*module)->Instantiate(imports, GetParam()).value());
  EXPECT_EQ(CallOne(*instance, "call_host", {Value::I32(1), Value::I32(2)}).i32(), 7);
  EXPECT_EQ(reentry.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CallOne(*instance, "add", {Value::I32(1), Value::I32(2)}).i32(), 3);
}

// Two import entries of one host function: one thunk in the native glue, both bound.
TEST_P(TierTest, RepeatedImportsBindTheSameFunction) {
  auto module = SharedRuntime().Load(TestModule("dup_import"), Limits(), GetParam() == Tier::kNative);
  ASSERT_TRUE(module.ok()) << module.status();
  if (GetParam() == Tier::kNative) {
    NativeStatus status = (*module)->WaitNative(120'000);
    ASSERT_EQ(status.state, NativeStatus::State::kReady) << status.detail;
  }
  auto instance = std::move((*module)->Instantiate(BasicsImports(), GetParam()).value());
  EXPECT_EQ(CallOne(*instance, "both", {Value::I32(10)}).i32(), 23);
}

// A fault in host code is not taken for a guest fault: the process crashes as it would without
// the runtime.
TEST(NativeDeathTest, HostFaultCrashesNormally) {
  testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        auto module = SharedRuntime().Load(TestModule("basics"), Limits(), true);
        (*module)->WaitNative(120'000);
        auto imports = BasicsImports();
        imports[0].callback = [](HostContext&, absl::Span<const Value>, absl::Span<Value>) {
          volatile int* null = nullptr;
          *null = 1;
          return absl::OkStatus();
        };
        auto instance = std::move((*module)->Instantiate(imports, Tier::kNative).value());
        CallOne(*instance, "call_host", {Value::I32(1), Value::I32(2)});
      },
      "");
}

TEST(NativeTest, FreedInstancesReturnTheirAddressSpace) {
  auto module = SharedRuntime().Load(TestModule("basics"), Limits(), true);
  ASSERT_EQ((*module)->WaitNative(120'000).state, NativeStatus::State::kReady);
  uint64_t before = native::ReservedBytes();
  for (int i = 0; i < 200; ++i) {
    auto instance = (*module)->Instantiate(BasicsImports(), Tier::kNative);
    ASSERT_TRUE(instance.ok());
    EXPECT_EQ(native::ReservedBytes(), before + (8ull << 30));
  }
  EXPECT_EQ(native::ReservedBytes(), before);
}

// An instance created on the interpreter moves to native code at a call boundary, keeping its
// memory and globals.
TEST(TieringTest, InstanceMovesToNativeWithItsState) {
  TempDir dir;
  RuntimeOptions options = TestOptions(dir.path());
  auto runtime = std::move(Runtime::Create(options).value());
  auto module = runtime->Load(TestModule("basics"), Limits());
  ASSERT_TRUE(module.ok());
  auto instance = std::move((*module)->Instantiate(BasicsImports()).value());
  // Compilation takes far longer than loading: the first instance starts on the interpreter.
  ASSERT_EQ(instance->tier(), Tier::kInterpreter);
  EXPECT_EQ(CallOne(*instance, "bump", {}).i32(), 1);
  CallOne(*instance, "store", {Value::I32(4000), Value::I32(77)});
  ASSERT_EQ((*module)->WaitNative(120'000).state, NativeStatus::State::kReady);
  EXPECT_EQ(CallOne(*instance, "bump", {}).i32(), 2);
  EXPECT_EQ(instance->tier(), Tier::kNative);
  EXPECT_EQ(CallOne(*instance, "wide", {}).i64(), 2'000'000'000'000);
  EXPECT_EQ(CallOne(*instance, "load", {Value::I32(4000)}).i32(), 77);
  EXPECT_EQ(CallOne(*instance, "load", {Value::I32(16)}).i32(), 0x6164'6f6e);  // "noda"
}

TEST(CacheTest, SurvivesRestartAndIsInvalidatedByANewCompiler) {
  TempDir dir;
  RuntimeOptions options = TestOptions(dir.path() + "/cache");
  {
    auto runtime = std::move(Runtime::Create(options).value());
    auto module = runtime->Load(TestModule("basics"), Limits());
    NativeStatus status = (*module)->WaitNative(120'000);
    ASSERT_EQ(status.state, NativeStatus::State::kReady) << status.detail;
    EXPECT_FALSE(status.cache_hit);
  }
  {
    auto runtime = std::move(Runtime::Create(options).value());
    auto module = runtime->Load(TestModule("basics"), Limits());
    // A cache hit is taken inside Load: native code is ready without waiting.
    NativeStatus status = (*module)->native_status();
    ASSERT_EQ(status.state, NativeStatus::State::kReady) << status.detail;
    EXPECT_TRUE(status.cache_hit);
    auto instance = std::move((*module)->Instantiate(BasicsImports()).value());
    EXPECT_EQ(instance->tier(), Tier::kNative);
    EXPECT_EQ(CallOne(*instance, "add", {Value::I32(20), Value::I32(22)}).i32(), 42);
    // Other limits are another prepared module: not a hit.
    Limits other;
    other.max_call_depth = 77;
    auto module2 = runtime->Load(TestModule("basics"), other);
    EXPECT_FALSE((*module2)->WaitNative(120'000).cache_hit);
  }
  // A different compiler (here a wrapper script: another path, size and mtime).
  std::string wrapper = Script(dir, "cc-wrapper", "exec cc \"$@\"");
  options.compiler = wrapper;
  auto runtime = std::move(Runtime::Create(options).value());
  auto module = runtime->Load(TestModule("basics"), Limits());
  NativeStatus status = (*module)->WaitNative(120'000);
  ASSERT_EQ(status.state, NativeStatus::State::kReady) << status.detail;
  EXPECT_FALSE(status.cache_hit);
}

TEST(CacheTest, StaysUnderItsSizeEvictingTheLeastRecentlyUsed) {
  TempDir dir;
  RuntimeOptions options = TestOptions(dir.path());
  options.cache_max_bytes = 1;  // room for nothing but the object just built
  auto runtime = std::move(Runtime::Create(options).value());
  auto count = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      n += e.path().extension() == ".so";
    }
    return n;
  };
  Limits a, b;
  b.max_call_depth = 321;  // another prepared module, another object
  auto first = std::move(runtime->Load(TestModule("basics"), a).value());
  ASSERT_EQ(first->WaitNative(120'000).state, NativeStatus::State::kReady);
  EXPECT_EQ(count(), 1);
  auto second = std::move(runtime->Load(TestModule("basics"), b).value());
  ASSERT_EQ(second->WaitNative(120'000).state, NativeStatus::State::kReady);
  EXPECT_EQ(count(), 1);
  // The evicted object stays loaded: the first module still runs native code.
  auto instance = std::move(first->Instantiate(BasicsImports()).value());
  EXPECT_EQ(instance->tier(), Tier::kNative);
  EXPECT_EQ(CallOne(*instance, "add", {Value::I32(1), Value::I32(1)}).i32(), 2);
  // And is rebuilt when needed again.
  auto again = std::move(runtime->Load(TestModule("basics"), a).value());
  NativeStatus status = again->WaitNative(120'000);
  EXPECT_EQ(status.state, NativeStatus::State::kReady);
  EXPECT_FALSE(status.cache_hit);
}

TEST(CacheTest, DamagedCacheEntryIsRebuilt) {
  TempDir dir;
  RuntimeOptions options = TestOptions(dir.path());
  {
    auto runtime = std::move(Runtime::Create(options).value());
    ASSERT_EQ((*runtime->Load(TestModule("basics"), Limits()))->WaitNative(120'000).state,
              NativeStatus::State::kReady);
  }
  int damaged = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    if (entry.path().extension() == ".so") {
      std::ofstream(entry.path(), std::ios::trunc) << "not an ELF file";
      ++damaged;
    }
  }
  ASSERT_EQ(damaged, 1);
  auto runtime = std::move(Runtime::Create(options).value());
  NativeStatus status = (*runtime->Load(TestModule("basics"), Limits()))->WaitNative(120'000);
  EXPECT_EQ(status.state, NativeStatus::State::kReady) << status.detail;
  EXPECT_FALSE(status.cache_hit);
}

TEST(CompilerTest, WithoutACompilerModulesRunOnTheInterpreter) {
  TempDir dir;
  RuntimeOptions options = TestOptions(dir.path());
  options.compiler = "/nonexistent/cc";
  auto runtime = std::move(Runtime::Create(options).value());
  EXPECT_THAT(runtime->native_unavailable_reason(), testing::HasSubstr("not found"));
  auto module = runtime->Load(TestModule("basics"), Limits());
  ASSERT_TRUE(module.ok());
  NativeStatus status = (*module)->native_status();
  EXPECT_EQ(status.state, NativeStatus::State::kDisabled);
  EXPECT_THAT(status.detail, testing::HasSubstr("not found"));
  auto instance = std::move((*module)->Instantiate(BasicsImports()).value());
  EXPECT_EQ(instance->tier(), Tier::kInterpreter);
  EXPECT_EQ(CallOne(*instance, "add", {Value::I32(1), Value::I32(2)}).i32(), 3);
  EXPECT_EQ((*module)->Instantiate(BasicsImports(), Tier::kNative).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CompilerTest, CrashingTranslatorAndHangingCompilerLeaveTheInterpreterRunning) {
  TempDir dir;
  {
    RuntimeOptions options = TestOptions(dir.path() + "/a");
    options.translator = {"/bin/sh", "-c", "kill -SEGV $$", "sh"};
    auto runtime = std::move(Runtime::Create(options).value());
    auto module = runtime->Load(TestModule("basics"), Limits());
    NativeStatus status = (*module)->WaitNative(60'000);
    EXPECT_EQ(status.state, NativeStatus::State::kFailed);
    EXPECT_THAT(status.detail, testing::HasSubstr("signal 11"));
    auto instance = std::move((*module)->Instantiate(BasicsImports()).value());
    EXPECT_EQ(CallOne(*instance, "add", {Value::I32(1), Value::I32(2)}).i32(), 3);
  }
  {
    std::string slow = Script(dir, "slow-cc", "sleep 30");
    RuntimeOptions options = TestOptions(dir.path() + "/b");
    options.compiler = slow;
    options.compile_limits.timeout_ms = 300;
    auto runtime = std::move(Runtime::Create(options).value());
    auto started = std::chrono::steady_clock::now();
    auto module = runtime->Load(TestModule("basics"), Limits());
    NativeStatus status = (*module)->WaitNative(60'000);
    EXPECT_EQ(status.state, NativeStatus::State::kFailed);
    EXPECT_THAT(status.detail, testing::HasSubstr("killed"));
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  }
}

TEST(CompilerTest, ShutdownCancelsQueuedCompilations) {
  TempDir dir;
  std::string slow = Script(dir, "slow-cc", "sleep 30");
  RuntimeOptions options = TestOptions(dir.path() + "/cache");
  options.compiler = slow;
  options.compile_threads = 1;
  options.compile_limits.timeout_ms = 1000;
  auto runtime = std::move(Runtime::Create(options).value());
  auto busy = std::move(runtime->Load(TestModule("basics"), Limits()).value());
  Limits other;
  other.max_call_depth = 123;  // another prepared module: queued behind the first
  auto queued = std::move(runtime->Load(TestModule("basics"), other).value());
  runtime.reset();
  // The first compilation was either running (then killed at its timeout) or not yet picked up
  // (then cancelled); the second was still queued, so it is cancelled.
  EXPECT_THAT(busy->native_status().state,
              testing::AnyOf(NativeStatus::State::kFailed, NativeStatus::State::kDisabled));
  NativeStatus status = queued->native_status();
  EXPECT_EQ(status.state, NativeStatus::State::kDisabled);
  EXPECT_THAT(status.detail, testing::HasSubstr("shut down"));
  // Both keep running on the interpreter after their runtime is gone.
  auto instance = std::move(queued->Instantiate(BasicsImports()).value());
  EXPECT_EQ(CallOne(*instance, "add", {Value::I32(4), Value::I32(5)}).i32(), 9);
}

// A module the fuzzer found: with multi-value enabled, wabt 1.0.32 asserts while reading it.
TEST(LoadTest, AModuleThatTripsAWabtAssertIsRefusedNotACrash) {
  const std::string hex =
      "0061736d01000000012d0960027f7f017f60017f0060037e7d7c017c6000017f6000017e60017f017f600000"
      "60027f7f0060027f7f017e02230304686f737403616464000004686f7374046661696c000104686f7374036d"
      "6978000203141300000102030405060606050505050305070008050401010104060b027f0141000b7e01bf02"
      "0b07b80114066d656d6f727902000361646400030963616c6c5f686f737400040963616c6c5f6661696c0005"
      "0863616c6c5f6d697800060462756d70000704776964650008047370696e000907666f7265766572000a0462"
      "757379000b09627573795f686f7374000c0772656375727365000d07656e646c657373000e0c656e646c6573"
      "735f686f7374000f0467726f7700100570616765730011046c6f616400120573746f72650013036469760014"
      "0973756d5f627974657300150ab202130700200020016a0b08002000200110000b0600200010010b0a002000"
      "2001200210020b1700230041016a240023014280a094a58d1d7c247363616c65640123000b040023010b1c01"
      "017f02400340200120004f0d01200141016a21010c000b0b20010b070003400c000b0b3301017f4101210003"
      "4020002000410d747321002000200041117673210020002000410574732100410020003602000c000b0b1101"
      "017f034020004101100021000c000b0b19000240024020000d0141000f0b0b200041016b100d41016a0b0900"
      "2000100e41016a0b10002000410110001a2000100f41016a0b0600200040000b04003f000b07002000280200"
      "0b0900200020013602000b0700200020016d0b2b01017e024003402001450d01200220003100007c21022000"
      "41016a2100200141016b21010c000b0b20020b0b0c010041100b066e6f64617461";
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  auto module = SharedRuntime().Load(bytes, Limits(), false);
  EXPECT_EQ(module.status().code(), absl::StatusCode::kInvalidArgument) << module.status();
}

TEST(LoadTest, RefusesUnsupportedAndHostileModules) {
  Runtime& runtime = SharedRuntime();
  auto simd = runtime.Load(TestModule("simd"), Limits(), false);
  EXPECT_EQ(simd.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(simd.status().message()), testing::HasSubstr("simd"));
  auto memory = runtime.Load(TestModule("import_memory"), Limits(), false);
  EXPECT_THAT(std::string(memory.status().message()), testing::HasSubstr("may import only functions"));
  auto reserved = runtime.Load(TestModule("reserved"), Limits(), false);
  EXPECT_THAT(std::string(reserved.status().message()), testing::HasSubstr("reserved prefix"));

  std::vector<uint8_t> good = TestModule("basics");
  EXPECT_FALSE(runtime.Load({}, Limits(), false).ok());
  std::vector<uint8_t> garbage(1000, 0xab);
  EXPECT_EQ(runtime.Load(garbage, Limits(), false).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Every truncation of a valid module is refused cleanly, except those that end exactly at a
  // section boundary (a shorter valid module).
  size_t refused = 0;
  for (size_t n = 0; n < good.size(); ++n) {
    auto truncated = runtime.Load(absl::MakeConstSpan(good.data(), n), Limits(), false);
    if (!truncated.ok()) {
      EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
      ++refused;
    }
  }
  EXPECT_GE(refused, good.size() - 12);
  // A module needing more than the host offers fails at instantiation with the name.
  auto module = runtime.Load(good, Limits(), false);
  auto instance = (*module)->Instantiate({});
  EXPECT_EQ(instance.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(instance.status().message()), testing::HasSubstr("host.add"));
  auto imports = BasicsImports();
  imports[0].params = {ValType::kI64};
  EXPECT_EQ((*module)->Instantiate(imports).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LoadTest, DescribesTheModule) {
  auto module = SharedRuntime().Load(TestModule("basics"), Limits(), false);
  ASSERT_TRUE(module.ok());
  const ModuleInfo& info = (*module)->info();
  ASSERT_EQ(info.imports.size(), 3u);
  EXPECT_EQ(info.imports[2].name, "mix");
  EXPECT_EQ(SignatureToString(info.imports[2].signature), "(i64, f32, f64) -> (f64)");
  EXPECT_TRUE(info.has_memory);
  EXPECT_EQ(info.memory_initial_pages, 1u);
  EXPECT_EQ(info.memory_max_pages, 4u);
  EXPECT_EQ(info.hash.size(), 64u);
  bool found = false;
  for (const auto& e : info.exports) {
    EXPECT_EQ(e.name.rfind("__nodata", 0), std::string::npos) << e.name;
    if (e.name == "spin") found = true;
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace nodata::wasm
