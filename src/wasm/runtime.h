// The WebAssembly runtime: Runtime → Module → Instance, on two tiers.
//
// Tier 0 is wabt's interpreter: a module runs as soon as it is loaded. Tier 1 is native code: in the
// background the module is translated to C (wabt's C writer, in a child process), compiled by the
// system C compiler into a shared object, cached on disk and loaded; instances switch to it at
// their next call boundary. Both tiers run the same prepared module (fuel counter, call-depth
// counter and memory maximum written into it), so results, traps and fuel are identical.
//
//   auto rt = Runtime::Create({.cache_dir = "/var/lib/nodata/wasm-cache"});
//   auto module = (*rt)->Load(bytes, limits);
//   auto instance = (*module)->Instantiate(host_functions);
//   auto fn = (*instance)->Function("sum");
//   Value out[1];
//   absl::Status s = (*instance)->Call(*fn, {Value::I32(7)}, out);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include "absl/types/span.h"
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "wasm/limits.h"
#include "wasm/types.h"

namespace nodata::wasm {

// Guest linear memory as the host sees it: every access is bounds-checked. Valid until the guest
// grows its memory or the instance is destroyed or changes tier; fetch it again after a call.
class GuestMemory {
 public:
  GuestMemory() = default;
  GuestMemory(uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  uint64_t size() const { return size_; }
  // Copies guest bytes [offset, offset + out.size()) out, or fails with OUT_OF_RANGE.
  absl::Status Read(uint64_t offset, absl::Span<uint8_t> out) const;
  // Copies `in` into guest bytes at `offset`, or fails with OUT_OF_RANGE.
  absl::Status Write(uint64_t offset, absl::Span<const uint8_t> in);
  // A view of [offset, offset + length), or an empty span if the range is outside the memory.
  absl::Span<uint8_t> View(uint64_t offset, uint64_t length);

 private:
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// What a host function sees of its caller.
class HostContext {
 public:
  virtual ~HostContext() = default;
  virtual GuestMemory memory() = 0;
};

// A function the host offers to guests under (module, name). The callback returns OK, or an error
// that traps the guest with kind kHost and the error's message.
struct HostFunction {
  std::string module;
  std::string name;
  std::vector<ValType> params;
  std::vector<ValType> results;
  std::function<absl::Status(HostContext&, absl::Span<const Value> args, absl::Span<Value> results)>
      callback;
};

struct RuntimeOptions {
  // Where compiled modules are cached, keyed by a hash of (prepared module, translator version,
  // compiler identity and flags, runtime version). Empty disables tier 1.
  std::string cache_dir;
  // The C compiler for tier 1 and its flags. The compiler's resolved path, size and mtime are part
  // of the cache key, so replacing the compiler invalidates the cache.
  std::string compiler = "cc";
  std::vector<std::string> compiler_flags = {"-O2"};
  // The command that translates a module to C: argv prefix, to which "IN.wasm OUT.c" is appended.
  // Defaults to this executable's hidden `wasm translate` command.
  std::vector<std::string> translator;
  CompileLimits compile_limits;
  // Tier 1 compilations that may run at once.
  int compile_threads = 1;
  // Size the cache is kept under: after each compilation the least recently used objects (by
  // mtime, which a cache hit refreshes) are deleted. Loaded objects stay mapped.
  uint64_t cache_max_bytes = 1ull << 30;
};

enum class Tier { kInterpreter, kNative };
const char* TierName(Tier tier);

// The state of tier 1 for one module.
struct NativeStatus {
  enum class State { kPending, kReady, kFailed, kDisabled } state = State::kPending;
  std::string detail;      // why it failed or is disabled
  bool cache_hit = false;  // loaded from the on-disk cache
  double load_seconds = 0; // from Load() to native code loaded
};

class Instance;

// A loaded, validated and prepared module. Safe for concurrent use: many threads may instantiate
// it at once. Holds its compiled code; instances keep their module alive.
class Module {
 public:
  virtual ~Module() = default;
  virtual const ModuleInfo& info() const = 0;
  virtual const Limits& limits() const = 0;
  virtual NativeStatus native_status() const = 0;
  // Blocks until tier 1 is ready, has failed or is disabled, or `timeout_ms` passes.
  virtual NativeStatus WaitNative(uint64_t timeout_ms) const = 0;
  // Creates an instance with `imports` bound by (module, name) and runs the start function.
  // `tier` = nullopt takes the best tier available now and upgrades later; a forced tier that is
  // not available fails with FAILED_PRECONDITION.
  virtual absl::StatusOr<std::unique_ptr<Instance>> Instantiate(
      const std::vector<HostFunction>& imports, std::optional<Tier> tier = std::nullopt) = 0;
};

// An exported function of an instance, resolved once and called many times.
struct FunctionRef {
  uint32_t export_index = 0;
  std::vector<ValType> params;
  std::vector<ValType> results;
};

// One instance: memory, globals, tables. Not thread-safe: one thread calls it at a time (any
// thread, one after another). A trap leaves the instance usable, as in the specification.
class Instance {
 public:
  virtual ~Instance() = default;
  virtual Tier tier() const = 0;
  virtual absl::StatusOr<FunctionRef> Function(std::string_view name) const = 0;
  // Calls `fn`. A trap returns an error with the trap's kind in `trap` (if given): ABORTED for
  // guest traps, RESOURCE_EXHAUSTED for fuel or call depth, DEADLINE_EXCEEDED for the watchdog.
  // Wrong argument count or types fail with INVALID_ARGUMENT before running anything.
  virtual absl::Status Call(const FunctionRef& fn, absl::Span<const Value> args,
                            absl::Span<Value> results, Trap* trap = nullptr) = 0;
  // Calls `fn` once per row: `args` holds rows * params values, `results` rows * results values.
  // One fuel budget and one deadline cover the whole batch; the first trap ends it.
  virtual absl::Status CallBatch(const FunctionRef& fn, size_t rows, absl::Span<const Value> args,
                                 absl::Span<Value> results, Trap* trap = nullptr) = 0;
  // The fuel budget of the calls that follow, in place of the module's Limits::fuel (0: the
  // module's again): for hosts whose budget depends on the call, such as a batch of n records.
  virtual void SetFuel(uint64_t fuel) = 0;
  // The exported (or only) linear memory; empty if the module has none.
  virtual GuestMemory memory() = 0;
  // Fuel spent by the last Call or CallBatch: exact, and the same on both tiers, when the call
  // returned or ran out of fuel. After another trap native code may report less (fuel kept in a
  // register by a function with loops is not written back when that function traps).
  virtual uint64_t last_fuel_used() const = 0;
};

// Process-wide state of the runtime: the compile workers and the cache. Safe for concurrent use.
class Runtime {
 public:
  static absl::StatusOr<std::unique_ptr<Runtime>> Create(RuntimeOptions options);
  virtual ~Runtime() = default;
  // Decodes, validates and prepares `bytes` under `limits`; refuses unsupported features and
  // malformed modules with INVALID_ARGUMENT and a readable message. Starts tier 1 in the background
  // unless `native` is false.
  virtual absl::StatusOr<std::shared_ptr<Module>> Load(absl::Span<const uint8_t> bytes,
                                                       const Limits& limits,
                                                       bool native = true) = 0;
  // Why tier 1 is unavailable, or empty when it is available.
  virtual std::string native_unavailable_reason() const = 0;
};

}  // namespace nodata::wasm
