// The audit log: one JSON object per line for every admin action (whatever its outcome) and every
// refusal (UNAUTHENTICATED, PERMISSION_DENIED), over gRPC and HTTP, and for tokens made or
// revoked with the CLI. A line is one write(2) to a file opened O_APPEND, so the server and the
// CLI may append at once; admin lines are fdatasync'ed before the call is answered, refusals are
// not (and at most kMaxRefusalsPerSecond are written a second; the rest are counted in a
// "suppressed" line). Past `max_bytes` the file is renamed to FILE.1 (replacing the last one).
// The fields are in docs/formats/audit-log.md.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"

namespace nodata::server {

class CallAuth;

struct AuditEntry {
  std::string principal;  // empty when the caller was not authenticated
  std::string peer;       // the client's address ("ipv4:127.0.0.1:5000"; "cli" for the CLI)
  std::string call;       // "/nodata.v1.TopicService/DeleteTopic", "GET /v1/...", "token create"
  nlohmann::json request = nlohmann::json::object();  // the names it acted on
  std::string status;     // "OK", "PERMISSION_DENIED", ...
  std::string message;    // the error's message; empty on OK
  bool admin = false;     // an admin action (synced), else a refusal
};

// Safe for concurrent use.
class AuditLog {
 public:
  static constexpr int kMaxRefusalsPerSecond = 100;

  // Opens (creating, mode 0600) `path` for appending.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(std::string path,
                                                        uint64_t max_bytes = 64ull << 20);
  ~AuditLog();

  // Writes `entry` (time stamped now). Errors are logged, not returned: an audit line that
  // cannot be written does not fail the call it describes.
  void Write(const AuditEntry& entry) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& path() const { return path_; }

 private:
  AuditLog(std::string path, int fd, uint64_t size, uint64_t max_bytes);
  void AppendLocked(const std::string& line, bool sync) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const uint64_t max_bytes_;
  absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_);
  uint64_t size_ ABSL_GUARDED_BY(mu_);
  int64_t second_ ABSL_GUARDED_BY(mu_) = 0;  // the second refusals_in_second_ counts
  int refusals_in_second_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

// Where the audit log of a data directory is by default: DIR/audit.log.
std::string AuditLogPath(std::string_view data_dir);

// The gRPC calls that are admin actions (logged whatever their outcome).
bool IsAdminCall(std::string_view method);

// A gRPC server interceptor factory that writes `log`'s lines for the server's calls: admin
// actions (the request's name, topic and group fields with them) and refusals. `auth` names the
// principal. Both must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeAuditInterceptor(
    AuditLog& log, const CallAuth& auth);

}  // namespace nodata::server
