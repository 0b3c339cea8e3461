// A job's identity, state machine, progress and listeners. The state machine is
//   queued -> running -> succeeded | failed | cancelled
// (an interactive step re-enters it from any terminal state). Subclasses (FlowJob) own the work;
// this class owns what every observer sees.
//
// Thread-safe. Listeners are called without the job's lock held.
#ifndef SAMPLED_SERVER_JOBS_JOB_H_
#define SAMPLED_SERVER_JOBS_JOB_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/flows/flow.h"
#include "core/training/trainer.h"
#include "server/jobs/checkpoint.h"

namespace sampled::server {

// Steps (or training iterations) slower than this always notify watchers; faster ones are rate-limited.
constexpr double kSlowStepSeconds = 0.025;

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };

const char* JobStateName(JobState s);
inline bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

// What observers see of a job: a plain copy.
struct JobSnapshot {
  std::string id;
  std::string session_id;
  std::string kind;
  std::string target_id;
  std::string method;
  JobState state = JobState::kQueued;
  int64_t step = 0;
  int64_t total_steps = 0;
  double steps_per_second = 0;
  double eta_seconds = 0;
  std::optional<StepStats> last_stats;                // a flow's last step
  std::optional<training::TrainStats> last_training;  // a training run's last iteration
  std::string sampler_id;                             // the sampler a training run left
  double last_step_seconds = 0;
  std::map<std::string, double> metrics;
  int64_t metrics_step = 0;
  std::string metrics_error;  // the last evaluation's failure (empty when it succeeded)
  absl::Status error;  // when failed
  absl::Time create_time = absl::InfinitePast();
  absl::Time start_time = absl::InfinitePast();
  absl::Time end_time = absl::InfinitePast();
  int64_t particle_count = 0;
  int64_t dim = 0;
  int64_t bytes = 0;
};

// A job's mutable state (a flow's particles, a training run's weights): the worker's while the job runs
// (from MarkRunning to MarkFinished), and read by another thread only under the job's lock while it does
// not run. Every use says which it is: worker() on the worker, locked(mu) elsewhere (which checks the lock).
template <typename T>
class WorkerOwned {
 public:
  explicit WorkerOwned(T value) : value_(std::move(value)) {}
  T& worker() { return value_; }
  const T& worker() const { return value_; }
  const T& locked(const absl::Mutex& mu) const {
    mu.AssertHeld();
    return value_;
  }

 private:
  T value_;
};

// Receives change notifications. Implementations must be cheap and must not call back into the job
// under their own locks in a way that can wait on compute.
class JobListener {
 public:
  virtual ~JobListener() = default;
  virtual void OnJobChanged() = 0;
};

class Job {
 public:
  explicit Job(JobSnapshot initial);
  virtual ~Job() = default;

  // What a requeue for another run returns: the state left, and the new run's generation.
  struct Requeued {
    JobState previous;
    uint64_t generation;
  };

  const std::string& id() const { return id_; }
  const std::string& session_id() const { return session_id_; }

  JobSnapshot Snapshot() const;
  JobState state() const;

  void Subscribe(std::shared_ptr<JobListener> listener);
  void Unsubscribe(const JobListener* listener);

  // Cancels a queued job at once, or asks a running one to stop before its next step. FAILED_PRECONDITION
  // for a job that already ended; UNAVAILABLE once Interrupt() was called (the job is kept to resume).
  absl::StatusOr<JobSnapshot> Cancel();
  // As Cancel, only while the run `generation` is the job's current one (a client that gave up on its
  // StepFlow must not cancel a later caller's run); does nothing otherwise.
  void CancelRun(uint64_t generation);
  // Cancels the job if it is queued or running, and refuses any further run (the job or its session was
  // deleted, or the server shuts down: `why`). Returns whether it was queued or running.
  bool Close(const std::string& why = "its session was deleted");
  // Whether the running work should stop (checked between steps, and between a step's blocks through
  // cancel_flag() and ScopedStopFlag).
  bool cancel_requested() const { return cancel_requested_.load(std::memory_order_relaxed); }
  const std::atomic<bool>* cancel_flag() const { return &cancel_requested_; }

  // Keeps the job in the state directory: its snapshot whenever it ends, and checkpoints of its state as
  // `policy` says (see checkpoint.h). Called once, before its first run.
  // `saved_step`: the step of the checkpoint already stored with the job's record.
  // `saved_cost`: how long writing that checkpoint took.
  void AttachStore(std::shared_ptr<JobStore> store, CheckpointPolicy policy, int64_t saved_step,
                   absl::Duration saved_cost = absl::ZeroDuration());
  // As Close, for a shutdown: the stored record is left as it was, so an unfinished job resumes from its
  // last checkpoint at the next start.
  void Interrupt();
  bool interrupted() const { return interrupted_.load(); }
  // At shutdown, after the workers stopped: writes the checkpoint of a job that is not running when its
  // state is newer than its last checkpoint (an interactively stepped flow whose runs ended between two).
  virtual void FlushCheckpoint() {}
  int64_t checkpoints_written() const { return checkpointer_ ? checkpointer_->written() : 0; }

 protected:
  // queued -> running for the run `generation` (0 for the first run, then what MarkRequeued returned), with
  // total_steps = the current step + `steps`. Returns false when that run no longer applies: the job was
  // cancelled while queued, closed, or requeued for a newer run.
  bool MarkRunning(uint64_t generation, int64_t steps);
  // running -> succeeded / failed (status) / cancelled (status CANCELLED). `under_lock` (optional) runs
  // with the lock held right after the transition.
  void MarkFinished(const absl::Status& status, const std::function<void()>& under_lock = nullptr);
  // succeeded | cancelled | failed -> queued for another run (interactive stepping: a failed step left the
  // state of the step before it); returns the state it left and the new run's generation.
  // FAILED_PRECONDITION for a queued or running job, NOT_FOUND for a closed one.
  absl::StatusOr<Requeued> MarkRequeued();
  // Back to `previous` when a requeued run could not be submitted.
  void UndoRequeue(JobState previous);
  // Applies `update` to the snapshot under the lock and notifies listeners (at most every 50 ms unless
  // `force`; callers force slow steps so that a watcher never waits on a stale step).
  void UpdateProgress(absl::FunctionRef<void(JobSnapshot&)> update, bool force = false);

  JobState StateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return snap_.state; }
  // Asks the work to stop; a queued job is cancelled at once with `queued_message`.
  void RequestCancelLocked(const std::string& queued_message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;

  // The worker's checkpoint clock: null without a state directory, and once the job was deleted (its
  // files are gone; a checkpoint would only leave an orphan).
  Checkpointer* checkpoints();

 private:
  std::unique_ptr<Checkpointer> checkpointer_;
  void Notify();
  // Records the snapshot of a job that just ended (not for an interrupted one).
  void SaveIfEnded();

  const std::string id_;
  const std::string session_id_;
  JobSnapshot snap_ ABSL_GUARDED_BY(mu_);
  absl::Time last_notify_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> cancel_requested_{false};
  std::atomic<bool> interrupted_{false};
  // What the stored record last said (a snapshot is recorded when it changes: not for every interactive
  // step, whose state stays succeeded; the step itself is in the checkpoint).
  std::string saved_outcome_ ABSL_GUARDED_BY(mu_);
  absl::Mutex listeners_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::map<const JobListener*, std::weak_ptr<JobListener>> listeners_ ABSL_GUARDED_BY(listeners_mu_);
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_JOBS_JOB_H_
