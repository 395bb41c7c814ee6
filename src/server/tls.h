// TLS for the server's listeners: the certificate, key and client CA files of `serve`
// (--tls-cert, --tls-key, --tls-client-ca), checked with OpenSSL, reloaded on demand (SIGHUP),
// and handed to gRPC (a certificate-config fetcher asked at every handshake) and to HTTP (an
// SSL_CTX whose certificate callback takes the current ones). A reload changes what new
// connections see; connections already open keep theirs.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace nodata::server {

struct TlsFiles {
  std::string cert;       // PEM: the server's certificate, then any intermediates
  std::string key;        // PEM: its private key
  std::string client_ca;  // PEM: CAs a client certificate must chain to (empty: none asked for)
  bool enabled() const { return !cert.empty(); }
};

// The loaded files. Safe for concurrent use.
class TlsMaterial {
 public:
  // What one load read: PEM text and the parsed objects (OpenSSL's, freed with it).
  struct Snapshot;

  // Reads and checks the files: a certificate, a private key that belongs to it, and (when
  // named) at least one CA certificate. INVALID_ARGUMENT naming the file otherwise.
  static absl::StatusOr<std::unique_ptr<TlsMaterial>> Load(TlsFiles files);
  ~TlsMaterial();
  TlsMaterial(const TlsMaterial&) = delete;
  TlsMaterial& operator=(const TlsMaterial&) = delete;

  // Reads the same files again. On any error the current ones stay and the error is returned.
  absl::Status Reload() ABSL_LOCKS_EXCLUDED(mu_);

  std::shared_ptr<const Snapshot> Current() const ABSL_LOCKS_EXCLUDED(mu_);
  bool requires_client_certificates() const { return !files_.client_ca.empty(); }
  // "subject ..., valid until ..." of the current certificate, for logs.
  std::string Describe() const;
  // The current certificate's notAfter as Unix seconds.
  int64_t NotAfterSeconds() const;

  // gRPC server credentials over this material: every handshake takes the current certificate
  // (and client CAs). With client CAs, a client must present a certificate that chains to one.
  // The material must outlive the server. Call once: one listening port per material.
  std::shared_ptr<grpc::ServerCredentials> GrpcCredentials();

  // A new SSL_CTX (OpenSSL's, as void* for civetweb's external_ssl_ctx callback) whose handshakes
  // take the current certificate. With client CAs it asks for a client certificate and verifies
  // one that is sent; the HTTP handlers decide which paths need one. Free with FreeSslContext.
  void* NewSslContext();
  static void FreeSslContext(void* ssl_ctx);

 private:
  friend struct GrpcConfigFetcher;
  explicit TlsMaterial(TlsFiles files, std::shared_ptr<const Snapshot> current);

  const TlsFiles files_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Snapshot> current_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 1;
  // The generation gRPC last took (0: none yet).
  uint64_t grpc_generation_ ABSL_GUARDED_BY(mu_) = 0;
};

// Whether a listen address reaches only this machine: 127.0.0.0/8, [::1], localhost, or a
// unix: socket.
bool IsLoopbackAddress(std::string_view address);

}  // namespace nodata::server
