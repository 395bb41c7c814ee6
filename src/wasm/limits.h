// Every limit a WebAssembly guest runs under, with its default. One place, so that operators and
// reviewers see the whole budget of a routine at a glance.
#pragma once

#include <cstdint>

namespace nodata::wasm {

// Limits of one module's instances. A module is prepared under these limits (the fuel counter and
// the memory maximum are written into the module itself), so both tiers enforce them identically.
struct Limits {
  // CPU budget of one Call or CallBatch, in fuel units. One unit is spent on every function entry
  // and on every branch back to a loop (each further iteration), so the count depends only on the
  // program and its input, never on the tier or the machine. 0 means unlimited. At ~1 ns per unit on tier 1, the
  // default stops a runaway routine after about a second of CPU.
  uint64_t fuel = 1'000'000'000;

  // Wall-clock backstop for one Call or CallBatch, in milliseconds, enforced by a watchdog thread:
  // it catches what fuel cannot (a host function that blocks, a guest that is merely slow per
  // unit). 0 disables the watchdog for this module.
  uint64_t deadline_ms = 10'000;

  // Largest linear memory an instance may have, in 64 KiB pages (4096 pages = 256 MiB). A module
  // whose initial memory exceeds it is refused at load; memory.grow past it returns -1, as the
  // WebAssembly specification prescribes for a failed grow.
  uint32_t max_memory_pages = 4096;

  // Deepest WebAssembly call nesting. Counted by instrumentation, identical on both tiers; a guest
  // that recurses deeper traps with "call stack exhausted". The native stack of the calling thread
  // must hold this many frames (8 MiB threads hold 10000 frames of up to ~800 bytes); a guard page
  // catches the rest as the same trap.
  uint32_t max_call_depth = 10'000;

  // Largest table, in elements, at instantiation and through table.grow.
  uint32_t max_table_elements = 100'000;
};

// Limits of the native compiler (tier 1): the translator and the C compiler each run in a child
// process under these, so a pathological module costs a bounded amount and never the server.
struct CompileLimits {
  // Wall-clock limit of the translator and of the C compiler, each.
  uint64_t timeout_ms = 120'000;
  // Address-space limit (RLIMIT_AS) of each child process, in bytes.
  uint64_t memory_bytes = 2ull << 30;
  // Modules larger than this are not compiled; they keep running on the interpreter.
  uint64_t max_module_bytes = 16ull << 20;
};

}  // namespace nodata::wasm
