// Consumer: a supervisor thread opens the Subscribe stream(s), one reader thread per stream fills
// a bounded queue, and Poll() drains it on the application's thread. On a retryable break the
// supervisor stops every stream, drops the queue (what was not returned yet is read again) and
// resubscribes after backoff.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "convert.h"
#include "nodata/client.h"
#include "nodata/v1/nodata.grpc.pb.h"

namespace nodata::client {
namespace {

// What a stream delivered, in order: an assignment or a batch of records.
struct Item {
  bool is_assignment = false;
  std::vector<uint32_t> partitions;
  uint64_t generation = 0;
  std::vector<Record> records;
  size_t next = 0;  // records before it were taken by Poll
};

// What one Subscribe call reads: partitions (empty: all, or the group's share) from `start`.
struct StreamSpec {
  std::vector<uint32_t> partitions;
  StartPosition start;
};

struct StreamState {
  grpc::ClientContext context;
  std::thread reader;
  bool done = false;  // guarded by Impl::mu_
  bool stop = false;  // guarded by Impl::mu_
  bool delivered = false;  // guarded by Impl::mu_: something arrived on this stream
  grpc::Status status;  // guarded by Impl::mu_, set with done
};

}  // namespace

class Consumer::Impl {
 public:
  explicit Impl(ConsumerOptions options)
      : options_(std::move(options)),
        channel_(internal::MakeChannel(options_.address, options_.backoff.max_backoff_ms,
                                       options_.tls, options_.token)),
        consume_(nodata::v1::ConsumeService::NewStub(channel_)),
        topics_(nodata::v1::TopicService::NewStub(channel_)) {
    if (!options_.group.empty() && options_.consumer_id.empty()) {
      options_.consumer_id = absl::StrCat("sdk-", internal::RandomHex128().substr(0, 16));
    }
    options_.max_batch = std::clamp<uint32_t>(options_.max_batch, 1, 10000);
    options_.max_buffered_records = std::max<size_t>(options_.max_buffered_records, 1);
    supervisor_ = std::thread([this] { SupervisorLoop(); });
  }

  ~Impl() { Close(); }

  absl::StatusOr<std::vector<Record>> Poll(std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return !queue_.empty() || !error_.ok() || closed_; });
    if (queue_.empty()) {
      if (closed_) return absl::CancelledError("the consumer is closed");
      if (!error_.ok()) return error_;
      return std::vector<Record>();
    }
    std::vector<Record> out;
    while (!queue_.empty() && out.size() < options_.max_batch) {
      Item& item = queue_.front();
      if (item.is_assignment) {
        if (!out.empty()) break;  // the records before it belong to the old assignment
        std::vector<uint32_t> partitions = std::move(item.partitions);
        const uint64_t generation = item.generation;
        queue_.pop_front();
        std::set<uint32_t> kept(partitions.begin(), partitions.end());
        std::erase_if(next_, [&](const auto& kv) { return !kept.contains(kv.first); });
        assigned_ = partitions;
        if (options_.on_assignment) {
          lk.unlock();
          options_.on_assignment(partitions, generation);
          lk.lock();
        }
        continue;
      }
      while (item.next < item.records.size() && out.size() < options_.max_batch) {
        Record& r = item.records[item.next++];
        --queued_records_;
        auto [it, fresh] = next_.try_emplace(r.partition, 0);
        // Already returned before a reconnect: the server resumed from an older offset.
        if (!fresh && r.offset < it->second) continue;
        it->second = r.offset + 1;
        out.push_back(std::move(r));
      }
      if (item.next == item.records.size()) queue_.pop_front();
    }
    cv_.notify_all();  // room for the readers
    return out;
  }

  absl::Status Commit() {
    nodata::v1::CommitRequest request;
    {
      std::lock_guard lk(mu_);
      if (options_.group.empty()) {
        return absl::FailedPreconditionError("Commit needs a consumer group");
      }
      for (uint32_t p : assigned_) {
        auto it = next_.find(p);
        if (it == next_.end()) continue;
        auto* po = request.add_offsets();
        po->set_partition(p);
        po->set_offset(it->second);
      }
    }
    if (request.offsets_size() == 0) return absl::OkStatus();
    return SendCommit(std::move(request));
  }

  absl::Status Commit(uint32_t partition, uint64_t next_offset) {
    if (options_.group.empty()) {
      return absl::FailedPreconditionError("Commit needs a consumer group");
    }
    nodata::v1::CommitRequest request;
    auto* po = request.add_offsets();
    po->set_partition(partition);
    po->set_offset(next_offset);
    return SendCommit(std::move(request));
  }

  std::vector<uint32_t> Assignment() const {
    std::lock_guard lk(mu_);
    if (!options_.group.empty()) return assigned_;
    std::vector<uint32_t> out;
    for (const auto& [p, offset] : next_) out.push_back(p);
    return out;
  }

  void Close() {
    {
      std::lock_guard lk(mu_);
      closed_ = true;
      for (auto& s : streams_) {
        s->stop = true;
        s->context.TryCancel();
      }
      cv_.notify_all();
    }
    if (supervisor_.joinable()) supervisor_.join();
  }

 private:
  absl::Status SendCommit(nodata::v1::CommitRequest request) {
    request.set_group(options_.group);
    request.set_topic(options_.topic);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(options_.commit_timeout_ms));
    context.set_wait_for_ready(true);  // ride out a reconnect within the deadline
    nodata::v1::CommitResponse response;
    return internal::FromGrpc(consume_->Commit(&context, request, &response));
  }

  void SupervisorLoop() {
    int backoff_ms = options_.backoff.initial_backoff_ms;
    bool first = true;
    std::unique_lock lk(mu_);
    while (!closed_) {
      std::vector<StreamSpec> specs;
      if (first) {
        specs.push_back({options_.partitions, options_.start});
      } else {
        absl::StatusOr<std::vector<StreamSpec>> resumed = ResumeSpecs(lk);
        if (!resumed.ok()) {
          if (!internal::IsRetryable(resumed.status().code())) {
            error_ = resumed.status();
            cv_.notify_all();
            return;
          }
          Sleep(lk, backoff_ms);
          backoff_ms = std::min(backoff_ms * 2, options_.backoff.max_backoff_ms);
          continue;
        }
        specs = *std::move(resumed);
      }
      if (closed_) break;
      first = false;
      for (StreamSpec& spec : specs) {
        auto s = std::make_unique<StreamState>();
        StreamState* raw = s.get();
        streams_.push_back(std::move(s));
        raw->reader = std::thread([this, raw, spec = std::move(spec)] { ReaderLoop(*raw, spec); });
      }
      cv_.wait(lk, [&] {
        return closed_ || std::any_of(streams_.begin(), streams_.end(),
                                      [](const auto& s) { return s->done; });
      });
      // Stop them all: streams are resumed together, from the offsets Poll returned.
      grpc::Status status;
      bool delivered = false;
      for (auto& s : streams_) {
        if (s->done && status.ok()) status = s->status;
        delivered = delivered || s->delivered;
        s->stop = true;
        s->context.TryCancel();
      }
      cv_.notify_all();
      std::vector<std::unique_ptr<StreamState>> stopped = std::move(streams_);
      streams_.clear();
      lk.unlock();
      for (auto& s : stopped) s->reader.join();
      lk.lock();
      if (closed_) break;
      queue_.clear();
      queued_records_ = 0;
      absl::Status st = internal::FromGrpc(status);
      // A live subscription never ends OK on its own; take it as a dropped connection.
      if (st.ok()) st = absl::UnavailableError("the subscription ended");
      if (!internal::IsRetryable(st.code())) {
        error_ = st;
        cv_.notify_all();
        return;
      }
      if (delivered) backoff_ms = options_.backoff.initial_backoff_ms;
      Sleep(lk, backoff_ms);
      backoff_ms = std::min(backoff_ms * 2, options_.backoff.max_backoff_ms);
    }
  }

  // Backs off for `ms`, driving the channel's reconnection meanwhile; ends early on Close.
  void Sleep(std::unique_lock<std::mutex>& lk, int ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!closed_ && std::chrono::steady_clock::now() < until) {
      lk.unlock();
      const bool connected = internal::DriveConnection(*channel_, until);
      lk.lock();
      if (connected) break;
    }
    cv_.wait_until(lk, until, [&] { return closed_; });
  }

  // Where to pick up after a break. In a group the server resumes from the committed offsets
  // (Poll drops what it already returned). Without one, each partition resumes after the last
  // record returned (partitions at the same offset share a stream); the rest start over.
  absl::StatusOr<std::vector<StreamSpec>> ResumeSpecs(std::unique_lock<std::mutex>& lk) {
    if (!options_.group.empty() || next_.empty()) {
      return std::vector<StreamSpec>{{options_.partitions, options_.start}};
    }
    std::map<uint64_t, std::vector<uint32_t>> by_offset;
    for (const auto& [p, offset] : next_) by_offset[offset].push_back(p);
    std::set<uint32_t> rest(options_.partitions.begin(), options_.partitions.end());
    if (rest.empty()) {
      lk.unlock();
      absl::StatusOr<std::vector<uint32_t>> all = AllPartitions();
      lk.lock();
      if (!all.ok()) return all.status();
      rest.insert(all->begin(), all->end());
    }
    for (const auto& [p, offset] : next_) rest.erase(p);
    std::vector<StreamSpec> specs;
    for (auto& [offset, partitions] : by_offset) {
      specs.push_back({std::move(partitions), StartPosition::Offset(offset)});
    }
    if (!rest.empty()) specs.push_back({{rest.begin(), rest.end()}, options_.start});
    return specs;
  }

  absl::StatusOr<std::vector<uint32_t>> AllPartitions() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    nodata::v1::GetTopicRequest request;
    request.set_name(options_.topic);
    nodata::v1::GetTopicResponse response;
    grpc::Status s = topics_->GetTopic(&context, request, &response);
    if (!s.ok()) return internal::FromGrpc(s);
    std::vector<uint32_t> out;
    for (uint32_t p = 0; p < response.topic().partition_count(); ++p) out.push_back(p);
    return out;
  }

  void ReaderLoop(StreamState& s, const StreamSpec& spec) {
    nodata::v1::SubscribeRequest request;
    request.set_topic(options_.topic);
    request.set_group(options_.group);
    request.set_consumer_id(options_.consumer_id);
    internal::ToProto(spec.start, *request.mutable_start());
    for (uint32_t p : spec.partitions) request.add_partitions(p);
    request.set_max_batch(options_.max_batch);
    request.set_auto_commit(options_.auto_commit);

    std::unique_ptr<grpc::ClientReader<nodata::v1::SubscribeResponse>> reader =
        consume_->Subscribe(&s.context, request);
    nodata::v1::SubscribeResponse response;
    while (reader->Read(&response)) {
      Item item;
      if (response.has_assignment()) {
        item.is_assignment = true;
        const auto& a = response.assignment();
        item.partitions.assign(a.partitions().begin(), a.partitions().end());
        item.generation = a.generation();
      } else if (response.has_records()) {
        auto* records = response.mutable_records()->mutable_records();
        item.records.reserve(records->size());
        for (auto& r : *records) item.records.push_back(internal::FromProto(std::move(r)));
      } else {
        continue;
      }
      std::unique_lock lk(mu_);
      // Flow control: stop reading while the application is behind; gRPC then holds the server.
      cv_.wait(lk, [&] { return s.stop || queued_records_ < options_.max_buffered_records; });
      if (s.stop) break;
      queued_records_ += item.records.size();
      queue_.push_back(std::move(item));
      s.delivered = true;
      cv_.notify_all();
    }
    // Stopped by the supervisor (which cancelled the call) or ended by itself: the status says.
    grpc::Status status = reader->Finish();
    std::lock_guard lk(mu_);
    s.status = status;
    s.done = true;
    cv_.notify_all();
  }

  ConsumerOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<nodata::v1::ConsumeService::Stub> consume_;
  std::unique_ptr<nodata::v1::TopicService::Stub> topics_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;               // guarded by mu_
  size_t queued_records_ = 0;            // guarded by mu_: not yet returned, in queue_
  std::map<uint32_t, uint64_t> next_;    // guarded by mu_: offset after the last returned
  std::vector<uint32_t> assigned_;       // guarded by mu_: as Poll last saw it
  std::vector<std::unique_ptr<StreamState>> streams_;  // guarded by mu_
  absl::Status error_;                   // guarded by mu_: final
  bool closed_ = false;                  // guarded by mu_
  std::thread supervisor_;
};

Consumer::Consumer(ConsumerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Consumer::~Consumer() = default;

absl::StatusOr<std::vector<Record>> Consumer::Poll(std::chrono::milliseconds timeout) {
  return impl_->Poll(timeout);
}
absl::Status Consumer::Commit() { return impl_->Commit(); }
absl::Status Consumer::Commit(uint32_t partition, uint64_t next_offset) {
  return impl_->Commit(partition, next_offset);
}
std::vector<uint32_t> Consumer::Assignment() const { return impl_->Assignment(); }
void Consumer::Close() { impl_->Close(); }

}  // namespace nodata::client
