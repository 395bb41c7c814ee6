// GET /v1/aggregations[/{name}[/keys/{key} | /windows/{start|latest} | /watch]]: the
// aggregations over HTTP/JSON, with Server-Sent Events for watches (see server/README.md for
// the shapes). Internal to server/: http_server.cc routes the paths here.
#pragma once

#include <atomic>
#include <functional>
#include <string_view>

#include "absl/status/status.h"

struct mg_connection;

namespace nodata::aggregate {
class Manager;
}

namespace nodata::server {

// OK when the caller may query the aggregation named; else the refusal (403).
using MayQuery = std::function<absl::Status(std::string_view name)>;

// Answers one request under /v1/aggregations and returns the HTTP status sent. A watch returns
// when the client goes away, the aggregation is removed or `stopping` becomes true (checked
// about once a second). Runs on civetweb's threads; `manager` must outlive the HTTP server.
// The list holds the aggregations `may_query` allows; the other paths answer its refusal.
int ServeAggregations(mg_connection* conn, aggregate::Manager& manager,
                      const std::atomic<bool>& stopping, const MayQuery& may_query);

}  // namespace nodata::server
