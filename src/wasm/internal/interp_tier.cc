#include "wasm/internal/interp_tier.h"

#include <atomic>
#include <climits>

#include "fmt/format.h"
#include "wabt/binary-reader.h"
#include "wabt/feature.h"
#include "wabt/interp/binary-reader-interp.h"
#include "wabt/interp/interp.h"

namespace nodata::wasm::internal {
namespace {

namespace wi = wabt::interp;

wabt::Type ToWabt(ValType t) {
  switch (t) {
    case ValType::kI32: return wabt::Type::I32;
    case ValType::kI64: return wabt::Type::I64;
    case ValType::kF32: return wabt::Type::F32;
    case ValType::kF64: return wabt::Type::F64;
  }
  return wabt::Type::I32;
}

wi::Value ToInterp(ValType t, uint64_t bits) {
  switch (t) {
    case ValType::kI32: return wi::Value::Make(static_cast<uint32_t>(bits));
    case ValType::kI64: return wi::Value::Make(bits);
    case ValType::kF32: {
      uint32_t b = static_cast<uint32_t>(bits);
      float f;
      std::memcpy(&f, &b, 4);
      return wi::Value::Make(f);
    }
    case ValType::kF64: {
      double d;
      std::memcpy(&d, &bits, 8);
      return wi::Value::Make(d);
    }
  }
  return wi::Value::Make(0u);
}

uint64_t FromInterp(ValType t, const wi::Value& v) {
  switch (t) {
    case ValType::kI32: return v.Get<uint32_t>();
    case ValType::kI64: return v.Get<uint64_t>();
    case ValType::kF32: {
      float f = v.Get<float>();
      uint32_t b;
      std::memcpy(&b, &f, 4);
      return b;
    }
    case ValType::kF64: {
      double d = v.Get<double>();
      uint64_t b;
      std::memcpy(&b, &d, 8);
      return b;
    }
  }
  return 0;
}

// wabt's trap messages, mapped onto the kinds both tiers report.
TrapKind Classify(const std::string& message) {
  auto has = [&](const char* s) { return message.find(s) != std::string::npos; };
  if (has("unreachable")) return TrapKind::kUnreachable;
  if (has("divide by zero")) return TrapKind::kIntegerDivideByZero;
  if (has("integer overflow")) return TrapKind::kIntegerOverflow;
  if (has("invalid conversion") || has("invalid integer conversion")) {
    return TrapKind::kInvalidConversion;
  }
  if (has("stack exhausted")) return TrapKind::kCallStackExhausted;
  if (has("indirect call") || has("table index") || has("table element")) {
    return TrapKind::kIndirectCall;
  }
  if (has("out of bounds")) return TrapKind::kOutOfBounds;
  return TrapKind::kUnreachable;
}

class InterpInstance final : public TierInstance, public HostContext {
 public:
  InterpInstance(const PreparedModule& module, std::vector<HostFunction> imports)
      : module_(module), imports_(std::move(imports)), store_(SupportedFeatures()) {}

  absl::Status Init(const InterpModule& code, RawTrap* trap) {
    wi::Module::Ptr mod = wi::Module::New(store_, code.desc());
    wi::RefVec import_refs;
    for (size_t i = 0; i < imports_.size(); ++i) {
      const HostFunction& host = imports_[i];
      wi::ValueTypes params, results;
      for (ValType t : host.params) params.push_back(ToWabt(t));
      for (ValType t : host.results) results.push_back(ToWabt(t));
      auto func = wi::HostFunc::New(
          store_, wi::FuncType(params, results),
          [this, i](wi::Thread&, const wi::Values& args, wi::Values& results,
                    wi::Trap::Ptr* out_trap) -> wabt::Result {
            return CallHost(i, args, results, out_trap);
          });
      import_refs.push_back(func.ref());
    }
    wi::Trap::Ptr out_trap;
    instance_ = wi::Instance::Instantiate(store_, mod.ref(), import_refs, &out_trap);
    if (!instance_) {
      trap->kind = host_failed_ ? TrapKind::kHost : Classify(out_trap ? out_trap->message() : "");
      trap->message = out_trap ? out_trap->message() : "instantiation failed";
      return absl::AbortedError("start: " + trap->message);
    }
    for (wi::Ref ref : instance_->exports()) exports_.push_back(ref);
    fuel_ = store_.UnsafeGet<wi::Global>(exports_[module_.fuel_export]);
    fuel_raw_ = fuel_.get();
    return absl::OkStatus();
  }

  Tier tier() const override { return Tier::kInterpreter; }

  RawTrap Call(uint32_t export_index, size_t rows, const uint64_t* args, uint64_t* results,
               uint64_t) override {
    const PreparedExport& e = module_.exports[export_index];
    auto func = store_.UnsafeGet<wi::Func>(exports_[export_index]);
    const size_t np = e.signature.params.size(), nr = e.signature.results.size();
    wi::Values params(np), outs;
    host_failed_ = false;
    for (size_t row = 0; row < rows; ++row) {
      for (size_t i = 0; i < np; ++i) params[i] = ToInterp(e.signature.params[i], args[row * np + i]);
      outs.clear();
      wi::Trap::Ptr trap;
      if (thread_ == nullptr) thread_ = std::make_unique<wi::Thread>(store_);
      if (wabt::Failed(func->Call(*thread_, params, outs, &trap))) {
        thread_.reset();  // a trapped thread keeps its frames: the next call gets a fresh one
        RawTrap raw;
        raw.message = trap ? trap->message() : "trap";
        raw.kind = host_failed_ ? TrapKind::kHost : Classify(raw.message);
        return raw;
      }
      for (size_t i = 0; i < nr; ++i) results[row * nr + i] = FromInterp(e.signature.results[i], outs[i]);
    }
    return {};
  }

  GuestMemory memory() override {
    if (module_.memory_export < 0) return {};
    auto mem = store_.UnsafeGet<wi::Memory>(exports_[module_.memory_export]);
    return GuestMemory(mem->UnsafeData(), mem->ByteSize());
  }

  uint64_t ReadGlobal(uint32_t export_index) override {
    auto g = store_.UnsafeGet<wi::Global>(exports_[export_index]);
    return FromInterp(module_.exports[export_index].global_type, g->Get());
  }

  void WriteGlobal(uint32_t export_index, uint64_t bits) override {
    auto g = store_.UnsafeGet<wi::Global>(exports_[export_index]);
    g->UnsafeSet(ToInterp(module_.exports[export_index].global_type, bits));
  }

  bool GrowMemoryTo(uint32_t pages) override {
    if (module_.memory_export < 0) return pages == 0;
    auto mem = store_.UnsafeGet<wi::Memory>(exports_[module_.memory_export]);
    uint64_t current = mem->PageSize();
    if (pages <= current) return true;
    return wabt::Succeeded(mem->Grow(pages - current));
  }

  // The interpreter reads the fuel global at every function entry and loop header; setting it
  // below zero from the watchdog thread stops the guest at the next one. The store is a plain
  // 8-byte write racing with the guest's own decrement, so the watchdog repeats it until the call
  // ends.
  // It touches only the global itself: the store's bookkeeping belongs to the calling thread.
  void Interrupt(uint64_t, uint64_t) override {
    fuel_raw_->UnsafeSet(wi::Value::Make(static_cast<uint64_t>(INT64_MIN / 2)));
  }

 private:
  wabt::Result CallHost(size_t index, const wi::Values& args, wi::Values& results,
                        wi::Trap::Ptr* out_trap) {
    const HostFunction& host = imports_[index];
    std::vector<Value> in(args.size()), out(host.results.size());
    for (size_t i = 0; i < args.size(); ++i) {
      in[i] = Value{host.params[i], FromInterp(host.params[i], args[i])};
    }
    for (size_t i = 0; i < out.size(); ++i) out[i].type = host.results[i];
    absl::Status status;
    try {
      status = host.callback(*this, absl::MakeConstSpan(in), absl::MakeSpan(out));
    } catch (const std::exception& e) {
      status = absl::InternalError(e.what());
    }
    if (!status.ok()) {
      host_failed_ = true;
      *out_trap = wi::Trap::New(store_, fmt::format("{}.{}: {}", host.module, host.name,
                                                    std::string(status.message())));
      return wabt::Result::Error;
    }
    results.resize(out.size());
    for (size_t i = 0; i < out.size(); ++i) results[i] = ToInterp(host.results[i], out[i].bits);
    return wabt::Result::Ok;
  }

  const PreparedModule& module_;
  std::vector<HostFunction> imports_;
  wi::Store store_;
  std::unique_ptr<wi::Thread> thread_;
  wi::Instance::Ptr instance_;
  std::vector<wi::Ref> exports_;
  wi::Global::Ptr fuel_;          // keeps the fuel global rooted
  wi::Global* fuel_raw_ = nullptr;  // for the watchdog thread
  bool host_failed_ = false;
};

}  // namespace

InterpModule::~InterpModule() = default;

absl::StatusOr<std::unique_ptr<InterpModule>> InterpModule::Create(const PreparedModule& module) {
  std::unique_ptr<InterpModule> out(new InterpModule());
  out->desc_ = std::make_unique<wi::ModuleDesc>();
  wabt::Errors errors;
  wabt::ReadBinaryOptions options(SupportedFeatures(), nullptr, false, true, false);
  if (wabt::Failed(wi::ReadBinaryInterp("module.wasm", module.bytes.data(), module.bytes.size(),
                                        options, &errors, out->desc_.get()))) {
    std::string text;
    for (const auto& e : errors) text += e.message + "; ";
    return absl::InternalError("interpreter cannot decode the prepared module: " + text);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<TierInstance>> NewInterpInstance(const InterpModule& code,
                                                                const PreparedModule& module,
                                                                std::vector<HostFunction> imports,
                                                                RawTrap* trap) {
  auto instance = std::make_unique<InterpInstance>(module, std::move(imports));
  if (absl::Status s = instance->Init(code, trap); !s.ok()) return s;
  return instance;
}

}  // namespace nodata::wasm::internal
