#include "wasm/internal/prepare.h"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <set>

#include "fmt/format.h"
#include "wabt/binary-reader-ir.h"
#include "wabt/binary-reader.h"
#include "wabt/binary-writer.h"
#include "wabt/cast.h"
#include "wabt/error-formatter.h"
#include "wabt/feature.h"
#include "wabt/ir.h"
#include "wabt/stream.h"
#include "wabt/validator.h"

namespace nodata::wasm::internal {
namespace {

// The features nodata runs. Everything else (SIMD, threads, reference types, multi-value, tail
// calls, exceptions, memory64, ...) is refused at load with the feature named.
wabt::Features SupportedFeatures() {
  wabt::Features f;
#define WABT_FEATURE(variable, flag, default_, help) f.disable_##variable();
#include "wabt/feature.def"
#undef WABT_FEATURE
  f.enable_mutable_globals();
  f.enable_sign_extension();
  f.enable_sat_float_to_int();
  f.enable_bulk_memory();
  return f;
}

// Standardized features nodata does not run, to name the one an unsupported module needs. Only
// these are probed: wabt's experimental proposals (function references, GC, ...) assert on some
// malformed input, so they are never enabled, not even to produce a message.
struct NamedFeature {
  const char* name;
  void (wabt::Features::*enable)();
};
const NamedFeature kOptionalFeatures[] = {
    {"simd", &wabt::Features::enable_simd},
    {"reference-types", &wabt::Features::enable_reference_types},
    {"multi-value", &wabt::Features::enable_multi_value},
    {"threads", &wabt::Features::enable_threads},
    {"tail-call", &wabt::Features::enable_tail_call},
    {"memory64", &wabt::Features::enable_memory64},
    {"multi-memory", &wabt::Features::enable_multi_memory},
    {"extended-const", &wabt::Features::enable_extended_const},
};

std::string FormatErrors(const wabt::Errors& errors) {
  std::string out;
  for (const wabt::Error& e : errors) {
    if (!out.empty()) out += "; ";
    if (e.loc.offset != wabt::kInvalidOffset) out += fmt::format("at byte {}: ", e.loc.offset);
    out += e.message;
  }
  return out.empty() ? "unknown error" : out;
}

absl::Status ReadAndValidate(absl::Span<const uint8_t> bytes, const wabt::Features& features,
                             wabt::Module* module) {
  wabt::Errors errors;
  wabt::ReadBinaryOptions options(features, nullptr, /*read_debug_names=*/false,
                                  /*stop_on_first_error=*/true,
                                  /*fail_on_custom_section_error=*/false);
  if (wabt::Failed(wabt::ReadBinaryIr("module.wasm", bytes.data(), bytes.size(), options, &errors,
                                      module))) {
    return absl::InvalidArgumentError("malformed module: " + FormatErrors(errors));
  }
  wabt::ValidateOptions validate(features);
  if (wabt::Failed(wabt::ValidateModule(module, &errors, validate))) {
    return absl::InvalidArgumentError("invalid module: " + FormatErrors(errors));
  }
  return absl::OkStatus();
}

// When a module fails under the supported features, names the feature it needs if enabling one
// more makes it valid.
std::string UnsupportedFeature(absl::Span<const uint8_t> bytes) {
  for (const NamedFeature& named : kOptionalFeatures) {
    wabt::Features f = SupportedFeatures();
    (f.*named.enable)();
    wabt::Module module;
    if (ReadAndValidate(bytes, f, &module).ok()) return named.name;
  }
  return "";
}

ValType ToValType(wabt::Type type) {
  switch (type) {
    case wabt::Type::I32: return ValType::kI32;
    case wabt::Type::I64: return ValType::kI64;
    case wabt::Type::F32: return ValType::kF32;
    default: return ValType::kF64;  // validation admits only numbers here
  }
}

FuncSignature ToSignature(const wabt::FuncSignature& sig) {
  FuncSignature out;
  for (wabt::Type t : sig.param_types) out.params.push_back(ToValType(t));
  for (wabt::Type t : sig.result_types) out.results.push_back(ToValType(t));
  return out;
}

ModuleInfo::Kind ToKind(wabt::ExternalKind kind) {
  switch (kind) {
    case wabt::ExternalKind::Func: return ModuleInfo::Kind::kFunction;
    case wabt::ExternalKind::Table: return ModuleInfo::Kind::kTable;
    case wabt::ExternalKind::Memory: return ModuleInfo::Kind::kMemory;
    default: return ModuleInfo::Kind::kGlobal;
  }
}

// Names become C comments and symbols in tier 1 and appear in messages: printable ASCII without
// quotes, backslashes or '*'.
bool SafeName(const std::string& name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    if (c < 0x20 || c > 0x7e || c == '\'' || c == '"' || c == '\\' || c == '*') return false;
  }
  return true;
}

template <typename T, typename... Args>
std::unique_ptr<wabt::Expr> Make(Args&&... args) {
  return std::make_unique<T>(std::forward<Args>(args)...);
}

wabt::Var Index(wabt::Index i) { return wabt::Var(i, wabt::Location()); }

// Walks every expression list of a function; records what the module uses and rewrites what the
// instrumentation needs.
class Instrumenter {
 public:
  Instrumenter(wabt::Index fuel_global, wabt::Index depth_global, uint32_t max_depth,
               bool instrument)
      : fuel_(fuel_global), depth_(depth_global), max_depth_(max_depth), instrument_(instrument) {}

  // Scans `func` (features, calls) and, when instrumenting, adds the counters.
  void Function(wabt::Func& func) {
    has_call_ = false;
    Scan(func.exprs, 0);
    if (!instrument_) return;
    bool counts_depth = has_call_;
    if (counts_depth) ReplaceReturns(func.exprs, 0);
    // Body: [depth++ check] [fuel-- check] block(results) { body } [depth--]
    wabt::ExprList body;
    if (counts_depth) AppendDepthEnter(body);
    AppendFuelCharge(body);
    if (counts_depth) {
      auto block = std::make_unique<wabt::BlockExpr>();
      block->block.decl.sig.result_types = func.decl.sig.result_types;
      block->block.exprs = std::move(func.exprs);
      body.push_back(std::move(block));
      body.push_back(Make<wabt::GlobalGetExpr>(Index(depth_)));
      body.push_back(Make<wabt::ConstExpr>(wabt::Const::I32(1)));
      body.push_back(Make<wabt::BinaryExpr>(wabt::Opcode::I32Sub));
      body.push_back(Make<wabt::GlobalSetExpr>(Index(depth_)));
    } else {
      body.splice(body.end(), func.exprs);
    }
    func.exprs = std::move(body);
  }

  std::set<std::string>& features() { return features_; }
  bool tables_mutable() const { return tables_mutable_; }

 private:
  void AppendFuelCharge(wabt::ExprList& list) {
    list.push_back(Make<wabt::GlobalGetExpr>(Index(fuel_)));
    list.push_back(Make<wabt::ConstExpr>(wabt::Const::I64(1)));
    list.push_back(Make<wabt::BinaryExpr>(wabt::Opcode::I64Sub));
    list.push_back(Make<wabt::GlobalSetExpr>(Index(fuel_)));
    list.push_back(Make<wabt::GlobalGetExpr>(Index(fuel_)));
    list.push_back(Make<wabt::ConstExpr>(wabt::Const::I64(0)));
    list.push_back(Make<wabt::CompareExpr>(wabt::Opcode::I64LtS));
    auto check = std::make_unique<wabt::IfExpr>();
    check->true_.exprs.push_back(Make<wabt::UnreachableExpr>());
    list.push_back(std::move(check));
  }

  void AppendDepthEnter(wabt::ExprList& list) {
    list.push_back(Make<wabt::GlobalGetExpr>(Index(depth_)));
    list.push_back(Make<wabt::ConstExpr>(wabt::Const::I32(1)));
    list.push_back(Make<wabt::BinaryExpr>(wabt::Opcode::I32Add));
    list.push_back(Make<wabt::GlobalSetExpr>(Index(depth_)));
    list.push_back(Make<wabt::GlobalGetExpr>(Index(depth_)));
    list.push_back(Make<wabt::ConstExpr>(wabt::Const::I32(max_depth_)));
    list.push_back(Make<wabt::CompareExpr>(wabt::Opcode::I32GtU));
    auto check = std::make_unique<wabt::IfExpr>();
    check->true_.exprs.push_back(Make<wabt::UnreachableExpr>());
    list.push_back(std::move(check));
  }

  void Scan(wabt::ExprList& list, int nesting) {
    for (wabt::Expr& expr : list) {
      switch (expr.type()) {
        case wabt::ExprType::Call:
        case wabt::ExprType::CallIndirect:
          has_call_ = true;
          break;
        case wabt::ExprType::Block:
          Scan(wabt::cast<wabt::BlockExpr>(&expr)->block.exprs, nesting + 1);
          break;
        case wabt::ExprType::Loop: {
          auto* loop = wabt::cast<wabt::LoopExpr>(&expr);
          Scan(loop->block.exprs, nesting + 1);
          if (instrument_) {
            wabt::ExprList charge;
            AppendFuelCharge(charge);
            loop->block.exprs.splice(loop->block.exprs.begin(), charge);
          }
          break;
        }
        case wabt::ExprType::If: {
          auto* branch = wabt::cast<wabt::IfExpr>(&expr);
          Scan(branch->true_.exprs, nesting + 1);
          Scan(branch->false_, nesting + 1);
          break;
        }
        case wabt::ExprType::MemoryCopy:
        case wabt::ExprType::MemoryFill:
        case wabt::ExprType::MemoryInit:
        case wabt::ExprType::DataDrop:
          features_.insert("bulk-memory");
          break;
        case wabt::ExprType::TableCopy:
        case wabt::ExprType::TableInit:
        case wabt::ExprType::ElemDrop:
          features_.insert("bulk-memory");
          tables_mutable_ = true;
          break;
        case wabt::ExprType::Unary: {
          wabt::Opcode op = wabt::cast<wabt::UnaryExpr>(&expr)->opcode;
          if (op >= wabt::Opcode::I32Extend8S && op <= wabt::Opcode::I64Extend32S) {
            features_.insert("sign-extension");
          }
          break;
        }
        case wabt::ExprType::Convert: {
          wabt::Opcode op = wabt::cast<wabt::ConvertExpr>(&expr)->opcode;
          if (op.GetPrefix() == 0xfc) features_.insert("saturating-float-to-int");
          break;
        }
        default:
          break;
      }
    }
  }

  // `return` leaves the function; inside the wrapper block it must leave the block instead, so
  // that the depth counter is decremented: `br <nesting>` does exactly that.
  void ReplaceReturns(wabt::ExprList& list, wabt::Index nesting) {
    for (auto it = list.begin(); it != list.end(); ++it) {
      switch (it->type()) {
        case wabt::ExprType::Return: {
          auto br = std::make_unique<wabt::BrExpr>(Index(nesting));
          it = list.insert(it, std::move(br));
          auto old = std::next(it);
          list.erase(old);
          break;
        }
        case wabt::ExprType::Block:
          ReplaceReturns(wabt::cast<wabt::BlockExpr>(&*it)->block.exprs, nesting + 1);
          break;
        case wabt::ExprType::Loop:
          ReplaceReturns(wabt::cast<wabt::LoopExpr>(&*it)->block.exprs, nesting + 1);
          break;
        case wabt::ExprType::If: {
          auto* branch = wabt::cast<wabt::IfExpr>(&*it);
          ReplaceReturns(branch->true_.exprs, nesting + 1);
          ReplaceReturns(branch->false_, nesting + 1);
          break;
        }
        default:
          break;
      }
    }
  }

  wabt::Index fuel_;
  wabt::Index depth_;
  uint32_t max_depth_;
  bool instrument_;
  bool has_call_ = false;
  bool tables_mutable_ = false;
  std::set<std::string> features_;
};

wabt::Index AddGlobal(wabt::Module& module, wabt::Type type, wabt::Const init) {
  auto field = std::make_unique<wabt::GlobalModuleField>();
  field->global.type = type;
  field->global.mutable_ = true;
  field->global.init_expr.push_back(std::make_unique<wabt::ConstExpr>(init));
  module.AppendField(std::move(field));
  return static_cast<wabt::Index>(module.globals.size() - 1);
}

void AddExport(wabt::Module& module, std::string name, wabt::ExternalKind kind, wabt::Index index) {
  auto field = std::make_unique<wabt::ExportModuleField>();
  field->export_.name = std::move(name);
  field->export_.kind = kind;
  field->export_.var = Index(index);
  module.AppendField(std::move(field));
}

}  // namespace

int64_t FuelBudget(const Limits& limits) {
  constexpr int64_t kUnlimited = INT64_MAX / 4;  // ~70 years of a 1 ns unit
  return limits.fuel == 0 || limits.fuel > static_cast<uint64_t>(kUnlimited)
             ? kUnlimited
             : static_cast<int64_t>(limits.fuel);
}

std::string Sha256Hex(absl::Span<const uint8_t> data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

absl::StatusOr<PreparedModule> Prepare(absl::Span<const uint8_t> bytes, const Limits& limits) {
  wabt::Module module;
  if (absl::Status s = ReadAndValidate(bytes, SupportedFeatures(), &module); !s.ok()) {
    std::string feature = UnsupportedFeature(bytes);
    if (!feature.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("module uses {}, which nodata does not support ({})", feature, std::string(s.message())));
    }
    return s;
  }

  PreparedModule out;
  out.limits = limits;
  ModuleInfo& info = out.info;
  info.size_bytes = bytes.size();

  for (const wabt::Import* import : module.imports) {
    ModuleInfo::Import entry{import->module_name, import->field_name, ToKind(import->kind()), {}};
    if (!SafeName(import->module_name) || !SafeName(import->field_name)) {
      return absl::InvalidArgumentError(
          "import names must be 1-255 printable ASCII characters without quotes, '\\' or '*'");
    }
    if (import->kind() != wabt::ExternalKind::Func) {
      return absl::InvalidArgumentError(fmt::format(
          "import {}.{} is a {}: nodata modules may import only functions (memory, tables and "
          "globals are the module's own)",
          import->module_name, import->field_name, KindName(entry.kind)));
    }
    const auto* func_import = wabt::cast<wabt::FuncImport>(import);
    entry.signature = ToSignature(func_import->func.decl.sig);
    out.function_imports.push_back(entry.signature);
    info.imports.push_back(std::move(entry));
  }
  for (const wabt::Export* e : module.exports) {
    if (!SafeName(e->name)) {
      return absl::InvalidArgumentError(fmt::format(
          "export names must be 1-255 printable ASCII characters without quotes, '\\' or '*'"));
    }
    if (e->name.rfind(kReservedPrefix, 0) == 0) {
      return absl::InvalidArgumentError(
          fmt::format("export {} uses the reserved prefix {}", e->name, kReservedPrefix));
    }
    ModuleInfo::Export entry{e->name, ToKind(e->kind), {}};
    if (e->kind == wabt::ExternalKind::Func) {
      entry.signature = ToSignature(module.GetFunc(e->var)->decl.sig);
    }
    info.exports.push_back(std::move(entry));
  }
  info.function_count = static_cast<uint32_t>(module.funcs.size() - module.num_func_imports);
  info.has_start = !module.starts.empty();
  if (!module.memories.empty()) {
    wabt::Memory* memory = module.memories[0];
    info.has_memory = true;
    info.memory_initial_pages = static_cast<uint32_t>(memory->page_limits.initial);
    if (memory->page_limits.has_max) {
      info.memory_max_pages = static_cast<uint32_t>(memory->page_limits.max);
    }
    if (memory->page_limits.initial > limits.max_memory_pages) {
      return absl::InvalidArgumentError(
          fmt::format("memory of {} initial pages exceeds the limit of {} pages",
                      memory->page_limits.initial, limits.max_memory_pages));
    }
    uint64_t max = memory->page_limits.has_max ? memory->page_limits.max : 65536;
    memory->page_limits.max = std::min<uint64_t>(max, limits.max_memory_pages);
    memory->page_limits.has_max = true;
  }
  for (wabt::Table* table : module.tables) {
    if (table->elem_limits.initial > limits.max_table_elements) {
      return absl::InvalidArgumentError(
          fmt::format("table of {} elements exceeds the limit of {} elements",
                      table->elem_limits.initial, limits.max_table_elements));
    }
    uint64_t max = table->elem_limits.has_max ? table->elem_limits.max : UINT32_MAX;
    table->elem_limits.max = std::min<uint64_t>(max, limits.max_table_elements);
    table->elem_limits.has_max = true;
  }

  // Counters and exports for the host.
  std::vector<wabt::Index> mutable_globals;
  for (wabt::Index i = module.num_global_imports; i < module.globals.size(); ++i) {
    if (module.globals[i]->mutable_) mutable_globals.push_back(i);
  }
  // The start function runs before the host can set a budget: it gets one call's budget.
  wabt::Index fuel = AddGlobal(module, wabt::Type::I64, wabt::Const::I64(FuelBudget(limits)));
  wabt::Index depth = AddGlobal(module, wabt::Type::I32, wabt::Const::I32(0));
  Instrumenter instrumenter(fuel, depth, limits.max_call_depth, /*instrument=*/true);
  for (wabt::Index i = module.num_func_imports; i < module.funcs.size(); ++i) {
    instrumenter.Function(*module.funcs[i]);
  }
  out.tables_mutable = instrumenter.tables_mutable();
  AddExport(module, kFuelExport, wabt::ExternalKind::Global, fuel);
  AddExport(module, kDepthExport, wabt::ExternalKind::Global, depth);
  if (!module.memories.empty()) AddExport(module, kMemoryExport, wabt::ExternalKind::Memory, 0);
  for (wabt::Index g : mutable_globals) {
    AddExport(module, fmt::format("{}{}", kGlobalExportPrefix, g), wabt::ExternalKind::Global, g);
  }

  for (size_t i = 0; i < module.exports.size(); ++i) {
    const wabt::Export* e = module.exports[i];
    PreparedExport entry{e->name, ToKind(e->kind), {}, ValType::kI32};
    if (e->kind == wabt::ExternalKind::Func) {
      entry.signature = ToSignature(module.GetFunc(e->var)->decl.sig);
    } else if (e->kind == wabt::ExternalKind::Global) {
      entry.global_type = ToValType(module.GetGlobal(e->var)->type);
    }
    int index = static_cast<int>(i);
    if (e->name == kFuelExport) out.fuel_export = index;
    if (e->name == kDepthExport) out.depth_export = index;
    if (e->name == kMemoryExport) out.memory_export = index;
    if (e->name.rfind(kGlobalExportPrefix, 0) == 0) out.mutable_global_exports.push_back(index);
    out.exports.push_back(std::move(entry));
  }

  for (const std::string& f : instrumenter.features()) info.features.push_back(f);

  wabt::Errors errors;
  if (wabt::Failed(wabt::ValidateModule(&module, &errors, wabt::ValidateOptions(SupportedFeatures())))) {
    return absl::InternalError("instrumented module is invalid: " + FormatErrors(errors));
  }
  wabt::MemoryStream stream;
  wabt::WriteBinaryOptions write_options(SupportedFeatures(), /*canonicalize_lebs=*/true,
                                         /*relocatable=*/false, /*write_debug_names=*/false);
  if (wabt::Failed(wabt::WriteBinaryModule(&stream, &module, write_options))) {
    return absl::InternalError("could not encode the instrumented module");
  }
  out.bytes = std::move(stream.output_buffer().data);
  info.hash = Sha256Hex(out.bytes);
  return out;
}

}  // namespace nodata::wasm::internal
