#include "log/syncer.h"

namespace nodata::log {

Syncer::Syncer(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

Syncer::~Syncer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& t : threads_) t.join();
}

void Syncer::Schedule(absl::AnyInvocable<void() &&> job) {
  absl::MutexLock lock(&mu_);
  jobs_.push_back(std::move(job));
}

void Syncer::Loop() {
  for (;;) {
    absl::AnyInvocable<void() &&> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Syncer* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
            return s->stopping_ || !s->jobs_.empty();
          },
          this));
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
    }
    std::move(job)();
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

void Syncer::WaitIdle() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](Syncer* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
        return s->jobs_.empty() && s->running_ == 0;
      },
      this));
}

}  // namespace nodata::log
