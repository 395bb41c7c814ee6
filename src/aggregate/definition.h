// What an aggregation is: its input, how a record's key is found, its windows, its lateness,
// where it starts, and what it computes (built-in measures or a WebAssembly reducer). Parsing
// of the CLI's spellings (`--window tumbling:60s`, `--measure total=sum($.amount)`, `--key
// $.user`) and the definition's stored JSON form live here, with their error messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nodata::aggregate {

enum class WindowKind { kTumbling, kHopping, kSession, kGlobal };

struct WindowSpec {
  WindowKind kind = WindowKind::kGlobal;
  int64_t size_us = 0;  // tumbling, hopping: the window's length
  int64_t hop_us = 0;   // hopping: how far apart windows start (divides size_us)
  int64_t gap_us = 0;   // session: the inactivity that ends a session
};

// "tumbling:60s" | "hopping:5m/1m" (size/hop) | "session:30s" | "global". Durations: an
// integer with a unit of us, ms, s, m, h or d.
absl::StatusOr<WindowSpec> ParseWindow(std::string_view text);
std::string FormatWindow(const WindowSpec& w);
absl::StatusOr<int64_t> ParseDurationUs(std::string_view text);
std::string FormatDuration(int64_t us);

// A JSON path into an event's data: `$`, then `.name` or `['name']` or `[index]` steps.
struct JsonPath {
  std::string text;     // as written, e.g. "$.user.id"
  std::string pointer;  // the RFC 6901 JSON pointer it names, e.g. "/user/id"
};
absl::StatusOr<JsonPath> ParseJsonPath(std::string_view text);

// Where a record's aggregation key comes from: the event's key, or a JSON path into its data
// (a string's characters; any other value's JSON text). A record whose data has no value there
// is skipped and counted.
struct KeySpec {
  bool event_key = true;
  JsonPath path;  // when !event_key
};
absl::StatusOr<KeySpec> ParseKey(std::string_view text);  // "key" | "$.…"
std::string FormatKey(const KeySpec& k);

enum class MeasureFn { kCount, kSum, kMin, kMax, kAvg, kLast, kCountDistinct, kQuantile };
const char* MeasureFnName(MeasureFn fn);  // "count", "sum", …, "count_distinct", "quantile"

struct MeasureSpec {
  std::string name;  // the key in a window's `values`: [A-Za-z_][A-Za-z0-9_]{0,63}
  MeasureFn fn = MeasureFn::kCount;
  std::optional<JsonPath> path;  // count() has none; count($.f) counts records with a value
  double q = 0;                  // quantile's rank, in (0, 1)
};
// "n=count()", "total=sum($.amount)", "p99=quantile($.latency_ms, 0.99)", …
absl::StatusOr<MeasureSpec> ParseMeasure(std::string_view text);
std::string FormatMeasure(const MeasureSpec& m);  // parses back to the same spec

// Where a new aggregation (or a reset) starts reading its input.
struct StartSpec {
  enum class Kind { kEarliest, kLatest, kTime };
  Kind kind = Kind::kEarliest;
  int64_t time_us = 0;  // kTime: the first record at or after this ingest time
};
absl::StatusOr<StartSpec> ParseStart(std::string_view text);  // earliest|latest|time:RFC3339
std::string FormatStart(const StartSpec& s);

struct AggregationSpec {
  std::string name;   // [a-zA-Z0-9._-]{1,200}; the group is aggregation.<name>
  std::string input;  // the input topic
  KeySpec key;
  WindowSpec window;
  int64_t lateness_us = 0;
  StartSpec from;
  std::vector<MeasureSpec> measures;  // built-in; or a WebAssembly reducer:
  std::string module_sha256;          // of the reducer module (bytes in DATA/components/)
  std::string config;                 // what the reducer's `config` import hands out
  uint64_t fuel_per_record = 100'000'000;
  int64_t checkpoint_interval_us = 1'000'000;

  bool is_wasm() const { return !module_sha256.empty(); }
  std::string results_topic() const { return name + ".results"; }
  std::string late_topic() const { return name + ".late"; }
  std::string group() const { return "aggregation." + name; }
};

// INVALID_ARGUMENT naming what is wrong: the name, no measures and no reducer (or both), two
// measures of one name, lateness below zero, a lateness with a global window.
absl::Status Validate(const AggregationSpec& spec);

// The stored form (the catalog's `spec` column): JSON; fields added later default.
std::string ToJson(const AggregationSpec& spec);
absl::StatusOr<AggregationSpec> FromJson(std::string_view json);

}  // namespace nodata::aggregate
