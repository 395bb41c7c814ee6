#include "convert.h"

#include <cstdio>
#include <random>

namespace nodata::client::internal {
namespace {

using Clock = std::chrono::system_clock;

void ToTimestamp(Clock::time_point t, google::protobuf::Timestamp& out) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  int64_t secs = ns / 1'000'000'000;
  int64_t nanos = ns % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    --secs;
  }
  out.set_seconds(secs);
  out.set_nanos(static_cast<int32_t>(nanos));
}

Clock::time_point FromTimestamp(const google::protobuf::Timestamp& t) {
  auto d = std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos());
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(d));
}

}  // namespace

void ToProto(Event&& in, nodata::v1::Event& out) {
  out.set_topic(std::move(in.topic));
  out.set_id(std::move(in.id));
  out.set_key(std::move(in.key));
  out.set_data(std::move(in.data));
  if (in.timestamp) ToTimestamp(*in.timestamp, *out.mutable_timestamp());
  auto& headers = *out.mutable_headers();
  for (auto& [k, v] : in.headers) headers[k] = std::move(v);
}

Ack FromProto(const nodata::v1::Ack& in) {
  return Ack{.topic = in.topic(),
             .id = in.id(),
             .partition = in.partition(),
             .offset = in.offset(),
             .duplicate = in.duplicate()};
}

Record FromProto(nodata::v1::Record&& in) {
  Record r;
  nodata::v1::Event& e = *in.mutable_event();
  r.event.topic = std::move(*e.mutable_topic());
  r.event.id = std::move(*e.mutable_id());
  r.event.key = std::move(*e.mutable_key());
  r.event.data = std::move(*e.mutable_data());
  if (e.has_timestamp()) r.event.timestamp = FromTimestamp(e.timestamp());
  for (const auto& [k, v] : e.headers()) r.event.headers.emplace(k, v);
  r.partition = in.partition();
  r.offset = in.offset();
  r.ingest_time = FromTimestamp(in.ingest_time());
  return r;
}

void ToProto(const StartPosition& in, nodata::v1::StartPosition& out) {
  switch (in.kind) {
    case StartPosition::Kind::kDefault:
      break;
    case StartPosition::Kind::kEarliest:
      out.set_earliest(true);
      break;
    case StartPosition::Kind::kLatest:
      out.set_latest(true);
      break;
    case StartPosition::Kind::kCommitted:
      out.set_committed(true);
      break;
    case StartPosition::Kind::kOffset:
      out.set_offset(in.offset);
      break;
    case StartPosition::Kind::kTime:
      ToTimestamp(in.time, *out.mutable_timestamp());
      break;
  }
}

size_t EventBytes(const Event& e) {
  // Per-field framing is a few bytes; 16 covers it and the timestamp.
  size_t n = e.topic.size() + e.id.size() + e.key.size() + e.data.size() + 16;
  for (const auto& [k, v] : e.headers) n += k.size() + v.size() + 8;
  return n;
}

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

bool IsRetryable(absl::StatusCode code) {
  // CANCELLED reaches the SDK only from the server side (the end of a server's shutdown grace
  // period, a proxy): the SDK's own cancellations are told apart before this is asked.
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kCancelled;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int max_backoff_ms) {
  grpc::ChannelArguments args;
  // gRPC's own reconnect backoff grows to minutes by default; keep it at the SDK's scale.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, std::max(100, max_backoff_ms));
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::string RandomHex128() {
  std::random_device rd;
  char buf[33];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

}  // namespace nodata::client::internal
