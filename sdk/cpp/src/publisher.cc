// Publisher: one sender thread batches, writes and reconnects; one reader thread per stream
// resolves acks. Batch life: open_ (filling) -> ready_ (sealed, waiting to be sent or resent)
// -> inflight_ (written to the current stream, answered in order) -> resolved.
#include <algorithm>
#include <condition_variable>
#include <deque>
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

using Clock = std::chrono::steady_clock;
using Stream = grpc::ClientReaderWriter<nodata::v1::PublishBatchRequest,
                                        nodata::v1::PublishBatchResponse>;

// Where one event's result goes: a promise or a callback.
struct Completion {
  std::promise<absl::StatusOr<Ack>> promise;
  Publisher::Callback callback;

  void Resolve(absl::StatusOr<Ack> result) {
    if (callback) {
      callback(std::move(result));
    } else {
      promise.set_value(std::move(result));
    }
  }
};

struct Batch {
  nodata::v1::PublishBatchRequest request;
  std::vector<Completion> completions;
  size_t bytes = 0;
  int attempts = 0;          // times written to a stream
  uint64_t first_seq = 0;    // sequence number of its first event (events are numbered in order)
  Clock::time_point opened;  // when its first event arrived (linger)
  Clock::time_point sent_at;
};

// One PublishStream call. The reader thread owns Read(); the sender thread owns Write(),
// WritesDone() and Finish() (after joining the reader).
struct StreamState {
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream;
  std::thread reader;
  bool read_done = false;  // guarded by Impl::mu_
  bool timed_out = false;  // guarded by Impl::mu_: cancelled for want of an answer
  absl::Status read_error;  // guarded by Impl::mu_: a protocol error seen by the reader
};

}  // namespace

class Publisher::Impl {
 public:
  explicit Impl(PublisherOptions options)
      : options_(std::move(options)),
        channel_(internal::MakeChannel(options_.address, options_.backoff.max_backoff_ms,
                                       options_.tls, options_.token)),
        stub_(nodata::v1::IngestService::NewStub(channel_)),
        id_prefix_(absl::StrCat("sdk-", internal::RandomHex128(), "-")),
        backoff_ms_(options_.backoff.initial_backoff_ms) {
    options_.max_batch_events = std::max<size_t>(options_.max_batch_events, 1);
    options_.max_inflight_batches = std::max(options_.max_inflight_batches, 1);
    options_.max_buffered_events = std::max(options_.max_buffered_events, options_.max_batch_events);
    sender_ = std::thread([this] { SenderLoop(); });
  }

  ~Impl() { Close(); }

  void Enqueue(Event event, Completion completion) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return closing_ || unresolved_ < options_.max_buffered_events; });
    if (closing_) {
      lk.unlock();
      completion.Resolve(absl::FailedPreconditionError("the publisher is closed"));
      return;
    }
    // Assigned before the first attempt: a resend after a lost answer is then a duplicate.
    if (event.id.empty()) event.id = absl::StrCat(id_prefix_, next_id_++);
    const size_t bytes = internal::EventBytes(event);
    if (open_ && open_->bytes + bytes > options_.max_batch_bytes) Seal();
    if (!open_) {
      open_ = std::make_unique<Batch>();
      open_->first_seq = next_seq_;
      open_->opened = Clock::now();
      unresolved_batches_.insert(next_seq_);
    }
    internal::ToProto(std::move(event), *open_->request.add_events());
    open_->completions.push_back(std::move(completion));
    open_->bytes += bytes;
    ++next_seq_;
    ++unresolved_;
    if (open_->completions.size() >= options_.max_batch_events) Seal();
    if (open_ && open_->completions.size() == 1) cv_.notify_all();  // the linger clock started
  }

  void Flush() {
    std::unique_lock lk(mu_);
    if (next_seq_ == 0) return;
    const uint64_t last = next_seq_ - 1;
    ++flush_waiters_;
    cv_.notify_all();
    cv_.wait(lk, [&] {
      return unresolved_batches_.empty() || *unresolved_batches_.begin() > last;
    });
    --flush_waiters_;
  }

  void Close() {
    {
      std::lock_guard lk(mu_);
      closing_ = true;
      cv_.notify_all();
    }
    if (sender_.joinable()) sender_.join();
  }

 private:
  // Moves the open batch to the send queue.
  void Seal() {
    ready_.push_back(std::move(open_));
    open_.reset();
    cv_.notify_all();
  }

  void SenderLoop() {
    std::unique_lock lk(mu_);
    for (;;) {
      const Clock::time_point now = Clock::now();
      if (open_ && (closing_ || flush_waiters_ > 0 ||
                    now - open_->opened >= std::chrono::milliseconds(options_.linger_ms))) {
        Seal();
      }
      if (stream_ && stream_->read_done) {
        HandleBreak(lk);
        continue;
      }
      if (closing_ && !open_ && ready_.empty() && inflight_.empty()) break;

      const bool can_send = !ready_.empty() && now >= backoff_until_ &&
                            inflight_.size() < static_cast<size_t>(options_.max_inflight_batches);
      if (can_send) {
        if (!stream_) {
          lk.unlock();
          auto s = std::make_unique<StreamState>();
          s->stream = stub_->PublishStream(&s->context);
          StreamState* raw = s.get();
          s->reader = std::thread([this, raw] { ReaderLoop(*raw); });
          lk.lock();
          stream_ = std::move(s);
          continue;  // state may have changed while unlocked
        }
        inflight_.push_back(std::move(ready_.front()));
        ready_.pop_front();
        Batch& batch = *inflight_.back();
        batch.sent_at = now;
        ++batch.attempts;
        Stream& stream = *stream_->stream;
        lk.unlock();
        // The request is serialized inside Write, before any answer can arrive; a failed write
        // shows up as the end of the stream on the reader side.
        const bool ok = stream.Write(batch.request);
        lk.lock();
        if (!ok) stream_->context.TryCancel();
        continue;
      }

      // Backing off with batches to send and no stream: drive the reconnection meanwhile.
      if (!stream_ && !ready_.empty() && now < backoff_until_) {
        const Clock::time_point until = backoff_until_;
        lk.unlock();
        const bool connected = internal::DriveConnection(*channel_, until);
        lk.lock();
        if (!connected) continue;
      }
      // Nothing to send now: wait for the next event, linger end, backoff end or answer timeout.
      Clock::time_point wake = Clock::time_point::max();
      if (open_) wake = std::min(wake, open_->opened + std::chrono::milliseconds(options_.linger_ms));
      if (!ready_.empty() && now < backoff_until_) wake = std::min(wake, backoff_until_);
      if (stream_ && !inflight_.empty()) {
        const auto timeout = inflight_.front()->sent_at +
                             std::chrono::milliseconds(options_.request_timeout_ms);
        if (now >= timeout && !stream_->timed_out) {
          stream_->timed_out = true;
          stream_->context.TryCancel();
          continue;
        }
        if (!stream_->timed_out) wake = std::min(wake, timeout);
      }
      if (wake == Clock::time_point::max()) {
        cv_.wait(lk);
      } else {
        cv_.wait_until(lk, wake);
      }
    }
    // Everything is resolved: end the stream politely.
    std::unique_ptr<StreamState> s = std::move(stream_);
    lk.unlock();
    if (s) {
      s->stream->WritesDone();
      s->reader.join();
      s->stream->Finish();
    }
  }

  void ReaderLoop(StreamState& s) {
    nodata::v1::PublishBatchResponse response;
    while (s.stream->Read(&response)) {
      std::unique_ptr<Batch> batch;
      {
        std::lock_guard lk(mu_);
        if (inflight_.empty()) {
          s.read_error = absl::InternalError("PublishStream answered a batch that was not sent");
          s.context.TryCancel();
          break;
        }
        batch = std::move(inflight_.front());
        inflight_.pop_front();
        backoff_ms_ = options_.backoff.initial_backoff_ms;
      }
      if (static_cast<size_t>(response.acks_size()) != batch->completions.size()) {
        absl::Status mismatch = absl::InternalError(
            absl::StrCat("PublishStream answered ", response.acks_size(), " acks for ",
                         batch->completions.size(), " events"));
        Resolve(std::move(batch), mismatch);
        continue;
      }
      for (int i = 0; i < response.acks_size(); ++i) {
        batch->completions[i].Resolve(internal::FromProto(response.acks(i)));
      }
      Resolve(std::move(batch), absl::OkStatus());
    }
    std::lock_guard lk(mu_);
    s.read_done = true;
    cv_.notify_all();
  }

  // Fails the batch's events with `status` unless it is OK (already resolved), then accounts for
  // them. Called without mu_ held.
  void Resolve(std::unique_ptr<Batch> batch, const absl::Status& status) {
    if (!status.ok()) {
      for (Completion& c : batch->completions) c.Resolve(status);
    }
    std::lock_guard lk(mu_);
    unresolved_ -= batch->completions.size();
    unresolved_batches_.erase(unresolved_batches_.find(batch->first_seq));
    cv_.notify_all();
  }

  // The reader saw the end of the current stream: collect its status and send the unanswered
  // batches again (after backoff) or fail them.
  void HandleBreak(std::unique_lock<std::mutex>& lk) {
    std::unique_ptr<StreamState> s = std::move(stream_);
    lk.unlock();
    s->reader.join();
    const grpc::Status finished = s->stream->Finish();
    lk.lock();
    absl::Status status = internal::FromGrpc(finished);
    if (!s->read_error.ok()) {
      status = s->read_error;
    } else if (s->timed_out) {
      status = absl::DeadlineExceededError(absl::StrCat(
          "no answer to a batch within ", options_.request_timeout_ms, " ms"));
    } else if (status.ok()) {
      status = absl::UnavailableError("PublishStream ended with batches unanswered");
    }
    if (inflight_.empty()) return;  // an idle stream ended: reopen on demand
    std::deque<std::unique_ptr<Batch>> unanswered = std::move(inflight_);
    inflight_.clear();
    std::vector<std::pair<std::unique_ptr<Batch>, absl::Status>> failed;
    // The server stored everything before the failing request and nothing behind it; the first
    // unanswered batch is the one that failed. Batches behind it are innocent and go again.
    if (!internal::IsRetryable(status.code())) {
      failed.emplace_back(std::move(unanswered.front()), status);
      unanswered.pop_front();
    }
    for (auto it = unanswered.rbegin(); it != unanswered.rend(); ++it) {
      if (internal::IsRetryable(status.code()) && options_.max_retries >= 0 &&
          (*it)->attempts > options_.max_retries) {
        failed.emplace_back(std::move(*it), absl::Status(status.code(), absl::StrCat(
            status.message(), " (after ", (*it)->attempts, " attempts)")));
      } else {
        ready_.push_front(std::move(*it));
      }
    }
    if (internal::IsRetryable(status.code())) {
      backoff_until_ = Clock::now() + std::chrono::milliseconds(backoff_ms_);
      backoff_ms_ = std::min(backoff_ms_ * 2, options_.backoff.max_backoff_ms);
    }
    lk.unlock();
    for (auto& [batch, st] : failed) Resolve(std::move(batch), st);
    lk.lock();
  }

  PublisherOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<nodata::v1::IngestService::Stub> stub_;
  const std::string id_prefix_;

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_id_ = 0;                     // guarded by mu_
  uint64_t next_seq_ = 0;                    // guarded by mu_
  size_t unresolved_ = 0;                    // guarded by mu_: events
  std::multiset<uint64_t> unresolved_batches_;  // guarded by mu_: first_seq of each batch
  std::unique_ptr<Batch> open_;              // guarded by mu_
  std::deque<std::unique_ptr<Batch>> ready_;     // guarded by mu_
  std::deque<std::unique_ptr<Batch>> inflight_;  // guarded by mu_: in send order
  std::unique_ptr<StreamState> stream_;      // guarded by mu_; replaced only by the sender
  int backoff_ms_;                           // guarded by mu_
  Clock::time_point backoff_until_;          // guarded by mu_
  int flush_waiters_ = 0;                    // guarded by mu_
  bool closing_ = false;                     // guarded by mu_
  std::thread sender_;
};

Publisher::Publisher(PublisherOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

Publisher::~Publisher() = default;

std::future<absl::StatusOr<Ack>> Publisher::Publish(Event event) {
  Completion c;
  std::future<absl::StatusOr<Ack>> f = c.promise.get_future();
  impl_->Enqueue(std::move(event), std::move(c));
  return f;
}

void Publisher::Publish(Event event, Callback done) {
  Completion c;
  c.callback = std::move(done);
  impl_->Enqueue(std::move(event), std::move(c));
}

void Publisher::Flush() { impl_->Flush(); }

void Publisher::Close() { impl_->Close(); }

}  // namespace nodata::client
