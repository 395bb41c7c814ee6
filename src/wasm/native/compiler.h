// Tier 1's compiler: prepared module → C (translator child) → shared object (C compiler child) →
// on-disk cache → dlopen. Thread-safe: compilations of different modules may run at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "wasm/internal/prepare.h"
#include "wasm/runtime.h"

namespace nodata::wasm::native {

// A compiled module loaded into the process. The entry points follow the ABI that Glue() emits.
class NativeCode {
 public:
  ~NativeCode();
  NativeCode(const NativeCode&) = delete;
  NativeCode& operator=(const NativeCode&) = delete;

  // Exported function trampolines: fn(instance, slots) with arguments in, results out.
  using CallFn = void (*)(void* instance, uint64_t* slots);
  // Exported memory or global accessors: the address of the memory (wasm_rt_memory_t) or global.
  using GetFn = void* (*)(void* instance);

  size_t instance_size = 0;
  void (*instantiate)(void* instance, void* host_context) = nullptr;
  void (*free_instance)(void* instance) = nullptr;
  // One entry per export of the prepared module, in order: a CallFn or a GetFn.
  void* const* exports = nullptr;
  uint32_t export_count = 0;

 private:
  friend absl::StatusOr<std::unique_ptr<NativeCode>> LoadShared(const std::string&, uint32_t);
  NativeCode() = default;
  void* handle_ = nullptr;
};

// What tier 1 compiles with, resolved once per runtime.
struct Toolchain {
  std::vector<std::string> translator;  // argv prefix; "translate IN OUT.c OUT.h" is appended
  std::string compiler;                 // resolved path
  std::vector<std::string> flags;
  std::string cache_dir;
  CompileLimits limits;
  uint64_t cache_max_bytes = 0;
  std::string identity;  // translator, compiler and runtime versions: part of every cache key
};

// Finds the compiler and the runtime header; the error says why tier 1 is unavailable.
absl::StatusOr<Toolchain> ResolveToolchain(const RuntimeOptions& options);

// Loads `module`'s shared object from the cache; NOT_FOUND when it is not there (a damaged entry
// is removed and is not found either). Costs a hash, a stat and a dlopen: fit for the caller's
// thread.
absl::StatusOr<std::unique_ptr<NativeCode>> LoadCached(const Toolchain& toolchain,
                                                       const internal::PreparedModule& module);

// Loads `module`'s shared object from the cache, or builds and caches it first. `cache_hit`
// tells which happened.
absl::StatusOr<std::unique_ptr<NativeCode>> CompileOrLoad(const Toolchain& toolchain,
                                                          const internal::PreparedModule& module,
                                                          bool* cache_hit);

// The C glue appended to the translated module (one translation unit): import thunks into the
// host, export trampolines over raw slots, and the entry points NativeCode reads. `header` is the translated
// module's header, whose declarations give the exact symbol names.
absl::StatusOr<std::string> Glue(const internal::PreparedModule& module, const std::string& header);

}  // namespace nodata::wasm::native
