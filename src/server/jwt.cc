#include "server/jwt.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/strings.h"
#include "nlohmann/json.hpp"

namespace nodata::server {
namespace {

constexpr size_t kMaxTokenBytes = 16 << 10;

absl::Status Refused(std::string_view why) {
  return absl::UnauthenticatedError(StrCat("the JWT is refused: ", why));
}

bool AllowedAlg(jwt_alg_t alg, bool rsa) {
  if (rsa) return alg == JWT_ALG_RS256 || alg == JWT_ALG_RS384 || alg == JWT_ALG_RS512;
  return alg == JWT_ALG_ES256 || alg == JWT_ALG_ES384 || alg == JWT_ALG_ES512;
}

bool Base64UrlPart(std::string_view part) {
  if (part.empty()) return false;
  for (char c : part) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

// The claims of a decoded token, or null when libjwt cannot render them.
nlohmann::json Claims(jwt_t* jwt) {
  char* text = jwt_get_grants_json(jwt, nullptr);
  if (text == nullptr) return nullptr;
  nlohmann::json claims = nlohmann::json::parse(text, nullptr, false);
  std::free(text);
  return claims.is_object() ? claims : nlohmann::json();
}

// A NumericDate claim in microseconds; false when absent or not a number.
bool TimeClaim(const nlohmann::json& claims, const char* name, int64_t* us) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return false;
  const double seconds = it->get<double>();
  if (!(seconds > -1e12 && seconds < 1e12)) return false;
  *us = static_cast<int64_t>(seconds * 1e6);
  return true;
}

}  // namespace

bool JwtVerifier::LooksLikeJwt(std::string_view token) {
  const size_t a = token.find('.');
  if (a == std::string_view::npos) return false;
  const size_t b = token.find('.', a + 1);
  if (b == std::string_view::npos || token.find('.', b + 1) != std::string_view::npos) {
    return false;
  }
  return Base64UrlPart(token.substr(0, a)) && Base64UrlPart(token.substr(a + 1, b - a - 1)) &&
         Base64UrlPart(token.substr(b + 1));
}

absl::StatusOr<std::unique_ptr<JwtVerifier>> JwtVerifier::Load(JwtOptions options) {
  std::vector<Key> keys;
  for (const std::string& file : options.key_files) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return absl::InvalidArgumentError(StrCat("--jwt-key ", file, ": cannot read it"));
    Key key;
    key.pem = text.str();
    BIO* bio = BIO_new_mem_buf(key.pem.data(), static_cast<int>(key.pem.size()));
    EVP_PKEY* pkey = bio != nullptr ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr) : nullptr;
    BIO_free(bio);
    const int type = pkey != nullptr ? EVP_PKEY_base_id(pkey) : EVP_PKEY_NONE;
    EVP_PKEY_free(pkey);
    if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC) {
      return absl::InvalidArgumentError(
          StrCat("--jwt-key ", file, ": not a PEM RSA or EC public key (-----BEGIN PUBLIC "
                 "KEY-----)"));
    }
    key.rsa = type == EVP_PKEY_RSA;
    keys.push_back(std::move(key));
  }
  if (options.scope_claim.empty()) options.scope_claim = "scope";
  return std::unique_ptr<JwtVerifier>(new JwtVerifier(std::move(options), std::move(keys)));
}

absl::StatusOr<JwtPrincipal> JwtVerifier::Verify(std::string_view token, int64_t now_us) const {
  if (keys_.empty()) return Refused("this server takes no JWTs (serve --jwt-key)");
  if (token.size() > kMaxTokenBytes) return Refused("longer than 16 KiB");
  if (!LooksLikeJwt(token)) return Refused("not three base64url parts");
  const std::string text(token);
  nlohmann::json claims;
  bool verified = false;
  bool wrong_alg = false;
  for (const Key& key : keys_) {
    jwt_t* jwt = nullptr;
    if (jwt_decode(&jwt, text.c_str(), reinterpret_cast<const unsigned char*>(key.pem.data()),
                   static_cast<int>(key.pem.size())) != 0) {
      continue;
    }
    // The algorithm is the key's, not the token's to choose: an HMAC "signature" made with the
    // public key as its secret, or "none", must not pass.
    if (!AllowedAlg(jwt_get_alg(jwt), key.rsa)) {
      wrong_alg = true;
      jwt_free(jwt);
      continue;
    }
    claims = Claims(jwt);
    jwt_free(jwt);
    verified = true;
    break;
  }
  if (!verified) {
    return Refused(wrong_alg ? "its algorithm is not one its key signs with"
                             : "its signature does not verify with any --jwt-key");
  }
  if (!claims.is_object()) return Refused("its claims are not a JSON object");
  JwtPrincipal out;
  if (!TimeClaim(claims, "exp", &out.expires_at_us)) return Refused("it has no exp");
  if (now_us > out.expires_at_us + kLeewayUs) return Refused("expired");
  int64_t not_before = 0;
  if (TimeClaim(claims, "nbf", &not_before) && now_us + kLeewayUs < not_before) {
    return Refused("not valid yet (nbf)");
  }
  if (!options_.issuer.empty()) {
    auto iss = claims.find("iss");
    if (iss == claims.end() || !iss->is_string() || *iss != options_.issuer) {
      return Refused(StrCat("its issuer is not ", options_.issuer));
    }
  }
  if (!options_.audience.empty()) {
    auto aud = claims.find("aud");
    bool found = false;
    if (aud != claims.end() && aud->is_string()) found = *aud == options_.audience;
    if (aud != claims.end() && aud->is_array()) {
      for (const auto& a : *aud) found |= a.is_string() && a == options_.audience;
    }
    if (!found) return Refused(StrCat("its audience does not include ", options_.audience));
  }
  auto sub = claims.find("sub");
  if (sub == claims.end() || !sub->is_string() || sub->get<std::string>().empty()) {
    return Refused("it has no sub");
  }
  out.name = sub->get<std::string>();
  std::vector<std::string> values;
  if (auto scope = claims.find(options_.scope_claim); scope != claims.end()) {
    if (scope->is_string()) {
      std::istringstream words(scope->get<std::string>());
      for (std::string w; words >> w;) values.push_back(w);
    } else if (scope->is_array()) {
      for (const auto& v : *scope) {
        if (v.is_string()) values.push_back(v.get<std::string>());
      }
    }
  }
  for (const std::string& v : values) {
    absl::StatusOr<Scope> s = ParseScope(v);
    if (s.ok()) out.scopes.push_back(*std::move(s));
  }
  return out;
}

}  // namespace nodata::server
