// The Kafka listener's insides, shared by its files: kafka_server.cc (sockets, produce and
// fetch), kafka_groups.cc (consumer groups, producer ids, topic admin). Not for other modules.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "broker/broker.h"
#include "common/time.h"
#include "common/worker_pool.h"
#include "kafka/group_coordinator.h"
#include "kafka/protocol.h"
#include "kafka/wire.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "server/kafka_server.h"

namespace nodata::server {

using kafka::ErrorCode;
using kafka::Reader;
using kafka::RequestHeader;
using kafka::Writer;

// The one broker nodata is, as Metadata names it.
constexpr int32_t kNodeId = 0;
// How often group sessions and rebalance deadlines are checked.
constexpr int64_t kGroupTickMs = 100;
// A response frame: its size (filled in by Finish), the correlation id and, in flexible
// versions other than ApiVersions', the header's tagged fields.
class Response {
 public:
  Response(const RequestHeader& h, bool tagged_header) : w_(&bytes_) {
    w_.Int32(0);
    w_.Int32(h.correlation_id);
    if (tagged_header) w_.EmptyTaggedFields();
  }
  Writer& w() { return w_; }
  std::string Finish() && {
    w_.PatchInt32(0, static_cast<int32_t>(bytes_.size() - 4));
    return std::move(bytes_);
  }

 private:
  std::string bytes_;
  Writer w_;
};

// Writes Kafka's usual array of topics, each a name and an array of partitions written by
// `write_part`. `topics` holds (name, partitions) pairs.
template <typename Topics, typename WritePart>
void WriteTopics(Writer& w, const Topics& topics, WritePart write_part) {
  w.ArrayLength(static_cast<int32_t>(topics.size()), false);
  for (const auto& [topic, parts] : topics) {
    w.String(topic, false);
    w.ArrayLength(static_cast<int32_t>(parts.size()), false);
    for (const auto& p : parts) write_part(p);
  }
}

// The Kafka error code for a broker error.
inline kafka::ErrorCode ErrorFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return kafka::kNone;
    case absl::StatusCode::kNotFound:
      return kafka::kUnknownTopicOrPartition;
    case absl::StatusCode::kOutOfRange:
      return kafka::kOffsetOutOfRange;
    case absl::StatusCode::kInvalidArgument:
      return kafka::kInvalidRecord;
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kResourceExhausted:
      return kafka::kKafkaStorageError;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kafka::kRequestTimedOut;
    default:
      return kafka::kUnknownServerError;
  }
}

// Owns the sockets and the I/O thread. Held by shared_ptr: answers made on other threads reach
// it through a weak_ptr and are dropped once it is gone.
class KafkaServer::Impl : public std::enable_shared_from_this<KafkaServer::Impl> {
 public:
  Impl(const KafkaOptions& options, broker::Broker& broker, WorkerPool& pool,
       prometheus::Registry& registry)
      : options_(options),
        broker_(broker),
        pool_(pool),
        requests_(prometheus::BuildCounter()
                      .Name("nodata_kafka_requests_total")
                      .Help("Kafka protocol requests, by API")
                      .Register(registry)),
        connections_gauge_(prometheus::BuildGauge()
                               .Name("nodata_kafka_connections")
                               .Help("Open Kafka protocol connections")
                               .Register(registry)
                               .Add({})),
        refused_(prometheus::BuildCounter()
                     .Name("nodata_kafka_connections_closed_total")
                     .Help("Kafka connections the server closed for a malformed or unsupported "
                           "request")
                     .Register(registry)
                     .Add({})),
        groups_(kafka::GroupOptions{.initial_rebalance_delay_ms =
                                        options.initial_rebalance_delay_ms},
                [] { return MonotonicNanos() / 1'000'000; },
                [&broker](const std::string& group, bool live) {
                  broker.groups().SetForeign(group, live);
                }) {}
  ~Impl();

  absl::Status Listen();
  void Run();
  void Stop() {
    stopping_.store(true);
    Wake();
    if (thread_.joinable()) thread_.join();
    for (auto& [id, c] : connections_) ::close(c->fd);
    connections_.clear();
  }
  const std::string& address() const { return address_; }

  // Answers request `seq` of connection `conn` with `frame` (empty: no answer, acks=0); from
  // any thread.
  void Complete(uint64_t conn, uint64_t seq, std::string frame, std::string close = {}) {
    {
      absl::MutexLock lock(&done_mu_);
      done_.push_back(Done{conn, seq, std::move(frame), std::move(close)});
    }
    Wake();
  }

 private:
  struct Connection {
    int fd = -1;
    uint64_t id = 0;
    std::string peer;
    std::string local_host;
    int32_t local_port = 0;
    std::string in;
    std::string out;
    size_t out_pos = 0;
    uint64_t next_seq = 0;
    uint64_t base_seq = 0;  // the sequence of responses.front()
    std::deque<std::optional<std::string>> responses;  // in request order; unset until made
    uint32_t events = 0;    // the epoll interest set
  };
  struct Done {
    uint64_t conn;
    uint64_t seq;
    std::string frame;
    std::string close;  // set: close the connection, for this reason
  };
  // What a handler needs to answer its request.
  struct Call {
    std::weak_ptr<Impl> server;
    uint64_t conn;
    uint64_t seq;
    RequestHeader header;
    std::string frame;  // the request, which the header's views point into
    std::string local_host;
    int32_t local_port;
    std::string peer;

    void Respond(std::string response) const {
      if (auto s = server.lock()) s->Complete(conn, seq, std::move(response));
    }
    // A request that cannot be answered (a malformed body): its connection is closed.
    void Fail(std::string why) const {
      if (auto s = server.lock()) s->Complete(conn, seq, {}, std::move(why));
    }
  };

  void Wake() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
  void Accept();
  void OnReadable(Connection& c);
  void OnWritable(Connection& c);
  void Close(uint64_t id, std::string_view why);
  // Moves the answers ready at the head of `c`'s queue to its output and writes.
  void Flush(Connection& c);
  void UpdateInterest(Connection& c);
  // Handles every whole frame in `c.in` (as many as the in-flight limit allows); false when the
  // connection was closed.
  bool TakeFrames(Connection& c);
  bool Dispatch(Connection& c, std::string frame);

  // The handlers whose request is read at once, on the pool.
  void Handle(const Call& call, Reader& r);
  void ApiVersions(const Call& call, Reader& r);
  void Metadata(const Call& call, Reader& r);
  void Produce(std::shared_ptr<Call> call);
  void ListOffsets(const Call& call, Reader& r);
  void Fetch(std::shared_ptr<Call> call);
  // Groups and the rest (kafka_groups.cc).
  void FindCoordinator(const Call& call, Reader& r);
  void JoinGroup(std::shared_ptr<Call> call);
  void SyncGroup(std::shared_ptr<Call> call);
  void Heartbeat(const Call& call, Reader& r);
  void LeaveGroup(const Call& call, Reader& r);
  void OffsetCommit(const Call& call, Reader& r);
  void OffsetFetch(const Call& call, Reader& r);
  void InitProducerId(const Call& call, Reader& r);
  void CreateTopics(const Call& call, Reader& r);
  void DeleteTopics(const Call& call, Reader& r);
  void DescribeConfigs(const Call& call, Reader& r);

  const KafkaOptions options_;
  broker::Broker& broker_;
  WorkerPool& pool_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Gauge& connections_gauge_;
  prometheus::Counter& refused_;

  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::string address_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  uint64_t next_conn_id_ = 1;
  // I/O thread only.
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;

  absl::Mutex done_mu_;
  std::vector<Done> done_ ABSL_GUARDED_BY(done_mu_);

  // Consumer groups over Kafka; Tick runs on the pool every kGroupTickMs while serving.
  kafka::GroupCoordinator groups_;
  void ScheduleGroupTick();
  // The last producer id InitProducerId gave (kafka_groups.cc).
  std::atomic<int64_t> last_producer_id_{0};

  friend struct FetchCall;
  friend struct ProduceCall;
};


}  // namespace nodata::server
