// The host side that the component and aggregation ABIs share (docs/formats/component-abi.md):
// checking a module's exports and imports, the "nodata" imports `batch_read`, `config` and `log`,
// the wasi_snapshot_preview1 subset, the rate-limited guest log, and starting an instance
// (`_initialize`, `nd_init`). Each ABI binds its own further imports (`emit`; `state_write`,
// `value_write`) and calls its own entry points.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "wasm/runtime.h"

namespace nodata::components {

// level 0 debug .. 3 error.
using LogSink = std::function<void(int level, std::string_view line)>;

// An import of module "nodata" that one ABI adds to the shared ones.
struct AbiImport {
  std::string_view name;
  std::vector<wasm::ValType> params;
  std::vector<wasm::ValType> results;
};

// What a module of one ABI must look like, and the words its errors use.
struct AbiSpec {
  std::string_view marker;   // "nodata_component_v1"
  std::string_view noun;     // "component": "not a nodata component"
  std::string_view a_noun;   // "a component": "a component must export ..."
  std::string_view plural;   // "components": "components may import only ..."
  std::string_view version;  // "ABI version 1": "…, which ABI version 1 does not have"
  std::vector<AbiImport> imports;  // beyond batch_read, config and log
};

// Checks the marker, the memory export, the optional `_initialize` and `nd_init`, and every
// import against the ABI: INVALID_ARGUMENT with a readable message.
absl::Status CheckModule(const wasm::ModuleInfo& info, const AbiSpec& abi);
// `name` exported as a function of this signature (or, when !required, absent).
absl::Status CheckExport(const wasm::ModuleInfo& info, const AbiSpec& abi, std::string_view name,
                         const std::vector<wasm::ValType>& params,
                         const std::vector<wasm::ValType>& results, bool required);
bool HasExport(const wasm::ModuleInfo& info, std::string_view name);

// A host function for `import` (module, name, signature), its callback still to bind.
wasm::HostFunction DeclareImport(const wasm::ModuleInfo::Import& import);

// Guest bytes [ptr, ptr + len) as a span, or nullopt when outside memory.
std::optional<absl::Span<uint8_t>> GuestBytes(wasm::HostContext& ctx, uint32_t ptr, uint32_t len);

// The budget of a call over `units` records: `per_unit` times them, saturating (0: unlimited).
uint64_t CallFuel(uint64_t per_unit, uint64_t units);

// Runs a new instance's `_initialize` and `nd_init` (when exported), each under `fuel`:
// FAILED_PRECONDITION when one traps or nd_init returns non-zero.
absl::Status StartInstance(wasm::Instance& instance, uint64_t fuel);

// The shared imports of one instance: the batch `batch_read` hands out, the configuration, the
// log (the `log` import and WASI fd 1 and 2, rate-limited) and the WASI subset. Not thread-safe:
// serves the one call in progress.
class GuestHost {
 public:
  GuestHost(std::string config, uint32_t log_lines_per_second, LogSink log);

  // Binds `f` (from DeclareImport) if it is one of the shared imports (its callbacks refer to
  // this object); false for the ABI's own, which the caller binds.
  bool Bind(wasm::HostFunction* f);
  // What `batch_read` copies until the next call; the bytes must outlive the call.
  void set_batch(std::string_view batch) { batch_ = batch; }
  uint64_t log_lines_dropped() const { return log_dropped_; }

 private:
  void Log(int level, std::string_view line);
  void WriteStream(int fd, std::string_view bytes);
  int32_t FdWrite(wasm::HostContext& ctx, int32_t fd, uint32_t iovs, uint32_t iovs_len,
                  uint32_t nwritten);
  void BindWasi(std::string_view name, wasm::HostFunction* f);

  const std::string config_;
  const uint32_t log_lines_per_second_;
  const LogSink log_;
  std::string_view batch_;
  int64_t log_second_ = 0;
  uint32_t log_count_ = 0;
  uint64_t log_dropped_ = 0;
  std::string stdout_;
  std::string stderr_;
};

}  // namespace nodata::components
