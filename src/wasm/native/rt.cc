#include "wasm/native/rt.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "wasm-rt.h"

namespace nodata::wasm::native {
namespace {

constexpr uint64_t kPageBytes = 65536;
// A 32-bit address plus a 32-bit static offset reaches just under 8 GiB: reserving that much makes
// every out-of-bounds access fault instead of reaching other memory.
constexpr uint64_t kReservationBytes = 8ull << 30;
constexpr size_t kAltStackBytes = 64 * 1024;
// Faults this close below a thread's stack are a stack overflow, not a memory access.
constexpr uintptr_t kStackOverflowSlack = 256 * 1024;
// Stack a host function called from guest code may use: with less left, the call traps.
constexpr uintptr_t kHostStackReserve = 256 * 1024;

// One guarded call on a thread's stack. The signal handlers see only the innermost frame
// (ThreadState::frame), which is set last on entry and reset first on exit, so they never see a
// half-built or half-dismantled call.
struct Frame {
  jmp_buf jump;
  uint64_t call_id = 0;
  Frame* outer = nullptr;
  volatile sig_atomic_t host_calls = 0;         // host functions entered from this call
  volatile sig_atomic_t interrupt_pending = 0;  // the watchdog fired while in a host function
};

// Per-thread state. Read by the signal handlers, so only plain fields.
struct ThreadState {
  Frame* volatile frame = nullptr;  // innermost guarded call, or null outside guest code
  bool ready = false;
  uintptr_t stack_low = 0;
  void* alt_stack = nullptr;
  char message[256] = {};
};

thread_local ThreadState t_state;

// Unregisters and frees the thread's alternate stack when the thread exits.
struct AltStackOwner {
  ~AltStackOwner() {
    if (t_state.alt_stack == nullptr) return;
    stack_t disable{};
    disable.ss_flags = SS_DISABLE;
    sigaltstack(&disable, nullptr);
    munmap(t_state.alt_stack, kAltStackBytes + getpagesize());
    t_state.alt_stack = nullptr;
  }
};
thread_local AltStackOwner t_alt_stack_owner;

struct sigaction g_previous_segv;
struct sigaction g_previous_bus;
std::once_flag g_handlers_once;
std::atomic<uint64_t> g_reserved_bytes{0};
int InterruptSignal() { return SIGRTMIN + 4; }

[[noreturn]] void Jump(TrapKind kind) {
  Frame* frame = t_state.frame;
  if (frame == nullptr) {
    std::fprintf(stderr, "nodata: wasm trap outside a guarded call: %s\n", TrapKindName(kind));
    std::abort();
  }
  _longjmp(frame->jump, static_cast<int>(kind));
}

void Chain(int sig, siginfo_t* info, void* context) {
  const struct sigaction& previous = sig == SIGSEGV ? g_previous_segv : g_previous_bus;
  if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(sig, info, context);
    return;
  }
  if (previous.sa_handler == SIG_IGN || previous.sa_handler == SIG_DFL) {
    // Restore the old disposition; returning re-executes the fault, which then ends the process
    // exactly as it would have without nodata's handler.
    sigaction(sig, &previous, nullptr);
    return;
  }
  previous.sa_handler(sig);
}

void OnFault(int sig, siginfo_t* info, void* context) {
  ThreadState& s = t_state;
  Frame* frame = s.frame;
  if (frame == nullptr || frame->host_calls != 0) {
    Chain(sig, info, context);
    return;
  }
  auto address = reinterpret_cast<uintptr_t>(info->si_addr);
  uintptr_t sp = 0;
#if defined(__x86_64__)
  sp = static_cast<uintptr_t>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RSP]);
#endif
  bool overflow = (address < s.stack_low + getpagesize() && address + kStackOverflowSlack >= s.stack_low) ||
                  (sp != 0 && sp < s.stack_low + getpagesize());
  _longjmp(frame->jump, static_cast<int>(overflow ? TrapKind::kCallStackExhausted
                                                 : TrapKind::kOutOfBounds));
}

void OnInterrupt(int, siginfo_t* info, void*) {
  auto call_id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(info->si_value.sival_ptr));
  Frame* frame = t_state.frame;
  // Only the innermost call is stopped here: an outer call's deadline is applied when control
  // is back in it (the watchdog repeats its signal), never by jumping over a host function.
  if (frame == nullptr || frame->call_id != call_id) return;
  if (frame->host_calls != 0) {
    frame->interrupt_pending = 1;  // applied when the host function returns
    return;
  }
  _longjmp(frame->jump, static_cast<int>(TrapKind::kDeadlineExceeded));
}

void InstallHandlers() {
  struct sigaction action {};
  action.sa_sigaction = OnFault;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &g_previous_segv);
  sigaction(SIGBUS, &action, &g_previous_bus);
  struct sigaction interrupt {};
  interrupt.sa_sigaction = OnInterrupt;
  interrupt.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
  sigemptyset(&interrupt.sa_mask);
  sigaction(InterruptSignal(), &interrupt, nullptr);
}

void PrepareThread(ThreadState& s) {
  std::call_once(g_handlers_once, InstallHandlers);
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* base = nullptr;
    size_t size = 0;
    pthread_attr_getstack(&attr, &base, &size);
    s.stack_low = reinterpret_cast<uintptr_t>(base);
    pthread_attr_destroy(&attr);
  }
  // The alternate stack, with a guard page below it; a large enough one the thread already has
  // (installed by someone else) is kept.
  stack_t current{};
  if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE) &&
      current.ss_size >= kAltStackBytes / 2) {
    s.ready = true;
    return;
  }
  size_t guard = getpagesize();
  void* mem = mmap(nullptr, kAltStackBytes + guard, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem != MAP_FAILED) {
    mprotect(mem, guard, PROT_NONE);
    stack_t stack{};
    stack.ss_sp = static_cast<char*>(mem) + guard;
    stack.ss_size = kAltStackBytes;
    if (sigaltstack(&stack, nullptr) == 0) {
      s.alt_stack = mem;
      (void)&t_alt_stack_owner;  // instantiate the per-thread owner
    } else {
      munmap(mem, kAltStackBytes + guard);
    }
  }
  s.ready = true;
}

struct FuncTypes {
  std::mutex mu;
  std::vector<std::vector<wasm_rt_type_t>> types;
};
FuncTypes& Types() {
  static FuncTypes* types = new FuncTypes();
  return *types;
}

// Tables of either element type (wasm_rt_funcref_table_t, wasm_rt_externref_table_t).
template <typename Table>
void AllocateTable(Table* table, uint32_t elements, uint32_t max_elements) {
  using Element = std::remove_pointer_t<decltype(table->data)>;
  table->size = elements;
  table->max_size = max_elements;
  table->data = static_cast<Element*>(calloc(elements ? elements : 1, sizeof(Element)));
  if (table->data == nullptr) {
    SetTrapMessage("out of memory for a table");
    Jump(TrapKind::kHost);
  }
}

template <typename Table>
void FreeTable(Table* table) {
  free(table->data);
  table->data = nullptr;
  table->size = 0;
}

template <typename Table, typename Element>
uint32_t GrowTable(Table* table, uint32_t delta, Element init) {
  uint32_t old_size = table->size;
  uint64_t new_size = static_cast<uint64_t>(old_size) + delta;
  if (new_size > table->max_size) return UINT32_MAX;
  EnterHost();
  auto* data = static_cast<Element*>(realloc(table->data, (new_size ? new_size : 1) * sizeof(Element)));
  if (data != nullptr) {
    for (uint64_t i = old_size; i < new_size; ++i) data[i] = init;
    table->data = data;
    table->size = static_cast<uint32_t>(new_size);
  }
  LeaveHost();
  return data != nullptr ? old_size : UINT32_MAX;
}

}  // namespace

TrapKind GuardedCall(GuardedFn fn, void* arg, uint64_t call_id) {
  ThreadState& s = t_state;
  if (!s.ready) PrepareThread(s);
  Frame frame;
  frame.call_id = call_id;
  frame.outer = s.frame;
  // Nothing below is modified between _setjmp and a jump back to it.
  int code = _setjmp(frame.jump);
  if (code == 0) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    s.frame = &frame;  // from here on the handlers act for this call
    std::atomic_signal_fence(std::memory_order_seq_cst);
    fn(arg);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  s.frame = frame.outer;  // idempotent: also right after a jump back here
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return static_cast<TrapKind>(code);
}

void InterruptThread(uint64_t thread, uint64_t call_id) {
  union sigval value;
  value.sival_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(call_id));
  pthread_sigqueue(static_cast<pthread_t>(thread), InterruptSignal(), value);
}


void SetTrapMessage(const char* message) {
  std::snprintf(t_state.message, sizeof(t_state.message), "%s", message);
}
const char* TrapMessage() { return t_state.message; }

void TrapNow(TrapKind kind) { Jump(kind); }

void EnterHost() {
  ThreadState& s = t_state;
  Frame* frame = s.frame;
  if (frame == nullptr) return;  // host code outside any guarded call (moving an instance)
  // Host code gets a reserve of stack: a guest that recursed close to the guard page would
  // otherwise overflow inside the host function, where a fault is not the guest's.
  auto sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  if (frame->host_calls == 0 && s.stack_low != 0 && sp < s.stack_low + kHostStackReserve) {
    Jump(TrapKind::kCallStackExhausted);
  }
  frame->host_calls = frame->host_calls + 1;
}

void LeaveHost() {
  Frame* frame = t_state.frame;
  if (frame == nullptr) return;
  frame->host_calls = frame->host_calls - 1;
  if (frame->host_calls == 0 && frame->interrupt_pending) {
    frame->interrupt_pending = 0;
    Jump(TrapKind::kDeadlineExceeded);
  }
}

uint64_t ReservedBytes() { return g_reserved_bytes.load(std::memory_order_relaxed); }

}  // namespace nodata::wasm::native

using nodata::wasm::TrapKind;
using nodata::wasm::native::Jump;
using nodata::wasm::native::kPageBytes;
using nodata::wasm::native::kReservationBytes;

// The wasm-rt.h interface, for compiled modules.
extern "C" {

void wasm_rt_init(void) {}
bool wasm_rt_is_initialized(void) { return true; }
void wasm_rt_free(void) {}

void wasm_rt_trap(wasm_rt_trap_t code) {
  switch (code) {
    case WASM_RT_TRAP_OOB: Jump(TrapKind::kOutOfBounds);
    case WASM_RT_TRAP_INT_OVERFLOW: Jump(TrapKind::kIntegerOverflow);
    case WASM_RT_TRAP_DIV_BY_ZERO: Jump(TrapKind::kIntegerDivideByZero);
    case WASM_RT_TRAP_INVALID_CONVERSION: Jump(TrapKind::kInvalidConversion);
    case WASM_RT_TRAP_UNREACHABLE: Jump(TrapKind::kUnreachable);
    case WASM_RT_TRAP_CALL_INDIRECT: Jump(TrapKind::kIndirectCall);
    case WASM_RT_TRAP_EXHAUSTION: Jump(TrapKind::kCallStackExhausted);
    default: Jump(TrapKind::kUnreachable);
  }
}

const char* wasm_rt_strerror(wasm_rt_trap_t trap) {
  return nodata::wasm::TrapKindName(static_cast<TrapKind>(trap));
}

uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...) {
  std::vector<wasm_rt_type_t> signature;
  signature.push_back(static_cast<wasm_rt_type_t>(params));
  va_list args;
  va_start(args, results);
  for (uint32_t i = 0; i < params + results; ++i) {
    signature.push_back(static_cast<wasm_rt_type_t>(va_arg(args, int)));
  }
  va_end(args);
  auto& types = nodata::wasm::native::Types();
  std::lock_guard lock(types.mu);
  for (size_t i = 0; i < types.types.size(); ++i) {
    if (types.types[i] == signature) return static_cast<uint32_t>(i + 1);
  }
  types.types.push_back(std::move(signature));
  return static_cast<uint32_t>(types.types.size());
}

// Exception handling is not among nodata's features; modules that use it are refused at load.
uint32_t wasm_rt_register_tag(uint32_t) { return 0; }
void wasm_rt_load_exception(uint32_t, uint32_t, const void*) { Jump(TrapKind::kUnreachable); }
void wasm_rt_throw(void) { Jump(TrapKind::kUnreachable); }
WASM_RT_UNWIND_TARGET* wasm_rt_get_unwind_target(void) { return nullptr; }
void wasm_rt_set_unwind_target(WASM_RT_UNWIND_TARGET*) {}
uint32_t wasm_rt_exception_tag(void) { return 0; }
uint32_t wasm_rt_exception_size(void) { return 0; }
void* wasm_rt_exception(void) { return nullptr; }

void wasm_rt_allocate_memory(wasm_rt_memory_t* memory, uint32_t initial_pages,
                             uint32_t max_pages) {
  memory->data = nullptr;
  memory->pages = 0;
  memory->max_pages = max_pages;
  memory->size = 0;
  // Reserve 2 MiB more than needed and trim, so the memory starts on a huge-page boundary; with
  // MADV_HUGEPAGE a large memory is then backed by 2 MiB pages, which spares random access (hash
  // tables, the usual aggregation state) most of its TLB misses.
  constexpr uint64_t kHugePage = 2ull << 20;
  void* raw = mmap(nullptr, kReservationBytes + kHugePage, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    nodata::wasm::native::SetTrapMessage("could not reserve address space for linear memory");
    Jump(TrapKind::kHost);
  }
  auto start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t end = start + kReservationBytes + kHugePage;
  if (end > aligned + kReservationBytes) {
    munmap(reinterpret_cast<void*>(aligned + kReservationBytes), end - aligned - kReservationBytes);
  }
  void* reservation = reinterpret_cast<void*>(aligned);
  madvise(reservation, kReservationBytes, MADV_HUGEPAGE);
  nodata::wasm::native::g_reserved_bytes.fetch_add(kReservationBytes, std::memory_order_relaxed);
  memory->data = static_cast<uint8_t*>(reservation);
  uint64_t bytes = initial_pages * kPageBytes;
  if (bytes != 0 && mprotect(reservation, bytes, PROT_READ | PROT_WRITE) != 0) {
    nodata::wasm::native::SetTrapMessage("could not commit linear memory");
    Jump(TrapKind::kHost);
  }
  memory->pages = initial_pages;
  memory->size = static_cast<uint32_t>(bytes);
}

uint32_t wasm_rt_grow_memory(wasm_rt_memory_t* memory, uint32_t delta) {
  uint32_t old_pages = memory->pages;
  uint64_t new_pages = static_cast<uint64_t>(old_pages) + delta;
  if (delta == 0) return old_pages;
  // wasm_rt_memory_t holds the size in 32 bits: 65535 pages at most.
  if (new_pages > memory->max_pages || new_pages > 65535) return UINT32_MAX;
  nodata::wasm::native::EnterHost();
  int rc = mprotect(memory->data + old_pages * kPageBytes, delta * kPageBytes,
                    PROT_READ | PROT_WRITE);
  if (rc == 0) {
    memory->pages = static_cast<uint32_t>(new_pages);
    memory->size = static_cast<uint32_t>(new_pages * kPageBytes);
  }
  nodata::wasm::native::LeaveHost();
  return rc == 0 ? old_pages : UINT32_MAX;
}

void wasm_rt_free_memory(wasm_rt_memory_t* memory) {
  if (memory->data == nullptr) return;
  munmap(memory->data, kReservationBytes);
  nodata::wasm::native::g_reserved_bytes.fetch_sub(kReservationBytes, std::memory_order_relaxed);
  memory->data = nullptr;
  memory->size = 0;
  memory->pages = 0;
}

void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t* table, uint32_t elements,
                                    uint32_t max_elements) {
  nodata::wasm::native::AllocateTable(table, elements, max_elements);
}
void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t* table) {
  nodata::wasm::native::FreeTable(table);
}
uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t* table, uint32_t delta,
                                    wasm_rt_funcref_t init) {
  return nodata::wasm::native::GrowTable(table, delta, init);
}

void wasm_rt_allocate_externref_table(wasm_rt_externref_table_t* table, uint32_t elements,
                                      uint32_t max_elements) {
  nodata::wasm::native::AllocateTable(table, elements, max_elements);
}
void wasm_rt_free_externref_table(wasm_rt_externref_table_t* table) {
  nodata::wasm::native::FreeTable(table);
}
uint32_t wasm_rt_grow_externref_table(wasm_rt_externref_table_t* table, uint32_t delta,
                                      wasm_rt_externref_t init) {
  return nodata::wasm::native::GrowTable(table, delta, init);
}

}  // extern "C"
