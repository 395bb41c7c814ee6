// `nodata token create|list|revoke --data DIR`: access tokens, made and ended on the data
// directory's catalog directly (the first admin token exists before any client can reach the
// server). A running server reads the catalog as it checks tokens.
#include <iostream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/cli.h"
#include "cli/client_util.h"
#include "cli/command_set.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "server/audit_log.h"
#include "server/tokens.h"
#include "storage/catalog.h"
#include "storage/data_dir.h"

namespace nodata::cli {
namespace {

using nlohmann::json;

struct TokenFlags {
  std::string data;
  std::string name;
  std::vector<std::string> scopes;
  std::string expires;  // a duration from now; empty: never
  bool certificate = false;  // a grant to client certificates, no bearer token
  bool json = false;
};

std::string Time(int64_t us) {
  if (us == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMicros(us), absl::UTCTimeZone());
}

// RFC 3339 UTC, or null for 0 (never).
json JsonTime(int64_t us) { return us == 0 ? json(nullptr) : json(Time(us)); }

absl::StatusOr<std::unique_ptr<storage::Catalog>> OpenCatalog(const std::string& data) {
  RETURN_IF_ERROR(PosixFileSystem().CreateDirs(data));
  return storage::Catalog::Open(storage::DataDir(data).CatalogPath());
}

// Appends the admin action to the data directory's audit log (server/audit_log.h), which the
// server may be writing too; a log that cannot be opened is reported, not fatal.
void Audit(const TokenFlags& f, std::string call, json request) {
  absl::StatusOr<std::unique_ptr<server::AuditLog>> log =
      server::AuditLog::Open(server::AuditLogPath(f.data));
  if (!log.ok()) {
    std::cerr << "nodata: " << log.status().message() << "\n";
    return;
  }
  server::AuditEntry entry;
  entry.principal = "cli";
  entry.peer = "cli";
  entry.call = std::move(call);
  entry.request = std::move(request);
  entry.status = "OK";
  entry.admin = true;
  (*log)->Write(entry);
}

int Create(const TokenFlags& f) {
  std::vector<server::Scope> scopes;
  for (const std::string& text : f.scopes) {
    absl::StatusOr<server::Scope> scope = server::ParseScope(text);
    if (!scope.ok()) {
      std::cerr << "nodata: --scope: " << scope.status().message() << "\n";
      return kExitUsage;
    }
    scopes.push_back(*scope);
  }
  const int64_t now_us = absl::ToUnixMicros(absl::Now());
  int64_t expires_at_us = 0;
  if (!f.expires.empty()) {
    int64_t after_us = 0;
    if (!ParseDuration(f.expires, &after_us)) {
      std::cerr << "nodata: --expires must be a duration such as 12h or 30d; got \"" << f.expires
                << "\"\n";
      return kExitUsage;
    }
    expires_at_us = now_us + after_us;
  }
  absl::StatusOr<server::MintedToken> minted =
      f.certificate ? server::MintCertificateGrant(f.name, scopes, now_us, expires_at_us)
                    : server::MintToken(f.name, scopes, now_us, expires_at_us);
  if (!minted.ok()) {
    std::cerr << "nodata: " << minted.status().message() << "\n";
    return minted.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage
                                                                        : kExitFailed;
  }
  absl::StatusOr<std::unique_ptr<storage::Catalog>> catalog = OpenCatalog(f.data);
  if (!catalog.ok()) return Fail(std::string(catalog.status().message()));
  if (absl::Status s = (*catalog)->tokens().Create(minted->row); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  json request{{"name", minted->row.name}, {"scopes", minted->row.scopes},
               {"expires_at", JsonTime(expires_at_us)}};
  if (f.certificate) request["certificate"] = true;
  Audit(f, "token create", std::move(request));
  if (f.certificate) {
    if (f.json) {
      std::cout << json{{"name", minted->row.name},
                        {"scopes", minted->row.scopes},
                        {"expires_at", JsonTime(expires_at_us)},
                        {"certificate", true}}
                << "\n";
    } else {
      std::cout << "granted scopes " << minted->row.scopes << " to client certificates with "
                << "subject CN=" << minted->row.name
                << (expires_at_us ? StrCat(", until ", Time(expires_at_us)) : std::string())
                << "; no bearer token was made\n";
    }
    return kExitOk;
  }
  if (f.json) {
    std::cout << json{{"name", minted->row.name},
                      {"scopes", minted->row.scopes},
                      {"expires_at", JsonTime(expires_at_us)},
                      {"token", minted->token}}
              << "\n";
    return kExitOk;
  }
  // The token alone on the last line, for scripts (`| tail -n 1`).
  std::cout << "created token " << minted->row.name << " with scopes " << minted->row.scopes
            << (expires_at_us ? StrCat(", expiring ", Time(expires_at_us)) : std::string())
            << "\nit is shown only now; clients pass it as --token or NODATA_TOKEN:\n"
            << minted->token << "\n";
  return kExitOk;
}

int List(const TokenFlags& f) {
  absl::StatusOr<std::unique_ptr<storage::Catalog>> catalog = OpenCatalog(f.data);
  if (!catalog.ok()) return Fail(std::string(catalog.status().message()));
  absl::StatusOr<std::vector<storage::TokenRow>> rows = (*catalog)->tokens().List();
  if (!rows.ok()) return Fail(std::string(rows.status().message()));
  if (f.json) {
    for (const storage::TokenRow& r : *rows) {
      std::cout << json{{"name", r.name},
                        {"kind", r.hash == server::kCertificateGrantHash ? "certificate" : "token"},
                        {"scopes", r.scopes},
                        {"created_at", JsonTime(r.created_at_us)},
                        {"expires_at", JsonTime(r.expires_at_us)},
                        {"revoked_at", JsonTime(r.revoked_at_us)}}
                << "\n";
    }
    return kExitOk;
  }
  std::printf("%-24s %-12s %-22s %-22s %-22s %s\n", "NAME", "KIND", "CREATED", "EXPIRES",
              "REVOKED", "SCOPES");
  for (const storage::TokenRow& r : *rows) {
    std::printf("%-24s %-12s %-22s %-22s %-22s %s\n", r.name.c_str(),
                r.hash == server::kCertificateGrantHash ? "certificate" : "token",
                Time(r.created_at_us).c_str(), Time(r.expires_at_us).c_str(),
                Time(r.revoked_at_us).c_str(), r.scopes.c_str());
  }
  return kExitOk;
}

int Revoke(const TokenFlags& f) {
  absl::StatusOr<std::unique_ptr<storage::Catalog>> catalog = OpenCatalog(f.data);
  if (!catalog.ok()) return Fail(std::string(catalog.status().message()));
  absl::Status s = (*catalog)->tokens().Revoke(f.name, absl::ToUnixMicros(absl::Now()));
  if (s.code() == absl::StatusCode::kNotFound) {
    return Fail(StrCat("no token named ", f.name, " that is not revoked already"));
  }
  if (!s.ok()) return Fail(std::string(s.message()));
  Audit(f, "token revoke", json{{"name", f.name}});
  std::cout << "revoked token " << f.name << "\n";
  return kExitOk;
}

}  // namespace

void AddTokenCommands(CommandSet& set) {
  CLI::App* token = set.app().add_subcommand(
      "token", "access tokens: create (shown once), list, revoke; on the data directory");
  token->require_subcommand(1);
  TokenFlags& f = set.Keep<TokenFlags>();
  const auto data_flag = [&f](CLI::App* cmd) {
    cmd->add_option("--data", f.data, "the server's data directory")
        ->envname("NODATA_DATA")
        ->required();
  };
  CLI::App* create = token->add_subcommand("create", "make a token and print it, once");
  create->add_option("name", f.name, "the principal's name ([a-zA-Z0-9._-], at most 249)")
      ->required();
  OnePerFlag(create->add_option("--scope", f.scopes,
                                "publish:PATTERN | consume:PATTERN | query:PATTERN | "
                                "group:PATTERN | component:PATTERN | aggregation:PATTERN | admin "
                                "(PATTERN: a name or a prefix ending in '*'); repeatable"))
      ->required();
  create->add_option("--expires", f.expires, "refuse it after this long (e.g. 12h, 30d)");
  create->add_flag("--certificate", f.certificate,
                   "grant the scopes to client certificates (--tls-client-ca) whose subject CN "
                   "is NAME, and make no bearer token");
  create->add_flag("--json", f.json, "print JSON");
  data_flag(create);
  set.OnParsed(create, [&f] { return Create(f); });

  CLI::App* list = token->add_subcommand("list", "the tokens, without their secrets");
  list->add_flag("--json", f.json, "print JSON lines");
  data_flag(list);
  set.OnParsed(list, [&f] { return List(f); });

  CLI::App* revoke = token->add_subcommand("revoke", "end a token");
  revoke->add_option("name", f.name, "the token's name")->required();
  data_flag(revoke);
  set.OnParsed(revoke, [&f] { return Revoke(f); });
}

}  // namespace nodata::cli
