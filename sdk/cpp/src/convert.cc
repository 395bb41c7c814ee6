#include "convert.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "absl/strings/str_cat.h"

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

namespace {

// Adds `authorization: Bearer TOKEN` to every call (call credentials would be dropped on a
// plaintext channel, and a token over loopback without TLS is allowed).
class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string& value) : value_(value) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", value_);
    }
    methods->Proceed();
  }

 private:
  const std::string& value_;  // the factory's, which the channel keeps
};

class BearerFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerFactory(const std::string& token) : value_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerInterceptor(value_);
  }

 private:
  const std::string value_;
};

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, int max_backoff_ms,
                                           const TlsOptions& tls, const std::string& token) {
  grpc::ChannelArguments args;
  // gRPC's own reconnect backoff grows to minutes by default; keep it at the SDK's scale. The
  // connection attempt's own timeout (GRPC_ARG_MIN_RECONNECT_BACKOFF_MS) stays at gRPC's 20 s: a
  // TLS handshake takes round trips that a short one would cut off.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, std::max(100, max_backoff_ms));
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (tls.enabled) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = tls.ca_pem;  // empty: gRPC's default roots
    ssl.pem_cert_chain = tls.cert_pem;
    ssl.pem_private_key = tls.key_pem;
    if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
    credentials = grpc::SslCredentials(ssl);
  }
  if (token.empty()) return grpc::CreateCustomChannel(address, credentials, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> bearer;
  bearer.push_back(std::make_unique<BearerFactory>(token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, credentials, args,
                                                                 std::move(bearer));
}

bool DriveConnection(grpc::Channel& channel, std::chrono::steady_clock::time_point until,
                     std::chrono::milliseconds slice) {
  if (channel.GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) return true;
  const auto now = std::chrono::steady_clock::now();
  if (now >= until) return false;
  const auto wait = std::min<std::chrono::steady_clock::duration>(until - now, slice);
  return channel.WaitForConnected(std::chrono::system_clock::now() + wait);
}

std::string RandomHex128() {
  std::random_device rd;
  char buf[33];
  std::snprintf(buf, sizeof buf, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

}  // namespace nodata::client::internal

namespace nodata::client {
namespace {

absl::Status ReadPem(const char* what, const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": cannot read it (", std::strerror(errno), ")"));
  }
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (out->find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": no PEM block (-----BEGIN ...) in it"));
  }
  return absl::OkStatus();
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace

absl::StatusOr<TlsOptions> TlsOptions::FromFiles(const std::string& ca_file,
                                                 const std::string& cert_file,
                                                 const std::string& key_file) {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate and its key go together (tls cert and key files)");
  }
  TlsOptions tls;
  tls.enabled = true;
  if (!ca_file.empty()) {
    if (absl::Status s = ReadPem("tls CA file", ca_file, &tls.ca_pem); !s.ok()) return s;
  }
  if (!cert_file.empty()) {
    if (absl::Status s = ReadPem("tls cert file", cert_file, &tls.cert_pem); !s.ok()) return s;
    if (absl::Status s = ReadPem("tls key file", key_file, &tls.key_pem); !s.ok()) return s;
  }
  return tls;
}

absl::StatusOr<TlsOptions> TlsOptions::FromEnvironment() {
  const std::string ca = Env("NODATA_TLS_CA");
  const std::string cert = Env("NODATA_TLS_CERT");
  const std::string key = Env("NODATA_TLS_KEY");
  const std::string on = Env("NODATA_TLS");
  TlsOptions tls;
  if (ca.empty() && cert.empty() && key.empty() && on != "1" && on != "true") return tls;
  absl::StatusOr<TlsOptions> files = FromFiles(ca, cert, key);
  if (!files.ok()) return files.status();
  tls = *std::move(files);
  tls.server_name = Env("NODATA_TLS_SERVER_NAME");
  return tls;
}

}  // namespace nodata::client
