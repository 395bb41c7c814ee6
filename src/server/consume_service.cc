#include "server/consume_service.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <grpcpp/alarm.h>

#include "absl/synchronization/mutex.h"
#include "common/names.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "server/grpc_util.h"
#include "server/record_encoder.h"
#include "spdlog/spdlog.h"

namespace nodata::server {
namespace {

using nodata::v1::SubscribeRequest;
using nodata::v1::SubscribeResponse;

constexpr uint32_t kDefaultBatch = 1000;
constexpr uint32_t kMaxBatch = 10000;
// About this many bytes of records per message (one record may go past it): well under the 4 MiB
// a gRPC client accepts by default.
constexpr size_t kMaxBatchBytes = 1u << 20;
constexpr int64_t kAutoCommitIntervalUs = 1000 * 1000;

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
      if (!group) {
        return absl::InvalidArgumentError("start position \"committed\" needs a group");
      }
      s.kind = K::kCommitted;
      break;
    case nodata::v1::StartPosition::kOffset:
      s.kind = K::kOffset;
      s.offset = p.offset();
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

class SubscribeReactor;

// One Subscribe stream's state, shared with what calls back into it: append notifications, jobs
// on the egress pool and group rebalances. At most one step (a read and its write) runs at a
// time; a stream holds one message in flight, so gRPC's flow control bounds what a slow
// consumer costs the server.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(broker::Broker& broker, log::Syncer& pool, SubscribeReactor* reactor)
      : broker_(broker), pool_(pool), reactor_(reactor) {}

  // Validates the request and starts streaming; or finishes the call with the error.
  void Start(const SubscribeRequest& request, const std::string& peer);
  void OnWriteDone(bool ok);
  void OnCancel();
  void OnDone();
  // Ends the stream with `status` as soon as no write is in flight.
  void Stop(grpc::Status status);
  // Ends a stream that never started.
  void Fail(const grpc::Status& status) { Finish(status); }

 private:
  struct Part {
    uint32_t partition;
    uint64_t next;
  };

  void OnAssignment(const broker::Assignment& a);
  // Schedules a step unless one is running; then it runs again after.
  void Kick();
  void Step();
  // Applies an assignment: records of new partitions start at the committed offsets.
  absl::Status Assign(const broker::Assignment& a);
  // Where partition `p` starts; an offset outside its range starts at its nearest end when
  // `clamp` (partitions differ in length, and retention moves their starts).
  absl::StatusOr<uint64_t> ResolveStart(uint32_t p, const broker::StartSpec& spec,
                                        std::optional<uint64_t> committed, bool clamp);
  // With all_partitions_: adds partitions the topic grew by since, read from their start.
  // Returns whether there were any.
  bool AddGrownPartitions();
  void Write();
  void SetMessage(std::string_view bytes) {
    grpc::Slice slice(bytes.data(), bytes.size());
    message_ = grpc::ByteBuffer(&slice, 1);
  }
  void Finish(const grpc::Status& status);
  void AutoCommit(bool force);
  // Steps again once the auto-commit interval has passed.
  void ArmCommitAlarm();

  broker::Broker& broker_;
  log::Syncer& pool_;

  // Set in Start, then read-only.
  std::string topic_;
  std::string group_;
  std::string consumer_id_;
  broker::StartSpec start_;
  uint32_t max_batch_ = kDefaultBatch;
  int64_t created_at_us_ = 0;  // the topic's incarnation: a topic created again is another one
  size_t batch_bytes_ = kMaxBatchBytes;
  bool auto_commit_ = false;
  // Reads every partition (no group, no list): partitions added by a grow join the read.
  bool all_partitions_ = false;
  std::optional<broker::GroupCoordinator::Membership> membership_;

  // Owned by the running step (one at a time).
  std::vector<Part> parts_;
  size_t round_robin_ = 0;
  uint64_t generation_ = 0;
  // The message in flight, encoded by hand from the log's views (see record_encoder.h).
  RecordBatchEncoder encoder_;
  grpc::ByteBuffer message_;
  std::map<uint32_t, uint64_t> delivered_;  // auto-commit: next offset per partition
  std::map<uint32_t, uint64_t> in_flight_;  // offsets the message in flight delivers
  bool commit_dirty_ = false;
  int64_t last_commit_us_ = 0;
  grpc::Alarm commit_alarm_;

  absl::Mutex mu_;
  SubscribeReactor* reactor_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;   // a step is scheduled or running, or a write
  bool again_ ABSL_GUARDED_BY(mu_) = false;  // kicked while busy
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status stop_status_ ABSL_GUARDED_BY(mu_) =
      grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away");
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<broker::Assignment> pending_assignment_ ABSL_GUARDED_BY(mu_);
  std::set<uint32_t> waiting_ ABSL_GUARDED_BY(mu_);  // partitions with a notification pending
  bool commit_alarm_set_ ABSL_GUARDED_BY(mu_) = false;
};

// Live sessions, so that a shutdown can end them.
class SessionRegistry {
 public:
  void Add(const std::shared_ptr<Session>& s) {
    absl::MutexLock lock(&mu_);
    sessions_[s.get()] = s;
  }
  void Remove(Session* s) {
    absl::MutexLock lock(&mu_);
    sessions_.erase(s);
  }
  std::vector<std::shared_ptr<Session>> All() {
    absl::MutexLock lock(&mu_);
    std::vector<std::shared_ptr<Session>> out;
    for (auto& [ptr, weak] : sessions_) {
      if (auto s = weak.lock()) out.push_back(std::move(s));
    }
    return out;
  }

 private:
  absl::Mutex mu_;
  std::map<Session*, std::weak_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
};

class SubscribeReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  SubscribeReactor(broker::Broker& broker, log::Syncer& pool, SessionRegistry& registry,
                   const grpc::ByteBuffer* raw, const std::string& peer)
      : registry_(registry), session_(std::make_shared<Session>(broker, pool, this)) {
    registry_.Add(session_);
    // The method is registered raw (responses are encoded by hand), so the request is parsed
    // here.
    std::vector<grpc::Slice> slices;
    SubscribeRequest request;
    std::string bytes;
    if (raw->Dump(&slices).ok()) {
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    if (!request.ParseFromString(bytes)) {
      session_->Fail(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "cannot parse SubscribeRequest"));
      return;
    }
    session_->Start(request, peer);
  }
  void OnWriteDone(bool ok) override { session_->OnWriteDone(ok); }
  void OnCancel() override { session_->OnCancel(); }
  void OnDone() override {
    registry_.Remove(session_.get());
    session_->OnDone();
    delete this;
  }

 private:
  SessionRegistry& registry_;
  std::shared_ptr<Session> session_;
};

void Session::Start(const SubscribeRequest& request, const std::string& peer) {
  auto fail = [this](const absl::Status& s) { Finish(ToGrpc(s)); };
  topic_ = request.topic();
  group_ = request.group();
  consumer_id_ = request.consumer_id();
  auto info = broker_.GetTopic(topic_);
  if (!info.ok()) return fail(info.status());
  created_at_us_ = info->created_at_us;
  const bool has_group = !group_.empty();
  if (has_group) {
    absl::Status s = broker_.ValidateGroup(group_, topic_);
    if (!s.ok()) return fail(s);
  }
  if (!consumer_id_.empty()) {
    absl::Status s = ValidateNewName("consumer id", consumer_id_);
    if (!s.ok()) return fail(s);
  }
  if (request.max_batch() > kMaxBatch) {
    return fail(absl::InvalidArgumentError(
        StrCat("max_batch is ", request.max_batch(), "; the limit is ", kMaxBatch)));
  }
  if (request.max_batch() > 0) max_batch_ = request.max_batch();
  // Every record repeats the topic name: keep a full message under the budget.
  batch_bytes_ = kMaxBatchBytes - std::min<size_t>(kMaxBatchBytes / 2,
                                                   topic_.size() * size_t{max_batch_});
  if (request.auto_commit() && !has_group) {
    return fail(absl::InvalidArgumentError("auto_commit needs a group"));
  }
  auto_commit_ = request.auto_commit();
  auto start = StartFrom(request.start(), has_group);
  if (!start.ok()) return fail(start.status());
  start_ = *start;
  if (has_group && request.start_offsets_size() > 0) {
    return fail(absl::InvalidArgumentError(
        "start_offsets cannot be used in a group: members start at its committed offsets"));
  }
  std::map<uint32_t, uint64_t> start_offsets;
  for (const auto& o : request.start_offsets()) {
    if (o.partition() >= info->partition_count) {
      return fail(absl::InvalidArgumentError(
          StrCat("start_offsets: topic \"", topic_, "\" has ", info->partition_count,
                 " partitions; ", o.partition(), " is out of range")));
    }
    if (!start_offsets.emplace(o.partition(), o.offset()).second) {
      return fail(absl::InvalidArgumentError(
          StrCat("start_offsets: partition ", o.partition(), " is listed twice")));
    }
  }
  for (uint32_t p : request.partitions()) {
    if (p >= info->partition_count) {
      return fail(absl::InvalidArgumentError(StrCat("topic \"", topic_, "\" has ",
                                                    info->partition_count, " partitions; ", p,
                                                    " is out of range")));
    }
  }
  if (has_group) {
    if (request.partitions_size() > 0) {
      return fail(absl::InvalidArgumentError(
          "partitions cannot be chosen in a group: the group assigns them"));
    }
    if (consumer_id_.empty()) {
      static std::atomic<uint64_t> counter{0};
      consumer_id_ = StrCat("consumer-", NowMicros(), "-", counter.fetch_add(1));
    }
    // The first assignment arrives through OnAssignment, possibly before Join returns.
    std::weak_ptr<Session> weak = weak_from_this();
    membership_ = broker_.groups().Join(group_, topic_, consumer_id_, peer,
                                        info->partition_count,
                                        [weak](const broker::Assignment& a) {
                                          if (auto self = weak.lock()) self->OnAssignment(a);
                                        });
    return;
  }
  std::vector<uint32_t> chosen(request.partitions().begin(), request.partitions().end());
  all_partitions_ = chosen.empty();
  if (chosen.empty()) {
    for (uint32_t p = 0; p < info->partition_count; ++p) chosen.push_back(p);
  }
  std::sort(chosen.begin(), chosen.end());
  chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  for (const auto& [p, offset] : start_offsets) {
    if (!std::binary_search(chosen.begin(), chosen.end(), p)) {
      return fail(absl::InvalidArgumentError(
          StrCat("start_offsets: partition ", p, " is not one of the partitions read")));
    }
  }
  for (uint32_t p : chosen) {
    broker::StartSpec spec = start_;
    if (auto it = start_offsets.find(p); it != start_offsets.end()) {
      spec = broker::StartSpec{broker::StartSpec::Kind::kOffset};
      spec.offset = it->second;
    }
    auto next = ResolveStart(p, spec, std::nullopt, request.clamp_start());
    if (!next.ok()) return fail(next.status());
    parts_.push_back(Part{p, *next});
  }
  Kick();
}

void Session::OnAssignment(const broker::Assignment& a) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (!a.revoked && pending_assignment_ && pending_assignment_->generation > a.generation) {
      return;  // a newer one is already queued
    }
    if (!(pending_assignment_ && pending_assignment_->revoked)) pending_assignment_ = a;
  }
  Kick();
}

void Session::Kick() {
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (busy_) {
      again_ = true;
      return;
    }
    busy_ = true;
    again_ = false;
  }
  pool_.Schedule([self = shared_from_this()] { self->Step(); });
}

absl::Status Session::Assign(const broker::Assignment& a) {
  if (auto_commit_) {
    AutoCommit(/*force=*/true);  // what was delivered before the move
    // Whatever could not be committed for partitions that moved is the new owner's now.
    std::erase_if(delivered_, [&](const auto& d) {
      return std::find(a.partitions.begin(), a.partitions.end(), d.first) == a.partitions.end();
    });
  }
  ASSIGN_OR_RETURN(auto committed, broker_.CommittedOffsets(group_, topic_));
  std::vector<Part> next;
  for (uint32_t p : a.partitions) {
    // A partition kept across the rebalance goes on where it was; a new one starts at the
    // group's committed offset.
    auto kept = std::find_if(parts_.begin(), parts_.end(),
                             [p](const Part& part) { return part.partition == p; });
    if (kept != parts_.end()) {
      next.push_back(*kept);
      continue;
    }
    auto it = committed.find(p);
    std::optional<uint64_t> c;
    if (it != committed.end()) c = it->second;
    broker::StartSpec spec = c ? broker::StartSpec{broker::StartSpec::Kind::kCommitted} : start_;
    auto offset = ResolveStart(p, spec, c, /*clamp=*/true);
    if (!offset.ok()) return offset.status();
    next.push_back(Part{p, *offset});
  }
  parts_ = std::move(next);
  generation_ = a.generation;
  round_robin_ = 0;
  SubscribeResponse response;
  auto* out = response.mutable_assignment();
  for (uint32_t p : a.partitions) out->add_partitions(p);
  out->set_generation(a.generation);
  SetMessage(response.SerializeAsString());
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Session::ResolveStart(uint32_t p, const broker::StartSpec& spec,
                                               std::optional<uint64_t> committed, bool clamp) {
  auto offset = broker_.ResolveStart(topic_, p, spec, committed);
  if (clamp && !offset.ok() && offset.status().code() == absl::StatusCode::kOutOfRange) {
    auto earliest = broker_.ResolveStart(topic_, p, broker::StartSpec{}, std::nullopt);
    auto latest = broker_.ResolveStart(
        topic_, p, broker::StartSpec{broker::StartSpec::Kind::kLatest}, std::nullopt);
    if (earliest.ok() && latest.ok()) offset = std::clamp(spec.offset, *earliest, *latest);
  }
  return offset;
}

void Session::Step() {
  std::optional<broker::Assignment> assignment;
  std::optional<grpc::Status> stop;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_ || finished_) {
      stop = stop_status_;
    } else if (pending_assignment_) {
      assignment = std::move(pending_assignment_);
      pending_assignment_.reset();
    }
  }
  if (stop) {
    // Cancelled or stopped: finish here, where no write can be in flight.
    Finish(*stop);
    return;
  }
  if (assignment) {
    if (assignment->revoked) {
      Finish(grpc::Status(grpc::StatusCode::ABORTED,
                          StrCat("consumer id \"", consumer_id_,
                                 "\" was taken by a newer subscription, or the topic was "
                                 "deleted")));
      return;
    }
    if (assignment->generation > generation_) {
      absl::Status s = Assign(*assignment);
      if (!s.ok()) {
        Finish(ToGrpc(s));
        return;
      }
      Write();
      return;
    }
  }
  if (auto_commit_) AutoCommit(/*force=*/false);
  for (size_t i = 0; i < parts_.size(); ++i) {
    const size_t index = (round_robin_ + i) % parts_.size();
    Part& part = parts_[index];
    encoder_.Begin(topic_);
    const uint64_t from = part.next;
    absl::Status s = broker_.Scan(topic_, part.partition, part.next, max_batch_, batch_bytes_,
                                  [&](const log::DecodedRecord& r) {
                                    encoder_.Add(part.partition, r);
                                    part.next = r.offset + 1;
                                  });
    if (s.code() == absl::StatusCode::kOutOfRange) {
      // Retention deleted records before this reader got to them: go on from what is left.
      auto start = broker_.ResolveStart(topic_, part.partition, broker::StartSpec{}, std::nullopt);
      if (start.ok() && *start > part.next) {
        spdlog::warn("subscriber of {} partition {}: offsets {}..{} were deleted before it read "
                     "them",
                     topic_, part.partition, part.next, *start - 1);
        part.next = *start;
        --i;  // read this partition again
        continue;
      }
    }
    if (!s.ok()) {
      Finish(ToGrpc(s));
      return;
    }
    if (part.next == from) continue;
    SetMessage(encoder_.Finish());
    in_flight_.clear();
    in_flight_[part.partition] = part.next;
    round_robin_ = index + 1;
    Write();
    return;
  }
  if (AddGrownPartitions()) {
    pool_.Schedule([self = shared_from_this()] { self->Step(); });
    return;
  }
  // A topic deleted and created again under its name (auto-create) is not this stream's topic.
  if (broker_.TopicCreatedAt(topic_) != created_at_us_) {
    Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                        StrCat("topic \"", topic_, "\" was deleted")));
    return;
  }
  // Caught up everywhere: wait for the append notification of any partition. What was delivered
  // and not yet committed is committed within the interval even if nothing else arrives.
  if (auto_commit_) {
    AutoCommit(/*force=*/false);
    if (commit_dirty_) ArmCommitAlarm();
  }
  std::vector<Part> wait;
  const uint32_t known = static_cast<uint32_t>(parts_.size());
  bool step_again = false;
  {
    absl::MutexLock lock(&mu_);
    if (again_ || pending_assignment_ || cancelled_) {
      again_ = false;
      step_again = true;
    } else {
      for (const Part& p : parts_) {
        if (waiting_.insert(p.partition).second) wait.push_back(p);
      }
      busy_ = false;
    }
  }
  if (step_again) {
    pool_.Schedule([self = shared_from_this()] { self->Step(); });
    return;
  }
  std::weak_ptr<Session> weak = weak_from_this();
  for (const Part& p : wait) {
    broker_.WhenReadable(topic_, p.partition, p.next, weak, [weak, partition = p.partition] {
      auto self = weak.lock();
      if (!self) return;
      {
        absl::MutexLock lock(&self->mu_);
        self->waiting_.erase(partition);
      }
      self->Kick();
    });
  }
  // A grow wakes the readers of the partitions it had; one that came before they waited is
  // seen here.
  if (all_partitions_ &&
      broker_.ResolveStart(topic_, known, broker::StartSpec{}, std::nullopt).ok()) {
    Kick();
  }
}

bool Session::AddGrownPartitions() {
  if (!all_partitions_) return false;
  bool grew = false;
  for (;;) {
    const auto p = static_cast<uint32_t>(parts_.size());
    // Everything in a partition added after the start is new to this reader: earliest.
    auto start = broker_.ResolveStart(topic_, p, broker::StartSpec{}, std::nullopt);
    if (!start.ok()) return grew;
    parts_.push_back(Part{p, *start});
    grew = true;
  }
}

void Session::Write() {
  SubscribeReactor* r;
  {
    absl::MutexLock lock(&mu_);
    r = finished_ ? nullptr : reactor_;
  }
  if (r) r->StartWrite(&message_);
}

void Session::OnWriteDone(bool ok) {
  if (!ok) {
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away"));
    return;
  }
  for (const auto& [p, next] : in_flight_) {
    delivered_[p] = next;
    commit_dirty_ = true;
  }
  in_flight_.clear();
  // Still busy: the next step follows directly.
  pool_.Schedule([self = shared_from_this()] { self->Step(); });
}

void Session::AutoCommit(bool force) {
  if (!commit_dirty_) return;
  const int64_t now = NowMicros();
  if (!force && now - last_commit_us_ < kAutoCommitIntervalUs) return;
  std::vector<std::pair<uint32_t, uint64_t>> offsets(delivered_.begin(), delivered_.end());
  absl::Status s = broker_.CommitOffsets(group_, topic_, offsets);
  if (!s.ok()) {
    spdlog::warn("auto-commit of group {} on {}: {}", group_, topic_, ToStd(s.message()));
    return;
  }
  commit_dirty_ = false;
  last_commit_us_ = now;
  delivered_.clear();
}

void Session::ArmCommitAlarm() {
  {
    absl::MutexLock lock(&mu_);
    if (commit_alarm_set_ || finished_) return;
    commit_alarm_set_ = true;
  }
  const int64_t wait_us = std::max<int64_t>(1000, last_commit_us_ + kAutoCommitIntervalUs - NowMicros());
  std::weak_ptr<Session> weak = weak_from_this();
  commit_alarm_.Set(std::chrono::system_clock::now() + std::chrono::microseconds(wait_us),
                    [weak](bool ok) {
                      auto self = weak.lock();
                      if (!self) return;
                      {
                        absl::MutexLock lock(&self->mu_);
                        self->commit_alarm_set_ = false;
                      }
                      if (ok) self->Kick();
                    });
}

void Session::Finish(const grpc::Status& status) {
  SubscribeReactor* r;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    r = reactor_;
  }
  if (r) r->Finish(status);
}

void Session::OnCancel() {
  Stop(grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away"));
}

void Session::Stop(grpc::Status status) {
  SubscribeReactor* r = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    cancelled_ = true;
    stop_status_ = status;
    if (!busy_ && !finished_) {
      finished_ = true;
      r = reactor_;
    }
  }
  // Idle (waiting for records): finish now. Busy: the step or write in progress finishes.
  if (r) r->Finish(status);
}

void Session::OnDone() {
  {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
    finished_ = true;
  }
  if (membership_ || auto_commit_) {
    // Off the gRPC thread: the final commit writes to disk.
    pool_.Schedule([self = shared_from_this()] {
      if (self->auto_commit_) self->AutoCommit(/*force=*/true);
      if (self->membership_) self->broker_.groups().Leave(*self->membership_);
    });
  }
}

class ConsumeServiceImpl final : public ConsumeService {
 public:
  ConsumeServiceImpl(broker::Broker& broker, int threads) : broker_(broker), pool_(threads) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(grpc::CallbackServerContext* ctx,
                                                       const grpc::ByteBuffer* request) override {
    return new SubscribeReactor(broker_, pool_, sessions_, request, ctx->peer());
  }

  void StopAll() override {
    for (const auto& s : sessions_.All()) {
      s->Stop(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
    }
  }

  grpc::ServerUnaryReactor* Commit(grpc::CallbackServerContext* ctx,
                                   const nodata::v1::CommitRequest* request,
                                   nodata::v1::CommitResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    // A commit is an fsync'ed SQLite transaction: off the gRPC thread.
    pool_.Schedule([this, reactor, request] {
      std::vector<std::pair<uint32_t, uint64_t>> offsets;
      for (const auto& o : request->offsets()) offsets.emplace_back(o.partition(), o.offset());
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
    auto d = broker_.DescribeGroup(request->group(), request->topic());
    if (d.ok()) {
      response->set_group(d->group);
      response->set_topic(d->topic);
      response->set_generation(d->live.generation);
      for (const auto& m : d->live.members) {
        auto* out = response->add_members();
        out->set_consumer_id(m.consumer_id);
        for (uint32_t p : m.partitions) out->add_partitions(p);
        SetTimestamp(m.joined_at_us, out->mutable_joined_at());
        out->set_peer(m.peer);
      }
      for (const auto& p : d->partitions) {
        auto* out = response->add_partitions();
        out->set_partition(p.partition);
        out->set_has_committed(p.committed.has_value());
        out->set_committed_offset(p.committed.value_or(0));
        out->set_end_offset(p.end_offset);
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
    std::vector<uint32_t> partitions(request->partitions().begin(), request->partitions().end());
    auto offsets = broker_.ResetOffsets(request->group(), request->topic(), *to, partitions);
    if (offsets.ok()) {
      for (const auto& [p, o] : *offsets) {
        auto* out = response->add_offsets();
        out->set_partition(p);
        out->set_offset(o);
      }
    }
    reactor->Finish(ToGrpc(offsets.status()));
    return reactor;
  }

  grpc::ServerUnaryReactor* DeleteGroup(grpc::CallbackServerContext* ctx,
                                        const nodata::v1::DeleteGroupRequest* request,
                                        nodata::v1::DeleteGroupResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    // An fsync'ed SQLite transaction: off the gRPC thread, like Commit.
    pool_.Schedule([this, reactor, request] {
      reactor->Finish(ToGrpc(broker_.DeleteGroup(request->group(), request->topic())));
    });
    return reactor;
  }

 private:
  broker::Broker& broker_;
  SessionRegistry sessions_;
  // Reads for subscribers run here, off gRPC's threads and the sync threads. Last member: its
  // destructor runs the jobs still queued while everything they use is alive.
  log::Syncer pool_;
};

}  // namespace

std::unique_ptr<ConsumeService> MakeConsumeService(broker::Broker& broker, int threads) {
  return std::make_unique<ConsumeServiceImpl>(broker, threads);
}

}  // namespace nodata::server
