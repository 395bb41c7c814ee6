#include "components/wasm_transform.h"

#include <utility>

#include "common/status.h"
#include "common/strings.h"

namespace nodata::components {
namespace {

using wasm::HostContext;
using wasm::HostFunction;
using wasm::ValType;
using wasm::Value;

// One batch's outputs together stay under this (emit answers kEmitTooLarge past it): what a
// component may make the host hold for one call.
constexpr uint64_t kMaxBatchOutputBytes = 256ull << 20;

const AbiSpec& ComponentAbi() {
  static const auto* abi = new AbiSpec{
      "nodata_component_v1", "component", "a component", "components", "ABI version 1",
      {{"emit", {ValType::kI32, ValType::kI32, ValType::kI32}, {ValType::kI32}}}};
  return *abi;
}

}  // namespace

class WasmTransform::Host {
 public:
  Host(std::shared_ptr<wasm::Module> module, TransformOptions options, LogSink log)
      : module_(std::move(module)),
        options_(std::move(options)),
        guest_(options_.config, options_.log_lines_per_second, std::move(log)) {}

  absl::Status Init() {
    for (const auto& import : module_->info().imports) imports_.push_back(Bind(import));
    return NewInstance();
  }

  absl::StatusOr<BatchResult> Process(PartitionId partition, absl::Span<const Record> records) {
    BatchResult result;
    if (records.empty()) return result;
    encoder_.Begin();
    for (const Record& r : records) encoder_.Add(partition, r);
    Attempt all = Run(encoder_.Finish(), encoder_.count());
    result.fuel_used += all.fuel_used;
    if (all.ok) {
      Collect(records, 0, std::move(all.emitted), &result);
      return result;
    }
    if (all.trapped) RETURN_IF_ERROR(NewInstance());
    if (records.size() == 1) {
      result.failed.push_back({0, std::move(all.error)});
      return result;
    }
    // Isolate the failing records: each alone, in order.
    for (uint32_t i = 0; i < records.size(); ++i) {
      encoder_.Begin();
      encoder_.Add(partition, records[i]);
      Attempt one = Run(encoder_.Finish(), 1);
      result.fuel_used += one.fuel_used;
      if (one.ok) {
        Collect(records, i, std::move(one.emitted), &result);
      } else {
        result.failed.push_back({i, std::move(one.error)});
        if (one.trapped) RETURN_IF_ERROR(NewInstance());
      }
    }
    return result;
  }

  wasm::Tier tier() const { return instance_->tier(); }
  uint64_t log_lines_dropped() const { return guest_.log_lines_dropped(); }

 private:
  struct Emitted {
    uint32_t output;
    OutputRecord record;
  };
  struct Attempt {
    bool ok = false;
    bool trapped = false;
    std::string error;
    std::vector<Emitted> emitted;
    uint64_t fuel_used = 0;
  };

  // Outputs of records[base + input_index], timestamps resolved.
  static void Collect(absl::Span<const Record> records, uint32_t base,
                      std::vector<Emitted> emitted, BatchResult* result) {
    for (Emitted& e : emitted) {
      Output o;
      o.output = e.output;
      o.input_index = base + e.record.input_index;
      o.timestamp_us = e.record.timestamp_us < 0 ? records[o.input_index].timestamp_us
                                                 : e.record.timestamp_us;
      o.key = std::move(e.record.key);
      o.data = std::move(e.record.data);
      o.headers = std::move(e.record.headers);
      result->outputs.push_back(std::move(o));
    }
  }

  absl::Status NewInstance() {
    instance_.reset();
    ASSIGN_OR_RETURN(instance_, module_->Instantiate(imports_));
    ASSIGN_OR_RETURN(process_, instance_->Function("nd_process"));
    return StartInstance(*instance_, options_.fuel_per_record);
  }

  Attempt Run(std::string_view batch, uint32_t count) {
    guest_.set_batch(batch);
    count_ = count;
    emitted_.clear();
    emitted_bytes_ = 0;
    instance_->SetFuel(CallFuel(options_.fuel_per_record, count));
    Value rc[1];
    wasm::Trap trap;
    absl::Status s = instance_->Call(process_, {Value::I32(static_cast<int32_t>(batch.size()))},
                                     absl::MakeSpan(rc), &trap);
    guest_.set_batch({});
    count_ = 0;
    Attempt a;
    a.fuel_used = instance_->last_fuel_used();
    if (!s.ok()) {
      a.trapped = true;
      a.error = std::string(ToStd(s.message()));
    } else if (rc[0].i32() != 0) {
      a.error = StrCat("nd_process returned ", rc[0].i32());
    } else {
      a.ok = true;
      a.emitted = std::move(emitted_);
    }
    emitted_.clear();
    return a;
  }

  HostFunction Bind(const wasm::ModuleInfo::Import& import) {
    HostFunction f = DeclareImport(import);
    if (guest_.Bind(&f)) return f;
    // emit: CheckModule refused every other import.
    f.callback = [this](HostContext& ctx, absl::Span<const Value> args,
                        absl::Span<Value> results) -> absl::Status {
      results[0] = Value::I32(Emit(ctx, args[0].i32(), static_cast<uint32_t>(args[1].i32()),
                                   static_cast<uint32_t>(args[2].i32())));
      return absl::OkStatus();
    };
    return f;
  }

  int32_t Emit(HostContext& ctx, int32_t output, uint32_t ptr, uint32_t len) {
    if (output < 0 || static_cast<uint32_t>(output) >= options_.outputs) return kEmitNoSuchOutput;
    auto bytes = GuestBytes(ctx, ptr, len);
    if (!bytes) return kEmitMalformed;
    Emitted e{static_cast<uint32_t>(output), {}};
    const int32_t rc = DecodeOutput(*bytes, count_, options_.max_event_bytes, &e.record);
    if (rc != kEmitOk) return rc;
    if (emitted_bytes_ + len > kMaxBatchOutputBytes) return kEmitTooLarge;
    emitted_bytes_ += len;
    emitted_.push_back(std::move(e));
    return kEmitOk;
  }

  const std::shared_ptr<wasm::Module> module_;
  const TransformOptions options_;
  GuestHost guest_;
  std::vector<HostFunction> imports_;
  std::unique_ptr<wasm::Instance> instance_;
  wasm::FunctionRef process_;
  BatchEncoder encoder_;

  // The call in progress.
  uint32_t count_ = 0;
  std::vector<Emitted> emitted_;
  uint64_t emitted_bytes_ = 0;
};

absl::StatusOr<std::shared_ptr<wasm::Module>> WasmTransform::Load(
    wasm::Runtime& runtime, absl::Span<const uint8_t> bytes, const wasm::Limits& limits,
    bool native) {
  ASSIGN_OR_RETURN(std::shared_ptr<wasm::Module> module, runtime.Load(bytes, limits, native));
  RETURN_IF_ERROR(CheckModule(module->info(), ComponentAbi()));
  RETURN_IF_ERROR(CheckExport(module->info(), ComponentAbi(), "nd_process", {ValType::kI32},
                              {ValType::kI32}, true));
  return module;
}

absl::StatusOr<std::unique_ptr<WasmTransform>> WasmTransform::Create(
    std::shared_ptr<wasm::Module> module, TransformOptions options, LogSink log) {
  auto host = std::make_unique<Host>(std::move(module), std::move(options), std::move(log));
  RETURN_IF_ERROR(host->Init());
  return std::unique_ptr<WasmTransform>(new WasmTransform(std::move(host)));
}

WasmTransform::WasmTransform(std::unique_ptr<Host> host) : host_(std::move(host)) {}
WasmTransform::~WasmTransform() = default;

absl::StatusOr<BatchResult> WasmTransform::Process(PartitionId partition,
                                                   absl::Span<const Record> records) {
  return host_->Process(partition, records);
}
wasm::Tier WasmTransform::tier() const { return host_->tier(); }
uint64_t WasmTransform::log_lines_dropped() const { return host_->log_lines_dropped(); }

}  // namespace nodata::components
