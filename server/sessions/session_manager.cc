#include "server/sessions/session_manager.h"

#include "absl/strings/str_cat.h"
#include "server/common/ids.h"

namespace sampled::server {
namespace {

absl::Status SessionNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("session '", id, "' not found"));
}

}  // namespace

SessionManager::Session* SessionManager::FindLocked(const std::string& id) {
  auto it = session_ids_.find(id);
  return it == session_ids_.end() ? nullptr : &sessions_.at(it->second);
}

const SessionManager::Session* SessionManager::FindLocked(const std::string& id) const {
  auto it = session_ids_.find(id);
  return it == session_ids_.end() ? nullptr : &sessions_.at(it->second);
}

absl::StatusOr<SessionInfo> SessionManager::CreateSession(const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (static_cast<int64_t>(sessions_.size()) >= limits_.max_sessions) {
    return absl::ResourceExhaustedError(absl::StrCat("the server holds its limit of ", limits_.max_sessions,
                                                     " sessions; delete one first"));
  }
  Session s;
  s.sequence = next_sequence_++;
  s.info.id = NewId('s');
  s.info.name = name;
  s.info.create_time = absl::Now();
  session_ids_[s.info.id] = s.sequence;
  SessionInfo info = s.info;
  sessions_.emplace(s.sequence, std::move(s));
  return info;
}

void SessionManager::RestoreSession(const SessionInfo& info) {
  absl::MutexLock lock(&mu_);
  Session s;
  s.sequence = next_sequence_++;
  s.info = info;
  s.info.target_count = 0;
  s.info.target_bytes = 0;
  session_ids_[s.info.id] = s.sequence;
  sessions_.emplace(s.sequence, std::move(s));
}

void SessionManager::MarkLost(const std::string& id, const std::string& session_id, absl::Status why) {
  absl::MutexLock lock(&mu_);
  lost_[id] = {session_id, std::move(why)};
}

std::optional<absl::Status> SessionManager::LostLocked(const std::string& id) const {
  auto it = lost_.find(id);
  if (it == lost_.end()) return std::nullopt;
  return it->second.second;
}

absl::StatusOr<SessionInfo> SessionManager::GetSession(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  const Session* s = FindLocked(id);
  if (s == nullptr) return SessionNotFound(id);
  return s->info;
}

absl::StatusOr<Page<SessionInfo>> SessionManager::ListSessions(const PageRequest& request) const {
  absl::StatusOr<PageCursor> cursor = ParsePage(request);
  if (!cursor.ok()) return cursor.status();
  absl::MutexLock lock(&mu_);
  Page<SessionInfo> page;
  for (auto it = sessions_.lower_bound(cursor->start); it != sessions_.end(); ++it) {
    if (static_cast<int64_t>(page.items.size()) == cursor->size) {
      page.next_page_token = PageToken(it->first);
      break;
    }
    page.items.push_back(it->second.info);
  }
  return page;
}

absl::Status SessionManager::DeleteSession(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = session_ids_.find(id);
  if (it == session_ids_.end()) return SessionNotFound(id);
  for (const auto& [seq, sampler] : sessions_.at(it->second).samplers) sampler_ids_.erase(sampler.id);
  for (auto l = lost_.begin(); l != lost_.end();) l = l->second.first == id ? lost_.erase(l) : std::next(l);
  sessions_.erase(it->second);
  session_ids_.erase(it);
  return absl::OkStatus();
}

absl::Status SessionManager::CheckNewTargetLocked(const Session& s, const std::string& name) const {
  if (name.empty()) return absl::InvalidArgumentError("a target needs a name");
  if (static_cast<int64_t>(s.targets.size()) >= limits_.max_targets_per_session) {
    return absl::ResourceExhaustedError(absl::StrCat("session '", s.info.id, "' holds its limit of ",
                                                     limits_.max_targets_per_session, " targets"));
  }
  for (const auto& [seq, t] : s.targets) {
    if (t.name == name) {
      return absl::AlreadyExistsError(
          absl::StrCat("session '", s.info.id, "' already has a target named '", name, "' (", t.id, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status SessionManager::CheckNewTarget(const std::string& session_id, const std::string& name) const {
  absl::MutexLock lock(&mu_);
  const Session* s = FindLocked(session_id);
  if (s == nullptr) return SessionNotFound(session_id);
  return CheckNewTargetLocked(*s, name);
}

absl::StatusOr<TargetEntry> SessionManager::AddTarget(const std::string& session_id, const std::string& name,
                                                      std::shared_ptr<const Target> target,
                                                      std::string data_target_id, std::string id,
                                                      absl::Time create_time) {
  absl::MutexLock lock(&mu_);
  Session* s = FindLocked(session_id);
  if (s == nullptr) return SessionNotFound(session_id);
  absl::Status ok = CheckNewTargetLocked(*s, name);
  if (!ok.ok()) return ok;
  TargetEntry e;
  e.id = id.empty() ? NewId('t') : std::move(id);
  e.session_id = session_id;
  e.name = name;
  e.create_time = create_time == absl::InfinitePast() ? absl::Now() : create_time;
  e.data_target_id = std::move(data_target_id);
  s->info.target_bytes += target->bytes();
  e.target = std::move(target);
  s->targets.emplace(next_sequence_++, e);
  s->info.target_count = static_cast<int64_t>(s->targets.size());
  return e;
}

absl::StatusOr<TargetEntry> SessionManager::GetTarget(const std::string& session_id,
                                                      const std::string& target_id) const {
  absl::MutexLock lock(&mu_);
  const Session* s = FindLocked(session_id);
  if (s == nullptr) return SessionNotFound(session_id);
  for (const auto& [seq, t] : s->targets) {
    if (t.id == target_id) return t;
  }
  if (std::optional<absl::Status> lost = LostLocked(target_id)) return *lost;
  return absl::NotFoundError(absl::StrCat("target '", target_id, "' not found in session '", session_id, "'"));
}

absl::StatusOr<Page<TargetEntry>> SessionManager::ListTargets(const std::string& session_id,
                                                              const PageRequest& request) const {
  absl::StatusOr<PageCursor> cursor = ParsePage(request);
  if (!cursor.ok()) return cursor.status();
  absl::MutexLock lock(&mu_);
  const Session* s = FindLocked(session_id);
  if (s == nullptr) return SessionNotFound(session_id);
  Page<TargetEntry> page;
  for (auto it = s->targets.lower_bound(cursor->start); it != s->targets.end(); ++it) {
    if (static_cast<int64_t>(page.items.size()) == cursor->size) {
      page.next_page_token = PageToken(it->first);
      break;
    }
    page.items.push_back(it->second);
  }
  return page;
}

absl::Status SessionManager::DeleteTarget(const std::string& session_id, const std::string& target_id) {
  absl::MutexLock lock(&mu_);
  Session* s = FindLocked(session_id);
  if (s == nullptr) return SessionNotFound(session_id);
  for (auto it = s->targets.begin(); it != s->targets.end(); ++it) {
    if (it->second.id == target_id) {
      s->info.target_bytes -= it->second.target->bytes();
      s->targets.erase(it);
      s->info.target_count = static_cast<int64_t>(s->targets.size());
      return absl::OkStatus();
    }
  }
  if (lost_.erase(target_id) > 0) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("target '", target_id, "' not found in session '", session_id, "'"));
}

int64_t SessionManager::session_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(sessions_.size());
}

int64_t SessionManager::target_count() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [seq, s] : sessions_) n += static_cast<int64_t>(s.targets.size());
  return n;
}

int64_t SessionManager::target_bytes() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [seq, s] : sessions_) n += s.info.target_bytes;
  return n;
}

absl::StatusOr<SamplerEntry> SessionManager::AddSampler(SamplerEntry entry) {
  absl::MutexLock lock(&mu_);
  Session* s = FindLocked(entry.session_id);
  if (s == nullptr) return SessionNotFound(entry.session_id);
  if (static_cast<int64_t>(s->samplers.size()) >= limits_.max_samplers_per_session) {
    return absl::ResourceExhaustedError(absl::StrCat("session '", s->info.id, "' holds its limit of ",
                                                     limits_.max_samplers_per_session, " samplers; delete one first"));
  }
  if (entry.id.empty()) {
    entry.id = NewId('m');
    entry.create_time = absl::Now();
  }
  const uint64_t seq = next_sequence_++;
  sampler_ids_[entry.id] = {s->sequence, seq};
  s->samplers.emplace(seq, entry);
  return entry;
}

absl::StatusOr<SamplerEntry> SessionManager::GetSampler(const std::string& sampler_id) const {
  absl::MutexLock lock(&mu_);
  auto it = sampler_ids_.find(sampler_id);
  if (it == sampler_ids_.end()) {
    if (std::optional<absl::Status> lost = LostLocked(sampler_id)) return *lost;
    return absl::NotFoundError(absl::StrCat("sampler '", sampler_id, "' not found"));
  }
  return sessions_.at(it->second.first).samplers.at(it->second.second);
}

absl::StatusOr<std::vector<SamplerEntry>> SessionManager::ListSamplers(const std::string& session_id) const {
  absl::MutexLock lock(&mu_);
  const Session* s = FindLocked(session_id);
  if (s == nullptr) return SessionNotFound(session_id);
  std::vector<SamplerEntry> out;
  for (const auto& [seq, e] : s->samplers) out.push_back(e);
  return out;
}

absl::Status SessionManager::DeleteSampler(const std::string& sampler_id) {
  absl::MutexLock lock(&mu_);
  auto it = sampler_ids_.find(sampler_id);
  if (it == sampler_ids_.end()) {
    if (lost_.erase(sampler_id) > 0) return absl::OkStatus();
    return absl::NotFoundError(absl::StrCat("sampler '", sampler_id, "' not found"));
  }
  sessions_.at(it->second.first).samplers.erase(it->second.second);
  sampler_ids_.erase(it);
  return absl::OkStatus();
}

int64_t SessionManager::sampler_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(sampler_ids_.size());
}

int64_t SessionManager::sampler_bytes() const {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [seq, s] : sessions_) {
    for (const auto& [k, e] : s.samplers) n += e.model->bytes();
  }
  return n;
}

}  // namespace sampled::server
