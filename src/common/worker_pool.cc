#include "common/worker_pool.h"

#include <utility>

namespace nodata {

WorkerPool::WorkerPool(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkerPool::~WorkerPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_.SignalAll();
  }
  for (auto& t : threads_) t.join();
}

void WorkerPool::Schedule(Job job) {
  absl::MutexLock lock(&mu_);
  jobs_.push_back(std::move(job));
  work_.Signal();
}

void WorkerPool::ScheduleAfter(absl::Duration delay, Job job) {
  absl::MutexLock lock(&mu_);
  delayed_.emplace(absl::Now() + delay, std::move(job));
  // Every idle worker recomputes its deadline: the new job may be due before the one it waits
  // for.
  work_.SignalAll();
}

void WorkerPool::TakeDueLocked(absl::Time now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    jobs_.push_back(std::move(delayed_.begin()->second));
    delayed_.erase(delayed_.begin());
  }
}

void WorkerPool::Loop() {
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      for (;;) {
        if (!delayed_.empty()) TakeDueLocked(absl::Now());
        if (!jobs_.empty()) break;
        if (stopping_) return;  // drained; delayed jobs not yet due are dropped
        if (delayed_.empty()) {
          work_.Wait(&mu_);
        } else {
          work_.WaitWithDeadline(&mu_, delayed_.begin()->first);
        }
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
    }
    std::move(job)();
    absl::MutexLock lock(&mu_);
    --running_;
    idle_.SignalAll();
  }
}

void WorkerPool::WaitIdle() {
  absl::MutexLock lock(&mu_);
  while (!jobs_.empty() || running_ > 0) idle_.Wait(&mu_);
}

}  // namespace nodata
