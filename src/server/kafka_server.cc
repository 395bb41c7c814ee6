#include "server/kafka_server.h"

#include "server/kafka_internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/internal/endian.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/names.h"
#include "common/status.h"
#include "common/strings.h"
#include "kafka/protocol.h"
#include "kafka/records.h"
#include "kafka/wire.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "spdlog/spdlog.h"

namespace nodata::server {

namespace {

// A fetch waits at most this long, whatever max_wait_ms asks.
constexpr int32_t kMaxFetchWaitMs = 60'000;
// Records read per call while filling a fetch.
constexpr size_t kFetchScanRecords = 16384;

std::string_view ApiName(int16_t key) {
  switch (key) {
    case kafka::kProduce:
      return "produce";
    case kafka::kFetch:
      return "fetch";
    case kafka::kListOffsets:
      return "list_offsets";
    case kafka::kMetadata:
      return "metadata";
    case kafka::kApiVersions:
      return "api_versions";
    case kafka::kOffsetCommit:
      return "offset_commit";
    case kafka::kOffsetFetch:
      return "offset_fetch";
    case kafka::kFindCoordinator:
      return "find_coordinator";
    case kafka::kJoinGroup:
      return "join_group";
    case kafka::kHeartbeat:
      return "heartbeat";
    case kafka::kLeaveGroup:
      return "leave_group";
    case kafka::kSyncGroup:
      return "sync_group";
    case kafka::kCreateTopics:
      return "create_topics";
    case kafka::kDeleteTopics:
      return "delete_topics";
    case kafka::kInitProducerId:
      return "init_producer_id";
    case kafka::kDescribeConfigs:
      return "describe_configs";
    default:
      return "other";
  }
}

absl::StatusOr<std::pair<std::string, std::string>> SplitHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        StrCat("--kafka wants HOST:PORT; got \"", address, "\""));
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::pair{host, address.substr(colon + 1)};
}

}  // namespace

KafkaServer::Impl::~Impl() {
  for (int fd : {listen_fd_, epoll_fd_, wake_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

void KafkaServer::Impl::ScheduleGroupTick() {
  pool_.ScheduleAfter(absl::Milliseconds(kGroupTickMs), [weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self || self->stopping_.load()) return;
    self->groups_.Tick();
    self->ScheduleGroupTick();
  });
}

absl::Status KafkaServer::Impl::Listen() {
  ASSIGN_OR_RETURN(auto host_port, SplitHostPort(options_.listen));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string& host = host_port.first;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), host_port.second.c_str(),
                           &hints, &found);
      rc != 0) {
    return absl::InvalidArgumentError(
        StrCat("--kafka ", options_.listen, ": ", gai_strerror(rc)));
  }
  std::string why = "no address";
  for (addrinfo* a = found; a != nullptr && listen_fd_ < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 1024) != 0) {
      why = std::strerror(errno);
      ::close(fd);
      continue;
    }
    listen_fd_ = fd;
  }
  freeaddrinfo(found);
  if (listen_fd_ < 0) {
    return absl::UnavailableError(
        StrCat("cannot listen for Kafka on ", options_.listen, ": ", why));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  const int port = bound.ss_family == AF_INET6
                       ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                       : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  address_ = StrCat(options_.listen.substr(0, options_.listen.rfind(':')), ":", port);

  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    return absl::InternalError(StrCat("epoll or eventfd: ", std::strerror(errno)));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // the listener
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.u64 = UINT64_MAX;  // the wake-up
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  thread_ = std::thread([this] { Run(); });
  ScheduleGroupTick();
  return absl::OkStatus();
}

void KafkaServer::Impl::Run() {
  std::vector<epoll_event> events(256);
  while (!stopping_.load()) {
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("kafka: epoll_wait: {}", std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == 0) {
        Accept();
        continue;
      }
      if (id == UINT64_MAX) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
        std::vector<Done> done;
        {
          absl::MutexLock lock(&done_mu_);
          done.swap(done_);
        }
        for (Done& d : done) {
          auto it = connections_.find(d.conn);
          if (it == connections_.end()) continue;  // closed meanwhile
          Connection& c = *it->second;
          if (!d.close.empty()) {
            Close(d.conn, d.close);
            continue;
          }
          c.responses[d.seq - c.base_seq] = std::move(d.frame);
          Flush(c);
        }
        continue;
      }
      auto it = connections_.find(id);
      if (it == connections_.end()) continue;
      Connection& c = *it->second;
      if (events[i].events & (EPOLLERR | EPOLLHUP)) {
        Close(id, "");
        continue;
      }
      if (events[i].events & EPOLLOUT) OnWritable(c);
      if (connections_.count(id) == 0) continue;
      if (events[i].events & EPOLLIN) OnReadable(c);
    }
  }
}

void KafkaServer::Impl::Accept() {
  while (true) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        spdlog::warn("kafka: accept: {}", std::strerror(errno));
      }
      return;
    }
    int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    c->id = next_conn_id_++;
    char host[INET6_ADDRSTRLEN] = "?";
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len);
    if (local.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&local);
      inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
      c->local_port = ntohs(a->sin6_port);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&local);
      inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
      c->local_port = ntohs(a->sin_port);
    }
    c->local_host = host;
    char peer_host[INET6_ADDRSTRLEN] = "?";
    if (peer.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&peer);
      inet_ntop(AF_INET6, &a->sin6_addr, peer_host, sizeof peer_host);
      c->peer = StrCat("[", peer_host, "]:", ntohs(a->sin6_port));
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&peer);
      inet_ntop(AF_INET, &a->sin_addr, peer_host, sizeof peer_host);
      c->peer = StrCat(peer_host, ":", ntohs(a->sin_port));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c->id;
    c->events = EPOLLIN;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    connections_gauge_.Increment();
    connections_[c->id] = std::move(c);
  }
}

void KafkaServer::Impl::Close(uint64_t id, std::string_view why) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  if (!why.empty()) {
    refused_.Increment();
    spdlog::warn("kafka: closing the connection from {}: {}", it->second->peer, why);
  }
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second->fd, nullptr);
  ::close(it->second->fd);
  connections_.erase(it);
  connections_gauge_.Decrement();
}

void KafkaServer::Impl::UpdateInterest(Connection& c) {
  uint32_t want = 0;
  if (c.responses.size() < static_cast<size_t>(options_.max_inflight_per_connection)) {
    want |= EPOLLIN;
  }
  if (c.out_pos < c.out.size()) want |= EPOLLOUT;
  if (want == c.events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = c.id;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  c.events = want;
}

void KafkaServer::Impl::OnReadable(Connection& c) {
  const uint64_t id = c.id;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(c.fd, buf, sizeof buf);
    if (n == 0) {
      Close(id, "");
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      Close(id, "");
      return;
    }
    c.in.append(buf, static_cast<size_t>(n));
    if (!TakeFrames(c)) return;
    if (c.responses.size() >= static_cast<size_t>(options_.max_inflight_per_connection)) break;
  }
  UpdateInterest(c);
}

bool KafkaServer::Impl::TakeFrames(Connection& c) {
  size_t at = 0;
  while (c.in.size() - at >= 4 &&
         c.responses.size() < static_cast<size_t>(options_.max_inflight_per_connection)) {
    const auto size = static_cast<int32_t>(absl::big_endian::Load32(c.in.data() + at));
    if (size < 8 || static_cast<uint64_t>(size) > options_.max_request_bytes) {
      Close(c.id, StrCat("a request frame of ", size, " bytes (the limit is ",
                         options_.max_request_bytes, ")"));
      return false;
    }
    if (c.in.size() - at - 4 < static_cast<size_t>(size)) break;
    std::string frame = c.in.substr(at + 4, static_cast<size_t>(size));
    at += 4 + static_cast<size_t>(size);
    if (!Dispatch(c, std::move(frame))) return false;
  }
  c.in.erase(0, at);
  return true;
}

bool KafkaServer::Impl::Dispatch(Connection& c, std::string frame) {
  auto call = std::make_shared<Call>();
  call->frame = std::move(frame);
  Reader r(call->frame);
  call->header = kafka::ReadRequestHeader(r);
  const RequestHeader& h = call->header;
  if (!r.ok()) {
    Close(c.id, StrCat("a malformed request header: ", r.error()));
    return false;
  }
  const kafka::ApiRange* api = kafka::FindApi(h.api_key);
  if (api == nullptr) {
    Close(c.id, StrCat("API key ", h.api_key, " is not served (ApiVersions lists those that "
                       "are)"));
    return false;
  }
  // ApiVersions answers any version (an unsupported one with its error and the ranges);
  // other APIs are used only in the versions it lists.
  if (h.api_key != kafka::kApiVersions && (h.api_version < api->min || h.api_version > api->max)) {
    Close(c.id, StrCat(ApiName(h.api_key), " version ", h.api_version, " is not served (",
                       api->min, " to ", api->max, ")"));
    return false;
  }
  requests_.Add({{"api", std::string(ApiName(h.api_key))}}).Increment();
  call->server = weak_from_this();
  call->conn = c.id;
  call->seq = c.next_seq++;
  call->local_host = c.local_host;
  call->local_port = c.local_port;
  call->peer = c.peer;
  c.responses.emplace_back();
  const size_t body_at = call->frame.size() - r.remaining();
  switch (h.api_key) {
    case kafka::kApiVersions:
      ApiVersions(*call, r);
      break;
    case kafka::kJoinGroup:
      JoinGroup(call);  // answers when the rebalance completes
      break;
    case kafka::kSyncGroup:
      SyncGroup(call);  // answers when the leader has synced
      break;
    case kafka::kProduce:
      pool_.Schedule([self = shared_from_this(), call] { self->Produce(call); });
      break;
    case kafka::kFetch:
      pool_.Schedule([self = shared_from_this(), call] { self->Fetch(call); });
      break;
    default:
      pool_.Schedule([self = shared_from_this(), call, body_at] {
        Reader body(std::string_view(call->frame).substr(body_at));
        self->Handle(*call, body);
      });
      break;
  }
  return true;
}

void KafkaServer::Impl::Handle(const Call& call, Reader& r) {
  switch (call.header.api_key) {
    case kafka::kMetadata:
      return Metadata(call, r);
    case kafka::kListOffsets:
      return ListOffsets(call, r);
    case kafka::kOffsetCommit:
      return OffsetCommit(call, r);
    case kafka::kOffsetFetch:
      return OffsetFetch(call, r);
    case kafka::kFindCoordinator:
      return FindCoordinator(call, r);
    case kafka::kHeartbeat:
      return Heartbeat(call, r);
    case kafka::kLeaveGroup:
      return LeaveGroup(call, r);
    case kafka::kInitProducerId:
      return InitProducerId(call, r);
    case kafka::kCreateTopics:
      return CreateTopics(call, r);
    case kafka::kDeleteTopics:
      return DeleteTopics(call, r);
    case kafka::kDescribeConfigs:
      return DescribeConfigs(call, r);
    default:
      return call.Fail(StrCat("API key ", call.header.api_key, " has no handler"));
  }
}

void KafkaServer::Impl::Flush(Connection& c) {
  while (!c.responses.empty() && c.responses.front().has_value()) {
    if (c.out.empty()) {
      c.out = std::move(*c.responses.front());  // the common case: no copy
      c.out_pos = 0;
    } else {
      c.out.append(*c.responses.front());
    }
    c.responses.pop_front();
    ++c.base_seq;
  }
  OnWritable(c);
}

void KafkaServer::Impl::OnWritable(Connection& c) {
  while (c.out_pos < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos,
                             MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      Close(c.id, "");
      return;
    }
    c.out_pos += static_cast<size_t>(n);
  }
  if (c.out_pos == c.out.size()) {
    c.out.clear();
    c.out_pos = 0;
  }
  // Answers made room for more requests: take those already read.
  if (!c.in.empty() && !TakeFrames(c)) return;
  UpdateInterest(c);
}

// ---------------------------------------------------------------------------------------------
// ApiVersions

void KafkaServer::Impl::ApiVersions(const Call& call, Reader& r) {
  const RequestHeader& h = call.header;
  // An unsupported version is answered in v0 with the versions served (KIP-511).
  const bool supported = h.api_version >= 0 && h.api_version <= 3;
  const int16_t v = supported ? h.api_version : 0;
  const bool flexible = v >= 3;
  if (supported && flexible) {
    r.String(true);  // client software name
    r.String(true);  // and version
    r.SkipTaggedFields();
  }
  Response resp(h, /*tagged_header=*/false);  // ApiVersions answers with header v0
  Writer& w = resp.w();
  w.Int16(supported ? kafka::kNone : kafka::kUnsupportedVersion);
  std::span<const kafka::ApiRange> apis = kafka::SupportedApis();
  w.ArrayLength(static_cast<int32_t>(apis.size()), flexible);
  for (const kafka::ApiRange& a : apis) {
    w.Int16(a.key);
    w.Int16(a.min);
    w.Int16(a.max);
    if (flexible) w.EmptyTaggedFields();
  }
  if (v >= 1) w.Int32(0);  // throttle time
  if (flexible) w.EmptyTaggedFields();
  call.Respond(std::move(resp).Finish());
}

// ---------------------------------------------------------------------------------------------
// Metadata

void KafkaServer::Impl::Metadata(const Call& call, Reader& r) {
  const int16_t v = call.header.api_version;
  // Topics asked for: null (v1+) or, in v0, none: every topic.
  std::optional<std::vector<std::string_view>> names;
  std::optional<int32_t> n = r.ArrayLength(false, 2);
  if (n && (*n > 0 || v >= 1)) {
    names.emplace();
    for (int32_t i = 0; i < *n && r.ok(); ++i) names->push_back(r.String(false));
  }
  bool allow_create = true;
  if (v >= 4) allow_create = r.Bool();
  if (!r.ok()) {
    return call.Fail(StrCat("a malformed Metadata request: ", r.error()));
  }

  struct Entry {
    std::string name;
    ErrorCode error = kafka::kNone;
    uint32_t partitions = 0;
  };
  std::vector<Entry> topics;
  if (!names) {
    for (const broker::TopicInfo& t : broker_.ListTopics()) {
      topics.push_back(Entry{t.name, kafka::kNone, t.partition_count});
    }
  } else {
    for (std::string_view name : *names) {
      Entry e{std::string(name)};
      if (!ValidateTopicName(name).ok()) {
        e.error = kafka::kInvalidTopic;
        topics.push_back(std::move(e));
        continue;
      }
      absl::StatusOr<broker::TopicInfo> t = broker_.GetTopic(name);
      if (!t.ok() && t.status().code() == absl::StatusCode::kNotFound && allow_create &&
          options_.auto_create_topics) {
        t = broker_.CreateTopic(name, 0);
        if (!t.ok() && t.status().code() == absl::StatusCode::kAlreadyExists) {
          t = broker_.GetTopic(name);
        }
      }
      if (t.ok()) {
        e.partitions = t->partition_count;
      } else {
        e.error = t.status().code() == absl::StatusCode::kNotFound
                      ? kafka::kUnknownTopicOrPartition
                      : ErrorFor(t.status());
      }
      topics.push_back(std::move(e));
    }
  }

  Response resp(call.header, false);
  Writer& w = resp.w();
  if (v >= 3) w.Int32(0);  // throttle time
  w.ArrayLength(1, false);  // brokers: this one, where the client reached it
  w.Int32(kNodeId);
  w.String(call.local_host, false);
  w.Int32(call.local_port);
  if (v >= 1) w.NullableString(std::nullopt, false);  // rack
  if (v >= 2) w.NullableString("nodata", false);      // cluster id
  if (v >= 1) w.Int32(kNodeId);                       // controller
  w.ArrayLength(static_cast<int32_t>(topics.size()), false);
  for (const Entry& t : topics) {
    w.Int16(t.error);
    w.String(t.name, false);
    if (v >= 1) w.Bool(false);  // internal
    w.ArrayLength(static_cast<int32_t>(t.partitions), false);
    for (uint32_t p = 0; p < t.partitions; ++p) {
      w.Int16(kafka::kNone);
      w.Int32(static_cast<int32_t>(p));
      w.Int32(kNodeId);              // leader
      if (v >= 7) w.Int32(0);        // leader epoch
      w.ArrayLength(1, false);       // replicas
      w.Int32(kNodeId);
      w.ArrayLength(1, false);       // in sync
      w.Int32(kNodeId);
      if (v >= 5) w.ArrayLength(0, false);  // offline
    }
    if (v >= 8) w.Int32(INT32_MIN);  // authorized operations: not asked for
  }
  if (v >= 8) w.Int32(INT32_MIN);
  call.Respond(std::move(resp).Finish());
}

// ---------------------------------------------------------------------------------------------
// Produce

namespace {

// One partition's records of a Produce request, as events for Broker::Publish.
struct ProducePartition {
  std::string_view topic;
  int32_t partition = 0;
  ErrorCode error = kafka::kNone;
  std::string message;
  int64_t base_offset = -1;
  std::vector<broker::EventIn> events;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::vector<std::pair<size_t, size_t>> header_ranges;  // by event: first, count
  std::deque<std::string> ids;       // idempotent producers' record ids
  std::deque<std::string> inflated;  // decompressed batches the events point into
};

}  // namespace

struct ProduceCall {
  std::shared_ptr<KafkaServer::Impl::Call> call;
  std::vector<std::string_view> topics;  // in request order
  std::deque<ProducePartition> parts;    // in request order
  std::atomic<size_t> pending{0};
};

void KafkaServer::Impl::Produce(std::shared_ptr<Call> call) {
  const int16_t v = call->header.api_version;
  auto produce = std::make_shared<ProduceCall>();
  produce->call = call;
  Reader r(call->frame);
  kafka::ReadRequestHeader(r);
  r.NullableString(false);  // transactional id
  const int16_t acks = r.Int16();
  r.Int32();  // timeout: answers come with the durable acknowledgement
  const int32_t n_topics = r.ArrayCount(false, 6);
  for (int32_t t = 0; t < n_topics && r.ok(); ++t) {
    std::string_view topic = r.String(false);
    produce->topics.push_back(topic);
    const int32_t n_parts = r.ArrayCount(false, 8);
    for (int32_t p = 0; p < n_parts && r.ok(); ++p) {
      ProducePartition& part = produce->parts.emplace_back();
      part.topic = topic;
      part.partition = r.Int32();
      std::string_view records = r.NullableBytes(false).value_or("");
      if (!r.ok()) break;
      if (!ValidateTopicName(topic).ok()) {
        part.error = kafka::kInvalidTopic;
        continue;
      }
      if (part.partition < 0) {
        part.error = kafka::kUnknownTopicOrPartition;
        continue;
      }
      // Records into events; the views point into the request or the decompressed batches.
      absl::Status st = kafka::DecodeBatches(
          records, options_.max_request_bytes, &part.inflated,
          [&](const kafka::BatchHeader& b, const std::vector<kafka::KafkaRecord>& recs) {
            const bool idempotent = b.producer_id >= 0 && b.base_sequence >= 0;
            for (const kafka::KafkaRecord& k : recs) {
              broker::EventIn& e = part.events.emplace_back();
              e.topic = topic;
              e.partition = static_cast<uint32_t>(part.partition);
              e.key = k.key.value_or("");
              e.data = k.value.value_or("");
              if (!b.log_append_time() && k.timestamp_ms >= 0) {
                e.timestamp_us = k.timestamp_ms * 1000;
              }
              if (idempotent) {
                // A retried batch carries the same producer, epoch and sequences: the same
                // ids, which dedupe.
                const int64_t seq = (int64_t{b.base_sequence} + k.offset_delta) % INT32_MAX;
                e.id = part.ids.emplace_back(StrCat("kafka-", b.producer_id, "-",
                                                    b.producer_epoch, "-", part.partition, "-",
                                                    seq));
              }
              uint64_t size = topic.size() + e.id.size() + e.key.size() + e.data.size();
              part.header_ranges.emplace_back(part.headers.size(), k.headers.size());
              for (const auto& [name, value] : k.headers) {
                part.headers.emplace_back(name, value.value_or(""));
                size += name.size() + (value ? value->size() : 0);
              }
              if (size > options_.max_event_bytes) {
                return absl::ResourceExhaustedError(
                    StrCat("a record of ", size, " bytes; the limit is ",
                           options_.max_event_bytes));
              }
            }
            return absl::OkStatus();
          });
      if (!st.ok()) {
        part.error = st.code() == absl::StatusCode::kResourceExhausted
                         ? kafka::kMessageTooLarge
                         : kafka::kCorruptMessage;
        part.message = ToStd(st.message());
        part.events.clear();
        continue;
      }
      for (size_t i = 0; i < part.events.size(); ++i) {
        const auto [first, count] = part.header_ranges[i];
        part.events[i].headers = absl::MakeConstSpan(part.headers).subspan(first, count);
      }
    }
  }
  if (!r.ok()) return call->Fail(StrCat("a malformed Produce request: ", r.error()));

  auto answer = [produce, v, acks] {
    if (acks == 0) return;  // answered at once
    Response resp(produce->call->header, false);
    Writer& w = resp.w();
    // Partitions grouped under their topics, in request order.
    std::vector<std::pair<std::string_view, std::vector<const ProducePartition*>>> grouped;
    for (const ProducePartition& p : produce->parts) {
      if (grouped.empty() || grouped.back().first != p.topic) grouped.push_back({p.topic, {}});
      grouped.back().second.push_back(&p);
    }
    WriteTopics(w, grouped, [&w, v](const ProducePartition* p) {
      w.Int32(p->partition);
      w.Int16(p->error);
      w.Int64(p->base_offset);
      w.Int64(-1);  // log append time: records keep their create time
      if (v >= 5) w.Int64(-1);  // log start offset: not looked up
      if (v >= 8) {
        w.ArrayLength(0, false);  // record errors
        w.NullableString(p->error == kafka::kNone
                             ? std::nullopt
                             : std::optional<std::string_view>(p->message),
                         false);
      }
    });
    w.Int32(0);  // throttle time
    produce->call->Respond(std::move(resp).Finish());
  };
  if (acks == 0) call->Respond(std::string());

  // One publish per partition, answered once every one is acknowledged. The extra count is
  // this function's, so that an inline acknowledgement cannot answer early.
  produce->pending.store(produce->parts.size() + 1);
  for (ProducePartition& part : produce->parts) {
    if (part.error != kafka::kNone || part.events.empty()) {
      if (part.events.empty() && part.error == kafka::kNone) part.base_offset = -1;
      if (produce->pending.fetch_sub(1) == 1) answer();
      continue;
    }
    ProducePartition* p = &part;
    broker_.Publish(part.events, [produce, p, answer](absl::Status st,
                                                      std::vector<broker::AckOut> acks_out) {
      if (st.ok() && !acks_out.empty()) {
        p->base_offset = static_cast<int64_t>(acks_out.front().offset.value());
      } else if (!st.ok()) {
        p->error = ErrorFor(st);
        p->message = ToStd(st.message());
        if (st.code() == absl::StatusCode::kInvalidArgument &&
            absl::StrContains(st.message(), "partition")) {
          p->error = kafka::kUnknownTopicOrPartition;
        }
      }
      if (produce->pending.fetch_sub(1) == 1) answer();
    });
  }
  if (produce->pending.fetch_sub(1) == 1) answer();
}

// ---------------------------------------------------------------------------------------------
// ListOffsets

void KafkaServer::Impl::ListOffsets(const Call& call, Reader& r) {
  const int16_t v = call.header.api_version;
  r.Int32();            // replica id
  if (v >= 2) r.Int8();  // isolation level: every stored record is committed
  struct Part {
    int32_t partition;
    ErrorCode error = kafka::kNone;
    int64_t timestamp = -1;
    int64_t offset = -1;
  };
  std::vector<std::pair<std::string_view, std::vector<Part>>> topics;
  const int32_t n_topics = r.ArrayCount(false, 6);
  for (int32_t t = 0; t < n_topics && r.ok(); ++t) {
    auto& [topic, parts] = topics.emplace_back(r.String(false), std::vector<Part>{});
    const int32_t n_parts = r.ArrayCount(false, 12);
    for (int32_t i = 0; i < n_parts && r.ok(); ++i) {
      Part& p = parts.emplace_back(Part{r.Int32()});
      if (v >= 4) r.Int32();  // current leader epoch
      const int64_t target = r.Int64();
      if (!r.ok()) break;
      auto bounds = broker_.Bounds(topic, PartitionId(static_cast<uint32_t>(
                                              std::max(p.partition, 0))));
      if (!bounds.ok() || p.partition < 0) {
        p.error = kafka::kUnknownTopicOrPartition;
        continue;
      }
      const auto [start, end] = *bounds;
      if (target == -1) {  // latest
        p.offset = static_cast<int64_t>(end.value());
      } else if (target == -2) {  // earliest
        p.offset = static_cast<int64_t>(start.value());
      } else if (target < 0) {
        p.error = kafka::kInvalidRequest;
      } else {
        // The first record ingested at or after the time (docs/kafka.md).
        broker::StartSpec spec;
        spec.kind = broker::StartSpec::Kind::kTime;
        spec.time_us = target * 1000;
        absl::StatusOr<Offset> at = broker_.ResolveStart(
            topic, PartitionId(static_cast<uint32_t>(p.partition)), spec, std::nullopt);
        if (!at.ok()) {
          p.error = ErrorFor(at.status());
        } else if (*at < end) {
          p.offset = static_cast<int64_t>(at->value());
          broker_
              .Scan(topic, PartitionId(static_cast<uint32_t>(p.partition)), *at, 1, 1,
                    [&p](const DecodedRecord& rec) { p.timestamp = rec.timestamp_us / 1000; })
              .IgnoreError();
        }
      }
    }
  }
  if (!r.ok()) {
    return call.Fail(StrCat("a malformed ListOffsets request: ", r.error()));
  }
  Response resp(call.header, false);
  Writer& w = resp.w();
  if (v >= 2) w.Int32(0);  // throttle time
  WriteTopics(w, topics, [&w, v](const Part& p) {
    w.Int32(p.partition);
    w.Int16(p.error);
    w.Int64(p.timestamp);
    w.Int64(p.offset);
    if (v >= 4) w.Int32(0);  // leader epoch
  });
  call.Respond(std::move(resp).Finish());
}

// ---------------------------------------------------------------------------------------------
// Fetch

struct FetchCall : std::enable_shared_from_this<FetchCall> {
  struct Part {
    std::string topic;
    int32_t partition = 0;
    int64_t offset = 0;
    int32_t max_bytes = 0;
  };
  std::shared_ptr<KafkaServer::Impl::Call> call;
  std::shared_ptr<KafkaServer::Impl> server;
  int32_t max_wait_ms = 0;
  int32_t min_bytes = 0;
  int32_t max_bytes = 0;
  std::vector<Part> parts;  // in request order
  absl::Time deadline;

  absl::Mutex mu;
  bool answered ABSL_GUARDED_BY(mu) = false;
  bool attempt_queued ABSL_GUARDED_BY(mu) = false;
  bool timer_set ABSL_GUARDED_BY(mu) = false;

  // Reads every partition and answers, or waits for more records when fewer than min_bytes
  // were found and the wait is not over.
  void Attempt(bool final);
  // New records in a partition, or the wait is over: another attempt, unless one is queued.
  void Wake(bool final);
};

void FetchCall::Wake(bool final) {
  {
    absl::MutexLock lock(&mu);
    if (answered || (attempt_queued && !final)) return;
    attempt_queued = true;
  }
  server->pool_.Schedule([self = shared_from_this(), final] { self->Attempt(final); });
}

void FetchCall::Attempt(bool final) {
  {
    absl::MutexLock lock(&mu);
    if (answered) return;
    attempt_queued = false;
  }
  broker::Broker& broker = server->broker_;
  const int16_t v = call->header.api_version;
  Response resp(call->header, false);
  Writer& w = resp.w();
  // Room for the records a full answer holds, so that the buffer grows once.
  w.buffer().reserve(std::min<size_t>(static_cast<size_t>(std::max(max_bytes, 0)), 16u << 20) +
                     4096);
  w.Int32(0);  // throttle time
  if (v >= 7) {
    w.Int16(kafka::kNone);
    w.Int32(0);  // session id: no fetch sessions, every request is full
  }
  // Partitions grouped under their topics, in request order.
  std::vector<std::pair<std::string_view, std::vector<const Part*>>> grouped;
  for (const Part& p : parts) {
    if (grouped.empty() || grouped.back().first != p.topic) grouped.push_back({p.topic, {}});
    grouped.back().second.push_back(&p);
  }
  size_t total = 0;
  bool error = false;
  std::vector<const Part*> waiting;  // at their end: woken by the next append
  w.ArrayLength(static_cast<int32_t>(grouped.size()), false);
  for (const auto& [topic, group] : grouped) {
    w.String(topic, false);
    w.ArrayLength(static_cast<int32_t>(group.size()), false);
    for (const Part* p : group) {
      w.Int32(p->partition);
      const PartitionId pid(static_cast<uint32_t>(std::max(p->partition, 0)));
      absl::StatusOr<std::pair<Offset, Offset>> bounds =
          p->partition < 0 ? absl::NotFoundError("negative partition")
                           : broker.Bounds(p->topic, pid);
      ErrorCode code = kafka::kNone;
      int64_t start = -1;
      int64_t end = -1;
      if (!bounds.ok()) {
        code = bounds.status().code() == absl::StatusCode::kInvalidArgument
                   ? kafka::kUnknownTopicOrPartition
                   : ErrorFor(bounds.status());
      } else {
        start = static_cast<int64_t>(bounds->first.value());
        end = static_cast<int64_t>(bounds->second.value());
        if (p->offset < start || p->offset > end) code = kafka::kOffsetOutOfRange;
      }
      // Records: batches of what Scan returns, up to the partition's and the request's
      // limits; the first batch of the response goes whatever its size (KIP-74).
      // The partition's fields, then its records written in place after them; the error code
      // is patched once the reads say.
      const size_t code_at = w.size();
      w.Int16(code);
      w.Int64(end);    // high watermark
      w.Int64(end);    // last stable offset: no transactions
      if (v >= 5) w.Int64(start);
      w.ArrayLength(-1, false);  // aborted transactions: none
      if (v >= 11) w.Int32(-1);  // preferred read replica: this one
      const size_t records_at = w.size();
      w.Int32(0);  // the records' size, patched below
      const size_t first = w.size();
      auto wrote = [&w, first] { return w.size() - first; };
      if (code == kafka::kNone && p->offset < end) {
        int64_t next = p->offset;
        const size_t limit = static_cast<size_t>(std::max(p->max_bytes, 1));
        const size_t request_limit = static_cast<size_t>(std::max(max_bytes, 1));
        while (next < end && wrote() < limit) {
          const size_t used = total + wrote();
          if (used >= request_limit && used > 0) break;
          const size_t room = std::min(limit - wrote(), request_limit - used);
          kafka::BatchWriter batch(&w.buffer());
          bool begun = false;
          absl::Status st = broker.Scan(
              p->topic, pid, Offset(static_cast<uint64_t>(next)), kFetchScanRecords,
              room, [&](const DecodedRecord& rec) {
                const int64_t ts = rec.timestamp_us / 1000;
                if (!begun) {
                  batch.Begin(static_cast<int64_t>(rec.offset.value()), ts);
                  begun = true;
                }
                batch.Add(static_cast<int64_t>(rec.offset.value()), ts,
                          rec.key.empty() ? std::nullopt
                                          : std::optional<std::string_view>(rec.key),
                          rec.data, rec.headers);
                next = static_cast<int64_t>(rec.offset.value()) + 1;
              });
          const size_t batch_bytes = batch.Finish();
          if (!st.ok()) {
            if (wrote() == 0) code = ErrorFor(st);
            break;
          }
          if (batch_bytes == 0) break;
        }
      }
      if (code != kafka::kNone) error = true;
      if (code == kafka::kNone && p->offset >= end) waiting.push_back(p);
      total += wrote();
      w.PatchInt16(code_at, code);
      w.PatchInt32(records_at, static_cast<int32_t>(wrote()));
    }
  }

  const bool enough = total >= static_cast<size_t>(std::max(min_bytes, 1)) || error;
  if (!enough && !final && max_wait_ms > 0 && absl::Now() < deadline) {
    // Wait for an append to any partition at its end, or for the deadline.
    bool set_timer = false;
    {
      absl::MutexLock lock(&mu);
      set_timer = !timer_set;
      timer_set = true;
    }
    std::weak_ptr<FetchCall> weak = weak_from_this();
    for (const Part* p : waiting) {
      broker.WhenReadable(p->topic, PartitionId(static_cast<uint32_t>(p->partition)),
                          Offset(static_cast<uint64_t>(p->offset)), weak, [weak] {
                            if (auto self = weak.lock()) self->Wake(false);
                          });
    }
    if (set_timer) {
      server->pool_.ScheduleAfter(deadline - absl::Now(), [self = shared_from_this()] {
        self->Wake(true);
      });
    }
    return;
  }
  {
    absl::MutexLock lock(&mu);
    if (answered) return;
    answered = true;
  }
  call->Respond(std::move(resp).Finish());
}

void KafkaServer::Impl::Fetch(std::shared_ptr<Call> call) {
  const int16_t v = call->header.api_version;
  auto fetch = std::make_shared<FetchCall>();
  fetch->call = call;
  fetch->server = shared_from_this();
  Reader r(call->frame);
  kafka::ReadRequestHeader(r);
  r.Int32();  // replica id
  fetch->max_wait_ms = std::clamp(r.Int32(), 0, kMaxFetchWaitMs);
  fetch->min_bytes = r.Int32();
  fetch->max_bytes = r.Int32();
  r.Int8();  // isolation level: every stored record is committed
  if (v >= 7) {
    r.Int32();  // session id
    r.Int32();  // session epoch: sessions are not kept, every fetch lists its partitions
  }
  const int32_t n_topics = r.ArrayCount(false, 6);
  for (int32_t t = 0; t < n_topics && r.ok(); ++t) {
    std::string topic(r.String(false));
    const int32_t n_parts = r.ArrayCount(false, 16);
    for (int32_t i = 0; i < n_parts && r.ok(); ++i) {
      FetchCall::Part& p = fetch->parts.emplace_back();
      p.topic = topic;
      p.partition = r.Int32();
      if (v >= 9) r.Int32();  // current leader epoch
      p.offset = r.Int64();
      if (v >= 5) r.Int64();  // log start offset: followers only
      p.max_bytes = r.Int32();
    }
  }
  // Forgotten topics (v7+) and the rack id (v11) are not used.
  if (!r.ok()) {
    return call->Fail(StrCat("a malformed Fetch request: ", r.error()));
  }
  fetch->deadline = absl::Now() + absl::Milliseconds(fetch->max_wait_ms);
  fetch->Attempt(false);
}

// ---------------------------------------------------------------------------------------------

KafkaServer::KafkaServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaServer::~KafkaServer() { impl_->Stop(); }

const std::string& KafkaServer::address() const { return impl_->address(); }

absl::StatusOr<std::unique_ptr<KafkaServer>> KafkaServer::Start(const KafkaOptions& options,
                                                                broker::Broker& broker,
                                                                WorkerPool& pool,
                                                                prometheus::Registry& registry) {
  auto impl = std::make_shared<Impl>(options, broker, pool, registry);
  RETURN_IF_ERROR(impl->Listen());
  return std::unique_ptr<KafkaServer>(new KafkaServer(std::move(impl)));
}

}  // namespace nodata::server
