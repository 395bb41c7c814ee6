#include "server/aggregation_api.h"

#include <utility>

#include "absl/time/time.h"
#include "aggregate/wasm_reducer.h"
#include "common/strings.h"
#include "components/manager.h"
#include "server/grpc_util.h"

namespace nodata::server {
namespace {

using json = nlohmann::ordered_json;

nodata::v1::AggregationState StateToProto(aggregate::State s) {
  switch (s) {
    case aggregate::State::kBackfilling:
      return nodata::v1::AGGREGATION_STATE_BACKFILLING;
    case aggregate::State::kRunning:
      return nodata::v1::AGGREGATION_STATE_RUNNING;
    case aggregate::State::kFailed:
      return nodata::v1::AGGREGATION_STATE_FAILED;
  }
  return nodata::v1::AGGREGATION_STATE_UNSPECIFIED;
}

// A parse error of a request field whose message does not name it (durations, start
// positions): the field and the text are put in front.
absl::Status FieldError(std::string_view field, std::string_view text, const absl::Status& s) {
  return absl::InvalidArgumentError(
      StrCat(field, " \"", text, "\": ", std::string_view(ToStd(s.message()))));
}

}  // namespace

void FillAggregation(const aggregate::AggregationInfo& info, nodata::v1::Aggregation* out) {
  const aggregate::AggregationSpec& spec = info.spec;
  out->set_name(spec.name);
  out->set_input(spec.input);
  out->set_key(aggregate::FormatKey(spec.key));
  out->set_window(aggregate::FormatWindow(spec.window));
  out->set_lateness(aggregate::FormatDuration(spec.lateness_us));
  out->set_from(aggregate::FormatStart(spec.from));
  for (const aggregate::MeasureSpec& m : spec.measures) {
    out->add_measures(aggregate::FormatMeasure(m));
  }
  out->set_module_sha256(spec.module_sha256);
  out->set_config(spec.config);
  out->set_checkpoint_interval(aggregate::FormatDuration(spec.checkpoint_interval_us));
  out->set_fuel_per_record(spec.fuel_per_record);
  out->set_state(StateToProto(info.state));
  out->set_last_error(info.last_error);
  out->set_lag(info.lag);
  out->set_keys(info.keys);
  out->set_open_windows(info.open_windows);
  out->set_records_in(info.records_in);
  out->set_late(info.late);
  out->set_skipped(info.skipped);
  if (info.watermark_us != INT64_MIN) SetTimestamp(info.watermark_us, out->mutable_watermark());
  auto* backfill = out->mutable_backfill();
  backfill->set_done(info.backfill.done);
  backfill->set_total(info.backfill.total);
  backfill->set_rate(info.backfill.rate);
  backfill->set_eta_seconds(info.backfill.eta_seconds);
  out->set_tier(info.tier);
  SetTimestamp(info.created_at_us, out->mutable_created_at());
}

absl::StatusOr<aggregate::AggregationSpec> SpecFrom(const nodata::v1::AddAggregationRequest& r) {
  aggregate::AggregationSpec spec;
  spec.name = r.name();
  if (r.input().empty()) return absl::InvalidArgumentError("an input topic is required");
  spec.input = r.input();
  if (!r.key().empty()) {
    absl::StatusOr<aggregate::KeySpec> key = aggregate::ParseKey(r.key());
    if (!key.ok()) return key.status();  // "bad JSON path ..." names it
    spec.key = std::move(*key);
  }
  if (r.window().empty()) {
    return absl::InvalidArgumentError(
        "a window is required: tumbling:60s, hopping:5m/1m, session:30s or global");
  }
  absl::StatusOr<aggregate::WindowSpec> window = aggregate::ParseWindow(r.window());
  if (!window.ok()) return window.status();  // "bad window ..." names it
  spec.window = *window;
  if (!r.lateness().empty()) {
    absl::StatusOr<int64_t> lateness = aggregate::ParseDurationUs(r.lateness());
    if (!lateness.ok()) return FieldError("lateness", r.lateness(), lateness.status());
    spec.lateness_us = *lateness;
  }
  if (!r.from().empty()) {
    absl::StatusOr<aggregate::StartSpec> from = aggregate::ParseStart(r.from());
    if (!from.ok()) return FieldError("from", r.from(), from.status());
    spec.from = *from;
  }
  for (const std::string& text : r.measures()) {
    absl::StatusOr<aggregate::MeasureSpec> measure = aggregate::ParseMeasure(text);
    if (!measure.ok()) return measure.status();  // "bad measure ..." names it
    spec.measures.push_back(std::move(*measure));
  }
  if (!r.measures().empty() && !r.wasm().empty()) {
    return absl::InvalidArgumentError(
        "give built-in measures or a WebAssembly reducer, not both");
  }
  if (r.measures().empty() && r.wasm().empty()) {
    return absl::InvalidArgumentError(
        "give built-in measures (n=count(), total=sum($.amount), ...) or a WebAssembly reducer");
  }
  // The definition names its reducer by the module's hash (the manager stores the bytes).
  if (!r.wasm().empty()) spec.module_sha256 = components::Sha256Hex(r.wasm());
  spec.config = r.config();
  if (!r.checkpoint_interval().empty()) {
    absl::StatusOr<int64_t> interval = aggregate::ParseDurationUs(r.checkpoint_interval());
    if (!interval.ok()) {
      return FieldError("checkpoint_interval", r.checkpoint_interval(), interval.status());
    }
    if (*interval <= 0) {
      return absl::InvalidArgumentError(StrCat("checkpoint_interval \"", r.checkpoint_interval(),
                                               "\": must be more than 0"));
    }
    spec.checkpoint_interval_us = *interval;
  }
  if (r.fuel_per_record() > 0) spec.fuel_per_record = r.fuel_per_record();
  return spec;
}

std::string AggregationStateName(nodata::v1::AggregationState state) {
  const std::string name = nodata::v1::AggregationState_Name(state);
  constexpr std::string_view kPrefix = "AGGREGATION_STATE_";
  if (name.rfind(kPrefix, 0) == 0) return name.substr(kPrefix.size());
  return name.empty() ? StrCat("unknown(", static_cast<int>(state), ")") : name;
}

json AggregationJson(const nodata::v1::Aggregation& a) {
  auto micros = [](const google::protobuf::Timestamp& ts) { return TimestampMicros(ts); };
  json j = {{"name", a.name()},
            {"input", a.input()},
            {"key", a.key()},
            {"window", a.window()},
            {"lateness", a.lateness()},
            {"from", a.from()},
            {"measures", json(std::vector<std::string>(a.measures().begin(), a.measures().end()))},
            {"module_sha256", a.module_sha256()},
            {"config", a.config()},
            {"checkpoint_interval", a.checkpoint_interval()},
            {"fuel_per_record", a.fuel_per_record()},
            {"state", AggregationStateName(a.state())},
            {"last_error", a.last_error()},
            {"lag", a.lag()},
            {"keys", a.keys()},
            {"open_windows", a.open_windows()},
            {"records_in", a.records_in()},
            {"late", a.late()},
            {"skipped", a.skipped()}};
  j["watermark"] = a.has_watermark() ? json(FormatTimeUs(micros(a.watermark()))) : json(nullptr);
  j["backfill"] = {{"done", a.backfill().done()},
                   {"total", a.backfill().total()},
                   {"rate", a.backfill().rate()},
                   {"eta_seconds", a.backfill().eta_seconds()}};
  j["tier"] = a.tier();
  j["created_at"] = FormatTimeUs(micros(a.created_at()));
  return j;
}

std::string FormatTimeUs(int64_t us) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::FromUnixMicros(us), absl::UTCTimeZone());
}

std::string JsonString(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

void AppendWindowMembers(std::string* out, int64_t start_us, int64_t end_us, bool final,
                         std::string_view values) {
  if (start_us != aggregate::kGlobalStartUs) {
    *out += StrCat("\"start\":\"", FormatTimeUs(start_us), "\",\"end\":\"", FormatTimeUs(end_us),
              "\",");
  }
  *out += StrCat("\"final\":", final ? "true" : "false", ",\"values\":",
            values.empty() ? std::string_view("{}") : values);
}

}  // namespace nodata::server
