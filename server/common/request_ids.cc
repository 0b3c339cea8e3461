#include "server/common/request_ids.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "server/store/state_store.h"

namespace sampled::server {

RequestIds::Claim::~Claim() {
  if (!completed_) owner_->Release({scope_, id_});
}

void RequestIds::Claim::Complete(const std::string& object_id) {
  if (completed_) return;
  completed_ = true;
  owner_->Record({scope_, id_}, Made{kind_, object_id, absl::Now()});
}

absl::StatusOr<RequestIds::Begun> RequestIds::Begin(const std::string& scope, const std::string& request_id,
                                                    const std::string& kind) {
  if (request_id.size() > kMaxRequestIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id is ", request_id.size(), " characters; at most ", kMaxRequestIdLength));
  }
  for (char ch : request_id) {
    if (ch < 0x21 || ch > 0x7e) {
      return absl::InvalidArgumentError("request_id must be printable ASCII without spaces (a UUID, say)");
    }
  }
  const Key key{scope, request_id};
  const absl::Time not_before = absl::Now() - ttl_;
  std::optional<Made> found;
  {
    absl::MutexLock lock(&mu_);
    if (pending_.count(key) > 0) {
      return absl::AbortedError(
          absl::StrCat("a call with request_id '", request_id, "' is still running; retry to get its result"));
    }
    if (auto it = made_.find(key); it != made_.end() && it->second.time >= not_before) found = it->second;
  }
  if (!found.has_value() && store_ != nullptr) {
    absl::StatusOr<std::optional<StoredRequest>> stored = store_->GetRequest(scope, request_id, not_before);
    if (!stored.ok()) return stored.status();
    if (stored->has_value()) found = Made{(*stored)->kind, (*stored)->object_id, (*stored)->time};
  }
  Begun out;
  if (found.has_value()) {
    if (found->kind != kind) {
      return absl::InvalidArgumentError(
          absl::StrCat("request_id '", request_id, "' was used for ", found->kind, "; give each call its own id"));
    }
    out.made = found->object_id;
    return out;
  }
  absl::MutexLock lock(&mu_);
  // A call with this id may have ended between the look-ups above and here: its answer stands.
  if (auto it = made_.find(key); it != made_.end() && it->second.time >= not_before) {
    if (it->second.kind != kind) {
      return absl::InvalidArgumentError(
          absl::StrCat("request_id '", request_id, "' was used for ", it->second.kind, "; give each call its own id"));
    }
    out.made = it->second.object_id;
    return out;
  }
  if (!pending_.insert(key).second) {
    return absl::AbortedError(
        absl::StrCat("a call with request_id '", request_id, "' is still running; retry to get its result"));
  }
  out.claim = std::make_shared<Claim>(this, scope, request_id, kind);
  return out;
}

void RequestIds::Release(const Key& key) {
  absl::MutexLock lock(&mu_);
  pending_.erase(key);
}

void RequestIds::Record(const Key& key, Made made) {
  if (store_ != nullptr) {
    if (absl::Status s = store_->PutRequest(key.first, key.second, {made.kind, made.object_id, made.time}); !s.ok()) {
      std::cerr << "sampled: recording request id '" << key.second << "' failed: " << s << "\n";
    }
  }
  absl::MutexLock lock(&mu_);
  pending_.erase(key);
  by_time_.emplace(made.time, key);
  made_[key] = std::move(made);
  // Bounded: expired ids go, then the oldest past the cap.
  const absl::Time not_before = absl::Now() - ttl_;
  while (!by_time_.empty() && (by_time_.begin()->first < not_before || made_.size() > kMaxRememberedRequestIds)) {
    auto it = made_.find(by_time_.begin()->second);
    if (it != made_.end() && it->second.time == by_time_.begin()->first) made_.erase(it);
    by_time_.erase(by_time_.begin());
  }
}

}  // namespace sampled::server
