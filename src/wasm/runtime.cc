#include "wasm/runtime.h"

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "fmt/format.h"
#include "common/status.h"
#include "spdlog/spdlog.h"
#include "wasm/internal/interp_tier.h"
#include "wasm/internal/prepare.h"
#include "wasm/internal/watchdog.h"
#include "wasm/native/compiler.h"
#include "wasm/native/native_tier.h"

namespace nodata::wasm {

absl::Status GuestMemory::Read(uint64_t offset, absl::Span<uint8_t> out) const {
  if (offset > size_ || out.size() > size_ - offset) {
    return absl::OutOfRangeError(fmt::format("guest read of {} bytes at {} is outside memory of {}",
                                             out.size(), offset, size_));
  }
  if (!out.empty()) std::memcpy(out.data(), data_ + offset, out.size());
  return absl::OkStatus();
}

absl::Status GuestMemory::Write(uint64_t offset, absl::Span<const uint8_t> in) {
  if (offset > size_ || in.size() > size_ - offset) {
    return absl::OutOfRangeError(fmt::format(
        "guest write of {} bytes at {} is outside memory of {}", in.size(), offset, size_));
  }
  if (!in.empty()) std::memcpy(data_ + offset, in.data(), in.size());
  return absl::OkStatus();
}

absl::Span<uint8_t> GuestMemory::View(uint64_t offset, uint64_t length) {
  if (offset > size_ || length > size_ - offset) return {};
  return {data_ + offset, static_cast<size_t>(length)};
}

const char* TierName(Tier tier) { return tier == Tier::kNative ? "native" : "interpreter"; }

namespace {

using Clock = std::chrono::steady_clock;
std::atomic<uint64_t> g_next_call_id{1};

class ModuleImpl;

// Compile workers shared by a runtime's modules.
class CompileQueue {
 public:
  explicit CompileQueue(int threads) {
    for (int i = 0; i < std::max(1, threads); ++i) workers_.emplace_back([this] { Work(); });
  }
  ~CompileQueue() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    for (auto& job : jobs_) job(true);
  }
  // `job(false)` runs on a worker; a job still queued when the queue is destroyed gets
  // `job(true)` (cancelled) instead, so no module waits forever.
  void Push(std::function<void(bool cancelled)> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void Work() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job(false);
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(bool)>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

class TieredInstance;

// Shared by its instances and by the compile job in flight (which holds a weak reference), so a
// module lives as long as anything runs it.
class ModuleImpl final : public Module, public std::enable_shared_from_this<ModuleImpl> {
 public:
  ModuleImpl(internal::PreparedModule prepared, std::unique_ptr<internal::InterpModule> interp)
      : prepared_(std::move(prepared)), interp_(std::move(interp)) {}

  const ModuleInfo& info() const override { return prepared_.info; }
  const Limits& limits() const override { return prepared_.limits; }

  NativeStatus native_status() const override {
    std::lock_guard lock(mu_);
    return status_;
  }

  NativeStatus WaitNative(uint64_t timeout_ms) const override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                 [&] { return status_.state != NativeStatus::State::kPending; });
    return status_;
  }

  absl::StatusOr<std::unique_ptr<Instance>> Instantiate(const std::vector<HostFunction>& imports,
                                                        std::optional<Tier> tier) override;

  void SetDisabled(std::string why) {
    std::lock_guard lock(mu_);
    status_.state = NativeStatus::State::kDisabled;
    status_.detail = std::move(why);
    cv_.notify_all();
  }

  // Takes native code from the cache now, so that instances made right after Load start on
  // tier 1 (a hit costs well under a millisecond). False when the cache does not have it.
  bool LoadCached(const native::Toolchain& toolchain, Clock::time_point started) {
    auto code = native::LoadCached(toolchain, prepared_);
    if (!code.ok()) return false;
    SetNative(std::move(code), /*hit=*/true, started);
    return true;
  }

  void Compile(const native::Toolchain& toolchain, Clock::time_point started) {
    bool hit = false;
    SetNative(native::CompileOrLoad(toolchain, prepared_, &hit), hit, started);
  }

  void SetNative(absl::StatusOr<std::unique_ptr<native::NativeCode>> code, bool hit,
                 Clock::time_point started) {
    double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    std::lock_guard lock(mu_);
    if (code.ok()) {
      native_ = std::move(code).value();
      status_.state = NativeStatus::State::kReady;
      status_.cache_hit = hit;
      status_.load_seconds = seconds;
      native_ready_.store(true, std::memory_order_release);
    } else {
      status_.state = NativeStatus::State::kFailed;
      status_.detail = std::string(code.status().message());
      spdlog::warn("wasm module {}: native compilation failed, staying on the interpreter: {}",
                   prepared_.info.hash.substr(0, 12), status_.detail);
    }
    cv_.notify_all();
  }

  const internal::PreparedModule& prepared() const { return prepared_; }
  bool native_ready() const { return native_ready_.load(std::memory_order_acquire); }
  // Valid once native_ready() is true; never replaced after.
  const native::NativeCode& native_code() const { return *native_; }

  // Binds `imports` to the module's function imports, in import order, checking signatures.
  absl::StatusOr<std::vector<HostFunction>> Bind(const std::vector<HostFunction>& imports) const {
    std::vector<HostFunction> bound;
    for (const ModuleInfo::Import& want : prepared_.info.imports) {
      const HostFunction* found = nullptr;
      for (const HostFunction& h : imports) {
        if (h.module == want.module && h.name == want.name) found = &h;
      }
      if (found == nullptr) {
        return absl::NotFoundError(
            fmt::format("module imports {}.{}, which the host does not provide", want.module,
                        want.name));
      }
      if (found->params != want.signature.params || found->results != want.signature.results) {
        return absl::InvalidArgumentError(fmt::format(
            "import {}.{}: module expects {}, host provides {}", want.module, want.name,
            SignatureToString(want.signature),
            SignatureToString(FuncSignature{found->params, found->results})));
      }
      if (!found->callback) {
        return absl::InvalidArgumentError(
            fmt::format("import {}.{} has no callback", want.module, want.name));
      }
      bound.push_back(*found);
    }
    return bound;
  }

  absl::StatusOr<std::unique_ptr<internal::TierInstance>> NewTierInstance(
      Tier tier, std::vector<HostFunction> imports, internal::RawTrap* trap) const {
    if (tier == Tier::kNative) {
      return native::NewNativeInstance(*native_, prepared_, std::move(imports), trap);
    }
    return internal::NewInterpInstance(*interp_, prepared_, std::move(imports), trap);
  }

 private:
  internal::PreparedModule prepared_;
  std::unique_ptr<internal::InterpModule> interp_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  NativeStatus status_;
  std::unique_ptr<native::NativeCode> native_;
  std::atomic<bool> native_ready_{false};
};

class TieredInstance final : public Instance {
 public:
  TieredInstance(std::shared_ptr<ModuleImpl> module, std::vector<HostFunction> imports,
                 std::unique_ptr<internal::TierInstance> current, bool pinned)
      : module_(std::move(module)),
        imports_(std::move(imports)),
        current_(std::move(current)),
        pinned_(pinned) {}

  Tier tier() const override { return current_->tier(); }

  absl::StatusOr<FunctionRef> Function(std::string_view name) const override {
    const auto& exports = module_->prepared().exports;
    for (size_t i = 0; i < exports.size(); ++i) {
      if (exports[i].name != name || exports[i].kind != ModuleInfo::Kind::kFunction) continue;
      if (name.rfind(internal::kReservedPrefix, 0) == 0) break;
      return FunctionRef{static_cast<uint32_t>(i), exports[i].signature.params,
                         exports[i].signature.results};
    }
    return absl::NotFoundError(fmt::format("module exports no function named {}", name));
  }

  absl::Status Call(const FunctionRef& fn, absl::Span<const Value> args, absl::Span<Value> results,
                    Trap* trap) override {
    return CallBatch(fn, 1, args, results, trap);
  }

  absl::Status CallBatch(const FunctionRef& fn, size_t rows, absl::Span<const Value> args,
                         absl::Span<Value> results, Trap* trap) override {
    const auto& exports = module_->prepared().exports;
    if (fn.export_index >= exports.size() ||
        exports[fn.export_index].kind != ModuleInfo::Kind::kFunction) {
      return absl::InvalidArgumentError("not a function of this module");
    }
    const FuncSignature& sig = exports[fn.export_index].signature;
    if (args.size() != rows * sig.params.size()) {
      return absl::InvalidArgumentError(fmt::format(
          "{} takes {} arguments, {} given", exports[fn.export_index].name, sig.params.size(),
          rows == 0 ? args.size() : args.size() / rows));
    }
    if (results.size() < rows * sig.results.size()) {
      return absl::InvalidArgumentError("results span is too small");
    }
    if (busy_) {
      return absl::FailedPreconditionError(
          "instance is already running a call (re-entered from a host function)");
    }
    busy_ = true;
    struct Idle {
      bool& busy;
      ~Idle() { busy = false; }
    } idle{busy_};
    arg_bits_.resize(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
      ValType want = sig.params[i % sig.params.size()];
      if (args[i].type != want) {
        return absl::InvalidArgumentError(fmt::format(
            "argument {} of {} must be {}, not {}", i % sig.params.size(),
            exports[fn.export_index].name, ValTypeName(want), ValTypeName(args[i].type)));
      }
      arg_bits_[i] = args[i].bits;
    }
    MaybeUpgrade();
    result_bits_.assign(rows * sig.results.size(), 0);

    const internal::PreparedModule& pm = module_->prepared();
    Limits limits = pm.limits;
    if (fuel_ != 0) limits.fuel = fuel_;
    const int64_t budget = internal::FuelBudget(limits);
    current_->WriteGlobal(pm.fuel_export, static_cast<uint64_t>(budget));
    current_->WriteGlobal(pm.depth_export, 0);
    const uint64_t call_id = g_next_call_id.fetch_add(1, std::memory_order_relaxed);
    bool watched = limits.deadline_ms != 0;
    if (watched) {
      internal::Watchdog::Get().Arm(call_id, *current_,
                                    Clock::now() + std::chrono::milliseconds(limits.deadline_ms));
    }
    internal::RawTrap raw =
        current_->Call(fn.export_index, rows, arg_bits_.data(), result_bits_.data(), call_id);
    bool fired = watched && internal::Watchdog::Get().Disarm(call_id);

    const auto fuel_left = static_cast<int64_t>(current_->ReadGlobal(pm.fuel_export));
    last_fuel_used_ = static_cast<uint64_t>(fuel_left >= 0 ? budget - fuel_left : budget);
    if (raw.ok()) {
      for (size_t i = 0; i < result_bits_.size(); ++i) {
        results[i] = Value{sig.results[i % sig.results.size()], result_bits_[i]};
      }
      return absl::OkStatus();
    }
    Trap t{raw.kind, raw.message};
    if (raw.kind == TrapKind::kUnreachable && fuel_left < 0) {
      t.kind = fired ? TrapKind::kDeadlineExceeded : TrapKind::kFuelExhausted;
    } else if (raw.kind == TrapKind::kUnreachable &&
               static_cast<uint32_t>(current_->ReadGlobal(pm.depth_export)) > limits.max_call_depth) {
      t.kind = TrapKind::kCallStackExhausted;
    }
    if (t.kind != TrapKind::kHost) t.message = TrapKindName(t.kind);
    if (t.kind == TrapKind::kDeadlineExceeded) {
      t.message = fmt::format("deadline of {} ms exceeded", limits.deadline_ms);
    } else if (t.kind == TrapKind::kFuelExhausted) {
      t.message = fmt::format("fuel of {} exhausted", limits.fuel);
    }
    if (trap != nullptr) *trap = t;
    std::string message = fmt::format("wasm trap in {}: {}", exports[fn.export_index].name, t.message);
    switch (t.kind) {
      case TrapKind::kFuelExhausted:
      case TrapKind::kCallStackExhausted:
        return absl::ResourceExhaustedError(message);
      case TrapKind::kDeadlineExceeded:
        return absl::DeadlineExceededError(message);
      default:
        return absl::AbortedError(message);
    }
  }

  GuestMemory memory() override { return current_->memory(); }
  uint64_t last_fuel_used() const override { return last_fuel_used_; }
  void SetFuel(uint64_t fuel) override { fuel_ = fuel; }

 private:
  // Moves an interpreter instance onto native code at this call boundary: memory and mutable
  // globals are copied into a fresh native instance. Modules with a start function or with state
  // beyond memory and globals (tables, dropped segments) keep their existing instances on the
  // interpreter (new ones start native).
  void MaybeUpgrade() {
    if (pinned_ || current_->tier() == Tier::kNative || !module_->native_ready()) return;
    const internal::PreparedModule& pm = module_->prepared();
    if (pm.info.has_start || pm.hidden_state) {
      pinned_ = true;
      return;
    }
    internal::RawTrap trap;
    auto next = module_->NewTierInstance(Tier::kNative, imports_, &trap);
    if (!next.ok()) {
      spdlog::warn("wasm: instance stays on the interpreter: {}", std::string(next.status().message()));
      pinned_ = true;
      return;
    }
    GuestMemory from = current_->memory();
    if (from.size() > 0) {
      if (!(*next)->GrowMemoryTo(static_cast<uint32_t>(from.size() / 65536))) {
        pinned_ = true;
        return;
      }
      GuestMemory to = (*next)->memory();
      std::memcpy(to.View(0, from.size()).data(), from.View(0, from.size()).data(), from.size());
    }
    for (int e : pm.mutable_global_exports) {
      (*next)->WriteGlobal(e, current_->ReadGlobal(e));
    }
    current_ = std::move(next).value();
  }

  std::shared_ptr<ModuleImpl> module_;
  std::vector<HostFunction> imports_;
  std::unique_ptr<internal::TierInstance> current_;
  bool pinned_;
  bool busy_ = false;  // a call is running: a host function must not re-enter this instance
  uint64_t last_fuel_used_ = 0;
  uint64_t fuel_ = 0;  // SetFuel's budget; 0: the module's
  std::vector<uint64_t> arg_bits_;
  std::vector<uint64_t> result_bits_;
};

absl::StatusOr<std::unique_ptr<Instance>> ModuleImpl::Instantiate(
    const std::vector<HostFunction>& imports, std::optional<Tier> tier) {
  ASSIGN_OR_RETURN(std::vector<HostFunction> bound, Bind(imports));
  Tier chosen = tier.value_or(native_ready() ? Tier::kNative : Tier::kInterpreter);
  if (chosen == Tier::kNative && !native_ready()) {
    return absl::FailedPreconditionError(
        fmt::format("native code is not available: {}", native_status().detail.empty()
                                                            ? "still compiling"
                                                            : native_status().detail));
  }
  internal::RawTrap trap;
  auto instance = NewTierInstance(chosen, bound, &trap);
  if (!instance.ok()) return instance.status();
  return std::unique_ptr<Instance>(std::make_unique<TieredInstance>(
      shared_from_this(), std::move(bound), std::move(instance).value(), tier.has_value()));
}

class RuntimeImpl final : public Runtime {
 public:
  explicit RuntimeImpl(RuntimeOptions options) : options_(std::move(options)) {
    auto toolchain = native::ResolveToolchain(options_);
    if (toolchain.ok()) {
      toolchain_ = std::move(toolchain).value();
      queue_ = std::make_unique<CompileQueue>(options_.compile_threads);
    } else {
      unavailable_ = std::string(toolchain.status().message());
    }
  }

  absl::StatusOr<std::shared_ptr<Module>> Load(absl::Span<const uint8_t> bytes,
                                               const Limits& limits, bool native) override {
    auto started = Clock::now();
    if (limits.max_memory_pages > 65535) {
      return absl::InvalidArgumentError("max_memory_pages must be at most 65535");
    }
    auto prepared = internal::Prepare(bytes, limits);
    if (!prepared.ok()) return prepared.status();
    auto interp = internal::InterpModule::Create(*prepared);
    if (!interp.ok()) return interp.status();
    auto module = std::make_shared<ModuleImpl>(std::move(prepared).value(), std::move(interp).value());
    if (!native) {
      module->SetDisabled("native compilation not requested");
    } else if (!unavailable_.empty()) {
      module->SetDisabled(unavailable_);
    } else if (bytes.size() > toolchain_.limits.max_module_bytes) {
      module->SetDisabled(fmt::format("module of {} bytes is larger than the native limit of {}",
                                      bytes.size(), toolchain_.limits.max_module_bytes));
    } else if (!module->LoadCached(toolchain_, started)) {
      std::weak_ptr<ModuleImpl> weak = module;
      queue_->Push([weak, started, this](bool cancelled) {
        auto m = weak.lock();
        if (m == nullptr) return;
        if (cancelled) {
          m->SetDisabled("the runtime was shut down before native compilation");
        } else {
          m->Compile(toolchain_, started);
        }
      });
    }
    return std::shared_ptr<Module>(std::move(module));
  }

  std::string native_unavailable_reason() const override { return unavailable_; }

 private:
  RuntimeOptions options_;
  native::Toolchain toolchain_;
  std::string unavailable_;
  std::unique_ptr<CompileQueue> queue_;  // last: joined before the toolchain goes away
};

}  // namespace

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::Create(RuntimeOptions options) {
  return std::unique_ptr<Runtime>(std::make_unique<RuntimeImpl>(std::move(options)));
}

}  // namespace nodata::wasm
