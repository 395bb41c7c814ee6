// `nodata wasm ...`: load, inspect and run WebAssembly modules locally (no server), for
// experiments and tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wasm/runtime.h"

namespace nodata::cli {

// Reads a module file: the binary format, or the text format (assembled here). An error
// message on failure.
std::string ReadModule(const std::string& path, std::vector<uint8_t>* out);
// Where compiled modules are cached by default: $XDG_CACHE_HOME/nodata/wasm, else
// ~/.cache/nodata/wasm.
std::string DefaultCacheDir();
// `--tier interp|native|auto` (auto: nullopt); an error message for anything else.
std::string ParseTier(const std::string& text, std::optional<wasm::Tier>* tier);

// `nodata wasm inspect FILE`: validity, imports, exports, memory and features as JSON on stdout.
// Exit code 0 for a module nodata accepts, 1 otherwise (with the reason in the JSON).
int WasmInspect(const std::string& path);

struct WasmRunOptions {
  std::string path;
  std::string invoke;
  std::vector<std::string> args;
  std::string tier = "auto";  // interp | native | auto
  uint64_t fuel = 0;          // 0: the default budget
  uint64_t deadline_ms = 0;   // 0: the default
  std::string cache_dir;      // empty: $XDG_CACHE_HOME/nodata/wasm or ~/.cache/nodata/wasm
};

// `nodata wasm run FILE --invoke NAME [ARGS...]`: calls one export and prints its results, the
// tier and the fuel used as JSON. Exit code 0, 3 on a trap, 1 on other errors.
int WasmRun(const WasmRunOptions& options);

}  // namespace nodata::cli
