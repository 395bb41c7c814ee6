// The ComponentService: the components registry (components/manager.h) over gRPC. Requests are
// mapped onto the Manager and its statuses onto gRPC's; no component logic lives here.
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "common/status.h"
#include "common/strings.h"
#include "components/manager.h"
#include "server/consume_service.h"
#include "server/grpc_services.h"
#include "server/auth.h"
#include "server/grpc_util.h"

namespace nodata::server {
namespace {

using components::ComponentInfo;

nodata::v1::ComponentState StateToProto(components::State s) {
  switch (s) {
    case components::State::kStarting:
      return nodata::v1::COMPONENT_STATE_STARTING;
    case components::State::kRunning:
      return nodata::v1::COMPONENT_STATE_RUNNING;
    case components::State::kFailed:
      return nodata::v1::COMPONENT_STATE_FAILED;
    case components::State::kStopped:
      return nodata::v1::COMPONENT_STATE_STOPPED;
  }
  return nodata::v1::COMPONENT_STATE_UNSPECIFIED;
}

void FillComponent(const ComponentInfo& info, nodata::v1::Component* out) {
  const components::ComponentSpec& spec = info.spec;
  out->set_kind(info.kind);
  out->set_name(spec.name);
  out->set_input(spec.input);
  for (const std::string& o : spec.outputs) out->add_outputs(o);
  out->set_config(spec.config);
  out->set_on_error(components::OnErrorName(spec.on_error));
  out->set_fuel_per_record(spec.fuel_per_record);
  out->set_parallelism(spec.parallelism);
  out->set_state(StateToProto(info.state));
  out->set_tier(info.tier);
  out->set_records_in(info.records_in);
  out->set_records_out(info.records_out);
  out->set_errors(info.errors);
  out->set_dead_lettered(info.dead_lettered);
  out->set_last_error(info.last_error);
  out->set_mean_fuel_per_record(info.mean_fuel_per_record);
  for (const components::PartitionLag& l : info.lag) {
    auto* lag = out->add_lag();
    lag->set_partition(l.partition);
    lag->set_committed(l.committed);
    lag->set_end(l.end);
    lag->set_lag(l.lag);
  }
  out->set_module_sha256(info.module_sha256);
  SetTimestamp(info.created_at_us, out->mutable_created_at());
  SetTimestamp(info.updated_at_us, out->mutable_updated_at());
  out->set_exec(spec.exec);
  for (const std::string& a : spec.args) out->add_args(a);
  out->set_pid(info.pid);
  out->set_restarts(info.restarts);
}

// The registration an AddComponent request asks for; INVALID_ARGUMENT for an unknown on_error.
// The Manager checks everything else.
// The owner that `caller` (null with authentication off) makes of a component with `spec`:
// its name and scopes; nullopt with authentication off. PERMISSION_DENIED unless it may read
// the input and publish to every output (and to the dead-letter topic).
absl::StatusOr<std::optional<std::pair<std::string, std::string>>> OwnerOf(
    const Principal* caller, const components::ComponentSpec& spec) {
  if (caller == nullptr) return std::nullopt;
  if (!spec.input.empty()) RETURN_IF_ERROR(Authorize(*caller, Action::kConsume, spec.input));
  for (const std::string& out : spec.outputs) {
    RETURN_IF_ERROR(Authorize(*caller, Action::kPublish, out));
  }
  if (!spec.is_program() && spec.on_error == components::OnError::kDeadLetter) {
    RETURN_IF_ERROR(Authorize(*caller, Action::kPublish, StrCat(spec.name, ".dead-letter")));
  }
  return std::make_pair(caller->name, ScopesString(caller->scopes));
}

absl::StatusOr<components::ComponentSpec> SpecFrom(const nodata::v1::AddComponentRequest& r) {
  components::ComponentSpec spec;
  spec.name = r.name();
  spec.input = r.input();
  spec.outputs.assign(r.outputs().begin(), r.outputs().end());
  spec.config = r.config();
  if (!r.on_error().empty()) {
    std::optional<components::OnError> on_error = components::OnErrorFromName(r.on_error());
    if (!on_error) {
      return absl::InvalidArgumentError(StrCat("on_error \"", r.on_error(),
                                               "\" is not dead-letter, skip or stop"));
    }
    spec.on_error = *on_error;
  }
  if (r.fuel_per_record() > 0) spec.fuel_per_record = r.fuel_per_record();
  spec.parallelism = r.parallelism();
  spec.exec = r.exec();
  spec.args.assign(r.args().begin(), r.args().end());
  return spec;
}

// Answers with the component, or the error.
grpc::Status Reply(const absl::StatusOr<ComponentInfo>& info, nodata::v1::Component* out) {
  if (info.ok()) FillComponent(*info, out);
  return ToGrpc(info.status());
}

// Add, update, reset and remove load modules and write the catalog (fsync'ed SQLite): they run
// on `pool`, off gRPC's threads. Get and list read the registry's memory and answer at once.
// With authentication, managing a component wants `component:NAME`, and registering or updating
// one the scopes of its topics too; the caller becomes its owner (its program calls with the
// owner's scopes).
class ComponentServiceImpl final : public nodata::v1::ComponentService::CallbackService {
 public:
  ComponentServiceImpl(components::Manager& manager, WorkerPool& pool, const CallAuth& auth)
      : manager_(manager), pool_(pool), auth_(auth) {}

  grpc::ServerUnaryReactor* AddComponent(grpc::CallbackServerContext* ctx,
                                         const nodata::v1::AddComponentRequest* request,
                                         nodata::v1::AddComponentResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kComponent, request->name()))) return reactor;
    absl::StatusOr<std::shared_ptr<const Principal>> caller = auth_.Caller(*ctx);
    if (Refuse(reactor, caller.status())) return reactor;
    absl::StatusOr<components::ComponentSpec> spec = SpecFrom(*request);
    if (!spec.ok()) {
      reactor->Finish(ToGrpc(spec.status()));
      return reactor;
    }
    auto owner = OwnerOf(caller->get(), *spec);
    if (Refuse(reactor, owner.status())) return reactor;
    if (*owner) std::tie(spec->owner, spec->owner_scopes) = **owner;
    pool_.Schedule([this, reactor, request, response, spec = *std::move(spec)]() mutable {
      reactor->Finish(Reply(manager_.Add(std::move(spec), request->wasm()),
                            response->mutable_component()));
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* GetComponent(grpc::CallbackServerContext* ctx,
                                         const nodata::v1::GetComponentRequest* request,
                                         nodata::v1::GetComponentResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kComponent, request->name()))) return reactor;
    reactor->Finish(Reply(manager_.Get(request->name()), response->mutable_component()));
    return reactor;
  }

  grpc::ServerUnaryReactor* ListComponents(grpc::CallbackServerContext* ctx,
                                           const nodata::v1::ListComponentsRequest*,
                                           nodata::v1::ListComponentsResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    absl::StatusOr<std::shared_ptr<const Principal>> caller = auth_.AdmittedCaller(*ctx);
    if (Refuse(reactor, caller.status())) return reactor;
    // A principal sees the components it may manage.
    for (const ComponentInfo& info : manager_.List()) {
      if (*caller && !(*caller)->Allows(Action::kComponent, info.spec.name)) continue;
      FillComponent(info, response->add_components());
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* UpdateComponent(
      grpc::CallbackServerContext* ctx, const nodata::v1::UpdateComponentRequest* request,
      nodata::v1::UpdateComponentResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kComponent, request->name()))) return reactor;
    absl::StatusOr<std::shared_ptr<const Principal>> caller = auth_.Caller(*ctx);
    if (Refuse(reactor, caller.status())) return reactor;
    // New code runs with the scopes of whoever gives it, on the topics it already has.
    std::optional<std::pair<std::string, std::string>> owner;
    if (*caller) {
      absl::StatusOr<ComponentInfo> current = manager_.Get(request->name());
      if (Refuse(reactor, current.status())) return reactor;
      auto made = OwnerOf(caller->get(), current->spec);
      if (Refuse(reactor, made.status())) return reactor;
      owner = *std::move(made);
    }
    pool_.Schedule([this, reactor, request, response, owner = std::move(owner)]() mutable {
      std::optional<std::string> config;
      if (request->has_config()) config = request->config();
      reactor->Finish(Reply(
          manager_.Update(request->name(), request->wasm(), std::move(config), request->exec(),
                          {request->args().begin(), request->args().end()}, std::move(owner)),
          response->mutable_component()));
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* ResetComponent(
      grpc::CallbackServerContext* ctx, const nodata::v1::ResetComponentRequest* request,
      nodata::v1::ResetComponentResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kComponent, request->name()))) return reactor;
    // A reset names where to go: "committed" would be where the component already is.
    const auto position = request->to().position_case();
    if (position == nodata::v1::StartPosition::POSITION_NOT_SET ||
        position == nodata::v1::StartPosition::kCommitted) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       "reset needs a position: earliest, latest, offset or timestamp"));
      return reactor;
    }
    absl::StatusOr<broker::StartSpec> to = StartFrom(request->to(), /*group=*/true);
    if (!to.ok()) {
      reactor->Finish(ToGrpc(to.status()));
      return reactor;
    }
    pool_.Schedule([this, reactor, request, response, to = *to] {
      reactor->Finish(Reply(manager_.Reset(request->name(), to), response->mutable_component()));
    });
    return reactor;
  }

  grpc::ServerWriteReactor<nodata::v1::TailComponentLogResponse>* TailComponentLog(
      grpc::CallbackServerContext* ctx,
      const nodata::v1::TailComponentLogRequest* request) override;

  grpc::ServerUnaryReactor* RemoveComponent(grpc::CallbackServerContext* ctx,
                                            const nodata::v1::RemoveComponentRequest* request,
                                            nodata::v1::RemoveComponentResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kComponent, request->name()))) return reactor;
    pool_.Schedule([this, reactor, request] {
      reactor->Finish(ToGrpc(manager_.Remove(request->name())));
    });
    return reactor;
  }

 private:
  components::Manager& manager_;
  WorkerPool& pool_;
  const CallAuth& auth_;
};

// A TailComponentLog stream: the kept lines, then (with follow) each new line as the log
// announces it. One write in flight at a time; the log's notification starts the next one when
// the stream is idle. The reactor deletes itself in OnDone.
class LogTailReactor final
    : public grpc::ServerWriteReactor<nodata::v1::TailComponentLogResponse> {
 public:
  LogTailReactor(std::shared_ptr<components::ComponentLog> log, bool follow, uint32_t tail)
      : log_(std::move(log)), follow_(follow), after_(log_->SeqBeforeLast(tail)) {
    if (follow_) {
      token_ = log_->Watch([this] {
        absl::MutexLock lock(&mu_);
        WriteNextLocked();
      });
    }
    absl::MutexLock lock(&mu_);
    WriteNextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke"));
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (!writing_) FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    if (follow_) log_->Unwatch(token_);  // no notification runs once this returns
    delete this;
  }

 private:
  static constexpr size_t kLinesPerMessage = 256;

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (cancelled_) {
      FinishLocked(grpc::Status::CANCELLED);
      return;
    }
    // Closed is read before the lines: a line appended before the close is still sent.
    const bool closed = log_->closed();
    std::vector<components::LogLine> lines = log_->Read(after_, kLinesPerMessage);
    if (lines.empty()) {
      if (!follow_ || closed) FinishLocked(grpc::Status::OK);
      return;
    }
    response_.Clear();
    for (const components::LogLine& l : lines) {
      auto* out = response_.add_lines();
      out->set_seq(l.seq);
      SetTimestamp(l.time_us, out->mutable_time());
      out->set_stream(l.stream);
      out->set_level(components::LogLevelName(l.level));
      out->set_text(l.text);
    }
    after_ = lines.back().seq;
    writing_ = true;
    StartWrite(&response_);
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(std::move(status));
  }

  const std::shared_ptr<components::ComponentLog> log_;
  const bool follow_;
  uint64_t token_ = 0;
  absl::Mutex mu_;
  uint64_t after_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  nodata::v1::TailComponentLogResponse response_ ABSL_GUARDED_BY(mu_);
};

grpc::ServerWriteReactor<nodata::v1::TailComponentLogResponse>*
ComponentServiceImpl::TailComponentLog(grpc::CallbackServerContext* ctx,
                                       const nodata::v1::TailComponentLogRequest* request) {
  if (absl::Status s = auth_.Check(*ctx, Action::kComponent, request->name()); !s.ok()) {
    return new FinishedWriter<nodata::v1::TailComponentLogResponse>(ToGrpc(s));
  }
  absl::StatusOr<std::shared_ptr<components::ComponentLog>> log = manager_.Log(request->name());
  if (!log.ok()) {
    // A reactor that only finishes: the status is the answer.
    class Failed final : public grpc::ServerWriteReactor<nodata::v1::TailComponentLogResponse> {
     public:
      explicit Failed(grpc::Status s) { Finish(std::move(s)); }
      void OnDone() override { delete this; }
    };
    return new Failed(ToGrpc(log.status()));
  }
  return new LogTailReactor(std::move(*log), request->follow(), request->tail());
}

}  // namespace

std::unique_ptr<nodata::v1::ComponentService::CallbackService> MakeComponentService(
    components::Manager& manager, WorkerPool& pool, const CallAuth& auth) {
  return std::make_unique<ComponentServiceImpl>(manager, pool, auth);
}

}  // namespace nodata::server
