// The HTTP side of the server: GET /metrics (Prometheus text format), GET /healthz and the
// aggregations' API under /v1/aggregations (aggregation_http.h).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

struct mg_connection;

namespace nodata::aggregate {
class Manager;
}

namespace nodata::server {

class AuditLog;

class CallAuth;
class TlsMaterial;

// Writes a whole response in one write: status, `Content-Type`, `Content-Length`,
// `extra_headers` (lines ending in CRLF), the connection headers civetweb's keep-alive decision
// calls for, and the body.
void WriteResponse(mg_connection* conn, int code, std::string_view content_type,
                   std::string_view body, std::string_view extra_headers = {});

// Runs civetweb's threads until destroyed. Safe for concurrent use.
class HttpServer {
 public:
  // `metrics` renders the /metrics body and `health` answers /healthz (not OK: 503 with its
  // message); both are called from HTTP threads. `aggregations` must
  // outlive the server, and so must `tls` (null: plain HTTP; else HTTPS with its certificate,
  // and with its client CAs a client certificate on every path but /healthz) and `auth` (null
  // or off: no bearer tokens; else /v1/aggregations wants one with the scope query:NAME, and
  // /metrics one of any scope when `metrics_auth`). Refusals (401, 403) go to `audit` (null:
  // none), which must outlive the server too.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, std::function<std::string()> metrics,
      std::function<absl::Status()> health, aggregate::Manager& aggregations,
      TlsMaterial* tls = nullptr,
      const CallAuth* auth = nullptr, bool metrics_auth = false, AuditLog* audit = nullptr);
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
