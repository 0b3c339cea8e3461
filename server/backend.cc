#include "server/backend.h"

#include <algorithm>
#include <iostream>
#include <numeric>

#ifndef SAMPLED_VERSION
#define SAMPLED_VERSION "dev"
#endif

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/parallel.h"
#include "core/common/status_macros.h"
#include "core/flows/flow_memory.h"
#include "core/targets/empirical_target.h"
#include "core/targets/gmm_fit.h"
#include "core/training/ndsm.h"
#include "core/targets/target_family.h"
#include "core/targets/torchscript_target.h"
#include "server/common/guarded.h"
#include "server/common/ids.h"

namespace sampled::server {

Backend::Backend(const ServerOptions& options)
    : options_(options),
      budget_(options.max_memory < 0 ? DefaultMemoryBudget() : options.max_memory),
      sessions_(options.limits),
      requests_(options.request_id_ttl),
      jobs_(options.limits, options.workers, options.sample_workers, options.call_workers) {
  metrics_.SetHeldStateProvider([this] { return ComputeHeldState(); });
  jobs_.SetForgetObserver([this](const Job& job) { ForgetJob(job); });
}

Backend::~Backend() {
  metrics_.SetHeldStateProvider(nullptr);
  {
    absl::MutexLock lock(&calls_mu_);
    shutting_down_ = true;
    for (const auto& stop : live_calls_) stop->store(true);
  }
  jobs_.Shutdown(absl::ZeroDuration());  // the workers are joined when jobs_ goes, before live_calls_
}

HeldState Backend::ComputeHeldState() const {
  HeldState h;
  h.sessions = sessions_.session_count();
  h.targets = sessions_.target_count();
  const JobManager::Totals t = jobs_.ComputeTotals();
  h.samplers = sessions_.sampler_count();
  h.sampler_bytes = sessions_.sampler_bytes();
  h.bytes = sessions_.target_bytes() + t.bytes + h.sampler_bytes;
  h.queued_tasks = t.queued_tasks;
  for (const auto& [state, count] : t.by_state) h.jobs_by_state[JobStateName(state)] = count;
  for (int k = 0; k < kMemoryKinds; ++k) {
    h.memory_by_kind[MemoryKindName(static_cast<MemoryKind>(k))] = budget_.used(static_cast<MemoryKind>(k));
  }
  h.memory_budget = budget_.limit();
  return h;
}

absl::StatusOr<std::shared_ptr<const Target>> Backend::Charged(std::unique_ptr<Target> target,
                                                               MemoryBudget::Charge charge) {
  SAMPLED_RETURN_IF_ERROR(charge.Resize(target->bytes(), "the target"));
  return Attach(std::shared_ptr<const Target>(std::move(target)), std::move(charge));
}

absl::Status Backend::CheckArrayValues(int64_t rows, int64_t dim, const std::string& what) const {
  if (dim > 0 && rows > options_.limits.max_array_values / dim) {
    return absl::ResourceExhaustedError(absl::StrCat(what, " of ", rows, " x ", dim, " values exceed the server's limit of ",
                                                     options_.limits.max_array_values, " values per array"));
  }
  return absl::OkStatus();
}

absl::Status Backend::CheckSessionQuota(const std::string& session_id, int64_t bytes, const std::string& what) const {
  const int64_t quota = options_.limits.max_session_bytes;
  if (quota <= 0) return absl::OkStatus();
  absl::StatusOr<SessionInfo> info = sessions_.GetSession(session_id);
  if (!info.ok()) return info.status();
  int64_t jobs = 0, job_bytes = 0, sampler_bytes = 0;
  jobs_.SessionUsage(session_id, &jobs, &job_bytes);
  if (absl::StatusOr<std::vector<SamplerEntry>> samplers = sessions_.ListSamplers(session_id); samplers.ok()) {
    for (const SamplerEntry& e : *samplers) sampler_bytes += e.model->bytes();
  }
  const int64_t held = info->target_bytes + job_bytes + sampler_bytes;
  if (held + bytes > quota) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "session '", session_id, "' holds ", held, " bytes; ", what, " (", bytes, " bytes) would pass its quota of ",
        quota, " bytes (--max-session-bytes): delete targets, jobs or samplers of the session, or ask for less"));
  }
  return absl::OkStatus();
}

absl::Status Backend::CheckDim(int64_t dim) const {
  if (dim < 0 || dim > options_.limits.max_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("dimension must be between 1 and the server's limit ", options_.limits.max_dim, ", got ", dim));
  }
  return absl::OkStatus();
}

// Sessions ---------------------------------------------------------------------------------------------

namespace {
SessionView View(const SessionInfo& info, const JobManager& jobs) {
  SessionView v;
  v.info = info;
  int64_t job_bytes = 0;
  jobs.SessionUsage(info.id, &v.job_count, &job_bytes);
  v.bytes_held = info.target_bytes + job_bytes;
  return v;
}
}  // namespace

absl::StatusOr<SessionView> Backend::CreateSession(const std::string& name) {
  SAMPLED_ASSIGN_OR_RETURN(SessionInfo info, sessions_.CreateSession(name));
  return StoreSession(View(info, jobs_));
}

absl::StatusOr<SessionView> Backend::GetSession(const std::string& id) {
  SAMPLED_ASSIGN_OR_RETURN(SessionInfo info, sessions_.GetSession(id));
  return View(info, jobs_);
}

absl::StatusOr<Page<SessionView>> Backend::ListSessions(const PageRequest& page) {
  SAMPLED_ASSIGN_OR_RETURN(Page<SessionInfo> infos, sessions_.ListSessions(page));
  Page<SessionView> out;
  out.next_page_token = infos.next_page_token;
  for (const SessionInfo& info : infos.items) out.items.push_back(View(info, jobs_));
  return out;
}

absl::StatusOr<int> Backend::DeleteSession(const std::string& id) {
  // Forget the session first, so no new job can find it, then cancel what it ran.
  SAMPLED_RETURN_IF_ERROR(sessions_.DeleteSession(id));
  if (durable_ != nullptr) {
    if (absl::Status s = durable_->DeleteSession(id); !s.ok()) std::cerr << "sampled: " << s << "\n";
  }
  return jobs_.CancelSession(id);
}

// Targets ----------------------------------------------------------------------------------------------

absl::Status Backend::DeleteTarget(const std::string& session_id, const std::string& target_id) {
  const bool used = durable_ != nullptr && jobs_.UsesTarget(session_id, target_id);
  if (used) {
    // Its jobs keep it (their particles stay readable, a flow steppable): the row stays, retired, so a
    // restart rebuilds them; it goes with the last of them (ForgetJob) or the session. Retired first: a
    // failed write leaves the target listed, here and after a restart.
    SAMPLED_RETURN_IF_ERROR(durable_->RetireTarget(target_id));
  }
  SAMPLED_RETURN_IF_ERROR(sessions_.DeleteTarget(session_id, target_id));
  if (!used) Forget(target_id);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ChargedAssembler>> Backend::BeginUpload(const UploadSpec& spec) {
  SAMPLED_RETURN_IF_ERROR(sessions_.CheckNewTarget(spec.session_id, spec.name));
  if (spec.dim < 1) return absl::InvalidArgumentError(absl::StrCat("upload header: dim must be >= 1, got ", spec.dim));
  SAMPLED_RETURN_IF_ERROR(CheckDim(spec.dim));
  if (spec.expected_rows < 0) {
    return absl::InvalidArgumentError(absl::StrCat("upload header: expected_rows must be >= 0, got ", spec.expected_rows));
  }
  if (spec.expected_rows > options_.limits.max_points_per_target) {
    return absl::ResourceExhaustedError(absl::StrCat("upload of ", spec.expected_rows,
                                                     " rows exceeds the server's limit of ",
                                                     options_.limits.max_points_per_target, " points per target"));
  }
  if (spec.expected_rows > 0) {
    SAMPLED_RETURN_IF_ERROR(CheckArrayValues(spec.expected_rows, spec.dim, "upload"));
    SAMPLED_RETURN_IF_ERROR(
        CheckSessionQuota(spec.session_id, spec.expected_rows * spec.dim * 8, absl::StrCat("the upload '", spec.name, "'")));
  }
  const int64_t max_rows =
      std::min(options_.limits.max_points_per_target, options_.limits.max_array_values / spec.dim);
  return ChargedAssembler::Create(budget_, MemoryKind::kUploads, spec.dtype, spec.dim, max_rows, spec.expected_rows,
                                  absl::StrCat("the upload '", spec.name, "'"));
}

void Backend::FinishUpload(const UploadSpec& spec, std::unique_ptr<ChargedAssembler> assembler,
                           std::function<bool()> abandoned, Done<TargetEntry> done) {
  std::shared_ptr<ChargedAssembler> held(std::move(assembler));
  auto task = [this, spec, held, abandoned = std::move(abandoned), done] {
    absl::StatusOr<TargetEntry> stored = Guarded("storing the upload", [&]() -> absl::StatusOr<TargetEntry> {
      // The target's bytes are charged before the array is trimmed and wrapped; the buffer's charge goes
      // with the assembler.
      const int64_t rows = held->assembler().rows_so_far();
      SAMPLED_RETURN_IF_ERROR(
          CheckSessionQuota(spec.session_id, rows * spec.dim * 8, absl::StrCat("the upload '", spec.name, "'")));
      SAMPLED_ASSIGN_OR_RETURN(MemoryBudget::Charge charge,
                               budget_.Reserve(MemoryKind::kTargets, rows * spec.dim * 8, "the uploaded target"));
      SAMPLED_ASSIGN_OR_RETURN(Points points, held->assembler().Finish(spec.expected_rows));
      held->charge().Release();
      SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<EmpiricalTarget> target, EmpiricalTarget::Create(std::move(points)));
      if (abandoned && abandoned()) return absl::CancelledError("the upload was cancelled");
      SAMPLED_ASSIGN_OR_RETURN(std::shared_ptr<const Target> charged, Charged(std::move(target), std::move(charge)));
      const Points* data = charged->samples();
      return StoreTarget(sessions_.AddTarget(spec.session_id, spec.name, std::move(charged)), DataRecipe(), data);
    });
    done(std::move(stored));
  };
  auto cancelled = [done] { done(absl::UnavailableError("the server is shutting down")); };
  if (absl::Status s = jobs_.SubmitCall(spec.session_id, std::move(task), std::move(cancelled)); !s.ok()) done(s);
}

void Backend::DefineTarget(DefineTargetArgs args, Done<TargetEntry> done) {
  if (absl::Status s = sessions_.CheckNewTarget(args.session_id, args.name); !s.ok()) return done(s);
  if (absl::Status s = CheckDim(args.dim); !s.ok()) return done(s);
  if (args.sample_count < 0) {
    return done(absl::InvalidArgumentError(absl::StrCat("sample_count must be >= 0, got ", args.sample_count)));
  }
  if (args.sample_count > options_.limits.max_points_per_target) {
    return done(absl::ResourceExhaustedError(absl::StrCat("sample_count ", args.sample_count,
                                                          " exceeds the server's limit of ",
                                                          options_.limits.max_points_per_target, " points per target")));
  }
  if (args.dim > 0) {
    if (absl::Status s = CheckArrayValues(args.sample_count, args.dim, "sample_count draws"); !s.ok()) return done(s);
  }
  const std::string session_id = args.session_id;
  auto task = [this, args = std::move(args), done] {
    done(Guarded("defining the target", [&]() -> absl::StatusOr<TargetEntry> {
      // Charged before anything is built: a family's matrices (at most a few d x d) and the draws.
      const int64_t d = std::max<int64_t>(args.dim, 2);
      SAMPLED_ASSIGN_OR_RETURN(
          MemoryBudget::Charge charge,
          budget_.Reserve(MemoryKind::kTargets, 4 * d * d * 8 + 2 * args.sample_count * d * 8, "the target"));
      std::unique_ptr<Target> target;
      if (!args.data_target_id.empty()) {
        absl::StatusOr<TargetEntry> data = sessions_.GetTarget(args.session_id, args.data_target_id);
        if (!data.ok()) {
          return absl::Status(data.status().code(), absl::StrCat("data_target_id: ", data.status().message()));
        }
        // What the family works in while it builds (gmm: EM over the data), charged until it is built.
        SAMPLED_ASSIGN_OR_RETURN(const int64_t build_bytes, TargetBuildBytes(args.family, *data->target, args.params));
        SAMPLED_ASSIGN_OR_RETURN(
            MemoryBudget::Charge build,
            budget_.Reserve(MemoryKind::kTargets, build_bytes, absl::StrCat("fitting the target '", args.name, "'")));
        SAMPLED_ASSIGN_OR_RETURN(target, CreateTargetOverData(args.family, *data->target, args.dim, args.params));
      } else {
        SAMPLED_ASSIGN_OR_RETURN(target, CreateAnalyticTarget(args.family, args.dim, args.params));
      }
      SAMPLED_RETURN_IF_ERROR(CheckArrayValues(args.sample_count, target->dim(), "sample_count draws"));
      // The family may have fixed the dimension (dim 0 in the request): charge the draws by the real one.
      SAMPLED_RETURN_IF_ERROR(
          charge.Resize(target->bytes() + 2 * args.sample_count * target->dim() * 8, "the target's draws"));
      SAMPLED_RETURN_IF_ERROR(CheckSessionQuota(
          args.session_id, args.sample_count > 0 ? args.sample_count * target->dim() * 8 : target->bytes(),
          absl::StrCat("the target '", args.name, "'")));
      if (args.sample_count == 0) {
        SAMPLED_ASSIGN_OR_RETURN(std::shared_ptr<const Target> charged, Charged(std::move(target), std::move(charge)));
        // A density over data keeps its own copy of the data in the state directory: it is rebuilt at
        // start even when the data target was deleted since.
        const Points* data = nullptr;
        std::shared_ptr<const Target> data_target;
        if (!args.data_target_id.empty()) {
          if (absl::StatusOr<TargetEntry> e = sessions_.GetTarget(args.session_id, args.data_target_id); e.ok()) {
            data_target = e->target;
            data = data_target->samples();
          }
        }
        // A family that builds another (gmm: the mixture it fitted) is stored as what it built: a restart
        // does not fit it again.
        if (charged->family() != args.family) {
          const TargetRecipe built = DensityRecipe(charged->family(), charged->dim(), charged->params(), "");
          return StoreTarget(sessions_.AddTarget(args.session_id, args.name, std::move(charged), args.data_target_id),
                             built, nullptr);
        }
        return StoreTarget(sessions_.AddTarget(args.session_id, args.name, std::move(charged), args.data_target_id),
                           DensityRecipe(args.family, args.dim, args.params, args.data_target_id), data);
      }
      if (!target->can_sample()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "family '", args.family, "' has no exact sampler; define it as a density (sample_count 0)"));
      }
      Rng rng(args.seed);
      Points draws;
      SAMPLED_RETURN_IF_ERROR(target->Sample(args.sample_count, rng, &draws));
      target.reset();
      SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<EmpiricalTarget> data, EmpiricalTarget::Create(std::move(draws)));
      SAMPLED_ASSIGN_OR_RETURN(std::shared_ptr<const Target> charged, Charged(std::move(data), std::move(charge)));
      const Points* samples = charged->samples();
      return StoreTarget(sessions_.AddTarget(args.session_id, args.name, std::move(charged)), DataRecipe(), samples);
    }));
  };
  auto cancelled = [done] { done(absl::UnavailableError("the server is shutting down")); };
  if (absl::Status s = jobs_.SubmitCall(session_id, std::move(task), std::move(cancelled)); !s.ok()) done(s);
}

absl::Status Backend::BeginModelUpload(const ModelSpec& spec) const {
  if (!options_.allow_torchscript) {
    return absl::FailedPreconditionError(
        "TorchScript model targets are off on this server: they run uploaded code; start sampled with "
        "--allow-torchscript to accept them (docs/torchscript.md)");
  }
  SAMPLED_RETURN_IF_ERROR(sessions_.CheckNewTarget(spec.session_id, spec.name));
  if (spec.dim < 1) return absl::InvalidArgumentError(absl::StrCat("model header: dim must be >= 1, got ", spec.dim));
  SAMPLED_RETURN_IF_ERROR(CheckDim(spec.dim));
  if (spec.expected_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model header: expected_bytes must be >= 0, got ", spec.expected_bytes));
  }
  if (spec.expected_bytes > options_.limits.max_model_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the model's ", spec.expected_bytes,
                                                     " bytes are past the server's limit of ",
                                                     options_.limits.max_model_bytes, " (--max-model-bytes)"));
  }
  return absl::OkStatus();
}

void Backend::FinishModelUpload(const ModelSpec& spec, std::string bytes, std::function<bool()> abandoned,
                                Done<TargetEntry> done) {
  if (spec.expected_bytes > 0 && static_cast<int64_t>(bytes.size()) != spec.expected_bytes) {
    return done(absl::InvalidArgumentError(absl::StrCat("the model upload holds ", bytes.size(),
                                                        " bytes; its header announced ", spec.expected_bytes)));
  }
  auto task = [this, spec, bytes = std::move(bytes), abandoned = std::move(abandoned), done] {
    TorchScriptSpec ts;
    ts.dim = spec.dim;
    ts.energy = spec.energy;
    ts.deadline = absl::Now() + options_.limits.model_load_time;  // from the start of the work, not the queue
    // The loaded module holds about what the archive does (its code and tensors); charged at twice that.
    absl::StatusOr<MemoryBudget::Charge> charge =
        budget_.Reserve(MemoryKind::kTargets, 2 * static_cast<int64_t>(bytes.size()), "the TorchScript model");
    if (!charge.ok()) return done(charge.status());
    absl::StatusOr<std::unique_ptr<Target>> target = LoadTorchScriptTarget(bytes, ts);
    if (!target.ok()) return done(target.status());
    // A client that gave up (cancelled, or past its deadline) was told so: store nothing for it.
    if (abandoned && abandoned()) return done(absl::CancelledError("the upload was cancelled"));
    done(StoreTarget(sessions_.AddTarget(spec.session_id, spec.name,
                                         Attach(std::shared_ptr<const Target>(*std::move(target)), *std::move(charge))),
                     TorchScriptRecipe(spec.dim, spec.energy), nullptr, bytes));
  };
  auto cancelled = [done] { done(absl::UnavailableError("the server is shutting down")); };
  if (absl::Status s = jobs_.SubmitSample(std::move(task), std::move(cancelled)); !s.ok()) done(s);
}

// Jobs -------------------------------------------------------------------------------------------------

namespace {
JobSnapshot NewJobIdentity(const std::string& kind, const std::string& session_id, const std::string& target_id,
                           int64_t total_steps) {
  JobSnapshot identity;
  identity.id = NewId('j');
  identity.session_id = session_id;
  identity.kind = kind;
  identity.target_id = target_id;
  identity.create_time = absl::Now();
  identity.total_steps = total_steps;
  return identity;
}
}  // namespace

absl::Status Backend::AddJob(const std::shared_ptr<Job>& job) {
  if (absl::Status s = jobs_.Add(job); !s.ok()) {
    Forget(job->id());
    return s;
  }
  if (!sessions_.GetSession(job->session_id()).ok()) {  // deleted while the job was being built
    jobs_.Remove(job->id());
    Forget(job->id());
    return absl::NotFoundError(absl::StrCat("session '", job->session_id(), "' not found"));
  }
  // Its target may have been deleted too, before DeleteTarget could see the job (and retire the target).
  if (const std::string target = job->Snapshot().target_id;
      !target.empty() && !sessions_.GetTarget(job->session_id(), target).ok()) {
    jobs_.Remove(job->id());
    Forget(job->id());
    return absl::NotFoundError(absl::StrCat("target '", target, "' was deleted while the job was being made"));
  }
  return absl::OkStatus();
}

absl::Status Backend::QueueJob(const std::shared_ptr<Job>& job, std::function<bool()> slice,
                               std::function<void()> abandon) {
  // Jobs resumed at start were admitted before the restart: the queue limits do not refuse them.
  absl::Status queued = jobs_.SubmitJob(job->session_id(), std::move(slice), std::move(abandon), restoring_);
  if (!queued.ok()) {
    jobs_.Remove(job->id());
    Forget(job->id());
  }
  return queued;
}

void Backend::ForgetJob(const Job& job) {
  Forget(job.id());
  // A target deleted while this job ran on it was kept (retired) for its jobs: the last one takes it along.
  const std::string target = job.Snapshot().target_id;
  if (durable_ != nullptr && !target.empty() && !sessions_.GetTarget(job.session_id(), target).ok() &&
      !jobs_.UsesTarget(job.session_id(), target)) {
    Forget(target);
  }
}

absl::Status Backend::DeleteJob(const std::string& job_id) {
  SAMPLED_ASSIGN_OR_RETURN(std::shared_ptr<Job> job, jobs_.Get(job_id));
  jobs_.Remove(job_id);
  ForgetJob(*job);
  job->Close("the job was deleted");  // a running job stops at its next step or block; its memory goes with
                                      // the last reference
  return absl::OkStatus();
}

std::shared_ptr<std::atomic<bool>> Backend::RegisterCall(std::shared_ptr<std::atomic<bool>> stop) {
  if (stop == nullptr) stop = std::make_shared<std::atomic<bool>>(false);
  absl::MutexLock lock(&calls_mu_);
  if (shutting_down_) stop->store(true);
  live_calls_.insert(stop);
  return stop;
}

void Backend::UnregisterCall(const std::shared_ptr<std::atomic<bool>>& stop) {
  absl::MutexLock lock(&calls_mu_);
  live_calls_.erase(stop);
}

// Flows ------------------------------------------------------------------------------------------------

void Backend::StartFlow(StartFlowArgs args, Done<JobSnapshot> done) {
  const Limits& limits = options_.limits;
  absl::StatusOr<TargetEntry> target = sessions_.GetTarget(args.session_id, args.target_id);
  if (!target.ok()) return done(target.status());
  const FlowJobSpec& spec = args.spec;
  if (spec.steps < 0 || spec.steps > limits.max_steps) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("steps must be between 0 and the server's limit ", limits.max_steps, ", got ", spec.steps)));
  }
  if (spec.eval_every < 0) {
    return done(absl::InvalidArgumentError(absl::StrCat("eval_every must be >= 0, got ", spec.eval_every)));
  }
  std::shared_ptr<const Target> init_target;  // keeps the given particles alive while the job is built
  if (!args.init_target_id.empty()) {
    absl::StatusOr<TargetEntry> e = sessions_.GetTarget(args.session_id, args.init_target_id);
    if (!e.ok()) return done(e.status());
    if (e->target->samples() == nullptr) {
      return done(absl::InvalidArgumentError(absl::StrCat(
          "init target '", args.init_target_id, "' is a density; initial particles must be an uploaded array")));
    }
    init_target = e->target;
  }
  const int64_t particles = init_target != nullptr ? init_target->samples()->rows() : args.particle_count;
  if (particles > limits.max_particles) {
    return done(absl::ResourceExhaustedError(
        absl::StrCat(particles, " particles exceed the server's limit of ", limits.max_particles, " per flow")));
  }
  if (absl::Status s = CheckArrayValues(particles, target->target->dim(), "flow particles"); !s.ok()) return done(s);
  // A job the session's limits would refuse is refused before its particles are drawn and stored.
  if (absl::Status s = jobs_.CheckRoom(args.session_id, /*queued=*/spec.steps > 0); !s.ok()) return done(s);
  const std::string session_id = args.session_id;
  // The particles (up to max_array_values draws) and the flow's set-up are built on a call worker.
  auto task = [this, args = std::move(args), target = target->target, init_target, particles, done] {
    // The state and the method's workspace, estimated and charged before they are allocated.
    FlowConfig config = args.spec.config;
    const int64_t flow_bytes = EstimateFlowBytes(config, *target, particles);
    if (absl::Status s = CheckSessionQuota(args.session_id, flow_bytes,
                                           absl::StrCat("a ", config.method, " flow of ", particles, " particles"));
        !s.ok()) {
      return done(s);
    }
    absl::StatusOr<MemoryBudget::Charge> charge =
        budget_.Reserve(MemoryKind::kJobs, flow_bytes,
                        absl::StrCat("a ", config.method, " flow of ", particles, " particles in ", target->dim(), "-D"));
    if (!charge.ok()) return done(charge.status());
    absl::StatusOr<std::shared_ptr<FlowJob>> created = Guarded("creating the flow", [&] {
      InitialParticles init;
      init.count = args.particle_count;
      init.mean = args.init_mean;
      init.std = args.init_std;
      if (init_target != nullptr) init.given = init_target->samples();
      JobSnapshot identity = NewJobIdentity("flow", args.session_id, args.target_id, args.spec.steps);
      FlowJobSpec job_spec = args.spec;
      if (job_spec.config.schedule_steps == 0) job_spec.config.schedule_steps = args.spec.steps;
      return FlowJob::Create(std::move(identity), std::move(job_spec), target, init,
                             [this](const std::string& method, int64_t n, double seconds) {
                               metrics_.RecordFlowStep(method, n, seconds);
                             });
    });
    if (!created.ok()) return done(created.status());
    std::shared_ptr<FlowJob> job = Attach(*std::move(created), *std::move(charge));
    if (durable_ != nullptr) {  // stored before it is listed: a job seen by a client is on disk
      Record spec;
      spec.SetRecord("spec", EncodeFlowSpec(job->spec()));
      if (absl::Status s = Guarded("storing the flow", [&] { return StoreJob(job, spec, job->SerializeState(), 0); });
          !s.ok()) {
        return done(s);
      }
    }
    if (absl::Status s = AddJob(job); !s.ok()) return done(s);
    if (args.spec.steps == 0) {
      FlowRun run;  // created for interactive stepping: succeeded at step 0
      job->RunSlice(run, options_.slice_time, nullptr);
      return done(job->Snapshot());
    }
    if (absl::Status s = QueueFlowRun(job, args.spec.steps); !s.ok()) return done(s);
    done(job->Snapshot());
  };
  auto cancelled = [done] { done(absl::UnavailableError("the server is shutting down")); };
  if (absl::Status s = jobs_.SubmitCall(session_id, std::move(task), std::move(cancelled)); !s.ok()) done(s);
}

absl::Status Backend::QueueFlowRun(const std::shared_ptr<FlowJob>& job, int64_t steps) {
  auto run = std::make_shared<FlowRun>();
  run->steps = steps;
  return QueueJob(
      job,
      [this, job, run] {
        return job->RunSlice(*run, options_.slice_time,
                             [this, session = job->session_id()] { return jobs_.JobsWaiting(session); });
      },
      [job, run] { job->AbandonRun(*run); });
}

std::function<void()> Backend::StepFlow(const std::string& job_id, int64_t steps, Done<StepFlowResult> done) {
  if (steps < 1 || steps > options_.limits.max_steps) {
    done(absl::InvalidArgumentError(
        absl::StrCat("steps must be between 1 and the server's limit ", options_.limits.max_steps, ", got ", steps)));
    return [] {};
  }
  absl::StatusOr<std::shared_ptr<FlowJob>> job = jobs_.GetFlow(job_id);
  if (!job.ok()) {
    done(job.status());
    return [] {};
  }
  absl::StatusOr<Job::Requeued> requeued = (*job)->Requeue();
  if (!requeued.ok()) {
    done(requeued.status());
    return [] {};
  }
  auto run = std::make_shared<FlowRun>();
  run->generation = requeued->generation;
  run->steps = steps;
  run->collect_stats = true;
  // The run's outcome: OK with the job (succeeded, or failed with the stats of the steps before the
  // failure); CANCELLED when it was cancelled or never started.
  auto answer = [job = *job, run, done] {
    if (!run->started || run->status.code() == absl::StatusCode::kCancelled) {
      return done(run->status.ok() ? absl::CancelledError("the run was cancelled") : run->status);
    }
    done(StepFlowResult{job->Snapshot(), std::move(run->stats), run->stats_omitted});
  };
  auto slice = [this, job = *job, run, answer] {
    if (job->RunSlice(*run, options_.slice_time, [this, session = job->session_id()] { return jobs_.CallsWaiting(session); })) {
      return true;
    }
    answer();
    return false;
  };
  auto abandon = [job = *job, run, done] {
    job->AbandonRun(*run);
    done(absl::UnavailableError("the server is shutting down"));
  };
  if (absl::Status s = jobs_.SubmitCallSliced((*job)->session_id(), std::move(slice), std::move(abandon)); !s.ok()) {
    (*job)->UndoRequeue(requeued->previous);
    done(s);
    return [] {};
  }
  return [job = *job, generation = requeued->generation] { job->CancelRun(generation); };
}

void Backend::ReadParticles(const std::string& job_id, Done<ParticlesView> done) {
  absl::StatusOr<std::shared_ptr<FlowJob>> job = jobs_.GetFlow(job_id);
  if (!job.ok()) return done(job.status());
  (*job)->ReadParticles([done](absl::StatusOr<Points> p, int64_t step) {
    if (!p.ok()) return done(p.status());
    done(ParticlesView{*std::move(p), step});
  });
}

absl::StatusOr<JobSnapshot> Backend::CancelJob(const std::string& job_id) {
  SAMPLED_ASSIGN_OR_RETURN(std::shared_ptr<Job> job, jobs_.Get(job_id));
  return job->Cancel();
}

// Evaluation -------------------------------------------------------------------------------------------

namespace {
absl::Status DimensionMismatch(int64_t samples, int64_t target) {
  return absl::InvalidArgumentError(
      absl::StrCat("samples have dimension ", samples, " but the target has dimension ", target));
}
}  // namespace

void Backend::Evaluate(EvaluateArgs args, Done<EvaluateResult> done) {
  const Limits& limits = options_.limits;
  absl::StatusOr<TargetEntry> target = sessions_.GetTarget(args.session_id, args.target_id);
  if (!target.ok()) return done(target.status());
  std::vector<std::string> names = args.metrics.empty() ? DefaultMetrics(*target->target) : args.metrics;
  for (const std::string& name : names) {
    absl::StatusOr<const Metric*> m = FindMetric(name);
    if (!m.ok()) return done(m.status());
    if (!(*m)->Supports(*target->target)) {
      return done(absl::FailedPreconditionError(
          absl::StrCat("metric '", name, "' does not apply to target '", args.target_id, "': ", (*m)->description())));
    }
  }
  // The reference draws of the sample-based metrics are an array like any other.
  if (args.options.reference_size > limits.max_points_per_target) {
    return done(absl::ResourceExhaustedError(absl::StrCat("reference_size ", args.options.reference_size,
                                                          " exceeds the server's limit of ", limits.max_points_per_target,
                                                          " points (--max-points-per-target)")));
  }
  if (absl::Status s = CheckArrayValues(args.options.reference_size, target->target->dim(), "reference_size draws");
      !s.ok()) {
    return done(s);
  }
  // Runs `measure` on a call worker, stoppable between blocks by the client (args.stop) and by shutdown.
  const std::string session_id = args.session_id;
  std::shared_ptr<std::atomic<bool>> stop = args.stop;
  auto submit = [this, session_id, stop, done](std::function<absl::StatusOr<EvaluateResult>()> measure) {
    auto task = [this, stop, measure = std::move(measure), done] {
      std::shared_ptr<std::atomic<bool>> flag = RegisterCall(stop);
      absl::StatusOr<EvaluateResult> r = absl::InternalError("unset");
      {
        ScopedStopFlag scope(flag.get());
        r = Guarded("computing metrics", measure);
      }
      UnregisterCall(flag);
      done(std::move(r));
    };
    auto cancelled = [done] { done(absl::UnavailableError("the server is shutting down")); };
    if (absl::Status s = jobs_.SubmitCall(session_id, std::move(task), std::move(cancelled)); !s.ok()) done(s);
  };
  // Measures `samples` (moved into the task): checked for their dimension here, for finite values there.
  auto compute = [submit, target = target->target, names, options = args.options, done](
                     Points samples, std::shared_ptr<MemoryBudget::Charge> charge) {
    if (samples.cols() != target->dim()) return done(DimensionMismatch(samples.cols(), target->dim()));
    auto held = std::make_shared<Points>(std::move(samples));
    submit([target, names, options, held, charge]() -> absl::StatusOr<EvaluateResult> {
      SAMPLED_RETURN_IF_ERROR(CheckFinite(*held, "samples"));
      SAMPLED_ASSIGN_OR_RETURN(auto values, ComputeMetrics(names, *held, *target, options));
      return EvaluateResult{std::move(values), held->rows()};
    });
  };
  if (args.samples.has_value()) return compute(*std::move(args.samples), std::move(args.samples_charge));
  if (!args.samples_target_id.empty()) {
    absl::StatusOr<TargetEntry> source = sessions_.GetTarget(args.session_id, args.samples_target_id);
    if (!source.ok()) return done(source.status());
    if (source->target->samples() == nullptr) {
      return done(absl::InvalidArgumentError(
          absl::StrCat("target '", args.samples_target_id, "' is a density, not samples to evaluate")));
    }
    if (source->target->dim() != target->target->dim()) {
      return done(DimensionMismatch(source->target->dim(), target->target->dim()));
    }
    // A stored target is finite and held alive by the task: no copy.
    submit([source = source->target, target = target->target, names, options = args.options]()
               -> absl::StatusOr<EvaluateResult> {
      SAMPLED_ASSIGN_OR_RETURN(auto values, ComputeMetrics(names, *source->samples(), *target, options));
      return EvaluateResult{std::move(values), source->samples()->rows()};
    });
    return;
  }
  if (!args.sampler_id.empty()) {
    absl::StatusOr<SamplerEntry> e = sessions_.GetSampler(args.sampler_id);
    if (!e.ok()) return done(e.status());
    if (e->session_id != args.session_id) {
      return done(absl::NotFoundError(
          absl::StrCat("sampler '", args.sampler_id, "' not found in session '", args.session_id, "'")));
    }
    const int64_t n = args.sampler_draws == 0 ? 500 : args.sampler_draws;
    if (n > limits.max_sample_draws) {
      return done(absl::ResourceExhaustedError(absl::StrCat("sampler_draws ", n, " is past the server's limit of ",
                                                            limits.max_sample_draws, " (--max-sample-draws)")));
    }
    if (absl::Status s = CheckArrayValues(n, e->model->shape.out, "the sampler's draws"); !s.ok()) return done(s);
    if (e->model->shape.out != target->target->dim()) {
      return done(absl::InvalidArgumentError(absl::StrCat("sampler '", args.sampler_id, "' draws in dimension ",
                                                          e->model->shape.out, " but the target has dimension ",
                                                          target->target->dim())));
    }
    // Drawn on the call worker, then measured there.
    submit([this, model = e->model, n, seed = args.options.seed, best = args.best_checkpoint, target = target->target,
            names, options = args.options]() -> absl::StatusOr<EvaluateResult> {
      PointsF draws;
      SAMPLED_RETURN_IF_ERROR(training::DrawModel(*model, best, {}, seed, n, options_.torch_threads, &draws));
      SAMPLED_ASSIGN_OR_RETURN(auto values, ComputeMetrics(names, draws.cast<double>(), *target, options));
      return EvaluateResult{std::move(values), n};
    });
    return;
  }
  if (!args.job_id.empty()) {
    absl::StatusOr<std::shared_ptr<FlowJob>> job = jobs_.GetFlow(args.job_id);
    if (!job.ok()) return done(job.status());
    if ((*job)->session_id() != args.session_id) {
      return done(absl::NotFoundError(absl::StrCat("job '", args.job_id, "' not found in session '", args.session_id, "'")));
    }
    // The copy of the particles is charged as a call's memory while it is measured.
    return (*job)->ReadParticles([this, compute, done](absl::StatusOr<Points> p, int64_t) {
      if (!p.ok()) return done(p.status());
      absl::StatusOr<MemoryBudget::Charge> charge =
          budget_.Reserve(MemoryKind::kCalls, PointsBytes(*p), "the flow's particles for the evaluation");
      if (!charge.ok()) return done(charge.status());
      compute(*std::move(p), std::make_shared<MemoryBudget::Charge>(*std::move(charge)));
    });
  }
  done(absl::InvalidArgumentError("no samples: give samples, a samples target, a job or a sampler"));
}

// Training and samplers --------------------------------------------------------------------------------

namespace {

// What made a sampler, as a JSON object (carried in its file; opaque to the server).
std::string Provenance(const training::TrainSettings& t, const TargetEntry& target, const std::string& from) {
  const auto widths = [](const std::vector<int64_t>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) absl::StrAppend(&out, i ? ", " : "", v[i]);
    return out + "]";
  };
  std::string generator;  // the generator's or the score model's settings
  const absl::StatusOr<const training::TrainMethod*> method = training::FindTrainMethod(t.method);
  const training::TrainKind kind = method.ok() ? (*method)->kind : training::TrainKind::kNeuralSampler;
  if (kind == training::TrainKind::kScoreModel) {
    generator = absl::StrCat(", \"noise_steps\": ", t.grid.steps, ", \"dt\": ", t.grid.dt, ", \"dt_last\": ",
                             t.grid.dt_last, ", \"times\": ", t.grid.times, ", \"gmm_components\": ", t.gmm_components,
                             ", \"gmm_covariance\": ", training::JsonString(t.gmm_covariance), ", \"cv_every\": ",
                             t.cv_every, ", \"cv_eps\": ", t.score.in > 0 ? std::string("\"learned\"") : absl::StrCat(t.cv_eps),
                             ", \"sample_steps\": ", t.sample_steps, ", \"score_form\": ",
                             training::JsonString(t.score_form));
  } else if (kind == training::TrainKind::kDriftChain) {
    std::string stats;
    for (const auto& [k, v] : t.statistics) absl::StrAppend(&stats, ", ", training::JsonString(k), ": ", training::JsonString(v));
    generator = absl::StrCat(", \"epsilon\": ", t.epsilon, ", \"inner_steps\": ", t.inner_steps, ", \"ridge\": ",
                             t.ridge, stats);
  } else if (kind == training::TrainKind::kGenerator) {
    generator = absl::StrCat(", \"generator\": ", training::JsonString(t.generator), ", \"eta\": ", t.eta,
                             ", \"noise\": ", training::JsonString(t.noise), ", \"bandwidth\": ",
                             training::JsonString(t.bandwidth), ", \"optimizer\": ",
                             training::JsonString(t.sgd ? "sgd" : "adam"), ", \"steps_per_batch\": ",
                             t.steps_per_batch, ", \"init_std\": ", t.init_std);
  }
  std::string params = "{";
  bool first = true;
  for (const auto& [k, v] : target.target->params()) {
    absl::StrAppend(&params, first ? "" : ", ", training::JsonString(k), ": [");
    for (size_t i = 0; i < v.size(); ++i) absl::StrAppend(&params, i ? ", " : "", v[i]);
    absl::StrAppend(&params, "]");
    first = false;
  }
  params += "}";
  return absl::StrCat(
      "{\"format\": \"sampled sampler\", \"build\": ", training::JsonString(SAMPLED_VERSION),
      ", \"method\": ", training::JsonString(t.method), ", \"target\": {\"id\": ", training::JsonString(target.id),
      ", \"name\": ", training::JsonString(target.name), ", \"family\": ", training::JsonString(target.target->family()),
      ", \"dim\": ", target.target->dim(), ", \"params\": ", params, "}, \"settings\": {\"latent\": ", t.sampler.in,
      ", \"hidden\": ", widths(t.sampler.hidden), ", \"activation\": ", training::JsonString(ActivationName(t.sampler.activation)),
      ", \"score_hidden\": ", widths(t.score.hidden),
      ", \"score_activation\": ", training::JsonString(ActivationName(t.score.activation)),
      ", \"score_steps\": ", t.score_steps, ", \"score_loss\": ", training::JsonString(ScoreLossName(t.score_loss)),
      ", \"dsm_sigma\": ", t.dsm_sigma, ", \"batch\": ", t.batch, ", \"lr\": ", t.sampler_adam.lr,
      ", \"score_lr\": ", t.score_adam.lr, ", \"seed\": ", t.seed, generator, "}, \"from_sampler\": ",
      training::JsonString(from), "}");
}

}  // namespace

void Backend::StartTraining(StartTrainingArgs args, Done<JobSnapshot> done) {
  // Checked and built (the networks' initial weights) on a call worker.
  const std::string session_id = args.session_id;
  auto task = [this, args = std::move(args), done] {
    done(Guarded("creating the training job", [&] { return StartTrainingNow(args); }));
  };
  auto cancelled = [done] { done(absl::UnavailableError("the server is shutting down")); };
  if (absl::Status s = jobs_.SubmitCall(session_id, std::move(task), std::move(cancelled)); !s.ok()) done(s);
}

training::TrainLimits Backend::train_limits() const {
  training::TrainLimits tl;
  tl.max_width = options_.limits.max_train_width;
  tl.max_layers = options_.limits.max_train_layers;
  tl.max_batch = options_.limits.max_train_batch;
  tl.max_parameters = options_.limits.max_array_values;
  return tl;
}

absl::StatusOr<int64_t> Backend::TrainingBytes(const training::TrainSettings& t, int64_t d, int64_t drifts) const {
  // What one pass keeps per row: each layer's stacked input and pre-activation, for the primal row and its
  // tangent streams (d for the exact divergence, 1 for sliced). Bounded like any array.
  const absl::StatusOr<const training::TrainMethod*> method = training::FindTrainMethod(t.method);
  if (method.ok() && (*method)->kind == training::TrainKind::kScoreModel) {
    // A score model's pass runs on [Y; mu] (2 x batch rows); ndsm-cv's Eq. 22 keeps two per-row gradients
    // (batch x parameters each); the gm prior's EM fit works on at most 10000 points, all K of BIC tried.
    const training::MlpShape& m = t.sampler;
    const int64_t width = m.in + m.out + 2 * std::accumulate(m.hidden.begin(), m.hidden.end(), int64_t{0});
    SAMPLED_RETURN_IF_ERROR(CheckArrayValues(2 * t.batch, width, "the score model's passes (2 x batch by the widths)"));
    const int64_t params = m.parameter_count();
    const int64_t per_row = t.score.in > 0 ? 2 * t.batch * params * 4 : 0;
    GmmFitOptions fit;
    fit.components = t.gmm_components;
    fit.max_points = training::kPriorFitPoints;
    const int64_t prior = t.method == "dsm" ? 0 : GmmFitBytes(training::kPriorFitPoints, d, fit);
    return 5 * params * 4 + 4 * 2 * t.batch * width * 4 + per_row + prior + 2 * t.batch * d * 8;
  }
  if (method.ok() && (*method)->kind == training::TrainKind::kDriftChain) {
    // ingd: the chain of drifts (itself, the best checkpoint's prefix, a checkpoint's copy), the cloud's
    // statistics and their Jacobian (batch x d x b, float64), F, and one network's passes.
    const int64_t params = t.sampler.parameter_count();
    const auto basis = t.statistics.find("basis");
    int64_t b = d + d * (d + 1) / 2;
    if (auto s = t.statistics.find("stats"); s == t.statistics.end() || s->second != "gaussian") {
      int64_t given = 100;
      if (basis != t.statistics.end() && !absl::SimpleAtoi(basis->second, &given)) given = 100;
      const auto pairs = t.statistics.find("pairs");  // distinct pairs (ParsePairs refuses repeats)
      b = given + (pairs != t.statistics.end() ? std::count(pairs->second.begin(), pairs->second.end(), ',') + 1 : 0);
    }
    SAMPLED_RETURN_IF_ERROR(CheckArrayValues(t.batch, d * b, "ingd's statistics Jacobian (batch by d x statistics)"));
    SAMPLED_RETURN_IF_ERROR(CheckArrayValues(b, b, "ingd's F = Cov[T] (statistics by statistics)"));
    SAMPLED_RETURN_IF_ERROR(CheckArrayValues(drifts, params, "ingd's chain of drifts (steps by the drift's parameters)"));
    const int64_t width = t.sampler.in + t.sampler.out +
                          2 * std::accumulate(t.sampler.hidden.begin(), t.sampler.hidden.end(), int64_t{0});
    // The chain up to twice over while it grows, the best prefix, the sampler's copy and its file: 5 chains.
    return 5 * drifts * params * 4 + 5 * params * 4 + (t.batch * d * b + 4 * t.batch * b) * 8 + 2 * b * b * 8 +
           4 * t.batch * width * 4;
  }
  const bool score_network = t.score.in > 0;  // the generator methods have none: one stream
  const int64_t streams = 1 + (!score_network ? 0 : t.method == "fisher" || t.score_loss == training::ScoreLoss::kSsm
                                   ? d
                                   : (t.score_loss == training::ScoreLoss::kSliced ? 1 : 0));
  int64_t widths = 0;
  for (const training::MlpShape* m : {&t.sampler, &t.score}) {
    widths = std::max(widths, m->in + m->out + 2 * std::accumulate(m->hidden.begin(), m->hidden.end(), int64_t{0}));
  }
  SAMPLED_RETURN_IF_ERROR(CheckArrayValues(t.batch * streams, widths, "the training passes' activations (batch x "
                                                                      "tangent streams by the networks' widths)"));
  // The networks (weights, Adam's two moments, the best checkpoint, gradients: 5 copies) and the passes'
  // activations (twice, for the two networks), in float32; per-thread scratch of the same order.
  int64_t params = 0;
  for (const training::MlpShape* m : {&t.sampler, &t.score}) {
    int64_t in = m->in;
    for (int64_t w : m->hidden) params += (in + 1) * w, in = w;
    params += (in + 1) * m->out;
  }
  return 5 * params * 4 + 4 * t.batch * streams * widths * 4 + 2 * t.batch * d * 8;
}

SamplerSink Backend::MakeSamplerSink(const std::string& session_id, const std::string& target_id,
                                     const std::string& method, const std::string& job_id) {
  return [this, session_id, target_id, method, job_id](TrainedSampler t) -> absl::StatusOr<std::string> {
    SamplerEntry e;
    e.session_id = session_id;
    e.job_id = job_id;
    e.target_id = target_id;
    e.method = method;
    SAMPLED_ASSIGN_OR_RETURN(MemoryBudget::Charge charge,
                             budget_.Reserve(MemoryKind::kSamplers, t.model->bytes(), "the trained sampler"));
    e.model = Attach(std::shared_ptr<const training::SamplerModel>(std::move(t.model)), std::move(charge));
    e.steps = t.steps;
    e.final_metrics = std::move(t.final_metrics);
    e.best_metrics = std::move(t.best_metrics);
    e.best_step = t.best_step;
    SAMPLED_ASSIGN_OR_RETURN(SamplerEntry stored, StoreSampler(std::move(e)));
    return stored.id;
  };
}

absl::Status Backend::QueueTrainingRun(const std::shared_ptr<TrainingJob>& job) {
  return QueueJob(
      job,
      [this, job] {
        return job->RunSlice(options_.slice_time,
                             [this, session = job->session_id()] { return jobs_.JobsWaiting(session); });
      },
      [job] { job->AbandonRun(); });
}

absl::StatusOr<JobSnapshot> Backend::StartTrainingNow(const StartTrainingArgs& args) {
  const Limits& limits = options_.limits;
  SAMPLED_ASSIGN_OR_RETURN(TargetEntry target, sessions_.GetTarget(args.session_id, args.target_id));
  if (args.steps < 1 || args.steps > limits.max_steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps must be between 1 and the server's limit ", limits.max_steps, ", got ", args.steps));
  }
  if (args.eval_every < 0) return absl::InvalidArgumentError(absl::StrCat("eval_every must be >= 0, got ", args.eval_every));
  const int64_t eval_draws = args.eval_draws == 0 ? 500 : args.eval_draws;
  if (eval_draws < 2 || eval_draws > 100000) {
    return absl::InvalidArgumentError(absl::StrCat("eval_draws must be between 2 and 100000, got ", eval_draws));
  }
  TrainingJobSpec spec;
  training::TrainConfig config = args.config;
  if (training::TrainsDriftChain(config.method) && args.steps > limits.max_sample_steps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ingd makes one drift per step, and a draw runs every drift: steps must be at most the server's ",
        limits.max_sample_steps, " steps per draw (--max-sample-steps), got ", args.steps));
  }
  config.threads = options_.torch_threads;
  SAMPLED_ASSIGN_OR_RETURN(spec.settings, training::ResolveTrainConfig(config, *target.target, train_limits()));
  int64_t from_drifts = 0;  // a drift chain continued: the drifts it already holds
  if (!args.from_sampler_id.empty()) {
    if (absl::StatusOr<SamplerEntry> from = sessions_.GetSampler(args.from_sampler_id); from.ok() && from->model->drift) {
      from_drifts = training::DriftSteps(from->model->shape, from->model->final_params);
    }
  }
  SAMPLED_ASSIGN_OR_RETURN(const int64_t training_bytes,
                           TrainingBytes(spec.settings, target.target->dim(), args.steps + from_drifts));
  SAMPLED_RETURN_IF_ERROR(CheckSessionQuota(args.session_id, training_bytes, "the training job's networks and passes"));
  if (absl::StatusOr<std::vector<SamplerEntry>> held = sessions_.ListSamplers(args.session_id);
      held.ok() && static_cast<int64_t>(held->size()) >= limits.max_samplers_per_session) {
    return absl::ResourceExhaustedError(absl::StrCat("session '", args.session_id, "' holds its limit of ",
                                                     limits.max_samplers_per_session,
                                                     " samplers; delete one before training another"));
  }
  // A job the session's limits would refuse is refused before its networks are built and stored.
  SAMPLED_RETURN_IF_ERROR(jobs_.CheckRoom(args.session_id, /*queued=*/true));
  spec.steps = args.steps;
  spec.eval_every = args.eval_every;
  spec.eval_draws = eval_draws;
  if (!args.from_sampler_id.empty()) {
    SAMPLED_ASSIGN_OR_RETURN(SamplerEntry from, sessions_.GetSampler(args.from_sampler_id));
    if (from.session_id != args.session_id) {
      return absl::NotFoundError(absl::StrCat("sampler '", args.from_sampler_id, "' not found in session '",
                                              args.session_id, "'"));
    }
    if (!(from.model->shape == spec.settings.sampler)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sampler '", args.from_sampler_id, "' has another architecture (latent ", from.model->shape.in, ", ",
          from.model->shape.hidden.size(), " hidden layers, ", ActivationName(from.model->shape.activation),
          ", output ", from.model->shape.out, "); give the same latent, hidden and activation to continue it"));
    }
    if (from.model->drift.has_value() != training::TrainsDriftChain(spec.settings.method)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sampler '", args.from_sampler_id, "' is ", from.model->drift ? "a drift chain (ingd)" : "not a drift chain",
          "; continue it with ", from.model->drift ? "method ingd" : "the method that made it"));
    }
    spec.from_sampler = from.model->final_params;
    spec.from_sampler_id = from.id;
  }
  JobSnapshot identity = NewJobIdentity("training", args.session_id, args.target_id, args.steps);
  SamplerSink sink = MakeSamplerSink(args.session_id, args.target_id, spec.settings.method, identity.id);
  const std::string provenance = Provenance(spec.settings, target, spec.from_sampler_id);
  SAMPLED_ASSIGN_OR_RETURN(MemoryBudget::Charge charge,
                           budget_.Reserve(MemoryKind::kJobs, training_bytes, "the training job's networks and passes"));
  SAMPLED_ASSIGN_OR_RETURN(
      std::shared_ptr<TrainingJob> created,
      TrainingJob::Create(std::move(identity), std::move(spec), target.target, provenance, std::move(sink),
                          [this](const std::string& m, double seconds) { metrics_.RecordTrainingStep(m, seconds); }));
  std::shared_ptr<TrainingJob> job = Attach(std::move(created), std::move(charge));
  if (durable_ != nullptr) {  // stored before it is listed: a job seen by a client is on disk
    Record record;
    record.SetRecord("config", EncodeTrainConfig(args.config));
    record.SetInt("steps", args.steps);
    record.SetInt("eval_every", args.eval_every);
    record.SetInt("eval_draws", eval_draws);
    record.Set("from_sampler_id", args.from_sampler_id);
    record.Set("provenance", provenance);
    SAMPLED_RETURN_IF_ERROR(StoreJob(job, record, job->SerializeCheckpoint(), job->Snapshot().step));
  }
  SAMPLED_RETURN_IF_ERROR(AddJob(job));
  SAMPLED_RETURN_IF_ERROR(QueueTrainingRun(job));
  return job->Snapshot();
}

absl::StatusOr<std::vector<HistoryRow>> Backend::JobHistory(const std::string& job_id) {
  SAMPLED_ASSIGN_OR_RETURN(std::shared_ptr<Job> job, jobs_.Get(job_id));
  auto training = std::dynamic_pointer_cast<TrainingJob>(job);
  if (training == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("job '", job_id, "' is a flow; history is kept for training jobs"));
  }
  return training->History();
}

absl::StatusOr<SamplerEntry> Backend::GetSampler(const std::string& sampler_id) {
  return sessions_.GetSampler(sampler_id);
}

absl::StatusOr<std::vector<SamplerEntry>> Backend::ListSamplers(const std::string& session_id) {
  return sessions_.ListSamplers(session_id);
}

absl::Status Backend::DeleteSampler(const std::string& sampler_id) {
  SAMPLED_RETURN_IF_ERROR(sessions_.DeleteSampler(sampler_id));
  Forget(sampler_id);
  return absl::OkStatus();
}

void Backend::ExportSampler(const std::string& sampler_id, Done<std::string> done) {
  absl::StatusOr<SamplerEntry> e = sessions_.GetSampler(sampler_id);
  if (!e.ok()) return done(e.status());
  auto task = [model = e->model, done] {
    try {
      done(training::EncodeSamplerFile(*model));
    } catch (const std::bad_alloc&) {
      done(absl::ResourceExhaustedError("out of memory while encoding the sampler"));
    } catch (const std::exception& e) {
      done(absl::InternalError(absl::StrCat("encoding the sampler failed: ", e.what())));
    }
  };
  auto cancelled = [done] { done(absl::UnavailableError("the server is shutting down")); };
  if (absl::Status s = jobs_.SubmitSample(std::move(task), std::move(cancelled)); !s.ok()) done(s);
}

void Backend::ImportSampler(const std::string& session_id, std::string bytes, Done<SamplerEntry> done) {
  if (absl::Status s = sessions_.GetSession(session_id).status(); !s.ok()) return done(s);
  auto task = [this, session_id, bytes = std::move(bytes), done] {
    absl::StatusOr<training::SamplerModel> model = absl::InternalError("unset");
    try {
      model = training::DecodeSamplerFile(bytes);
    } catch (const std::bad_alloc&) {
      model = absl::ResourceExhaustedError("out of memory while decoding the sampler file");
    } catch (const std::exception& e) {
      model = absl::InvalidArgumentError(absl::StrCat("the sampler file could not be decoded: ", e.what()));
    }
    if (!model.ok()) return done(model.status());
    if (absl::Status s = CheckDim(model->shape.out); !s.ok()) return done(s);
    const Limits& l = options_.limits;
    bool too_wide = model->shape.in > l.max_train_width;
    for (int64_t w : model->shape.hidden) too_wide = too_wide || w > l.max_train_width;
    if (too_wide || static_cast<int64_t>(model->shape.hidden.size()) > l.max_train_layers) {
      return done(absl::ResourceExhaustedError(absl::StrCat(
          "the sampler file's network (latent ", model->shape.in, ", ", model->shape.hidden.size(),
          " hidden layers) is past the server's limits (--max-train-width ", l.max_train_width,
          ", --max-train-layers ", l.max_train_layers, ")")));
    }
    SamplerEntry e;
    e.session_id = session_id;
    // What made it, as its provenance records (a file from elsewhere may not say: "imported", 0 steps).
    const training::TrainingResult made = training::ReadTrainingResult(model->provenance_json);
    e.method = made.method.empty() ? "imported" : made.method;
    e.steps = made.steps;
    e.best_step = made.best_step;
    if (absl::Status s = CheckSessionQuota(session_id, model->bytes(), "the imported sampler"); !s.ok()) return done(s);
    absl::StatusOr<MemoryBudget::Charge> charge =
        budget_.Reserve(MemoryKind::kSamplers, model->bytes(), "the imported sampler");
    if (!charge.ok()) return done(charge.status());
    e.model = Attach(std::shared_ptr<const training::SamplerModel>(
                         std::make_shared<training::SamplerModel>(*std::move(model))),
                     *std::move(charge));
    done(StoreSampler(std::move(e)));
  };
  auto cancelled = [done] { done(absl::UnavailableError("the server is shutting down")); };
  if (absl::Status s = jobs_.SubmitSample(std::move(task), std::move(cancelled)); !s.ok()) done(s);
}

absl::StatusOr<std::shared_ptr<SampleStream>> Backend::BeginSample(const SampleArgs& args) {
  const Limits& limits = options_.limits;
  if (args.n < 1) return absl::InvalidArgumentError(absl::StrCat("n must be >= 1, got ", args.n));
  if (args.n > limits.max_sample_draws) {
    return absl::ResourceExhaustedError(absl::StrCat("n = ", args.n, " is past the server's limit of ",
                                                     limits.max_sample_draws, " draws per call (--max-sample-draws)"));
  }
  SAMPLED_ASSIGN_OR_RETURN(SamplerEntry e, sessions_.GetSampler(args.sampler_id));
  SAMPLED_RETURN_IF_ERROR(CheckArrayValues(args.n, e.model->shape.out, "the draws"));
  if (args.steps.has_value() && (*args.steps < 1 || *args.steps > limits.max_sample_steps)) {
    return absl::InvalidArgumentError(absl::StrCat("steps (a score model's reverse steps, a drift chain's drifts) must be between 1 and ",
                                                   limits.max_sample_steps, " (--max-sample-steps), got ", *args.steps,
                                                   "; leave it unset for the model's default"));
  }
  if (e.model->drift) {
    const int64_t drifts = training::DriftSteps(e.model->shape, e.model->params(args.best));
    if (args.ode) {
      return absl::InvalidArgumentError(absl::StrCat("sampler '", args.sampler_id, "' is a drift chain (ingd): ode "
                                                     "applies to score models (ndsm, ndsm-cv, dsm) only"));
    }
    if (!args.steps.has_value() && drifts > limits.max_sample_steps) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sampler '", args.sampler_id, "' holds ", drifts, " drifts, past the server's ", limits.max_sample_steps,
          " steps per draw (--max-sample-steps); give steps (its first drifts)"));
    }
    if (args.steps.has_value() && *args.steps > drifts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "steps ", *args.steps, " is past the ", drifts, " drifts of sampler '", args.sampler_id,
          "' (", args.best ? "its best checkpoint" : "its final weights",
          "); steps k draws the generator at time k x epsilon, leave it unset for all"));
    }
  } else if ((args.steps.has_value() || args.ode) && !e.model->score_model) {
    return absl::InvalidArgumentError(absl::StrCat("sampler '", args.sampler_id, "' is a generator (x = g(z)): steps "
                                                   "and ode apply to score models (ndsm, ndsm-cv, dsm) and steps to "
                                                   "drift chains (ingd) only"));
  }
  auto stream = std::make_shared<SampleStream>();
  stream->model = e.model;
  stream->best = args.best;
  stream->draw.steps = args.steps.value_or(0);
  stream->draw.ode = args.ode;
  stream->draw.cancelled = &stream->cancelled;
  stream->seed = args.seed;
  stream->n = args.n;
  stream->dim = e.model->shape.out;
  stream->blocks = (args.n + training::kDrawBlockRows - 1) / training::kDrawBlockRows;
  const int64_t per_block = training::kDrawBlockRows * std::max(e.model->shape.out, e.model->shape.in) * 4;
  // A score model's block runs its reverse dynamics (1000 network passes by default): one block per task,
  // so that other calls interleave and a cancel is seen between steps.
  stream->segment_blocks =
      e.model->score_model || e.model->drift ? 1 : std::clamp<int64_t>((int64_t{4} << 20) / per_block, 1, 64);
  stream->start = absl::Now();
  return stream;
}

absl::Status Backend::SampleSegment(std::shared_ptr<SampleStream> stream, int64_t first_block, int64_t blocks,
                                    Done<PointsF> done) {
  auto task = [this, stream, first_block, blocks, done] {
    if (stream->cancelled.load()) return done(absl::CancelledError("the client cancelled the Sample"));
    // The segment's draws and the network's activations for them (float32), until they are handed on.
    const int64_t rows = blocks * training::kDrawBlockRows;
    const int64_t widest = std::max(stream->model->shape.out, stream->model->shape.in);
    absl::StatusOr<MemoryBudget::Charge> charge =
        budget_.Reserve(MemoryKind::kCalls, 3 * rows * widest * 4, "the Sample's draws");
    if (!charge.ok()) return done(charge.status());
    PointsF draws;
    try {
      std::call_once(stream->prior_once, [&] { stream->prior = training::DrawPrior(*stream->model); });
      if (!stream->prior.ok()) return done(stream->prior.status());
      absl::Status s = training::DrawModelBlocks(*stream->model, stream->prior->get(), stream->best, stream->draw,
                                                 stream->seed, first_block, blocks, options_.torch_threads, &draws);
      if (!s.ok()) return done(s);
    } catch (const std::bad_alloc&) {
      return done(absl::ResourceExhaustedError("out of memory while drawing"));
    } catch (const std::exception& e) {
      return done(absl::InternalError(absl::StrCat("drawing failed: ", e.what())));
    }
    const int64_t first_row = first_block * training::kDrawBlockRows;
    if (first_row + draws.rows() > stream->n) draws.conservativeResize(stream->n - first_row, draws.cols());
    done(std::move(draws));
  };
  auto cancelled = [done] { done(absl::UnavailableError("the server is shutting down")); };
  return jobs_.SubmitSample(std::move(task), std::move(cancelled));
}

void Backend::Shutdown() {
  {
    absl::MutexLock lock(&calls_mu_);
    shutting_down_ = true;
    for (const auto& stop : live_calls_) stop->store(true);  // evaluations stop at their next block
  }
  jobs_.Shutdown(options_.shutdown_grace);
}

}  // namespace sampled::server
