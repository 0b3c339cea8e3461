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

namespace sampled::server {
namespace {

// Keys (sessions) take turns: with one worker, a sliced task of key "a" that yields lets key "b"'s task
// run before its next slice; AnyWaiting counts only other keys' tasks, so a key's own tasks run in order.
TEST(WorkQueueTest, KeysTakeTurnsBetweenSlices) {
  WorkQueue q(1, 8);
  absl::Notification started, release;
  std::vector<std::string> order;
  absl::Mutex mu;
  auto log = [&](const std::string& what) {
    absl::MutexLock lock(&mu);
    order.push_back(what);
  };
  ASSERT_TRUE(q.Submit([&] { started.Notify(); release.WaitForNotification(); }, nullptr, "hold").ok());
  started.WaitForNotification();
  int slices = 0;
  ASSERT_TRUE(q.SubmitSliced([&] {
    log("a" + std::to_string(slices));
    return ++slices < 3;
  }, nullptr, "a").ok());
  ASSERT_TRUE(q.Submit([&] { log("a-second"); }, nullptr, "a").ok());
  ASSERT_TRUE(q.Submit([&] { log("b"); }, nullptr, "b").ok());
  EXPECT_TRUE(q.AnyWaiting("hold"));
  EXPECT_TRUE(q.AnyWaiting("a"));   // b waits
  release.Notify();
  EXPECT_TRUE(q.WaitIdle(absl::Seconds(60)));
  // a's slices alternate with the other keys in ring order; a's second task after its first is done.
  EXPECT_EQ(order, (std::vector<std::string>{"a0", "b", "a1", "a2", "a-second"}));
  EXPECT_FALSE(q.AnyWaiting("a"));
}

// A task that throws has its cancel called, so whoever waits on it is answered.
TEST(WorkQueueTest, AThrowingTaskIsCancelled) {
  WorkQueue q(1, 4);
  std::atomic<int> cancelled{0};
  ASSERT_TRUE(q.Submit([] { throw std::runtime_error("boom"); }, [&] { ++cancelled; }).ok());
  EXPECT_TRUE(q.WaitIdle(absl::Seconds(60)));
  EXPECT_EQ(cancelled.load(), 1);
}

}  // namespace
}  // namespace sampled::server
