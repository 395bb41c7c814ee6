// nodata_wasm_bench: the nodata side of the WebAssembly benchmark (bench/wasm/run).
//
//   nodata_wasm_bench [--wasm agg.wasm] [--records 20000000] [--interp-records 1000000]
//                     [--keys 100000] [--batch 65536] [--seed 2463534242] [--repeat 3]
//                     [--interp-repeat 1] [--cold-repeat 3] [--hit-repeat 20]
//                     [--workdir DIR] [--keep]
//
// One routine, bench/wasm/agg.c (per-key sum and count in an open-addressing hash table), over the
// same generated records (Generate; node_agg.mjs generates the very same), in batches of --batch:
//   native  agg.c compiled by the host compiler with -O2 into this binary, called directly;
//   tier1   agg.wasm on nodata::wasm's tier 1 (translated to C, compiled with cc -O2, loaded);
//   tier0   agg.wasm on nodata::wasm's interpreter, over the first --interp-records records only.
// Every engine does the same per batch: copy the batch into the routine's input buffer (natively a
// memcpy into agg.c's static buffer, in wasm GuestMemory::Write at input_buffer()) and call
// aggregate(ptr, n). Records are generated before the clock starts; each run starts with reset();
// the fastest of --repeat runs counts. The checksums of all engines must agree with native's over
// the same records, or the driver exits 1 (after printing what it measured).
//
// Also measured: load-to-native latency, the wall time from Runtime::Load to WaitNative returning
// ready, on a fresh cache directory each time (cold: translate + compile + load; median of
// --cold-repeat); and a cache hit, Load + WaitNative by a new Runtime on a warm cache directory
// (median of --hit-repeat). Cache directories live in a temporary directory under --workdir
// (default $TMPDIR or /tmp), removed at exit unless --keep.
//
// Prints JSON lines on stdout: one "config", one per engine, one per latency.
//
// The runtime's default translator is this executable's `wasm translate IN OUT` (it re-executes
// itself), so main hands that command to TranslateMain before anything else.
#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "agg.h"
#include "wasm/limits.h"
#include "wasm/native/translate.h"
#include "wasm/runtime.h"
#include "wasm/types.h"
#include "bench/common/args.h"
#include "wasm/native/rt.h"

#ifndef NODATA_WASM_BENCH_AGG_WASM
#define NODATA_WASM_BENCH_AGG_WASM "agg.wasm"
#endif

namespace {

namespace fs = std::filesystem;
namespace wasm = nodata::wasm;
using Clock = std::chrono::steady_clock;

static_assert(sizeof(agg_record) == 16, "records are 16 bytes in both worlds");

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "nodata_wasm_bench: %s\n", what.c_str());
  std::exit(1);
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

using nodata::bench::Args;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

uint32_t XorShift32(uint32_t x) {
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return x;
}

// The records, identical in node_agg.mjs: keys[j] = splitmix64(j) for j < `keys`; a xorshift32
// state x = seed; record i takes x = xorshift32(x), key = keys[x % keys], then x = xorshift32(x),
// value = (int32) x sign-extended to 64 bits.
std::vector<uint64_t> KeyTable(uint32_t keys) {
  std::vector<uint64_t> table(keys);
  for (uint32_t j = 0; j < keys; ++j) table[j] = SplitMix64(j);
  return table;
}

std::vector<agg_record> Generate(uint64_t records, const std::vector<uint64_t>& keys, uint32_t seed) {
  std::vector<agg_record> out(records);
  uint32_t x = seed;
  for (uint64_t i = 0; i < records; ++i) {
    x = XorShift32(x);
    out[i].key = keys[x % keys.size()];
    x = XorShift32(x);
    out[i].value = static_cast<int32_t>(x);
  }
  return out;
}

struct EngineResult {
  std::string engine;
  uint64_t records = 0;
  double seconds = 0;  // best run
  std::vector<double> all_seconds;
  int64_t checksum = 0;
  uint32_t distinct = 0;
  int64_t probe_sum = 0, probe_count = 0;  // sum_of and count_of of one key, cross-checked too
  std::string tier;                        // the instance's tier after the runs (wasm only)
  std::optional<int64_t> reference;        // native's checksum over the same records (wasm only)
};

std::string JsonSeconds(const std::vector<double>& v, double scale = 1) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.6g", i ? "," : "", v[i] * scale);
    s += buf;
  }
  return s + "]";
}

void PrintEngine(const EngineResult& r, uint64_t batch) {
  std::string extra;
  if (!r.tier.empty()) extra += ",\"tier\":\"" + r.tier + "\"";
  if (r.reference) extra += ",\"reference_checksum\":\"" + std::to_string(*r.reference) + "\"";
  std::printf("{\"kind\":\"engine\",\"engine\":\"%s\",\"records\":%" PRIu64
              ",\"batch\":%" PRIu64 ",\"seconds\":%.6f,\"records_per_s\":%.0f,"
              "\"checksum\":\"%" PRId64 "\",\"distinct\":%u,\"all_seconds\":%s%s}\n",
              r.engine.c_str(), r.records, batch, r.seconds, r.records / r.seconds, r.checksum,
              r.distinct, JsonSeconds(r.all_seconds).c_str(), extra.c_str());
  std::fflush(stdout);
}

EngineResult RunNative(std::span<const agg_record> data, uint64_t batch, uint64_t repeat,
                       uint64_t probe_key) {
  EngineResult r;
  r.engine = "native";
  r.records = data.size();
  agg_record* input = agg_input_buffer();
  for (uint64_t run = 0; run < repeat; ++run) {
    agg_reset();
    const auto t0 = Clock::now();
    for (size_t first = 0; first < data.size(); first += batch) {
      const size_t n = std::min<size_t>(batch, data.size() - first);
      std::memcpy(input, data.data() + first, n * sizeof(agg_record));
      r.distinct = agg_aggregate(input, static_cast<uint32_t>(n));
    }
    const double s = Seconds(Clock::now() - t0);
    r.all_seconds.push_back(s);
    if (run == 0 || s < r.seconds) r.seconds = s;
  }
  r.checksum = agg_checksum();
  r.probe_sum = agg_sum_of(probe_key);
  r.probe_count = agg_count_of(probe_key);
  return r;
}

// A wasm instance of agg.wasm with its exports resolved.
class Guest {
 public:
  explicit Guest(std::unique_ptr<wasm::Instance> instance) : instance_(std::move(instance)) {
    input_buffer_ = Resolve("input_buffer");
    aggregate_ = Resolve("aggregate");
    sum_of_ = Resolve("sum_of");
    count_of_ = Resolve("count_of");
    checksum_ = Resolve("checksum");
    reset_ = Resolve("reset");
  }
  wasm::Instance& instance() { return *instance_; }

  wasm::Value Call(const wasm::FunctionRef& fn, std::initializer_list<wasm::Value> args,
                   const char* what) {
    wasm::Value out[1];
    wasm::Trap trap;
    absl::Status s = instance_->Call(fn, absl::MakeConstSpan(args.begin(), args.size()),
                                     absl::MakeSpan(out, fn.results.size()), &trap);
    if (!s.ok()) {
      Die(std::string(what) + " failed: " + s.ToString() +
          (trap.kind == wasm::TrapKind::kNone
               ? ""
               : std::string(" (trap ") + wasm::TrapKindName(trap.kind) + ": " + trap.message + ")"));
    }
    return out[0];
  }

  EngineResult Run(const std::string& engine, std::span<const agg_record> data, uint64_t batch,
                   uint64_t repeat, uint64_t probe_key) {
    EngineResult r;
    r.engine = engine;
    r.records = data.size();
    const uint32_t ptr = static_cast<uint32_t>(Call(input_buffer_, {}, "input_buffer").i32());
    for (uint64_t run = 0; run < repeat; ++run) {
      Call(reset_, {}, "reset");
      const auto t0 = Clock::now();
      for (size_t first = 0; first < data.size(); first += batch) {
        const size_t n = std::min<size_t>(batch, data.size() - first);
        // The memory is fetched for every batch: a view is valid only until the next call.
        absl::Status s = instance_->memory().Write(
            ptr, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(data.data() + first),
                                          n * sizeof(agg_record)));
        if (!s.ok()) Die("writing a batch into guest memory: " + s.ToString());
        r.distinct = static_cast<uint32_t>(
            Call(aggregate_, {wasm::Value::I32(static_cast<int32_t>(ptr)),
                              wasm::Value::I32(static_cast<int32_t>(n))},
                 "aggregate")
                .i32());
      }
      const double sec = Seconds(Clock::now() - t0);
      r.all_seconds.push_back(sec);
      if (run == 0 || sec < r.seconds) r.seconds = sec;
    }
    r.checksum = Call(checksum_, {}, "checksum").i64();
    const auto key = wasm::Value::I64(static_cast<int64_t>(probe_key));
    r.probe_sum = Call(sum_of_, {key}, "sum_of").i64();
    r.probe_count = Call(count_of_, {key}, "count_of").i64();
    r.tier = wasm::TierName(instance_->tier());
    return r;
  }

 private:
  wasm::FunctionRef Resolve(const char* name) {
    auto fn = instance_->Function(name);
    if (!fn.ok()) Die(std::string("agg.wasm has no usable export ") + name + ": " +
                      fn.status().ToString());
    return *fn;
  }

  std::unique_ptr<wasm::Instance> instance_;
  wasm::FunctionRef input_buffer_, aggregate_, sum_of_, count_of_, checksum_, reset_;
};

void PrintCall(const char* what, double seconds_per_call) {
  std::printf("{\"kind\":\"call\",\"what\":\"%s\",\"ns_per_call\":%.2f}\n", what,
              seconds_per_call * 1e9);
  std::fflush(stdout);
}

// The runtime's defaults (cc -O2, this executable as the translator); BENCH_WASM_CFLAGS (space
// separated) replaces the compiler flags, to compare settings.
wasm::RuntimeOptions BenchOptions() {
  wasm::RuntimeOptions options;
  if (const char* flags = std::getenv("BENCH_WASM_CFLAGS"); flags != nullptr && *flags != '\0') {
    options.compiler_flags.clear();
    std::istringstream in(flags);
    for (std::string f; in >> f;) options.compiler_flags.push_back(f);
  }
  return options;
}

std::unique_ptr<wasm::Runtime> NewRuntime(const fs::path& cache_dir) {
  wasm::RuntimeOptions options = BenchOptions();
  options.cache_dir = cache_dir.string();
  auto rt = wasm::Runtime::Create(std::move(options));
  if (!rt.ok()) Die("Runtime::Create: " + rt.status().ToString());
  std::string why = (*rt)->native_unavailable_reason();
  if (!why.empty()) Die("tier 1 is unavailable: " + why);
  return std::move(*rt);
}

const char* StateName(wasm::NativeStatus::State s) {
  switch (s) {
    case wasm::NativeStatus::State::kPending: return "pending";
    case wasm::NativeStatus::State::kReady: return "ready";
    case wasm::NativeStatus::State::kFailed: return "failed";
    case wasm::NativeStatus::State::kDisabled: return "disabled";
  }
  return "?";
}

struct Loaded {
  std::shared_ptr<wasm::Module> module;
  double wall_seconds = 0;  // Load() to WaitNative() returning ready
  wasm::NativeStatus status;
};

constexpr uint64_t kWaitNativeMs = 600'000;

// Load + WaitNative, timed on the wall. Dies unless tier 1 ends up ready.
Loaded LoadNative(wasm::Runtime& rt, std::span<const uint8_t> bytes, const wasm::Limits& limits) {
  Loaded l;
  const auto t0 = Clock::now();
  auto module = rt.Load(bytes, limits);
  if (!module.ok()) Die("Load(agg.wasm): " + module.status().ToString());
  l.status = (*module)->WaitNative(kWaitNativeMs);
  l.wall_seconds = Seconds(Clock::now() - t0);
  if (l.status.state != wasm::NativeStatus::State::kReady) {
    Die(std::string("tier 1 of agg.wasm is ") + StateName(l.status.state) + ": " + l.status.detail);
  }
  l.module = std::move(*module);
  return l;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void PrintLatency(const char* what, const std::vector<double>& wall,
                  const std::vector<double>& runtime_load, bool cache_hit) {
  std::printf("{\"kind\":\"latency\",\"what\":\"%s\",\"median_ms\":%.4f,\"min_ms\":%.4f,"
              "\"max_ms\":%.4f,\"all_ms\":%s,\"runtime_load_ms\":%s,\"cache_hit\":%s}\n",
              what, Median(wall) * 1e3, *std::min_element(wall.begin(), wall.end()) * 1e3,
              *std::max_element(wall.begin(), wall.end()) * 1e3, JsonSeconds(wall, 1e3).c_str(),
              JsonSeconds(runtime_load, 1e3).c_str(), cache_hit ? "true" : "false");
  std::fflush(stdout);
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

fs::path MakeTempDir(const std::string& base) {
  std::string tmpl = (fs::path(base) / "wasm-bench.XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp under " + base + ": " + std::strerror(errno));
  return tmpl;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

int Bench(const Args& args) {
  const std::string wasm_path = args.Get("--wasm", NODATA_WASM_BENCH_AGG_WASM);
  const uint64_t records = args.GetInt("--records", 20'000'000);
  const uint64_t interp_records = std::min(records, args.GetInt("--interp-records", 1'000'000));
  const uint64_t keys = args.GetInt("--keys", 100'000);
  const uint64_t batch = args.GetInt("--batch", AGG_INPUT_RECORDS);
  const uint64_t seed = args.GetInt("--seed", 2'463'534'242);
  const uint64_t repeat = std::max<uint64_t>(1, args.GetInt("--repeat", 3));
  const uint64_t interp_repeat = std::max<uint64_t>(1, args.GetInt("--interp-repeat", 1));
  const uint64_t cold_repeat = std::max<uint64_t>(1, args.GetInt("--cold-repeat", 3));
  const uint64_t hit_repeat = std::max<uint64_t>(1, args.GetInt("--hit-repeat", 20));
  const char* tmp = std::getenv("TMPDIR");
  const std::string workdir = args.Get("--workdir", tmp && *tmp ? tmp : "/tmp");
  if (batch == 0 || batch > AGG_INPUT_RECORDS) {
    Die("--batch must be 1.." + std::to_string(AGG_INPUT_RECORDS));
  }
  if (keys == 0 || keys > AGG_MAX_KEYS) Die("--keys must be 1.." + std::to_string(AGG_MAX_KEYS));
  if (seed == 0 || seed > UINT32_MAX) Die("--seed must be a nonzero 32-bit number");
  if (records == 0) Die("--records must be positive");

  const std::vector<uint8_t> bytes = ReadFile(wasm_path);
  const auto g0 = Clock::now();
  const std::vector<uint64_t> key_table = KeyTable(static_cast<uint32_t>(keys));
  const std::vector<agg_record> data = Generate(records, key_table, static_cast<uint32_t>(seed));
  const double generate_seconds = Seconds(Clock::now() - g0);
  const std::span<const agg_record> all(data);
  const std::span<const agg_record> prefix = all.first(interp_records);
  const uint64_t probe_key = key_table[0];

  const fs::path work = MakeTempDir(workdir);
  struct Cleanup {
    fs::path dir;
    bool keep;
    ~Cleanup() {
      std::error_code ec;
      if (keep) {
        std::fprintf(stderr, "nodata_wasm_bench: kept %s\n", dir.c_str());
      } else {
        fs::remove_all(dir, ec);
      }
    }
  } cleanup{work, args.Has("--keep")};

  wasm::RuntimeOptions defaults = BenchOptions();
  std::string flags;
  for (const auto& f : defaults.compiler_flags) flags += (flags.empty() ? "" : " ") + f;
  std::printf("{\"kind\":\"config\",\"wasm\":%s,\"wasm_bytes\":%zu,\"records\":%" PRIu64
              ",\"interp_records\":%" PRIu64 ",\"keys\":%" PRIu64 ",\"batch\":%" PRIu64
              ",\"seed\":%" PRIu64 ",\"repeat\":%" PRIu64 ",\"interp_repeat\":%" PRIu64
              ",\"cold_repeat\":%" PRIu64 ",\"hit_repeat\":%" PRIu64
              ",\"generate_seconds\":%.3f,\"compiler\":%s,\"compiler_flags\":%s,\"workdir\":%s}\n",
              JsonString(wasm_path).c_str(), bytes.size(), records, interp_records, keys, batch,
              seed, repeat, interp_repeat, cold_repeat, hit_repeat, generate_seconds,
              JsonString(defaults.compiler).c_str(), JsonString(flags).c_str(),
              JsonString(work.string()).c_str());
  std::fflush(stdout);

  // Native: all records, and the prefix the interpreter runs (to check tier 0 against).
  std::fprintf(stderr, "nodata_wasm_bench: native, %" PRIu64 " records x %" PRIu64 "\n", records,
               repeat);
  const EngineResult native = RunNative(all, batch, repeat, probe_key);
  PrintEngine(native, batch);
  const EngineResult native_prefix = RunNative(prefix, batch, 1, probe_key);

  // Load-to-native, cold: a fresh cache directory (and Runtime) each time. The first one's module
  // runs the throughput measurements; its cache directory serves the cache hits.
  wasm::Limits limits;  // unlimited: no fuel budget, no watchdog
  limits.fuel = 0;
  limits.deadline_ms = 0;
  std::fprintf(stderr, "nodata_wasm_bench: load-to-native, cold, x %" PRIu64 "\n", cold_repeat);
  std::vector<double> cold_wall, cold_runtime;
  std::unique_ptr<wasm::Runtime> runtime;
  std::shared_ptr<wasm::Module> module;
  const fs::path warm_cache = work / "cache-0";
  for (uint64_t i = 0; i < cold_repeat; ++i) {
    const fs::path dir = work / ("cache-" + std::to_string(i));
    auto rt = NewRuntime(dir);
    Loaded l = LoadNative(*rt, bytes, limits);
    if (l.status.cache_hit) Die("a fresh cache directory gave a cache hit");
    cold_wall.push_back(l.wall_seconds);
    cold_runtime.push_back(l.status.load_seconds);
    if (i == 0) {
      runtime = std::move(rt);
      module = std::move(l.module);
    }
  }
  PrintLatency("load_to_native_cold", cold_wall, cold_runtime, false);

  std::string features;
  for (const auto& f : module->info().features) features += (features.empty() ? "" : ",") + JsonString(f);
  std::printf("{\"kind\":\"module\",\"hash\":%s,\"size_bytes\":%" PRIu64
              ",\"functions\":%u,\"memory_initial_pages\":%u,\"features\":[%s]}\n",
              JsonString(module->info().hash).c_str(), module->info().size_bytes,
              module->info().function_count, module->info().memory_initial_pages,
              features.c_str());
  std::fflush(stdout);

  // Tier 1.
  std::fprintf(stderr, "nodata_wasm_bench: tier 1, %" PRIu64 " records x %" PRIu64 "\n", records,
               repeat);
  std::vector<EngineResult> wasm_results;
  {
    auto instance = module->Instantiate({}, wasm::Tier::kNative);
    if (!instance.ok()) Die("Instantiate(kNative): " + instance.status().ToString());
    Guest guest(std::move(*instance));
    wasm_results.push_back(guest.Run("tier1", all, batch, repeat, probe_key));
    wasm_results.back().reference = native.checksum;
    PrintEngine(wasm_results.back(), batch);
  }
  // Tier 0, on fewer records.
  std::fprintf(stderr, "nodata_wasm_bench: tier 0, %" PRIu64 " records x %" PRIu64 "\n",
               interp_records, interp_repeat);
  {
    auto instance = module->Instantiate({}, wasm::Tier::kInterpreter);
    if (!instance.ok()) Die("Instantiate(kInterpreter): " + instance.status().ToString());
    Guest guest(std::move(*instance));
    wasm_results.push_back(guest.Run("tier0", prefix, batch, interp_repeat, probe_key));
    wasm_results.back().reference = native_prefix.checksum;
    PrintEngine(wasm_results.back(), batch);
  }
  // Call overhead: the guarded entry alone, then a whole Instance::Call of a trivial export
  // (argument checks, fuel and depth setup, the guarded entry, result classification), without
  // and with a deadline (the watchdog armed and disarmed around the call).
  {
    constexpr uint64_t kCalls = 2'000'000;
    auto t0 = Clock::now();
    for (uint64_t i = 0; i < kCalls; ++i) {
      wasm::native::GuardedCall([](void*) {}, nullptr, i);
    }
    PrintCall("guarded_entry", Seconds(Clock::now() - t0) / kCalls);
    for (uint64_t deadline_ms : {uint64_t{0}, uint64_t{10'000}}) {
      wasm::Limits call_limits = limits;
      call_limits.deadline_ms = deadline_ms;
      Loaded l = LoadNative(*runtime, bytes, call_limits);
      auto instance = l.module->Instantiate({}, wasm::Tier::kNative);
      if (!instance.ok()) Die("Instantiate(kNative): " + instance.status().ToString());
      auto fn = (*instance)->Function("dropped");
      if (!fn.ok()) Die("no export dropped");
      wasm::Value out[1];
      t0 = Clock::now();
      for (uint64_t i = 0; i < kCalls; ++i) {
        if (!(*instance)->Call(*fn, {}, out).ok()) Die("dropped() failed");
      }
      PrintCall(deadline_ms ? "call_with_deadline" : "call", Seconds(Clock::now() - t0) / kCalls);
    }
  }
  module.reset();
  runtime.reset();

  // Cache hits: a new Runtime on the warm cache directory each time; only Load + WaitNative is
  // timed.
  std::fprintf(stderr, "nodata_wasm_bench: cache hit, x %" PRIu64 "\n", hit_repeat);
  std::vector<double> hit_wall, hit_runtime;
  for (uint64_t i = 0; i < hit_repeat; ++i) {
    auto rt = NewRuntime(warm_cache);
    Loaded l = LoadNative(*rt, bytes, limits);
    if (!l.status.cache_hit) Die("Load on a warm cache directory was not a cache hit");
    hit_wall.push_back(l.wall_seconds);
    hit_runtime.push_back(l.status.load_seconds);
  }
  PrintLatency("cache_hit", hit_wall, hit_runtime, true);

  // Every engine must agree with native over the same records.
  bool ok = true;
  for (const EngineResult& r : wasm_results) {
    const EngineResult& want = r.records == native.records ? native : native_prefix;
    const std::string expected_tier = r.engine == "tier1" ? wasm::TierName(wasm::Tier::kNative)
                                                          : wasm::TierName(wasm::Tier::kInterpreter);
    if (r.checksum != want.checksum || r.distinct != want.distinct ||
        r.probe_sum != want.probe_sum || r.probe_count != want.probe_count) {
      std::fprintf(stderr,
                   "nodata_wasm_bench: %s disagrees with native over %" PRIu64
                   " records: checksum %" PRId64 " vs %" PRId64 ", distinct %u vs %u, "
                   "sum_of %" PRId64 " vs %" PRId64 ", count_of %" PRId64 " vs %" PRId64 "\n",
                   r.engine.c_str(), r.records, r.checksum, want.checksum, r.distinct,
                   want.distinct, r.probe_sum, want.probe_sum, r.probe_count, want.probe_count);
      ok = false;
    }
    if (r.tier != expected_tier) {
      std::fprintf(stderr, "nodata_wasm_bench: %s ran on tier %s\n", r.engine.c_str(),
                   r.tier.c_str());
      ok = false;
    }
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "wasm") {
    return nodata::wasm::TranslateMain(argc - 1, argv + 1);
  }
  Args args;
  for (int i = 1; i < argc; ++i) args.argv.emplace_back(argv[i]);
  if (args.Has("--help") || args.Has("-h")) {
    std::printf("usage: nodata_wasm_bench [--wasm PATH] [--records N] [--interp-records N] "
                "[--keys K] [--batch B] [--seed S] [--repeat R] [--interp-repeat R] "
                "[--cold-repeat R] [--hit-repeat R] [--workdir DIR] [--keep]\n");
    return 0;
  }
  return Bench(args);
}
