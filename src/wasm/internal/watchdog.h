// The wall-clock backstop of Limits::deadline_ms: one thread that interrupts calls running past
// their deadline. Safe for concurrent use.
#pragma once

#include <chrono>
#include <cstdint>

#include "wasm/internal/tier.h"

namespace nodata::wasm::internal {

class Watchdog {
 public:
  // The process's watchdog; its thread starts on first use.
  static Watchdog& Get();

  // From `deadline` on, calls target.Interrupt(call_id) — again every few milliseconds until
  // Disarm — from the watchdog thread. `target` must stay valid until Disarm returns. Calls armed
  // on one thread nest (a host function calling into another instance): each keeps its deadline.
  // Costs two uncontended mutex acquisitions per call, no allocation after a thread's first.
  void Arm(uint64_t call_id, TierInstance& target, std::chrono::steady_clock::time_point deadline);
  // Ends the watch of `call_id`, the innermost armed on this thread; returns whether the
  // deadline passed (the interrupt was sent).
  bool Disarm(uint64_t call_id);

  struct State;  // defined in watchdog.cc

 private:
  Watchdog();
  void Run();
  State* state_;
};

}  // namespace nodata::wasm::internal
