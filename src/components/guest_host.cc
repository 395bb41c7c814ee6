#include "components/guest_host.h"

#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <utility>

#include "common/status.h"
#include "common/strings.h"

namespace nodata::components {
namespace {

using wasm::HostContext;
using wasm::ValType;
using wasm::Value;

constexpr std::string_view kNodata = "nodata";
constexpr std::string_view kWasi = "wasi_snapshot_preview1";

// WASI errno values.
constexpr int32_t kWasiSuccess = 0;
constexpr int32_t kWasiBadf = 8;
constexpr int32_t kWasiFault = 21;
constexpr int32_t kWasiInval = 28;
constexpr int32_t kWasiNosys = 52;

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

// The signatures of the imports the host implements for every ABI; wasi functions not listed
// answer ENOSYS (or EBADF for the file ones) whatever their parameters.
struct KnownImport {
  std::string_view module;
  std::string_view name;
  std::vector<ValType> params;
  std::vector<ValType> results;
};
const std::vector<KnownImport>& SharedImports() {
  static const auto* known = new std::vector<KnownImport>{
      {kNodata, "batch_read", {I32, I32}, {I32}},
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
std::optional<KnownImport> FindKnown(const AbiSpec& abi, std::string_view module,
                                     std::string_view name) {
  for (const KnownImport& k : SharedImports()) {
    if (k.module == module && k.name == name) return k;
  }
  if (module != kNodata) return std::nullopt;
  for (const AbiImport& i : abi.imports) {
    if (i.name == name) return KnownImport{kNodata, i.name, i.params, i.results};
  }
  return std::nullopt;
}
bool IsFileFunction(std::string_view name) {
  return name == "fd_close" || name == "fd_seek" || name == "fd_read" ||
         name == "fd_fdstat_get" || name == "fd_prestat_get" || name == "fd_prestat_dir_name";
}

absl::Status OutOfBounds(std::string_view what, uint32_t ptr, uint32_t len) {
  return absl::OutOfRangeError(
      StrCat(what, ": guest range [", ptr, ", ", uint64_t{ptr} + len, ") is outside memory"));
}

void PutLe(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Copies `bytes` (at most `len` of them) to guest memory at `ptr`; the count copied.
absl::StatusOr<uint32_t> CopyOut(HostContext& ctx, std::string_view what, std::string_view bytes,
                                 uint32_t ptr, uint32_t len) {
  const auto n = static_cast<uint32_t>(std::min<size_t>(len, bytes.size()));
  auto out = GuestBytes(ctx, ptr, n);
  if (!out) return OutOfBounds(what, ptr, n);
  if (n > 0) std::memcpy(out->data(), bytes.data(), n);
  return n;
}

}  // namespace

bool HasExport(const wasm::ModuleInfo& info, std::string_view name) {
  return std::any_of(info.exports.begin(), info.exports.end(),
                     [name](const auto& e) { return e.name == name; });
}

absl::Status CheckExport(const wasm::ModuleInfo& info, const AbiSpec& abi, std::string_view name,
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
  return absl::InvalidArgumentError(
      StrCat(abi.a_noun, " must export ", name, " ", SignatureText(params, results)));
}

absl::Status CheckModule(const wasm::ModuleInfo& info, const AbiSpec& abi) {
  if (!HasExport(info, abi.marker)) {
    return absl::InvalidArgumentError(
        StrCat("not a nodata ", abi.noun, ": the module does not export ", abi.marker));
  }
  RETURN_IF_ERROR(CheckExport(info, abi, abi.marker, {}, {}, true));
  RETURN_IF_ERROR(CheckExport(info, abi, "nd_init", {}, {I32}, false));
  RETURN_IF_ERROR(CheckExport(info, abi, "_initialize", {}, {}, false));
  const bool has_memory = std::any_of(info.exports.begin(), info.exports.end(), [](const auto& e) {
    return e.name == "memory" && e.kind == wasm::ModuleInfo::Kind::kMemory;
  });
  if (!has_memory) return absl::InvalidArgumentError(StrCat(abi.a_noun, " must export its memory"));
  for (const auto& import : info.imports) {
    const std::string where = StrCat(import.module, ".", import.name);
    if (import.module != kNodata && import.module != kWasi) {
      return absl::InvalidArgumentError(
          StrCat("the module imports ", where, ": ", abi.plural,
                 " may import only from \"nodata\" and \"wasi_snapshot_preview1\" "
                 "(docs/formats/component-abi.md)"));
    }
    const std::optional<KnownImport> known = FindKnown(abi, import.module, import.name);
    if (!known) {
      if (import.module == kNodata) {
        return absl::InvalidArgumentError(
            StrCat("the module imports ", where, ", which ", abi.version, " does not have"));
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
                 SignatureText(import.signature.params, import.signature.results), "; it is ",
                 SignatureText(known->params, known->results)));
    }
  }
  return absl::OkStatus();
}

std::optional<absl::Span<uint8_t>> GuestBytes(HostContext& ctx, uint32_t ptr, uint32_t len) {
  if (len == 0) return absl::Span<uint8_t>();
  absl::Span<uint8_t> v = ctx.memory().View(ptr, len);
  if (v.size() != len) return std::nullopt;
  return v;
}

uint64_t CallFuel(uint64_t per_unit, uint64_t units) {
  const uint64_t max = std::numeric_limits<uint64_t>::max() / 2;
  if (per_unit == 0) return 0;
  return units != 0 && per_unit > max / units ? max : per_unit * units;
}

absl::Status StartInstance(wasm::Instance& instance, uint64_t fuel) {
  // A WASI reactor's constructors (wasi-libc's, C++ static objects) run first.
  if (auto reactor = instance.Function("_initialize"); reactor.ok()) {
    instance.SetFuel(fuel);
    if (absl::Status s = instance.Call(*reactor, {}, {}); !s.ok()) {
      return absl::FailedPreconditionError(StrCat("_initialize: ", ToStd(s.message())));
    }
  }
  auto init = instance.Function("nd_init");
  if (!init.ok()) return absl::OkStatus();
  Value rc[1];
  wasm::Trap trap;
  instance.SetFuel(fuel);
  if (absl::Status s = instance.Call(*init, {}, absl::MakeSpan(rc), &trap); !s.ok()) {
    return absl::FailedPreconditionError(StrCat("nd_init: ", ToStd(s.message())));
  }
  if (rc[0].i32() != 0) {
    return absl::FailedPreconditionError(StrCat("nd_init returned ", rc[0].i32()));
  }
  return absl::OkStatus();
}

GuestHost::GuestHost(std::string config, uint32_t log_lines_per_second, LogSink log)
    : config_(std::move(config)),
      log_lines_per_second_(log_lines_per_second),
      log_(std::move(log)) {}

void GuestHost::Log(int level, std::string_view line) {
  const int64_t second = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  if (second != log_second_) {
    log_second_ = second;
    log_count_ = 0;
  }
  if (log_count_ >= log_lines_per_second_) {
    ++log_dropped_;
    return;
  }
  ++log_count_;
  if (log_) log_(std::clamp(level, 0, 3), line.substr(0, kMaxLogLineBytes));
}

// fd 1 and 2 of WASI: whole lines to the log.
void GuestHost::WriteStream(int fd, std::string_view bytes) {
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

wasm::HostFunction DeclareImport(const wasm::ModuleInfo::Import& import) {
  wasm::HostFunction f;
  f.module = import.module;
  f.name = import.name;
  f.params = import.signature.params;
  f.results = import.signature.results;
  return f;
}

bool GuestHost::Bind(wasm::HostFunction* f) {
  const std::string_view name = f->name;
  if (f->module == kWasi) {
    BindWasi(name, f);
  } else if (name == "batch_read") {
    f->callback = [this](HostContext& ctx, absl::Span<const Value> args,
                         absl::Span<Value> results) -> absl::Status {
      ASSIGN_OR_RETURN(uint32_t n, CopyOut(ctx, "batch_read", batch_,
                                           static_cast<uint32_t>(args[0].i32()),
                                           static_cast<uint32_t>(args[1].i32())));
      results[0] = Value::I32(static_cast<int32_t>(n));
      return absl::OkStatus();
    };
  } else if (name == "config") {
    f->callback = [this](HostContext& ctx, absl::Span<const Value> args,
                         absl::Span<Value> results) -> absl::Status {
      RETURN_IF_ERROR(CopyOut(ctx, "config", config_, static_cast<uint32_t>(args[0].i32()),
                              static_cast<uint32_t>(args[1].i32()))
                          .status());
      results[0] = Value::I32(static_cast<int32_t>(config_.size()));
      return absl::OkStatus();
    };
  } else if (name == "log") {
    f->callback = [this](HostContext& ctx, absl::Span<const Value> args,
                         absl::Span<Value>) -> absl::Status {
      const auto ptr = static_cast<uint32_t>(args[1].i32());
      const auto len = static_cast<uint32_t>(args[2].i32());
      auto line = GuestBytes(ctx, ptr, len);
      if (!line) return OutOfBounds("log", ptr, len);
      Log(args[0].i32(),
          std::string_view(reinterpret_cast<const char*>(line->data()), line->size()));
      return absl::OkStatus();
    };
  } else {
    return false;
  }
  return true;
}

void GuestHost::BindWasi(std::string_view name, wasm::HostFunction* f) {
  if (name == "fd_write") {
    f->callback = [this](HostContext& ctx, absl::Span<const Value> args,
                         absl::Span<Value> results) -> absl::Status {
      results[0] = Value::I32(FdWrite(ctx, args[0].i32(), static_cast<uint32_t>(args[1].i32()),
                                      static_cast<uint32_t>(args[2].i32()),
                                      static_cast<uint32_t>(args[3].i32())));
      return absl::OkStatus();
    };
  } else if (name == "clock_time_get") {
    f->callback = [](HostContext& ctx, absl::Span<const Value> args,
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
    f->callback = [](HostContext& ctx, absl::Span<const Value> args,
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
    f->callback = [](HostContext& ctx, absl::Span<const Value> args,
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
    f->callback = [](HostContext&, absl::Span<const Value>,
                     absl::Span<Value> results) -> absl::Status {
      results[0] = Value::I32(kWasiSuccess);
      return absl::OkStatus();
    };
  } else if (name == "proc_exit") {
    f->callback = [](HostContext&, absl::Span<const Value> args,
                     absl::Span<Value>) -> absl::Status {
      return absl::AbortedError(StrCat("proc_exit(", args[0].i32(), ")"));
    };
  } else {
    const int32_t errno_value = IsFileFunction(name) ? kWasiBadf : kWasiNosys;
    f->callback = [errno_value](HostContext&, absl::Span<const Value>,
                                absl::Span<Value> results) -> absl::Status {
      if (!results.empty()) results[0] = Value::I32(errno_value);
      return absl::OkStatus();
    };
  }
}

int32_t GuestHost::FdWrite(HostContext& ctx, int32_t fd, uint32_t iovs, uint32_t iovs_len,
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

}  // namespace nodata::components
