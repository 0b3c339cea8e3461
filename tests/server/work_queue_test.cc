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

}  // namespace
}  // namespace sampled::server
