// The HTTP side of the server: GET /metrics (Prometheus text format), GET /healthz and the
// aggregations' API under /v1/aggregations (aggregation_http.h).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

struct mg_connection;

namespace nodata::aggregate {
class Manager;
}

namespace nodata::server {

// The connection header lines of a response, as civetweb decides from the request:
// "Connection: close", or the idle timeout of a connection that persists.
const char* ConnectionHeader(mg_connection* conn);

// Runs civetweb's threads until destroyed. Safe for concurrent use.
class HttpServer {
 public:
  // `metrics` renders the /metrics body; it is called from HTTP threads. `aggregations` must
  // outlive the server.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                           std::function<std::string()> metrics,
                                                           aggregate::Manager& aggregations);
  // Ends open watches (within a second) and waits for every request to finish.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // host:port actually bound.
  const std::string& address() const { return address_; }

  struct Context;  // defined in http_server.cc, shared with the request handlers

 private:
  explicit HttpServer(std::unique_ptr<Context> context);
  std::unique_ptr<Context> context_;
  std::string address_;
};

}  // namespace nodata::server
