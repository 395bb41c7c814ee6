#include "wasm/native/native_tier.h"

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "fmt/format.h"
#include "wasm-rt.h"
#include "wasm/native/rt.h"

namespace nodata::wasm::native {
namespace {

class NativeInstance final : public internal::TierInstance, public HostContext {
 public:
  NativeInstance(const NativeCode& code, const internal::PreparedModule& module,
                 std::vector<HostFunction> imports)
      : code_(code), module_(module), imports_(std::move(imports)) {}

  ~NativeInstance() override {
    if (instance_ == nullptr) return;
    code_.free_instance(instance_);
    std::free(instance_);
  }

  absl::Status Init(internal::RawTrap* trap) {
    size_t size = (code_.instance_size + 63) / 64 * 64;
    instance_ = std::aligned_alloc(64, size == 0 ? 64 : size);
    if (instance_ == nullptr) return absl::ResourceExhaustedError("out of memory for an instance");
    std::memset(instance_, 0, size);
    struct Args {
      NativeInstance* self;
    } args{this};
    TrapKind kind = GuardedCall(
        [](void* p) {
          auto* a = static_cast<Args*>(p);
          a->self->code_.instantiate(a->self->instance_, a->self);
        },
        &args, 0);
    if (kind != TrapKind::kNone) {
      trap->kind = kind;
      trap->message = Message(kind);
      return absl::AbortedError("start: " + trap->message);
    }
    return absl::OkStatus();
  }

  Tier tier() const override { return Tier::kNative; }

  internal::RawTrap Call(uint32_t export_index, size_t rows, const uint64_t* args,
                         uint64_t* results, uint64_t call_id) override {
    const internal::PreparedExport& e = module_.exports[export_index];
    Batch batch;
    batch.fn = reinterpret_cast<NativeCode::CallFn>(code_.exports[export_index]);
    batch.instance = instance_;
    batch.rows = rows;
    batch.args = args;
    batch.results = results;
    batch.params = e.signature.params.size();
    batch.result_count = e.signature.results.size();
    TrapKind kind = GuardedCall(RunBatch, &batch, call_id);
    if (kind == TrapKind::kNone) return {};
    return {kind, Message(kind)};
  }

  GuestMemory memory() override {
    wasm_rt_memory_t* m = Memory();
    return m == nullptr ? GuestMemory() : GuestMemory(m->data, m->size);
  }

  uint64_t ReadGlobal(uint32_t export_index) override {
    void* p = Accessor(export_index);
    ValType t = module_.exports[export_index].global_type;
    if (t == ValType::kI32 || t == ValType::kF32) {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }

  void WriteGlobal(uint32_t export_index, uint64_t bits) override {
    void* p = Accessor(export_index);
    ValType t = module_.exports[export_index].global_type;
    if (t == ValType::kI32 || t == ValType::kF32) {
      uint32_t v = static_cast<uint32_t>(bits);
      std::memcpy(p, &v, 4);
    } else {
      std::memcpy(p, &bits, 8);
    }
  }

  bool GrowMemoryTo(uint32_t pages) override {
    wasm_rt_memory_t* m = Memory();
    if (m == nullptr) return pages == 0;
    if (pages <= m->pages) return true;
    return wasm_rt_grow_memory(m, pages - m->pages) != UINT32_MAX;
  }

  void Interrupt(uint64_t call_id, uint64_t thread) override { InterruptThread(thread, call_id); }

  // Called by the import thunks through nodata_wasm_host_call. Returns kNone or the trap to raise
  // once this frame is gone.
  TrapKind CallHost(uint32_t index, uint64_t* slots) {
    if (index >= imports_.size()) return TrapKind::kUnreachable;
    const HostFunction& host = imports_[index];
    Value in[16], out[16];
    if (host.params.size() > 16 || host.results.size() > 16) return TrapKind::kHost;
    for (size_t i = 0; i < host.params.size(); ++i) in[i] = Value{host.params[i], slots[i]};
    for (size_t i = 0; i < host.results.size(); ++i) out[i].type = host.results[i];
    absl::Status status;
    try {
      status = host.callback(*this, absl::Span<const Value>(in, host.params.size()),
                             absl::Span<Value>(out, host.results.size()));
    } catch (const std::exception& e) {
      status = absl::InternalError(e.what());
    }
    if (!status.ok()) {
      host_error_ = fmt::format("{}.{}: {}", host.module, host.name, std::string(status.message()));
      return TrapKind::kHost;
    }
    for (size_t i = 0; i < host.results.size(); ++i) slots[i] = out[i].bits;
    return TrapKind::kNone;
  }

 private:
  struct Batch {
    NativeCode::CallFn fn;
    void* instance;
    size_t rows;
    const uint64_t* args;
    uint64_t* results;
    size_t params;
    size_t result_count;
  };

  static void RunBatch(void* p) {
    auto* b = static_cast<Batch*>(p);
    uint64_t slots[16];
    for (size_t row = 0; row < b->rows; ++row) {
      for (size_t i = 0; i < b->params; ++i) slots[i] = b->args[row * b->params + i];
      b->fn(b->instance, slots);
      for (size_t i = 0; i < b->result_count; ++i) b->results[row * b->result_count + i] = slots[i];
    }
  }

  std::string Message(TrapKind kind) {
    if (kind == TrapKind::kHost) {
      const char* rt = TrapMessage();
      if (host_error_.empty() && rt[0] != '\0') return rt;
      return host_error_;
    }
    return TrapKindName(kind);
  }

  void* Accessor(uint32_t export_index) {
    auto get = reinterpret_cast<NativeCode::GetFn>(code_.exports[export_index]);
    return get(instance_);
  }

  wasm_rt_memory_t* Memory() {
    if (module_.memory_export < 0) return nullptr;
    return static_cast<wasm_rt_memory_t*>(Accessor(static_cast<uint32_t>(module_.memory_export)));
  }

  const NativeCode& code_;
  const internal::PreparedModule& module_;
  std::vector<HostFunction> imports_;
  void* instance_ = nullptr;
  std::string host_error_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<internal::TierInstance>> NewNativeInstance(
    const NativeCode& code, const internal::PreparedModule& module,
    std::vector<HostFunction> imports, internal::RawTrap* trap) {
  for (const auto& e : module.exports) {
    if (e.signature.params.size() > 16 || e.signature.results.size() > 1) {
      return absl::InvalidArgumentError(
          fmt::format("export {} has more than 16 parameters", e.name));
    }
  }
  auto instance = std::make_unique<NativeInstance>(code, module, std::move(imports));
  if (absl::Status s = instance->Init(trap); !s.ok()) return s;
  return instance;
}

}  // namespace nodata::wasm::native

// Called by compiled modules' import thunks. `context` is the NativeInstance given to
// nodata_instantiate. Any trap is raised after the C++ frame that ran the host function is gone.
extern "C" void nodata_wasm_host_call(void* context, uint32_t import_index, uint64_t* slots) {
  using nodata::wasm::TrapKind;
  nodata::wasm::native::EnterHost();
  TrapKind kind = static_cast<nodata::wasm::native::NativeInstance*>(context)->CallHost(import_index, slots);
  if (kind != TrapKind::kNone) {
    nodata::wasm::native::LeaveHost();  // may itself trap with a pending interrupt
    nodata::wasm::native::TrapNow(kind);
  }
  nodata::wasm::native::LeaveHost();
}
