#include "server/jobs/job.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace sampled::server {
namespace {
constexpr absl::Duration kNotifyInterval = absl::Milliseconds(50);
}  // namespace

const char* JobStateName(JobState s) {
  switch (s) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
}

Job::Job(JobSnapshot initial) : id_(initial.id), session_id_(initial.session_id), snap_(std::move(initial)) {}

JobSnapshot Job::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return snap_;
}

JobState Job::state() const {
  absl::MutexLock lock(&mu_);
  return snap_.state;
}

void Job::Subscribe(std::shared_ptr<JobListener> listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_[listener.get()] = listener;
}

void Job::Unsubscribe(const JobListener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(listener);
}

void Job::Notify() {
  std::vector<std::shared_ptr<JobListener>> live;
  {
    absl::MutexLock lock(&listeners_mu_);
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      if (auto l = it->second.lock()) {
        live.push_back(std::move(l));
        ++it;
      } else {
        it = listeners_.erase(it);
      }
    }
  }
  for (auto& l : live) l->OnJobChanged();
}

absl::StatusOr<JobSnapshot> Job::Cancel() {
  JobSnapshot out;
  {
    absl::MutexLock lock(&mu_);
    if (interrupted_.load() && checkpointer_ != nullptr) {
      // Shutdown began: the job's record and last checkpoint are kept as they are, to resume at the next
      // start (recording a cancel now would stop it at a step no checkpoint holds). The client retries.
      return absl::UnavailableError(absl::StrCat("the server is shutting down; job '", id_,
                                                 "' resumes at its next start: cancel it then"));
    }
    if (IsTerminal(snap_.state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job '", id_, "' already ", JobStateName(snap_.state), "; only a queued or running job can be cancelled"));
    }
    RequestCancelLocked("cancelled while queued");
    out = snap_;
  }
  SaveIfEnded();
  Notify();
  return out;
}

void Job::CancelRun(uint64_t generation) {
  {
    absl::MutexLock lock(&mu_);
    if (generation != generation_ || IsTerminal(snap_.state)) return;
    RequestCancelLocked("cancelled while queued: the client gave up");
  }
  SaveIfEnded();
  Notify();
}

void Job::RequestCancelLocked(const std::string& queued_message) {
  cancel_requested_.store(true);
  if (snap_.state == JobState::kQueued) {
    snap_.state = JobState::kCancelled;
    snap_.end_time = absl::Now();
    snap_.error = absl::CancelledError(queued_message);
  }
}

bool Job::Close(const std::string& why) {
  bool active;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    active = !IsTerminal(snap_.state);
    if (active) RequestCancelLocked(absl::StrCat("cancelled: ", why));
  }
  Notify();
  return active;
}

void Job::AttachStore(std::shared_ptr<JobStore> store, CheckpointPolicy policy, int64_t saved_step,
                      absl::Duration saved_cost) {
  {
    absl::MutexLock lock(&mu_);
    saved_outcome_ = absl::StrCat(JobStateName(snap_.state), "|", snap_.error.ToString(), "|", snap_.sampler_id);
  }
  checkpointer_ = std::make_unique<Checkpointer>(std::move(store), id_, policy, saved_step, saved_cost);
}

Checkpointer* Job::checkpoints() {
  if (checkpointer_ == nullptr) return nullptr;
  absl::MutexLock lock(&mu_);
  return closed_ && !interrupted_.load() ? nullptr : checkpointer_.get();
}

void Job::Interrupt() {
  {
    // A job already cancelled (by its client, or its session's deletion) ends cancelled, recorded as such;
    // only the others are kept unfinished to resume.
    absl::MutexLock lock(&mu_);
    if (!cancel_requested_.load()) interrupted_.store(true);
  }
  Close("the server shut down");
}

void Job::SaveIfEnded() {
  if (checkpointer_ == nullptr || interrupted_.load()) return;
  JobSnapshot s;
  {
    absl::MutexLock lock(&mu_);
    if (!IsTerminal(snap_.state)) return;
    std::string outcome = absl::StrCat(JobStateName(snap_.state), "|", snap_.error.ToString(), "|", snap_.sampler_id);
    if (outcome == saved_outcome_) return;
    saved_outcome_ = std::move(outcome);
    s = snap_;
  }
  checkpointer_->store().SaveSnapshot(s);
}

bool Job::MarkRunning(uint64_t generation, int64_t steps) {
  {
    absl::MutexLock lock(&mu_);
    if (snap_.state != JobState::kQueued || generation != generation_ || closed_) return false;
    snap_.state = JobState::kRunning;
    snap_.total_steps = snap_.step + steps;
    snap_.start_time = absl::Now();
    snap_.end_time = absl::InfinitePast();
    snap_.error = absl::OkStatus();
  }
  Notify();
  return true;
}

void Job::MarkFinished(const absl::Status& status, const std::function<void()>& under_lock) {
  {
    absl::MutexLock lock(&mu_);
    if (status.ok()) {
      snap_.state = JobState::kSucceeded;
    } else if (status.code() == absl::StatusCode::kCancelled) {
      snap_.state = JobState::kCancelled;
    } else {
      snap_.state = JobState::kFailed;
    }
    snap_.error = status;
    snap_.end_time = absl::Now();
    snap_.eta_seconds = 0;
    if (under_lock) under_lock();
  }
  SaveIfEnded();
  Notify();
}

absl::StatusOr<Job::Requeued> Job::MarkRequeued() {
  Requeued r;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) {
      return absl::NotFoundError(absl::StrCat("job '", id_, "' not found (its session was deleted)"));
    }
    if (snap_.state == JobState::kQueued || snap_.state == JobState::kRunning) {
      return absl::FailedPreconditionError(absl::StrCat("job '", id_, "' is ", JobStateName(snap_.state),
                                                        "; wait for it to end or cancel it before stepping"));
    }
    cancel_requested_.store(false);
    r.previous = snap_.state;
    r.generation = ++generation_;
    snap_.state = JobState::kQueued;
  }
  Notify();
  return r;
}

void Job::UndoRequeue(JobState previous) {
  {
    absl::MutexLock lock(&mu_);
    if (snap_.state == JobState::kQueued) snap_.state = previous;
  }
  Notify();
}

void Job::UpdateProgress(absl::FunctionRef<void(JobSnapshot&)> update, bool force) {
  bool notify = false;
  {
    absl::MutexLock lock(&mu_);
    update(snap_);
    const absl::Time now = absl::Now();
    if (force || now - last_notify_ >= kNotifyInterval) {
      last_notify_ = now;
      notify = true;
    }
  }
  if (notify) Notify();
}

}  // namespace sampled::server
