#include "server/jobs/work_queue.h"

#include <atomic>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"

namespace sampled::server {
namespace {

TEST(WorkQueueTest, RunsTasksAndRefusesPastTheBound) {
  WorkQueue q(1, 2);
  absl::Notification release, started;
  std::atomic<int> done{0};
  ASSERT_TRUE(q.Submit([&] {
    started.Notify();
    release.WaitForNotification();
    ++done;
  }).ok());
  started.WaitForNotification();  // the worker is busy: the next two wait in the queue
  ASSERT_TRUE(q.Submit([&] { ++done; }).ok());
  ASSERT_TRUE(q.Submit([&] { ++done; }).ok());
  const absl::Status full = q.Submit([&] { ++done; });
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(q.queued(), 2);
  release.Notify();
  EXPECT_TRUE(q.WaitIdle(absl::Seconds(60)));
  EXPECT_EQ(done.load(), 3);
  q.Close();
  EXPECT_EQ(q.Submit([] {}).code(), absl::StatusCode::kUnavailable);
}

TEST(WorkQueueTest, CloseCancelsWhatIsStillQueued) {
  WorkQueue q(1, 4);
  absl::Notification release, started;
  std::atomic<int> ran{0}, cancelled{0};
  ASSERT_TRUE(q.Submit([&] {
    started.Notify();
    release.WaitForNotification();
    ++ran;
  }).ok());
  started.WaitForNotification();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q.Submit([&] { ++ran; }, [&] { ++cancelled; }).ok());
  q.Close();
  EXPECT_EQ(cancelled.load(), 3);
  release.Notify();
  EXPECT_TRUE(q.WaitIdle(absl::Seconds(60)));
  EXPECT_EQ(ran.load(), 1);
}

TEST(WorkQueueTest, AnExceptionDoesNotKillTheWorker) {
  WorkQueue q(1, 4);
  std::atomic<int> ran{0};
  ASSERT_TRUE(q.Submit([] { throw std::runtime_error("boom"); }).ok());
  ASSERT_TRUE(q.Submit([&] { ++ran; }).ok());
  EXPECT_TRUE(q.WaitIdle(absl::Seconds(60)));
  EXPECT_EQ(ran.load(), 1);
}

}  // namespace
}  // namespace sampled::server
