// libFuzzer target: the server's decoders of bytes from the network that come before any
// authentication — bearer values (nodata tokens and their scopes, JWTs through libjwt) and HTTP
// request targets (paths, percent-encoding, query parameters). Nothing may crash; what decodes
// must read back the same.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "server/http_query.h"
#include "server/jwt.h"
#include "server/tokens.h"

namespace {

using nodata::server::JwtVerifier;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// A verifier with one EC key, written once to a temporary file.
const JwtVerifier& Verifier() {
  static const JwtVerifier* verifier = [] {
    EVP_PKEY* pkey = EVP_EC_gen("P-256");
    char path[] = "/tmp/nodata-fuzz-jwt-XXXXXX";
    const int fd = mkstemp(path);
    FILE* f = fdopen(fd, "w");
    PEM_write_PUBKEY(f, pkey);
    fclose(f);
    EVP_PKEY_free(pkey);
    nodata::server::JwtOptions options;
    options.key_files = {path};
    options.issuer = "iss";
    auto v = JwtVerifier::Load(options);
    unlink(path);
    Check(v.ok());
    return v->release();
  }();
  return *verifier;
}

std::string PercentEncodeAll(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    out.push_back('%');
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      std::string id;
      if (nodata::server::TokenId(input, &id)) Check(id.size() == 24);
      if (auto scopes = nodata::server::ParseScopes(input); scopes.ok()) {
        for (const nodata::server::Scope& s : *scopes) {
          auto again = nodata::server::ParseScope(nodata::server::ScopeString(s));
          Check(again.ok() && again->action == s.action && again->pattern == s.pattern &&
                again->prefix == s.prefix);
          Check(nodata::server::Allows(*scopes, s.action, s.pattern));
        }
      }
      break;
    }
    case 1:
      if (JwtVerifier::LooksLikeJwt(input)) {
        // No key the fuzzer can sign with: everything must be refused, cleanly.
        Check(!Verifier().Verify(input, 1'800'000'000'000'000).ok());
      }
      break;
    case 2: {
      const std::string uri(input);
      if (auto target = nodata::server::ParseRequestTarget(uri, nullptr); target.ok()) {
        (void)target->params.Time("from");
        (void)target->params.Limit(100);
        (void)target->params.Bool("final");
      }
      break;
    }
    case 3:
      for (bool plus : {false, true}) {
        if (auto decoded = nodata::server::PercentDecode(input, plus); decoded) {
          auto again = nodata::server::PercentDecode(PercentEncodeAll(*decoded), plus);
          Check(again && *again == *decoded);
        }
      }
      break;
  }
  return 0;
}
