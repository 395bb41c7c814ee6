#include "server/jwt.h"

#include <gtest/gtest.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"

namespace nodata::server {
namespace {

constexpr int64_t kNowUs = 1'800'000'000'000'000;  // 2027-01-15
constexpr int64_t kNowS = kNowUs / 1'000'000;

struct KeyPair {
  std::string public_pem;
  std::string private_pem;
};

KeyPair Generate(bool rsa) {
  EVP_PKEY* pkey = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  KeyPair out;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, pkey);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  out.public_pem.assign(data, static_cast<size_t>(n));
  BIO_free(bio);
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  n = BIO_get_mem_data(bio, &data);
  out.private_pem.assign(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(pkey);
  return out;
}

// A token with `claims` signed with `alg` and `key` (libjwt's encoder).
std::string Sign(const nlohmann::json& claims, jwt_alg_t alg, const std::string& key) {
  jwt_t* jwt = nullptr;
  jwt_new(&jwt);
  jwt_add_grants_json(jwt, claims.dump().c_str());
  jwt_set_alg(jwt, alg, reinterpret_cast<const unsigned char*>(key.data()),
              static_cast<int>(key.size()));
  char* out = jwt_encode_str(jwt);
  std::string token = out != nullptr ? out : "";
  free(out);
  jwt_free(jwt);
  return token;
}

std::string B64(std::string_view s) {
  std::string out;
  absl::WebSafeBase64Escape(absl::string_view(s.data(), s.size()), &out);
  return out;
}

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new KeyPair(Generate(true));
    ec_ = new KeyPair(Generate(false));
  }
  void SetUp() override {
    char tmpl[] = "/tmp/jwt-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::unique_ptr<JwtVerifier> Verifier(JwtOptions options = {}) {
    if (options.key_files.empty()) {
      options.key_files = {Write("rsa.pem", rsa_->public_pem), Write("ec.pem", ec_->public_pem)};
    }
    absl::StatusOr<std::unique_ptr<JwtVerifier>> v = JwtVerifier::Load(options);
    EXPECT_TRUE(v.ok()) << v.status();
    return *std::move(v);
  }
  static nlohmann::json Claims() {
    return {{"sub", "svc"}, {"exp", kNowS + 600}, {"scope", "openid publish:orders.* admin2"}};
  }
  static std::string Why(const absl::StatusOr<JwtPrincipal>& p) {
    return std::string(p.status().message());
  }

  static KeyPair* rsa_;
  static KeyPair* ec_;
  std::string dir_;
};
KeyPair* JwtTest::rsa_ = nullptr;
KeyPair* JwtTest::ec_ = nullptr;

TEST_F(JwtTest, Rs256AndEs256TokensNameAPrincipalWithTheirNodataScopes) {
  auto v = Verifier();
  for (auto [alg, key] : {std::pair{JWT_ALG_RS256, rsa_}, std::pair{JWT_ALG_ES256, ec_}}) {
    absl::StatusOr<JwtPrincipal> p = v->Verify(Sign(Claims(), alg, key->private_pem), kNowUs);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->name, "svc");
    ASSERT_EQ(p->scopes.size(), 1u);  // "openid" and "admin2" are not nodata scopes
    EXPECT_EQ(ScopeString(p->scopes[0]), "publish:orders.*");
    EXPECT_EQ(p->expires_at_us, (kNowS + 600) * 1'000'000);
  }
  nlohmann::json array = Claims();
  array["scope"] = {"consume:x", "admin"};
  absl::StatusOr<JwtPrincipal> p = v->Verify(Sign(array, JWT_ALG_ES256, ec_->private_pem), kNowUs);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->scopes.size(), 2u);
}

TEST_F(JwtTest, TimesIssuerAudienceAndSubjectAreChecked) {
  JwtOptions options;
  options.issuer = "https://idp";
  options.audience = "nodata";
  auto v = Verifier(options);
  nlohmann::json c = Claims();
  c["iss"] = "https://idp";
  c["aud"] = {"other", "nodata"};
  EXPECT_TRUE(v->Verify(Sign(c, JWT_ALG_RS256, rsa_->private_pem), kNowUs).ok());
  auto refused = [&](nlohmann::json claims, std::string_view why) {
    absl::StatusOr<JwtPrincipal> p = v->Verify(Sign(claims, JWT_ALG_RS256, rsa_->private_pem),
                                               kNowUs);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated) << why;
    EXPECT_NE(Why(p).find(why), std::string::npos) << Why(p);
  };
  nlohmann::json x = c;
  x["exp"] = kNowS - 61;
  refused(x, "expired");
  x = c;
  x["exp"] = kNowS - 30;  // within the leeway
  EXPECT_TRUE(v->Verify(Sign(x, JWT_ALG_RS256, rsa_->private_pem), kNowUs).ok());
  x = c;
  x.erase("exp");
  refused(x, "it has no exp");
  x = c;
  x["nbf"] = kNowS + 120;
  refused(x, "not valid yet");
  x = c;
  x["iss"] = "https://evil";
  refused(x, "its issuer is not https://idp");
  x = c;
  x["aud"] = "other";
  refused(x, "its audience does not include nodata");
  x = c;
  x.erase("sub");
  refused(x, "it has no sub");
}

TEST_F(JwtTest, SignaturesAndAlgorithmsOfOtherKeysAreRefused) {
  auto v = Verifier();
  // Signed by a key the server does not know.
  KeyPair other = Generate(false);
  absl::StatusOr<JwtPrincipal> p =
      v->Verify(Sign(Claims(), JWT_ALG_ES256, other.private_pem), kNowUs);
  EXPECT_NE(Why(p).find("signature does not verify"), std::string::npos) << Why(p);
  // HMAC with the public key as its secret: the classic algorithm confusion.
  p = v->Verify(Sign(Claims(), JWT_ALG_HS256, rsa_->public_pem), kNowUs);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated);
  // alg none.
  const std::string none = B64(R"({"alg":"none","typ":"JWT"})") + "." + B64(Claims().dump()) + ".x";
  EXPECT_FALSE(v->Verify(none, kNowUs).ok());
  // A changed payload under a good signature.
  const std::string good = Sign(Claims(), JWT_ALG_RS256, rsa_->private_pem);
  nlohmann::json admin = Claims();
  admin["scope"] = "admin";
  const size_t a = good.find('.'), b = good.rfind('.');
  const std::string forged = good.substr(0, a + 1) + B64(admin.dump()) + good.substr(b);
  EXPECT_FALSE(v->Verify(forged, kNowUs).ok());
  // Not a JWT at all; too long.
  EXPECT_FALSE(JwtVerifier::LooksLikeJwt("ndt_0123_abc"));
  EXPECT_FALSE(JwtVerifier::LooksLikeJwt("a.b"));
  EXPECT_FALSE(JwtVerifier::LooksLikeJwt("a.b.c.d"));
  EXPECT_FALSE(JwtVerifier::LooksLikeJwt("a.b+.c"));
  EXPECT_TRUE(JwtVerifier::LooksLikeJwt(good));
  EXPECT_NE(Why(v->Verify(std::string(20000, 'a'), kNowUs)).find("longer than 16 KiB"),
            std::string::npos);
}

TEST_F(JwtTest, KeyFilesMustBePublicKeys) {
  const std::string priv = Write("private.pem", rsa_->private_pem);
  JwtOptions options;
  options.key_files = {priv};
  absl::StatusOr<std::unique_ptr<JwtVerifier>> v = JwtVerifier::Load(options);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(v.status().message()).find("not a PEM RSA or EC public key"),
            std::string::npos);
  options.key_files = {dir_ + "/missing.pem"};
  v = JwtVerifier::Load(options);
  EXPECT_NE(std::string(v.status().message()).find("cannot read it"), std::string::npos);
}

}  // namespace
}  // namespace nodata::server
