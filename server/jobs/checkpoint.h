// Where a job's checkpoints and record go when the server keeps its state (--state-dir), and when a
// running job writes a checkpoint: every `every_steps` steps or `every` of wall time, whichever comes
// first, but never so often that writing (the checkpoints so far, this one, and the one the run's end
// writes) costs more than `max_cost` of the job's wall time since its first step (a flow at the array
// limit writes 800 MB in ~4 s: it checkpoints about every 80 s, and a job shorter than ~160 s only at its
// end).
#ifndef SAMPLED_SERVER_JOBS_CHECKPOINT_H_
#define SAMPLED_SERVER_JOBS_CHECKPOINT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sampled::server {

struct JobSnapshot;

struct CheckpointPolicy {
  int64_t every_steps = 0;                   // 0: by time only
  absl::Duration every = absl::Seconds(30);  // InfiniteDuration: by steps only
  double max_cost = 0.05;                    // of the wall time between two checkpoints
};

// Implemented by the server's durable state; jobs see only this.
class JobStore {
 public:
  virtual ~JobStore() = default;
  // Replaces the job's checkpoint atomically (a failure leaves the previous one valid).
  virtual absl::Status SaveCheckpoint(const std::string& job_id, std::string_view bytes) = 0;
  // Records the job's snapshot (when it changed state).
  virtual void SaveSnapshot(const JobSnapshot& snapshot) = 0;
};

// A job's checkpoint clock: the worker's after its steps, and shutdown's for an idle job (thread-safe;
// one write at a time).
class Checkpointer {
 public:
  // `saved_step`: the step of a checkpoint already stored (-1: none).
  // `saved_cost`: how long writing it took (the estimate of the next write's cost).
  Checkpointer(std::shared_ptr<JobStore> store, std::string job_id, CheckpointPolicy policy, int64_t saved_step = -1,
               absl::Duration saved_cost = absl::ZeroDuration());

  // After a step: writes serialize() when a checkpoint is due.
  void AfterStep(int64_t step, const std::function<std::string()>& serialize);
  // Writes serialize() now (a run's end), unless the last checkpoint is of this very step.
  void Now(int64_t step, const std::function<std::string()>& serialize);

  JobStore& store() const { return *store_; }
  int64_t written() const { return written_.load(); }

 private:
  void Write(int64_t step, const std::function<std::string()>& serialize) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<JobStore> store_;
  const std::string job_id_;
  const CheckpointPolicy policy_;
  absl::Mutex mu_;
  int64_t last_step_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Time last_time_ ABSL_GUARDED_BY(mu_) = absl::Now();
  absl::Duration last_cost_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  absl::Duration spent_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();  // writing, since start_
  absl::Time start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();      // the first step seen
  std::atomic<int64_t> written_{0};              // read by other threads (tests, metrics)
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_JOBS_CHECKPOINT_H_
