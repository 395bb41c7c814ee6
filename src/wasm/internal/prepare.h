// Decoding, validation and instrumentation of a module, shared by both tiers.
//
// The prepared module is the user's module plus:
//   - a mutable i64 global `__nodata_fuel`, decremented on every function entry and every branch
//     back to a loop; when it drops below zero the code executes `unreachable`;
//   - a mutable i32 global `__nodata_depth`, incremented on entry to every function that calls,
//     decremented on its exit; past Limits::max_call_depth the code executes `unreachable`;
//   - the memory's maximum lowered to Limits::max_memory_pages;
//   - exports `__nodata_fuel`, `__nodata_depth`, `__nodata_memory` and `__nodata_global_<i>` for
//     every mutable global, so the host can budget calls and move an instance between tiers.
// Native code gets a variant that keeps fuel in a local inside functions with loops (same units
// at the same points; see FuelMode in prepare.cc). A trap at `unreachable` with fuel below zero
// is a fuel trap; with depth past the limit, a call
// depth trap. Both tiers run these same bytes, which is what makes fuel deterministic.
#pragma once

#include <cstdint>
#include "absl/types/span.h"
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "wasm/limits.h"
#include "wasm/types.h"

namespace wabt {
class Features;
}

namespace nodata::wasm::internal {

// The features nodata runs, for every decoder of a module (load, interpreter, translator): MVP plus
// mutable globals, sign extension, saturating float-to-int and bulk memory. Everything else (SIMD,
// threads, reference types, multi-value, tail calls, exceptions, memory64, ...) is refused at load
// with the feature named.
wabt::Features SupportedFeatures();

inline constexpr char kFuelExport[] = "__nodata_fuel";
inline constexpr char kDepthExport[] = "__nodata_depth";
inline constexpr char kMemoryExport[] = "__nodata_memory";
inline constexpr char kGlobalExportPrefix[] = "__nodata_global_";
inline constexpr char kReservedPrefix[] = "__nodata_";

struct PreparedExport {
  std::string name;
  ModuleInfo::Kind kind = ModuleInfo::Kind::kFunction;
  FuncSignature signature;  // functions
  ValType global_type = ValType::kI32;  // globals
};

struct PreparedModule {
  std::vector<uint8_t> bytes;         // instrumented for the interpreter (fuel in the global)
  std::vector<uint8_t> native_bytes;  // instrumented for native code (fuel cached in locals)
  ModuleInfo info;             // of the user's module
  Limits limits;
  std::vector<FuncSignature> function_imports;  // in import order (only functions are allowed)
  std::vector<PreparedExport> exports;          // every export of `bytes`, in order
  int fuel_export = -1;
  int depth_export = -1;
  int memory_export = -1;                  // -1 without a memory
  std::vector<int> mutable_global_exports;  // exports of every mutable global
  // Changes state other than memory and globals (table.init, table.copy, elem.drop, data.drop),
  // which moving an instance between tiers would not carry.
  bool hidden_state = false;
};

// Decodes and validates `bytes` with nodata's feature set (MVP plus mutable globals, sign
// extension, saturating conversions and bulk memory) and instruments it under `limits`.
// INVALID_ARGUMENT with a readable message for malformed, invalid or unsupported modules.
absl::StatusOr<PreparedModule> Prepare(absl::Span<const uint8_t> bytes, const Limits& limits);

// The fuel a call starts with under `limits` (Limits::fuel, or a practically unlimited amount).
int64_t FuelBudget(const Limits& limits);

// Hex SHA-256 of `data`.
std::string Sha256Hex(absl::Span<const uint8_t> data);

}  // namespace nodata::wasm::internal
