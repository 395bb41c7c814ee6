#include "server/grpc_services.h"

#include <grpcpp/alarm.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "broker/subscription.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "prometheus/histogram.h"
#include "server/auth.h"
#include "server/grpc_util.h"
#include "server/stream_writer.h"
#include "prometheus/registry.h"

namespace nodata::server {
namespace {

using broker::AckOut;
using broker::EventIn;
using nodata::v1::PublishBatchRequest;
using nodata::v1::PublishBatchResponse;



// The broker's borrowed view of request events, with storage for their header views.
struct Converted {
  std::vector<EventIn> events;
  std::vector<std::pair<std::string_view, std::string_view>> headers;

  // The events must outlive this object.
  absl::Status From(const google::protobuf::RepeatedPtrField<nodata::v1::Event>& in) {
    size_t header_count = 0;
    for (const auto& e : in) header_count += e.headers_size();
    headers.reserve(header_count);  // spans point into it: no reallocation
    events.resize(in.size());
    for (int i = 0; i < in.size(); ++i) RETURN_IF_ERROR(Convert(in[i], i));
    return absl::OkStatus();
  }

  absl::Status FromOne(const nodata::v1::Event& e) {
    headers.reserve(e.headers_size());
    events.resize(1);
    return Convert(e, 0);
  }

 private:
  absl::Status Convert(const nodata::v1::Event& e, int i) {
    EventIn& out = events[i];
    out.topic = e.topic();
    out.id = e.id();
    out.key = e.key();
    out.data = e.data();
    if (e.has_timestamp()) {
      const auto& ts = e.timestamp();
      if (!ValidTimestamp(ts)) {
        return absl::InvalidArgumentError(StrCat("event ", i,
                                                 ": timestamp is out of range (seconds ",
                                                 ts.seconds(), ", nanos ", ts.nanos(), ")"));
      }
      out.timestamp_us = TimestampMicros(ts);
    }
    if (e.headers_size() > 0) {
      size_t start = headers.size();
      for (const auto& [k, v] : e.headers()) headers.emplace_back(k, v);
      out.headers = absl::MakeConstSpan(headers.data() + start, e.headers_size());
    }
    return absl::OkStatus();
  }
};

void FillAck(const nodata::v1::Event& e, AckOut& in, nodata::v1::Ack* out) {
  out->set_topic(e.topic());
  out->set_partition(in.partition.value());
  out->set_offset(in.offset.value());
  out->set_duplicate(in.duplicate);
  if (in.assigned_id.empty()) {
    out->set_id(e.id());
  } else {
    out->set_id(std::move(in.assigned_id));
  }
}

double SecondsSince(int64_t start_ns) {
  return static_cast<double>(MonotonicNanos() - start_ns) / 1e9;
}

// PERMISSION_DENIED unless `caller` may publish to every topic of `events`.
absl::Status AuthorizePublish(const Principal& caller, absl::Span<const EventIn> events) {
  std::string_view checked;
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > 0 && events[i].topic == checked) continue;
    RETURN_IF_ERROR(Authorize(caller, Action::kPublish, events[i].topic));
    checked = events[i].topic;
  }
  return absl::OkStatus();
}

// The bytes of `events` that count against a publish quota: what the client sent.
uint64_t EventBytes(absl::Span<const EventIn> events) {
  uint64_t n = 0;
  for (const EventIn& e : events) {
    n += e.topic.size() + e.id.size() + e.key.size() + e.data.size();
    for (const auto& [k, v] : e.headers) n += k.size() + v.size();
  }
  return n;
}

// PERMISSION_DENIED unless the caller of `ctx` may publish to every topic of `events` (OK with
// authentication off); then RESOURCE_EXHAUSTED with a retry delay when it is over its quotas.
absl::Status AdmitPublish(const CallAuth& auth, const grpc::ServerContextBase& ctx,
                          absl::Span<const EventIn> events) {
  if (!auth.enabled() && auth.quotas() == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::shared_ptr<const Principal> caller, auth.Caller(ctx));
  if (caller != nullptr) RETURN_IF_ERROR(AuthorizePublish(*caller, events));
  return auth.Admit(ctx, caller.get(), EventBytes(events));
}

// One PublishStream call. Requests are pipelined: while one is stored the next is read and
// parsed, up to `max_inflight` are in flight, and responses go out strictly in request order.
// Deletes itself when gRPC is done with it (OnDone) and no broker callback still refers to it.
class PublishStreamReactor final
    : public grpc::ServerBidiReactor<PublishBatchRequest, PublishBatchResponse> {
 public:
  // `caller`: null with authentication off; else each request's topics are checked against it.
  // `quotas` (null: none) are charged each request under `quota_key`; one over them waits (and
  // so, with `max_inflight` waiting, does the stream's reading) instead of failing.
  PublishStreamReactor(broker::Broker& broker, prometheus::Histogram& latency, int max_inflight,
                       std::shared_ptr<const Principal> caller, Quotas* quotas,
                       std::string quota_key, Quotas::Stream stream_slot)
      : broker_(broker),
        latency_(latency),
        max_inflight_(static_cast<size_t>(max_inflight)),
        caller_(std::move(caller)),
        quotas_(quotas != nullptr && quotas->limits_rates() && !quota_key.empty() ? quotas
                                                                                  : nullptr),
        quota_key_(std::move(quota_key)),
        stream_slot_(std::move(stream_slot)) {
    Pump();
  }

  void OnReadDone(bool ok) override {
    bool publish = false;
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      if (!ok) {
        reads_done_ = true;
      } else if (!stopping_) {
        next_->start_ns = MonotonicNanos();
        to_publish_.push_back(next_.get());
        slots_.push_back(std::move(next_));
        ++outstanding_;
        if (!publishing_) publishing_ = publish = true;
      }
    }
    // Start reading (and parsing, on another thread) the next request while this one is stored.
    Pump();
    if (publish) PublishQueued();
  }

  // Hands queued requests to the broker one at a time, in arrival order, so that the records of
  // one stream keep their order in each partition. Runs on the thread that found it idle.
  void PublishQueued() {
    for (;;) {
      Slot* slot;
      bool stopping;
      {
        absl::MutexLock lock(&mu_);
        if (to_publish_.empty()) {
          publishing_ = false;
          return;
        }
        slot = to_publish_.front();
        to_publish_.pop_front();
        stopping = stopping_ || failing_;
      }
      if (stopping) {
        // The stream is ending with an earlier request's error: store nothing more.
        Complete(slot, grpc::Status(grpc::StatusCode::ABORTED,
                                    "not stored: an earlier request in this stream failed"));
        continue;
      }
      if (!slot->checked) {
        absl::Status s = slot->converted.From(slot->request->events());
        if (s.ok() && caller_) s = AuthorizePublish(*caller_, slot->converted.events);
        if (!s.ok()) {
          Complete(slot, ToGrpc(s));
          continue;
        }
        slot->checked = true;
      }
      absl::Span<const EventIn> events = slot->converted.events;
      if (quotas_ != nullptr) {
        if (const int64_t wait = quotas_->Charge(quota_key_, EventBytes(events)); wait > 0) {
          WaitForQuota(slot, wait);
          return;
        }
      }
      Ref();  // released by the callback, which may run after OnDone
      broker_.Publish(events, [this, slot](absl::Status st, std::vector<AckOut> acks) {
        if (st.ok()) {
          auto* out = slot->response->mutable_acks();
          out->Reserve(static_cast<int>(acks.size()));
          for (size_t i = 0; i < acks.size(); ++i) {
            FillAck(slot->request->events(static_cast<int>(i)), acks[i], out->Add());
          }
          latency_.Observe(SecondsSince(slot->start_ns));
        }
        Complete(slot, ToGrpc(st));
        Unref();
      });
    }
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      slots_.pop_front();
      if (!ok) Stop(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    }
    Pump();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      Stop(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
      if (quota_alarm_) quota_alarm_->Cancel();  // its callback ends the wait now
    }
    Pump();
  }

  void OnDone() override { Unref(); }

 private:
  // One request and its response, both on an arena so that a batch of a thousand events is
  // freed at once instead of string by string.
  struct Slot {
    Slot()
        : arena(ArenaOptions()),
          request(google::protobuf::Arena::CreateMessage<PublishBatchRequest>(&arena)),
          response(google::protobuf::Arena::CreateMessage<PublishBatchResponse>(&arena)) {}
    static google::protobuf::ArenaOptions ArenaOptions() {
      google::protobuf::ArenaOptions options;
      options.start_block_size = 64 << 10;
      options.max_block_size = 1 << 20;
      return options;
    }
    google::protobuf::Arena arena;
    PublishBatchRequest* request;
    PublishBatchResponse* response;
    Converted converted;
    bool checked = false;  // converted and authorized
    int64_t start_ns = 0;
    bool done = false;
    grpc::Status status;
  };

  void Complete(Slot* slot, grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (!status.ok()) failing_ = true;
      slot->done = true;
      slot->status = std::move(status);
      --outstanding_;
    }
    Pump();
  }

  void Stop(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stopping_) return;
    stopping_ = true;
    finish_status_ = std::move(status);
  }

  // `slot` is over the quotas for `wait_us`: it goes back to the head of the queue, and
  // publishing (still this reactor's `publishing_`) resumes when the wait is over, or at once
  // when the call is cancelled.
  void WaitForQuota(Slot* slot, int64_t wait_us) {
    absl::MutexLock lock(&mu_);
    to_publish_.push_front(slot);
    Ref();  // released by the alarm's callback
    // A fresh alarm each time: the previous one has fired (its callback may be the caller; the
    // alarm's core keeps itself alive while its callback runs).
    quota_alarm_ = std::make_unique<grpc::Alarm>();
    quota_alarm_->Set(std::chrono::system_clock::now() + std::chrono::microseconds(wait_us),
                      [this](bool) {
                        PublishQueued();
                        Unref();
                      });
  }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Starts what can start next. gRPC never runs this reactor's reactions inline from
  // StartRead/StartWrite/Finish, so they are called under the lock: a decision and its action
  // cannot be separated by another thread's Finish.
  void Pump() {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (!writing_ && !slots_.empty() && slots_.front()->done && !stopping_) {
      if (slots_.front()->status.ok()) {
        writing_ = true;
        StartWrite(slots_.front()->response);
      } else {
        Stop(slots_.front()->status);  // an error ends the stream with that status
      }
    }
    if (!stopping_ && !failing_ && !reading_ && !reads_done_ && slots_.size() < max_inflight_) {
      reading_ = true;
      next_ = std::make_unique<Slot>();
      StartRead(next_->request);
    }
    if (!stopping_ && reads_done_ && slots_.empty() && !writing_) Stop(grpc::Status::OK);
    if (stopping_ && !writing_ && outstanding_ == 0) {
      finished_ = true;
      Finish(finish_status_);
    }
  }

  broker::Broker& broker_;
  prometheus::Histogram& latency_;
  const size_t max_inflight_;

  // One reference for gRPC (dropped in OnDone) and one per broker call in flight.
  std::atomic<int> refs_{1};
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Slot> next_ ABSL_GUARDED_BY(mu_);  // the target of the read in progress
  std::deque<Slot*> to_publish_ ABSL_GUARDED_BY(mu_);  // read, not yet handed to the broker
  bool publishing_ ABSL_GUARDED_BY(mu_) = false;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // broker calls not yet completed
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // A request failed: nothing more is read or stored; earlier responses still go out, then the
  // stream ends with the failure's status.
  bool failing_ ABSL_GUARDED_BY(mu_) = false;
  const std::shared_ptr<const Principal> caller_;
  Quotas* const quotas_;  // null: this stream is not rate-limited
  const std::string quota_key_;
  const Quotas::Stream stream_slot_;
  std::unique_ptr<grpc::Alarm> quota_alarm_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

class IngestServiceImpl final : public nodata::v1::IngestService::CallbackService {
 public:
  IngestServiceImpl(broker::Broker& broker, prometheus::Registry& registry, int inflight,
                    const CallAuth& auth)
      : broker_(broker),
        auth_(auth),
        latency_family_(prometheus::BuildHistogram()
                            .Name("nodata_publish_latency_seconds")
                            .Help("Time from receiving a publish request to its acknowledgement")
                            .Register(registry)),
        publish_latency_(Add("Publish")),
        batch_latency_(Add("PublishBatch")),
        stream_latency_(Add("PublishStream")),
        inflight_(inflight) {}

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* ctx,
                                    const nodata::v1::PublishRequest* request,
                                    nodata::v1::PublishResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (!request->has_event()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "event is missing"));
      return reactor;
    }
    auto converted = std::make_unique<Converted>();
    absl::Status s = converted->FromOne(request->event());
    if (s.ok()) s = AdmitPublish(auth_, *ctx, converted->events);
    if (!s.ok()) {
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    PublishAndFinish(reactor, std::move(converted), publish_latency_,
                     [request, response](std::vector<AckOut>& acks) {
                       FillAck(request->event(), acks[0], response->mutable_ack());
                     });
    return reactor;
  }

  grpc::ServerUnaryReactor* PublishBatch(grpc::CallbackServerContext* ctx,
                                         const PublishBatchRequest* request,
                                         PublishBatchResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    auto converted = std::make_unique<Converted>();
    absl::Status s = converted->From(request->events());
    if (s.ok()) s = AdmitPublish(auth_, *ctx, converted->events);
    if (!s.ok()) {
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    PublishAndFinish(reactor, std::move(converted), batch_latency_,
                     [request, response](std::vector<AckOut>& acks) {
                       auto* out = response->mutable_acks();
                       out->Reserve(static_cast<int>(acks.size()));
                       for (size_t i = 0; i < acks.size(); ++i) {
                         FillAck(request->events(static_cast<int>(i)), acks[i], out->Add());
                       }
                     });
    return reactor;
  }

  grpc::ServerBidiReactor<PublishBatchRequest, PublishBatchResponse>* PublishStream(
      grpc::CallbackServerContext* ctx) override {
    absl::StatusOr<std::shared_ptr<const Principal>> caller = auth_.Caller(*ctx);
    if (!caller.ok()) {
      return new FinishedBidi<PublishBatchRequest, PublishBatchResponse>(ToGrpc(caller.status()));
    }
    std::string quota_key;
    if (auth_.quotas() != nullptr) quota_key = CallAuth::QuotaKey(*ctx, caller->get());
    absl::StatusOr<Quotas::Stream> slot = auth_.OpenStream(quota_key);
    if (!slot.ok()) {
      return new FinishedBidi<PublishBatchRequest, PublishBatchResponse>(ToGrpc(slot.status()));
    }
    return new PublishStreamReactor(broker_, stream_latency_, inflight_, *std::move(caller),
                                    auth_.quotas(), std::move(quota_key), *std::move(slot));
  }

 private:
  // Hands the events (borrowed from a request that lives until Finish) to the broker and finishes
  // the call with the outcome; `fill` writes the acks into the response.
  template <typename Fill>
  void PublishAndFinish(grpc::ServerUnaryReactor* reactor, std::unique_ptr<Converted> converted,
                        prometheus::Histogram& latency, Fill fill) {
    absl::Span<const EventIn> events = converted->events;
    const int64_t start = MonotonicNanos();
    broker_.Publish(events, [reactor, &latency, start, fill, converted = std::move(converted)](
                                absl::Status st, std::vector<AckOut> acks) {
      if (st.ok()) {
        fill(acks);
        latency.Observe(SecondsSince(start));
      }
      reactor->Finish(ToGrpc(st));
    });
  }

  prometheus::Histogram& Add(const std::string& rpc) {
    return latency_family_.Add({{"rpc", rpc}},
                               prometheus::Histogram::BucketBoundaries{
                                   0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                   0.05, 0.1, 0.25, 1, 2.5});
  }

  broker::Broker& broker_;
  const CallAuth& auth_;
  prometheus::Family<prometheus::Histogram>& latency_family_;
  prometheus::Histogram& publish_latency_;
  prometheus::Histogram& batch_latency_;
  prometheus::Histogram& stream_latency_;
  const int inflight_;
};

void FillTopic(const broker::TopicInfo& info, nodata::v1::Topic* out) {
  out->set_name(info.name);
  out->set_partition_count(info.partition_count);
  out->mutable_created_at()->set_seconds(info.created_at_us / 1000000);
  out->mutable_created_at()->set_nanos(static_cast<int32_t>(info.created_at_us % 1000000) * 1000);
  for (const auto& p : info.partitions) {
    auto* pi = out->add_partitions();
    pi->set_partition(p.partition.value());
    pi->set_start_offset(p.stats.start_offset.value());
    pi->set_end_offset(p.stats.end_offset.value());
    pi->set_record_count(p.stats.record_count);
    pi->set_bytes_on_disk(p.stats.bytes_on_disk);
    pi->set_segment_count(p.stats.hot.segment_count);
    pi->set_hot_start_offset(p.stats.hot.start_offset);
    pi->set_parquet_file_count(p.stats.cold.file_count);
    pi->set_parquet_bytes(p.stats.cold.bytes);
  }
  out->set_retention_ms(info.retention_ms);
  out->set_retention_bytes(info.retention_bytes);
  out->set_key_format(DataFormatToProto(info.config.key_format));
  out->set_data_format(DataFormatToProto(info.config.data_format));
}


// Streams a snapshot of a topic: a subscription of the chosen partitions, each read in turn from
// the start offset up to its end offset when the call started. One message in flight at a time,
// so gRPC's flow control bounds what the server holds for a slow reader.
class ReadTopicStream final : public broker::SubscriptionSink {
 public:
  ReadTopicStream(grpc::ServerWriteReactor<nodata::v1::RecordBatch>* reactor, std::string name)
      : name_(std::move(name)), writer_(reactor) {}

  void OnAssignment(const broker::Assignment&) override {}  // not in a group

  void OnBatch(broker::RecordBatch& batch) override {
    batch_.Clear();
    const PartitionId partition = batch.partition();
    if (batch.ForEach([&](const DecodedRecord& r) {
          FillRecord(name_, partition, r, batch_.add_records());
        }) == 0) {
      return;
    }
    writer_.Write(&batch_);
  }

  void OnEnd(absl::Status status) override { writer_.Finish(ToGrpc(status)); }

  StreamWriter<nodata::v1::RecordBatch>& writer() { return writer_; }

 private:
  const std::string name_;
  nodata::v1::RecordBatch batch_;  // the message in flight
  StreamWriter<nodata::v1::RecordBatch> writer_;
};

class ReadTopicReactor final : public grpc::ServerWriteReactor<nodata::v1::RecordBatch> {
 public:
  ReadTopicReactor(broker::Broker& broker, WorkerPool& pool,
                   const nodata::v1::ReadTopicRequest& request, Quotas::Stream slot)
      : slot_(std::move(slot)), stream_(std::make_shared<ReadTopicStream>(this, request.name())) {
    broker::SubscriptionOptions o;
    o.topic = request.name();
    o.partitions = PartitionIds(request.partitions());
    // From the start offset, or the partition's start when retention deleted past it.
    o.start = broker::StartSpec{broker::StartSpec::Kind::kOffset, Offset(request.start_offset())};
    o.clamp_start = true;
    o.max_records = request.max_batch();
    o.max_bytes = 16u << 20;
    o.stop_at_end = true;
    auto subscription = broker::Subscription::Open(broker, pool, std::move(o), stream_);
    if (!subscription.ok()) {
      stream_->writer().Finish(ToGrpc(subscription.status()));
      return;
    }
    subscription_ = std::move(*subscription);
    subscription_->Start();
  }

  void OnWriteDone(bool ok) override {
    subscription_->Ready(ok ? absl::OkStatus() : absl::CancelledError("the reader went away"));
  }

  void OnDone() override {
    stream_->writer().Detach();
    subscription_.reset();
    delete this;
  }

 private:
  Quotas::Stream slot_;  // counts against the caller's open streams
  std::shared_ptr<ReadTopicStream> stream_;
  std::unique_ptr<broker::Subscription> subscription_;
};

class TopicServiceImpl final : public nodata::v1::TopicService::CallbackService {
 public:
  TopicServiceImpl(broker::Broker& broker, WorkerPool& pool, const CallAuth& auth)
      : broker_(broker), pool_(pool), auth_(auth) {}

  grpc::ServerUnaryReactor* CreateTopic(grpc::CallbackServerContext* ctx,
                                        const nodata::v1::CreateTopicRequest* request,
                                        nodata::v1::CreateTopicResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kAdmin, ""))) return reactor;
    auto key_format = DataFormatFromProto(request->key_format(), "key_format");
    auto data_format = DataFormatFromProto(request->data_format(), "data_format");
    if (!key_format.ok() || !data_format.ok()) {
      reactor->Finish(ToGrpc(!key_format.ok() ? key_format.status() : data_format.status()));
      return reactor;
    }
    auto info = broker_.CreateTopic(
        request->name(), request->partitions(),
        broker::TopicConfig{request->retention_ms(), request->retention_bytes(), *key_format,
                            *data_format});
    if (info.ok()) FillTopic(*info, response->mutable_topic());
    reactor->Finish(ToGrpc(info.status()));
    return reactor;
  }

  grpc::ServerUnaryReactor* GetTopic(grpc::CallbackServerContext* ctx,
                                     const nodata::v1::GetTopicRequest* request,
                                     nodata::v1::GetTopicResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    absl::StatusOr<std::shared_ptr<const Principal>> caller = auth_.AdmittedCaller(*ctx);
    if (Refuse(reactor, caller.status())) return reactor;
    if (*caller && !Sees(**caller, request->name()) &&
        Refuse(reactor, Authorize(**caller, Action::kConsume, request->name()))) {
      return reactor;
    }
    auto info = broker_.GetTopic(request->name());
    if (info.ok()) FillTopic(*info, response->mutable_topic());
    reactor->Finish(ToGrpc(info.status()));
    return reactor;
  }

  grpc::ServerUnaryReactor* ListTopics(grpc::CallbackServerContext* ctx,
                                       const nodata::v1::ListTopicsRequest*,
                                       nodata::v1::ListTopicsResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    absl::StatusOr<std::shared_ptr<const Principal>> caller = auth_.AdmittedCaller(*ctx);
    if (Refuse(reactor, caller.status())) return reactor;
    // A principal sees the topics it may publish to or consume.
    for (const auto& info : broker_.ListTopics()) {
      if (*caller && !Sees(**caller, info.name)) continue;
      FillTopic(info, response->add_topics());
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* DeleteTopic(grpc::CallbackServerContext* ctx,
                                        const nodata::v1::DeleteTopicRequest* request,
                                        nodata::v1::DeleteTopicResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kAdmin, ""))) return reactor;
    reactor->Finish(ToGrpc(broker_.DeleteTopic(request->name())));
    return reactor;
  }

  grpc::ServerUnaryReactor* UpdateTopic(grpc::CallbackServerContext* ctx,
                                        const nodata::v1::UpdateTopicRequest* request,
                                        nodata::v1::UpdateTopicResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kAdmin, ""))) return reactor;
    auto current = broker_.GetTopic(request->name());
    if (!current.ok()) {
      reactor->Finish(ToGrpc(current.status()));
      return reactor;
    }
    broker::TopicConfig config = current->config;
    if (request->has_retention_ms()) config.retention_ms = request->retention_ms();
    if (request->has_retention_bytes()) config.retention_bytes = request->retention_bytes();
    // Every part of the request is checked before any is applied.
    if (absl::Status s = broker::ValidateTopicConfig(config); !s.ok()) {
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    absl::StatusOr<broker::TopicInfo> info = std::move(current);
    if (request->has_partitions()) {
      info = broker_.AddPartitions(request->name(), request->partitions());
    }
    if (info.ok() && (request->has_retention_ms() || request->has_retention_bytes())) {
      info = broker_.SetRetention(request->name(), config);
    }
    if (info.ok()) FillTopic(*info, response->mutable_topic());
    reactor->Finish(ToGrpc(info.status()));
    return reactor;
  }

  grpc::ServerUnaryReactor* FlushTopic(grpc::CallbackServerContext* ctx,
                                       const nodata::v1::FlushTopicRequest* request,
                                       nodata::v1::FlushTopicResponse* response) override {
    auto* reactor = ctx->DefaultReactor();
    if (Refuse(reactor, auth_.Check(*ctx, Action::kAdmin, ""))) return reactor;
    broker_.FlushTopic(request->name(),
                       [reactor, response](absl::StatusOr<broker::TopicInfo> info) {
                         if (info.ok()) FillTopic(*info, response->mutable_topic());
                         reactor->Finish(ToGrpc(info.status()));
                       });
    return reactor;
  }

  grpc::ServerWriteReactor<nodata::v1::RecordBatch>* ReadTopic(
      grpc::CallbackServerContext* ctx, const nodata::v1::ReadTopicRequest* request) override {
    absl::StatusOr<std::shared_ptr<const Principal>> caller =
        auth_.Checked(*ctx, Action::kConsume, request->name());
    if (!caller.ok()) return new FinishedWriter<nodata::v1::RecordBatch>(ToGrpc(caller.status()));
    absl::StatusOr<Quotas::Stream> slot = auth_.OpenStream(*ctx, caller->get());
    if (!slot.ok()) return new FinishedWriter<nodata::v1::RecordBatch>(ToGrpc(slot.status()));
    return new ReadTopicReactor(broker_, pool_, *request, *std::move(slot));
  }

 private:
  // Whether `caller` may publish to or consume `topic` (what lets it see the topic).
  static bool Sees(const Principal& caller, std::string_view topic) {
    return caller.Allows(Action::kPublish, topic) || caller.Allows(Action::kConsume, topic);
  }

  broker::Broker& broker_;
  WorkerPool& pool_;
  const CallAuth& auth_;
};

}  // namespace

std::unique_ptr<nodata::v1::IngestService::CallbackService> MakeIngestService(
    broker::Broker& broker, prometheus::Registry& registry, int stream_inflight_batches,
    const CallAuth& auth) {
  return std::make_unique<IngestServiceImpl>(broker, registry, stream_inflight_batches, auth);
}

std::unique_ptr<nodata::v1::TopicService::CallbackService> MakeTopicService(
    broker::Broker& broker, WorkerPool& pool, const CallAuth& auth) {
  return std::make_unique<TopicServiceImpl>(broker, pool, auth);
}

}  // namespace nodata::server
