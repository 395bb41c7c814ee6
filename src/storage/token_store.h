// The catalog's access tokens, durable in the catalog's SQLite file. A token's secret is never
// stored: a row keeps its public id, a slow salted hash of the whole token, and its scopes as
// the server spells them (server/tokens.h decides what they mean).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodata::storage {

namespace internal {
struct SqliteDb;
}

struct TokenRow {
  std::string name;           // the principal's name
  std::string id;             // public part of the token, unique
  std::string hash;           // "scrypt$N$r$p$salt$hash" (base64url), of the whole token
  std::string scopes;         // space-separated, e.g. "publish:orders.* consume:orders.*"
  int64_t created_at_us = 0;
  int64_t expires_at_us = 0;  // 0: never
  int64_t revoked_at_us = 0;  // 0: not revoked
};

// The `tokens` table. Safe for concurrent use; lives as long as the Catalog that owns it. Every
// change is durable when the call returns.
class TokenStore {
 public:
  explicit TokenStore(internal::SqliteDb& db) : db_(db) {}
  TokenStore(const TokenStore&) = delete;
  TokenStore& operator=(const TokenStore&) = delete;

  // ALREADY_EXISTS when a token of that name exists (revoked or not).
  absl::Status Create(const TokenRow& row);
  // Marks it revoked at `now_us`; NOT_FOUND when there is none. A revoked row stays, so that
  // the name is not reused by mistake and the list shows when it was revoked.
  absl::Status Revoke(std::string_view name, int64_t now_us);
  // Every token, by name.
  absl::StatusOr<std::vector<TokenRow>> List();

 private:
  internal::SqliteDb& db_;
};

}  // namespace nodata::storage
