#include "cli/client_util.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "absl/time/time.h"

namespace nodata::cli {

namespace {
// The server the command talks to, for error messages.
std::string& ServerAddress() {
  static std::string address;
  return address;
}
}  // namespace

namespace {

// Adds `authorization: Bearer TOKEN` to every call of a channel: call credentials would be
// dropped on a plaintext channel, and a token on loopback without TLS is allowed.
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
  const std::string& value_;
};

class BearerFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerFactory(std::string token) : value_("Bearer " + std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerInterceptor(value_);
  }

 private:
  const std::string value_;
};

}  // namespace

std::shared_ptr<grpc::Channel> Connect(const ClientOptions& c) {
  ServerAddress() = c.server;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (c.tls_enabled()) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = c.tls_ca_pem;  // empty: gRPC's default roots
    tls.pem_cert_chain = c.tls_cert_pem;
    tls.pem_private_key = c.tls_key_pem;
    if (!c.tls_server_name.empty()) args.SetSslTargetNameOverride(c.tls_server_name);
    credentials = grpc::SslCredentials(tls);
  }
  if (c.token.empty()) return grpc::CreateCustomChannel(c.server, credentials, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> bearer;
  bearer.push_back(std::make_unique<BearerFactory>(c.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(c.server, credentials, args,
                                                                 std::move(bearer));
}

namespace {

bool ReadPem(const char* flag, const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string(flag) + " " + path + ": cannot read it (" + std::strerror(errno) + ")";
    return false;
  }
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (out->find("-----BEGIN ") == std::string::npos) {
    *error = std::string(flag) + " " + path + ": no PEM block (-----BEGIN ...) in it";
    return false;
  }
  return true;
}

}  // namespace

bool LoadClientTls(ClientOptions* c, std::string* error) {
  if (c->tls_cert.empty() != c->tls_key.empty()) {
    *error = "--tls-cert and --tls-key go together (a client certificate and its key)";
    return false;
  }
  if (!c->tls_ca.empty() && !ReadPem("--tls-ca", c->tls_ca, &c->tls_ca_pem, error)) return false;
  if (!c->tls_cert.empty() && !ReadPem("--tls-cert", c->tls_cert, &c->tls_cert_pem, error)) {
    return false;
  }
  if (!c->tls_key.empty() && !ReadPem("--tls-key", c->tls_key, &c->tls_key_pem, error)) {
    return false;
  }
  return true;
}

bool NormalizeAddress(const std::string& address, uint16_t default_port, std::string* out,
                      std::string* error) {
  // gRPC target URIs (unix:PATH, dns:///HOST:PORT, ipv4:ADDR:PORT, ipv6:[ADDR]:PORT) as given.
  for (const char* scheme : {"unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:"}) {
    if (address.rfind(scheme, 0) == 0 && address.size() > std::strlen(scheme)) {
      *out = address;
      return true;
    }
  }
  std::string host, port;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos) {
      *error = "\"" + address + "\" has no closing ']'";
      return false;
    }
    host = address.substr(0, close + 1);
    const std::string rest = address.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        *error = "\"" + address + "\": expected ':' after ']'";
        return false;
      }
      port = rest.substr(1);
      if (port.empty()) port = "?";
    }
  } else {
    const size_t colon = address.rfind(':');
    if (colon != std::string::npos && address.find(':') != colon) {
      *error = "\"" + address + "\": write an IPv6 address as [ADDRESS]:PORT";
      return false;
    }
    host = address.substr(0, colon);
    if (colon != std::string::npos) port = address.substr(colon + 1);
    if (colon != std::string::npos && port.empty()) port = "?";
  }
  if (host.empty() || host == "[]" ||
      host.find_first_of(" \t/") != std::string::npos) {
    *error = "\"" + address + "\" names no host (want HOST:PORT)";
    return false;
  }
  if (port.empty()) {
    if (default_port == 0) {
      *error = "\"" + address + "\" has no port (want HOST:PORT)";
      return false;
    }
    port = std::to_string(default_port);
  }
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) < (default_port == 0 ? 0 : 1) || std::stoi(port) > 65535) {
    *error = "\"" + address + "\": the port must be a number from 1 to 65535";
    return false;
  }
  *out = host + ":" + port;
  return true;
}

std::string CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",          "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",   "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",        "UNAVAILABLE",    "DATA_LOSS",
      "UNAUTHENTICATED"};
  int i = static_cast<int>(code);
  return (i >= 0 && i <= 16) ? kNames[i] : std::to_string(i);
}

int Fail(const grpc::Status& s) {
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE && !ServerAddress().empty()) {
    const std::string& m = s.error_message();
    if (m.find("Ssl handshake failed") != std::string::npos ||
        m.find("certificate") != std::string::npos) {
      std::cerr << "nodata: UNAVAILABLE: the TLS handshake with " << ServerAddress()
                << " failed (--tls-ca must name the CA of the server's certificate; a server "
                   "started with --tls-client-ca also wants --tls-cert and --tls-key): "
                << m << "\n";
      return 1;
    }
    std::cerr << "nodata: UNAVAILABLE: cannot reach the server at " << ServerAddress()
              << " (is `nodata serve` running there, with TLS only when --tls or --tls-ca is "
                 "given? --server or NODATA_SERVER): "
              << m << "\n";
    return 1;
  }
  std::cerr << "nodata: " << CodeName(s.error_code()) << ": " << s.error_message() << "\n";
  return 1;
}

int Fail(const std::string& message) {
  std::cerr << "nodata: " << message << "\n";
  return 1;
}

bool ParseDuration(const std::string& value, int64_t* micros) {
  size_t used = 0;
  long long n;
  try {
    n = std::stoll(value, &used);
  } catch (const std::exception&) {
    return false;
  }
  if (n <= 0) return false;
  const std::string unit = value.substr(used);
  int64_t scale;
  if (unit == "ms") {
    scale = 1000;
  } else if (unit == "s") {
    scale = 1000000;
  } else if (unit == "m") {
    scale = 60LL * 1000000;
  } else if (unit == "h") {
    scale = 3600LL * 1000000;
  } else if (unit == "d") {
    scale = 86400LL * 1000000;
  } else {
    return false;
  }
  if (n > INT64_MAX / scale) return false;
  *micros = n * scale;
  return true;
}

std::string HumanBytes(uint64_t bytes) {
  const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  char out[32];
  std::snprintf(out, sizeof out, unit == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[unit]);
  return out;
}

std::unique_ptr<grpc::ClientContext> Context(int seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

std::string ParsePosition(const std::string& s, nodata::v1::StartPosition* out) {
  if (s == "earliest") {
    out->set_earliest(true);
  } else if (s == "latest") {
    out->set_latest(true);
  } else if (s == "committed") {
    out->set_committed(true);
  } else if (s.rfind("offset:", 0) == 0) {
    const std::string n = s.substr(7);
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos || n.size() > 19) {
      return "offset:N wants a non-negative integer, got \"" + n + "\"";
    }
    out->set_offset(std::stoull(n));
  } else if (s.rfind("time:", 0) == 0) {
    absl::Time t;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, s.substr(5), &t, &error)) {
      return "time: wants an RFC 3339 time such as 2026-11-26T10:00:00Z (" + error + ")";
    }
    const int64_t us = absl::ToUnixMicros(t);
    out->mutable_timestamp()->set_seconds(us / 1000000 - (us % 1000000 < 0 ? 1 : 0));
    out->mutable_timestamp()->set_nanos(static_cast<int32_t>(((us % 1000000) + 1000000) % 1000000) * 1000);
  } else {
    return "a position is earliest, latest, committed, offset:N or time:RFC3339; got \"" + s + "\"";
  }
  return "";
}

std::string ReadConfigFlag(const std::string& flag, std::string* out) {
  if (flag.empty() || flag[0] != '@') {
    *out = flag;
    return "";
  }
  std::ifstream in(flag.substr(1), std::ios::binary);
  if (!in) return "cannot read " + flag.substr(1);
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) return "cannot read " + flag.substr(1);
  return "";
}

}  // namespace nodata::cli
