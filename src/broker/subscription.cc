#include "broker/subscription.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "common/names.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time.h"
#include "spdlog/spdlog.h"

namespace nodata::broker {

namespace {
constexpr int64_t kAutoCommitIntervalUs = 1000 * 1000;
constexpr Offset kNoEnd(std::numeric_limits<uint64_t>::max());
}  // namespace

size_t RecordBatch::ForEach(absl::FunctionRef<void(const DecodedRecord&)> visit) {
  for (;;) {
    if (next_ >= end_) return 0;
    const size_t max_records = static_cast<size_t>(
        std::min<uint64_t>(max_records_, end_ - next_));
    absl::Status s = broker_.Scan(topic_, partition_, next_, max_records, max_bytes_,
                                  [&](const DecodedRecord& r) {
                                    visit(r);
                                    next_ = r.offset.Next();
                                    ++count_;
                                  });
    if (s.code() == absl::StatusCode::kOutOfRange && count_ == 0) {
      // Retention deleted records before this reader got to them: go on from what is left.
      auto start = broker_.ResolveStart(topic_, partition_, StartSpec{}, std::nullopt);
      if (start.ok() && *start > next_) {
        spdlog::warn("reader of {} partition {}: offsets {}..{} were deleted before it read them",
                     topic_, partition_.value(), next_.value(), start->value() - 1);
        next_ = *start;
        continue;
      }
    }
    if (!s.ok()) {
      status_ = std::move(s);
      count_ = 0;  // what was visited is not delivered: the subscription ends with the error
    }
    return count_;
  }
}

// The state behind a Subscription handle. At most one step (a read and its delivery) runs at a
// time; the sink holds one delivery in flight, so a slow transport bounds what a reader costs.
class SubscriptionImpl : public std::enable_shared_from_this<SubscriptionImpl> {
 public:
  SubscriptionImpl(Broker& broker, WorkerPool& pool, SubscriptionOptions options,
                   std::shared_ptr<SubscriptionSink> sink)
      : broker_(broker), pool_(pool), options_(std::move(options)), sink_(std::move(sink)) {}

  absl::Status Open();
  void Start();
  void Ready(absl::Status delivered);
  void Stop(absl::Status status);
  void Close();
  const std::string& consumer_id() const { return options_.consumer_id; }

 private:
  struct Part {
    PartitionId partition;
    Offset next;
    Offset end = kNoEnd;  // with stop_at_end
  };

  void OnAssignment(const Assignment& a);
  // Schedules a step unless one is running; then it runs again after.
  void Kick();
  void Step();
  enum class Delivery { kNothing, kDelivered, kEnded };
  // Reads a batch of `part` and hands it to `sink`.
  Delivery DeliverFrom(SubscriptionSink& sink, Part& part);
  // Delivers the next batch of the parts in turn; false when every part was caught up.
  bool DeliverBatch(SubscriptionSink& sink);
  // Marks a delivery under way; false when the subscription ended or closed meanwhile.
  bool BeginDelivery();
  // The sink returned from a delivery: a Ready that came during it is handled now.
  void EndDelivery();
  void Delivered(absl::Status status);
  // Applies an assignment: records of new partitions start at the committed offsets.
  absl::Status Assign(const Assignment& a);
  // Where partition `p` starts; an offset outside its range starts at its nearest end when
  // `clamp` (partitions differ in length, and retention moves their starts).
  absl::StatusOr<Offset> ResolveStart(PartitionId p, const StartSpec& spec,
                                      std::optional<Offset> committed, bool clamp);
  // With all_partitions_: adds partitions the topic grew by since, read from their start.
  // Returns whether there were any.
  bool AddGrownPartitions();
  // Calls OnEnd once.
  void End(absl::Status status);
  // After Close: the last commit, then leaving the group, on the pool.
  void Leave();
  void AutoCommit(bool force);
  // Steps again once the auto-commit interval has passed.
  void ArmCommitTimer();
  void ScheduleStep() {
    pool_.Schedule([self = shared_from_this()] { self->Step(); });
  }

  Broker& broker_;
  WorkerPool& pool_;
  // Set in Open, then read-only.
  SubscriptionOptions options_;
  int64_t created_at_us_ = 0;  // the topic's incarnation: a topic created again is another one
  uint32_t partition_count_ = 0;  // when opened
  bool all_partitions_ = false;
  std::optional<GroupCoordinator::Membership> membership_;  // set in Start

  // Owned by the running step (one at a time).
  std::vector<Part> parts_;
  size_t round_robin_ = 0;  // with stop_at_end: the part being read
  uint64_t generation_ = 0;
  std::map<PartitionId, Offset> in_flight_;  // next offsets once the delivery in flight is taken

  // Auto-commit: also touched by Close's final commit, which may overlap a step's end.
  absl::Mutex commit_mu_;
  // The next offset of each partition.
  std::map<PartitionId, Offset> delivered_ ABSL_GUARDED_BY(commit_mu_);
  bool commit_dirty_ ABSL_GUARDED_BY(commit_mu_) = false;
  int64_t last_commit_us_ ABSL_GUARDED_BY(commit_mu_) = 0;

  absl::Mutex mu_;
  std::shared_ptr<SubscriptionSink> sink_ ABSL_GUARDED_BY(mu_);  // null once ended or closed
  bool busy_ ABSL_GUARDED_BY(mu_) = false;   // a step is scheduled or running, or a delivery
  bool again_ ABSL_GUARDED_BY(mu_) = false;  // kicked while busy
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status stop_status_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // OnEnd called, or closed: nothing more to the sink
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool delivering_ ABSL_GUARDED_BY(mu_) = false;  // the sink is inside OnAssignment or OnBatch
  std::thread::id delivering_thread_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> early_ready_ ABSL_GUARDED_BY(mu_);  // Ready during delivering_
  std::optional<Assignment> pending_assignment_ ABSL_GUARDED_BY(mu_);
  std::set<PartitionId> waiting_ ABSL_GUARDED_BY(mu_);  // partitions with a notification pending
  bool commit_timer_set_ ABSL_GUARDED_BY(mu_) = false;
};

absl::Status SubscriptionImpl::Open() {
  SubscriptionOptions& o = options_;
  ASSIGN_OR_RETURN(TopicInfo info, broker_.GetTopic(o.topic));
  created_at_us_ = info.created_at_us;
  partition_count_ = info.partition_count;
  const bool has_group = !o.group.empty();
  if (has_group) RETURN_IF_ERROR(broker_.ValidateGroup(o.group, o.topic));
  if (has_group && broker_.groups().IsForeign(o.group)) {
    return absl::FailedPreconditionError(
        StrCat("group \"", o.group, "\" has live Kafka consumers: a group's members all "
               "use one protocol (gRPC Subscribe or Kafka), so use another group name or stop "
               "them first"));
  }
  if (!o.consumer_id.empty()) RETURN_IF_ERROR(ValidateNewName("consumer id", o.consumer_id));
  if (o.max_records > kMaxBatchRecords) {
    return absl::InvalidArgumentError(
        StrCat("max_batch is ", o.max_records, "; the limit is ", kMaxBatchRecords));
  }
  if (o.max_records == 0) o.max_records = kDefaultBatchRecords;
  if (o.auto_commit && !has_group) {
    return absl::InvalidArgumentError("auto_commit needs a group");
  }
  if (o.start.kind == StartSpec::Kind::kCommitted && !has_group) {
    return absl::InvalidArgumentError("start position \"committed\" needs a group");
  }
  if (has_group && !o.start_offsets.empty()) {
    return absl::InvalidArgumentError(
        "start_offsets cannot be used in a group: members start at its committed offsets");
  }
  std::map<PartitionId, Offset> start_offsets;
  for (const auto& [p, offset] : o.start_offsets) {
    if (absl::Status s = CheckPartition(o.topic, info.partition_count, p); !s.ok()) {
      return absl::InvalidArgumentError(StrCat("start_offsets: ", ToStd(s.message())));
    }
    if (!start_offsets.emplace(p, offset).second) {
      return absl::InvalidArgumentError(
          StrCat("start_offsets: partition ", p, " is listed twice"));
    }
  }
  for (PartitionId p : o.partitions) {
    RETURN_IF_ERROR(CheckPartition(o.topic, info.partition_count, p));
  }
  if (has_group) {
    if (!o.partitions.empty()) {
      return absl::InvalidArgumentError(
          "partitions cannot be chosen in a group: the group assigns them");
    }
    if (o.stop_at_end) {
      return absl::InvalidArgumentError("a group member cannot stop at the end offsets");
    }
    if (o.consumer_id.empty()) {
      static std::atomic<uint64_t> counter{0};
      o.consumer_id = StrCat("consumer-", NowMicros(), "-", counter.fetch_add(1));
    }
    return absl::OkStatus();
  }
  std::vector<PartitionId> chosen = o.partitions;
  all_partitions_ = chosen.empty() && !o.stop_at_end;
  if (chosen.empty()) {
    for (uint32_t p = 0; p < info.partition_count; ++p) chosen.push_back(PartitionId(p));
  }
  if (!o.stop_at_end) {
    // A snapshot reads the partitions as listed; a subscription reads each once, in turn.
    std::sort(chosen.begin(), chosen.end());
    chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  }
  for (const auto& [p, offset] : start_offsets) {
    if (std::find(chosen.begin(), chosen.end(), p) == chosen.end()) {
      return absl::InvalidArgumentError(
          StrCat("start_offsets: partition ", p, " is not one of the partitions read"));
    }
  }
  for (PartitionId p : chosen) {
    StartSpec spec = o.start;
    if (auto it = start_offsets.find(p); it != start_offsets.end()) {
      spec = StartSpec{StartSpec::Kind::kOffset};
      spec.offset = it->second;
    }
    ASSIGN_OR_RETURN(Offset next, ResolveStart(p, spec, std::nullopt, o.clamp_start));
    Part part{p, next};
    if (o.stop_at_end) {
      // What is acknowledged now: records appended but not yet durable cannot be read yet.
      ASSIGN_OR_RETURN(part.end, broker_.AckedEnd(o.topic, p));
    }
    parts_.push_back(part);
  }
  return absl::OkStatus();
}

void SubscriptionImpl::Start() {
  if (options_.group.empty()) {
    Kick();
    return;
  }
  // The first assignment arrives through OnAssignment, possibly before Join returns.
  std::weak_ptr<SubscriptionImpl> weak = weak_from_this();
  membership_ = broker_.groups().Join(options_.group, options_.topic, options_.consumer_id,
                                      options_.peer, partition_count_,
                                      [weak](const Assignment& a) {
                                        if (auto self = weak.lock()) self->OnAssignment(a);
                                      });
}

void SubscriptionImpl::OnAssignment(const Assignment& a) {
  {
    absl::MutexLock lock(&mu_);
    if (ended_) return;
    if (!a.revoked && pending_assignment_ && pending_assignment_->generation > a.generation) {
      return;  // a newer one is already queued
    }
    if (!(pending_assignment_ && pending_assignment_->revoked)) pending_assignment_ = a;
  }
  Kick();
}

void SubscriptionImpl::Kick() {
  {
    absl::MutexLock lock(&mu_);
    if (ended_) return;
    if (busy_) {
      again_ = true;
      return;
    }
    busy_ = true;
    again_ = false;
  }
  ScheduleStep();
}

absl::Status SubscriptionImpl::Assign(const Assignment& a) {
  if (options_.auto_commit) {
    AutoCommit(/*force=*/true);  // what was delivered before the move
    // Whatever could not be committed for partitions that moved is the new owner's now.
    absl::MutexLock lock(&commit_mu_);
    std::erase_if(delivered_, [&](const auto& d) {
      return std::find(a.partitions.begin(), a.partitions.end(), d.first) == a.partitions.end();
    });
  }
  ASSIGN_OR_RETURN(auto committed, broker_.CommittedOffsets(options_.group, options_.topic));
  std::vector<Part> next;
  for (PartitionId p : a.partitions) {
    // A partition kept across the rebalance goes on where it was; a new one starts at the
    // group's committed offset.
    auto kept = std::find_if(parts_.begin(), parts_.end(),
                             [p](const Part& part) { return part.partition == p; });
    if (kept != parts_.end()) {
      next.push_back(*kept);
      continue;
    }
    auto it = committed.find(p);
    std::optional<Offset> c;
    if (it != committed.end()) c = it->second;
    const StartSpec spec = c ? StartSpec{StartSpec::Kind::kCommitted} : options_.start;
    ASSIGN_OR_RETURN(Offset offset, ResolveStart(p, spec, c, /*clamp=*/true));
    next.push_back(Part{p, offset});
  }
  parts_ = std::move(next);
  generation_ = a.generation;
  round_robin_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<Offset> SubscriptionImpl::ResolveStart(PartitionId p, const StartSpec& spec,
                                                      std::optional<Offset> committed,
                                                      bool clamp) {
  auto offset = broker_.ResolveStart(options_.topic, p, spec, committed);
  if (clamp && !offset.ok() && offset.status().code() == absl::StatusCode::kOutOfRange) {
    auto earliest = broker_.ResolveStart(options_.topic, p, StartSpec{}, std::nullopt);
    auto latest = broker_.ResolveStart(options_.topic, p, StartSpec{StartSpec::Kind::kLatest},
                                       std::nullopt);
    if (earliest.ok() && latest.ok()) offset = std::clamp(spec.offset, *earliest, *latest);
  }
  return offset;
}

bool SubscriptionImpl::BeginDelivery() {
  absl::MutexLock lock(&mu_);
  if (ended_) return false;
  delivering_ = true;
  delivering_thread_ = std::this_thread::get_id();
  return true;
}

void SubscriptionImpl::EndDelivery() {
  std::optional<absl::Status> early;
  bool closed;
  {
    absl::MutexLock lock(&mu_);
    delivering_ = false;
    early = std::move(early_ready_);
    early_ready_.reset();
    closed = closed_;
  }
  if (early) Delivered(std::move(*early));
  // Closed during the delivery: the last commit includes it if the sink took it.
  if (closed) Leave();
}

void SubscriptionImpl::Step() {
  std::optional<Assignment> assignment;
  std::optional<absl::Status> stop;
  std::shared_ptr<SubscriptionSink> sink;
  {
    absl::MutexLock lock(&mu_);
    if (ended_) return;
    if (stopping_) {
      stop = stop_status_;
    } else if (pending_assignment_) {
      assignment = std::move(pending_assignment_);
      pending_assignment_.reset();
    }
    sink = sink_;
  }
  if (stop) {
    // Stopped: end here, where no delivery can be in flight.
    End(std::move(*stop));
    return;
  }
  if (assignment) {
    if (assignment->revoked) {
      End(absl::AbortedError(StrCat("consumer id \"", options_.consumer_id,
                                    "\" was taken by a newer subscription, or the topic was "
                                    "deleted")));
      return;
    }
    if (assignment->generation > generation_) {
      absl::Status s = Assign(*assignment);
      if (!s.ok()) {
        End(std::move(s));
        return;
      }
      in_flight_.clear();
      if (!BeginDelivery()) return;
      sink->OnAssignment(*assignment);
      EndDelivery();
      return;
    }
  }
  if (options_.auto_commit) AutoCommit(/*force=*/false);
  if (DeliverBatch(*sink)) return;
  if (options_.stop_at_end) {
    End(absl::OkStatus());
    return;
  }
  if (AddGrownPartitions()) {
    ScheduleStep();
    return;
  }
  // A topic deleted and created again under its name (auto-create) is not this reader's topic.
  if (broker_.TopicCreatedAt(options_.topic) != created_at_us_) {
    End(absl::NotFoundError(StrCat("topic \"", options_.topic, "\" was deleted")));
    return;
  }
  // Caught up everywhere: wait for the append notification of any partition. What was delivered
  // and not yet committed is committed within the interval even if nothing else arrives.
  if (options_.auto_commit) {
    AutoCommit(/*force=*/false);
    bool dirty;
    {
      absl::MutexLock lock(&commit_mu_);
      dirty = commit_dirty_;
    }
    if (dirty) ArmCommitTimer();
  }
  std::vector<Part> wait;
  const PartitionId known(static_cast<uint32_t>(parts_.size()));
  bool step_again = false;
  {
    absl::MutexLock lock(&mu_);
    if (again_ || pending_assignment_ || stopping_) {
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
    ScheduleStep();
    return;
  }
  std::weak_ptr<SubscriptionImpl> weak = weak_from_this();
  for (const Part& p : wait) {
    broker_.WhenReadable(options_.topic, p.partition, p.next, weak,
                         [weak, partition = p.partition] {
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
      broker_.ResolveStart(options_.topic, known, StartSpec{}, std::nullopt).ok()) {
    Kick();
  }
}

SubscriptionImpl::Delivery SubscriptionImpl::DeliverFrom(SubscriptionSink& sink, Part& part) {
  if (!BeginDelivery()) return Delivery::kEnded;
  RecordBatch batch(broker_, options_.topic, part.partition, part.next, part.end,
                    options_.max_records, options_.max_bytes);
  sink.OnBatch(batch);
  if (batch.count_ > 0) {
    in_flight_.clear();
    in_flight_[part.partition] = part.next;
    EndDelivery();
    return Delivery::kDelivered;
  }
  EndDelivery();
  if (!batch.status_.ok()) {
    End(std::move(batch.status_));
    return Delivery::kEnded;
  }
  return Delivery::kNothing;
}

bool SubscriptionImpl::DeliverBatch(SubscriptionSink& sink) {
  if (options_.stop_at_end) {
    // A snapshot reads its parts one after the other, each up to its end.
    for (; round_robin_ < parts_.size(); ++round_robin_) {
      Part& part = parts_[round_robin_];
      if (part.next >= part.end) continue;
      const Offset from = part.next;
      const Delivery d = DeliverFrom(sink, part);
      if (d != Delivery::kNothing) return true;
      // Nothing, unless retention moved the partition's start past the end.
      if (part.next < part.end) {
        End(absl::InternalError(StrCat("partition ", part.partition,
                                       " returned nothing at offset ", from)));
        return true;
      }
    }
    return false;
  }
  for (size_t i = 0; i < parts_.size(); ++i) {
    const size_t index = (round_robin_ + i) % parts_.size();
    switch (DeliverFrom(sink, parts_[index])) {
      case Delivery::kNothing:
        continue;
      case Delivery::kDelivered:
        round_robin_ = index + 1;
        return true;
      case Delivery::kEnded:
        return true;
    }
  }
  return false;
}

bool SubscriptionImpl::AddGrownPartitions() {
  if (!all_partitions_) return false;
  bool grew = false;
  for (;;) {
    const PartitionId p(static_cast<uint32_t>(parts_.size()));
    // Everything in a partition added after the start is new to this reader: earliest.
    auto start = broker_.ResolveStart(options_.topic, p, StartSpec{}, std::nullopt);
    if (!start.ok()) return grew;
    parts_.push_back(Part{p, *start});
    grew = true;
  }
}

void SubscriptionImpl::Ready(absl::Status delivered) {
  {
    absl::MutexLock lock(&mu_);
    if (delivering_) {
      early_ready_ = std::move(delivered);
      return;
    }
  }
  Delivered(std::move(delivered));
}

void SubscriptionImpl::Delivered(absl::Status status) {
  if (!status.ok()) {
    End(std::move(status));
    return;
  }
  if (options_.auto_commit && !in_flight_.empty()) {
    absl::MutexLock lock(&commit_mu_);
    for (const auto& [p, next] : in_flight_) delivered_[p] = next;
    commit_dirty_ = true;
  }
  in_flight_.clear();
  // Still busy: the next step follows directly.
  ScheduleStep();
}

void SubscriptionImpl::AutoCommit(bool force) {
  absl::MutexLock lock(&commit_mu_);
  if (!commit_dirty_) return;
  const int64_t now = NowMicros();
  if (!force && now - last_commit_us_ < kAutoCommitIntervalUs) return;
  std::vector<std::pair<PartitionId, Offset>> offsets(delivered_.begin(), delivered_.end());
  absl::Status s = broker_.CommitOffsets(options_.group, options_.topic, offsets);
  if (!s.ok()) {
    spdlog::warn("auto-commit of group {} on {}: {}", options_.group, options_.topic,
                 ToStd(s.message()));
    return;
  }
  commit_dirty_ = false;
  last_commit_us_ = now;
  delivered_.clear();
}

void SubscriptionImpl::ArmCommitTimer() {
  {
    absl::MutexLock lock(&mu_);
    if (commit_timer_set_ || ended_) return;
    commit_timer_set_ = true;
  }
  int64_t last;
  {
    absl::MutexLock lock(&commit_mu_);
    last = last_commit_us_;
  }
  const int64_t wait_us = std::max<int64_t>(1000, last + kAutoCommitIntervalUs - NowMicros());
  std::weak_ptr<SubscriptionImpl> weak = weak_from_this();
  pool_.ScheduleAfter(absl::Microseconds(wait_us), [weak] {
    auto self = weak.lock();
    if (!self) return;
    {
      absl::MutexLock lock(&self->mu_);
      self->commit_timer_set_ = false;
    }
    self->Kick();
  });
}

void SubscriptionImpl::End(absl::Status status) {
  std::shared_ptr<SubscriptionSink> sink;
  {
    absl::MutexLock lock(&mu_);
    if (ended_) return;
    ended_ = true;
    sink = std::move(sink_);
  }
  if (sink) sink->OnEnd(std::move(status));
}

void SubscriptionImpl::Stop(absl::Status status) {
  bool end_now;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || ended_) return;
    stopping_ = true;
    stop_status_ = status;
    end_now = !busy_;
  }
  // Idle (waiting for records): end now. Busy: the step or delivery in progress ends it.
  if (end_now) End(std::move(status));
}

void SubscriptionImpl::Close() {
  bool delivering;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    ended_ = true;
    sink_.reset();
    delivering = delivering_;
    // A sink may call Ready on the handle until its callback returns: the handle outlives it.
    // (From inside the callback itself there is nothing to wait for.)
    if (delivering && delivering_thread_ != std::this_thread::get_id()) {
      mu_.Await(absl::Condition(
          +[](bool* delivering) { return !*delivering; }, &delivering_));
    }
  }
  if (!delivering) Leave();  // else EndDelivery did, once the delivery returned
}

void SubscriptionImpl::Leave() {
  if (!membership_ && !options_.auto_commit) return;
  // On the pool: the final commit writes to disk, and the caller may be a transport's thread.
  pool_.Schedule([self = shared_from_this()] {
    if (self->options_.auto_commit) self->AutoCommit(/*force=*/true);
    if (self->membership_) self->broker_.groups().Leave(*self->membership_);
  });
}

absl::StatusOr<std::unique_ptr<Subscription>> Subscription::Open(
    Broker& broker, WorkerPool& pool, SubscriptionOptions options,
    std::shared_ptr<SubscriptionSink> sink) {
  auto impl = std::make_shared<SubscriptionImpl>(broker, pool, std::move(options),
                                                 std::move(sink));
  RETURN_IF_ERROR(impl->Open());
  return std::unique_ptr<Subscription>(new Subscription(std::move(impl)));
}

Subscription::~Subscription() { Close(); }
void Subscription::Start() { impl_->Start(); }
void Subscription::Ready(absl::Status delivered) { impl_->Ready(std::move(delivered)); }
void Subscription::Stop(absl::Status status) { impl_->Stop(std::move(status)); }
void Subscription::Close() { impl_->Close(); }
const std::string& Subscription::consumer_id() const { return impl_->consumer_id(); }

}  // namespace nodata::broker
