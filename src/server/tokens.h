// Access tokens and scopes: what `token create` makes and what the server will check. A token
// reads "ndt_<id>_<secret>": the id (24 hex digits) finds its row in the catalog
// (storage/token_store.h), the secret (32 random bytes, base64url) is never stored; the row keeps
// a scrypt hash of the whole token (docs/formats/catalog.md). Scopes say what its holder may do:
// `publish:PATTERN`, `consume:PATTERN`, `query:PATTERN`, `group:PATTERN` (consumer groups to join
// and commit in), `component:PATTERN` and `aggregation:PATTERN` (registering and managing
// components and aggregations of those names; PATTERN: a name, or a prefix ending in `*`) and
// `admin` (everything).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/token_store.h"

namespace nodata::server {

enum class Action { kPublish, kConsume, kQuery, kGroup, kComponent, kAggregation, kAdmin };

struct Scope {
  Action action = Action::kAdmin;
  std::string pattern;  // without the trailing '*'; empty for admin
  bool prefix = false;  // the pattern ended in '*'
};

// "publish:orders.*" and the like; INVALID_ARGUMENT saying what is accepted otherwise.
absl::StatusOr<Scope> ParseScope(std::string_view text);
// The scopes of a row (space-separated); INVALID_ARGUMENT for one this binary does not know.
absl::StatusOr<std::vector<Scope>> ParseScopes(std::string_view text);
std::string ScopeString(const Scope& scope);
// Scopes as a row keeps them: space-separated, as `--scope` spells them.
std::string ScopesString(const std::vector<Scope>& scopes);
// Whether the scopes let their holder do `action` on `resource` (a topic, an aggregation).
bool Allows(const std::vector<Scope>& scopes, Action action, std::string_view resource);

struct MintedToken {
  std::string token;      // shown once
  storage::TokenRow row;  // to store
};
// A new token for `name` with `scopes` (validated), expiring at `expires_at_us` (0: never).
absl::StatusOr<MintedToken> MintToken(std::string_view name, const std::vector<Scope>& scopes,
                                      int64_t now_us, int64_t expires_at_us);
// The hash of a row that grants its scopes to client certificates whose subject CN is the
// row's name, and to no bearer token (no token matches it).
inline constexpr std::string_view kCertificateGrantHash = "certificate";
// A fresh token "ndt_<id>_<secret>" (random id and secret), its id in `*id`.
absl::StatusOr<std::string> NewToken(std::string* id);
// Such a row for `name` (MintToken's checks; the token is left empty).
absl::StatusOr<MintedToken> MintCertificateGrant(std::string_view name,
                                                 const std::vector<Scope>& scopes, int64_t now_us,
                                                 int64_t expires_at_us);
// The id of a well-formed token; false for anything else.
bool TokenId(std::string_view token, std::string* id);
// Whether `token` is the one `hash` (a row's) was made from. Slow by design (scrypt).
bool TokenMatchesHash(std::string_view token, std::string_view hash);

}  // namespace nodata::server
