#include "aggregate/definition.h"

#include <charconv>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/names.h"
#include "common/status.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"

namespace nodata::aggregate {
namespace {

constexpr size_t kMaxAggregationName = 200;  // `<name>.results` stays a valid topic name
constexpr int64_t kMaxDurationUs = int64_t{366} * 24 * 3600 * 1'000'000;  // a year, about

std::string_view Trim(std::string_view s) {
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool IsIdentStart(char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdent(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// RFC 6901: '~' and '/' in a reference token are escaped as ~0 and ~1.
void AppendPointerToken(std::string* out, std::string_view token) {
  out->push_back('/');
  for (char c : token) {
    if (c == '~') {
      out->append("~0");
    } else if (c == '/') {
      out->append("~1");
    } else {
      out->push_back(c);
    }
  }
}

struct Measure {
  const char* name;
  MeasureFn fn;
};
constexpr Measure kMeasures[] = {
    {"count", MeasureFn::kCount}, {"sum", MeasureFn::kSum},   {"min", MeasureFn::kMin},
    {"max", MeasureFn::kMax},     {"avg", MeasureFn::kAvg},   {"last", MeasureFn::kLast},
    {"count_distinct", MeasureFn::kCountDistinct},            {"quantile", MeasureFn::kQuantile},
};

}  // namespace

absl::StatusOr<int64_t> ParseDurationUs(std::string_view text) {
  std::string_view s = Trim(text);
  size_t digits = 0;
  while (digits < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  const std::string_view unit = s.substr(digits);
  int64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + digits, n);
  if (digits == 0 || ec != std::errc() || end != s.data() + digits) {
    return absl::InvalidArgumentError(StrCat(
        "a duration is a whole number with a unit (us, ms, s, m, h, d), e.g. 60s; got \"", text,
        "\""));
  }
  int64_t scale = 0;
  if (unit == "us") scale = 1;
  else if (unit == "ms") scale = 1000;
  else if (unit == "s") scale = 1'000'000;
  else if (unit == "m") scale = 60'000'000;
  else if (unit == "h") scale = 3'600'000'000;
  else if (unit == "d") scale = 86'400'000'000;
  if (scale == 0) {
    return absl::InvalidArgumentError(StrCat("a duration's unit is us, ms, s, m, h or d; got \"",
                                             text, "\""));
  }
  if (n > kMaxDurationUs / scale) {
    return absl::InvalidArgumentError(StrCat("duration \"", text, "\" is over a year"));
  }
  return n * scale;
}

std::string FormatDuration(int64_t us) {
  struct Unit {
    int64_t scale;
    const char* name;
  };
  constexpr Unit kUnits[] = {{86'400'000'000, "d"}, {3'600'000'000, "h"}, {60'000'000, "m"},
                             {1'000'000, "s"},      {1000, "ms"},          {1, "us"}};
  if (us == 0) return "0s";
  for (const Unit& u : kUnits) {
    if (us % u.scale == 0) return StrCat(us / u.scale, u.name);
  }
  return StrCat(us, "us");
}

absl::StatusOr<WindowSpec> ParseWindow(std::string_view text) {
  const std::string_view s = Trim(text);
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat(
        "bad window \"", text, "\": ", why,
        " (a window is tumbling:SIZE, hopping:SIZE/HOP, session:GAP or global)"));
  };
  WindowSpec w;
  if (s == "global") return w;
  const size_t colon = s.find(':');
  if (colon == std::string_view::npos) return bad("no kind:duration");
  const std::string_view kind = s.substr(0, colon);
  const std::string_view arg = s.substr(colon + 1);
  if (kind == "tumbling" || kind == "session") {
    auto d = ParseDurationUs(arg);
    if (!d.ok()) return bad(ToStd(d.status().message()));
    if (*d <= 0) return bad("the duration must be positive");
    w.kind = kind == "tumbling" ? WindowKind::kTumbling : WindowKind::kSession;
    (kind == "tumbling" ? w.size_us : w.gap_us) = *d;
    return w;
  }
  if (kind == "hopping") {
    const size_t slash = arg.find('/');
    if (slash == std::string_view::npos) return bad("hopping needs SIZE/HOP, e.g. 5m/1m");
    auto size = ParseDurationUs(arg.substr(0, slash));
    if (!size.ok()) return bad(ToStd(size.status().message()));
    auto hop = ParseDurationUs(arg.substr(slash + 1));
    if (!hop.ok()) return bad(ToStd(hop.status().message()));
    if (*size <= 0 || *hop <= 0) return bad("the durations must be positive");
    if (*hop > *size) return bad("the hop is longer than the window");
    if (*size % *hop != 0) return bad("the hop must divide the window's size");
    if (*size / *hop > 1000) return bad("a record would fall in more than 1000 windows");
    w.kind = WindowKind::kHopping;
    w.size_us = *size;
    w.hop_us = *hop;
    return w;
  }
  return bad(StrCat("unknown kind \"", kind, "\""));
}

std::string FormatWindow(const WindowSpec& w) {
  switch (w.kind) {
    case WindowKind::kTumbling:
      return "tumbling:" + FormatDuration(w.size_us);
    case WindowKind::kHopping:
      return "hopping:" + FormatDuration(w.size_us) + "/" + FormatDuration(w.hop_us);
    case WindowKind::kSession:
      return "session:" + FormatDuration(w.gap_us);
    case WindowKind::kGlobal:
      break;
  }
  return "global";
}

absl::StatusOr<JsonPath> ParseJsonPath(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("bad JSON path \"", text, "\": ", why,
               " (a path is $ then .name, ['name'] or [index] steps, e.g. $.user.id)"));
  };
  JsonPath p;
  p.text = std::string(text);
  std::string_view s = text;
  if (s.empty() || s[0] != '$') return bad("it must start with $");
  s.remove_prefix(1);
  while (!s.empty()) {
    if (s[0] == '.') {
      s.remove_prefix(1);
      size_t n = 0;
      while (n < s.size() && s[n] != '.' && s[n] != '[') ++n;
      if (n == 0) return bad("an empty name after '.'");
      const std::string_view name = s.substr(0, n);
      for (char c : name) {
        if (!IsIdent(c) && c != '-') return bad(StrCat("'", std::string(1, c), "' in a name; quote it as ['…']"));
      }
      AppendPointerToken(&p.pointer, name);
      s.remove_prefix(n);
    } else if (s[0] == '[') {
      s.remove_prefix(1);
      if (!s.empty() && (s[0] == '\'' || s[0] == '"')) {
        const char quote = s[0];
        const size_t close = s.find(quote, 1);
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ']') {
          return bad("an unterminated quoted name");
        }
        AppendPointerToken(&p.pointer, s.substr(1, close - 1));
        s.remove_prefix(close + 2);
      } else {
        size_t n = 0;
        while (n < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[n]))) ++n;
        if (n == 0 || n >= s.size() || s[n] != ']') return bad("an index is [digits]");
        if (n > 1 && s[0] == '0') return bad("an index has no leading zeros");
        AppendPointerToken(&p.pointer, s.substr(0, n));
        s.remove_prefix(n + 1);
      }
    } else {
      return bad(StrCat("unexpected '", std::string(1, s[0]), "'"));
    }
  }
  if (p.pointer.empty()) return bad("it names the whole document, not a field");
  return p;
}

absl::StatusOr<KeySpec> ParseKey(std::string_view text) {
  KeySpec k;
  if (text == "key") return k;
  if (text.empty() || text[0] != '$') {
    return absl::InvalidArgumentError(StrCat(
        "a key is `key` (the event's key) or a JSON path into its data such as $.user; got \"",
        text, "\""));
  }
  ASSIGN_OR_RETURN(k.path, ParseJsonPath(text));
  k.event_key = false;
  return k;
}

std::string FormatKey(const KeySpec& k) { return k.event_key ? "key" : k.path.text; }

const char* MeasureFnName(MeasureFn fn) {
  for (const Measure& m : kMeasures) {
    if (m.fn == fn) return m.name;
  }
  return "?";
}

absl::StatusOr<MeasureSpec> ParseMeasure(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat(
        "bad measure \"", text, "\": ", why,
        " (a measure is NAME=FN(ARGS): count(), count($.f), sum($.f), min($.f), max($.f), "
        "avg($.f), last($.f), count_distinct($.f), quantile($.f, Q))"));
  };
  MeasureSpec m;
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos) return bad("no NAME=");
  const std::string_view name = Trim(text.substr(0, eq));
  if (name.empty() || name.size() > 64 || !IsIdentStart(name[0])) {
    return bad("the name is [A-Za-z_][A-Za-z0-9_]{0,63}");
  }
  for (char c : name) {
    if (!IsIdent(c)) return bad("the name is [A-Za-z_][A-Za-z0-9_]{0,63}");
  }
  m.name = std::string(name);
  std::string_view call = Trim(text.substr(eq + 1));
  const size_t open = call.find('(');
  if (open == std::string_view::npos || call.back() != ')') return bad("no FN(…)");
  const std::string_view fn = Trim(call.substr(0, open));
  const std::string_view args = Trim(call.substr(open + 1, call.size() - open - 2));
  bool known = false;
  for (const Measure& k : kMeasures) {
    if (fn == k.name) {
      m.fn = k.fn;
      known = true;
    }
  }
  if (!known) return bad(StrCat("unknown function \"", fn, "\""));
  std::vector<std::string_view> parts;
  if (!args.empty()) {
    // A quoted path step may hold a comma: split at the last comma for quantile only.
    if (m.fn == MeasureFn::kQuantile) {
      const size_t comma = args.rfind(',');
      if (comma == std::string_view::npos) return bad("quantile takes a path and a rank");
      parts = {Trim(args.substr(0, comma)), Trim(args.substr(comma + 1))};
    } else {
      parts = {args};
    }
  }
  if (m.fn == MeasureFn::kCount) {
    if (parts.size() > 1) return bad("count takes no argument or a path");
  } else if (m.fn == MeasureFn::kQuantile) {
    if (parts.size() != 2) return bad("quantile takes a path and a rank");
    double q = 0;
    if (!absl::SimpleAtod(absl::string_view(parts[1].data(), parts[1].size()), &q) || !(q > 0 && q < 1)) {
      return bad("the rank is a number between 0 and 1, e.g. 0.99");
    }
    m.q = q;
  } else if (parts.size() != 1) {
    return bad(StrCat(MeasureFnName(m.fn), " takes one path"));
  }
  if (!parts.empty()) {
    auto path = ParseJsonPath(parts[0]);
    if (!path.ok()) return bad(ToStd(path.status().message()));
    m.path = *std::move(path);
  }
  return m;
}

std::string FormatMeasure(const MeasureSpec& m) {
  std::string out = StrCat(m.name, "=", MeasureFnName(m.fn), "(");
  if (m.path) out += m.path->text;
  if (m.fn == MeasureFn::kQuantile) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, m.q);
    out += ", ";
    out.append(buf, r.ptr);
  }
  return out + ")";
}

absl::StatusOr<StartSpec> ParseStart(std::string_view text) {
  StartSpec s;
  if (text == "earliest") return s;
  if (text == "latest") {
    s.kind = StartSpec::Kind::kLatest;
    return s;
  }
  if (text.substr(0, 5) == "time:") {
    absl::Time t;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, std::string(text.substr(5)), &t, &error)) {
      return absl::InvalidArgumentError(
          StrCat("bad time in \"", text, "\": ", error, " (RFC 3339, e.g. 2026-01-02T15:04:05Z)"));
    }
    s.kind = StartSpec::Kind::kTime;
    s.time_us = absl::ToUnixMicros(t);
    return s;
  }
  return absl::InvalidArgumentError(
      StrCat("a start is earliest, latest or time:RFC3339; got \"", text, "\""));
}

std::string FormatStart(const StartSpec& s) {
  switch (s.kind) {
    case StartSpec::Kind::kEarliest:
      return "earliest";
    case StartSpec::Kind::kLatest:
      return "latest";
    case StartSpec::Kind::kTime:
      break;
  }
  return "time:" + absl::FormatTime(absl::RFC3339_full, absl::FromUnixMicros(s.time_us),
                                    absl::UTCTimeZone());
}

absl::Status Validate(const AggregationSpec& spec) {
  RETURN_IF_ERROR(ValidateNewName("aggregation", spec.name));
  if (spec.name.size() > kMaxAggregationName) {
    return absl::InvalidArgumentError(StrCat("an aggregation name is at most ",
                                             kMaxAggregationName, " characters"));
  }
  if (spec.input.empty()) return absl::InvalidArgumentError("an aggregation needs an input topic");
  RETURN_IF_ERROR(ValidateTopicName(spec.input));
  if (spec.input == spec.results_topic() || spec.input == spec.late_topic()) {
    return absl::InvalidArgumentError("an aggregation cannot read its own results");
  }
  if (spec.measures.empty() == !spec.is_wasm()) {
    return absl::InvalidArgumentError(
        "an aggregation computes either built-in measures (--measure) or a WebAssembly reducer "
        "(--wasm), one of the two");
  }
  std::set<std::string_view> names;
  for (const MeasureSpec& m : spec.measures) {
    if (!names.insert(m.name).second) {
      return absl::InvalidArgumentError(StrCat("two measures are named \"", m.name, "\""));
    }
  }
  if (spec.lateness_us < 0) return absl::InvalidArgumentError("the lateness cannot be negative");
  if (spec.window.kind == WindowKind::kGlobal && spec.lateness_us != 0) {
    return absl::InvalidArgumentError("a global window never closes: it takes no lateness");
  }
  if (spec.checkpoint_interval_us < 1000 || spec.checkpoint_interval_us > 3'600'000'000) {
    return absl::InvalidArgumentError("the checkpoint interval is between 1ms and 1h");
  }
  if (spec.fuel_per_record == 0) return absl::InvalidArgumentError("the fuel per record is positive");
  return absl::OkStatus();
}

std::string ToJson(const AggregationSpec& spec) {
  nlohmann::json j;
  j["name"] = spec.name;
  j["input"] = spec.input;
  j["key"] = FormatKey(spec.key);
  j["window"] = FormatWindow(spec.window);
  j["lateness_us"] = spec.lateness_us;
  j["from"] = FormatStart(spec.from);
  auto& measures = j["measures"] = nlohmann::json::array();
  for (const MeasureSpec& m : spec.measures) measures.push_back(FormatMeasure(m));
  j["module_sha256"] = spec.module_sha256;
  j["config"] = spec.config;
  j["fuel_per_record"] = spec.fuel_per_record;
  j["checkpoint_interval_us"] = spec.checkpoint_interval_us;
  return j.dump();
}

absl::StatusOr<AggregationSpec> FromJson(std::string_view json) {
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError("an aggregation's stored definition is not JSON");
  AggregationSpec spec;
  try {
    spec.name = j.at("name").get<std::string>();
    spec.input = j.at("input").get<std::string>();
    ASSIGN_OR_RETURN(spec.key, ParseKey(j.at("key").get<std::string>()));
    ASSIGN_OR_RETURN(spec.window, ParseWindow(j.at("window").get<std::string>()));
    spec.lateness_us = j.value("lateness_us", int64_t{0});
    ASSIGN_OR_RETURN(spec.from, ParseStart(j.value("from", std::string("earliest"))));
    for (const auto& m : j.value("measures", nlohmann::json::array())) {
      ASSIGN_OR_RETURN(MeasureSpec parsed, ParseMeasure(m.get<std::string>()));
      spec.measures.push_back(std::move(parsed));
    }
    spec.module_sha256 = j.value("module_sha256", std::string());
    spec.config = j.value("config", std::string());
    spec.fuel_per_record = j.value("fuel_per_record", spec.fuel_per_record);
    spec.checkpoint_interval_us = j.value("checkpoint_interval_us", spec.checkpoint_interval_us);
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(StrCat("an aggregation's stored definition is damaged: ", e.what()));
  }
  return spec;
}

}  // namespace nodata::aggregate
