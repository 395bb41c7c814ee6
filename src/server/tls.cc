#include "server/tls.h"

#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <time.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/status.h"
#include "common/strings.h"

namespace nodata::server {

struct TlsMaterial::Snapshot {
  std::string cert_pem;
  std::string key_pem;
  std::string client_ca_pem;
  X509* leaf = nullptr;
  STACK_OF(X509)* chain = nullptr;  // the intermediates after the leaf (may be empty)
  EVP_PKEY* key = nullptr;
  X509_STORE* client_store = nullptr;              // with client CAs only
  STACK_OF(X509_NAME)* client_names = nullptr;     // their subjects, sent to the client
  std::string subject;
  int64_t not_after_s = 0;

  Snapshot() = default;
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  ~Snapshot() {
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    X509_STORE_free(client_store);
    sk_X509_NAME_pop_free(client_names, X509_NAME_free);
  }
};

namespace {

// OpenSSL's queued errors as one line ("" when none), and the queue cleared.
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        StrCat(flag, " ", path, ": cannot read it (", std::strerror(errno), ")"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(StrCat(flag, " ", path, ": cannot read it"));
  }
  return text.str();
}

// Every certificate in `pem`, in order; INVALID_ARGUMENT when there is none or one is damaged.
absl::StatusOr<std::vector<X509*>> ParseCertificates(const std::string& flag,
                                                     const std::string& path,
                                                     const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::vector<X509*> certs;
  ERR_clear_error();
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.push_back(cert);
  }
  // The loop ends at the end of the text (no more PEM blocks) or at a damaged block.
  const unsigned long last = ERR_peek_last_error();
  const bool at_end =
      ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (last != 0 && !at_end) {
    for (X509* c : certs) X509_free(c);
    return absl::InvalidArgumentError(
        StrCat(flag, " ", path, ": a certificate in it cannot be read (", OpenSslErrors(), ")"));
  }
  ERR_clear_error();
  if (certs.empty()) {
    return absl::InvalidArgumentError(
        StrCat(flag, " ", path, ": no PEM certificate (-----BEGIN CERTIFICATE-----) in it"));
  }
  return certs;
}

std::string SubjectOf(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, n > 0 ? static_cast<size_t>(n) : 0);
}

int64_t NotAfterOf(X509* cert) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

absl::StatusOr<std::shared_ptr<const TlsMaterial::Snapshot>> LoadSnapshot(const TlsFiles& files) {
  auto s = std::make_shared<TlsMaterial::Snapshot>();
  ASSIGN_OR_RETURN(s->cert_pem, ReadPemFile("--tls-cert", files.cert));
  ASSIGN_OR_RETURN(s->key_pem, ReadPemFile("--tls-key", files.key));
  ASSIGN_OR_RETURN(std::vector<X509*> certs,
                   ParseCertificates("--tls-cert", files.cert, s->cert_pem));
  s->leaf = certs[0];
  s->chain = sk_X509_new_null();
  for (size_t i = 1; i < certs.size(); ++i) sk_X509_push(s->chain, certs[i]);

  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(s->key_pem.data(), static_cast<int>(s->key_pem.size())), BIO_free);
  ERR_clear_error();
  s->key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (s->key == nullptr) {
    const std::string detail = OpenSslErrors();
    return absl::InvalidArgumentError(StrCat(
        "--tls-key ", files.key, ": no unencrypted PEM private key in it (", detail, ")"));
  }
  if (X509_check_private_key(s->leaf, s->key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(StrCat("--tls-key ", files.key,
                                             " is not the private key of the certificate in ",
                                             "--tls-cert ", files.cert));
  }
  s->subject = SubjectOf(s->leaf);
  s->not_after_s = NotAfterOf(s->leaf);

  if (!files.client_ca.empty()) {
    ASSIGN_OR_RETURN(s->client_ca_pem, ReadPemFile("--tls-client-ca", files.client_ca));
    ASSIGN_OR_RETURN(std::vector<X509*> cas,
                     ParseCertificates("--tls-client-ca", files.client_ca, s->client_ca_pem));
    s->client_store = X509_STORE_new();
    s->client_names = sk_X509_NAME_new_null();
    for (X509* ca : cas) {
      X509_STORE_add_cert(s->client_store, ca);  // takes its own reference
      sk_X509_NAME_push(s->client_names, X509_NAME_dup(X509_get_subject_name(ca)));
      X509_free(ca);
    }
  }
  return std::shared_ptr<const TlsMaterial::Snapshot>(std::move(s));
}

std::string FormatTime(int64_t seconds) {
  time_t t = static_cast<time_t>(seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Per handshake: the current certificate, chain and key, and the client CAs with them.
int UseCurrentCertificate(SSL* ssl, void* arg) {
  std::shared_ptr<const TlsMaterial::Snapshot> s = static_cast<TlsMaterial*>(arg)->Current();
  if (SSL_use_certificate(ssl, s->leaf) != 1 || SSL_use_PrivateKey(ssl, s->key) != 1 ||
      SSL_set1_chain(ssl, s->chain) != 1) {
    return 0;
  }
  if (s->client_store != nullptr) {
    if (SSL_set1_verify_cert_store(ssl, s->client_store) != 1) return 0;
    SSL_set_client_CA_list(ssl, SSL_dup_CA_list(s->client_names));
  }
  return 1;
}

// gRPC server credentials over core credentials this object owns: grpcpp offers no wrapper for
// credentials made with a certificate-config fetcher. Authentication runs in the services, so
// no metadata processor is taken.
class CoreServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit CoreServerCredentials(grpc_server_credentials* creds) : creds_(creds) {}
  ~CoreServerCredentials() override { grpc_server_credentials_release(creds_); }
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), creds_);
  }
  grpc_server_credentials* creds_;
};

}  // namespace

// Asked by gRPC when its listener is set up and at every handshake after.
struct GrpcConfigFetcher {
  static grpc_ssl_certificate_config_reload_status Fetch(
      void* arg, grpc_ssl_server_certificate_config** config) {
    auto* self = static_cast<TlsMaterial*>(arg);
    absl::MutexLock lock(&self->mu_);
    if (self->grpc_generation_ == self->generation_) {
      return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    }
    const TlsMaterial::Snapshot& s = *self->current_;
    grpc_ssl_pem_key_cert_pair pair = {s.key_pem.c_str(), s.cert_pem.c_str()};
    // gRPC wants client CAs in a fetched config even when it asks for no client certificate;
    // then they go unused, and the server's own certificate stands in.
    *config = grpc_ssl_server_certificate_config_create(
        s.client_ca_pem.empty() ? s.cert_pem.c_str() : s.client_ca_pem.c_str(), &pair, 1);
    self->grpc_generation_ = self->generation_;
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
  }
};

TlsMaterial::TlsMaterial(TlsFiles files, std::shared_ptr<const Snapshot> current)
    : files_(std::move(files)), current_(std::move(current)) {}

TlsMaterial::~TlsMaterial() = default;

absl::StatusOr<std::unique_ptr<TlsMaterial>> TlsMaterial::Load(TlsFiles files) {
  if (files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const Snapshot> s, LoadSnapshot(files));
  return std::unique_ptr<TlsMaterial>(new TlsMaterial(std::move(files), std::move(s)));
}

absl::Status TlsMaterial::Reload() {
  ASSIGN_OR_RETURN(std::shared_ptr<const Snapshot> s, LoadSnapshot(files_));
  absl::MutexLock lock(&mu_);
  current_ = std::move(s);
  ++generation_;
  return absl::OkStatus();
}

std::shared_ptr<const TlsMaterial::Snapshot> TlsMaterial::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

std::string TlsMaterial::Describe() const {
  std::shared_ptr<const Snapshot> s = Current();
  return StrCat("subject ", s->subject, ", valid until ", FormatTime(s->not_after_s));
}

int64_t TlsMaterial::NotAfterSeconds() const { return Current()->not_after_s; }

std::shared_ptr<grpc::ServerCredentials> TlsMaterial::GrpcCredentials() {
  const grpc_ssl_client_certificate_request_type request =
      requires_client_certificates() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                     : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  grpc_ssl_server_credentials_options* options =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(
          request, &GrpcConfigFetcher::Fetch, this);
  return std::make_shared<CoreServerCredentials>(
      grpc_ssl_server_credentials_create_with_options(options));
}

void* TlsMaterial::NewSslContext() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_cert_cb(ctx, &UseCurrentCertificate, this);
  // Resumed sessions keep the client certificate they were verified with.
  static constexpr unsigned char kSessionContext[] = "nodata-http";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  if (requires_client_certificates()) SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  return ctx;
}

void TlsMaterial::FreeSslContext(void* ssl_ctx) { SSL_CTX_free(static_cast<SSL_CTX*>(ssl_ctx)); }

bool IsLoopbackAddress(std::string_view address) {
  if (address.starts_with("unix:") || address.starts_with("unix-abstract:")) return true;
  for (std::string_view scheme : {"dns:///", "dns:", "ipv4:", "ipv6:"}) {
    if (address.starts_with(scheme)) {
      address.remove_prefix(scheme.size());
      break;
    }
  }
  std::string host;
  if (address.starts_with('[')) {
    const size_t end = address.find(']');
    if (end == std::string_view::npos) return false;
    host = std::string(address.substr(1, end - 1));
  } else {
    const size_t colon = address.rfind(':');
    host = std::string(colon == std::string_view::npos ? address : address.substr(0, colon));
  }
  if (host == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

}  // namespace nodata::server
