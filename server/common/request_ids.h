// Idempotent calls: a client sends a request id with a call that creates something (CreateSession,
// UploadTarget, DefineTarget, UploadModel, StartFlow, StartTraining, ImportSampler) and may send it again
// (a retry after UNAVAILABLE or a lost answer). The first call claims the id; when it succeeds, the id is
// remembered with what it made, scoped to its caller (its session; the server for CreateSession), for
// --request-id-ttl, in memory and, with --state-dir, in the state database. A repeat gets that object; a
// repeat while the first is still running gets ABORTED (retry); a failed call leaves the id free.
//
// Thread-safe.
#ifndef SAMPLED_SERVER_COMMON_REQUEST_IDS_H_
#define SAMPLED_SERVER_COMMON_REQUEST_IDS_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sampled::server {

class StateStore;

constexpr size_t kMaxRequestIdLength = 128;
// Request ids remembered in memory at most (the oldest go first; the state database keeps them all for
// their time).
constexpr size_t kMaxRememberedRequestIds = 100000;

class RequestIds {
 public:
  explicit RequestIds(absl::Duration ttl) : ttl_(ttl) {}
  void SetStore(StateStore* store) { store_ = store; }

  // A claimed id: Complete records what the call made; dropped without it, the id is free again.
  class Claim {
   public:
    Claim(RequestIds* owner, std::string scope, std::string id, std::string kind)
        : owner_(owner), scope_(std::move(scope)), id_(std::move(id)), kind_(std::move(kind)) {}
    ~Claim();
    void Complete(const std::string& object_id);

   private:
    RequestIds* owner_;
    const std::string scope_, id_, kind_;
    bool completed_ = false;
  };

  struct Begun {
    std::optional<std::string> made;  // a repeat: the id of what the first call made
    std::shared_ptr<Claim> claim;     // a new id: held until the call ends
  };
  // INVALID_ARGUMENT for an id too long or not printable, or one used before for another call; ABORTED
  // while a call with this id runs.
  absl::StatusOr<Begun> Begin(const std::string& scope, const std::string& request_id, const std::string& kind);

 private:
  struct Made {
    std::string kind, object_id;
    absl::Time time;
  };
  using Key = std::pair<std::string, std::string>;  // (scope, request id)
  void Release(const Key& key);
  void Record(const Key& key, Made made);

  const absl::Duration ttl_;
  StateStore* store_ = nullptr;
  absl::Mutex mu_;
  std::set<Key> pending_ ABSL_GUARDED_BY(mu_);
  std::map<Key, Made> made_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, Key> by_time_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_COMMON_REQUEST_IDS_H_
