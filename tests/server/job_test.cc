#include "server/jobs/flow_job.h"

#include <memory>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/common/rng.h"
#include "core/targets/empirical_target.h"

namespace sampled::server {
namespace {

std::shared_ptr<FlowJob> MakeJob() {
  Rng rng(1);
  Points x(50, 2);
  rng.FillNormal(x.data(), x.size());
  std::shared_ptr<const Target> target(*EmpiricalTarget::Create(x));
  JobSnapshot identity;
  identity.id = "j_test";
  identity.session_id = "s_test";
  identity.kind = "flow";
  FlowJobSpec spec;
  spec.config.method = "sd";
  InitialParticles init;
  init.count = 20;
  auto job = FlowJob::Create(identity, spec, target, init, nullptr);
  EXPECT_TRUE(job.ok()) << job.status();
  return *job;
}

TEST(FlowJobTest, RunsAreIdentifiedByGeneration) {
  auto job = MakeJob();
  // The first run (generation 0) is cancelled while queued: it must not run later.
  ASSERT_TRUE(job->Cancel().ok());
  auto requeued = job->Requeue();
  ASSERT_TRUE(requeued.ok());
  EXPECT_EQ(requeued->previous, JobState::kCancelled);
  EXPECT_EQ(requeued->generation, 1u);
  FlowRun stale = job->Run(/*generation=*/0, 1000, false);
  EXPECT_EQ(stale.status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(job->Snapshot().step, 0);
  EXPECT_EQ(job->state(), JobState::kQueued);  // still waiting for its own run
  FlowRun own = job->Run(/*generation=*/1, 5, true);
  ASSERT_TRUE(own.status.ok());
  EXPECT_EQ(own.stats.size(), 5u);
  const JobSnapshot s = job->Snapshot();
  EXPECT_EQ(s.step, 5);
  EXPECT_EQ(s.total_steps, 5);
  EXPECT_EQ(s.state, JobState::kSucceeded);
  // A second requeue supersedes the first: only the newest generation runs.
  auto g2 = job->Requeue();
  ASSERT_TRUE(g2.ok());
  EXPECT_EQ(job->Requeue().status().code(), absl::StatusCode::kFailedPrecondition);  // already queued
  EXPECT_EQ(job->Run(1, 3, false).status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(job->Run(g2->generation, 3, false).status.ok());
  EXPECT_EQ(job->Snapshot().step, 8);
}

TEST(FlowJobTest, AClosedJobNeverRunsAgain) {
  auto job = MakeJob();
  ASSERT_TRUE(job->Run(0, 2, false).status.ok());
  EXPECT_FALSE(job->Close());  // it had ended: nothing to cancel
  auto requeue = job->Requeue();
  EXPECT_EQ(requeue.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(requeue.status().message(), ::testing::HasSubstr("session was deleted"));
  auto queued = MakeJob();
  EXPECT_TRUE(queued->Close());  // queued: cancelled now
  EXPECT_EQ(queued->state(), JobState::kCancelled);
  EXPECT_EQ(queued->Run(0, 5, false).status.code(), absl::StatusCode::kCancelled);
}

class RecordingStore : public JobStore {
 public:
  absl::Status SaveCheckpoint(const std::string&, std::string_view) override {
    ++checkpoints;
    return absl::OkStatus();
  }
  void SaveSnapshot(const JobSnapshot& s) override { snapshots.push_back(s.state); }
  int checkpoints = 0;
  std::vector<JobState> snapshots;
};

TEST(FlowJobTest, ACancelAfterShutdownBeganLeavesTheJobToResume) {
  auto job = MakeJob();
  auto store = std::make_shared<RecordingStore>();
  job->AttachStore(store, CheckpointPolicy{}, /*saved_step=*/0);
  job->Interrupt();  // the server shuts down while the job waits
  ASSERT_TRUE(job->interrupted());
  absl::StatusOr<JobSnapshot> cancel = job->Cancel();
  EXPECT_EQ(cancel.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(cancel.status().message(), ::testing::HasSubstr("resumes at its next start"));
  EXPECT_TRUE(job->interrupted());  // still kept unfinished: its record says it resumes
  EXPECT_TRUE(store->snapshots.empty());
}

TEST(FlowJobTest, ParticleReadsOfAnIdleJobAreServedAtOnce) {
  auto job = MakeJob();
  bool served = false;
  job->ReadParticles([&](absl::StatusOr<Points> p, int64_t step) {
    served = true;
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->rows(), 20);
    EXPECT_EQ(step, 0);
  });
  EXPECT_TRUE(served);
}

}  // namespace
}  // namespace sampled::server
