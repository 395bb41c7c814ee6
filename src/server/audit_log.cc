#include "server/audit_log.h"

#include <fcntl.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/strings.h"
#include "server/auth.h"
#include "spdlog/spdlog.h"

namespace nodata::server {
namespace {

constexpr std::string_view kAdminCalls[] = {
    "/nodata.v1.TopicService/CreateTopic",
    "/nodata.v1.TopicService/DeleteTopic",
    "/nodata.v1.TopicService/UpdateTopic",
    "/nodata.v1.TopicService/FlushTopic",
    "/nodata.v1.ConsumeService/ResetOffsets",
    "/nodata.v1.ConsumeService/DeleteGroup",
    "/nodata.v1.ComponentService/AddComponent",
    "/nodata.v1.ComponentService/UpdateComponent",
    "/nodata.v1.ComponentService/ResetComponent",
    "/nodata.v1.ComponentService/RemoveComponent",
    "/nodata.v1.AggregationService/AddAggregation",
    "/nodata.v1.AggregationService/RemoveAggregation",
    "/nodata.v1.AggregationService/ResetAggregation",
};

// The names an admin request acts on: its string fields name, topic and group, when set.
nlohmann::json RequestNames(const google::protobuf::Message& message) {
  nlohmann::json out = nlohmann::json::object();
  const google::protobuf::Descriptor* d = message.GetDescriptor();
  const google::protobuf::Reflection* r = message.GetReflection();
  for (const char* field : {"name", "topic", "group"}) {
    const google::protobuf::FieldDescriptor* f = d->FindFieldByName(field);
    if (f == nullptr || f->is_repeated() ||
        f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
      continue;
    }
    std::string value = r->GetString(message, f);
    if (!value.empty()) out[field] = std::move(value);
  }
  return out;
}

class AuditInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuditInterceptor(grpc::experimental::ServerRpcInfo* info, AuditLog& log, const CallAuth& auth)
      : info_(info), log_(log), auth_(auth), admin_(IsAdminCall(info->method())) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using Hook = grpc::experimental::InterceptionHookPoints;
    if (admin_ && methods->QueryInterceptionHookPoint(Hook::POST_RECV_MESSAGE)) {
      if (auto* message = static_cast<google::protobuf::Message*>(methods->GetRecvMessage())) {
        request_ = RequestNames(*message);
      }
    }
    if (methods->QueryInterceptionHookPoint(Hook::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const grpc::StatusCode code = status.error_code();
      if (admin_ || code == grpc::StatusCode::PERMISSION_DENIED ||
          code == grpc::StatusCode::UNAUTHENTICATED) {
        Record(status);
      }
    }
    methods->Proceed();
  }

 private:
  void Record(const grpc::Status& status) {
    grpc::ServerContextBase& ctx = *info_->server_context();
    AuditEntry entry;
    if (absl::StatusOr<std::shared_ptr<const Principal>> caller = auth_.Caller(ctx);
        caller.ok() && *caller != nullptr) {
      entry.principal = (*caller)->name;
    }
    entry.peer = ctx.peer();
    entry.call = info_->method();
    entry.request = std::move(request_);
    // gRPC's codes are absl's, with the same names.
    entry.status = std::string(
        absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())));
    entry.message = status.error_message();
    entry.admin = admin_;
    log_.Write(entry);
  }

  grpc::experimental::ServerRpcInfo* const info_;
  AuditLog& log_;
  const CallAuth& auth_;
  const bool admin_;
  nlohmann::json request_ = nlohmann::json::object();
};

class AuditInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  AuditInterceptorFactory(AuditLog& log, const CallAuth& auth) : log_(log), auth_(auth) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new AuditInterceptor(info, log_, auth_);
  }

 private:
  AuditLog& log_;
  const CallAuth& auth_;
};

}  // namespace

std::string AuditLogPath(std::string_view data_dir) { return StrCat(data_dir, "/audit.log"); }

bool IsAdminCall(std::string_view method) {
  for (std::string_view m : kAdminCalls) {
    if (m == method) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(std::string path, uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(StrCat("cannot open the audit log ", path, ": ",
                                      std::strerror(errno)));
  }
  struct stat st {};
  ::fstat(fd, &st);
  return std::unique_ptr<AuditLog>(
      new AuditLog(std::move(path), fd, static_cast<uint64_t>(st.st_size), max_bytes));
}

AuditLog::AuditLog(std::string path, int fd, uint64_t size, uint64_t max_bytes)
    : path_(std::move(path)), max_bytes_(max_bytes), fd_(fd), size_(size) {}

AuditLog::~AuditLog() {
  absl::MutexLock lock(&mu_);
  if (fd_ >= 0) ::close(fd_);
}

void AuditLog::Write(const AuditEntry& entry) {
  const absl::Time now = absl::Now();
  nlohmann::json line = {
      {"time", absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", now, absl::UTCTimeZone())},
      {"principal", entry.principal},
      {"peer", entry.peer},
      {"call", entry.call},
      {"request", entry.request},
      {"status", entry.status},
  };
  if (!entry.message.empty()) line["message"] = entry.message;
  absl::MutexLock lock(&mu_);
  if (!entry.admin) {
    const int64_t second = absl::ToUnixSeconds(now);
    if (second != second_) {
      second_ = second;
      refusals_in_second_ = 0;
    }
    if (++refusals_in_second_ > kMaxRefusalsPerSecond) {
      ++suppressed_;
      return;
    }
  }
  if (suppressed_ > 0) {
    nlohmann::json note = {
        {"time", line["time"]},
        {"suppressed", suppressed_},
        {"message", StrCat("refusals over ", kMaxRefusalsPerSecond, " a second not written")}};
    AppendLocked(note.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                 false);
    suppressed_ = 0;
  }
  AppendLocked(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
               entry.admin);
}

void AuditLog::AppendLocked(const std::string& line, bool sync) {
  if (fd_ < 0) return;
  if (size_ > 0 && size_ + line.size() > max_bytes_) {
    const std::string old = path_ + ".1";
    if (::rename(path_.c_str(), old.c_str()) == 0) {
      const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
      if (fd >= 0) {
        ::close(fd_);
        fd_ = fd;
        size_ = 0;
      }
    }
  }
  const ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    spdlog::error("audit log {}: cannot write: {}", path_,
                  n < 0 ? std::strerror(errno) : "short write");
    return;
  }
  size_ += line.size();
  if (sync && ::fdatasync(fd_) != 0) {
    spdlog::error("audit log {}: cannot sync: {}", path_, std::strerror(errno));
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeAuditInterceptor(
    AuditLog& log, const CallAuth& auth) {
  return std::make_unique<AuditInterceptorFactory>(log, auth);
}

}  // namespace nodata::server
