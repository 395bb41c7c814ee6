// The ComponentService: the components registry (components/manager.h) over gRPC. Requests are
// mapped onto the Manager and its statuses onto gRPC's; no component logic lives here.
#include <string>
#include <utility>

#include "components/manager.h"
#include "server/consume_service.h"
#include "server/grpc_services.h"
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
}

// The registration an AddComponent request asks for; INVALID_ARGUMENT for an unknown on_error.
// The Manager checks everything else.
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
  return spec;
}

// Answers with the component, or the error.
grpc::Status Reply(const absl::StatusOr<ComponentInfo>& info, nodata::v1::Component* out) {
  if (info.ok()) FillComponent(*info, out);
  return ToGrpc(info.status());
}

// Add, update, reset and remove load modules and write the catalog (fsync'ed SQLite): they run
// on `pool`, off gRPC's threads. Get and list read the registry's memory and answer at once.
class ComponentServiceImpl final : public nodata::v1::ComponentService::CallbackService {
 public:
  ComponentServiceImpl(components::Manager& manager, WorkerPool& pool)
      : manager_(manager), pool_(pool) {}

  grpc::ServerUnaryReactor* AddComponent(grpc::CallbackServerContext* ctx,
                                         const nodata::v1::AddComponentRequest* request,
                                         nodata::v1::AddComponentResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    pool_.Schedule([this, reactor, request, response] {
      absl::StatusOr<components::ComponentSpec> spec = SpecFrom(*request);
      if (!spec.ok()) {
        reactor->Finish(ToGrpc(spec.status()));
        return;
      }
      reactor->Finish(Reply(manager_.Add(std::move(*spec), request->wasm()),
                            response->mutable_component()));
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* GetComponent(grpc::CallbackServerContext* ctx,
                                         const nodata::v1::GetComponentRequest* request,
                                         nodata::v1::GetComponentResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(Reply(manager_.Get(request->name()), response->mutable_component()));
    return reactor;
  }

  grpc::ServerUnaryReactor* ListComponents(grpc::CallbackServerContext* ctx,
                                           const nodata::v1::ListComponentsRequest*,
                                           nodata::v1::ListComponentsResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    for (const ComponentInfo& info : manager_.List()) {
      FillComponent(info, response->add_components());
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* UpdateComponent(
      grpc::CallbackServerContext* ctx, const nodata::v1::UpdateComponentRequest* request,
      nodata::v1::UpdateComponentResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    pool_.Schedule([this, reactor, request, response] {
      std::optional<std::string> config;
      if (request->has_config()) config = request->config();
      reactor->Finish(Reply(manager_.Update(request->name(), request->wasm(), std::move(config)),
                            response->mutable_component()));
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* ResetComponent(
      grpc::CallbackServerContext* ctx, const nodata::v1::ResetComponentRequest* request,
      nodata::v1::ResetComponentResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
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

  grpc::ServerUnaryReactor* RemoveComponent(grpc::CallbackServerContext* ctx,
                                            const nodata::v1::RemoveComponentRequest* request,
                                            nodata::v1::RemoveComponentResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    pool_.Schedule([this, reactor, request] {
      reactor->Finish(ToGrpc(manager_.Remove(request->name())));
    });
    return reactor;
  }

 private:
  components::Manager& manager_;
  WorkerPool& pool_;
};

}  // namespace

std::unique_ptr<nodata::v1::ComponentService::CallbackService> MakeComponentService(
    components::Manager& manager, WorkerPool& pool) {
  return std::make_unique<ComponentServiceImpl>(manager, pool);
}

}  // namespace nodata::server
