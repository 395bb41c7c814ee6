// Who a bearer token stands for: the tokens of the catalog (tokens.h), checked once with their
// slow hash and then kept, so that a request with a known token costs a SHA-256 and a map
// lookup. Revocations and expiries are seen within the refresh interval.
#pragma once

#include <grpcpp/server_context.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/jwt.h"
#include "server/quotas.h"
#include "server/tokens.h"
#include "storage/token_store.h"

namespace nodata::server {

struct Principal {
  std::string name;
  std::vector<Scope> scopes;
  bool Allows(Action action, std::string_view resource) const {
    return server::Allows(scopes, action, resource);
  }
};

// Safe for concurrent use.
class Authenticator {
 public:
  using Loader = std::function<absl::StatusOr<std::vector<storage::TokenRow>>()>;
  using Clock = std::function<int64_t()>;  // microseconds since the Unix epoch

  // `load` reads every token (the catalog's TokenStore::List); it runs at most once per
  // `refresh_us`, and again for an id it has not seen (at most once per 10 ms).
  // `jwt` (optional, outliving this) verifies bearer tokens that are JWTs (jwt.h).
  Authenticator(Loader load, Clock now_us, int64_t refresh_us = 1'000'000,
                const JwtVerifier* jwt = nullptr);

  // The principal of `token` (a nodata token, or a JWT when there is a verifier); UNAUTHENTICATED,
  // with a message that never holds the token, when it is malformed, unknown, wrong, revoked or
  // expired. A verified JWT is remembered (by its SHA-256) until it expires.
  absl::StatusOr<std::shared_ptr<const Principal>> Authenticate(std::string_view token)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A token for `principal` that lives in this process only (a program component's), under
  // `key`: a token issued earlier under the same key stops working.
  std::string IssueEphemeral(std::string_view key, Principal principal) ABSL_LOCKS_EXCLUDED(mu_);

  // The principal of a verified client certificate whose subject CN is `common_name`: the
  // scopes of every usable row of that name (tokens and `token create --certificate` grants);
  // UNAUTHENTICATED when there is none.
  absl::StatusOr<std::shared_ptr<const Principal>> AuthenticateCertificate(
      std::string_view common_name) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Verified {
    std::string id;
    std::shared_ptr<const Principal> principal;
  };
  struct VerifiedJwt {
    std::shared_ptr<const Principal> principal;
    int64_t expires_at_us = 0;
  };
  absl::StatusOr<std::shared_ptr<const Principal>> AuthenticateJwt(std::string_view token)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Reloads the rows when due (or `unknown_id` and the last load is 10 ms old).
  void RefreshLocked(bool unknown_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // UNAUTHENTICATED unless the row is usable now.
  absl::Status UsableLocked(const storage::TokenRow& row) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Loader load_;
  const Clock now_us_;
  const int64_t refresh_us_;
  const JwtVerifier* const jwt_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, VerifiedJwt> jwts_ ABSL_GUARDED_BY(mu_);  // by SHA-256
  // IssueEphemeral's tokens by SHA-256, and their digests by key.
  absl::flat_hash_map<std::string, std::shared_ptr<const Principal>> ephemeral_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> ephemeral_keys_ ABSL_GUARDED_BY(mu_);
  int64_t loaded_at_us_ ABSL_GUARDED_BY(mu_) = -1;
  absl::flat_hash_map<std::string, storage::TokenRow> rows_ ABSL_GUARDED_BY(mu_);  // by id
  // SHA-256 of a token checked against its row's hash: what it stands for, or (null principal)
  // that it did not match. Bounded: cleared when it grows past kMaxRemembered.
  absl::flat_hash_map<std::string, Verified> checked_ ABSL_GUARDED_BY(mu_);
  // Certificate principals by common name, built from rows_ as asked; emptied on a reload.
  absl::flat_hash_map<std::string, std::shared_ptr<const Principal>> by_name_
      ABSL_GUARDED_BY(mu_);
};

// PERMISSION_DENIED naming the principal and the scope it lacks for `action` on `resource`.
absl::Status Authorize(const Principal& principal, Action action, std::string_view resource);

// The services' view of authentication and limits: who calls, may they, and may they now.
// Safe for concurrent use.
class CallAuth {
 public:
  // `authenticator` null: authentication is off and every caller may do everything.
  // `quotas` null: no limits.
  explicit CallAuth(Authenticator* authenticator = nullptr, Quotas* quotas = nullptr)
      : authenticator_(authenticator), quotas_(quotas) {}
  bool enabled() const { return authenticator_ != nullptr; }
  Quotas* quotas() const { return quotas_; }

  // The principal of an `authorization` header value ("Bearer ndt_..."; empty when absent):
  // null with authentication off; UNAUTHENTICATED without a good token. Calls over the program
  // components' unix socket (`internal`) carry their program's token (IssueEphemeral) too.
  // Without a bearer token, a client certificate verified against --tls-client-ca names the
  // principal by its subject's CN (`certificate_cn`, empty when there is none).
  absl::StatusOr<std::shared_ptr<const Principal>> Caller(
      std::string_view authorization, bool internal,
      std::string_view certificate_cn = {}) const;
  absl::StatusOr<std::shared_ptr<const Principal>> Caller(
      const grpc::ServerContextBase& ctx) const;
  // Caller, then one request charged to its quotas: for a call that decides what to show by
  // the caller's scopes (listings).
  absl::StatusOr<std::shared_ptr<const Principal>> AdmittedCaller(
      const grpc::ServerContextBase& ctx) const;
  // Caller, then Authorize (OK with authentication off), then one request charged to the
  // caller's quotas (Admit).
  absl::Status Check(const grpc::ServerContextBase& ctx, Action action,
                     std::string_view resource) const;
  // Check for a call that needs two scopes (a topic's and a group's): both must allow it.
  absl::Status Check(const grpc::ServerContextBase& ctx, Action action, std::string_view resource,
                     Action action2, std::string_view resource2) const;
  // Check, answering with the caller (null with authentication off) for what follows.
  absl::StatusOr<std::shared_ptr<const Principal>> Checked(
      const grpc::ServerContextBase& ctx, Action action, std::string_view resource,
      Action action2, std::string_view resource2) const;
  absl::StatusOr<std::shared_ptr<const Principal>> Checked(const grpc::ServerContextBase& ctx,
                                                           Action action,
                                                           std::string_view resource) const {
    return Checked(ctx, action, resource, action, resource);
  }

  // Whom the quotas of a call count against: its principal (`caller`, from Caller), else (with
  // authentication off) the client's address without the port; empty for the server's own calls
  // over the program components' socket, which are never limited.
  static std::string QuotaKey(const grpc::ServerContextBase& ctx, const Principal* caller);
  // One request with `bytes` of events charged to `key`'s rates: OK or RetryLater (quotas.h).
  absl::Status Admit(std::string_view key, uint64_t bytes) const;
  // Admit under the QuotaKey of `ctx` and `caller`; OK at once when no rate is limited.
  absl::Status Admit(const grpc::ServerContextBase& ctx, const Principal* caller,
                     uint64_t bytes) const;
  // A stream slot of `key` (Quotas::OpenStream), held for the stream's life.
  absl::StatusOr<Quotas::Stream> OpenStream(std::string_view key) const;
  // OpenStream under the QuotaKey of `ctx` and `caller` (from Caller or Checked).
  absl::StatusOr<Quotas::Stream> OpenStream(const grpc::ServerContextBase& ctx,
                                            const Principal* caller) const;

 private:
  Authenticator* const authenticator_;
  Quotas* const quotas_;
};

}  // namespace nodata::server
