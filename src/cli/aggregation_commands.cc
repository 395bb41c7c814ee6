// `nodata aggregation ...`: define, inspect, reset and remove the server's aggregations
// (AggregationService), and read them (QueryService): one key's windows, one window's keys, and
// a live watch, each printed as JSON lines of {"key", "start", "end", "final", "values"}.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli.h"
#include "cli/client_util.h"
#include "cli/command_set.h"
#include "cli/record_json.h"
#include "cli/wasm_commands.h"
#include "nlohmann/json.hpp"
#include "nodata/v1/nodata.grpc.pb.h"
#include "server/aggregation_api.h"

namespace nodata::cli {
namespace {

using json = nlohmann::ordered_json;

struct AggregationAddOptions {
  std::string name;
  std::string input;
  std::string key;
  std::string window;
  std::string lateness;
  std::string from;
  std::vector<std::string> measures;
  std::string wasm;
  std::string config;  // STRING, or @FILE
  std::string checkpoint_interval;
  uint64_t fuel_per_record = 0;
};

struct QueryOptions {
  std::string name;
  std::string key;
  std::string from;
  std::string to;
  uint32_t limit = 0;
};

struct WindowOptions {
  std::string name;
  std::string start = "latest";
  std::string order_by;
  bool desc = false;
  uint32_t limit = 0;
  std::optional<std::string> after;
};

struct WatchOptions {
  std::string name;
  std::optional<std::string> key;
};

// Adding loads (and compiles) a reducer module on the server: more than a metadata call.
constexpr int kModuleCallSeconds = 120;

void PrintJson(const json& j) {
  std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
}

// "1.2M", "35k", "812": counts for people.
std::string Count(double n) {
  char buf[32];
  if (n >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.1fG", n / 1e9);
  } else if (n >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.1fM", n / 1e6);
  } else if (n >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.0fk", n / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", n);
  }
  return buf;
}

// "4s", "3m12s", "2h05m".
std::string Eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-";
  const long s = std::lround(seconds);
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%lds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  }
  return buf;
}

// "1.2M/10.0M records (12.0%), 850k/s, ETA 10s", or "done" once running.
std::string ProgressText(const nodata::v1::Aggregation& a) {
  const auto& b = a.backfill();
  const double pct = b.total() == 0 ? 100.0 : 100.0 * static_cast<double>(b.done()) / b.total();
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s/%s records (%.1f%%), %s/s, ETA %s",
                Count(static_cast<double>(b.done())).c_str(),
                Count(static_cast<double>(b.total())).c_str(), pct, Count(b.rate()).c_str(),
                a.state() == nodata::v1::AGGREGATION_STATE_BACKFILLING ? Eta(b.eta_seconds()).c_str()
                                                                       : "-");
  return buf;
}

std::string ProgressBar(const nodata::v1::Aggregation& a, int width) {
  const auto& b = a.backfill();
  const double part = b.total() == 0 ? 1.0 : static_cast<double>(b.done()) / b.total();
  const int filled = static_cast<int>(std::min(1.0, part) * width);
  return "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
}

void PrintTable(const std::vector<const nodata::v1::Aggregation*>& aggregations) {
  std::printf("%-24s %-11s %-20s %-16s %-16s %10s %10s %10s %12s\n", "AGGREGATION", "STATE",
              "INPUT", "KEY", "WINDOW", "LAG", "KEYS", "OPEN", "RECORDS IN");
  for (const auto* a : aggregations) {
    std::printf("%-24s %-11s %-20s %-16s %-16s %10lu %10lu %10lu %12lu\n", a->name().c_str(),
                server::AggregationStateName(a->state()).c_str(), a->input().c_str(),
                a->key().c_str(), a->window().c_str(), static_cast<unsigned long>(a->lag()),
                static_cast<unsigned long>(a->keys()),
                static_cast<unsigned long>(a->open_windows()),
                static_cast<unsigned long>(a->records_in()));
  }
}

void PrintDetails(const nodata::v1::Aggregation& a) {
  PrintTable({&a});
  std::printf("\nkey: %s, window: %s, lateness: %s, from: %s\n", a.key().c_str(),
              a.window().c_str(), a.lateness().c_str(), a.from().c_str());
  if (a.module_sha256().empty()) {
    std::string measures;
    for (const std::string& m : a.measures()) measures += (measures.empty() ? "" : " ") + m;
    std::printf("measures: %s\n", measures.c_str());
  } else {
    std::printf("reducer: module sha256 %s, tier %s, fuel per record %lu, config %s\n",
                a.module_sha256().c_str(), a.tier().empty() ? "-" : a.tier().c_str(),
                static_cast<unsigned long>(a.fuel_per_record()),
                HumanBytes(a.config().size()).c_str());
  }
  std::printf("results: %s.results, late records: %s.late (%lu), skipped: %lu\n",
              a.name().c_str(), a.name().c_str(), static_cast<unsigned long>(a.late()),
              static_cast<unsigned long>(a.skipped()));
  std::printf("watermark: %s, checkpoint interval: %s, created: %s\n",
              a.has_watermark() ? Rfc3339(Micros(a.watermark())).c_str() : "-",
              a.checkpoint_interval().c_str(), Rfc3339(Micros(a.created_at())).c_str());
  std::printf("backfill: %s\n", ProgressText(a).c_str());
  if (!a.last_error().empty()) std::printf("last error: %s\n", a.last_error().c_str());
}

// A window as a JSON line: {"key", "start", "end", "final", "values"} (no start and end for
// the global window), the values embedded as the object they are.
void PrintWindowLine(const std::string& key, const nodata::v1::AggregationWindow& w) {
  std::string line = "{\"key\":" + server::JsonString(key) + ",";
  server::AppendWindowMembers(&line, w.has_start() ? Micros(w.start()) : INT64_MIN,
                              Micros(w.end()), w.final(), w.values());
  std::cout << line << "}\n";
}

// `time:`-less RFC 3339 into `out`; an error message otherwise.
std::string ParseTime(const std::string& flag, const std::string& text,
                      google::protobuf::Timestamp* out) {
  int64_t us = 0;
  if (!server::ParseTimeUs(text, &us)) {
    return flag + " wants an RFC 3339 time such as 2026-11-26T10:00:00Z, got \"" + text + "\"";
  }
  out->set_seconds(us / 1000000 - (us % 1000000 < 0 ? 1 : 0));
  out->set_nanos(static_cast<int32_t>(((us % 1000000) + 1000000) % 1000000) * 1000);
  return "";
}

int AggregationAdd(const ClientOptions& c, const AggregationAddOptions& o) {
  nodata::v1::AddAggregationRequest req;
  req.set_name(o.name);
  req.set_input(o.input);
  req.set_key(o.key);
  req.set_window(o.window);
  req.set_lateness(o.lateness);
  req.set_from(o.from);
  for (const std::string& m : o.measures) req.add_measures(m);
  if (!o.wasm.empty()) {
    std::vector<uint8_t> bytes;
    if (std::string error = ReadModule(o.wasm, &bytes); !error.empty()) {
      return Fail("--wasm: " + error);
    }
    req.set_wasm(std::string(bytes.begin(), bytes.end()));
  }
  if (std::string error = ReadConfigFlag(o.config, req.mutable_config()); !error.empty()) {
    return Fail("--config: " + error);
  }
  req.set_checkpoint_interval(o.checkpoint_interval);
  req.set_fuel_per_record(o.fuel_per_record);
  auto stub = nodata::v1::AggregationService::NewStub(Connect(c));
  nodata::v1::AddAggregationResponse resp;
  grpc::Status s = stub->AddAggregation(Context(kModuleCallSeconds).get(), req, &resp);
  if (!s.ok()) return Fail(s);
  const nodata::v1::Aggregation& a = resp.aggregation();
  if (c.json) {
    PrintJson(server::AggregationJson(a));
  } else {
    std::printf("added aggregation %s: %s by %s, %s (%s)\n", a.name().c_str(), a.input().c_str(),
                a.key().c_str(), a.window().c_str(),
                server::AggregationStateName(a.state()).c_str());
  }
  return kExitOk;
}

int AggregationList(const ClientOptions& c) {
  auto stub = nodata::v1::AggregationService::NewStub(Connect(c));
  nodata::v1::ListAggregationsResponse resp;
  grpc::Status s = stub->ListAggregations(Context().get(), {}, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    json out = json::array();
    for (const auto& a : resp.aggregations()) out.push_back(server::AggregationJson(a));
    PrintJson(out);
  } else {
    std::vector<const nodata::v1::Aggregation*> all;
    for (const auto& a : resp.aggregations()) all.push_back(&a);
    PrintTable(all);
  }
  return kExitOk;
}

grpc::Status GetOne(nodata::v1::AggregationService::Stub& stub, const std::string& name,
                    nodata::v1::Aggregation* out) {
  nodata::v1::GetAggregationRequest req;
  req.set_name(name);
  nodata::v1::GetAggregationResponse resp;
  grpc::Status s = stub.GetAggregation(Context().get(), req, &resp);
  if (s.ok()) *out = std::move(*resp.mutable_aggregation());
  return s;
}

// With `watch`: until the backfill is done, a progress bar redrawn in place on a terminal, or a
// progress line a second elsewhere; then the details.
int AggregationGet(const ClientOptions& c, const std::string& name, bool watch) {
  auto stub = nodata::v1::AggregationService::NewStub(Connect(c));
  nodata::v1::Aggregation a;
  grpc::Status s = GetOne(*stub, name, &a);
  if (!s.ok()) return Fail(s);
  if (watch) {
    const bool terminal = isatty(STDOUT_FILENO) != 0;
    while (a.state() == nodata::v1::AGGREGATION_STATE_BACKFILLING) {
      if (terminal) {
        std::printf("\r%s %s\033[K", ProgressBar(a, 30).c_str(), ProgressText(a).c_str());
      } else {
        std::printf("backfill: %s\n", ProgressText(a).c_str());
      }
      std::fflush(stdout);
      std::this_thread::sleep_for(std::chrono::milliseconds(terminal ? 250 : 1000));
      s = GetOne(*stub, name, &a);
      if (!s.ok()) {
        if (terminal) std::printf("\n");
        return Fail(s);
      }
    }
    if (terminal) std::printf("\r%s %s\033[K\n", ProgressBar(a, 30).c_str(), ProgressText(a).c_str());
  }
  if (c.json) {
    PrintJson(server::AggregationJson(a));
  } else {
    PrintDetails(a);
  }
  return kExitOk;
}

int AggregationRemove(const ClientOptions& c, const std::string& name) {
  auto stub = nodata::v1::AggregationService::NewStub(Connect(c));
  nodata::v1::RemoveAggregationRequest req;
  req.set_name(name);
  nodata::v1::RemoveAggregationResponse resp;
  grpc::Status s = stub->RemoveAggregation(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    PrintJson({{"removed", name}});
  } else {
    std::printf("removed aggregation %s\n", name.c_str());
  }
  return kExitOk;
}

int AggregationReset(const ClientOptions& c, const std::string& name, const std::string& to) {
  auto stub = nodata::v1::AggregationService::NewStub(Connect(c));
  nodata::v1::ResetAggregationRequest req;
  req.set_name(name);
  req.set_to(to);
  nodata::v1::ResetAggregationResponse resp;
  grpc::Status s = stub->ResetAggregation(Context(kModuleCallSeconds).get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json) {
    PrintJson(server::AggregationJson(resp.aggregation()));
  } else {
    std::printf("reset aggregation %s to %s: recomputing, %s\n", name.c_str(), to.c_str(),
                ProgressText(resp.aggregation()).c_str());
  }
  return kExitOk;
}

int AggregationQuery(const ClientOptions& c, const QueryOptions& o) {
  nodata::v1::GetRequest req;
  req.set_name(o.name);
  req.set_key(o.key);
  if (!o.from.empty()) {
    if (std::string error = ParseTime("--from", o.from, req.mutable_from()); !error.empty()) {
      return Fail(error);
    }
  }
  if (!o.to.empty()) {
    if (std::string error = ParseTime("--to", o.to, req.mutable_to()); !error.empty()) {
      return Fail(error);
    }
  }
  req.set_limit(o.limit);
  auto stub = nodata::v1::QueryService::NewStub(Connect(c));
  nodata::v1::GetResponse resp;
  grpc::Status s = stub->Get(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  for (const auto& w : resp.windows()) PrintWindowLine(resp.key(), w);
  std::cout.flush();
  return kExitOk;
}

int AggregationWindow(const ClientOptions& c, const WindowOptions& o) {
  nodata::v1::ListWindowRequest req;
  req.set_name(o.name);
  if (o.start != "latest") {
    if (std::string error = ParseTime("START", o.start, req.mutable_start()); !error.empty()) {
      return Fail(error + " (or latest)");
    }
  }
  req.set_order_by(o.order_by);
  req.set_desc(o.desc);
  req.set_limit(o.limit);
  if (o.after) req.set_after(*o.after);
  auto stub = nodata::v1::QueryService::NewStub(Connect(c));
  nodata::v1::ListWindowResponse resp;
  grpc::Status s = stub->ListWindow(Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  nodata::v1::AggregationWindow w;
  if (resp.has_start()) {
    *w.mutable_start() = resp.start();
    *w.mutable_end() = resp.end();
  }
  for (const auto& k : resp.keys()) {
    w.set_final(k.final());
    w.set_values(k.values());
    PrintWindowLine(k.key(), w);
  }
  std::cout.flush();
  if (resp.has_next()) std::cerr << "more keys: --after " << resp.next() << "\n";
  return kExitOk;
}

// Prints updates until the stream ends: on Ctrl-C, or when the aggregation is removed or the
// server stops.
int AggregationWatch(const ClientOptions& c, const WatchOptions& o) {
  nodata::v1::WatchRequest req;
  req.set_name(o.name);
  if (o.key) req.set_key(*o.key);
  auto stub = nodata::v1::QueryService::NewStub(Connect(c));
  grpc::ClientContext ctx;
  auto reader = stub->Watch(&ctx, req);
  nodata::v1::WatchResponse resp;
  while (reader->Read(&resp)) {
    if (resp.dropped() > 0) {
      std::cerr << "nodata: " << resp.dropped() << " updates dropped (the watch fell behind)\n";
    }
    for (const auto& u : resp.updates()) PrintWindowLine(u.key(), u.window());
    std::cout.flush();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return Fail(s);
  return kExitOk;
}

}  // namespace

void AddAggregationCommands(CommandSet& set) {
  CLI::App* aggregation = set.app().add_subcommand(
      "aggregation", "aggregations: topics folded into keyed, windowed state the server serves");
  aggregation->require_subcommand(1);
  const ClientOptions& co = set.client();
  std::string& name = set.Keep<std::string>();

  AggregationAddOptions& a = set.Keep<AggregationAddOptions>();
  CLI::App* add = aggregation->add_subcommand(
      "add", "define an aggregation and start it: its history first (backfill), then live");
  add->add_option("name", a.name, "aggregation name ([a-zA-Z0-9._-], at most 200)")->required();
  add->add_option("--input", a.input, "the input topic")->required();
  add->add_option("--key", a.key, "key (the event's key) | $.json.path (into the event's data)")
      ->required();
  add->add_option("--window", a.window, "tumbling:60s | hopping:5m/1m | session:30s | global")
      ->required();
  add->add_option("--lateness", a.lateness,
                  "how late (in event time) a record may come and still count, e.g. 5s");
  add->add_option("--from", a.from, "earliest (default) | latest | time:RFC3339");
  OnePerFlag(add->add_option("--measure", a.measures,
                             "NAME=FN(...): count(), sum($.f), min, max, avg, last, "
                             "count_distinct($.f), quantile($.f, 0.99); repeatable"));
  add->add_option("--wasm", a.wasm, "a WebAssembly reducer (.wasm, or .wat text)");
  add->add_option("--config", a.config, "the reducer's configuration: STRING or @FILE");
  add->add_option("--checkpoint-interval", a.checkpoint_interval,
                  "how often state and input offsets are checkpointed (default 1s)");
  add->add_option("--fuel-per-record", a.fuel_per_record,
                  "the reducer's fuel budget per input record (default 100000000)");
  set.AddClientFlags(add);
  set.OnParsed(add, [&co, &a] {
    if (!a.wasm.empty() && !CheckRegularFile(a.wasm)) return kExitFailed;
    if (!a.config.empty() && a.config[0] == '@' && !CheckRegularFile(a.config.substr(1))) {
      return kExitFailed;
    }
    return AggregationAdd(co, a);
  });

  CLI::App* list = aggregation->add_subcommand("list", "list the server's aggregations");
  set.AddClientFlags(list);
  set.OnParsed(list, [&co] { return AggregationList(co); });

  bool& watch = set.Keep<bool>();
  CLI::App* get = aggregation->add_subcommand(
      "get", "show an aggregation: definition, state, lag, keys, windows, backfill progress");
  get->add_option("name", name, "aggregation name")->required();
  get->add_flag("-w,--watch", watch, "show the backfill's progress until it is done");
  set.AddClientFlags(get);
  set.OnParsed(get, [&co, &name, &watch] { return AggregationGet(co, name, watch); });

  CLI::App* remove = aggregation->add_subcommand(
      "remove", "stop an aggregation and delete its state (its topics stay)");
  remove->add_option("name", name, "aggregation name")->required();
  set.AddClientFlags(remove);
  set.OnParsed(remove, [&co, &name] { return AggregationRemove(co, name); });

  std::string& reset_to = set.Keep<std::string>();
  CLI::App* reset = aggregation->add_subcommand(
      "reset", "drop an aggregation's state and recompute it from the input's history");
  reset->add_option("name", name, "aggregation name")->required();
  reset->add_option("--to", reset_to, "earliest | latest | time:RFC3339")->required();
  set.AddClientFlags(reset);
  set.OnParsed(reset, [&co, &name, &reset_to] { return AggregationReset(co, name, reset_to); });

  QueryOptions& q = set.Keep<QueryOptions>();
  CLI::App* query = aggregation->add_subcommand(
      "query", "print one key's windows as JSON lines, ascending by start");
  query->add_option("name", q.name, "aggregation name")->required();
  query->add_option("--key", q.key, "the key")->required();
  query->add_option("--from", q.from, "windows starting at or after this RFC 3339 time");
  query->add_option("--to", q.to, "windows starting before this RFC 3339 time");
  query->add_option("--limit", q.limit, "windows at most (default 1000)");
  set.AddClientFlags(query);
  set.OnParsed(query, [&co, &q] { return AggregationQuery(co, q); });

  WindowOptions& w = set.Keep<WindowOptions>();
  CLI::App* window = aggregation->add_subcommand(
      "window", "print one window's keys as JSON lines, sorted (top N by a measure)");
  window->add_option("name", w.name, "aggregation name")->required();
  window->add_option("start", w.start, "the window's start (RFC 3339) | latest")
      ->capture_default_str();
  window->add_option("--order-by", w.order_by, "a measure to sort by (default: by key)");
  window->add_flag("--desc", w.desc, "largest first");
  window->add_option("--limit", w.limit, "keys at most (default 100)");
  window->add_option("--after", w.after, "the next page: what the previous one printed");
  set.AddClientFlags(window);
  set.OnParsed(window, [&co, &w] { return AggregationWindow(co, w); });

  WatchOptions& wo = set.Keep<WatchOptions>();
  CLI::App* watch_cmd = aggregation->add_subcommand(
      "watch", "print updates as the aggregation folds records, as JSON lines, until Ctrl-C");
  watch_cmd->add_option("name", wo.name, "aggregation name")->required();
  watch_cmd->add_option("--key", wo.key, "only this key's updates");
  set.AddClientFlags(watch_cmd);
  set.OnParsed(watch_cmd, [&co, &wo] { return AggregationWatch(co, wo); });
}

}  // namespace nodata::cli
