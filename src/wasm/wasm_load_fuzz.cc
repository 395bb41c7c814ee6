// libFuzzer target: arbitrary bytes through Load (decode, validate, instrument, re-encode), then,
// for modules without imports, instantiation on the interpreter and a call of every export with
// zero arguments under a small fuel budget. Anything may be refused; nothing may crash.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "wasm/runtime.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<nodata::wasm::Runtime> runtime =
      std::move(nodata::wasm::Runtime::Create({}).value());
  nodata::wasm::Limits limits;
  limits.fuel = 10'000;
  limits.deadline_ms = 0;
  limits.max_memory_pages = 16;
  limits.max_call_depth = 200;
  auto module = runtime->Load(absl::MakeConstSpan(data, size), limits, /*native=*/false);
  if (!module.ok() || !(*module)->info().imports.empty()) return 0;
  auto instance = (*module)->Instantiate({}, nodata::wasm::Tier::kInterpreter);
  if (!instance.ok()) return 0;
  for (const auto& e : (*module)->info().exports) {
    if (e.kind != nodata::wasm::ModuleInfo::Kind::kFunction) continue;
    auto fn = (*instance)->Function(e.name);
    if (!fn.ok()) continue;
    std::vector<nodata::wasm::Value> args, results(fn->results.size());
    for (auto t : fn->params) args.push_back(nodata::wasm::Value{t, 0});
    (void)(*instance)->Call(*fn, args, absl::MakeSpan(results));
  }
  return 0;
}
