#include "server/jobs/job_manager.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace sampled::server {

JobManager::JobManager(const Limits& limits, int workers, int sample_workers, int call_workers)
    : limits_(limits),
      queue_(WorkQueue::Options{workers, limits.max_queued_jobs, limits.max_queued_jobs_per_session,
                                limits.max_running_jobs_per_session, "job"}),
      calls_(WorkQueue::Options{std::max(1, call_workers), limits.max_queued_jobs, limits.max_queued_jobs_per_session,
                                0, "call"}),
      samples_(WorkQueue::Options{std::max(1, sample_workers), limits.max_queued_jobs, 0, 0, "sample"}) {}

JobManager::~JobManager() { Shutdown(absl::ZeroDuration()); }

int64_t JobManager::PruneLocked(const std::string& session_id, bool apply, std::vector<std::shared_ptr<Job>>* forgotten) {
  // Newest first: ended jobs past the count, or ended before the age limit, go.
  const absl::Time cutoff = absl::Now() - limits_.job_retention_age;
  int64_t kept = 0, dropped = 0;
  for (auto it = jobs_.rbegin(); it != jobs_.rend();) {
    const Job& j = *it->second;
    bool drop = false;
    if (j.session_id() == session_id) {
      const JobSnapshot s = j.Snapshot();
      if (IsTerminal(s.state)) drop = ++kept > limits_.job_retention_count || s.end_time < cutoff;
    }
    dropped += drop;
    if (drop && apply) {
      if (forgotten != nullptr) forgotten->push_back(it->second);
      ids_.erase(it->second->id());
      it = decltype(it)(jobs_.erase(std::next(it).base()));
    } else {
      ++it;
    }
  }
  return dropped;
}

absl::Status JobManager::Add(std::shared_ptr<Job> job) {
  std::vector<std::shared_ptr<Job>> forgotten;
  {
    absl::Status s = AddLocked(std::move(job), &forgotten);
    if (!s.ok()) return s;
  }
  if (on_forget_) {
    for (const auto& j : forgotten) on_forget_(*j);
  }
  return absl::OkStatus();
}

absl::Status JobManager::CheckRoom(const std::string& session_id, bool queued) {
  {
    absl::MutexLock lock(&mu_);
    SAMPLED_RETURN_IF_ERROR(RoomLocked(session_id));
  }
  return queued ? queue_.CheckRoom(session_id) : absl::OkStatus();
}

absl::Status JobManager::RoomLocked(const std::string& session_id) {
  // The session's ended jobs past the retention limits do not count: adding a job forgets them.
  int64_t in_session = 0;
  for (const auto& [seq, j] : jobs_) in_session += j->session_id() == session_id;
  if (in_session - PruneLocked(session_id, /*apply=*/false) >= limits_.max_jobs_per_session) {
    return absl::ResourceExhaustedError(absl::StrCat("session '", session_id, "' holds its limit of ",
                                                     limits_.max_jobs_per_session,
                                                     " jobs; delete ended jobs (DeleteJob) or the session's others"));
  }
  return absl::OkStatus();
}

absl::Status JobManager::AddLocked(std::shared_ptr<Job> job, std::vector<std::shared_ptr<Job>>* forgotten) {
  absl::MutexLock lock(&mu_);
  // A refused job changes nothing: the retention applies only when the job is added.
  SAMPLED_RETURN_IF_ERROR(RoomLocked(job->session_id()));
  PruneLocked(job->session_id(), /*apply=*/true, forgotten);
  const uint64_t seq = next_sequence_++;
  ids_[job->id()] = seq;
  jobs_[seq] = std::move(job);
  return absl::OkStatus();
}

void JobManager::Remove(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = ids_.find(job_id);
  if (it == ids_.end()) return;
  jobs_.erase(it->second);
  ids_.erase(it);
}

absl::Status JobManager::SubmitJob(const std::string& session_id, std::function<bool()> slice,
                                   std::function<void()> cancel, bool past_limits) {
  return queue_.SubmitSliced(std::move(slice), std::move(cancel), session_id, past_limits);
}

absl::Status JobManager::SubmitCallSliced(const std::string& session_id, std::function<bool()> slice,
                                          std::function<void()> cancel) {
  return calls_.SubmitSliced(std::move(slice), std::move(cancel), session_id);
}

absl::Status JobManager::SubmitCall(const std::string& session_id, std::function<void()> run,
                                    std::function<void()> cancel) {
  return calls_.Submit(std::move(run), std::move(cancel), session_id);
}

absl::Status JobManager::SubmitSample(std::function<void()> run, std::function<void()> cancel,
                                      const std::string& session_id) {
  return samples_.Submit(std::move(run), std::move(cancel), session_id);
}

absl::StatusOr<std::shared_ptr<Job>> JobManager::Get(const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = ids_.find(job_id);
  if (it == ids_.end()) return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
  return jobs_.at(it->second);
}

absl::StatusOr<std::shared_ptr<FlowJob>> JobManager::GetFlow(const std::string& job_id) const {
  absl::StatusOr<std::shared_ptr<Job>> job = Get(job_id);
  if (!job.ok()) return job.status();
  std::shared_ptr<FlowJob> flow = std::dynamic_pointer_cast<FlowJob>(*job);
  if (flow == nullptr) return absl::FailedPreconditionError(absl::StrCat("job '", job_id, "' is not a flow"));
  return flow;
}

bool JobManager::UsesTarget(const std::string& session_id, const std::string& target_id) const {
  std::vector<std::shared_ptr<Job>> of_session;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [seq, job] : jobs_) {
      if (job->session_id() == session_id) of_session.push_back(job);
    }
  }
  for (const auto& job : of_session) {
    if (job->Snapshot().target_id == target_id) return true;
  }
  return false;
}

absl::StatusOr<Page<JobSnapshot>> JobManager::List(const std::string& session_id,
                                                   const PageRequest& request) const {
  absl::StatusOr<PageCursor> cursor = ParsePage(request);
  if (!cursor.ok()) return cursor.status();
  std::vector<std::pair<uint64_t, std::shared_ptr<Job>>> selected;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = jobs_.lower_bound(cursor->start); it != jobs_.end(); ++it) {
      if (!session_id.empty() && it->second->session_id() != session_id) continue;
      selected.emplace_back(it->first, it->second);
      if (static_cast<int64_t>(selected.size()) > cursor->size) break;
    }
  }
  Page<JobSnapshot> page;
  for (const auto& [seq, job] : selected) {
    if (static_cast<int64_t>(page.items.size()) == cursor->size) {
      page.next_page_token = PageToken(seq);
      break;
    }
    page.items.push_back(job->Snapshot());
  }
  return page;
}

int JobManager::CancelSession(const std::string& session_id) {
  std::vector<std::shared_ptr<Job>> removed;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (it->second->session_id() == session_id) {
        ids_.erase(it->second->id());
        removed.push_back(std::move(it->second));
        it = jobs_.erase(it);
      } else {
        ++it;
      }
    }
  }
  int cancelled = 0;
  for (auto& job : removed) cancelled += job->Close();
  return cancelled;
}

void JobManager::Shutdown(absl::Duration grace) {
  std::vector<std::shared_ptr<Job>> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [seq, job] : jobs_) all.push_back(job);
  }
  // The queues close first: work still waiting is answered UNAVAILABLE at once. Closing the jobs first
  // let a worker that a cancelled run had just freed take a queued call and answer it CANCELLED instead.
  queue_.Close();
  calls_.Close();
  samples_.Close();
  for (auto& job : all) job->Interrupt();  // running work stops at its next step or block
  const absl::Time deadline = absl::Now() + grace;
  queue_.WaitIdle(grace);
  calls_.WaitIdle(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  samples_.WaitIdle(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  for (auto& job : all) job->FlushCheckpoint();
}

JobManager::Totals JobManager::ComputeTotals() const {
  std::vector<std::shared_ptr<Job>> all;
  Totals t;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [seq, job] : jobs_) all.push_back(job);
  }
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                     JobState::kCancelled}) {
    t.by_state[s] = 0;
  }
  for (const auto& job : all) {
    const JobSnapshot s = job->Snapshot();
    ++t.by_state[s.state];
    t.bytes += s.bytes;
  }
  t.queued_tasks = queue_.queued() + calls_.queued() + samples_.queued();
  return t;
}

void JobManager::SessionUsage(const std::string& session_id, int64_t* jobs, int64_t* bytes) const {
  std::vector<std::shared_ptr<Job>> selected;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [seq, job] : jobs_) {
      if (job->session_id() == session_id) selected.push_back(job);
    }
  }
  *jobs = static_cast<int64_t>(selected.size());
  *bytes = 0;
  for (const auto& job : selected) *bytes += job->Snapshot().bytes;
}

}  // namespace sampled::server
