// Idempotent calls in the handlers (server/common/request_ids.h): a call with a request id first asks
// AnsweredByRequestId, which answers a repeat with what the first call made (or the id's error) and
// otherwise wraps the call's completion so that its success is remembered.
#ifndef SAMPLED_SERVER_SERVICE_IDEMPOTENT_H_
#define SAMPLED_SERVER_SERVICE_IDEMPOTENT_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/backend.h"

namespace sampled::server {

// What a repeated call answers: the object the first one made, as it is now.
inline absl::StatusOr<SessionView> MadeBefore(Backend* b, const std::string&, const std::string& id, SessionView*) {
  return b->GetSession(id);
}
inline absl::StatusOr<TargetEntry> MadeBefore(Backend* b, const std::string& scope, const std::string& id,
                                              TargetEntry*) {
  return b->sessions().GetTarget(scope, id);
}
inline absl::StatusOr<JobSnapshot> MadeBefore(Backend* b, const std::string&, const std::string& id, JobSnapshot*) {
  absl::StatusOr<std::shared_ptr<Job>> job = b->jobs().Get(id);
  if (!job.ok()) return job.status();
  return (*job)->Snapshot();
}
inline absl::StatusOr<SamplerEntry> MadeBefore(Backend* b, const std::string&, const std::string& id, SamplerEntry*) {
  return b->GetSampler(id);
}
inline const std::string& IdOf(const SessionView& v) { return v.info.id; }
template <typename T>
const std::string& IdOf(const T& v) {
  return v.id;
}

// Returns true when `done` was answered (a repeat, or a bad or busy id); otherwise `done` now records
// the id when the call succeeds, and the caller goes on. `scope`: the session (empty for CreateSession).
template <typename T>
bool AnsweredByRequestId(Backend* backend, const std::string& scope, const std::string& request_id, const char* kind,
                         Done<T>& done) {
  if (request_id.empty()) return false;
  absl::StatusOr<RequestIds::Begun> begun = backend->requests().Begin(scope, request_id, kind);
  if (!begun.ok()) {
    done(begun.status());
    return true;
  }
  if (begun->made.has_value()) {
    absl::StatusOr<T> made = MadeBefore(backend, scope, *begun->made, static_cast<T*>(nullptr));
    if (!made.ok() && absl::IsNotFound(made.status())) {
      made =
          absl::NotFoundError(absl::StrCat("request_id '", request_id, "' made ", *begun->made,
                                           ", which is gone since (deleted); send a new request_id to make another"));
    }
    done(std::move(made));
    return true;
  }
  done = [claim = std::move(begun->claim), inner = std::move(done)](absl::StatusOr<T> result) {
    if (result.ok()) claim->Complete(IdOf(*result));
    inner(std::move(result));
  };
  return false;
}

}  // namespace sampled::server

#endif  // SAMPLED_SERVER_SERVICE_IDEMPOTENT_H_
