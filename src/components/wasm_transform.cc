#include "components/wasm_transform.h"

#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <utility>

#include "common/status.h"
#include "common/strings.h"

namespace nodata::components {
namespace {

using wasm::FuncSignature;
using wasm::HostContext;
using wasm::HostFunction;
using wasm::ValType;
using wasm::Value;

constexpr std::string_view kNodata = "nodata";
constexpr std::string_view kWasi = "wasi_snapshot_preview1";
constexpr std::string_view kMarker = "nodata_component_v1";

// WASI errno values.
constexpr int32_t kWasiSuccess = 0;
constexpr int32_t kWasiBadf = 8;
constexpr int32_t kWasiFault = 21;
constexpr int32_t kWasiInval = 28;
constexpr int32_t kWasiNosys = 52;

// One batch's outputs together stay under this (emit answers kEmitTooLarge past it): what a
// component may make the host hold for one call.
constexpr uint64_t kMaxBatchOutputBytes = 256ull << 20;
constexpr size_t kMaxLogLineBytes = 4096;

constexpr ValType I32 = ValType::kI32;
constexpr ValType I64 = ValType::kI64;

std::string SignatureText(const std::vector<ValType>& params, const std::vector<ValType>& results) {
  std::string s = "(";
  for (size_t i = 0; i < params.size(); ++i) {
    s += (i ? ", " : "") + std::string(wasm::ValTypeName(params[i]));
  }
  s += ") -> (";
  for (size_t i = 0; i < results.size(); ++i) {
    s += (i ? ", " : "") + std::string(wasm::ValTypeName(results[i]));
  }
  return s + ")";
}

// The signatures of the imports the host implements; wasi functions not listed answer ENOSYS
// (or EBADF for the file ones) whatever their parameters.
struct KnownImport {
  std::string_view module;
  std::string_view name;
  std::vector<ValType> params;
  std::vector<ValType> results;
};
const std::vector<KnownImport>& KnownImports() {
  static const auto* known = new std::vector<KnownImport>{
      {kNodata, "batch_read", {I32, I32}, {I32}},
      {kNodata, "emit", {I32, I32, I32}, {I32}},
      {kNodata, "config", {I32, I32}, {I32}},
      {kNodata, "log", {I32, I32, I32}, {}},
      {kWasi, "fd_write", {I32, I32, I32, I32}, {I32}},
      {kWasi, "clock_time_get", {I32, I64, I32}, {I32}},
      {kWasi, "random_get", {I32, I32}, {I32}},
      {kWasi, "environ_sizes_get", {I32, I32}, {I32}},
      {kWasi, "args_sizes_get", {I32, I32}, {I32}},
      {kWasi, "environ_get", {I32, I32}, {I32}},
      {kWasi, "args_get", {I32, I32}, {I32}},
      {kWasi, "proc_exit", {I32}, {}},
  };
  return *known;
}
const KnownImport* FindKnown(std::string_view module, std::string_view name) {
  for (const KnownImport& k : KnownImports()) {
    if (k.module == module && k.name == name) return &k;
  }
  return nullptr;
}
bool IsFileFunction(std::string_view name) {
  return name == "fd_close" || name == "fd_seek" || name == "fd_read" ||
         name == "fd_fdstat_get" || name == "fd_prestat_get" || name == "fd_prestat_dir_name";
}

absl::Status CheckExport(const wasm::ModuleInfo& info, std::string_view name,
                         const std::vector<ValType>& params, const std::vector<ValType>& results,
                         bool required) {
  for (const auto& e : info.exports) {
    if (e.name != name) continue;
    if (e.kind != wasm::ModuleInfo::Kind::kFunction || e.signature.params != params ||
        e.signature.results != results) {
      return absl::InvalidArgumentError(StrCat("export ", name, " must be a function ",
                                               SignatureText(params, results)));
    }
    return absl::OkStatus();
  }
  if (!required) return absl::OkStatus();
  return absl::InvalidArgumentError(StrCat("a component must export ", name, " ",
                                           SignatureText(params, results)));
}

// Guest bytes [ptr, ptr + len) as a span, or nullopt when outside memory.
std::optional<absl::Span<uint8_t>> GuestBytes(HostContext& ctx, uint32_t ptr, uint32_t len) {
  if (len == 0) return absl::Span<uint8_t>();
  absl::Span<uint8_t> v = ctx.memory().View(ptr, len);
  if (v.size() != len) return std::nullopt;
  return v;
}

absl::Status OutOfBounds(std::string_view what, uint32_t ptr, uint32_t len) {
  return absl::OutOfRangeError(
      StrCat(what, ": guest range [", ptr, ", ", uint64_t{ptr} + len, ") is outside memory"));
}

void PutLe(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

class WasmTransform::Host {
 public:
  Host(std::shared_ptr<wasm::Module> module, TransformOptions options, LogSink log)
      : module_(std::move(module)), options_(std::move(options)), log_(std::move(log)) {}

  absl::Status Init() {
    for (const auto& import : module_->info().imports) imports_.push_back(Bind(import));
    return NewInstance();
  }

  absl::StatusOr<BatchResult> Process(PartitionId partition, absl::Span<const Record> records) {
    BatchResult result;
    if (records.empty()) return result;
    encoder_.Begin();
    for (const Record& r : records) encoder_.Add(partition, r);
    Attempt all = Run(encoder_.Finish(), encoder_.count());
    result.fuel_used += all.fuel_used;
    if (all.ok) {
      Collect(records, 0, std::move(all.emitted), &result);
      return result;
    }
    if (all.trapped) RETURN_IF_ERROR(NewInstance());
    if (records.size() == 1) {
      result.failed.push_back({0, std::move(all.error)});
      return result;
    }
    // Isolate the failing records: each alone, in order.
    for (uint32_t i = 0; i < records.size(); ++i) {
      encoder_.Begin();
      encoder_.Add(partition, records[i]);
      Attempt one = Run(encoder_.Finish(), 1);
      result.fuel_used += one.fuel_used;
      if (one.ok) {
        Collect(records, i, std::move(one.emitted), &result);
      } else {
        result.failed.push_back({i, std::move(one.error)});
        if (one.trapped) RETURN_IF_ERROR(NewInstance());
      }
    }
    return result;
  }

  wasm::Tier tier() const { return instance_->tier(); }
  uint64_t log_lines_dropped() const { return log_dropped_; }

 private:
  struct Emitted {
    uint32_t output;
    OutputRecord record;
  };
  struct Attempt {
    bool ok = false;
    bool trapped = false;
    std::string error;
    std::vector<Emitted> emitted;
    uint64_t fuel_used = 0;
  };

  // Outputs of records[base + input_index], timestamps resolved.
  static void Collect(absl::Span<const Record> records, uint32_t base,
                      std::vector<Emitted> emitted, BatchResult* result) {
    for (Emitted& e : emitted) {
      Output o;
      o.output = e.output;
      o.input_index = base + e.record.input_index;
      o.timestamp_us = e.record.timestamp_us < 0 ? records[o.input_index].timestamp_us
                                                 : e.record.timestamp_us;
      o.key = std::move(e.record.key);
      o.data = std::move(e.record.data);
      o.headers = std::move(e.record.headers);
      result->outputs.push_back(std::move(o));
    }
  }

  absl::Status NewInstance() {
    instance_.reset();
    ASSIGN_OR_RETURN(instance_, module_->Instantiate(imports_));
    ASSIGN_OR_RETURN(process_, instance_->Function("nd_process"));
    // A WASI reactor's constructors (wasi-libc's, C++ static objects) run first.
    if (auto reactor = instance_->Function("_initialize"); reactor.ok()) {
      instance_->SetFuel(options_.fuel_per_record);
      if (absl::Status s = instance_->Call(*reactor, {}, {}); !s.ok()) {
        return absl::FailedPreconditionError(StrCat("_initialize: ", ToStd(s.message())));
      }
    }
    auto init = instance_->Function("nd_init");
    if (!init.ok()) return absl::OkStatus();
    Value rc[1];
    wasm::Trap trap;
    instance_->SetFuel(options_.fuel_per_record);
    if (absl::Status s = instance_->Call(*init, {}, absl::MakeSpan(rc), &trap); !s.ok()) {
      return absl::FailedPreconditionError(StrCat("nd_init: ", ToStd(s.message())));
    }
    if (rc[0].i32() != 0) {
      return absl::FailedPreconditionError(StrCat("nd_init returned ", rc[0].i32()));
    }
    return absl::OkStatus();
  }

  Attempt Run(std::string_view batch, uint32_t count) {
    batch_ = batch;
    count_ = count;
    emitted_.clear();
    emitted_bytes_ = 0;
    const uint64_t per_record = options_.fuel_per_record;
    const uint64_t max = std::numeric_limits<uint64_t>::max() / 2;
    instance_->SetFuel(per_record == 0 ? 0 : (per_record > max / count ? max : per_record * count));
    Value rc[1];
    wasm::Trap trap;
    absl::Status s = instance_->Call(process_, {Value::I32(static_cast<int32_t>(batch.size()))},
                                     absl::MakeSpan(rc), &trap);
    batch_ = {};
    count_ = 0;
    Attempt a;
    a.fuel_used = instance_->last_fuel_used();
    if (!s.ok()) {
      a.trapped = true;
      a.error = std::string(ToStd(s.message()));
    } else if (rc[0].i32() != 0) {
      a.error = StrCat("nd_process returned ", rc[0].i32());
    } else {
      a.ok = true;
      a.emitted = std::move(emitted_);
    }
    emitted_.clear();
    return a;
  }

  void Log(int level, std::string_view line) {
    const int64_t second = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
    if (second != log_second_) {
      log_second_ = second;
      log_count_ = 0;
    }
    if (log_count_ >= options_.log_lines_per_second) {
      ++log_dropped_;
      return;
    }
    ++log_count_;
    if (log_) log_(std::clamp(level, 0, 3), line.substr(0, kMaxLogLineBytes));
  }

  // fd 1 and 2 of WASI: whole lines to the log.
  void WriteStream(int fd, std::string_view bytes) {
    std::string& pending = fd == 1 ? stdout_ : stderr_;
    pending.append(bytes);
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      Log(fd == 1 ? 1 : 2, std::string_view(pending).substr(start, nl - start));
    }
    pending.erase(0, start);
    if (pending.size() > kMaxLogLineBytes) {
      Log(fd == 1 ? 1 : 2, pending);
      pending.clear();
    }
  }

  HostFunction Bind(const wasm::ModuleInfo::Import& import) {
    HostFunction f;
    f.module = import.module;
    f.name = import.name;
    f.params = import.signature.params;
    f.results = import.signature.results;
    const std::string_view name = import.name;
    if (import.module == kNodata) {
      if (name == "batch_read") {
        f.callback = [this](HostContext& ctx, absl::Span<const Value> args,
                            absl::Span<Value> results) -> absl::Status {
          const auto ptr = static_cast<uint32_t>(args[0].i32());
          const auto len = static_cast<uint32_t>(args[1].i32());
          const auto n = static_cast<uint32_t>(std::min<size_t>(len, batch_.size()));
          auto out = GuestBytes(ctx, ptr, n);
          if (!out) return OutOfBounds("batch_read", ptr, n);
          std::memcpy(out->data(), batch_.data(), n);
          results[0] = Value::I32(static_cast<int32_t>(n));
          return absl::OkStatus();
        };
      } else if (name == "emit") {
        f.callback = [this](HostContext& ctx, absl::Span<const Value> args,
                            absl::Span<Value> results) -> absl::Status {
          results[0] = Value::I32(Emit(ctx, args[0].i32(), static_cast<uint32_t>(args[1].i32()),
                                       static_cast<uint32_t>(args[2].i32())));
          return absl::OkStatus();
        };
      } else if (name == "config") {
        f.callback = [this](HostContext& ctx, absl::Span<const Value> args,
                            absl::Span<Value> results) -> absl::Status {
          const auto ptr = static_cast<uint32_t>(args[0].i32());
          const auto len = static_cast<uint32_t>(args[1].i32());
          const auto n = static_cast<uint32_t>(std::min<size_t>(len, options_.config.size()));
          auto out = GuestBytes(ctx, ptr, n);
          if (!out) return OutOfBounds("config", ptr, n);
          std::memcpy(out->data(), options_.config.data(), n);
          results[0] = Value::I32(static_cast<int32_t>(options_.config.size()));
          return absl::OkStatus();
        };
      } else {  // log
        f.callback = [this](HostContext& ctx, absl::Span<const Value> args,
                            absl::Span<Value>) -> absl::Status {
          const auto ptr = static_cast<uint32_t>(args[1].i32());
          const auto len = static_cast<uint32_t>(args[2].i32());
          auto line = GuestBytes(ctx, ptr, len);
          if (!line) return OutOfBounds("log", ptr, len);
          Log(args[0].i32(), std::string_view(reinterpret_cast<const char*>(line->data()),
                                              line->size()));
          return absl::OkStatus();
        };
      }
      return f;
    }
    // wasi_snapshot_preview1 (Load refused every other module).
    if (name == "fd_write") {
      f.callback = [this](HostContext& ctx, absl::Span<const Value> args,
                          absl::Span<Value> results) -> absl::Status {
        results[0] = Value::I32(FdWrite(ctx, args[0].i32(), static_cast<uint32_t>(args[1].i32()),
                                        static_cast<uint32_t>(args[2].i32()),
                                        static_cast<uint32_t>(args[3].i32())));
        return absl::OkStatus();
      };
    } else if (name == "clock_time_get") {
      f.callback = [](HostContext& ctx, absl::Span<const Value> args,
                      absl::Span<Value> results) -> absl::Status {
        uint64_t ns;
        if (args[0].i32() == 0) {
          ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
        } else if (args[0].i32() == 1) {
          ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
                   .count();
        } else {
          results[0] = Value::I32(kWasiInval);
          return absl::OkStatus();
        }
        auto out = GuestBytes(ctx, static_cast<uint32_t>(args[2].i32()), 8);
        if (!out) {
          results[0] = Value::I32(kWasiFault);
          return absl::OkStatus();
        }
        PutLe(out->data(), ns, 8);
        results[0] = Value::I32(kWasiSuccess);
        return absl::OkStatus();
      };
    } else if (name == "random_get") {
      f.callback = [](HostContext& ctx, absl::Span<const Value> args,
                      absl::Span<Value> results) -> absl::Status {
        auto out = GuestBytes(ctx, static_cast<uint32_t>(args[0].i32()),
                              static_cast<uint32_t>(args[1].i32()));
        if (!out) {
          results[0] = Value::I32(kWasiFault);
          return absl::OkStatus();
        }
        for (size_t done = 0; done < out->size();) {
          ssize_t n = getrandom(out->data() + done, out->size() - done, 0);
          if (n <= 0) return absl::InternalError("getrandom failed");
          done += static_cast<size_t>(n);
        }
        results[0] = Value::I32(kWasiSuccess);
        return absl::OkStatus();
      };
    } else if (name == "environ_sizes_get" || name == "args_sizes_get") {
      f.callback = [](HostContext& ctx, absl::Span<const Value> args,
                      absl::Span<Value> results) -> absl::Status {
        auto count = GuestBytes(ctx, static_cast<uint32_t>(args[0].i32()), 4);
        auto size = GuestBytes(ctx, static_cast<uint32_t>(args[1].i32()), 4);
        if (!count || !size) {
          results[0] = Value::I32(kWasiFault);
          return absl::OkStatus();
        }
        PutLe(count->data(), 0, 4);
        PutLe(size->data(), 0, 4);
        results[0] = Value::I32(kWasiSuccess);
        return absl::OkStatus();
      };
    } else if (name == "environ_get" || name == "args_get") {
      f.callback = [](HostContext&, absl::Span<const Value>,
                      absl::Span<Value> results) -> absl::Status {
        results[0] = Value::I32(kWasiSuccess);
        return absl::OkStatus();
      };
    } else if (name == "proc_exit") {
      f.callback = [](HostContext&, absl::Span<const Value> args,
                      absl::Span<Value>) -> absl::Status {
        return absl::AbortedError(StrCat("proc_exit(", args[0].i32(), ")"));
      };
    } else {
      const int32_t errno_value = IsFileFunction(name) ? kWasiBadf : kWasiNosys;
      f.callback = [errno_value](HostContext&, absl::Span<const Value>,
                                 absl::Span<Value> results) -> absl::Status {
        if (!results.empty()) results[0] = Value::I32(errno_value);
        return absl::OkStatus();
      };
    }
    return f;
  }

  int32_t Emit(HostContext& ctx, int32_t output, uint32_t ptr, uint32_t len) {
    if (output < 0 || static_cast<uint32_t>(output) >= options_.outputs) return kEmitNoSuchOutput;
    auto bytes = GuestBytes(ctx, ptr, len);
    if (!bytes) return kEmitMalformed;
    Emitted e{static_cast<uint32_t>(output), {}};
    const int32_t rc = DecodeOutput(*bytes, count_, options_.max_event_bytes, &e.record);
    if (rc != kEmitOk) return rc;
    if (emitted_bytes_ + len > kMaxBatchOutputBytes) return kEmitTooLarge;
    emitted_bytes_ += len;
    emitted_.push_back(std::move(e));
    return kEmitOk;
  }

  int32_t FdWrite(HostContext& ctx, int32_t fd, uint32_t iovs, uint32_t iovs_len,
                  uint32_t nwritten) {
    if (fd != 1 && fd != 2) return kWasiBadf;
    if (iovs_len > 1024) return kWasiInval;
    auto vec = GuestBytes(ctx, iovs, iovs_len * 8);
    if (!vec) return kWasiFault;
    uint64_t total = 0;
    std::string bytes;
    for (uint32_t i = 0; i < iovs_len; ++i) {
      const uint8_t* p = vec->data() + 8 * i;
      const uint32_t buf = p[0] | p[1] << 8 | p[2] << 16 | uint32_t{p[3]} << 24;
      const uint32_t len = p[4] | p[5] << 8 | p[6] << 16 | uint32_t{p[7]} << 24;
      auto data = GuestBytes(ctx, buf, len);
      if (!data) return kWasiFault;
      bytes.append(reinterpret_cast<const char*>(data->data()), data->size());
      total += len;
    }
    auto out = GuestBytes(ctx, nwritten, 4);
    if (!out) return kWasiFault;
    PutLe(out->data(), total, 4);
    WriteStream(fd, bytes);
    return kWasiSuccess;
  }

  const std::shared_ptr<wasm::Module> module_;
  const TransformOptions options_;
  const LogSink log_;
  std::vector<HostFunction> imports_;
  std::unique_ptr<wasm::Instance> instance_;
  wasm::FunctionRef process_;
  BatchEncoder encoder_;

  // The call in progress.
  std::string_view batch_;
  uint32_t count_ = 0;
  std::vector<Emitted> emitted_;
  uint64_t emitted_bytes_ = 0;

  int64_t log_second_ = 0;
  uint32_t log_count_ = 0;
  uint64_t log_dropped_ = 0;
  std::string stdout_;
  std::string stderr_;
};

absl::StatusOr<std::shared_ptr<wasm::Module>> WasmTransform::Load(
    wasm::Runtime& runtime, absl::Span<const uint8_t> bytes, const wasm::Limits& limits,
    bool native) {
  ASSIGN_OR_RETURN(std::shared_ptr<wasm::Module> module, runtime.Load(bytes, limits, native));
  const wasm::ModuleInfo& info = module->info();
  const bool marked = std::any_of(info.exports.begin(), info.exports.end(),
                                  [](const auto& e) { return e.name == kMarker; });
  if (!marked) {
    return absl::InvalidArgumentError(
        StrCat("not a nodata component: the module does not export ", kMarker));
  }
  RETURN_IF_ERROR(CheckExport(info, kMarker, {}, {}, true));
  RETURN_IF_ERROR(CheckExport(info, "nd_process", {I32}, {I32}, true));
  RETURN_IF_ERROR(CheckExport(info, "nd_init", {}, {I32}, false));
  RETURN_IF_ERROR(CheckExport(info, "_initialize", {}, {}, false));
  const bool has_memory = std::any_of(info.exports.begin(), info.exports.end(), [](const auto& e) {
    return e.name == "memory" && e.kind == wasm::ModuleInfo::Kind::kMemory;
  });
  if (!has_memory) return absl::InvalidArgumentError("a component must export its memory");
  for (const auto& import : info.imports) {
    const std::string where = StrCat(import.module, ".", import.name);
    if (import.module != kNodata && import.module != kWasi) {
      return absl::InvalidArgumentError(
          StrCat("the module imports ", where, ": components may import only from \"nodata\" "
                 "and \"wasi_snapshot_preview1\" (docs/formats/component-abi.md)"));
    }
    const KnownImport* known = FindKnown(import.module, import.name);
    if (known == nullptr) {
      if (import.module == kNodata) {
        return absl::InvalidArgumentError(
            StrCat("the module imports ", where, ", which ABI version 1 does not have"));
      }
      const auto& results = import.signature.results;
      if (!results.empty() && results != std::vector<ValType>{I32}) {
        return absl::InvalidArgumentError(
            StrCat("the module imports ", where, " with results other than an errno"));
      }
      continue;
    }
    if (import.signature.params != known->params || import.signature.results != known->results) {
      return absl::InvalidArgumentError(
          StrCat("the module imports ", where, " as ",
                 SignatureText(import.signature.params, import.signature.results),
                 "; it is ", SignatureText(known->params, known->results)));
    }
  }
  return module;
}

absl::StatusOr<std::unique_ptr<WasmTransform>> WasmTransform::Create(
    std::shared_ptr<wasm::Module> module, TransformOptions options, LogSink log) {
  auto host = std::make_unique<Host>(std::move(module), std::move(options), std::move(log));
  RETURN_IF_ERROR(host->Init());
  return std::unique_ptr<WasmTransform>(new WasmTransform(std::move(host)));
}

WasmTransform::WasmTransform(std::unique_ptr<Host> host) : host_(std::move(host)) {}
WasmTransform::~WasmTransform() = default;

absl::StatusOr<BatchResult> WasmTransform::Process(PartitionId partition,
                                                   absl::Span<const Record> records) {
  return host_->Process(partition, records);
}
wasm::Tier WasmTransform::tier() const { return host_->tier(); }
uint64_t WasmTransform::log_lines_dropped() const { return host_->log_lines_dropped(); }

}  // namespace nodata::components
