// A bounded pool of threads running jobs, and jobs due after a delay: the log's fsyncs, the
// server's reads for subscribers, a subscription's auto-commit timer.
#pragma once

#include <deque>
#include <map>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace nodata {

// Safe for concurrent use. The destructor runs the jobs already queued (and those they queue),
// drops delayed jobs not yet due, then joins.
class WorkerPool {
 public:
  using Job = absl::AnyInvocable<void() &&>;

  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Schedule(Job job);
  // Runs `job` on the pool once `delay` has passed. An idle worker waits for the earliest one
  // on the pool's condition with a deadline: no thread polls.
  void ScheduleAfter(absl::Duration delay, Job job);
  // Returns once no job is queued or running (delayed jobs not yet due do not count).
  void WaitIdle();

 private:
  void Loop();
  // Moves the delayed jobs due by `now` to the queue.
  void TakeDueLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  absl::CondVar work_;  // a job queued, a delayed job added, or stopping
  absl::CondVar idle_;  // a job finished
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, Job> delayed_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace nodata
