#include "server/auth.h"

#include <grpc/grpc_security_constants.h>
#include <openssl/evp.h>

#include "absl/strings/match.h"
#include "common/status.h"
#include "common/strings.h"

namespace nodata::server {
namespace {

constexpr size_t kMaxRemembered = 100000;
// A token made while the server runs works at once: an id not seen reloads the rows, at most
// this often (a flood of made-up ids costs at most 100 small catalog reads a second).
constexpr int64_t kUnknownIdReloadUs = 10'000;

absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

std::string Sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out, &n, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(out), n);
}

absl::Status Refused(std::string_view why) {
  return absl::UnauthenticatedError(StrCat("the bearer token is ", why));
}

}  // namespace

Authenticator::Authenticator(Loader load, Clock now_us, int64_t refresh_us,
                             const JwtVerifier* jwt)
    : load_(std::move(load)), now_us_(std::move(now_us)), refresh_us_(refresh_us), jwt_(jwt) {}

std::string Authenticator::IssueEphemeral(std::string_view key, Principal principal) {
  // The nodata token format, with an id no catalog row has (ids are random, 96 bits).
  std::string id;
  const std::string token = NewToken(&id).value_or(std::string());
  if (token.empty()) return token;  // no randomness: the program gets no token, and is refused
  const std::string digest = Sha256(token);
  auto shared = std::make_shared<const Principal>(std::move(principal));
  absl::MutexLock lock(&mu_);
  auto [it, fresh] = ephemeral_keys_.try_emplace(Absl(key), digest);
  if (!fresh) {
    ephemeral_.erase(it->second);
    it->second = digest;
  }
  ephemeral_[digest] = std::move(shared);
  return token;
}

absl::StatusOr<std::shared_ptr<const Principal>> Authenticator::AuthenticateJwt(
    std::string_view token) {
  const std::string digest = Sha256(token);
  const int64_t now = now_us_();
  {
    absl::MutexLock lock(&mu_);
    if (auto it = jwts_.find(digest); it != jwts_.end()) {
      if (now <= it->second.expires_at_us + JwtVerifier::kLeewayUs) return it->second.principal;
      jwts_.erase(it);
    }
  }
  // Signature checks outside the lock.
  ASSIGN_OR_RETURN(JwtPrincipal verified, jwt_->Verify(token, now));
  auto principal = std::make_shared<const Principal>(
      Principal{std::move(verified.name), std::move(verified.scopes)});
  absl::MutexLock lock(&mu_);
  if (jwts_.size() >= kMaxRemembered) jwts_.clear();
  jwts_[digest] = VerifiedJwt{principal, verified.expires_at_us};
  return principal;
}

void Authenticator::RefreshLocked(bool unknown_id) {
  const int64_t now = now_us_();
  const bool due = loaded_at_us_ < 0 || now - loaded_at_us_ >= refresh_us_ ||
                   (unknown_id && now - loaded_at_us_ >= kUnknownIdReloadUs);
  if (!due) return;
  absl::StatusOr<std::vector<storage::TokenRow>> rows = load_();
  loaded_at_us_ = now;
  if (!rows.ok()) return;  // keep what was loaded; the next refresh tries again
  rows_.clear();
  by_name_.clear();
  for (storage::TokenRow& r : *rows) {
    std::string id = r.id;
    rows_.emplace(std::move(id), std::move(r));
  }
}

absl::Status Authenticator::UsableLocked(const storage::TokenRow& row) const {
  if (row.revoked_at_us != 0) return Refused("revoked");
  if (row.expires_at_us != 0 && now_us_() >= row.expires_at_us) return Refused("expired");
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Principal>> Authenticator::Authenticate(
    std::string_view token) {
  std::string id;
  if (!TokenId(token, &id)) {
    if (jwt_ != nullptr && JwtVerifier::LooksLikeJwt(token)) return AuthenticateJwt(token);
    return Refused(jwt_ != nullptr ? "neither a nodata token (ndt_...) nor a JWT"
                                   : "not a nodata token (ndt_...)");
  }
  const std::string digest = Sha256(token);
  storage::TokenRow row;
  {
    absl::MutexLock lock(&mu_);
    if (auto e = ephemeral_.find(digest); e != ephemeral_.end()) return e->second;
    RefreshLocked(false);
    auto it = rows_.find(id);
    if (it == rows_.end()) {
      RefreshLocked(true);
      it = rows_.find(id);
      if (it == rows_.end()) return Refused("unknown");
    }
    RETURN_IF_ERROR(UsableLocked(it->second));
    if (auto seen = checked_.find(digest); seen != checked_.end() && seen->second.id == id) {
      if (seen->second.principal == nullptr) return Refused("wrong");
      return seen->second.principal;
    }
    row = it->second;
  }
  // The slow check, outside the lock: once per token (or wrong guess) per server.
  const bool matches = TokenMatchesHash(token, row.hash);
  std::shared_ptr<const Principal> principal;
  if (matches) {
    absl::StatusOr<std::vector<Scope>> scopes = ParseScopes(row.scopes);
    if (!scopes.ok()) return Refused(StrCat("of ", row.name, ", whose scopes this server "
                                            "cannot read (", scopes.status().message(), ")"));
    principal = std::make_shared<const Principal>(Principal{row.name, *std::move(scopes)});
  }
  absl::MutexLock lock(&mu_);
  if (checked_.size() >= kMaxRemembered) checked_.clear();
  checked_[digest] = Verified{id, principal};
  if (principal == nullptr) return Refused("wrong");
  return principal;
}

absl::StatusOr<std::shared_ptr<const Principal>> Authenticator::AuthenticateCertificate(
    std::string_view common_name) {
  absl::MutexLock lock(&mu_);
  RefreshLocked(false);
  if (auto it = by_name_.find(Absl(common_name)); it != by_name_.end()) return it->second;
  std::vector<Scope> scopes;
  for (const auto& [id, row] : rows_) {
    if (row.name != common_name || !UsableLocked(row).ok()) continue;
    absl::StatusOr<std::vector<Scope>> parsed = ParseScopes(row.scopes);
    if (!parsed.ok()) continue;
    scopes.insert(scopes.end(), parsed->begin(), parsed->end());
  }
  if (scopes.empty()) {
    return absl::UnauthenticatedError(StrCat(
        "the client certificate's subject CN=", common_name, " is no principal with scopes (",
        "nodata token create ", common_name, " --certificate --scope ...)"));
  }
  auto principal =
      std::make_shared<const Principal>(Principal{std::string(common_name), std::move(scopes)});
  // Kept only when no row of the name expires: expiry must be seen at once.
  bool expires = false;
  for (const auto& [id, row] : rows_) expires |= row.name == common_name && row.expires_at_us != 0;
  if (!expires) by_name_[Absl(common_name)] = principal;
  return principal;
}

absl::Status Authorize(const Principal& principal, Action action, std::string_view resource) {
  if (principal.Allows(action, resource)) return absl::OkStatus();
  if (action == Action::kAdmin) {
    return absl::PermissionDeniedError(
        StrCat(principal.name, " lacks the scope admin, which this call needs"));
  }
  const Scope wanted{action, std::string(resource), false};
  return absl::PermissionDeniedError(StrCat(principal.name, " lacks the scope ",
                                            ScopeString(wanted), " (or a pattern covering ",
                                            resource, ", or admin)"));
}

absl::StatusOr<std::shared_ptr<const Principal>> CallAuth::Caller(
    std::string_view authorization, bool internal, std::string_view certificate_cn) const {
  if (authenticator_ == nullptr) return std::shared_ptr<const Principal>();
  constexpr std::string_view kBearer = "Bearer ";
  if (internal && authorization.empty()) {
    return absl::UnauthenticatedError(
        "a program component's calls carry the token the server gave it (NODATA_TOKEN)");
  }
  if (authorization.empty() && !certificate_cn.empty()) {
    return authenticator_->AuthenticateCertificate(certificate_cn);
  }
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "this server wants a bearer token (authorization: Bearer ndt_...; the CLI's --token or "
        "NODATA_TOKEN)");
  }
  if (authorization.size() < kBearer.size() ||
      !absl::EqualsIgnoreCase(Absl(authorization.substr(0, kBearer.size())), Absl(kBearer))) {
    return absl::UnauthenticatedError("the authorization is not \"Bearer TOKEN\"");
  }
  return authenticator_->Authenticate(authorization.substr(kBearer.size()));
}

absl::StatusOr<std::shared_ptr<const Principal>> CallAuth::Caller(
    const grpc::ServerContextBase& ctx) const {
  if (authenticator_ == nullptr) return std::shared_ptr<const Principal>();
  std::string_view authorization;
  const auto& metadata = ctx.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization = std::string_view(it->second.data(), it->second.size());
  }
  // Without a token, a verified client certificate (gRPC asks for one only with client CAs).
  std::string_view common_name;
  std::shared_ptr<const grpc::AuthContext> auth_context;
  std::vector<grpc::string_ref> names;
  if (authorization.empty()) auth_context = ctx.auth_context();
  if (auth_context != nullptr && auth_context->IsPeerAuthenticated()) {
    names = auth_context->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
    if (!names.empty()) common_name = std::string_view(names[0].data(), names[0].size());
  }
  return Caller(authorization, ctx.peer().starts_with("unix:"), common_name);
}

absl::Status CallAuth::Check(const grpc::ServerContextBase& ctx, Action action,
                             std::string_view resource) const {
  return Check(ctx, action, resource, action, resource);
}

absl::Status CallAuth::Check(const grpc::ServerContextBase& ctx, Action action,
                             std::string_view resource, Action action2,
                             std::string_view resource2) const {
  if (authenticator_ == nullptr && quotas_ == nullptr) return absl::OkStatus();
  return Checked(ctx, action, resource, action2, resource2).status();
}

absl::StatusOr<std::shared_ptr<const Principal>> CallAuth::Checked(
    const grpc::ServerContextBase& ctx, Action action, std::string_view resource,
    Action action2, std::string_view resource2) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const Principal> caller, Caller(ctx));
  if (caller != nullptr) {
    RETURN_IF_ERROR(Authorize(*caller, action, resource));
    if (action2 != action || resource2 != resource) {
      RETURN_IF_ERROR(Authorize(*caller, action2, resource2));
    }
  }
  RETURN_IF_ERROR(Admit(ctx, caller.get(), 0));
  return caller;
}

absl::StatusOr<std::shared_ptr<const Principal>> CallAuth::AdmittedCaller(
    const grpc::ServerContextBase& ctx) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const Principal> caller, Caller(ctx));
  RETURN_IF_ERROR(Admit(ctx, caller.get(), 0));
  return caller;
}

absl::Status CallAuth::Admit(const grpc::ServerContextBase& ctx, const Principal* caller,
                             uint64_t bytes) const {
  if (quotas_ == nullptr || !quotas_->limits_rates()) return absl::OkStatus();
  return Admit(QuotaKey(ctx, caller), bytes);
}

std::string CallAuth::QuotaKey(const grpc::ServerContextBase& ctx, const Principal* caller) {
  const std::string peer = ctx.peer();
  if (peer.starts_with("unix:")) return std::string();
  if (caller != nullptr) return caller->name;
  // "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000": the host, which is the client's address.
  std::string_view host = peer;
  if (const size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  for (std::string_view scheme : {"ipv4:", "ipv6:"}) {
    if (host.starts_with(scheme)) host.remove_prefix(scheme.size());
  }
  return std::string(host);
}

absl::Status CallAuth::Admit(std::string_view key, uint64_t bytes) const {
  if (quotas_ == nullptr || key.empty()) return absl::OkStatus();
  return quotas_->Admit(key, bytes);
}

absl::StatusOr<Quotas::Stream> CallAuth::OpenStream(std::string_view key) const {
  if (quotas_ == nullptr || key.empty()) return Quotas::Stream();
  return quotas_->OpenStream(key);
}

absl::StatusOr<Quotas::Stream> CallAuth::OpenStream(const grpc::ServerContextBase& ctx,
                                                    const Principal* caller) const {
  if (quotas_ == nullptr || !quotas_->limits_streams()) return Quotas::Stream();
  return OpenStream(QuotaKey(ctx, caller));
}

}  // namespace nodata::server
