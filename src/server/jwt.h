// JSON Web Tokens as bearer tokens (RFC 7519), verified with libjwt against the public keys of
// `serve --jwt-key` (PEM; RSA keys take RS256/384/512, EC keys ES256/384/512; any other `alg`,
// HMAC and "none" among them, is refused whatever its signature). The claims map onto a
// principal: `sub` is its name; the scope claim (`--jwt-scope-claim`, default `scope`: a
// space-separated string or an array of strings) holds nodata scopes (`publish:orders.*`, ...;
// values that are not nodata scopes, such as `openid`, are ignored). `exp` is required, `nbf`
// honoured, with a minute of leeway; `--jwt-issuer` and `--jwt-audience`, when given, must match
// `iss` and (one of) `aud`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/tokens.h"

namespace nodata::server {

struct JwtOptions {
  std::vector<std::string> key_files;  // PEM public keys; empty: JWTs are not accepted
  std::string issuer;                  // required `iss` when set
  std::string audience;                // required in `aud` when set
  std::string scope_claim = "scope";
};

struct JwtPrincipal {
  std::string name;
  std::vector<Scope> scopes;
  int64_t expires_at_us = 0;
};

// Immutable once loaded: safe for concurrent use.
class JwtVerifier {
 public:
  static constexpr int64_t kLeewayUs = 60'000'000;

  // Reads and checks the key files; INVALID_ARGUMENT naming a file that is not a PEM RSA or EC
  // public key.
  static absl::StatusOr<std::unique_ptr<JwtVerifier>> Load(JwtOptions options);

  // The principal of `token` at `now_us`; UNAUTHENTICATED saying why not (bad signature or
  // algorithm, expired, not yet valid, wrong issuer or audience, no subject), never with the
  // token in it.
  absl::StatusOr<JwtPrincipal> Verify(std::string_view token, int64_t now_us) const;

  // Whether `token` looks like a JWT (three base64url parts) rather than a nodata token.
  static bool LooksLikeJwt(std::string_view token);

 private:
  struct Key {
    std::string pem;
    bool rsa = false;  // else EC
  };
  JwtVerifier(JwtOptions options, std::vector<Key> keys)
      : options_(std::move(options)), keys_(std::move(keys)) {}

  const JwtOptions options_;
  const std::vector<Key> keys_;
};

}  // namespace nodata::server
