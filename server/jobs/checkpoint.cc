#include "server/jobs/checkpoint.h"

#include <iostream>

namespace sampled::server {

Checkpointer::Checkpointer(std::shared_ptr<JobStore> store, std::string job_id, CheckpointPolicy policy,
                           int64_t saved_step)
    : store_(std::move(store)), job_id_(std::move(job_id)), policy_(policy), last_step_(saved_step) {}

void Checkpointer::AfterStep(int64_t step, const std::function<std::string()>& serialize) {
  if (step == last_step_) return;
  const absl::Duration since = absl::Now() - last_time_;
  const bool due = (policy_.every_steps > 0 && step - last_step_ >= policy_.every_steps) || since >= policy_.every;
  // The cost bound: the last write's duration is at most max_cost of the time since it.
  if (!due || since * policy_.max_cost < last_cost_) return;
  Write(step, serialize);
}

void Checkpointer::Now(int64_t step, const std::function<std::string()>& serialize) {
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
