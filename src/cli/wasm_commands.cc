#include "cli/wasm_commands.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>

#include "absl/strings/numbers.h"
#include "cli/cli.h"
#include "cli/command_set.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "wasm/runtime.h"
#include "wasm/text.h"
#include "cli/record_json.h"

namespace nodata::cli {
namespace {

using nlohmann::json;
using wasm::ValType;
using wasm::Value;

json Signature(const wasm::FuncSignature& sig) {
  json params = json::array(), results = json::array();
  for (ValType t : sig.params) params.push_back(wasm::ValTypeName(t));
  for (ValType t : sig.results) results.push_back(wasm::ValTypeName(t));
  return {{"params", params}, {"results", results}};
}

json ValueJson(const Value& v) {
  json out = {{"type", wasm::ValTypeName(v.type)}};
  switch (v.type) {
    case ValType::kI32: out["value"] = v.i32(); break;
    case ValType::kI64: out["value"] = std::to_string(v.i64()); break;  // beyond 2^53
    case ValType::kF32:
    case ValType::kF64: {
      double d = v.type == ValType::kF32 ? v.f32() : v.f64();
      if (std::isfinite(d)) {
        out["value"] = d;
      } else {
        out["value"] = std::isnan(d) ? "nan" : (d > 0 ? "inf" : "-inf");
      }
      break;
    }
  }
  return out;
}

bool ParseArg(const std::string& text, ValType type, Value* out) {
  switch (type) {
    case ValType::kI32: {
      int64_t v;
      if (!absl::SimpleAtoi(text, &v) || v < INT32_MIN || v > UINT32_MAX) return false;
      *out = Value::I32(static_cast<int32_t>(static_cast<uint32_t>(v)));
      return true;
    }
    case ValType::kI64: {
      int64_t v;
      uint64_t u;
      if (absl::SimpleAtoi(text, &v)) {
        *out = Value::I64(v);
        return true;
      }
      if (!absl::SimpleAtoi(text, &u)) return false;
      *out = Value::I64(static_cast<int64_t>(u));
      return true;
    }
    case ValType::kF32: {
      float v;
      if (!absl::SimpleAtof(text, &v)) return false;
      *out = Value::F32(v);
      return true;
    }
    case ValType::kF64: {
      double v;
      if (!absl::SimpleAtod(text, &v)) return false;
      *out = Value::F64(v);
      return true;
    }
  }
  return false;
}


int Fail(const std::string& message) {
  std::cerr << "nodata: " << message << "\n";
  return 1;
}

}  // namespace

// Reads a module file: the binary format, or the text format (assembled here). An error
// message on failure.
std::string ReadModule(const std::string& path, std::vector<uint8_t>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + path;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return "cannot read " + path;
  // Text is UTF-8 without NUL bytes; anything else goes to the binary decoder, whose
  // message (bad magic, truncated) fits a damaged binary better than a syntax error.
  const bool text = !wasm::IsBinaryModule(bytes) &&
                    bytes.find('\0') == std::string::npos && ValidUtf8(bytes);
  if (!text) {
    out->assign(bytes.begin(), bytes.end());
    return "";
  }
  auto binary = wasm::AssembleText(bytes, path);
  if (!binary.ok()) return std::string(ToStd(binary.status().message()));
  *out = std::move(binary).value();
  return "";
}

std::string ParseTier(const std::string& text, std::optional<wasm::Tier>* tier) {
  if (text == "interp") {
    *tier = wasm::Tier::kInterpreter;
  } else if (text == "native") {
    *tier = wasm::Tier::kNative;
  } else if (text == "auto") {
    tier->reset();
  } else {
    return "--tier must be interp, native or auto; got \"" + text + "\"";
  }
  return "";
}

std::string DefaultCacheDir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/nodata/wasm";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.cache/nodata/wasm";
  }
  return "/tmp/nodata-wasm-cache";
}

int WasmInspect(const std::string& path) {
  std::vector<uint8_t> bytes;
  if (std::string error = ReadModule(path, &bytes); !error.empty()) {
    json out = {{"valid", false}, {"error", error}};
    std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return 1;
  }
  auto runtime = wasm::Runtime::Create({});  // no cache: tier 1 is not needed to inspect
  auto module = (*runtime)->Load(bytes, wasm::Limits(), /*native=*/false);
  if (!module.ok()) {
    json out = {{"valid", false},
                {"size_bytes", bytes.size()},
                {"error", ToStd(module.status().message())}};
    std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return 1;
  }
  const wasm::ModuleInfo& info = (*module)->info();
  json imports = json::array(), exports = json::array();
  for (const auto& i : info.imports) {
    json entry = {{"module", i.module}, {"name", i.name}, {"kind", wasm::KindName(i.kind)}};
    if (i.kind == wasm::ModuleInfo::Kind::kFunction) entry["signature"] = Signature(i.signature);
    imports.push_back(entry);
  }
  for (const auto& e : info.exports) {
    json entry = {{"name", e.name}, {"kind", wasm::KindName(e.kind)}};
    if (e.kind == wasm::ModuleInfo::Kind::kFunction) entry["signature"] = Signature(e.signature);
    exports.push_back(entry);
  }
  json memory = nullptr;
  if (info.has_memory) {
    memory = {{"initial_pages", info.memory_initial_pages}};
    memory["max_pages"] = info.memory_max_pages ? json(*info.memory_max_pages) : json(nullptr);
  }
  json out = {{"valid", true},         {"size_bytes", info.size_bytes},
              {"sha256", info.hash},   {"functions", info.function_count},
              {"imports", imports},    {"exports", exports},
              {"memory", memory},      {"start_function", info.has_start},
              {"features", info.features}};
  std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  return 0;
}

int WasmRun(const WasmRunOptions& options) {
  std::vector<uint8_t> bytes;
  if (std::string error = ReadModule(options.path, &bytes); !error.empty()) return Fail(error);
  std::optional<wasm::Tier> tier;
  if (std::string error = ParseTier(options.tier, &tier); !error.empty()) return Fail(error);
  wasm::RuntimeOptions runtime_options;
  runtime_options.cache_dir = options.cache_dir.empty() ? DefaultCacheDir() : options.cache_dir;
  auto runtime = wasm::Runtime::Create(runtime_options);
  wasm::Limits limits;
  if (options.fuel != 0) limits.fuel = options.fuel;
  if (options.deadline_ms != 0) limits.deadline_ms = options.deadline_ms;
  bool native = tier != wasm::Tier::kInterpreter;
  auto module = (*runtime)->Load(bytes, limits, native);
  if (!module.ok()) return Fail(std::string(ToStd(module.status().message())));
  if (tier == wasm::Tier::kNative) {
    wasm::NativeStatus status = (*module)->WaitNative(10 * 60 * 1000);
    if (status.state != wasm::NativeStatus::State::kReady) {
      return Fail("native code is not available: " + status.detail);
    }
  }
  auto instance = (*module)->Instantiate({}, tier);
  if (!instance.ok()) return Fail(std::string(ToStd(instance.status().message())));
  auto fn = (*instance)->Function(options.invoke);
  if (!fn.ok()) return Fail(std::string(ToStd(fn.status().message())));
  if (options.args.size() != fn->params.size()) {
    return Fail(options.invoke + " takes " + std::to_string(fn->params.size()) + " arguments, " +
                std::to_string(options.args.size()) + " given");
  }
  std::vector<Value> args(fn->params.size()), results(fn->results.size());
  for (size_t i = 0; i < args.size(); ++i) {
    if (!ParseArg(options.args[i], fn->params[i], &args[i])) {
      return Fail("argument " + std::to_string(i) + " (\"" + options.args[i] + "\") is not a valid " +
                  wasm::ValTypeName(fn->params[i]));
    }
  }
  wasm::Trap trap;
  absl::Status status = (*instance)->Call(*fn, args, absl::MakeSpan(results), &trap);
  // A call stopped by its deadline did not count its fuel to the end: the count is unknown.
  json out = {{"tier", wasm::TierName((*instance)->tier())},
              {"fuel_used", !status.ok() && trap.kind == wasm::TrapKind::kDeadlineExceeded
                                ? json(nullptr)
                                : json((*instance)->last_fuel_used())}};
  if (!status.ok()) {
    out["trap"] = {{"kind", wasm::TrapKindName(trap.kind)}, {"message", trap.message}};
    std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    return 3;
  }
  json values = json::array();
  for (const Value& v : results) values.push_back(ValueJson(v));
  out["results"] = values;
  std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  return 0;
}

void AddWasmCommands(CommandSet& set) {
  CLI::App* wasm_cmd =
      set.app().add_subcommand("wasm", "inspect and run WebAssembly modules (locally)");
  wasm_cmd->require_subcommand(1);
  std::string& wasm_file = set.Keep<std::string>();
  CLI::App* wasm_inspect = wasm_cmd->add_subcommand(
      "inspect", "print a module's imports, exports, memory and features, or why it is refused");
  wasm_inspect->add_option("file", wasm_file, ".wasm file")->required();
  set.OnParsed(wasm_inspect, [&wasm_file] {
    return CheckRegularFile(wasm_file) ? WasmInspect(wasm_file) : kExitFailed;
  });
  WasmRunOptions& wro = set.Keep<WasmRunOptions>();
  CLI::App* wasm_run = wasm_cmd->add_subcommand("run", "call one exported function");
  wasm_run->add_option("file", wro.path, ".wasm file")->required();
  wasm_run->add_option("--invoke", wro.invoke, "exported function to call")->required();
  wasm_run->add_option("args", wro.args, "arguments, by the function's parameter types");
  wasm_run->add_option("--tier", wro.tier, "interp | native | auto")->capture_default_str();
  wasm_run->add_option("--fuel", wro.fuel, "fuel budget of the call (default 1e9)");
  wasm_run->add_option("--deadline-ms", wro.deadline_ms, "wall-clock limit (default 10000)");
  wasm_run->add_option("--cache-dir", wro.cache_dir,
                       "compiled-module cache (default ~/.cache/nodata/wasm)");
  set.OnParsed(wasm_run,
               [&wro] { return CheckRegularFile(wro.path) ? WasmRun(wro) : kExitFailed; });
}

}  // namespace nodata::cli
