#include "server/http_server.h"

#include <civetweb.h>
#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "common/status.h"
#include "common/strings.h"
#include "server/aggregation_api.h"
#include "server/aggregation_http.h"
#include "server/audit_log.h"
#include "server/auth.h"
#include "server/civetweb_tls.h"
#include "server/tls.h"

namespace nodata::server {

struct HttpServer::Context {
  std::function<std::string()> metrics;
  std::function<absl::Status()> health;
  aggregate::Manager* aggregations = nullptr;
  TlsMaterial* tls = nullptr;  // null: plain HTTP
  const CallAuth* auth = nullptr;  // null or off: no bearer tokens
  bool metrics_auth = false;
  AuditLog* audit = nullptr;  // null: no audit log
  std::atomic<bool> stopping{false};
  mg_context* ctx = nullptr;
};

namespace {

// The connection header lines of a response, as civetweb decides from the request:
// "Connection: close", or the idle timeout of a connection that persists.
const char* ConnectionHeader(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  const char* connection = mg_get_header(conn, "Connection");
  const bool http11 = info->http_version != nullptr && std::strcmp(info->http_version, "1.1") == 0;
  if (connection != nullptr && strcasestr(connection, "close") != nullptr) {
    return "Connection: close\r\n";
  }
  // The idle timeout, so that a client stops reusing a connection before the server closes it
  // (a request sent as it closes would fail).
  constexpr const char* kKeepAlive = "Keep-Alive: timeout=2\r\n";
  if (connection != nullptr && strcasestr(connection, "keep-alive") != nullptr) {
    return http11 ? kKeepAlive : "Connection: keep-alive\r\nKeep-Alive: timeout=2\r\n";
  }
  return http11 ? kKeepAlive : "Connection: close\r\n";
}

}  // namespace

void WriteResponse(mg_connection* conn, int code, std::string_view content_type,
                   std::string_view body, std::string_view extra_headers) {
  // Header and body in one write: one segment for a small response.
  const std::string response =
      StrCat("HTTP/1.1 ", code, " ", mg_get_response_code_text(conn, code),
             "\r\nContent-Type: ", content_type, "\r\nContent-Length: ", body.size(), "\r\n",
             extra_headers, ConnectionHeader(conn), "\r\n", body);
  mg_write(conn, response.data(), response.size());
}

namespace {

void Reply(mg_connection* conn, int code, const char* content_type, const std::string& body) {
  WriteResponse(conn, code, content_type, body);
}

bool IsGet(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  return std::strcmp(info->request_method, "GET") == 0 ||
         std::strcmp(info->request_method, "HEAD") == 0;
}

// Writes the audit line of a refused request (`code` 401 or 403).
void AuditRefusal(mg_connection* conn, const HttpServer::Context& context, int code,
                  std::string principal, std::string message) {
  if (context.audit == nullptr) return;
  const mg_request_info* info = mg_get_request_info(conn);
  AuditEntry entry;
  entry.principal = std::move(principal);
  entry.peer = StrCat("http:", info->remote_addr, ":", info->remote_port);
  entry.call = StrCat(info->request_method, " ", info->request_uri);
  entry.status = code == 401 ? "UNAUTHENTICATED" : "PERMISSION_DENIED";
  entry.message = std::move(message);
  context.audit->Write(entry);
}

// With client CAs (--tls-client-ca), every path but /healthz wants a client certificate; one
// that was sent has been verified in the handshake. False after answering 401.
bool Authenticated(mg_connection* conn, const HttpServer::Context& context) {
  if (context.tls == nullptr || !context.tls->requires_client_certificates()) return true;
  if (mg_get_request_info(conn)->client_cert != nullptr) return true;
  Reply(conn, 401, "text/plain",
        "a client certificate is required: the server was started with --tls-client-ca\n");
  AuditRefusal(conn, context, 401, "", "no client certificate");
  return false;
}

// The subject CN of the client certificate verified in the handshake; empty without one.
std::string CertificateCommonName(mg_connection* conn) {
  const mg_client_cert* cert = mg_get_request_info(conn)->client_cert;
  if (cert == nullptr || cert->peer_cert == nullptr) return {};
  X509_NAME* subject = X509_get_subject_name(static_cast<X509*>(cert->peer_cert));
  const int at = subject != nullptr ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
  if (at < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return {};
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

// The principal of the bearer token, or without one of the client certificate (null with
// authentication off); after answering 401, an error.
absl::StatusOr<std::shared_ptr<const Principal>> Caller(mg_connection* conn,
                                                        const HttpServer::Context& context) {
  if (context.auth == nullptr || !context.auth->enabled()) {
    return std::shared_ptr<const Principal>();
  }
  const char* header = mg_get_header(conn, "Authorization");
  absl::StatusOr<std::shared_ptr<const Principal>> caller = context.auth->Caller(
      header != nullptr ? header : "", false, header == nullptr ? CertificateCommonName(conn) : "");
  if (!caller.ok()) {
    WriteResponse(conn, 401, "text/plain", StrCat(caller.status().message(), "\n"),
                  "WWW-Authenticate: Bearer\r\n");
    AuditRefusal(conn, context, 401, "", std::string(ToStd(caller.status().message())));
  }
  return caller;
}

int Metrics(mg_connection* conn, void* data) {
  auto* context = static_cast<HttpServer::Context*>(data);
  if (!Authenticated(conn, *context)) return 401;
  if (context->metrics_auth && !Caller(conn, *context).ok()) return 401;
  if (!IsGet(conn)) {
    Reply(conn, 405, "text/plain", "method not allowed\n");
    return 405;
  }
  Reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", context->metrics());
  return 200;
}

// 200 "ok", or 503 with why the server needs a restart (a failed fdatasync or write of the
// journal or of a partition's log).
int Healthz(mg_connection* conn, void* data) {
  const auto* context = static_cast<HttpServer::Context*>(data);
  const absl::Status s = context->health ? context->health() : absl::OkStatus();
  if (!s.ok()) {
    Reply(conn, 503, "text/plain",
          StrCat("storage failed: ", s.message(),
                 "\nwrites are refused until the server is restarted; it then recovers from what "
                 "is on disk\n"));
    return 503;
  }
  Reply(conn, 200, "text/plain", "ok\n");
  return 200;
}

// Answers 429 (with Retry-After, in whole seconds) and returns true when the caller is over
// --quota-requests: its principal, or with authentication off its address (the key gRPC uses).
bool OverQuota(mg_connection* conn, const HttpServer::Context& context, const Principal* caller) {
  if (context.auth == nullptr || context.auth->quotas() == nullptr ||
      !context.auth->quotas()->limits_rates()) {
    return false;
  }
  const absl::Status s = context.auth->Admit(
      caller != nullptr ? caller->name : mg_get_request_info(conn)->remote_addr, 0);
  if (s.ok()) return false;
  const int64_t delay_us = std::max<int64_t>(RetryDelayMicros(s), 0);
  WriteResponse(conn, 429, "application/json",
                StrCat("{\"error\":{\"code\":429,\"status\":\"RESOURCE_EXHAUSTED\",\"message\":",
                       JsonString(ToStd(s.message())), "}}\n"),
                StrCat("Retry-After: ", (delay_us + 999'999) / 1'000'000, "\r\n"));
  return true;
}

int Aggregations(mg_connection* conn, void* data) {
  auto* context = static_cast<HttpServer::Context*>(data);
  if (!Authenticated(conn, *context)) return 401;
  absl::StatusOr<std::shared_ptr<const Principal>> caller = Caller(conn, *context);
  if (!caller.ok()) return 401;
  if (OverQuota(conn, *context, caller->get())) return 429;
  const int code = ServeAggregations(conn, *context->aggregations, context->stopping,
                                     [&caller](std::string_view name) {
                                       return *caller ? Authorize(**caller, Action::kQuery, name)
                                                      : absl::OkStatus();
                                     });
  if (code == 403 && *caller) {
    AuditRefusal(conn, *context, 403, (*caller)->name, "lacks the scope query on the aggregation");
  }
  return code;
}

int NotFound(mg_connection* conn, void* data) {
  if (!Authenticated(conn, *static_cast<HttpServer::Context*>(data))) return 401;
  Reply(conn, 404, "text/plain", "not found\n");
  return 404;
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<Context> context) : context_(std::move(context)) {}

HttpServer::~HttpServer() {
  context_->stopping = true;
  if (context_->ctx) mg_stop(context_->ctx);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, std::function<std::string()> metrics,
    std::function<absl::Status()> health, aggregate::Manager& aggregations, TlsMaterial* tls,
    const CallAuth* auth, bool metrics_auth, AuditLog* audit) {
  if (tls != nullptr) RETURN_IF_ERROR(LoadCivetwebTlsShim());
  // Once per process, with OpenSSL when this server speaks TLS.
  static const unsigned features = mg_init_library(tls != nullptr ? MG_FEATURES_TLS : 0);
  if (tls != nullptr && (features & MG_FEATURES_TLS) == 0) {
    return absl::FailedPreconditionError(
        "HTTP cannot serve TLS: civetweb could not load OpenSSL (libcrypto.so: libssl-dev)");
  }
  auto context = std::make_unique<Context>();
  context->metrics = std::move(metrics);
  context->health = std::move(health);
  context->aggregations = &aggregations;
  context->tls = tls;
  context->auth = auth;
  context->metrics_auth = auth != nullptr && auth->enabled() && metrics_auth;
  context->audit = audit;
  // A watch (Server-Sent Events) holds a thread while it is open, and so does a connection until
  // its request has arrived: a request must arrive, and every write of a response go out, within
  // three seconds, so that slow or stalled clients give their threads back (a stalled watcher's
  // connection is closed). URIs reach the handlers
  // undecoded: an aggregation key's "%2F" must stay inside its path segment (no files are
  // served, so nothing else depends on the decoding). Connections persist (HTTP/1.1) for the
  // next request, as a dashboard's or a service's client keeps them; one idle for two seconds
  // gives its thread back (ConnectionHeader tells clients).
  // No Nagle delay: a response on a persistent connection would otherwise wait for the
  // client's delayed acknowledgement (up to 40 ms) behind an earlier small write.
  // A port ending in 's' is civetweb's TLS port; the SSL_CTX is ours (external_ssl_ctx).
  const std::string listening = tls != nullptr ? StrCat(listen, "s") : listen;
  const char* options[] = {"listening_ports", listening.c_str(), "num_threads", "64",
                           "request_timeout_ms", "3000",
                           "enable_keep_alive", "yes", "keep_alive_timeout_ms", "2000",
                           "tcp_nodelay", "1", "decode_url", "no", nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof callbacks);
  if (tls != nullptr) {
    // Called with a null *ssl_ctx to make the context and with it to free it; 1: ours.
    callbacks.external_ssl_ctx = [](void** ssl_ctx, void* user_data) {
      auto* context = static_cast<Context*>(user_data);
      if (*ssl_ctx != nullptr) {
        TlsMaterial::FreeSslContext(*ssl_ctx);
        return 1;
      }
      *ssl_ctx = context->tls->NewSslContext();
      return *ssl_ctx != nullptr ? 1 : -1;
    };
  }
  context->ctx = mg_start(&callbacks, context.get(), options);
  if (context->ctx == nullptr) {
    return absl::UnavailableError(
        StrCat("cannot listen for HTTP on ", listen, " (address in use, or not a local address)"));
  }
  mg_set_request_handler(context->ctx, "/metrics$", Metrics, context.get());
  mg_set_request_handler(context->ctx, "/healthz$", Healthz, context.get());
  mg_set_request_handler(context->ctx, "/v1/aggregations", Aggregations, context.get());
  mg_set_request_handler(context->ctx, "/", NotFound, context.get());
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(context)));
  mg_server_port ports[4];
  int n = mg_get_server_ports(server->context_->ctx, 4, ports);
  std::string host = listen.substr(0, listen.rfind(':'));
  server->address_ = n > 0 ? StrCat(host, ":", ports[0].port) : listen;
  return server;
}

}  // namespace nodata::server
