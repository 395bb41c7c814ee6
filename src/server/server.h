// The nodata server process: gRPC services and the HTTP endpoints over one broker.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "broker/broker.h"

namespace nodata::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:7070";  // gRPC
  std::string http = "127.0.0.1:7071";    // /metrics, /healthz, /v1/aggregations
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
};

// Serves until SIGTERM or SIGINT, then shuts down gracefully: in-flight calls finish, every
// partition is synced. Prints "nodata ready grpc=HOST:PORT http=HOST:PORT" on stdout once both
// listeners are up. Must be called from the main thread before any other thread starts.
absl::Status RunServer(const ServerOptions& options);

}  // namespace nodata::server
