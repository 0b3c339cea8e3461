// The Backend and the state directory (--state-dir): what is written when an object is made, changes
// state or goes, and how OpenState rebuilds everything at start. See docs/architecture.md, "Durable state".
#include <iostream>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/flow_memory.h"
#include "core/flows/flow_state.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"
#include "core/targets/torchscript_target.h"
#include "core/training/sampler.h"
#include "server/backend.h"
#include "server/common/guarded.h"

namespace sampled::server {

// Writing ----------------------------------------------------------------------------------------------

absl::StatusOr<SessionView> Backend::StoreSession(absl::StatusOr<SessionView> view) {
  if (!view.ok() || durable_ == nullptr) return view;
  if (absl::Status s = durable_->SaveSession(view->info); !s.ok()) {
    sessions_.DeleteSession(view->info.id).IgnoreError();
    return absl::Status(s.code(), absl::StrCat("the session could not be stored: ", s.message()));
  }
  return view;
}

absl::StatusOr<TargetEntry> Backend::StoreTarget(absl::StatusOr<TargetEntry> entry, const TargetRecipe& recipe,
                                                 const Points* data, std::string_view archive) {
  if (!entry.ok() || durable_ == nullptr) return entry;
  absl::Status s = Guarded("storing the target", [&] {
    std::string header;
    std::vector<std::string_view> payload;
    if (data != nullptr) payload = ArrayPayload(*data, &header);
    if (!archive.empty()) payload = {archive};
    return durable_->SaveTarget(*entry, recipe, payload);
  });
  if (!s.ok()) {
    sessions_.DeleteTarget(entry->session_id, entry->id).IgnoreError();
    return absl::Status(s.code(), absl::StrCat("the target could not be stored: ", s.message()));
  }
  SAMPLED_RETURN_IF_ERROR(KeptWithSession(entry->session_id, entry->id));
  return entry;
}

absl::StatusOr<SamplerEntry> Backend::StoreSampler(SamplerEntry entry) {
  SAMPLED_ASSIGN_OR_RETURN(SamplerEntry stored, sessions_.AddSampler(std::move(entry)));
  if (durable_ == nullptr) return stored;
  absl::Status s = Guarded("storing the sampler", [&] { return durable_->SaveSampler(stored); });
  if (!s.ok()) {
    sessions_.DeleteSampler(stored.id).IgnoreError();
    return absl::Status(s.code(), absl::StrCat("the sampler could not be stored: ", s.message()));
  }
  SAMPLED_RETURN_IF_ERROR(KeptWithSession(stored.session_id, stored.id));
  return stored;
}

absl::Status Backend::StoreJob(const std::shared_ptr<Job>& job, const Record& spec, std::string_view checkpoint,
                               int64_t step) {
  if (durable_ == nullptr) return absl::OkStatus();
  const absl::Time t0 = absl::Now();
  if (absl::Status s = durable_->SaveJob(job->Snapshot(), spec, checkpoint); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("the job could not be stored: ", s.message()));
  }
  job->AttachStore(durable_, options_.checkpoint, step, absl::Now() - t0);
  return absl::OkStatus();
}

absl::Status Backend::KeptWithSession(const std::string& session_id, const std::string& id) {
  if (sessions_.GetSession(session_id).ok()) return absl::OkStatus();
  Forget(id);  // the session went while this was written: its deletion did not see the row
  return absl::NotFoundError(absl::StrCat("session '", session_id, "' not found"));
}

void Backend::Forget(const std::string& id) {
  if (durable_ == nullptr) return;
  if (absl::Status s = durable_->Delete(id); !s.ok()) std::cerr << "sampled: forgetting '" << id << "': " << s << "\n";
}

// Reading back -----------------------------------------------------------------------------------------

absl::Status Backend::OpenState() {
  if (options_.state_dir.empty()) return absl::OkStatus();
  SAMPLED_ASSIGN_OR_RETURN(durable_, DurableState::Open(options_.state_dir));
  const int orphans = durable_->store().RemoveOrphanFiles();
  if (orphans > 0) std::cerr << "sampled: removed " << orphans << " unreferenced files from the state directory\n";
  durable_->store().ExpireRequests(absl::Now() - options_.request_id_ttl).IgnoreError();
  requests_.SetStore(&durable_->store());
  SAMPLED_ASSIGN_OR_RETURN(std::vector<StoredRow> rows, durable_->store().List());
  RestoreReport& report = restored_;
  const auto lost = [&](const StoredRow& row, const absl::Status& why) {
    ++report.lost;
    report.problems.push_back(absl::StrCat(row.kind, " ", row.id, ": ", why.ToString()));
  };
  // Sessions, targets and samplers first (in creation order: a density over data after its data), then
  // the jobs, which find their targets and the samplers they may already have left.
  std::map<std::string, std::string> made;  // job id -> the sampler it left
  // Rows of a session that has no row (a write that raced the session's deletion) are removed.
  std::set<std::string> sessions;
  for (const StoredRow& row : rows) {
    if (row.kind == "session") sessions.insert(row.id);
  }
  int stray = 0;
  for (auto it = rows.begin(); it != rows.end();) {
    if (it->kind != "session" && sessions.count(it->session_id) == 0 && durable_->Delete(it->id).ok()) {
      ++stray;
      it = rows.erase(it);
    } else {
      ++it;
    }
  }
  if (stray > 0) std::cerr << "sampled: removed " << stray << " rows of deleted sessions from the state directory\n";
  for (const StoredRow& row : rows) {
    if (row.kind == "job") continue;
    absl::StatusOr<Record> record = Record::Decode(row.record);
    absl::Status s;
    if (!record.ok()) {
      s = absl::DataLossError(
          absl::StrCat("its record in the state database is corrupted (", record.status().message(), ")"));
      if (row.kind == "session") {
        lost(row, s);
        continue;
      }
    } else if (row.kind == "session") {
      sessions_.RestoreSession(DurableState::DecodeSession(row, *record));
      ++report.sessions;
    } else if (row.kind == "target") {
      s = Guarded("restoring a target", [&] { return RestoreTarget(row, *record); });
      if (s.ok() && !DurableState::IsRetired(row)) ++report.targets;
    } else if (row.kind == "sampler") {
      s = Guarded("restoring a sampler", [&] { return RestoreSampler(row, *record); });
      if (s.ok()) {
        ++report.samplers;
        if (std::string job = record->Get("job_id"); !job.empty()) made[job] = row.id;
      }
    }
    if (!s.ok()) {
      lost(row, s);
      if (DurableState::IsRetired(row)) continue;  // not listed: its jobs say their target is gone
      sessions_.MarkLost(row.id, row.session_id,
                         absl::Status(s.code(), absl::StrCat(row.kind, " '", row.id,
                                                             "' could not be restored from the state directory: ",
                                                             s.message(), "; delete it")));
    }
  }
  restoring_ = true;
  for (const StoredRow& row : rows) {
    if (row.kind != "job") continue;
    absl::StatusOr<Record> record = Record::Decode(row.record);
    absl::Status s = record.ok() ? Guarded("restoring a job", [&] { return RestoreJob(row, *record, made); })
                                 : absl::DataLossError("its record in the state database is corrupted");
    if (s.ok()) {
      ++report.jobs;
    } else {
      lost(row, s);
      RestoreFailedJob(row, s);
    }
  }
  restoring_ = false;
  retired_targets_.clear();  // their jobs hold them
  for (const std::string& p : report.problems) std::cerr << "sampled: state directory: " << p << "\n";
  return absl::OkStatus();
}

absl::Status Backend::RestoreTarget(const StoredRow& row, const Record& record) {
  const TargetRecipe recipe = DurableState::DecodeRecipe(record);
  const auto data = [&]() -> absl::StatusOr<std::unique_ptr<EmpiricalTarget>> {
    SAMPLED_ASSIGN_OR_RETURN(std::string bytes, durable_->ReadTargetFile(row.id));
    SAMPLED_ASSIGN_OR_RETURN(Points points, ParseArrayPayload(bytes));
    bytes = std::string();
    return EmpiricalTarget::Create(std::move(points));
  };
  // Listed in its session, or (retired: deleted while jobs ran on it) kept for its jobs only.
  const auto keep = [&](std::shared_ptr<const Target> target) -> absl::Status {
    if (DurableState::IsRetired(row)) {
      retired_targets_[row.id] = std::move(target);
      return absl::OkStatus();
    }
    return sessions_
        .AddTarget(row.session_id, record.Get("name"), std::move(target), recipe.data_target_id, row.id,
                   record.GetTime("create_time"))
        .status();
  };
  std::unique_ptr<Target> target;
  if (recipe.kind == "data") {
    SAMPLED_ASSIGN_OR_RETURN(target, data());
  } else if (recipe.kind == "density" && recipe.data_target_id.empty()) {
    SAMPLED_ASSIGN_OR_RETURN(target, CreateAnalyticTarget(recipe.family, recipe.dim, recipe.params));
  } else if (recipe.kind == "density") {
    SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<EmpiricalTarget> over, data());
    SAMPLED_ASSIGN_OR_RETURN(target, CreateTargetOverData(recipe.family, *over, recipe.dim, recipe.params));
  } else if (recipe.kind == "torchscript") {
    if (!options_.allow_torchscript) {
      return absl::FailedPreconditionError(
          "it is a TorchScript model and this server runs without --allow-torchscript");
    }
    SAMPLED_ASSIGN_OR_RETURN(std::string bytes, durable_->ReadTargetFile(row.id));
    TorchScriptSpec ts;
    ts.dim = recipe.dim;
    ts.energy = recipe.energy;
    ts.deadline = absl::Now() + options_.limits.model_load_time;
    SAMPLED_ASSIGN_OR_RETURN(
        MemoryBudget::Charge charge,
        budget_.Reserve(MemoryKind::kTargets, 2 * static_cast<int64_t>(bytes.size()), "the TorchScript model"));
    SAMPLED_ASSIGN_OR_RETURN(target, LoadTorchScriptTarget(bytes, ts));
    return keep(Attach(std::shared_ptr<const Target>(std::move(target)), std::move(charge)));
  } else {
    return absl::DataLossError(absl::StrCat("unknown target kind '", recipe.kind, "'"));
  }
  SAMPLED_ASSIGN_OR_RETURN(MemoryBudget::Charge charge,
                           budget_.Reserve(MemoryKind::kTargets, target->bytes(), "the restored target"));
  SAMPLED_ASSIGN_OR_RETURN(std::shared_ptr<const Target> charged, Charged(std::move(target), std::move(charge)));
  return keep(std::move(charged));
}

absl::Status Backend::RestoreSampler(const StoredRow& row, const Record& record) {
  SAMPLED_ASSIGN_OR_RETURN(std::string bytes, durable_->ReadSamplerFile(row.id));
  SAMPLED_ASSIGN_OR_RETURN(training::SamplerModel model, training::DecodeSamplerFile(bytes));
  SAMPLED_ASSIGN_OR_RETURN(MemoryBudget::Charge charge,
                           budget_.Reserve(MemoryKind::kSamplers, model.bytes(), "the restored sampler"));
  SamplerEntry e = DurableState::DecodeSampler(row, record);
  e.model =
      Attach(std::shared_ptr<const training::SamplerModel>(std::make_shared<training::SamplerModel>(std::move(model))),
             std::move(charge));
  return sessions_.AddSampler(std::move(e)).status();
}

absl::Status Backend::RestoreJob(const StoredRow& row, const Record& record,
                                 const std::map<std::string, std::string>& made) {
  absl::StatusOr<Record> state = Record::Decode(row.state);
  if (!state.ok()) return absl::DataLossError("its snapshot in the state database is corrupted");
  JobSnapshot snapshot = DecodeSnapshot(*state);
  snapshot.id = row.id;
  snapshot.session_id = row.session_id;
  const bool unfinished = !IsTerminal(snapshot.state);
  if (unfinished) {
    snapshot.state = JobState::kQueued;
    snapshot.error = absl::OkStatus();
    snapshot.end_time = absl::InfinitePast();
  }
  absl::StatusOr<TargetEntry> target = sessions_.GetTarget(row.session_id, snapshot.target_id);
  if (auto it = retired_targets_.find(snapshot.target_id); !target.ok() && it != retired_targets_.end()) {
    TargetEntry retired;
    retired.id = it->first;
    retired.session_id = row.session_id;
    retired.target = it->second;
    target = std::move(retired);
  }
  if (!target.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("its target '", snapshot.target_id, "' is gone (", target.status().message(), ")"));
  }
  SAMPLED_ASSIGN_OR_RETURN(std::string checkpoint, durable_->ReadCheckpoint(row.id));
  if (snapshot.kind == "flow") {
    FlowJobSpec spec = DecodeFlowSpec(record.GetRecord("spec"));
    SAMPLED_ASSIGN_OR_RETURN(FlowState flow_state, ParseFlowState(checkpoint));
    checkpoint = std::string();
    const int64_t step = flow_state.step;
    SAMPLED_ASSIGN_OR_RETURN(
        MemoryBudget::Charge charge,
        budget_.Reserve(MemoryKind::kJobs, EstimateFlowBytes(spec.config, *target->target, flow_state.particles.rows()),
                        "the restored flow"));
    SAMPLED_ASSIGN_OR_RETURN(std::shared_ptr<FlowJob> restored,
                             FlowJob::Restore(snapshot, std::move(spec), target->target, std::move(flow_state),
                                              [this](const std::string& method, int64_t n, double seconds) {
                                                metrics_.RecordFlowStep(method, n, seconds);
                                              }));
    std::shared_ptr<FlowJob> job = Attach(std::move(restored), std::move(charge));
    job->AttachStore(durable_, options_.checkpoint, step);
    SAMPLED_RETURN_IF_ERROR(jobs_.Add(job));
    if (unfinished) {
      SAMPLED_RETURN_IF_ERROR(QueueFlowRun(job, std::max<int64_t>(0, snapshot.total_steps - step)));
      ++restored_.resumed;
    }
    return absl::OkStatus();
  }
  if (snapshot.kind != "training") return absl::DataLossError(absl::StrCat("unknown job kind '", snapshot.kind, "'"));
  training::TrainConfig config = DecodeTrainConfig(record.GetRecord("config"));
  config.threads = options_.torch_threads;
  TrainingJobSpec spec;
  SAMPLED_ASSIGN_OR_RETURN(spec.settings, training::ResolveTrainConfig(config, *target->target, train_limits()));
  spec.steps = record.GetInt("steps");
  spec.eval_every = record.GetInt("eval_every");
  spec.eval_draws = record.GetInt("eval_draws", 500);
  spec.from_sampler_id = record.Get("from_sampler_id");
  SAMPLED_ASSIGN_OR_RETURN(const int64_t bytes, TrainingBytes(spec.settings, target->target->dim(), spec.steps));
  SAMPLED_ASSIGN_OR_RETURN(MemoryBudget::Charge charge,
                           budget_.Reserve(MemoryKind::kJobs, bytes, "the restored training job"));
  // A run that stored its sampler just before the crash ended: it is not run again.
  bool ended_before = false;
  if (auto it = made.find(row.id); unfinished && it != made.end()) {
    snapshot.state = JobState::kSucceeded;
    snapshot.sampler_id = it->second;
    snapshot.end_time = absl::Now();
    ended_before = true;
  }
  SAMPLED_ASSIGN_OR_RETURN(
      std::shared_ptr<TrainingJob> restored,
      TrainingJob::Restore(
          snapshot, std::move(spec), target->target, record.Get("provenance"),
          MakeSamplerSink(row.session_id, snapshot.target_id, snapshot.method.empty() ? config.method : snapshot.method,
                          row.id),
          [this](const std::string& m, double seconds) { metrics_.RecordTrainingStep(m, seconds); }, checkpoint));
  std::shared_ptr<TrainingJob> job = Attach(std::move(restored), std::move(charge));
  job->AttachStore(durable_, options_.checkpoint, job->Snapshot().step);
  SAMPLED_RETURN_IF_ERROR(jobs_.Add(job));
  if (ended_before) durable_->SaveSnapshot(job->Snapshot());
  if (unfinished && !ended_before) {
    SAMPLED_RETURN_IF_ERROR(QueueTrainingRun(job));
    ++restored_.resumed;
  }
  return absl::OkStatus();
}

void Backend::RestoreFailedJob(const StoredRow& row, const absl::Status& why) {
  JobSnapshot snapshot;
  if (absl::StatusOr<Record> state = Record::Decode(row.state); state.ok()) snapshot = DecodeSnapshot(*state);
  snapshot.id = row.id;
  snapshot.session_id = row.session_id;
  snapshot.state = JobState::kFailed;
  snapshot.error =
      absl::Status(why.code() == absl::StatusCode::kOk ? absl::StatusCode::kDataLoss : why.code(),
                   absl::StrCat("the job could not be restored from the state directory: ", why.message()));
  if (snapshot.end_time == absl::InfinitePast()) snapshot.end_time = absl::Now();
  auto job = std::make_shared<Job>(std::move(snapshot));
  jobs_.Add(job).IgnoreError();
}

}  // namespace sampled::server
