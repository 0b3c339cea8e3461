#include "server/jobs/checkpoint.h"

#include <iostream>

namespace sampled::server {

Checkpointer::Checkpointer(std::shared_ptr<JobStore> store, std::string job_id, CheckpointPolicy policy,
                           int64_t saved_step, absl::Duration saved_cost)
    : store_(std::move(store)),
      job_id_(std::move(job_id)),
      policy_(policy),
      last_step_(saved_step),
      last_cost_(saved_cost) {}

void Checkpointer::AfterStep(int64_t step, const std::function<std::string()>& serialize) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (start_ == absl::InfinitePast()) start_ = now;  // the job's time starts at its first step
  if (step == last_step_) return;
  const absl::Duration since = now - last_time_;
  const bool due = (policy_.every_steps > 0 && step - last_step_ >= policy_.every_steps) || since >= policy_.every;
  // The cost bound, over the job's whole time: what was spent writing, this write and the one the run's
  // end will need (each estimated by the last) stay within max_cost of the time since the first step.
  if (!due || spent_ + 2 * last_cost_ > (now - start_) * policy_.max_cost) return;
  Write(step, serialize);
}

void Checkpointer::Now(int64_t step, const std::function<std::string()>& serialize) {
  absl::MutexLock lock(&mu_);
  if (step == last_step_) return;
  Write(step, serialize);
}

void Checkpointer::Write(int64_t step, const std::function<std::string()>& serialize) {
  const absl::Time t0 = absl::Now();
  absl::Status s;
  try {
    s = store_->SaveCheckpoint(job_id_, serialize());
  } catch (const std::exception& e) {
    s = absl::ResourceExhaustedError(std::string("serialising the checkpoint failed: ") + e.what());
  }
  const absl::Time t1 = absl::Now();
  last_cost_ = t1 - t0;
  spent_ += last_cost_;
  last_time_ = t1;
  if (!s.ok()) {
    // The previous checkpoint stays valid; the job goes on and tries again when the next one is due.
    std::cerr << "sampled: checkpoint of job " << job_id_ << " at step " << step << " failed: " << s << "\n";
    return;
  }
  last_step_ = step;
  ++written_;
}

}  // namespace sampled::server
