// A component's log: the latest lines it wrote (a program's stdout and stderr, a WebAssembly
// component's `log` import and WASI writes) and what the server says about it, kept in memory
// and handed to readers that follow it (TailComponentLog, `nodata component logs -f`).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace nodata::components {

struct LogLine {
  uint64_t seq = 0;  // 1, 2, ... per component
  int64_t time_us = 0;
  std::string stream;  // "stdout" | "stderr" | "log" | "server"
  int level = 1;       // 0 debug, 1 info, 2 warn, 3 error
  std::string text;
};

const char* LogLevelName(int level);  // "debug", "info", "warn", "error"

// Safe for concurrent use.
class ComponentLog {
 public:
  static constexpr size_t kMaxLines = 10'000;
  static constexpr size_t kMaxBytes = 4u << 20;
  static constexpr size_t kMaxLineBytes = 4096;  // longer lines are cut there

  explicit ComponentLog(std::string name) : name_(std::move(name)) {}

  // Adds a line (cut at kMaxLineBytes; a trailing newline is dropped) and mirrors it to the
  // server's log at the level given.
  void Append(std::string_view stream, int level, std::string_view text);

  // Lines with seq > `after`, at most `max`.
  std::vector<LogLine> Read(uint64_t after, size_t max);
  // The seq before the latest `n` lines kept (n = 0: before every line kept).
  uint64_t SeqBeforeLast(size_t n);

  // `on_new` runs on the appending thread after each Append, and once on Close; it must be
  // quick and must not call Watch or Unwatch. Returns a token for Unwatch; once Unwatch
  // returns, `on_new` is not running and will not run again.
  uint64_t Watch(std::function<void()> on_new);
  void Unwatch(uint64_t token);

  // No more lines: the component is gone. Watchers are told once.
  void Close();
  bool closed();

 private:
  void Notify();

  const std::string name_;
  absl::Mutex mu_;
  std::deque<LogLine> lines_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;

  // Watchers run under watch_mu_, so Unwatch waits for a running one.
  absl::Mutex watch_mu_;
  uint64_t next_token_ ABSL_GUARDED_BY(watch_mu_) = 1;
  std::map<uint64_t, std::function<void()>> watchers_ ABSL_GUARDED_BY(watch_mu_);
};

}  // namespace nodata::components
