// A small pool of threads that run fdatasync jobs, so that the partitions touched by a batch are
// synced in parallel and publishers never block a gRPC thread on the disk.
#pragma once

#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace nodata::log {

// Safe for concurrent use. The destructor runs the jobs already queued, then joins.
class Syncer {
 public:
  explicit Syncer(int threads);
  ~Syncer();
  Syncer(const Syncer&) = delete;
  Syncer& operator=(const Syncer&) = delete;

  void Schedule(absl::AnyInvocable<void() &&> job);
  // Returns once no job is queued or running.
  void WaitIdle();

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> jobs_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace nodata::log
