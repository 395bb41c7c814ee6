#include "server/tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/names.h"
#include "common/status.h"
#include "common/strings.h"

namespace nodata::server {
namespace {

constexpr std::string_view kPrefix = "ndt_";
constexpr size_t kIdBytes = 12;
constexpr size_t kSecretBytes = 32;
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;
// scrypt's cost: 16 MiB and some tens of milliseconds per check, once per token per server
// (the server keeps what it verified).
constexpr uint64_t kScryptN = 1 << 14;
constexpr uint64_t kScryptR = 8;
constexpr uint64_t kScryptP = 1;
constexpr uint64_t kScryptMaxMem = 64ull << 20;

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return {};
  }
  return out;
}

// Debian's abseil has a string_view of its own.
absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

std::string WebSafe(std::string_view bytes) {
  std::string out;
  absl::WebSafeBase64Escape(Absl(bytes), &out);
  return out;
}

bool Scrypt(std::string_view token, std::string_view salt, uint64_t n, uint64_t r, uint64_t p,
            std::string* out) {
  out->assign(kHashBytes, '\0');
  return EVP_PBE_scrypt(token.data(), token.size(),
                        reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), n, r, p,
                        kScryptMaxMem, reinterpret_cast<unsigned char*>(out->data()),
                        out->size()) == 1;
}

const char* ActionName(Action a) {
  switch (a) {
    case Action::kPublish: return "publish";
    case Action::kConsume: return "consume";
    case Action::kQuery: return "query";
    case Action::kGroup: return "group";
    case Action::kComponent: return "component";
    case Action::kAggregation: return "aggregation";
    case Action::kAdmin: return "admin";
  }
  return "?";
}

}  // namespace

absl::StatusOr<Scope> ParseScope(std::string_view text) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("scope \"", text, "\": ", why,
               "; a scope is publish:PATTERN, consume:PATTERN, query:PATTERN, group:PATTERN, "
               "component:PATTERN, aggregation:PATTERN or admin, where PATTERN is a name or a "
               "prefix ending in '*'"));
  };
  if (text == "admin") return Scope{};
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return bad("unknown scope");
  const std::string_view action = text.substr(0, colon);
  std::string_view pattern = text.substr(colon + 1);
  Scope scope;
  bool known = false;
  for (Action a : {Action::kPublish, Action::kConsume, Action::kQuery, Action::kGroup,
                   Action::kComponent, Action::kAggregation}) {
    if (action == ActionName(a)) {
      scope.action = a;
      known = true;
    }
  }
  if (!known) return bad(Absl(StrCat("unknown action \"", action, "\"")));
  if (pattern.empty()) return bad("no pattern");
  if (pattern.back() == '*') {
    scope.prefix = true;
    pattern.remove_suffix(1);
  }
  if (!pattern.empty() || !scope.prefix) {
    if (absl::Status valid = ValidateName("pattern", pattern); !valid.ok()) {
      return bad(valid.message());
    }
  }
  scope.pattern = std::string(pattern);
  return scope;
}

absl::StatusOr<std::vector<Scope>> ParseScopes(std::string_view text) {
  std::vector<Scope> out;
  for (absl::string_view part : absl::StrSplit(Absl(text), ' ', absl::SkipEmpty())) {
    absl::StatusOr<Scope> scope = ParseScope(ToStd(part));
    if (!scope.ok()) return scope.status();
    out.push_back(*std::move(scope));
  }
  return out;
}

std::string ScopeString(const Scope& scope) {
  if (scope.action == Action::kAdmin) return "admin";
  return StrCat(ActionName(scope.action), ":", scope.pattern, scope.prefix ? "*" : "");
}

bool Allows(const std::vector<Scope>& scopes, Action action, std::string_view resource) {
  for (const Scope& s : scopes) {
    if (s.action == Action::kAdmin) return true;
    if (s.action != action) continue;
    if (s.prefix ? resource.starts_with(s.pattern) : resource == s.pattern) return true;
  }
  return false;
}

std::string ScopesString(const std::vector<Scope>& scopes) {
  std::vector<std::string> spelled;
  for (const Scope& s : scopes) spelled.push_back(ScopeString(s));
  return absl::StrJoin(spelled, " ");
}

namespace {

// The row's name, scopes (as --scope spells them) and times.
void FillRow(std::string_view name, const std::vector<Scope>& scopes, int64_t now_us,
             int64_t expires_at_us, storage::TokenRow* row) {
  row->name = std::string(name);
  row->scopes = ScopesString(scopes);
  row->created_at_us = now_us;
  row->expires_at_us = expires_at_us;
}

}  // namespace

absl::StatusOr<std::string> NewToken(std::string* id) {
  const std::string id_bytes = RandomBytes(kIdBytes);
  const std::string secret = RandomBytes(kSecretBytes);
  if (id_bytes.empty() || secret.empty()) {
    return absl::InternalError("the system's random number generator failed");
  }
  *id = absl::BytesToHexString(id_bytes);
  return StrCat(kPrefix, *id, "_", WebSafe(secret));
}

absl::StatusOr<MintedToken> MintToken(std::string_view name, const std::vector<Scope>& scopes,
                                      int64_t now_us, int64_t expires_at_us) {
  if (absl::Status valid = ValidateNewName("token name", name); !valid.ok()) return valid;
  if (scopes.empty()) return absl::InvalidArgumentError("a token needs at least one --scope");
  MintedToken minted;
  ASSIGN_OR_RETURN(minted.token, NewToken(&minted.row.id));
  const std::string salt = RandomBytes(kSaltBytes);
  if (salt.empty()) return absl::InternalError("the system's random number generator failed");
  std::string hash;
  if (!Scrypt(minted.token, salt, kScryptN, kScryptR, kScryptP, &hash)) {
    return absl::InternalError("scrypt failed");
  }
  FillRow(name, scopes, now_us, expires_at_us, &minted.row);
  minted.row.hash =
      StrCat("scrypt$", kScryptN, "$", kScryptR, "$", kScryptP, "$", WebSafe(salt), "$",
             WebSafe(hash));
  return minted;
}

absl::StatusOr<MintedToken> MintCertificateGrant(std::string_view name,
                                                 const std::vector<Scope>& scopes, int64_t now_us,
                                                 int64_t expires_at_us) {
  if (absl::Status valid = ValidateNewName("principal name", name); !valid.ok()) return valid;
  if (scopes.empty()) return absl::InvalidArgumentError("a grant needs at least one --scope");
  const std::string id_bytes = RandomBytes(kIdBytes);
  if (id_bytes.empty()) return absl::InternalError("the system's random number generator failed");
  MintedToken minted;
  minted.row.id = absl::BytesToHexString(id_bytes);
  FillRow(name, scopes, now_us, expires_at_us, &minted.row);
  minted.row.hash = std::string(kCertificateGrantHash);
  return minted;
}

bool TokenId(std::string_view token, std::string* id) {
  if (!token.starts_with(kPrefix)) return false;
  token.remove_prefix(kPrefix.size());
  const size_t sep = token.find('_');
  if (sep != kIdBytes * 2) return false;
  for (char c : token.substr(0, sep)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  *id = std::string(token.substr(0, sep));
  return token.size() > sep + 1;
}

bool TokenMatchesHash(std::string_view token, std::string_view hash) {
  const std::vector<absl::string_view> parts = absl::StrSplit(Absl(hash), '$');
  if (parts.size() != 6 || parts[0] != "scrypt") return false;
  uint64_t n = 0, r = 0, p = 0;
  if (!absl::SimpleAtoi(parts[1], &n) || !absl::SimpleAtoi(parts[2], &r) ||
      !absl::SimpleAtoi(parts[3], &p) || n > (1u << 20) || r > 32 || p > 16) {
    return false;
  }
  std::string salt, expected, actual;
  if (!absl::WebSafeBase64Unescape(parts[4], &salt) ||
      !absl::WebSafeBase64Unescape(parts[5], &expected) || expected.size() != kHashBytes) {
    return false;
  }
  if (!Scrypt(token, salt, n, r, p, &actual)) return false;
  return CRYPTO_memcmp(actual.data(), expected.data(), kHashBytes) == 0;
}

}  // namespace nodata::server
