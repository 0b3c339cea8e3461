// The index of jobs and the worker pools work runs on: `--workers` threads for flow and training jobs,
// `--call-workers` threads for the calls a client waits on (interactive steps, evaluations, creating a
// flow or a target's draws), so that an Evaluate or a StepFlow is never queued behind a job that runs for
// hours, and `--sample-workers` threads for Sample calls. Every pool serves the sessions round-robin,
// and long work runs in slices (--slice-time), so one session's long run does not starve the others.
// Ended jobs are kept up to the retention limits (count, age), until deleted, or until their session is.
//
// Thread-safe; the index lock is held only for map operations.
#ifndef SAMPLED_SERVER_JOBS_JOB_MANAGER_H_
#define SAMPLED_SERVER_JOBS_JOB_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/pagination.h"
#include "server/jobs/flow_job.h"
#include "server/jobs/job.h"
#include "server/jobs/work_queue.h"
#include "server/server_options.h"

namespace sampled::server {

class JobManager {
 public:
  JobManager(const Limits& limits, int workers, int sample_workers = 2, int call_workers = 2);
  ~JobManager();

  // Indexes a new job, first forgetting the session's ended jobs past the retention limits (count, age).
  // RESOURCE_EXHAUSTED when its session still holds max_jobs_per_session jobs.
  absl::Status Add(std::shared_ptr<Job> job);
  // What Add (and, when `queued`, SubmitJob) would refuse now for a new job of `session_id`: asked before
  // a job is built and stored, so a refused one costs nothing. Not a reservation: Add and SubmitJob check
  // again.
  absl::Status CheckRoom(const std::string& session_id, bool queued);
  // Called (without the index lock) with each job the retention forgets: the state directory drops it.
  // Set before the server serves.
  void SetForgetObserver(std::function<void(const Job& job)> on_forget) { on_forget_ = std::move(on_forget); }
  // Forgets a job (one that never ran, or one deleted).
  void Remove(const std::string& job_id);
  // Queues a job's run, taken in slices (`slice` returns true for another), on the job workers behind
  // the other sessions' work: RESOURCE_EXHAUSTED when the queue (or the session's share of it) is full,
  // UNAVAILABLE when shutting down. `cancel` runs instead of a slice when shutdown drains the queue.
  absl::Status SubmitJob(const std::string& session_id, std::function<bool()> slice, std::function<void()> cancel,
                         bool past_limits = false);
  // As SubmitJob, on the call workers: for work an RPC waits on (StepFlow, Evaluate, StartFlow's setup).
  absl::Status SubmitCallSliced(const std::string& session_id, std::function<bool()> slice,
                                std::function<void()> cancel);
  absl::Status SubmitCall(const std::string& session_id, std::function<void()> run, std::function<void()> cancel);
  // On the sample workers: Sample calls, which never wait behind a job or another call's work.
  absl::Status SubmitSample(std::function<void()> run, std::function<void()> cancel = nullptr,
                            const std::string& session_id = "");
  // Whether work of another session waits for a job (call) worker: a slice of `session_id` yields to it
  // (a session's own jobs run in order).
  bool JobsWaiting(const std::string& session_id) const { return queue_.AnyWaiting(session_id); }
  bool CallsWaiting(const std::string& session_id) const { return calls_.AnyWaiting(session_id); }

  // NOT_FOUND for an unknown id.
  absl::StatusOr<std::shared_ptr<Job>> Get(const std::string& job_id) const;
  // As Get, and FAILED_PRECONDITION when the job is not a flow.
  absl::StatusOr<std::shared_ptr<FlowJob>> GetFlow(const std::string& job_id) const;
  // Whether a job of `session_id` ran on target `target_id` (such a job keeps the target alive).
  bool UsesTarget(const std::string& session_id, const std::string& target_id) const;
  // Jobs of a session in creation order (session_id empty: all jobs).
  absl::StatusOr<Page<JobSnapshot>> List(const std::string& session_id, const PageRequest& page) const;

  // Cancels the session's queued and running jobs and forgets all its jobs; returns how many were
  // cancelled. Their workers stop before their next step.
  int CancelSession(const std::string& session_id);

  // Refuses new work (queued work is cancelled), cancels every job, and waits up to `grace` for the workers
  // to stop.
  void Shutdown(absl::Duration grace);

  struct Totals {
    std::map<JobState, int64_t> by_state;
    int64_t bytes = 0;
    int64_t queued_tasks = 0;  // both pools
  };
  Totals ComputeTotals() const;
  // Jobs and bytes held by one session.
  void SessionUsage(const std::string& session_id, int64_t* jobs, int64_t* bytes) const;

 private:
  // The session's ended jobs past the retention limits: counted, and forgotten when `apply`.
  // `forgotten` (may be null) gets them.
  int64_t PruneLocked(const std::string& session_id, bool apply,
                      std::vector<std::shared_ptr<Job>>* forgotten = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // RESOURCE_EXHAUSTED when the session holds max_jobs_per_session jobs that the retention keeps.
  absl::Status RoomLocked(const std::string& session_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AddLocked(std::shared_ptr<Job> job, std::vector<std::shared_ptr<Job>>* forgotten)
      ABSL_LOCKS_EXCLUDED(mu_);

  const Limits limits_;
  std::function<void(const Job&)> on_forget_;
  mutable absl::Mutex mu_;
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> ids_ ABSL_GUARDED_BY(mu_);
  WorkQueue queue_;  // job runs
  WorkQueue calls_;  // interactive steps and evaluations
  WorkQueue samples_;  // Sample calls
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_JOBS_JOB_MANAGER_H_
