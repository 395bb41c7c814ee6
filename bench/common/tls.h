// Channel credentials of the benchmark clients: plaintext, or TLS with --tls-ca (and a client
// certificate with --tls-cert and --tls-key, and a bearer token with --token), as the CLI takes
// them.
#pragma once

#include <grpcpp/security/credentials.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

namespace nodata::bench {

struct TlsFlags {
  std::string ca;
  std::string cert;
  std::string key;
  std::string token;  // sent as `authorization: Bearer` on every call (TLS only)
  // Takes `--tls-ca`, `--tls-cert`, `--tls-key` or `--token` with its value; false for other
  // flags.
  bool Take(const std::string& flag, const std::string& value) {
    if (flag == "--tls-ca") ca = value;
    else if (flag == "--tls-cert") cert = value;
    else if (flag == "--tls-key") key = value;
    else if (flag == "--token") token = value;
    else return false;
    return true;
  }
};

inline std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::exit(2);
  }
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::shared_ptr<grpc::ChannelCredentials> Credentials(const TlsFlags& tls) {
  if (tls.ca.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadFileOrDie(tls.ca);
  if (!tls.cert.empty()) {
    o.pem_cert_chain = ReadFileOrDie(tls.cert);
    o.pem_private_key = ReadFileOrDie(tls.key);
  }
  std::shared_ptr<grpc::ChannelCredentials> ssl = grpc::SslCredentials(o);
  if (tls.token.empty()) return ssl;
  return grpc::CompositeChannelCredentials(ssl, grpc::AccessTokenCredentials(tls.token));
}

}  // namespace nodata::bench
