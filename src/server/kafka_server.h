// The Kafka listener: Kafka clients (librdkafka, kafkajs, kcat, the Java client) produce to and
// fetch from the broker's topics over the Kafka protocol (kafka/). One thread runs every
// connection's socket; produces go to Broker::Publish and are answered from its
// acknowledgement, fetches read on the egress pool and long-poll on the append notification.
// docs/kafka.md says how Kafka's records map onto nodata's events.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "common/worker_pool.h"

namespace prometheus {
class Registry;
}

namespace nodata::server {

struct KafkaOptions {
  std::string listen;  // host:port; port 0 picks a free one
  // A request frame larger than this closes its connection.
  uint64_t max_request_bytes = 65ull << 20;
  // An event's size (BrokerOptions::max_event_bytes): a larger record is MESSAGE_TOO_LARGE.
  uint64_t max_event_bytes = 1ull << 20;
  // Requests of one connection handled at once; its socket is not read past them.
  int max_inflight_per_connection = 64;
  // Metadata answers topics it is asked for that do not exist by creating them (when the
  // client allows it too).
  bool auto_create_topics = true;
  // A consumer group forming from empty waits this long for more members (Kafka's
  // group.initial.rebalance.delay.ms).
  int32_t initial_rebalance_delay_ms = 500;
};

class KafkaServer {
 public:
  // Listens and starts serving. `broker`, `pool` and `registry` outlive the server.
  static absl::StatusOr<std::unique_ptr<KafkaServer>> Start(const KafkaOptions& options,
                                                            broker::Broker& broker,
                                                            WorkerPool& pool,
                                                            prometheus::Registry& registry);
  // Stops listening and closes every connection; answers still being made are dropped (a
  // producer that misses one retries, and an idempotent producer's retry dedupes).
  ~KafkaServer();

  // host:port it listens on.
  const std::string& address() const;

  class Impl;

 private:
  explicit KafkaServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace nodata::server
