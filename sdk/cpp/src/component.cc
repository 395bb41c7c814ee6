// RunComponent: the environment, stop signals, and the three run loops. Transforms and sinks
// share one consume loop (poll a batch, handle it, commit what was handled); a source drives a
// Publisher through its SourceContext.
#include "nodata/component.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace nodata::component {
namespace {

using client::Record;

// How long a Poll waits before the loop looks at the stop flag again.
constexpr std::chrono::milliseconds kPollTimeout(100);
// Records per polled batch: each batch costs a wait for its acks and a commit, so larger batches
// (the Consumer's default is 1000) roughly double a filter's throughput; at low rates a poll
// returns what is there without waiting to fill one.
constexpr uint32_t kMaxBatchRecords = 5000;
constexpr size_t kReadAheadRecords = 4 * kMaxBatchRecords;

// Written by the signal handler, which may only touch lock-free atomics and write(2).
std::atomic<bool> g_stop_requested{false};
std::atomic<int> g_wake_fd{-1};
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free);

extern "C" void OnStopSignal(int) {
  const int saved_errno = errno;
  g_stop_requested.store(true);
  const int fd = g_wake_fd.load();
  if (fd >= 0) {
    const char byte = 1;
    [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);
  }
  errno = saved_errno;
}

// SIGTERM and SIGINT handlers for the lifetime of a run. The handler sets a flag and writes to
// a self-pipe; a watcher thread turns that byte into a condition-variable notification, so
// waits wake at once and no real work happens in signal context. Safe for concurrent use.
class StopSignal {
 public:
  static absl::StatusOr<std::unique_ptr<StopSignal>> Install() {
    auto s = std::unique_ptr<StopSignal>(new StopSignal());
    if (::pipe2(s->fds_, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
    }
    ::fcntl(s->fds_[1], F_SETFL, O_NONBLOCK);  // a full pipe already says "stop"
    g_stop_requested.store(false);
    g_wake_fd.store(s->fds_[1]);
    struct sigaction action = {};
    action.sa_handler = OnStopSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGTERM, &action, &s->old_term_);
    ::sigaction(SIGINT, &action, &s->old_int_);
    s->installed_ = true;
    s->watcher_ = std::thread([raw = s.get()] { raw->Watch(); });
    return s;
  }

  ~StopSignal() {
    if (installed_) {
      ::sigaction(SIGTERM, &old_term_, nullptr);
      ::sigaction(SIGINT, &old_int_, nullptr);
    }
    if (watcher_.joinable()) {
      {
        std::lock_guard lk(mu_);
        closing_ = true;
      }
      const char byte = 0;
      [[maybe_unused]] ssize_t n = ::write(fds_[1], &byte, 1);
      watcher_.join();
    }
    g_wake_fd.store(-1);
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }

  bool stopping() const { return g_stop_requested.load(); }

  bool WaitFor(std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return stopping(); });
    return stopping();
  }

 private:
  StopSignal() = default;

  void Watch() {
    char byte;
    for (;;) {
      const ssize_t n = ::read(fds_[0], &byte, 1);
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard lk(mu_);
      cv_.notify_all();
      if (closing_ || n <= 0) return;
    }
  }

  int fds_[2] = {-1, -1};
  struct sigaction old_term_ = {};
  struct sigaction old_int_ = {};
  bool installed_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closing_ = false;  // guarded by mu_
  std::thread watcher_;
};

// One line on stderr per error: the server keeps a program's stderr as the component's log.
void LogError(const std::string& name, const absl::Status& status) {
  std::string line = std::string(status.message());
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "component %s: error: %s: %s\n", name.empty() ? "?" : name.c_str(),
               absl::StatusCodeToString(status.code()).c_str(), line.c_str());
  std::fflush(stderr);
}

void LogInfo(const std::string& name, const std::string& line) {
  std::fprintf(stderr, "component %s: %s\n", name.c_str(), line.c_str());
  std::fflush(stderr);
}

absl::Status Annotate(const absl::Status& s, absl::string_view what) {
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

std::optional<std::string> GetEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

absl::StatusOr<std::vector<std::string>> TopicList(const char* variable) {
  std::vector<std::string> out;
  const std::string value = GetEnv(variable).value_or("");
  if (absl::StripAsciiWhitespace(value).empty()) return out;
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          variable, "=\"", value, "\": topic number ", out.size() + 1, " is empty"));
    }
    out.emplace_back(item);
  }
  return out;
}

// The outcome of the publishes of one batch (transform) or of a whole run (source). Safe for
// concurrent use: publish callbacks run on the Publisher's threads.
class PublishResults {
 public:
  void Add(const absl::Status& s) {
    if (s.ok()) return;
    std::lock_guard lk(mu_);
    if (failed_++ == 0) first_error_ = s;
  }
  // OK, or the first failure and how many failed.
  absl::Status Take() {
    std::lock_guard lk(mu_);
    absl::Status out = absl::OkStatus();
    if (failed_ > 0) {
      out = Annotate(first_error_, absl::StrCat(failed_, " publish(es) failed; first"));
    }
    failed_ = 0;
    first_error_ = absl::OkStatus();
    return out;
  }

 private:
  std::mutex mu_;
  size_t failed_ = 0;         // guarded by mu_
  absl::Status first_error_;  // guarded by mu_
};

client::PublisherOptions PublisherOptionsFor(const ComponentEnv& env) {
  client::PublisherOptions options;
  options.address = env.address;
  options.token = env.token;
  return options;
}

absl::Status NoSuchOutput(size_t output, const ComponentEnv& env) {
  return absl::InvalidArgumentError(absl::StrCat("output ", output, " does not exist: component ",
                                                 env.name, " has ", env.outputs.size(),
                                                 " output(s) (", absl::StrJoin(env.outputs, ","),
                                                 ")"));
}

// Handles a polled batch. Sets `handled[partition]` to the offset after the last record whose
// effects are complete (outputs acknowledged, or written); returns an error to end the run,
// after which what is in `handled` is still committed.
using BatchHandler = std::function<absl::Status(const std::vector<Record>& batch,
                                                std::map<uint32_t, uint64_t>& handled)>;

// Consumes the one input as group component.<name> until a stop signal or an error. Offsets
// are committed after the handler has dealt with their records; a commit the server could not
// take (it restarts, say) is tried again after the next batch and before exiting.
absl::Status ConsumeLoop(const ComponentEnv& env, StopSignal& stop, const BatchHandler& handle) {
  client::ConsumerOptions options;
  options.address = env.address;
  options.token = env.token;
  options.topic = env.inputs[0];
  options.group = absl::StrCat("component.", env.name);
  // The same id on every start: a restarted program replaces its predecessor's membership at
  // once instead of waiting for the server to notice the old stream is gone.
  options.consumer_id = options.group;
  options.max_batch = kMaxBatchRecords;
  options.max_buffered_records = kReadAheadRecords;
  client::Consumer consumer(std::move(options));

  std::map<uint32_t, uint64_t> uncommitted;
  auto commit = [&]() -> absl::Status {
    for (auto it = uncommitted.begin(); it != uncommitted.end();) {
      absl::Status s = consumer.Commit(it->first, it->second);
      if (!s.ok()) {
        return Annotate(s, absl::StrCat("committing ", env.inputs[0], "/", it->first, " at ",
                                        it->second));
      }
      it = uncommitted.erase(it);
    }
    return absl::OkStatus();
  };
  auto retryable = [](const absl::Status& s) {
    return s.code() == absl::StatusCode::kUnavailable ||
           s.code() == absl::StatusCode::kDeadlineExceeded;
  };

  absl::Status result;
  while (!stop.stopping()) {
    absl::StatusOr<std::vector<Record>> batch = consumer.Poll(kPollTimeout);
    if (!batch.ok()) {
      result = Annotate(batch.status(), absl::StrCat("consuming ", env.inputs[0]));
      break;
    }
    if (batch->empty()) continue;
    std::map<uint32_t, uint64_t> handled;
    result = handle(*batch, handled);
    for (const auto& [partition, next] : handled) uncommitted[partition] = next;
    absl::Status committed = commit();
    if (!result.ok()) break;
    if (!committed.ok()) {
      if (!retryable(committed)) {
        result = committed;
        break;
      }
      LogError(env.name, committed);  // the offsets stay in `uncommitted` for the next try
    }
  }
  absl::Status committed = commit();
  consumer.Close();
  if (result.ok()) result = committed;
  return result;
}

// Collects the outputs of one input record, with ids derived from it; they are published
// once Process returns OK, so a failing record publishes nothing.
class PublishingEmitter : public Emitter {
 public:
  PublishingEmitter(const ComponentEnv& env, client::Publisher& publisher, PublishResults& results)
      : env_(env), publisher_(publisher), results_(results) {}

  void Begin(const Record& in) {
    in_ = &in;
    pending_.clear();
  }

  absl::Status Emit(size_t output, client::Event event) override {
    if (output >= env_.outputs.size()) return NoSuchOutput(output, env_);
    event.topic = env_.outputs[output];
    event.id = absl::StrCat(env_.name, ":", in_->partition, ":", in_->offset, ":", pending_.size());
    if (!event.timestamp) event.timestamp = in_->event.timestamp;
    pending_.push_back(std::move(event));
    return absl::OkStatus();
  }

  // Hands the record's outputs to the publisher (acks arrive later, in results_).
  void Publish() {
    for (client::Event& event : pending_) {
      publisher_.Publish(std::move(event),
                         [this](absl::StatusOr<client::Ack> ack) { results_.Add(ack.status()); });
    }
    pending_.clear();
  }

 private:
  const ComponentEnv& env_;
  client::Publisher& publisher_;
  PublishResults& results_;
  const Record* in_ = nullptr;
  std::vector<client::Event> pending_;
};

absl::Status RunTransform(Transform& transform, const ComponentEnv& env, StopSignal& stop) {
  if (env.inputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a transform reads exactly one input topic; NODATA_INPUTS has ", env.inputs.size()));
  }
  if (env.outputs.empty()) {
    return absl::InvalidArgumentError("a transform needs an output topic; NODATA_OUTPUTS is empty");
  }
  if (absl::Status s = transform.Open(env); !s.ok()) return Annotate(s, "opening the transform");
  LogInfo(env.name, absl::StrCat("transform ", env.inputs[0], " -> ",
                                 absl::StrJoin(env.outputs, ",")));
  PublishResults results;  // before the publisher, whose callbacks write to it
  client::Publisher publisher(PublisherOptionsFor(env));
  PublishingEmitter emitter(env, publisher, results);
  // A batch's outputs are in flight together; its offsets are committed once all are acked.
  absl::Status status = ConsumeLoop(
      env, stop,
      [&](const std::vector<Record>& batch, std::map<uint32_t, uint64_t>& handled) {
        std::map<uint32_t, uint64_t> processed;
        absl::Status failed;
        for (const Record& r : batch) {
          emitter.Begin(r);
          absl::Status s = transform.Process(r, emitter);
          if (!s.ok()) {
            failed = Annotate(s, absl::StrCat("processing ", env.inputs[0], "/", r.partition,
                                              "/", r.offset));
            break;
          }
          emitter.Publish();
          processed[r.partition] = r.offset + 1;
        }
        publisher.Flush();
        if (absl::Status published = results.Take(); !published.ok()) return published;
        handled = std::move(processed);
        return failed;
      });
  publisher.Close();
  return status;
}

absl::Status RunSink(Sink& sink, const ComponentEnv& env, StopSignal& stop) {
  if (env.inputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a sink reads exactly one input topic; NODATA_INPUTS has ", env.inputs.size()));
  }
  if (absl::Status s = sink.Open(env); !s.ok()) return Annotate(s, "opening the sink");
  LogInfo(env.name, absl::StrCat("sink from ", env.inputs[0]));
  return ConsumeLoop(env, stop,
                     [&](const std::vector<Record>& batch, std::map<uint32_t, uint64_t>& handled) {
                       if (absl::Status s = sink.Write(batch); !s.ok()) {
                         return Annotate(s, absl::StrCat("writing ", batch.size(), " record(s)"));
                       }
                       for (const Record& r : batch) handled[r.partition] = r.offset + 1;
                       return absl::OkStatus();
                     });
}

class SourceContextImpl : public SourceContext {
 public:
  SourceContextImpl(const ComponentEnv& env, StopSignal& stop)
      : env_(env), stop_(stop), publisher_(PublisherOptionsFor(env)) {}

  std::future<absl::StatusOr<client::Ack>> Publish(size_t output, client::Event event) override {
    // Shared by the callback (std::function must be copyable) and this frame.
    auto promise = std::make_shared<std::promise<absl::StatusOr<client::Ack>>>();
    std::future<absl::StatusOr<client::Ack>> future = promise->get_future();
    if (output >= env_.outputs.size()) {
      absl::Status s = NoSuchOutput(output, env_);
      results_.Add(s);
      promise->set_value(s);
      return future;
    }
    event.topic = env_.outputs[output];
    publisher_.Publish(std::move(event), [this, promise](absl::StatusOr<client::Ack> ack) {
      results_.Add(ack.status());
      promise->set_value(std::move(ack));
    });
    return future;
  }

  void Flush() override { publisher_.Flush(); }
  bool stopping() const override { return stop_.stopping(); }
  bool WaitForStop(std::chrono::milliseconds timeout) override { return stop_.WaitFor(timeout); }
  const ComponentEnv& env() const override { return env_; }

  // Flushes and stops the publisher; the first failed publish of the run, if any.
  absl::Status Close() {
    publisher_.Close();
    return results_.Take();
  }

 private:
  const ComponentEnv& env_;
  StopSignal& stop_;
  PublishResults results_;
  client::Publisher publisher_;
};

absl::Status RunSource(Source& source, const ComponentEnv& env, StopSignal& stop) {
  if (env.outputs.empty()) {
    return absl::InvalidArgumentError("a source needs an output topic; NODATA_OUTPUTS is empty");
  }
  LogInfo(env.name, absl::StrCat("source -> ", absl::StrJoin(env.outputs, ",")));
  SourceContextImpl ctx(env, stop);
  absl::Status ran = source.Run(ctx);
  absl::Status published = ctx.Close();
  if (!ran.ok()) return ran;
  return published;
}

template <typename Body>
int Main(Body body) {
  absl::StatusOr<ComponentEnv> env = ComponentEnv::FromEnvironment();
  if (!env.ok()) {
    LogError(GetEnv("NODATA_COMPONENT").value_or(""), env.status());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<StopSignal>> stop = StopSignal::Install();
  if (!stop.ok()) {
    LogError(env->name, stop.status());
    return 1;
  }
  absl::Status status;
  // The SDK throws nothing; this is for exceptions from the program's own code.
  try {
    status = body(*env, **stop);
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("uncaught exception: ", e.what()));
  }
  if (!status.ok()) {
    LogError(env->name, status);
    return 1;
  }
  LogInfo(env->name, "stopped");
  return 0;
}

}  // namespace

absl::StatusOr<ComponentEnv> ComponentEnv::FromEnvironment() {
  ComponentEnv env;
  env.address = GetEnv("NODATA_ADDR").value_or("");
  if (env.address.empty()) {
    return absl::InvalidArgumentError(
        "NODATA_ADDR is not set: it must hold host:port of the nodata gRPC listener (the server "
        "sets it when it starts a program component)");
  }
  env.name = GetEnv("NODATA_COMPONENT").value_or("");
  if (env.name.empty()) {
    return absl::InvalidArgumentError(
        "NODATA_COMPONENT is not set: it must hold the component's name");
  }
  absl::StatusOr<std::vector<std::string>> inputs = TopicList("NODATA_INPUTS");
  if (!inputs.ok()) return inputs.status();
  env.inputs = *std::move(inputs);
  absl::StatusOr<std::vector<std::string>> outputs = TopicList("NODATA_OUTPUTS");
  if (!outputs.ok()) return outputs.status();
  env.outputs = *std::move(outputs);
  env.config = GetEnv("NODATA_CONFIG").value_or("");
  env.token = GetEnv("NODATA_TOKEN").value_or("");
  return env;
}

int RunComponent(Transform& transform) {
  return Main([&](const ComponentEnv& env, StopSignal& stop) {
    return RunTransform(transform, env, stop);
  });
}

int RunComponent(Sink& sink) {
  return Main([&](const ComponentEnv& env, StopSignal& stop) { return RunSink(sink, env, stop); });
}

int RunComponent(Source& source) {
  return Main(
      [&](const ComponentEnv& env, StopSignal& stop) { return RunSource(source, env, stop); });
}

}  // namespace nodata::component
