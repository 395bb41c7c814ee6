// What the runtime needs of a tier: an instance that calls exports by index over raw value slots.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "wasm/runtime.h"

namespace nodata::wasm::internal {

// The raw outcome of a tier call, before the runtime classifies `unreachable` traps into fuel and
// call-depth traps using the counters.
struct RawTrap {
  TrapKind kind = TrapKind::kNone;
  std::string message;
  bool ok() const { return kind == TrapKind::kNone; }
};

// One instance on one tier. Not thread-safe, like Instance.
class TierInstance {
 public:
  virtual ~TierInstance() = default;
  virtual Tier tier() const = 0;
  // Calls function export `export_index` once per row; values are raw bits (Value::bits), `args`
  // holds rows * params slots and `results` rows * results slots. The watchdog may interrupt it
  // (kDeadlineExceeded) once `Interrupt` is called from another thread.
  virtual RawTrap Call(uint32_t export_index, size_t rows, const uint64_t* args,
                       uint64_t* results, uint64_t call_id) = 0;
  virtual GuestMemory memory() = 0;
  // Raw bits of the global exported at `export_index`.
  virtual uint64_t ReadGlobal(uint32_t export_index) = 0;
  virtual void WriteGlobal(uint32_t export_index, uint64_t bits) = 0;
  // Grows memory to `pages` (never shrinks). For moving an instance between tiers.
  virtual bool GrowMemoryTo(uint32_t pages) = 0;
  // Asks the running call `call_id`, made on `thread` (pthread_t), to stop with
  // kDeadlineExceeded; safe from any thread while that call runs.
  virtual void Interrupt(uint64_t call_id, uint64_t thread) = 0;
};

}  // namespace nodata::wasm::internal
