// Tier 1: instances of a compiled module, run through rt.h's guarded call.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "wasm/internal/prepare.h"
#include "wasm/internal/tier.h"
#include "wasm/native/compiler.h"

namespace nodata::wasm::native {

// Instantiates `code` with `imports` (one per function import, in order). `code` and `module`
// must outlive the instance. A trap in the start function or in segment initialization is
// returned in `trap` with an error status.
absl::StatusOr<std::unique_ptr<internal::TierInstance>> NewNativeInstance(
    const NativeCode& code, const internal::PreparedModule& module,
    std::vector<HostFunction> imports, internal::RawTrap* trap);

}  // namespace nodata::wasm::native
