// Tier 0: wabt's interpreter. Runs a module the moment it is loaded.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "wasm/internal/prepare.h"
#include "wasm/internal/tier.h"

namespace wabt::interp {
struct ModuleDesc;
}

namespace nodata::wasm::internal {

// The decoded form of a prepared module that interpreter instances are made from. Immutable and
// safe to share between threads.
class InterpModule {
 public:
  static absl::StatusOr<std::unique_ptr<InterpModule>> Create(const PreparedModule& module);
  ~InterpModule();
  const wabt::interp::ModuleDesc& desc() const { return *desc_; }

 private:
  InterpModule() = default;
  std::unique_ptr<wabt::interp::ModuleDesc> desc_;
};

// Instantiates `module` with `imports` (one per function import, in order). A trap in the start
// function or in segment initialization is returned in `trap` with an error status.
absl::StatusOr<std::unique_ptr<TierInstance>> NewInterpInstance(const InterpModule& code,
                                                                const PreparedModule& module,
                                                                std::vector<HostFunction> imports,
                                                                RawTrap* trap);

}  // namespace nodata::wasm::internal
