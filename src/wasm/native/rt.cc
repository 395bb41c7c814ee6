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

// Per-thread state of guarded calls. Read by the signal handlers, so only plain fields.
struct ThreadState {
  jmp_buf* jump = nullptr;      // innermost guarded call
  int wasm_calls = 0;           // guarded calls on this thread's stack
  int host_calls = 0;           // host functions entered from the innermost guarded call
  uint64_t call_id = 0;         // innermost guarded call
  volatile sig_atomic_t interrupt_pending = 0;
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
  ThreadState& s = t_state;
  if (s.jump == nullptr) {
    std::fprintf(stderr, "nodata: wasm trap outside a guarded call: %s\n", TrapKindName(kind));
    std::abort();
  }
  _longjmp(*s.jump, static_cast<int>(kind));
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
  if (s.wasm_calls == 0 || s.host_calls != 0 || s.jump == nullptr) {
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
  _longjmp(*s.jump, static_cast<int>(overflow ? TrapKind::kCallStackExhausted
                                              : TrapKind::kOutOfBounds));
}

void OnInterrupt(int, siginfo_t* info, void*) {
  ThreadState& s = t_state;
  auto call_id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(info->si_value.sival_ptr));
  if (s.wasm_calls == 0 || s.call_id != call_id) return;  // that call has ended
  if (s.host_calls != 0 || s.jump == nullptr) {
    s.interrupt_pending = 1;  // applied when the host function returns
    return;
  }
  _longjmp(*s.jump, static_cast<int>(TrapKind::kDeadlineExceeded));
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
  jmp_buf buffer;
  jmp_buf* const outer_jump = s.jump;
  const int outer_host_calls = s.host_calls;
  const uint64_t outer_call_id = s.call_id;
  int code = _setjmp(buffer);
  if (code == 0) {
    s.jump = &buffer;
    s.host_calls = 0;
    s.call_id = call_id;
    // The signal handlers read this state: it must be complete before wasm_calls says so.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    ++s.wasm_calls;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    fn(arg);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  --s.wasm_calls;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  s.jump = outer_jump;
  s.host_calls = outer_host_calls;
  s.call_id = outer_call_id;
  if (s.wasm_calls == 0) s.interrupt_pending = 0;
  return static_cast<TrapKind>(code);
}

void InterruptThread(uint64_t thread, uint64_t call_id) {
  union sigval value;
  value.sival_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(call_id));
  pthread_sigqueue(static_cast<pthread_t>(thread), InterruptSignal(), value);
}

uint64_t CurrentThread() { return static_cast<uint64_t>(pthread_self()); }

void SetTrapMessage(const char* message) {
  std::snprintf(t_state.message, sizeof(t_state.message), "%s", message);
}
const char* TrapMessage() { return t_state.message; }

void TrapNow(TrapKind kind) { Jump(kind); }

void EnterHost() { ++t_state.host_calls; }

void LeaveHost() {
  ThreadState& s = t_state;
  --s.host_calls;
  if (s.host_calls == 0 && s.interrupt_pending) {
    s.interrupt_pending = 0;
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
