// Tier 1's first step: a prepared module translated to C by wabt's C writer. Runs in a child
// process (`nodata wasm translate IN.wasm OUT.c OUT.h`), so a translator crash costs one
// compilation, never the server.
#pragma once

#include <string>

namespace nodata::wasm {

// The C module name wasm2c is given: symbols are Z_m_*.
inline constexpr char kTranslatedModuleName[] = "m";

// Version of the translator as it takes part in the cache key.
std::string TranslatorVersion();

// Entry point of the translate command: argv = {"translate", IN, OUT_C, OUT_H}. Returns the exit
// status; errors go to stderr.
int TranslateMain(int argc, char** argv);

}  // namespace nodata::wasm
