// The AggregationService and the QueryService: the aggregations (aggregate/manager.h) over
// gRPC. Requests are mapped onto the Manager and its statuses onto gRPC's; no aggregation logic
// lives here.
#include <optional>
#include <thread>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "aggregate/manager.h"
#include "aggregate/wasm_reducer.h"
#include "common/status.h"
#include "common/strings.h"
#include "server/aggregation_api.h"
#include "server/grpc_services.h"
#include "server/auth.h"
#include "server/grpc_util.h"

namespace nodata::server {
namespace {

using aggregate::AggregationInfo;

grpc::Status Reply(const absl::StatusOr<AggregationInfo>& info, nodata::v1::Aggregation* out) {
  if (info.ok()) FillAggregation(*info, out);
  return ToGrpc(info.status());
}

// A window's start and end; unset for the global window.
void FillWindow(const aggregate::WindowValues& w, nodata::v1::AggregationWindow* out) {
  if (w.start_us != aggregate::kGlobalStartUs) {
    SetTimestamp(w.start_us, out->mutable_start());
    SetTimestamp(w.end_us, out->mutable_end());
  }
  out->set_final(w.final);
  out->set_values(w.values);
}

// A request's time, or INVALID_ARGUMENT naming the field.
absl::StatusOr<int64_t> TimeFrom(const google::protobuf::Timestamp& ts, std::string_view field) {
  if (!ValidTimestamp(ts)) {
    return absl::InvalidArgumentError(StrCat(field, " is out of range (seconds ", ts.seconds(),
                                             ", nanos ", ts.nanos(), ")"));
  }
  return TimestampMicros(ts);
}

// Add, reset and remove load modules, write the catalog and drop state: they run on `pool`,
// off gRPC's threads. Get and list read the registry's memory and answer at once.
class AggregationServiceImpl final : public nodata::v1::AggregationService::CallbackService {
 public:
  AggregationServiceImpl(aggregate::Manager& manager, WorkerPool& pool, const CallAuth& auth)
      : manager_(manager), pool_(pool), auth_(auth) {}

  grpc::ServerUnaryReactor* AddAggregation(
      grpc::CallbackServerContext* ctx, const nodata::v1::AddAggregationRequest* request,
      nodata::v1::AddAggregationResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    // It reads its input for as long as it runs: the registering principal must be allowed to.
    if (Refuse(reactor, auth_.Check(*ctx, Action::kAggregation, request->name(),
                                    Action::kConsume, request->input()))) {
      return reactor;
    }
    absl::StatusOr<aggregate::AggregationSpec> spec = SpecFrom(*request);
    if (!spec.ok()) {
      reactor->Finish(ToGrpc(spec.status()));
      return reactor;
    }
    pool_.Schedule([this, reactor, request, response, spec = std::move(*spec)]() mutable {
      reactor->Finish(Reply(manager_.Add(std::move(spec), request->wasm()),
                            response->mutable_aggregation()));
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* ListAggregations(
      grpc::CallbackServerContext* ctx, const nodata::v1::ListAggregationsRequest*,
      nodata::v1::ListAggregationsResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    absl::StatusOr<std::shared_ptr<const Principal>> caller = auth_.AdmittedCaller(*ctx);
    if (Refuse(reactor, caller.status())) return reactor;
    // A principal sees the aggregations it may query.
    for (const AggregationInfo& info : manager_.List()) {
      if (*caller && !(*caller)->Allows(Action::kQuery, info.spec.name)) continue;
      FillAggregation(info, response->add_aggregations());
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* GetAggregation(
      grpc::CallbackServerContext* ctx, const nodata::v1::GetAggregationRequest* request,
      nodata::v1::GetAggregationResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kQuery, request->name()))) return reactor;
    reactor->Finish(Reply(manager_.Get(request->name()), response->mutable_aggregation()));
    return reactor;
  }

  grpc::ServerUnaryReactor* RemoveAggregation(
      grpc::CallbackServerContext* ctx, const nodata::v1::RemoveAggregationRequest* request,
      nodata::v1::RemoveAggregationResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kAggregation, request->name()))) {
      return reactor;
    }
    pool_.Schedule([this, reactor, request] {
      reactor->Finish(ToGrpc(manager_.Remove(request->name())));
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* ResetAggregation(
      grpc::CallbackServerContext* ctx, const nodata::v1::ResetAggregationRequest* request,
      nodata::v1::ResetAggregationResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kAggregation, request->name()))) {
      return reactor;
    }
    if (request->to().empty()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "reset needs a position: earliest, latest or time:RFC3339"));
      return reactor;
    }
    absl::StatusOr<aggregate::StartSpec> to = aggregate::ParseStart(request->to());
    if (!to.ok()) {
      reactor->Finish(ToGrpc(absl::InvalidArgumentError(
          StrCat("to \"", request->to(), "\": ", std::string_view(ToStd(to.status().message()))))));
      return reactor;
    }
    pool_.Schedule([this, reactor, request, response, to = *to] {
      reactor->Finish(
          Reply(manager_.Reset(request->name(), to), response->mutable_aggregation()));
    });
    return reactor;
  }

 private:
  aggregate::Manager& manager_;
  WorkerPool& pool_;
  const CallAuth& auth_;
};

// The Watch streams' threads: the query service waits for the last one to end before it (and
// then the manager) goes.
class WatchThreads {
 public:
  void Started() {
    absl::MutexLock lock(&mu_);
    ++running_;
  }
  void Ended() {
    absl::MutexLock lock(&mu_);
    --running_;
  }
  void WaitNone() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(+[](int* n) { return *n == 0; }, &running_));
  }

 private:
  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

// A Watch stream. Its thread waits on the manager's Watcher (a blocking wait with a timeout, so
// that a cancel is seen within kPollMs) and writes one message at a time; the thread owns the
// reactor once the stream is finished and deletes it after OnDone.
class WatchReactor final : public grpc::ServerWriteReactor<nodata::v1::WatchResponse> {
 public:
  WatchReactor(std::unique_ptr<aggregate::Watcher> watcher, WatchThreads& threads)
      : watcher_(std::move(watcher)), threads_(threads) {
    threads_.Started();
    std::thread([this] { Run(); }).detach();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) cancelled_ = true;
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }

  void OnDone() override {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }

 private:
  static constexpr int kPollMs = 500;

  // No write in flight, or the stream is cancelled: the thread may go on.
  bool MayGoOn() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !writing_ || cancelled_; }
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !writing_; }

  void Run() {
    grpc::Status status = grpc::Status::OK;
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &WatchReactor::MayGoOn));
        if (cancelled_) {
          status = grpc::Status::CANCELLED;
          break;
        }
      }
      uint64_t dropped = 0;
      absl::StatusOr<std::vector<aggregate::Update>> updates = watcher_->Next(kPollMs, &dropped);
      if (!updates.ok()) {
        // The aggregation was removed or the server stops: the stream ends cleanly.
        if (!absl::IsCancelled(updates.status())) status = ToGrpc(updates.status());
        break;
      }
      if (updates->empty() && dropped == 0) continue;
      response_.Clear();
      response_.set_dropped(dropped);
      for (const aggregate::Update& u : *updates) {
        auto* out = response_.add_updates();
        out->set_key(u.key);
        FillWindow(u.window, out->mutable_window());
      }
      {
        absl::MutexLock lock(&mu_);
        writing_ = true;
      }
      StartWrite(&response_);
    }
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &WatchReactor::Idle));
    }
    Finish(std::move(status));
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&done_));
    }
    WatchThreads& threads = threads_;
    delete this;  // the watcher goes with it, before the count lets the manager go
    threads.Ended();
  }

  std::unique_ptr<aggregate::Watcher> watcher_;
  WatchThreads& threads_;
  nodata::v1::WatchResponse response_;  // only the thread touches it, and gRPC while writing
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// A reactor that only finishes: the status is the answer.
class FailedWatch final : public grpc::ServerWriteReactor<nodata::v1::WatchResponse> {
 public:
  explicit FailedWatch(grpc::Status s) { Finish(std::move(s)); }
  void OnDone() override { delete this; }
};

// Reads answer at once from the manager (its store and cache); Watch streams each run on a
// thread of their own.
class QueryServiceImpl final : public nodata::v1::QueryService::CallbackService {
 public:
  QueryServiceImpl(aggregate::Manager& manager, const CallAuth& auth)
      : manager_(manager), auth_(auth) {}
  ~QueryServiceImpl() override { threads_.WaitNone(); }

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx,
                                const nodata::v1::GetRequest* request,
                                nodata::v1::GetResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kQuery, request->name()))) return reactor;
    reactor->Finish(ToGrpc(DoGet(*request, response)));
    return reactor;
  }

  grpc::ServerUnaryReactor* ListWindow(grpc::CallbackServerContext* ctx,
                                       const nodata::v1::ListWindowRequest* request,
                                       nodata::v1::ListWindowResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kQuery, request->name()))) return reactor;
    reactor->Finish(ToGrpc(DoListWindow(*request, response)));
    return reactor;
  }

  grpc::ServerWriteReactor<nodata::v1::WatchResponse>* Watch(
      grpc::CallbackServerContext* ctx, const nodata::v1::WatchRequest* request) override {
    if (absl::Status s = auth_.Check(*ctx, Action::kQuery, request->name()); !s.ok()) {
      return new FailedWatch(ToGrpc(s));
    }
    std::optional<std::string> key;
    if (request->has_key()) key = request->key();
    absl::StatusOr<std::unique_ptr<aggregate::Watcher>> watcher =
        manager_.Watch(request->name(), std::move(key));
    if (!watcher.ok()) return new FailedWatch(ToGrpc(watcher.status()));
    return new WatchReactor(std::move(*watcher), threads_);
  }

 private:
  absl::Status DoGet(const nodata::v1::GetRequest& r, nodata::v1::GetResponse* out) {
    aggregate::KeyQuery query;
    query.key = r.key();
    if (r.has_from()) {
      ASSIGN_OR_RETURN(query.from_us, TimeFrom(r.from(), "from"));
    }
    if (r.has_to()) {
      ASSIGN_OR_RETURN(query.to_us, TimeFrom(r.to(), "to"));
    }
    if (r.limit() > 0) query.limit = r.limit();
    ASSIGN_OR_RETURN(aggregate::KeyResult result, manager_.GetKey(r.name(), query));
    out->set_key(std::move(result.key));
    for (const aggregate::WindowValues& w : result.windows) FillWindow(w, out->add_windows());
    return absl::OkStatus();
  }

  absl::Status DoListWindow(const nodata::v1::ListWindowRequest& r,
                            nodata::v1::ListWindowResponse* out) {
    aggregate::WindowQuery query;
    if (r.has_start()) {
      ASSIGN_OR_RETURN(query.start_us, TimeFrom(r.start(), "start"));
    }
    query.order_by = r.order_by();
    query.desc = r.desc();
    if (r.limit() > 0) query.limit = r.limit();
    if (r.has_after()) query.after = r.after();
    ASSIGN_OR_RETURN(aggregate::WindowResult result, manager_.ListWindow(r.name(), query));
    if (result.start_us != aggregate::kGlobalStartUs) {
      SetTimestamp(result.start_us, out->mutable_start());
      SetTimestamp(result.end_us, out->mutable_end());
    }
    for (aggregate::WindowResult::Entry& e : result.keys) {
      auto* k = out->add_keys();
      k->set_key(std::move(e.key));
      k->set_values(std::move(e.values));
      k->set_final(e.final);
    }
    if (result.next) out->set_next(std::move(*result.next));
    return absl::OkStatus();
  }

  aggregate::Manager& manager_;
  const CallAuth& auth_;
  WatchThreads threads_;
};

}  // namespace

std::unique_ptr<nodata::v1::AggregationService::CallbackService> MakeAggregationService(
    aggregate::Manager& manager, WorkerPool& pool, const CallAuth& auth) {
  return std::make_unique<AggregationServiceImpl>(manager, pool, auth);
}

std::unique_ptr<nodata::v1::QueryService::CallbackService> MakeQueryService(
    aggregate::Manager& manager, const CallAuth& auth) {
  return std::make_unique<QueryServiceImpl>(manager, auth);
}

}  // namespace nodata::server
