// The HTTP side of the server: GET /metrics (Prometheus text format) and GET /healthz.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace nodata::server {

// Runs civetweb's threads until destroyed. Safe for concurrent use.
class HttpServer {
 public:
  // `metrics` renders the /metrics body; it is called from HTTP threads.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                           std::function<std::string()> metrics);
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
