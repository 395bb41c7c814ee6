#include "wasm/internal/prepare.h"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <set>

#include "common/status.h"
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

namespace {

// Standardized features nodata does not run, to name the one an unsupported module needs. Only
// these are probed: wabt's experimental proposals (function references, GC, ...) assert on some
// malformed input, so they are never enabled, not even to produce a message. Nor is multi-value:
// wabt 1.0.32 asserts (an empty expression list in BinaryReaderIR::OnEndExpr) on some malformed
// module with it enabled.
struct NamedFeature {
  const char* name;
  void (wabt::Features::*enable)();
};
const NamedFeature kOptionalFeatures[] = {
    {"simd", &wabt::Features::enable_simd},
    {"reference-types", &wabt::Features::enable_reference_types},
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

// Adds the fuel and depth counters to every function: one unit of fuel on function entry and one
// on every branch back to a loop (a loop that runs once costs nothing extra). Two placements of
// the same counting:
//   kGlobal: every charge reads and writes the fuel global (the interpreter; the watchdog stops a
//            loop by setting the global below zero);
//   kLocal:  functions with loops keep fuel in a local inside the function and write it back to
//            the global before calls, on exit and when it runs out, so the C compiler keeps it in
//            a register (native code; the watchdog interrupts it with a signal instead).
// Both charge the same units at the same points, so budgets trap identically on both tiers.
enum class FuelMode { kGlobal, kLocal };

class Instrumenter {
 public:
  Instrumenter(wabt::Index fuel_global, wabt::Index depth_global, uint32_t max_depth, FuelMode mode)
      : fuel_(fuel_global), depth_(depth_global), max_depth_(max_depth), mode_(mode) {}

  void Function(wabt::Func& func) {
    has_call_ = false;
    has_loop_ = false;
    Scan(func.exprs);
    local_fuel_ = mode_ == FuelMode::kLocal && has_loop_;
    if (local_fuel_) {
      fuel_local_ = func.GetNumParamsAndLocals();
      func.local_types.AppendDecl(wabt::Type::I64, 1);
    }
    const bool counts_depth = has_call_;
    const bool wraps = counts_depth || local_fuel_;
    Rewrite(func.exprs, 0, wraps);
    // [depth++ check] [fuel-- check] [fuel → local] block(results) { body } [local → fuel] [depth--]
    wabt::ExprList body;
    if (counts_depth) AppendDepthEnter(body);
    AppendGlobalCharge(body);
    if (local_fuel_) {
      body.push_back(Make<wabt::GlobalGetExpr>(Index(fuel_)));
      body.push_back(Make<wabt::LocalSetExpr>(Index(fuel_local_)));
    }
    if (wraps) {
      auto block = std::make_unique<wabt::BlockExpr>();
      block->block.decl.sig.result_types = func.decl.sig.result_types;
      block->block.exprs = std::move(func.exprs);
      body.push_back(std::move(block));
    } else {
      body.splice(body.end(), func.exprs);
    }
    if (local_fuel_) AppendStoreFuel(body);
    if (counts_depth) {
      body.push_back(Make<wabt::GlobalGetExpr>(Index(depth_)));
      body.push_back(Make<wabt::ConstExpr>(wabt::Const::I32(1)));
      body.push_back(Make<wabt::BinaryExpr>(wabt::Opcode::I32Sub));
      body.push_back(Make<wabt::GlobalSetExpr>(Index(depth_)));
    }
    func.exprs = std::move(body);
  }

  std::set<std::string>& features() { return features_; }
  bool hidden_state() const { return hidden_state_; }

 private:
  static std::unique_ptr<wabt::IfExpr> TrapIf(wabt::ExprList before_trap) {
    auto check = std::make_unique<wabt::IfExpr>();
    check->true_.exprs.splice(check->true_.exprs.end(), before_trap);
    check->true_.exprs.push_back(Make<wabt::UnreachableExpr>());
    return check;
  }

  void AppendGlobalCharge(wabt::ExprList& list) {
    list.push_back(Make<wabt::GlobalGetExpr>(Index(fuel_)));
    list.push_back(Make<wabt::ConstExpr>(wabt::Const::I64(1)));
    list.push_back(Make<wabt::BinaryExpr>(wabt::Opcode::I64Sub));
    list.push_back(Make<wabt::GlobalSetExpr>(Index(fuel_)));
    list.push_back(Make<wabt::GlobalGetExpr>(Index(fuel_)));
    list.push_back(Make<wabt::ConstExpr>(wabt::Const::I64(0)));
    list.push_back(Make<wabt::CompareExpr>(wabt::Opcode::I64LtS));
    list.push_back(TrapIf({}));
  }

  void AppendLocalCharge(wabt::ExprList& list) {
    list.push_back(Make<wabt::LocalGetExpr>(Index(fuel_local_)));
    list.push_back(Make<wabt::ConstExpr>(wabt::Const::I64(1)));
    list.push_back(Make<wabt::BinaryExpr>(wabt::Opcode::I64Sub));
    list.push_back(Make<wabt::LocalTeeExpr>(Index(fuel_local_)));
    list.push_back(Make<wabt::ConstExpr>(wabt::Const::I64(0)));
    list.push_back(Make<wabt::CompareExpr>(wabt::Opcode::I64LtS));
    wabt::ExprList store;
    AppendStoreFuel(store);
    list.push_back(TrapIf(std::move(store)));
  }

  void AppendStoreFuel(wabt::ExprList& list) {
    list.push_back(Make<wabt::LocalGetExpr>(Index(fuel_local_)));
    list.push_back(Make<wabt::GlobalSetExpr>(Index(fuel_)));
  }

  void AppendDepthEnter(wabt::ExprList& list) {
    list.push_back(Make<wabt::GlobalGetExpr>(Index(depth_)));
    list.push_back(Make<wabt::ConstExpr>(wabt::Const::I32(1)));
    list.push_back(Make<wabt::BinaryExpr>(wabt::Opcode::I32Add));
    list.push_back(Make<wabt::GlobalSetExpr>(Index(depth_)));
    list.push_back(Make<wabt::GlobalGetExpr>(Index(depth_)));
    list.push_back(Make<wabt::ConstExpr>(wabt::Const::I32(max_depth_)));
    list.push_back(Make<wabt::CompareExpr>(wabt::Opcode::I32GtU));
    list.push_back(TrapIf({}));
  }

  // What the function uses: calls, loops, post-MVP features.
  void Scan(wabt::ExprList& list) {
    for (wabt::Expr& expr : list) {
      switch (expr.type()) {
        case wabt::ExprType::Call:
        case wabt::ExprType::CallIndirect:
          has_call_ = true;
          break;
        case wabt::ExprType::Block:
          Scan(wabt::cast<wabt::BlockExpr>(&expr)->block.exprs);
          break;
        case wabt::ExprType::Loop:
          has_loop_ = true;
          Scan(wabt::cast<wabt::LoopExpr>(&expr)->block.exprs);
          break;
        case wabt::ExprType::If: {
          auto* branch = wabt::cast<wabt::IfExpr>(&expr);
          Scan(branch->true_.exprs);
          Scan(branch->false_);
          break;
        }
        case wabt::ExprType::MemoryCopy:
        case wabt::ExprType::MemoryFill:
        case wabt::ExprType::MemoryInit:
          features_.insert("bulk-memory");
          break;
        case wabt::ExprType::DataDrop:
        case wabt::ExprType::TableCopy:
        case wabt::ExprType::TableInit:
        case wabt::ExprType::ElemDrop:
          // State outside memory and globals (tables, dropped segments): not carried when an
          // instance moves between tiers.
          features_.insert("bulk-memory");
          hidden_state_ = true;
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

  // Charges fuel on every branch back to a loop, keeps the fuel local and global in step around
  // calls, and — when the body is wrapped — turns `return` into a branch out of the wrapper block,
  // so the exit code (fuel write-back, depth decrement) always runs. `labels_` holds the enclosing
  // labels, innermost last, true for loops.
  void Rewrite(wabt::ExprList& list, wabt::Index nesting, bool wrapped) {
    for (auto it = list.begin(); it != list.end(); ++it) {
      switch (it->type()) {
        case wabt::ExprType::Return:
          if (wrapped) {
            it = list.insert(it, std::make_unique<wabt::BrExpr>(Index(nesting)));
            list.erase(std::next(it));
          }
          break;
        case wabt::ExprType::Br:
          if (TargetsLoop(wabt::cast<wabt::BrExpr>(&*it)->var)) {
            wabt::ExprList charge;
            AppendCharge(charge);
            list.splice(it, charge);
          }
          break;
        case wabt::ExprType::BrIf: {
          const wabt::Var& target = wabt::cast<wabt::BrIfExpr>(&*it)->var;
          if (!TargetsLoop(target)) break;
          // br_if L (L a loop) → if { charge; br L+1 }: the charge only when the branch is taken.
          auto taken = std::make_unique<wabt::IfExpr>();
          AppendCharge(taken->true_.exprs);
          taken->true_.exprs.push_back(std::make_unique<wabt::BrExpr>(Index(target.index() + 1)));
          it = list.insert(it, std::move(taken));
          list.erase(std::next(it));
          break;
        }
        case wabt::ExprType::BrTable: {
          // Charged once per br_table with a loop among its targets, whichever it takes.
          auto* table = wabt::cast<wabt::BrTableExpr>(&*it);
          bool loop = TargetsLoop(table->default_target);
          for (const wabt::Var& v : table->targets) loop = loop || TargetsLoop(v);
          if (loop) {
            wabt::ExprList charge;
            AppendCharge(charge);
            list.splice(it, charge);
          }
          break;
        }
        case wabt::ExprType::Call:
        case wabt::ExprType::CallIndirect:
          if (local_fuel_) {
            wabt::ExprList before;
            AppendStoreFuel(before);
            list.splice(it, before);
            auto after = std::next(it);
            list.insert(after, Make<wabt::GlobalGetExpr>(Index(fuel_)));
            list.insert(after, Make<wabt::LocalSetExpr>(Index(fuel_local_)));
            it = std::prev(after);
          }
          break;
        case wabt::ExprType::Block:
          Nested(wabt::cast<wabt::BlockExpr>(&*it)->block.exprs, false, nesting, wrapped);
          break;
        case wabt::ExprType::Loop:
          Nested(wabt::cast<wabt::LoopExpr>(&*it)->block.exprs, true, nesting, wrapped);
          break;
        case wabt::ExprType::If: {
          auto* branch = wabt::cast<wabt::IfExpr>(&*it);
          Nested(branch->true_.exprs, false, nesting, wrapped);
          Nested(branch->false_, false, nesting, wrapped);
          break;
        }
        default:
          break;
      }
    }
  }

  void Nested(wabt::ExprList& list, bool loop, wabt::Index nesting, bool wrapped) {
    labels_.push_back(loop);
    Rewrite(list, nesting + 1, wrapped);
    labels_.pop_back();
  }

  // Whether the branch target (a relative label depth) is a loop; depth == labels_.size() is the
  // function's own label.
  bool TargetsLoop(const wabt::Var& var) const {
    wabt::Index depth = var.index();
    return depth < labels_.size() && labels_[labels_.size() - 1 - depth];
  }

  void AppendCharge(wabt::ExprList& list) {
    if (local_fuel_) {
      AppendLocalCharge(list);
    } else {
      AppendGlobalCharge(list);
    }
  }

  std::vector<bool> labels_;
  wabt::Index fuel_;
  wabt::Index depth_;
  uint32_t max_depth_;
  FuelMode mode_;
  bool has_call_ = false;
  bool has_loop_ = false;
  bool local_fuel_ = false;
  wabt::Index fuel_local_ = 0;
  bool hidden_state_ = false;
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

// The memory maximum lowered to the limit; tables likewise.
void ApplyLimits(wabt::Module& module, const Limits& limits) {
  for (wabt::Memory* memory : module.memories) {
    uint64_t max = memory->page_limits.has_max ? memory->page_limits.max : 65536;
    memory->page_limits.max = std::min<uint64_t>(max, limits.max_memory_pages);
    memory->page_limits.has_max = true;
  }
  for (wabt::Table* table : module.tables) {
    uint64_t max = table->elem_limits.has_max ? table->elem_limits.max : UINT32_MAX;
    table->elem_limits.max = std::min<uint64_t>(max, limits.max_table_elements);
    table->elem_limits.has_max = true;
  }
}

// Adds the counters and the host's exports to `module` and encodes it; records the exports in
// `out` (the same for both fuel modes).
absl::StatusOr<std::vector<uint8_t>> InstrumentAndEncode(wabt::Module& module, const Limits& limits,
                                                         FuelMode mode, PreparedModule* out) {
  out->exports.clear();
  out->mutable_global_exports.clear();
  // Counters and exports for the host.
  std::vector<wabt::Index> mutable_globals;
  for (wabt::Index i = module.num_global_imports; i < module.globals.size(); ++i) {
    if (module.globals[i]->mutable_) mutable_globals.push_back(i);
  }
  // The start function runs before the host can set a budget: it gets one call's budget.
  wabt::Index fuel = AddGlobal(module, wabt::Type::I64, wabt::Const::I64(FuelBudget(limits)));
  wabt::Index depth = AddGlobal(module, wabt::Type::I32, wabt::Const::I32(0));
  Instrumenter instrumenter(fuel, depth, limits.max_call_depth, mode);
  for (wabt::Index i = module.num_func_imports; i < module.funcs.size(); ++i) {
    instrumenter.Function(*module.funcs[i]);
  }
  out->hidden_state = instrumenter.hidden_state();
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
    if (e->name == kFuelExport) out->fuel_export = index;
    if (e->name == kDepthExport) out->depth_export = index;
    if (e->name == kMemoryExport) out->memory_export = index;
    if (e->name.rfind(kGlobalExportPrefix, 0) == 0) out->mutable_global_exports.push_back(index);
    out->exports.push_back(std::move(entry));
  }

  out->info.features.assign(instrumenter.features().begin(), instrumenter.features().end());

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
  return std::move(stream.output_buffer().data);
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
  }
  for (wabt::Table* table : module.tables) {
    if (table->elem_limits.initial > limits.max_table_elements) {
      return absl::InvalidArgumentError(
          fmt::format("table of {} elements exceeds the limit of {} elements",
                      table->elem_limits.initial, limits.max_table_elements));
    }
  }

  ApplyLimits(module, limits);
  ASSIGN_OR_RETURN(out.bytes, InstrumentAndEncode(module, limits, FuelMode::kGlobal, &out));
  wabt::Module native;
  RETURN_IF_ERROR(ReadAndValidate(bytes, SupportedFeatures(), &native));
  ApplyLimits(native, limits);
  ASSIGN_OR_RETURN(out.native_bytes, InstrumentAndEncode(native, limits, FuelMode::kLocal, &out));
  info.hash = Sha256Hex(out.native_bytes);
  return out;
}

}  // namespace nodata::wasm::internal
