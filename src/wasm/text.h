// The WebAssembly text format (.wat), for tools and examples: a module written by hand runs
// without a separate assembler.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nodata::wasm {

// True when `bytes` start with the binary format's magic number ("\0asm").
bool IsBinaryModule(std::string_view bytes);

// Assembles one text-format module into the binary format, with the features Runtime::Load
// accepts. INVALID_ARGUMENT with wabt's messages (`filename:line:column: error: ...`) on a
// syntax error. The result still goes through Load, which validates it.
absl::StatusOr<std::vector<uint8_t>> AssembleText(std::string_view text, std::string_view filename);

}  // namespace nodata::wasm
