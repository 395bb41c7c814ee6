// The nodata server process: gRPC services and the HTTP endpoints over one broker.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "broker/broker.h"
#include "common/fs.h"
#include "server/jwt.h"
#include "server/quotas.h"
#include "server/tls.h"

namespace nodata::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:7070";  // gRPC
  std::string http = "127.0.0.1:7071";    // /metrics, /healthz, /v1/aggregations
  // The Kafka protocol listener (kafka_server.h); empty: none.
  std::string kafka;
  broker::BrokerOptions broker;           // broker.data_dir is the data directory
  // Batches of one PublishStream processed concurrently before its reads pause.
  int stream_inflight_batches = 16;
  // Threads reading records for subscribers.
  int egress_threads = 2;
  // Keepalive ping interval and timeout of connections: a subscriber that answers no ping for
  // this long is gone, and its group rebalances.
  int keepalive_ms = 10000;
  // The aggregations' in-memory state cache, all aggregations together.
  uint64_t state_cache_bytes = 256ull << 20;
  // TLS on both listeners (tls.h); reloaded on SIGHUP.
  TlsFiles tls;
  // Serve on an address other machines reach without TLS and client certificates.
  bool insecure = false;
  // "none" (every caller may do everything) or "tokens" (a bearer token with scopes, auth.h).
  std::string auth = "none";
  // With auth tokens: "tokens" (GET /metrics wants a token, any scope) or "none" (open).
  std::string metrics_auth = "tokens";
  // With auth tokens, bearer JWTs verified against these keys (jwt.h).
  JwtOptions jwt;
  // Per principal (quotas.h): publish rate, request rate, open streams.
  QuotaOptions quotas{.streams = 4096};
  // The audit log (audit_log.h): a file; "none"; or empty: DATA/audit.log with auth tokens,
  // none without.
  std::string audit_log;
  // Concurrent streams (calls) one connection may have open (HTTP/2 SETTINGS).
  int max_streams_per_connection = 1000;
  // What the broker, components and aggregations store through; null: the POSIX file system.
  FileSystem* file_system = nullptr;
};

// Serves until SIGTERM or SIGINT, then shuts down gracefully: in-flight calls finish, every
// partition is synced. SIGHUP reloads the TLS files. Refuses (FAILED_PRECONDITION) to listen on
// an address other machines reach without TLS and client authentication, unless `insecure`.
// Prints "nodata ready grpc=HOST:PORT http=HOST:PORT" on stdout once the listeners are up, with
// " kafka=HOST:PORT" after it when the Kafka listener is on.
// Must be called from the main thread before any other thread starts.
absl::Status RunServer(const ServerOptions& options);

}  // namespace nodata::server
