#include "aggregate/wasm_reducer.h"

#include <algorithm>
#include <climits>
#include <type_traits>
#include <utility>

#include "common/status.h"
#include "common/strings.h"
#include "components/abi.h"
#include "components/guest_host.h"
#include "simdjson.h"

namespace nodata::aggregate {
namespace {

using wasm::HostContext;
using wasm::HostFunction;
using wasm::ValType;
using wasm::Value;

constexpr ValType I32 = ValType::kI32;

const components::AbiSpec& AggregateAbi() {
  static const auto* abi = new components::AbiSpec{
      "nodata_aggregate_v1",
      "aggregation module",
      "an aggregation module",
      "aggregation modules",
      "the aggregation ABI",
      {{"state_write", {I32, I32, I32}, {I32}}, {"value_write", {I32, I32, I32}, {I32}}}};
  return *abi;
}

template <typename T>
void AppendLe(std::string* out, T v) {
  char b[sizeof v];
  const auto u = static_cast<std::make_unsigned_t<T>>(v);
  for (size_t i = 0; i < sizeof v; ++i) b[i] = static_cast<char>(u >> (8 * i));
  out->append(b, sizeof v);
}
void AppendBytes(std::string* out, std::string_view s) {
  AppendLe(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
// What every group and merge starts with: its window and its key.
void AppendWindowKey(std::string* out, int64_t start_us, int64_t end_us, std::string_view key) {
  AppendLe(out, start_us);
  AppendLe(out, end_us);
  AppendBytes(out, key);
}

}  // namespace

class WasmReducer::Host {
 public:
  Host(std::shared_ptr<wasm::Module> module, ReducerOptions options, ReducerLogSink log)
      : module_(std::move(module)),
        options_(std::move(options)),
        guest_(options_.config, options_.log_lines_per_second, std::move(log)) {}

  absl::Status Init() {
    for (const auto& import : module_->info().imports) imports_.push_back(Bind(import));
    return NewInstance();
  }

  absl::StatusOr<std::vector<ReduceOutput>> Reduce(absl::Span<const ReduceGroup> groups) {
    if (groups.empty()) return std::vector<ReduceOutput>();
    batch_.clear();
    AppendLe(&batch_, static_cast<uint32_t>(groups.size()));
    uint64_t records = 0;
    for (const ReduceGroup& g : groups) {
      AppendWindowKey(&batch_, g.window_start_us, g.window_end_us, g.key);
      AppendBytes(&batch_, g.state);
      AppendLe(&batch_, g.record_count);
      batch_.append(g.records);
      records += g.record_count;
    }
    return Run(/*merge=*/false, static_cast<uint32_t>(groups.size()),
               std::max<uint64_t>(records, 1));
  }

  absl::StatusOr<std::vector<ReduceOutput>> Merge(absl::Span<const MergeInput> merges) {
    if (!HasMerge(*module_)) {
      return absl::FailedPreconditionError(
          "the aggregation module exports no nd_merge, which session windows need");
    }
    if (merges.empty()) return std::vector<ReduceOutput>();
    batch_.clear();
    AppendLe(&batch_, static_cast<uint32_t>(merges.size()));
    for (const MergeInput& m : merges) {
      AppendWindowKey(&batch_, m.window_start_us, m.window_end_us, m.key);
      AppendBytes(&batch_, m.state_a);
      AppendBytes(&batch_, m.state_b);
    }
    return Run(/*merge=*/true, static_cast<uint32_t>(merges.size()), merges.size());
  }

  wasm::Tier tier() const { return instance_ ? instance_->tier() : wasm::Tier::kInterpreter; }
  uint64_t log_lines_dropped() const { return guest_.log_lines_dropped(); }
  uint64_t last_fuel_used() const { return fuel_used_; }

 private:
  absl::Status NewInstance() {
    instance_.reset();
    ASSIGN_OR_RETURN(std::unique_ptr<wasm::Instance> instance, module_->Instantiate(imports_));
    ASSIGN_OR_RETURN(aggregate_, instance->Function("nd_aggregate"));
    if (HasMerge(*module_)) {
      ASSIGN_OR_RETURN(merge_, instance->Function("nd_merge"));
    }
    RETURN_IF_ERROR(components::StartInstance(*instance, options_.fuel_per_record));
    instance_ = std::move(instance);
    return absl::OkStatus();
  }

  // Calls nd_aggregate or nd_merge on batch_, whose `count` groups or merges the writes name.
  // Any failure discards the writes and replaces the instance: its memory may be half-updated.
  absl::StatusOr<std::vector<ReduceOutput>> Run(bool merge, uint32_t count, uint64_t fuel_units) {
    const std::string_view name = merge ? "nd_merge" : "nd_aggregate";
    if (batch_.size() > INT32_MAX) {
      return absl::InvalidArgumentError(
          StrCat("a batch of ", batch_.size(), " bytes is more than ", name, " can take"));
    }
    if (!instance_) RETURN_IF_ERROR(NewInstance());
    guest_.set_batch(batch_);
    outputs_.assign(count, ReduceOutput());
    instance_->SetFuel(components::CallFuel(options_.fuel_per_record, fuel_units));
    Value rc[1];
    wasm::Trap trap;
    absl::Status s = instance_->Call(merge ? merge_ : aggregate_,
                                     {Value::I32(static_cast<int32_t>(batch_.size()))},
                                     absl::MakeSpan(rc), &trap);
    guest_.set_batch({});
    fuel_used_ = instance_->last_fuel_used();
    std::vector<ReduceOutput> outputs = std::move(outputs_);
    outputs_.clear();  // writes outside a call name no group
    if (s.ok() && rc[0].i32() == 0) return outputs;
    if (absl::Status replaced = NewInstance(); !replaced.ok()) {
      // The next call tries again; this batch's error is the one to report.
      instance_.reset();
    }
    if (s.ok()) return absl::InternalError(StrCat(name, " returned ", rc[0].i32()));
    const std::string why = StrCat(name, ": ", ToStd(s.message()));
    if (s.code() == absl::StatusCode::kResourceExhausted ||
        s.code() == absl::StatusCode::kDeadlineExceeded) {
      return absl::ResourceExhaustedError(why);
    }
    return absl::InternalError(why);
  }

  HostFunction Bind(const wasm::ModuleInfo::Import& import) {
    HostFunction f = components::DeclareImport(import);
    if (guest_.Bind(&f)) return f;
    // state_write or value_write: Load refused every other import.
    const bool values = import.name == "value_write";
    f.callback = [this, values](HostContext& ctx, absl::Span<const Value> args,
                                absl::Span<Value> results) -> absl::Status {
      results[0] = Value::I32(Write(ctx, values, args[0].i32(),
                                    static_cast<uint32_t>(args[1].i32()),
                                    static_cast<uint32_t>(args[2].i32())));
      return absl::OkStatus();
    };
    return f;
  }

  int32_t Write(HostContext& ctx, bool values, int32_t group, uint32_t ptr, uint32_t len) {
    if (group < 0 || static_cast<uint32_t>(group) >= outputs_.size()) return kWriteNoSuchGroup;
    if (len > (values ? options_.max_values_bytes : options_.max_state_bytes)) {
      return kWriteTooLarge;
    }
    auto bytes = components::GuestBytes(ctx, ptr, len);
    if (!bytes) return kWriteMalformed;
    ReduceOutput& out = outputs_[group];
    if (!values) {
      out.state.assign(reinterpret_cast<const char*>(bytes->data()), bytes->size());
      out.state_written = true;
      return kWriteOk;
    }
    // simdjson checks the whole text (UTF-8 included): one JSON object and nothing after it.
    simdjson::dom::element doc;
    if (json_.parse(bytes->data(), bytes->size()).get(doc) != simdjson::SUCCESS ||
        !doc.is_object()) {
      return kWriteMalformed;
    }
    out.values.assign(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    out.values_written = true;
    return kWriteOk;
  }

  const std::shared_ptr<wasm::Module> module_;
  const ReducerOptions options_;
  components::GuestHost guest_;
  std::vector<HostFunction> imports_;
  std::unique_ptr<wasm::Instance> instance_;  // null after a failed replacement
  wasm::FunctionRef aggregate_;
  wasm::FunctionRef merge_;
  simdjson::dom::parser json_;
  std::string batch_;
  std::vector<ReduceOutput> outputs_;  // of the call in progress
  uint64_t fuel_used_ = 0;
};

absl::StatusOr<std::shared_ptr<wasm::Module>> WasmReducer::Load(wasm::Runtime& runtime,
                                                                absl::Span<const uint8_t> bytes,
                                                                const wasm::Limits& limits,
                                                                bool native) {
  ASSIGN_OR_RETURN(std::shared_ptr<wasm::Module> module, runtime.Load(bytes, limits, native));
  const wasm::ModuleInfo& info = module->info();
  RETURN_IF_ERROR(components::CheckModule(info, AggregateAbi()));
  RETURN_IF_ERROR(components::CheckExport(info, AggregateAbi(), "nd_aggregate", {I32}, {I32},
                                          /*required=*/true));
  RETURN_IF_ERROR(components::CheckExport(info, AggregateAbi(), "nd_merge", {I32}, {I32},
                                          /*required=*/false));
  return module;
}

bool WasmReducer::HasMerge(const wasm::Module& module) {
  return components::HasExport(module.info(), "nd_merge");
}

absl::StatusOr<std::unique_ptr<WasmReducer>> WasmReducer::Create(
    std::shared_ptr<wasm::Module> module, ReducerOptions options, ReducerLogSink log) {
  auto host = std::make_unique<Host>(std::move(module), std::move(options), std::move(log));
  RETURN_IF_ERROR(host->Init());
  return std::unique_ptr<WasmReducer>(new WasmReducer(std::move(host)));
}

WasmReducer::WasmReducer(std::unique_ptr<Host> host) : host_(std::move(host)) {}
WasmReducer::~WasmReducer() = default;

absl::StatusOr<std::vector<ReduceOutput>> WasmReducer::Reduce(
    absl::Span<const ReduceGroup> groups) {
  return host_->Reduce(groups);
}
absl::StatusOr<std::vector<ReduceOutput>> WasmReducer::Merge(absl::Span<const MergeInput> merges) {
  return host_->Merge(merges);
}
wasm::Tier WasmReducer::tier() const { return host_->tier(); }
uint64_t WasmReducer::log_lines_dropped() const { return host_->log_lines_dropped(); }
uint64_t WasmReducer::last_fuel_used() const { return host_->last_fuel_used(); }

}  // namespace nodata::aggregate
