// A particle flow run as a job: owns the Flow and its FlowState, and the loop that steps it on a worker
// thread, checking cancellation between steps (and between a step's blocks), evaluating every
// `eval_every` steps, and publishing progress. A run is taken in slices (RunSlice), so that a worker can
// turn to another session's work between two steps of a long run.
//
// Thread-safe. The FlowState is WorkerOwned: it belongs to the worker while the job runs; at other times
// it is read under the job's lock.
#ifndef SAMPLED_SERVER_JOBS_FLOW_JOB_H_
#define SAMPLED_SERVER_JOBS_FLOW_JOB_H_

#include <deque>
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

// Statistics a run returns: the last kMaxReturnedStats steps (a StepFlow of 1e8 steps must not hold
// gigabytes of them, nor answer past protobuf's 2 GiB).
constexpr int64_t kMaxReturnedStats = 10000;

// One run of `steps` steps: what it was asked and where it is. Owned by the tasks that take its slices.
struct FlowRun {
  uint64_t generation = 0;
  int64_t steps = 0;
  bool collect_stats = false;
  // Progress (the worker's):
  bool started = false;
  bool ended = false;
  int64_t taken = 0;
  absl::Time start;
  int64_t evaluated_at = -1;
  std::deque<TimedStepStats> stats;  // the last kMaxReturnedStats
  int64_t stats_omitted = 0;
  absl::Status status;  // once ended: OK, CANCELLED, or the step's error
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

  // A job as the state directory kept it: `snapshot` (queued for a run that resumes, or ended) with its
  // state from a checkpoint. INVALID_ARGUMENT / FAILED_PRECONDITION as Create.
  static absl::StatusOr<std::shared_ptr<FlowJob>> Restore(JobSnapshot snapshot, FlowJobSpec spec,
                                                          std::shared_ptr<const Target> target, FlowState state,
                                                          StepObserver on_step);

  // The state as a checkpoint (SerializeFlowState): for the first one, before the job runs.
  std::string SerializeState() const;
  int64_t step() const;
  void FlushCheckpoint() override;

  // Takes the next slice of `run` on the calling thread (a worker): the first slice moves the job from
  // queued to running (a run that no longer applies, because the job was cancelled, closed or requeued
  // for a newer run, ends CANCELLED without touching the flow); steps follow until the run ends, or until
  // `slice` has passed and `others_waiting()` says another task waits for the worker. Returns true when
  // the run has steps left (queue it again), false once it ended (run.status says how).
  bool RunSlice(FlowRun& run, absl::Duration slice, const std::function<bool()>& others_waiting);
  // Ends a run that waited for its next slice when the queue was closed (shutdown): cancelled.
  void AbandonRun(FlowRun& run);

  // A whole run on the calling thread (tests): RunSlice until it ends.
  FlowRun Run(uint64_t generation, int64_t steps, bool collect_stats);

  // Prepares another run of an ended job (interactive stepping): succeeded | cancelled -> queued.
  // Returns the state it left (for UndoRequeue) and the run's generation.
  absl::StatusOr<Requeued> Requeue() { return MarkRequeued(); }
  void UndoRequeue(JobState previous) { Job::UndoRequeue(previous); }

  // Calls done(particles, step) with a copy of the particles: at once when the job is not running,
  // otherwise from the worker between two steps (RESOURCE_EXHAUSTED when the copy cannot be made).
  using ParticlesDone = std::function<void(absl::StatusOr<Points> particles, int64_t step)>;
  void ReadParticles(ParticlesDone done);

  const FlowJobSpec& spec() const { return spec_; }
  const std::shared_ptr<const Target>& target() const { return target_; }

 private:
  // Checks the state and the metrics, and completes the identity (method, particles, dim).
  static absl::StatusOr<std::shared_ptr<FlowJob>> Make(JobSnapshot identity, FlowJobSpec spec,
                                                       std::shared_ptr<const Target> target, std::unique_ptr<Flow> flow,
                                                       FlowState state, StepObserver on_step);
  FlowJob(JobSnapshot identity, FlowJobSpec spec, std::shared_ptr<const Target> target,
          std::unique_ptr<Flow> flow, FlowState state, StepObserver on_step);

  // Serves particle reads that arrived while running (worker only).
  void ServePendingReads();
  // flow_->Step with exceptions turned into a status; a cancel between the step's blocks is CANCELLED
  // with the state unchanged.
  absl::Status GuardedStep(StepStats& stats);
  // The last evaluation of a run, the transition to its terminal state, the reads that waited.
  void EndRun(FlowRun& run);
  absl::StatusOr<std::map<std::string, double>> Evaluate();
  int64_t StateBytes() const;

  const FlowJobSpec spec_;
  const std::shared_ptr<const Target> target_;
  const std::vector<std::string> eval_metrics_;
  const StepObserver on_step_;
  std::unique_ptr<Flow> flow_;   // stepped by the worker only, with state_
  WorkerOwned<FlowState> state_;
  // A copy of the particles, or RESOURCE_EXHAUSTED.
  static absl::StatusOr<Points> CopyParticles(const FlowState& state);
  std::vector<ParticlesDone> pending_reads_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> has_pending_reads_{false};
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_JOBS_FLOW_JOB_H_
