// The server's operations in core types: every RPC handler converts its request, calls one method here,
// and converts the result. Owns the session store, the job manager and the metrics.
//
// Thread-safe. Methods return quickly and never compute: work that does (flow runs, interactive steps,
// evaluations, building a flow's particles or a target's draws, checking an upload) goes to the job
// manager's workers and reports through a completion callback, called on a worker thread (or on the
// caller's thread when it fails before being queued). Every exception becomes a status.
#ifndef SAMPLED_SERVER_BACKEND_H_
#define SAMPLED_SERVER_BACKEND_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/array_codec.h"
#include "core/metrics/metric.h"
#include "server/common/charged_assembler.h"
#include "server/common/memory_budget.h"
#include "server/common/request_ids.h"
#include "server/jobs/flow_job.h"
#include "server/jobs/job_manager.h"
#include "server/jobs/training_job.h"
#include "server/metrics/server_metrics.h"
#include "server/server_options.h"
#include "server/sessions/session_manager.h"
#include "server/store/durable_state.h"

namespace sampled::server {

struct SessionView {
  SessionInfo info;
  int64_t job_count = 0;
  int64_t bytes_held = 0;
};

struct UploadSpec {
  std::string session_id;
  std::string name;
  DType dtype = DType::kFloat64;
  int64_t dim = 0;
  int64_t expected_rows = 0;
};

struct StartFlowArgs {
  std::string session_id;
  std::string target_id;
  FlowJobSpec spec;
  int64_t particle_count = 0;
  std::vector<double> init_mean;
  std::optional<double> init_std;
  std::string init_target_id;
};

struct StepFlowResult {
  JobSnapshot job;
  std::deque<TimedStepStats> stats;  // the last kMaxReturnedStats steps
  int64_t stats_omitted = 0;
};

struct DefineTargetArgs {
  std::string session_id;
  std::string name;
  std::string family;
  int64_t dim = 0;
  ParamMap params;
  int64_t sample_count = 0;
  uint64_t seed = 0;
  std::string data_target_id;
};

struct ParticlesView {
  Points particles;
  int64_t step = 0;
};

struct EvaluateArgs {
  std::string session_id;
  std::string target_id;
  std::vector<std::string> metrics;  // empty: the target's defaults
  MetricOptions options;
  std::optional<Points> samples;      // given inline, or
  std::string samples_target_id;      // a data target of the session, or
  std::string job_id;                 // a flow's particles, or
  std::string sampler_id;             // draws of a sampler
  int64_t sampler_draws = 0;          // 0: 500
  bool best_checkpoint = false;
  // Set when the client gives up: the metrics stop between blocks (CANCELLED). May be null.
  std::shared_ptr<std::atomic<bool>> stop;
  // The memory charge of inline `samples` (kCalls), held until they are measured. May be null.
  std::shared_ptr<MemoryBudget::Charge> samples_charge;
};

struct EvaluateResult {
  std::map<std::string, double> metrics;
  int64_t sample_count = 0;
};

struct StartTrainingArgs {
  std::string session_id;
  std::string target_id;
  training::TrainConfig config;
  int64_t steps = 0;
  int64_t eval_every = 0;
  int64_t eval_draws = 0;  // 0: 500
  std::string from_sampler_id;
};

struct SampleArgs {
  std::string sampler_id;
  int64_t n = 0;
  uint64_t seed = 0;
  bool best = false;
  std::optional<int64_t> steps;  // score models: reverse steps (unset: the model's default)
  bool ode = false;   // score models: the probability-flow ODE instead of the reverse SDE
};

// A Sample call in progress: what it draws from (kept alive after a delete) and whether its client left.
struct SampleStream {
  std::shared_ptr<const training::SamplerModel> model;
  bool best = false;
  uint64_t seed = 0;
  int64_t n = 0;
  int64_t dim = 0;
  int64_t blocks = 0;           // draw blocks covering n
  int64_t segment_blocks = 1;   // blocks computed per task (about 4 MiB of float32 draws; a score model's: 1)
  training::DrawOptions draw;   // score models: steps, ode, and this stream's cancel flag
  // A gm score model's prior, built once for the stream's blocks, by the first segment's worker (not the
  // handler: a prior of K d x d covariances is factorised when it is built).
  std::once_flag prior_once;
  absl::StatusOr<std::shared_ptr<const Target>> prior;
  std::atomic<bool> cancelled{false};
  absl::Time start;
};

template <typename T>
using Done = std::function<void(absl::StatusOr<T>)>;

class Backend {
 public:
  explicit Backend(const ServerOptions& options);
  ~Backend();

  const Limits& limits() const { return options_.limits; }
  MemoryBudget& memory() { return budget_; }
  RequestIds& requests() { return requests_; }
  SessionManager& sessions() { return sessions_; }
  JobManager& jobs() { return jobs_; }
  ServerMetrics& metrics() { return metrics_; }

  // Opens the state directory (options.state_dir; does nothing without one) and rebuilds what it holds:
  // sessions, targets, samplers and jobs, the unfinished jobs queued to resume from their last
  // checkpoints. An object that cannot be loaded (a corrupted file, a target that no longer builds, the
  // memory budget) is reported and answers its error when asked for; everything else loads.
  // FAILED_PRECONDITION when the directory cannot be used (another server holds it, a newer schema).
  absl::Status OpenState();
  struct RestoreReport {
    int64_t sessions = 0, targets = 0, samplers = 0, jobs = 0, resumed = 0, lost = 0;
    std::vector<std::string> problems;  // one line per object that did not load
  };
  const RestoreReport& restore_report() const { return restored_; }
  bool durable() const { return durable_ != nullptr; }

  absl::StatusOr<SessionView> CreateSession(const std::string& name);
  absl::StatusOr<SessionView> GetSession(const std::string& id);
  absl::StatusOr<Page<SessionView>> ListSessions(const PageRequest& page);
  // Cancels the session's jobs, then forgets the session, its targets and its jobs. Returns how many
  // jobs were cancelled.
  absl::StatusOr<int> DeleteSession(const std::string& id);

  absl::Status DeleteTarget(const std::string& session_id, const std::string& target_id);

  // Checks an upload's header before its data arrives (session, name, dtype, dim within limits) and
  // returns the assembler for its chunks (bounded by max_points_per_target, charged to the memory budget
  // as it grows).
  absl::StatusOr<std::unique_ptr<ChargedAssembler>> BeginUpload(const UploadSpec& spec);
  // Checks the uploaded samples on a call worker (INVALID_ARGUMENT for NaN/Inf naming the row) and stores
  // them, unless `abandoned` (may be empty) says the client gave up.
  void FinishUpload(const UploadSpec& spec, std::unique_ptr<ChargedAssembler> assembler,
                    std::function<bool()> abandoned, Done<TargetEntry> done);
  // An analytic density, or (sample_count > 0) that many exact draws from it stored as samples; or, with
  // `data_target_id`, a density defined over that data target of the session (blr; NOT_FOUND when it is
  // missing). Built on a call worker.
  void DefineTarget(DefineTargetArgs args, Done<TargetEntry> done);

  // Validates a flow request, then builds the job (its particles) on a call worker and queues its run
  // (steps > 0). RESOURCE_EXHAUSTED when a queue is full, with nothing stored.
  void StartFlow(StartFlowArgs args, Done<JobSnapshot> done);
  // Runs `steps` more steps of a job that is not queued or running, on a call worker. Returns what
  // cancels this run (a client that gave up): the run stops at the next step or block, CANCELLED.
  std::function<void()> StepFlow(const std::string& job_id, int64_t steps, Done<StepFlowResult> done);
  // Cancels the job if it is queued or running and forgets it. NOT_FOUND for an unknown id.
  absl::Status DeleteJob(const std::string& job_id);
  void ReadParticles(const std::string& job_id, Done<ParticlesView> done);
  absl::StatusOr<JobSnapshot> CancelJob(const std::string& job_id);

  void Evaluate(EvaluateArgs args, Done<EvaluateResult> done);

  // Validates a training request, builds its networks on a call worker and queues its run (see
  // TrainingJob). RESOURCE_EXHAUSTED when a queue is full or a width, depth or batch is past the server's
  // limits, with nothing stored.
  void StartTraining(StartTrainingArgs args, Done<JobSnapshot> done);
  // A training job's history (FAILED_PRECONDITION for a flow job).
  absl::StatusOr<std::vector<HistoryRow>> JobHistory(const std::string& job_id);

  absl::StatusOr<SamplerEntry> GetSampler(const std::string& sampler_id);
  absl::StatusOr<std::vector<SamplerEntry>> ListSamplers(const std::string& session_id);
  absl::Status DeleteSampler(const std::string& sampler_id);

  // The sampler's file bytes (encoded on a sample worker).
  void ExportSampler(const std::string& sampler_id, Done<std::string> done);
  // Decodes a sampler file (on a sample worker) and stores it in the session.
  void ImportSampler(const std::string& session_id, std::string bytes, Done<SamplerEntry> done);
  // A TorchScript model target. BeginModelUpload checks the header (the server allows TorchScript, the
  // session and name, dim, expected size); FinishModelUpload loads and checks the archive on a sample
  // worker (never the handler thread) and stores the target.
  struct ModelSpec {
    std::string session_id, name;
    int64_t dim = 0;
    bool energy = false;
    int64_t expected_bytes = 0;
  };
  absl::Status BeginModelUpload(const ModelSpec& spec) const;
  // `abandoned` (may be empty) says whether the client gave up; checked before the target is stored.
  void FinishModelUpload(const ModelSpec& spec, std::string bytes, std::function<bool()> abandoned,
                         Done<TargetEntry> done);
  int64_t max_model_bytes() const { return options_.limits.max_model_bytes; }
  // Largest sampler file ImportSampler takes: four bytes per value of max_array_values, plus 16 MiB.
  int64_t max_sampler_file_bytes() const { return options_.limits.max_array_values * 4 + (int64_t{16} << 20); }

  // Checks a Sample request (n within --max-sample-draws and max_array_values) and pins its sampler.
  absl::StatusOr<std::shared_ptr<SampleStream>> BeginSample(const SampleArgs& args);
  // Queues the draws of blocks [first_block, first_block + blocks) on a sample worker (rows past n cut),
  // which then calls done (a cancelled stream: CANCELLED without computing). When the task cannot be
  // queued (full queue, shutdown) returns why and never calls done: the caller may hold its own lock.
  absl::Status SampleSegment(std::shared_ptr<SampleStream> stream, int64_t first_block, int64_t blocks,
                             Done<PointsF> done);

  // Refuses new work, cancels jobs, waits up to the configured grace for workers.
  void Shutdown();

  HeldState ComputeHeldState() const;

 private:
  absl::Status CheckDim(int64_t dim) const;
  // RESOURCE_EXHAUSTED when adding `bytes` (`what`) would take the session past --max-session-bytes.
  absl::Status CheckSessionQuota(const std::string& session_id, int64_t bytes, const std::string& what) const;
  absl::StatusOr<JobSnapshot> StartTrainingNow(const StartTrainingArgs& args);
  // What a training run of `settings` holds (networks, optimiser moments, passes' activations), checked
  // against max_array_values.
  training::TrainLimits train_limits() const;
  // `drifts`: the steps a drift chain (ingd) may reach (its chain grows by one network a step).
  absl::StatusOr<int64_t> TrainingBytes(const training::TrainSettings& settings, int64_t dim, int64_t drifts) const;
  // Where a training job leaves its sampler: the session (and the state directory).
  SamplerSink MakeSamplerSink(const std::string& session_id, const std::string& target_id, const std::string& method,
                              const std::string& job_id);
  // Queues a flow's run of `steps` steps, or a training job's run, on the job workers.
  absl::Status QueueFlowRun(const std::shared_ptr<FlowJob>& job, int64_t steps);
  absl::Status QueueTrainingRun(const std::shared_ptr<TrainingJob>& job);

  // The state directory (backend_state.cc); each is a no-op without one. A failure to store undoes the
  // in-memory change and returns why.
  absl::StatusOr<SessionView> StoreSession(absl::StatusOr<SessionView> view);
  absl::StatusOr<TargetEntry> StoreTarget(absl::StatusOr<TargetEntry> entry, const TargetRecipe& recipe,
                                          const Points* data, std::string_view archive = {});
  absl::StatusOr<SamplerEntry> StoreSampler(SamplerEntry entry);
  absl::Status StoreJob(const std::shared_ptr<Job>& job, const Record& spec, std::string_view checkpoint,
                        int64_t step);
  void Forget(const std::string& id);
  // Drops a job's row, and the retired target it was the last job of (a job deleted or forgotten by the
  // retention; it is no longer indexed).
  void ForgetJob(const Job& job);
  // NOT_FOUND, and the row of `id` removed, when the session was deleted while `id` was being stored.
  absl::Status KeptWithSession(const std::string& session_id, const std::string& id);
  // Rebuilding (OpenState).
  absl::Status RestoreTarget(const StoredRow& row, const Record& record);
  absl::Status RestoreSampler(const StoredRow& row, const Record& record);
  absl::Status RestoreJob(const StoredRow& row, const Record& record, const std::map<std::string, std::string>& made);
  // An ended record of a job that cannot be rebuilt: listed, FAILED with `why`.
  void RestoreFailedJob(const StoredRow& row, const absl::Status& why);
  // Indexes a new job, re-checking its session (which may have been deleted while the job was built).
  absl::Status AddJob(const std::shared_ptr<Job>& job);
  // Queues a job's run, in slices, on the job workers; forgets the job when it cannot be queued.
  absl::Status QueueJob(const std::shared_ptr<Job>& job, std::function<bool()> slice, std::function<void()> abandon);
  // Evaluations in flight, stopped by Shutdown.
  std::shared_ptr<std::atomic<bool>> RegisterCall(std::shared_ptr<std::atomic<bool>> stop);
  void UnregisterCall(const std::shared_ptr<std::atomic<bool>>& stop);
  // RESOURCE_EXHAUSTED when rows x dim exceeds max_array_values.
  absl::Status CheckArrayValues(int64_t rows, int64_t dim, const std::string& what) const;

  // A stored target holding `charge` (resized to the target's bytes) for as long as it lives.
  absl::StatusOr<std::shared_ptr<const Target>> Charged(std::unique_ptr<Target> target, MemoryBudget::Charge charge);

  const ServerOptions options_;
  MemoryBudget budget_;  // before everything holding a charge: it outlives them
  ServerMetrics metrics_;
  // Before jobs_: the workers (joined when jobs_ is destroyed) unregister their calls here.
  absl::Mutex calls_mu_;
  std::set<std::shared_ptr<std::atomic<bool>>> live_calls_ ABSL_GUARDED_BY(calls_mu_);
  bool shutting_down_ ABSL_GUARDED_BY(calls_mu_) = false;
  SessionManager sessions_;
  // Before jobs_: the job workers (joined when jobs_ is destroyed) write checkpoints and forget rows.
  std::shared_ptr<DurableState> durable_;  // null: in memory only
  RequestIds requests_;
  JobManager jobs_;
  RestoreReport restored_;
  // During OpenState, before the server listens: resumed jobs pass the queue limits; deleted targets that
  // jobs ran on, for those jobs.
  bool restoring_ = false;
  std::map<std::string, std::shared_ptr<const Target>> retired_targets_;
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_BACKEND_H_
