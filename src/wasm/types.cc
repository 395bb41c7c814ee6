#include "wasm/types.h"

#include "fmt/format.h"

namespace nodata::wasm {

const char* ValTypeName(ValType type) {
  switch (type) {
    case ValType::kI32: return "i32";
    case ValType::kI64: return "i64";
    case ValType::kF32: return "f32";
    case ValType::kF64: return "f64";
  }
  return "?";
}

std::string Value::ToString() const {
  switch (type) {
    case ValType::kI32: return fmt::format("i32:{}", i32());
    case ValType::kI64: return fmt::format("i64:{}", i64());
    case ValType::kF32: return fmt::format("f32:{}", f32());
    case ValType::kF64: return fmt::format("f64:{}", f64());
  }
  return "?";
}

const char* TrapKindName(TrapKind kind) {
  switch (kind) {
    case TrapKind::kNone: return "none";
    case TrapKind::kUnreachable: return "unreachable executed";
    case TrapKind::kOutOfBounds: return "out of bounds memory or table access";
    case TrapKind::kIndirectCall: return "bad indirect call";
    case TrapKind::kIntegerDivideByZero: return "integer divide by zero";
    case TrapKind::kIntegerOverflow: return "integer overflow";
    case TrapKind::kInvalidConversion: return "invalid conversion to integer";
    case TrapKind::kCallStackExhausted: return "call stack exhausted";
    case TrapKind::kFuelExhausted: return "fuel exhausted";
    case TrapKind::kDeadlineExceeded: return "deadline exceeded";
    case TrapKind::kHost: return "host function failed";
  }
  return "?";
}

std::string SignatureToString(const FuncSignature& sig) {
  std::string out = "(";
  for (size_t i = 0; i < sig.params.size(); ++i) {
    if (i) out += ", ";
    out += ValTypeName(sig.params[i]);
  }
  out += ") -> (";
  for (size_t i = 0; i < sig.results.size(); ++i) {
    if (i) out += ", ";
    out += ValTypeName(sig.results[i]);
  }
  return out + ")";
}

const char* KindName(ModuleInfo::Kind kind) {
  switch (kind) {
    case ModuleInfo::Kind::kFunction: return "function";
    case ModuleInfo::Kind::kTable: return "table";
    case ModuleInfo::Kind::kMemory: return "memory";
    case ModuleInfo::Kind::kGlobal: return "global";
  }
  return "?";
}

}  // namespace nodata::wasm
