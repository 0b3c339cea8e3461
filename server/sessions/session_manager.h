// Sessions and the targets they own: the server's in-memory store of uploaded data and analytic
// densities. Jobs are tracked by the JobManager; a session only counts them.
//
// Thread-safe: every method takes the manager's lock for the duration of a map operation only (no
// compute under the lock).
#ifndef SAMPLED_SERVER_SESSIONS_SESSION_MANAGER_H_
#define SAMPLED_SERVER_SESSIONS_SESSION_MANAGER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/targets/target.h"
#include "core/training/sampler.h"
#include "server/common/pagination.h"
#include "server/server_options.h"

namespace sampled::server {

struct SessionInfo {
  std::string id;
  std::string name;
  absl::Time create_time;
  int64_t target_count = 0;
  int64_t target_bytes = 0;
};

struct TargetEntry {
  std::string id;
  std::string session_id;
  std::string name;
  std::shared_ptr<const Target> target;  // shared with the jobs that use it
  absl::Time create_time;
  std::string data_target_id;  // the data target a posterior was defined over (empty otherwise)
};

// A trained sampler held by a session. The model is immutable and shared: a Sample that streams from it
// keeps it alive after the sampler is deleted.
struct SamplerEntry {
  std::string id;
  std::string session_id;
  std::string job_id;     // the training job that made it (empty for an imported one)
  std::string target_id;  // what it was trained on (as recorded; the target may be gone)
  std::string method;
  std::shared_ptr<const training::SamplerModel> model;
  int64_t steps = 0;
  std::map<std::string, double> final_metrics, best_metrics;
  int64_t best_step = -1;
  absl::Time create_time;
};

class SessionManager {
 public:
  explicit SessionManager(const Limits& limits) : limits_(limits) {}

  // RESOURCE_EXHAUSTED at the session limit.
  absl::StatusOr<SessionInfo> CreateSession(const std::string& name);
  // A session read back from the state directory (its id and creation time kept).
  void RestoreSession(const SessionInfo& info);
  // An object of the state directory that could not be loaded at start (a corrupted file, a target that
  // no longer builds): asking for it answers `why` (DATA_LOSS, FAILED_PRECONDITION...) instead of
  // NOT_FOUND, until it is deleted.
  void MarkLost(const std::string& id, const std::string& session_id, absl::Status why);
  // NOT_FOUND for an unknown id.
  absl::StatusOr<SessionInfo> GetSession(const std::string& id) const;
  absl::StatusOr<Page<SessionInfo>> ListSessions(const PageRequest& page) const;
  // Removes the session and its targets (NOT_FOUND for an unknown id). The caller cancels its jobs.
  absl::Status DeleteSession(const std::string& id);

  // OK when `name` could be added to the session now (NOT_FOUND, ALREADY_EXISTS, RESOURCE_EXHAUSTED,
  // INVALID_ARGUMENT for an empty name): lets an upload fail before its data is sent.
  absl::Status CheckNewTarget(const std::string& session_id, const std::string& name) const;
  // Adds a target, re-checking what CheckNewTarget checks. `id` and `create_time` are given for a target
  // read back from the state directory (empty: new).
  absl::StatusOr<TargetEntry> AddTarget(const std::string& session_id, const std::string& name,
                                        std::shared_ptr<const Target> target, std::string data_target_id = "",
                                        std::string id = "", absl::Time create_time = absl::InfinitePast());
  // NOT_FOUND for an unknown session or a target not in it.
  absl::StatusOr<TargetEntry> GetTarget(const std::string& session_id, const std::string& target_id) const;
  absl::StatusOr<Page<TargetEntry>> ListTargets(const std::string& session_id, const PageRequest& page) const;
  absl::Status DeleteTarget(const std::string& session_id, const std::string& target_id);

  // Adds a sampler (id and creation time assigned here unless entry.id is given: a restored one): NOT_FOUND for an unknown session, RESOURCE_EXHAUSTED at the
  // session's sampler limit.
  absl::StatusOr<SamplerEntry> AddSampler(SamplerEntry entry);
  // By id alone (ids are unique across sessions), as jobs. NOT_FOUND for an unknown or deleted sampler.
  absl::StatusOr<SamplerEntry> GetSampler(const std::string& sampler_id) const;
  absl::StatusOr<std::vector<SamplerEntry>> ListSamplers(const std::string& session_id) const;
  absl::Status DeleteSampler(const std::string& sampler_id);

  // For the metrics endpoint.
  int64_t sampler_count() const;
  int64_t sampler_bytes() const;
  int64_t session_count() const;
  int64_t target_count() const;
  int64_t target_bytes() const;

 private:
  struct Session {
    SessionInfo info;
    uint64_t sequence = 0;
    std::map<uint64_t, TargetEntry> targets;  // by creation sequence
    std::map<uint64_t, SamplerEntry> samplers;  // by creation sequence
  };

  Session* FindLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Session* FindLocked(const std::string& id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckNewTargetLocked(const Session& s, const std::string& name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The lost object `id`'s status, when it is one.
  std::optional<absl::Status> LostLocked(const std::string& id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Limits limits_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::pair<std::string, absl::Status>> lost_ ABSL_GUARDED_BY(mu_);  // id -> (session, why)
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);        // by creation sequence
  std::map<std::string, uint64_t> session_ids_ ABSL_GUARDED_BY(mu_);  // id -> sequence
  // sampler id -> (session sequence, sampler sequence)
  std::map<std::string, std::pair<uint64_t, uint64_t>> sampler_ids_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_SESSIONS_SESSION_MANAGER_H_
