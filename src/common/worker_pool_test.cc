#include "common/worker_pool.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace nodata {
namespace {

TEST(WorkerPool, RunsEveryJobOnItsThreads) {
  std::atomic<int> done{0};
  {
    WorkerPool pool(3);
    for (int i = 0; i < 100; ++i) pool.Schedule([&] { done.fetch_add(1); });
    pool.WaitIdle();
    EXPECT_EQ(done.load(), 100);
  }
}

TEST(WorkerPool, DestructorRunsQueuedJobsAndTheJobsTheyQueue) {
  std::atomic<int> done{0};
  {
    WorkerPool pool(1);
    absl::Notification release;
    pool.Schedule([&] { release.WaitForNotification(); });
    pool.Schedule([&] {
      done.fetch_add(1);
      pool.Schedule([&] { done.fetch_add(1); });
    });
    release.Notify();
  }
  EXPECT_EQ(done.load(), 2);
}

TEST(WorkerPool, DelayedJobRunsAfterItsDelayNotBefore) {
  WorkerPool pool(2);
  absl::Notification ran;
  const absl::Time start = absl::Now();
  absl::Time at;
  pool.ScheduleAfter(absl::Milliseconds(200), [&] {
    at = absl::Now();
    ran.Notify();
  });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(at - start, absl::Milliseconds(200));
}

TEST(WorkerPool, AnEarlierDelayedJobOvertakesALaterOne) {
  WorkerPool pool(1);
  absl::Notification early;
  std::atomic<bool> late_ran{false};
  pool.ScheduleAfter(absl::Seconds(30), [&] { late_ran = true; });
  pool.ScheduleAfter(absl::Milliseconds(10), [&] { early.Notify(); });
  // The one worker waits for the 30 s deadline; the new job must wake it.
  ASSERT_TRUE(early.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_FALSE(late_ran.load());
}

TEST(WorkerPool, DestructorDropsDelayedJobsNotYetDue) {
  std::atomic<bool> ran{false};
  {
    WorkerPool pool(1);
    pool.ScheduleAfter(absl::Seconds(60), [&] { ran = true; });
  }
  EXPECT_FALSE(ran.load());
}

}  // namespace
}  // namespace nodata
