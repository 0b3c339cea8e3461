// A training run as a job: owns the Trainer and its TrainingState, and the loop that steps it on a worker
// thread, checking cancellation between iterations, evaluating the sampler every `eval_every` iterations
// (KSD of a fresh draw), keeping the best checkpoint and a bounded history, and leaving a sampler in its
// session when it ends (see LeavesSampler).
//
// Thread-safe. The TrainingState belongs to the worker while the job runs.
#ifndef SAMPLED_SERVER_JOBS_TRAINING_JOB_H_
#define SAMPLED_SERVER_JOBS_TRAINING_JOB_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/targets/target.h"
#include "core/training/sampler.h"
#include "core/training/trainer.h"
#include "server/jobs/job.h"

namespace sampled::server {

struct TrainingJobSpec {
  training::TrainSettings settings;
  int64_t steps = 0;
  int64_t eval_every = 0;   // 0: evaluate only at the end
  int64_t eval_draws = 500;
  std::vector<float> from_sampler;  // empty: start from the seeded initialisation
  std::string from_sampler_id;
};

// One row of a job's history. A job keeps at most kHistoryRows iterations (evenly spaced in steps: every
// iteration until full, then every 2nd, 4th, ...) and, apart, at most kHistoryRows evaluations (thinned the
// same way by their count); History() merges the two by step.
struct HistoryRow {
  int64_t step = 0;
  double score_loss = 0, sampler_loss = 0, sampler_grad_norm = 0, seconds = 0;
  std::map<std::string, double> metrics;  // when evaluated at this step
};
constexpr int64_t kHistoryRows = 1024;

// What a run leaves behind, for the session to store.
struct TrainedSampler {
  std::shared_ptr<const training::SamplerModel> model;
  int64_t steps = 0;
  std::map<std::string, double> final_metrics, best_metrics;
  int64_t best_step = -1;
};
// Stores the sampler and returns its id (or why it could not: the session is gone or full).
using SamplerSink = std::function<absl::StatusOr<std::string>(TrainedSampler)>;
// Called after every iteration (for the server's metrics).
using TrainingObserver = std::function<void(const std::string& method, double seconds)>;

class TrainingJob final : public Job {
 public:
  // Builds the trainer and the initial state. INVALID_ARGUMENT / FAILED_PRECONDITION as CreateTrainer and
  // MakeInitialTrainingState.
  static absl::StatusOr<std::shared_ptr<TrainingJob>> Create(JobSnapshot identity, TrainingJobSpec spec,
                                                             std::shared_ptr<const Target> target,
                                                             std::string provenance_json, SamplerSink sink,
                                                             TrainingObserver on_step);

  // A job as the state directory kept it: `snapshot` (queued for a run that resumes, or ended) and a
  // checkpoint written by SerializeCheckpoint (the state, the run's progress and its history).
  // INVALID_ARGUMENT / FAILED_PRECONDITION as Create, DATA_LOSS for a checkpoint that does not parse.
  static absl::StatusOr<std::shared_ptr<TrainingJob>> Restore(JobSnapshot snapshot, TrainingJobSpec spec,
                                                              std::shared_ptr<const Target> target,
                                                              std::string provenance_json, SamplerSink sink,
                                                              TrainingObserver on_step, std::string_view checkpoint);
  // The whole job as a checkpoint: for the first one, before the job runs.
  std::string SerializeCheckpoint() const;

  // Takes the next slice of the job's run on the calling thread (a worker): the first moves it from
  // queued to running; iterations follow until the run ends, or until `slice` has passed and
  // `others_waiting()` says another task waits for the worker. Returns true when iterations are left
  // (queue it again), false once the job ended.
  bool RunSlice(absl::Duration slice, const std::function<bool()>& others_waiting);
  // Ends a run that waited for its next slice when the queue was closed (shutdown): cancelled.
  void AbandonRun();
  // The whole run on the calling thread (tests).
  void Run() {
    while (RunSlice(absl::InfiniteDuration(), nullptr)) {
    }
  }

  std::vector<HistoryRow> History() const;
  const TrainingJobSpec& spec() const { return spec_; }

 private:
  TrainingJob(JobSnapshot identity, TrainingJobSpec spec, std::shared_ptr<const Target> target,
              std::unique_ptr<training::Trainer> trainer, training::TrainingState state, std::string provenance_json,
              SamplerSink sink, TrainingObserver on_step);

  absl::Status GuardedStep(training::TrainStats& stats);
  // The checkpoint of `state` with the run's progress and history (SerializeCheckpoint, on the worker).
  std::string CheckpointOf(const training::TrainingState& state) const;
  // What the run leaves (a sampler), and the transition to its terminal state.
  void EndRun(absl::Status status);
  // A sampler of these weights (a score model's carries its dynamics and prior).
  training::SamplerModel ModelOf(const std::vector<float>& params) const;
  absl::StatusOr<std::map<std::string, double>> Evaluate(const std::vector<float>& params, int64_t step);
  void AppendHistory(HistoryRow row);
  // Keeps the sampler's current weights as the best checkpoint when `metrics` beat it.
  void ConsiderBest(const std::map<std::string, double>& metrics);
  int64_t StateBytes() const;

  const TrainingJobSpec spec_;
  const std::shared_ptr<const Target> target_;
  const std::string provenance_json_;
  const SamplerSink sink_;
  const TrainingObserver on_step_;
  std::unique_ptr<training::Trainer> trainer_;
  WorkerOwned<training::TrainingState> state_;
  // The run's progress (the worker's).
  bool started_ = false;
  bool ended_ = false;
  absl::Time run_start_;
  int64_t start_step_ = 0;  // the state's step when the job was made
  int64_t taken_ = 0;      // iterations of the job so far (spec_.steps in all)
  int64_t resumed_at_ = 0; // taken_ when this process's run started (a restored job's is not 0)
  int64_t evaluated_at_ = -1;
  std::map<std::string, double> last_metrics_;
  std::map<std::string, double> best_metrics_;

  mutable absl::Mutex history_mu_;
  // A bounded, evenly thinned series: rows whose index (in steps, or in evaluations) is a multiple of stride.
  struct Series {
    std::vector<std::pair<int64_t, HistoryRow>> rows;  // (index, row)
    int64_t stride = 1;
    void Add(int64_t index, HistoryRow row);
  };
  Series iterations_ ABSL_GUARDED_BY(history_mu_);
  Series evaluations_ ABSL_GUARDED_BY(history_mu_);
  int64_t evaluation_count_ ABSL_GUARDED_BY(history_mu_) = 0;
  // The metric the best checkpoint is chosen by (the target's first default metric).
  std::string best_by_;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_JOBS_TRAINING_JOB_H_
