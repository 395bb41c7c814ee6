// Values, traps and module descriptions shared by both tiers.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace nodata::wasm {

enum class ValType : uint8_t { kI32, kI64, kF32, kF64 };
const char* ValTypeName(ValType type);

// A WebAssembly number value: its type and its bits (i32 and f32 in the low 32 bits).
struct Value {
  ValType type = ValType::kI32;
  uint64_t bits = 0;

  static Value I32(int32_t v) { return {ValType::kI32, static_cast<uint32_t>(v)}; }
  static Value I64(int64_t v) { return {ValType::kI64, static_cast<uint64_t>(v)}; }
  static Value F32(float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    return {ValType::kF32, b};
  }
  static Value F64(double v) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    return {ValType::kF64, b};
  }
  int32_t i32() const { return static_cast<int32_t>(static_cast<uint32_t>(bits)); }
  int64_t i64() const { return static_cast<int64_t>(bits); }
  float f32() const {
    uint32_t b = static_cast<uint32_t>(bits);
    float v;
    std::memcpy(&v, &b, 4);
    return v;
  }
  double f64() const {
    double v;
    std::memcpy(&v, &bits, 8);
    return v;
  }
  // "i32:7", "f64:1.5" — for messages and the CLI.
  std::string ToString() const;
};

// Why a call stopped early.
enum class TrapKind : uint8_t {
  kNone,
  kUnreachable,        // an `unreachable` instruction
  kOutOfBounds,        // a memory or table access outside its bounds
  kIndirectCall,       // call_indirect outside the table, to a null element or another signature
  kIntegerDivideByZero,
  kIntegerOverflow,    // signed division overflow, or a float truncation out of range
  kInvalidConversion,  // NaN truncated to an integer
  kCallStackExhausted, // deeper than Limits::max_call_depth or the native stack
  kFuelExhausted,      // Limits::fuel spent
  kDeadlineExceeded,   // Limits::deadline_ms passed (the watchdog)
  kHost,               // a host function returned an error
};
const char* TrapKindName(TrapKind kind);

struct Trap {
  TrapKind kind = TrapKind::kNone;
  std::string message;
};

struct FuncSignature {
  std::vector<ValType> params;
  std::vector<ValType> results;
};
std::string SignatureToString(const FuncSignature& sig);

// What a module imports and exports, as `nodata wasm inspect` prints it.
struct ModuleInfo {
  enum class Kind : uint8_t { kFunction, kTable, kMemory, kGlobal };
  struct Import {
    std::string module;
    std::string name;
    Kind kind = Kind::kFunction;
    FuncSignature signature;  // functions only
  };
  struct Export {
    std::string name;
    Kind kind = Kind::kFunction;
    FuncSignature signature;  // functions only
  };
  std::vector<Import> imports;
  std::vector<Export> exports;  // the module's own exports, without the runtime's
  uint32_t function_count = 0;  // defined functions
  bool has_memory = false;
  uint32_t memory_initial_pages = 0;
  std::optional<uint32_t> memory_max_pages;  // as declared by the module
  bool has_start = false;
  std::vector<std::string> features;  // post-MVP features the module uses
  uint64_t size_bytes = 0;
  std::string hash;  // SHA-256 of the prepared module, hex
};
const char* KindName(ModuleInfo::Kind kind);

}  // namespace nodata::wasm
