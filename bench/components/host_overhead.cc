// nodata_component_host_overhead: what the host spends per record to run a WebAssembly transform,
// measured with Google Benchmark on batches of 1, 100 and 1000 records of 100 bytes (no key, no
// headers), one partition, offsets counting up.
//
//   encode          BatchEncoder over the batch, nothing else: the floor of the host's work;
//   native_callback the batch encoded, then a C++ function (not inlined) doing what noop.wat does,
//                   copying the encoding into its own buffer: the same work with no sandbox;
//   process/interp  WasmTransform::Process with noop.wat on the interpreter;
//   process/native  WasmTransform::Process with noop.wat on tier 1 (native code): the host
//                   overhead per record the target is about.
// Every benchmark reports per_record: the benchmark thread's CPU time per batch / its records
// (CPU rather than wall time, as the machines this runs on are often shared).
//
// noop.wat (the source tree's; NODATA_COMPONENT_NOOP_WAT in the environment or --noop PATH among
// Google Benchmark's flags name another) is assembled with the runtime's text assembler. Process runs as the server runs it:
// default TransformOptions (fuel per record, one output) and default wasm::Limits (watchdog on).
//
// The runtime's default translator is this executable's `wasm translate IN OUT` (it re-executes
// itself), so main hands that command to TranslateMain before anything else.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "components/abi.h"
#include "components/wasm_transform.h"
#include "wasm/native/translate.h"
#include "wasm/runtime.h"
#include "wasm/text.h"

#ifndef NODATA_COMPONENT_NOOP_WAT
#define NODATA_COMPONENT_NOOP_WAT "noop.wat"
#endif

namespace {

namespace fs = std::filesystem;
namespace components = nodata::components;
namespace wasm = nodata::wasm;
using nodata::Offset;
using nodata::PartitionId;
using nodata::Record;

constexpr size_t kDataBytes = 100;
constexpr uint64_t kWaitNativeMs = 600'000;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "nodata_component_host_overhead: %s\n", what.c_str());
  std::exit(1);
}

std::string g_noop_path = NODATA_COMPONENT_NOOP_WAT;

std::vector<Record> MakeBatch(size_t n) {
  std::vector<Record> records(n);
  for (size_t i = 0; i < n; ++i) {
    records[i].offset = Offset(i);
    records[i].timestamp_us = 1'700'000'000'000'000 + static_cast<int64_t>(i);
    records[i].data.assign(kDataBytes, static_cast<char>('a' + i % 26));
  }
  return records;
}

void ReportPerRecord(benchmark::State& state, size_t batch) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  // Seconds per record of the benchmark thread's CPU time: shown as e.g. "per_record=13.4ns".
  state.counters["per_record"] = benchmark::Counter(
      static_cast<double>(batch),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// The runtime, the module on each tier and its cache directory, made once for all benchmarks.
struct Noop {
  fs::path cache_dir;
  std::unique_ptr<wasm::Runtime> runtime;
  std::shared_ptr<wasm::Module> interp;
  std::shared_ptr<wasm::Module> native;

  Noop() {
    std::ifstream in(g_noop_path, std::ios::binary);
    if (!in) Die("cannot read " + g_noop_path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto bytes = wasm::AssembleText(text, g_noop_path);
    if (!bytes.ok()) Die(bytes.status().ToString());

    std::string tmpl = (fs::temp_directory_path() / "nodata-host-overhead.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp failed");
    cache_dir = tmpl;
    wasm::RuntimeOptions options;
    options.cache_dir = cache_dir.string();
    auto rt = wasm::Runtime::Create(std::move(options));
    if (!rt.ok()) Die("Runtime::Create: " + rt.status().ToString());
    runtime = std::move(*rt);
    if (std::string why = runtime->native_unavailable_reason(); !why.empty()) {
      Die("tier 1 is unavailable: " + why);
    }

    auto i = components::WasmTransform::Load(*runtime, *bytes, wasm::Limits{}, /*native=*/false);
    if (!i.ok()) Die("Load (interpreter): " + i.status().ToString());
    interp = *i;
    auto n = components::WasmTransform::Load(*runtime, *bytes, wasm::Limits{}, /*native=*/true);
    if (!n.ok()) Die("Load (native): " + n.status().ToString());
    native = *n;
    const wasm::NativeStatus status = native->WaitNative(kWaitNativeMs);
    if (status.state != wasm::NativeStatus::State::kReady) {
      Die("native code is not available: " + status.detail);
    }
  }
  ~Noop() {
    interp.reset();
    native.reset();
    runtime.reset();
    std::error_code ec;
    fs::remove_all(cache_dir, ec);
  }
};

Noop& TheNoop() {
  static Noop* noop = new Noop();  // lives to exit: modules stay mapped while benchmarks run
  return *noop;
}

void BM_Encode(benchmark::State& state) {
  const auto records = MakeBatch(static_cast<size_t>(state.range(0)));
  components::BatchEncoder encoder;
  for (auto _ : state) {
    encoder.Begin();
    for (const Record& r : records) encoder.Add(PartitionId(0), r);
    benchmark::DoNotOptimize(encoder.Finish().data());
  }
  ReportPerRecord(state, records.size());
}

// What noop.wat does, natively: batch_read into its memory.
[[gnu::noinline]] int NoopCallback(std::string_view batch, std::vector<char>& memory) {
  if (memory.size() < batch.size()) memory.resize(batch.size());
  std::memcpy(memory.data(), batch.data(), batch.size());
  benchmark::ClobberMemory();
  return 0;
}

void BM_NativeCallback(benchmark::State& state) {
  const auto records = MakeBatch(static_cast<size_t>(state.range(0)));
  components::BatchEncoder encoder;
  std::vector<char> memory;
  for (auto _ : state) {
    encoder.Begin();
    for (const Record& r : records) encoder.Add(PartitionId(0), r);
    benchmark::DoNotOptimize(NoopCallback(encoder.Finish(), memory));
  }
  ReportPerRecord(state, records.size());
}

void RunProcess(benchmark::State& state, const std::shared_ptr<wasm::Module>& module,
                wasm::Tier want) {
  const auto records = MakeBatch(static_cast<size_t>(state.range(0)));
  auto transform = components::WasmTransform::Create(module, components::TransformOptions{},
                                                     [](int, std::string_view) {});
  if (!transform.ok()) Die("Create: " + transform.status().ToString());
  if ((*transform)->tier() != want) {
    state.SkipWithError("the instance is not on the wanted tier");
    return;
  }
  for (auto _ : state) {
    auto result = (*transform)->Process(PartitionId(0), records);
    if (!result.ok() || !result->failed.empty() || !result->outputs.empty()) {
      state.SkipWithError("noop.wat did not process the batch cleanly");
      break;
    }
    benchmark::DoNotOptimize(result->fuel_used);
  }
  ReportPerRecord(state, records.size());
}

void BM_ProcessInterp(benchmark::State& state) {
  RunProcess(state, TheNoop().interp, wasm::Tier::kInterpreter);
}
void BM_ProcessNative(benchmark::State& state) {
  RunProcess(state, TheNoop().native, wasm::Tier::kNative);
}

BENCHMARK(BM_Encode)->Name("encode")->Arg(1)->Arg(100)->Arg(1000);
BENCHMARK(BM_NativeCallback)->Name("native_callback")->Arg(1)->Arg(100)->Arg(1000);
BENCHMARK(BM_ProcessInterp)->Name("process/interp")->Arg(1)->Arg(100)->Arg(1000);
BENCHMARK(BM_ProcessNative)->Name("process/native")->Arg(1)->Arg(100)->Arg(1000);

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "wasm") {
    return nodata::wasm::TranslateMain(argc - 1, argv + 1);
  }
  if (const char* path = std::getenv("NODATA_COMPONENT_NOOP_WAT"); path != nullptr && *path) {
    g_noop_path = path;
  }
  // --noop PATH, taken out before Google Benchmark sees the flags.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--noop" && i + 1 < argc) {
      g_noop_path = argv[++i];
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  TheNoop();  // tier 1 compiled before any clock starts
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
