#include "server/consume_service.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "broker/subscription.h"
#include "common/status.h"
#include "server/auth.h"
#include "server/grpc_util.h"
#include "server/record_encoder.h"
#include "server/stream_writer.h"

namespace nodata::server {

absl::StatusOr<broker::StartSpec> StartFrom(const nodata::v1::StartPosition& p, bool group) {
  broker::StartSpec s;
  using K = broker::StartSpec::Kind;
  switch (p.position_case()) {
    case nodata::v1::StartPosition::POSITION_NOT_SET:
      s.kind = group ? K::kCommitted : K::kEarliest;
      break;
    case nodata::v1::StartPosition::kEarliest:
      s.kind = K::kEarliest;
      break;
    case nodata::v1::StartPosition::kLatest:
      s.kind = K::kLatest;
      break;
    case nodata::v1::StartPosition::kCommitted:
      s.kind = K::kCommitted;  // the subscription refuses it without a group
      break;
    case nodata::v1::StartPosition::kOffset:
      s.kind = K::kOffset;
      s.offset = Offset(p.offset());
      break;
    case nodata::v1::StartPosition::kTimestamp: {
      const auto& ts = p.timestamp();
      if (!ValidTimestamp(ts)) {
        return absl::InvalidArgumentError("start timestamp is out of range");
      }
      s.kind = K::kTime;
      s.time_us = TimestampMicros(ts);
      break;
    }
  }
  return s;
}

namespace {

using nodata::v1::SubscribeRequest;
using nodata::v1::SubscribeResponse;

// About this many bytes of records per message (one record may go past it): well under the 4 MiB
// a gRPC client accepts by default.
constexpr size_t kMaxBatchBytes = 1u << 20;

// One Subscribe stream as the sink of its subscription: encodes each delivery by hand from the
// log's views (see record_encoder.h) into the stream's one message in flight.
class SubscribeStream final : public broker::SubscriptionSink {
 public:
  SubscribeStream(grpc::ServerWriteReactor<grpc::ByteBuffer>* reactor, std::string topic)
      : topic_(std::move(topic)), writer_(reactor) {}

  void OnAssignment(const broker::Assignment& a) override {
    SubscribeResponse response;
    auto* out = response.mutable_assignment();
    for (PartitionId p : a.partitions) out->add_partitions(p.value());
    out->set_generation(a.generation);
    SetMessage(response.SerializeAsString());
    writer_.Write(&message_);
  }

  void OnBatch(broker::RecordBatch& batch) override {
    encoder_.Begin(topic_);
    const PartitionId partition = batch.partition();
    if (batch.ForEach([&](const DecodedRecord& r) { encoder_.Add(partition, r); }) == 0) {
      return;
    }
    SetMessage(encoder_.Finish());
    writer_.Write(&message_);
  }

  void OnEnd(absl::Status status) override { writer_.Finish(ToGrpc(status)); }

  StreamWriter<grpc::ByteBuffer>& writer() { return writer_; }

 private:
  void SetMessage(std::string_view bytes) {
    grpc::Slice slice(bytes.data(), bytes.size());
    message_ = grpc::ByteBuffer(&slice, 1);
  }

  const std::string topic_;
  // Used by one delivery at a time (the subscription's contract).
  RecordBatchEncoder encoder_;
  grpc::ByteBuffer message_;
  StreamWriter<grpc::ByteBuffer> writer_;
};

// The subscription a Subscribe request asks for; the limits and checks of the proto's fields.
absl::StatusOr<broker::SubscriptionOptions> OptionsFrom(broker::Broker& broker, WorkerPool& pool,
                                                        const SubscribeRequest& request,
                                                        const std::string& peer) {
  broker::SubscriptionOptions o;
  o.topic = request.topic();
  o.group = request.group();
  o.consumer_id = request.consumer_id();
  o.peer = peer;
  o.max_records = request.max_batch();
  // Every record repeats the topic name: keep a full message under the budget.
  const size_t batch =
      request.max_batch() > 0 ? request.max_batch() : broker::kDefaultBatchRecords;
  o.max_bytes = kMaxBatchBytes - std::min<size_t>(kMaxBatchBytes / 2, o.topic.size() * batch);
  o.auto_commit = request.auto_commit();
  auto start = StartFrom(request.start(), !o.group.empty());
  if (!start.ok()) {
    // A request wrong in several ways gets the error it always got: the checks of the topic,
    // group, consumer id, max_batch and auto_commit come before the start position's.
    RETURN_IF_ERROR(broker::Subscription::Open(broker, pool, o, nullptr).status());
    return start.status();
  }
  o.start = *start;
  for (const auto& s : request.start_offsets()) {
    o.start_offsets.emplace_back(PartitionId(s.partition()), Offset(s.offset()));
  }
  o.partitions = PartitionIds(request.partitions());
  o.clamp_start = request.clamp_start();
  return o;
}

// Live subscriptions, so that a shutdown can end them.
class SubscriptionRegistry {
 public:
  void Add(const void* key, const std::shared_ptr<broker::Subscription>& s) {
    absl::MutexLock lock(&mu_);
    subscriptions_[key] = s;
  }
  void Remove(const void* key) {
    absl::MutexLock lock(&mu_);
    subscriptions_.erase(key);
  }
  std::vector<std::shared_ptr<broker::Subscription>> All() {
    absl::MutexLock lock(&mu_);
    std::vector<std::shared_ptr<broker::Subscription>> out;
    for (auto& [key, weak] : subscriptions_) {
      if (auto s = weak.lock()) out.push_back(std::move(s));
    }
    return out;
  }

 private:
  absl::Mutex mu_;
  std::map<const void*, std::weak_ptr<broker::Subscription>> subscriptions_ ABSL_GUARDED_BY(mu_);
};

class SubscribeReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // `caller`: the caller, null with authentication off, or why it is refused.
  SubscribeReactor(broker::Broker& broker, WorkerPool& pool, SubscriptionRegistry& registry,
                   const grpc::ByteBuffer* raw, const std::string& peer,
                   const absl::StatusOr<std::shared_ptr<const Principal>>& caller,
                   absl::StatusOr<Quotas::Stream> slot)
      : registry_(registry) {
    // The method is registered raw (responses are encoded by hand), so the request is parsed
    // here.
    std::vector<grpc::Slice> slices;
    SubscribeRequest request;
    std::string bytes;
    if (raw->Dump(&slices).ok()) {
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    const bool parsed = request.ParseFromString(bytes);
    stream_ = std::make_shared<SubscribeStream>(this, request.topic());
    if (!parsed) {
      stream_->writer().Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                            "cannot parse SubscribeRequest"));
      return;
    }
    absl::Status allowed = caller.status();
    if (allowed.ok() && *caller) allowed = Authorize(**caller, Action::kConsume, request.topic());
    if (allowed.ok() && *caller && !request.group().empty()) {
      allowed = Authorize(**caller, Action::kGroup, request.group());
    }
    if (allowed.ok()) allowed = slot.status();
    if (!allowed.ok()) {
      stream_->writer().Finish(ToGrpc(allowed));
      return;
    }
    auto options = OptionsFrom(broker, pool, request, peer);
    if (!options.ok()) {
      stream_->writer().Finish(ToGrpc(options.status()));
      return;
    }
    auto subscription = broker::Subscription::Open(broker, pool, std::move(*options), stream_);
    if (!subscription.ok()) {
      stream_->writer().Finish(ToGrpc(subscription.status()));
      return;
    }
    slot_ = *std::move(slot);
    subscription_ = std::move(*subscription);
    registry_.Add(this, subscription_);
    subscription_->Start();
  }
  void OnWriteDone(bool ok) override {
    subscription_->Ready(ok ? absl::OkStatus()
                            : absl::CancelledError("the subscriber went away"));
  }
  void OnCancel() override {
    if (subscription_) subscription_->Stop(absl::CancelledError("the subscriber went away"));
  }
  void OnDone() override {
    registry_.Remove(this);
    stream_->writer().Detach();
    subscription_.reset();  // closes it: the last commit and leaving the group follow
    delete this;
  }

 private:
  SubscriptionRegistry& registry_;
  Quotas::Stream slot_;  // counts against the caller's open streams
  std::shared_ptr<SubscribeStream> stream_;
  // Shared with the registry, whose StopAll may hold it while the stream ends.
  std::shared_ptr<broker::Subscription> subscription_;
};

class ConsumeServiceImpl final : public ConsumeService {
 public:
  ConsumeServiceImpl(broker::Broker& broker, WorkerPool& pool, const CallAuth& auth)
      : broker_(broker), pool_(pool), auth_(auth) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(grpc::CallbackServerContext* ctx,
                                                       const grpc::ByteBuffer* request) override {
    absl::StatusOr<std::shared_ptr<const Principal>> caller = auth_.Caller(*ctx);
    absl::StatusOr<Quotas::Stream> slot =
        caller.ok() ? auth_.OpenStream(*ctx, caller->get()) : Quotas::Stream();
    return new SubscribeReactor(broker_, pool_, subscriptions_, request, ctx->peer(), caller,
                                std::move(slot));
  }

  void StopAll() override {
    for (const auto& s : subscriptions_.All()) {
      s->Stop(absl::UnavailableError("the server is shutting down"));
    }
  }

  grpc::ServerUnaryReactor* Commit(grpc::CallbackServerContext* ctx,
                                   const nodata::v1::CommitRequest* request,
                                   nodata::v1::CommitResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kConsume, request->topic(), Action::kGroup,
                                    request->group()))) {
      return reactor;
    }
    // A commit is an fsync'ed SQLite transaction: off the gRPC thread.
    pool_.Schedule([this, reactor, request] {
      std::vector<std::pair<PartitionId, Offset>> offsets;
      for (const auto& o : request->offsets()) {
        offsets.emplace_back(PartitionId(o.partition()), Offset(o.offset()));
      }
      reactor->Finish(ToGrpc(broker_.CommitOffsets(request->group(), request->topic(), offsets,
                                                   request->generation(),
                                                   request->consumer_id())));
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* GetGroup(grpc::CallbackServerContext* ctx,
                                     const nodata::v1::GetGroupRequest* request,
                                     nodata::v1::GetGroupResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kConsume, request->topic(), Action::kGroup,
                                    request->group()))) {
      return reactor;
    }
    auto d = broker_.DescribeGroup(request->group(), request->topic());
    if (d.ok()) {
      response->set_group(d->group);
      response->set_topic(d->topic);
      response->set_generation(d->live.generation);
      for (const auto& m : d->live.members) {
        auto* out = response->add_members();
        out->set_consumer_id(m.consumer_id);
        for (PartitionId p : m.partitions) out->add_partitions(p.value());
        SetTimestamp(m.joined_at_us, out->mutable_joined_at());
        out->set_peer(m.peer);
      }
      for (const auto& p : d->partitions) {
        auto* out = response->add_partitions();
        out->set_partition(p.partition.value());
        out->set_has_committed(p.committed.has_value());
        out->set_committed_offset(p.committed.value_or(Offset()).value());
        out->set_end_offset(p.end_offset.value());
        out->set_lag(p.lag);
        out->set_consumer_id(p.owner);
      }
    }
    reactor->Finish(ToGrpc(d.status()));
    return reactor;
  }

  grpc::ServerUnaryReactor* ListGroups(grpc::CallbackServerContext* ctx,
                                       const nodata::v1::ListGroupsRequest* request,
                                       nodata::v1::ListGroupsResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kAdmin, ""))) return reactor;
    auto groups = broker_.ListGroups(request->topic());
    if (groups.ok()) {
      for (const auto& g : *groups) {
        auto* out = response->add_groups();
        out->set_group(g.group);
        out->set_topic(g.topic);
        out->set_member_count(g.members);
        out->set_lag(g.lag);
      }
    }
    reactor->Finish(ToGrpc(groups.status()));
    return reactor;
  }

  grpc::ServerUnaryReactor* ResetOffsets(grpc::CallbackServerContext* ctx,
                                         const nodata::v1::ResetOffsetsRequest* request,
                                         nodata::v1::ResetOffsetsResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kAdmin, ""))) return reactor;
    if (request->to().position_case() == nodata::v1::StartPosition::POSITION_NOT_SET) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "reset needs a position: earliest, latest, offset or timestamp"));
      return reactor;
    }
    auto to = StartFrom(request->to(), /*group=*/true);
    if (!to.ok()) {
      reactor->Finish(ToGrpc(to.status()));
      return reactor;
    }
    auto offsets = broker_.ResetOffsets(request->group(), request->topic(), *to,
                                        PartitionIds(request->partitions()));
    if (offsets.ok()) {
      for (const auto& [p, o] : *offsets) {
        auto* out = response->add_offsets();
        out->set_partition(p.value());
        out->set_offset(o.value());
      }
    }
    reactor->Finish(ToGrpc(offsets.status()));
    return reactor;
  }

  grpc::ServerUnaryReactor* DeleteGroup(grpc::CallbackServerContext* ctx,
                                        const nodata::v1::DeleteGroupRequest* request,
                                        nodata::v1::DeleteGroupResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kAdmin, ""))) return reactor;
    // An fsync'ed SQLite transaction: off the gRPC thread, like Commit.
    pool_.Schedule([this, reactor, request] {
      reactor->Finish(ToGrpc(broker_.DeleteGroup(request->group(), request->topic())));
    });
    return reactor;
  }

 private:
  broker::Broker& broker_;
  SubscriptionRegistry subscriptions_;
  WorkerPool& pool_;
  const CallAuth& auth_;
};

}  // namespace

std::unique_ptr<ConsumeService> MakeConsumeService(broker::Broker& broker, WorkerPool& pool,
                                                   const CallAuth& auth) {
  return std::make_unique<ConsumeServiceImpl>(broker, pool, auth);
}

}  // namespace nodata::server
