#include "components/component_log.h"

#include <utility>

#include "common/time.h"
#include "spdlog/spdlog.h"

namespace nodata::components {

const char* LogLevelName(int level) {
  switch (level) {
    case 0: return "debug";
    case 1: return "info";
    case 2: return "warn";
    default: return level < 0 ? "debug" : "error";
  }
}

void ComponentLog::Append(std::string_view stream, int level, std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.size() > kMaxLineBytes) text = text.substr(0, kMaxLineBytes);
  if (level >= 3) {
    spdlog::error("component {} [{}]: {}", name_, stream, text);
  } else if (level == 2) {
    spdlog::warn("component {} [{}]: {}", name_, stream, text);
  } else {
    spdlog::debug("component {} [{}]: {}", name_, stream, text);
  }
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    LogLine line{next_seq_++, NowMicros(), std::string(stream), level, std::string(text)};
    bytes_ += line.text.size();
    lines_.push_back(std::move(line));
    while (lines_.size() > kMaxLines || bytes_ > kMaxBytes) {
      bytes_ -= lines_.front().text.size();
      lines_.pop_front();
    }
  }
  Notify();
}

std::vector<LogLine> ComponentLog::Read(uint64_t after, size_t max) {
  absl::MutexLock lock(&mu_);
  std::vector<LogLine> out;
  if (lines_.empty() || lines_.back().seq <= after) return out;
  // Seqs are consecutive in the deque: index straight to the first line after `after`.
  const uint64_t first = lines_.front().seq;
  size_t i = after < first ? 0 : static_cast<size_t>(after - first + 1);
  for (; i < lines_.size() && out.size() < max; ++i) out.push_back(lines_[i]);
  return out;
}

uint64_t ComponentLog::SeqBeforeLast(size_t n) {
  absl::MutexLock lock(&mu_);
  if (lines_.empty()) return next_seq_ - 1;
  if (n == 0 || n >= lines_.size()) return lines_.front().seq - 1;
  return lines_[lines_.size() - n].seq - 1;
}

uint64_t ComponentLog::Watch(std::function<void()> on_new) {
  absl::MutexLock lock(&watch_mu_);
  const uint64_t token = next_token_++;
  watchers_.emplace(token, std::move(on_new));
  return token;
}

void ComponentLog::Unwatch(uint64_t token) {
  absl::MutexLock lock(&watch_mu_);
  watchers_.erase(token);
}

void ComponentLog::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
  }
  Notify();
}

bool ComponentLog::closed() {
  absl::MutexLock lock(&mu_);
  return closed_;
}

void ComponentLog::Notify() {
  absl::MutexLock lock(&watch_mu_);
  for (auto& [token, on_new] : watchers_) on_new();
}

}  // namespace nodata::components
