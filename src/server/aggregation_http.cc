#include "server/aggregation_http.h"

#include <atomic>
#include <civetweb.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "aggregate/manager.h"
#include "aggregate/wasm_reducer.h"
#include "common/strings.h"
#include "server/aggregation_api.h"
#include "server/http_query.h"
#include "server/http_server.h"

namespace nodata::server {
namespace {

constexpr std::string_view kPrefix = "/v1/aggregations";
// A watch waits this long for updates at a time: how soon it sees the server stopping.
constexpr int kWatchPollMs = 1000;
// An idle watch sends a comment this often, so that proxies keep the stream open and a client
// that went away is noticed.
constexpr auto kKeepalive = std::chrono::seconds(15);
// An open watch holds one of the HTTP server's 32 threads: at most half of them watch, so that
// reads are always answered. gRPC's QueryService.Watch has no such bound of its own.
constexpr int kMaxHttpWatches = 16;
std::atomic<int> http_watches{0};

int HttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

int Reply(mg_connection* conn, int code, const std::string& body) {
  WriteResponse(conn, code, "application/json", body, "Cache-Control: no-store\r\n");
  return code;
}

// {"error": {"code": 404, "status": "NOT_FOUND", "message": "..."}} with the matching status.
int ReplyError(mg_connection* conn, const absl::Status& s) {
  const int code = HttpStatus(s.code());
  std::string status(ToStd(absl::StatusCodeToString(s.code())));
  return Reply(conn, code,
               StrCat("{\"error\":{\"code\":", code, ",\"status\":", JsonString(status),
                      ",\"message\":", JsonString(ToStd(s.message())), "}}\n"));
}

int ReplyError(mg_connection* conn, int code, std::string_view status, std::string_view message) {
  return Reply(conn, code,
               StrCat("{\"error\":{\"code\":", code, ",\"status\":", JsonString(status),
                      ",\"message\":", JsonString(message), "}}\n"));
}


int ServeList(mg_connection* conn, aggregate::Manager& manager, const MayQuery& may_query) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const aggregate::AggregationInfo& info : manager.List()) {
    if (!may_query(info.spec.name).ok()) continue;  // a caller sees what it may query
    nodata::v1::Aggregation a;
    FillAggregation(info, &a);
    out.push_back(AggregationJson(a));
  }
  nlohmann::ordered_json body = {{"aggregations", std::move(out)}};
  return Reply(conn, 200,
               body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
}

int ServeGet(mg_connection* conn, aggregate::Manager& manager, const std::string& name) {
  absl::StatusOr<aggregate::AggregationInfo> info = manager.Get(name);
  if (!info.ok()) return ReplyError(conn, info.status());
  nodata::v1::Aggregation a;
  FillAggregation(*info, &a);
  return Reply(conn, 200,
               AggregationJson(a).dump(-1, ' ', false,
                                       nlohmann::ordered_json::error_handler_t::replace) +
                   "\n");
}

int ServeKey(mg_connection* conn, aggregate::Manager& manager, const std::string& name,
             std::string key, const Params& params) {
  aggregate::KeyQuery query;
  query.key = std::move(key);
  absl::StatusOr<std::optional<int64_t>> from = params.Time("from");
  if (!from.ok()) return ReplyError(conn, from.status());
  absl::StatusOr<std::optional<int64_t>> to = params.Time("to");
  if (!to.ok()) return ReplyError(conn, to.status());
  absl::StatusOr<size_t> limit = params.Limit(query.limit);
  if (!limit.ok()) return ReplyError(conn, limit.status());
  query.from_us = *from;
  query.to_us = *to;
  query.limit = *limit;
  absl::StatusOr<aggregate::KeyResult> result = manager.GetKey(name, query);
  if (!result.ok()) return ReplyError(conn, result.status());
  std::string body = StrCat("{\"key\":", JsonString(result->key), ",\"windows\":[");
  for (size_t i = 0; i < result->windows.size(); ++i) {
    const aggregate::WindowValues& w = result->windows[i];
    body += i == 0 ? "{" : ",{";
    AppendWindowMembers(&body, w.start_us, w.end_us, w.final, w.values);
    body += "}";
  }
  body += "]}\n";
  return Reply(conn, 200, body);
}

int ServeWindow(mg_connection* conn, aggregate::Manager& manager, const std::string& name,
                const std::string& start, const Params& params) {
  aggregate::WindowQuery query;
  if (start != "latest") {
    int64_t us = 0;
    if (!ParseTimeUs(start, &us)) {
      return ReplyError(conn, absl::InvalidArgumentError(StrCat(
                                  "window \"", start,
                                  "\": not \"latest\" or an RFC 3339 time such as "
                                  "2026-11-26T10:00:00Z")));
    }
    query.start_us = us;
  }
  if (const std::string* order_by = params.Get("order_by")) query.order_by = *order_by;
  absl::StatusOr<bool> desc = params.Bool("desc");
  if (!desc.ok()) return ReplyError(conn, desc.status());
  query.desc = *desc;
  absl::StatusOr<size_t> limit = params.Limit(query.limit);
  if (!limit.ok()) return ReplyError(conn, limit.status());
  query.limit = *limit;
  if (const std::string* after = params.Get("after")) query.after = *after;
  absl::StatusOr<aggregate::WindowResult> result = manager.ListWindow(name, query);
  if (!result.ok()) return ReplyError(conn, result.status());
  std::string body = "{";
  if (result->start_us != aggregate::kGlobalStartUs) {
    body += StrCat("\"start\":\"", FormatTimeUs(result->start_us), "\",\"end\":\"",
                   FormatTimeUs(result->end_us), "\",");
  }
  body += "\"keys\":[";
  for (size_t i = 0; i < result->keys.size(); ++i) {
    const aggregate::WindowResult::Entry& e = result->keys[i];
    body += StrCat(i == 0 ? "{" : ",{", "\"key\":", JsonString(e.key),
                   ",\"final\":", e.final ? "true" : "false", ",\"values\":",
                   e.values.empty() ? std::string_view("{}") : std::string_view(e.values), "}");
  }
  body += StrCat("],\"next\":", result->next ? JsonString(*result->next) : "null", "}\n");
  return Reply(conn, 200, body);
}

bool Send(mg_connection* conn, const std::string& text) {
  return mg_write(conn, text.data(), text.size()) > 0;
}

// Server-Sent Events: `event: update` with the (window, key)'s JSON per update, `event:
// dropped` when the watch fell behind, and a `: keepalive` comment when idle.
int ServeWatch(mg_connection* conn, aggregate::Manager& manager, const std::string& name,
               const Params& params, const std::atomic<bool>& stopping) {
  std::optional<std::string> key;
  if (const std::string* k = params.Get("key")) key = *k;
  if (http_watches.fetch_add(1) >= kMaxHttpWatches) {
    http_watches.fetch_sub(1);
    return ReplyError(conn, absl::ResourceExhaustedError(StrCat(
                                "too many watches over HTTP: ", kMaxHttpWatches,
                                " are open; close one, or watch over gRPC (QueryService.Watch)")));
  }
  absl::Cleanup release = [] { http_watches.fetch_sub(1); };
  absl::StatusOr<std::unique_ptr<aggregate::Watcher>> watcher = manager.Watch(name, key);
  if (!watcher.ok()) return ReplyError(conn, watcher.status());
  mg_printf(conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n");
  if (!Send(conn, ": watching\n\n")) return 200;
  auto last_sent = std::chrono::steady_clock::now();
  while (!stopping.load(std::memory_order_relaxed)) {
    uint64_t dropped = 0;
    absl::StatusOr<std::vector<aggregate::Update>> updates =
        (*watcher)->Next(kWatchPollMs, &dropped);
    if (!updates.ok()) break;  // removed, or the server stops
    std::string text;
    if (dropped > 0) text += StrCat("event: dropped\ndata: {\"dropped\":", dropped, "}\n\n");
    for (const aggregate::Update& u : *updates) {
      text += StrCat("event: update\ndata: {\"key\":", JsonString(u.key), ",");
      AppendWindowMembers(&text, u.window.start_us, u.window.end_us, u.window.final,
                          u.window.values);
      text += "}\n\n";
    }
    const auto now = std::chrono::steady_clock::now();
    if (text.empty() && now - last_sent >= kKeepalive) text = ": keepalive\n\n";
    if (text.empty()) {
      // A bare line end each idle poll, which SSE clients ignore, finds a closed connection
      // within a second, so that its watch slot is not held until the next keepalive.
      if (!Send(conn, "\n")) break;
      continue;
    }
    if (!Send(conn, text)) break;  // the client went away
    last_sent = now;
  }
  return 200;
}

}  // namespace

int ServeAggregations(mg_connection* conn, aggregate::Manager& manager,
                      const std::atomic<bool>& stopping, const MayQuery& may_query) {
  const mg_request_info* info = mg_get_request_info(conn);
  if (std::strcmp(info->request_method, "GET") != 0) {
    return ReplyError(conn, 405, "METHOD_NOT_ALLOWED",
                      StrCat(info->request_method, " is not allowed: the aggregation APIs are "
                                                   "read with GET"));
  }
  absl::StatusOr<RequestTarget> target = ParseRequestTarget(
      info->request_uri != nullptr ? info->request_uri : "", info->query_string);
  if (!target.ok()) return ReplyError(conn, target.status());
  const std::string_view uri = target->path;
  const Params& params = target->params;
  if (!uri.starts_with(kPrefix) ||
      (uri.size() > kPrefix.size() && uri[kPrefix.size()] != '/')) {
    return ReplyError(conn, absl::NotFoundError(StrCat("no such path: ", uri)));
  }
  if (target->segments.size() <= 2) return ServeList(conn, manager, may_query);
  // Under /v1/aggregations: the name and what follows.
  const std::vector<std::string> segments(target->segments.begin() + 2, target->segments.end());
  if (segments.back().empty() && segments.size() == 1) return ServeList(conn, manager, may_query);
  const std::string& name = segments[0];
  if (absl::Status allowed = may_query(name); !allowed.ok()) return ReplyError(conn, allowed);
  if (segments.size() == 1) return ServeGet(conn, manager, name);
  if (segments.size() == 3 && segments[1] == "keys") {
    return ServeKey(conn, manager, name, segments[2], params);
  }
  if (segments.size() == 3 && segments[1] == "windows") {
    return ServeWindow(conn, manager, name, segments[2], params);
  }
  if (segments.size() == 2 && segments[1] == "watch") {
    return ServeWatch(conn, manager, name, params, stopping);
  }
  return ReplyError(conn, absl::NotFoundError(
                              StrCat("no such path: ", uri,
                                     " (under /v1/aggregations/{name}: keys/{key}, "
                                     "windows/{start|latest}, watch)")));
}

}  // namespace nodata::server
