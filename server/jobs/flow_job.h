// A particle flow run as a job: owns the Flow and its FlowState, and the loop that steps it on a worker
// thread, checking cancellation between steps, evaluating every `eval_every` steps, and publishing
// progress.
//
// Thread-safe. The FlowState belongs to the worker while the job runs; at other times it is read under
// the job's lock.
#ifndef SAMPLED_SERVER_JOBS_FLOW_JOB_H_
#define SAMPLED_SERVER_JOBS_FLOW_JOB_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/targets/target.h"
#include "server/jobs/job.h"

namespace sampled::server {

struct FlowJobSpec {
  FlowConfig config;
  int64_t steps = 0;
  int64_t eval_every = 0;
  std::vector<std::string> eval_metrics;  // empty: the target's defaults
};

// Statistics of a step with its wall time.
struct TimedStepStats {
  StepStats stats;
  double seconds = 0;
};

// Called after every step (for the server's metrics).
using StepObserver = std::function<void(const std::string& method, int64_t particles, double seconds)>;

class FlowJob final : public Job {
 public:
  // Builds the flow and the initial particles. INVALID_ARGUMENT / FAILED_PRECONDITION as CreateFlow and
  // MakeInitialState, or for an unknown or unsupported evaluation metric.
  static absl::StatusOr<std::shared_ptr<FlowJob>> Create(JobSnapshot identity, FlowJobSpec spec,
                                                         std::shared_ptr<const Target> target,
                                                         const InitialParticles& init, StepObserver on_step);

  struct RunResult {
    absl::Status status;
    std::vector<TimedStepStats> stats;  // when collected
  };
  // Runs `steps` steps on the calling thread (a worker), from queued to a terminal state; `generation`
  // names the run (0 for the first; Requeue returns the next). A run that no longer applies returns
  // CANCELLED without touching the flow.
  RunResult Run(uint64_t generation, int64_t steps, bool collect_stats);

  // Prepares another run of an ended job (interactive stepping): succeeded | cancelled -> queued.
  // Returns the state it left (for UndoRequeue) and the run's generation.
  absl::StatusOr<Requeued> Requeue() { return MarkRequeued(); }
  void UndoRequeue(JobState previous) { Job::UndoRequeue(previous); }

  // Calls done(particles, step) with a copy of the particles: at once when the job is not running,
  // otherwise from the worker between two steps.
  void ReadParticles(std::function<void(Points particles, int64_t step)> done);

  const FlowJobSpec& spec() const { return spec_; }
  const std::shared_ptr<const Target>& target() const { return target_; }

 private:
  FlowJob(JobSnapshot identity, FlowJobSpec spec, std::shared_ptr<const Target> target,
          std::unique_ptr<Flow> flow, FlowState state, StepObserver on_step);

  // Serves particle reads that arrived while running (worker only).
  void ServePendingReads();
  // flow_->Step with exceptions turned into a status.
  absl::Status GuardedStep(StepStats& stats);
  absl::StatusOr<std::map<std::string, double>> Evaluate();
  int64_t StateBytes() const;

  const FlowJobSpec spec_;
  const std::shared_ptr<const Target> target_;
  const std::vector<std::string> eval_metrics_;
  const StepObserver on_step_;
  std::unique_ptr<Flow> flow_;
  FlowState state_;  // see the class comment
  std::vector<std::function<void(Points, int64_t)>> pending_reads_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> has_pending_reads_{false};
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_JOBS_FLOW_JOB_H_
