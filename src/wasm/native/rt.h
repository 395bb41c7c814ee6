// nodata's implementation of wasm2c's runtime interface (`wasm-rt.h`), made for a multi-threaded
// server, and the guarded call that runs native WebAssembly code.
//
// - Trap state is per thread: each thread has its own jump target, so a trap on one thread never
//   lands on another's stack.
// - Each thread that runs wasm gets its own alternate signal stack on first use, so a stack
//   overflow in wasm on any thread is caught.
// - The SIGSEGV/SIGBUS handler acts only while its thread is inside wasm code (not inside a host
//   function the guest called); any other fault is passed to the previous handler, so host bugs
//   crash as they would without us.
// - A memory reserves 8 GiB of address space (the reach of a 32-bit address plus a 32-bit offset),
//   commits pages as it grows and unmaps the whole reservation when freed.
// - The guarded call saves no signal mask (`_setjmp`; handlers run with SA_NODEFER), so entering
//   wasm costs a few nanoseconds.
// The functions of `wasm-rt.h` are exported from the executable (ENABLE_EXPORTS) for the compiled
// modules to bind to; no module carries a runtime of its own.
#pragma once

#include <cstdint>

#include "wasm/types.h"

namespace nodata::wasm::native {

using GuardedFn = void (*)(void* arg);

// Runs fn(arg) as wasm code on the calling thread. Returns kNone, or the trap that stopped it.
// `call_id` identifies the call for InterruptThread. Re-entrant (host → wasm → host → wasm).
TrapKind GuardedCall(GuardedFn fn, void* arg, uint64_t call_id);

// Stops the guarded call `call_id` running on thread `thread` (a pthread_t) with
// kDeadlineExceeded: at once if it is in wasm code, or when its current host function returns.
// Safe from any thread while `thread` is alive; a call that already ended ignores it.
void InterruptThread(uint64_t thread, uint64_t call_id);

// A host function's failure (or a runtime error such as a failed allocation), to be turned into a
// trap by the caller once it has released its resources. Message storage is per thread.
void SetTrapMessage(const char* message);
const char* TrapMessage();

// Traps the current guarded call with `kind`. Never returns.
[[noreturn]] void TrapNow(TrapKind kind);

// Host-call bracket used by compiled modules' import thunks: marks the thread as in host code, so
// faults there are not taken for guest faults, and applies a pending interrupt on the way out.
void EnterHost();
void LeaveHost();

// Bytes of address space reserved by live memories, for metrics and tests.
uint64_t ReservedBytes();

}  // namespace nodata::wasm::native
