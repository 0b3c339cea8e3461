#include "server/jobs/flow_job.h"

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "core/common/parallel.h"
#include "core/common/status_macros.h"
#include "core/metrics/metric.h"
#include "server/common/guarded.h"

namespace sampled::server {
absl::StatusOr<std::shared_ptr<FlowJob>> FlowJob::Create(JobSnapshot identity, FlowJobSpec spec,
                                                         std::shared_ptr<const Target> target,
                                                         const InitialParticles& init, StepObserver on_step) {
  SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<Flow> flow, CreateFlow(spec.config, target));
  SAMPLED_ASSIGN_OR_RETURN(FlowState state, MakeInitialState(init, target->dim(), spec.config.seed));
  return Make(std::move(identity), std::move(spec), std::move(target), std::move(flow), std::move(state),
              std::move(on_step));
}

absl::StatusOr<std::shared_ptr<FlowJob>> FlowJob::Restore(JobSnapshot snapshot, FlowJobSpec spec,
                                                          std::shared_ptr<const Target> target, FlowState state,
                                                          StepObserver on_step) {
  SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<Flow> flow, CreateFlow(spec.config, target));
  snapshot.step = state.step;
  return Make(std::move(snapshot), std::move(spec), std::move(target), std::move(flow), std::move(state),
              std::move(on_step));
}

absl::StatusOr<std::shared_ptr<FlowJob>> FlowJob::Make(JobSnapshot identity, FlowJobSpec spec,
                                                       std::shared_ptr<const Target> target, std::unique_ptr<Flow> flow,
                                                       FlowState state, StepObserver on_step) {
  SAMPLED_RETURN_IF_ERROR(flow->CheckState(state));
  if (spec.eval_metrics.empty()) spec.eval_metrics = DefaultMetrics(*target);
  for (const std::string& name : spec.eval_metrics) {
    SAMPLED_ASSIGN_OR_RETURN(const Metric* m, FindMetric(name));
    if (!m->Supports(*target)) {
      return absl::FailedPreconditionError(absl::StrCat("metric '", name, "' does not apply to this target (",
                                                        m->description(), ")"));
    }
  }
  identity.method = spec.config.method;
  identity.particle_count = state.particles.rows();
  identity.dim = state.particles.cols();
  return absl::WrapUnique(
      new FlowJob(std::move(identity), std::move(spec), std::move(target), std::move(flow), std::move(state),
                  std::move(on_step)));
}

std::string FlowJob::SerializeState() const {
  absl::MutexLock lock(&mu_);
  return SerializeFlowState(state_.locked(mu_));
}

void FlowJob::FlushCheckpoint() {
  Checkpointer* c = checkpoints();
  if (c == nullptr) return;
  std::string bytes;
  int64_t step = 0;
  {
    absl::MutexLock lock(&mu_);
    if (StateLocked() == JobState::kRunning) return;
    const FlowState& state = state_.locked(mu_);
    step = state.step;
    bytes = SerializeFlowState(state);
  }
  c->Now(step, [&] { return std::move(bytes); });  // the write (up to 800 MB) outside the job's lock
}

int64_t FlowJob::step() const {
  absl::MutexLock lock(&mu_);
  return state_.locked(mu_).step;
}

FlowJob::FlowJob(JobSnapshot identity, FlowJobSpec spec, std::shared_ptr<const Target> target,
                 std::unique_ptr<Flow> flow, FlowState state, StepObserver on_step)
    : Job(std::move(identity)),
      spec_(std::move(spec)),
      target_(std::move(target)),
      eval_metrics_(spec_.eval_metrics),
      on_step_(std::move(on_step)),
      flow_(std::move(flow)),
      state_(std::move(state)) {
  UpdateProgress([this](JobSnapshot& s) { s.bytes = StateBytes(); }, /*force=*/true);
}

int64_t FlowJob::StateBytes() const {
  return PointsBytes(state_.worker().particles) + PointsBytes(state_.worker().optimizer_state);
}

absl::Status FlowJob::GuardedStep(StepStats& stats) {
  // No exception crosses into the worker loop: an allocation failure fails the job, not the server.
  ScopedStopFlag stop(cancel_flag());
  try {
    return flow_->Step(state_.worker(), &stats);
  } catch (const StopRequested&) {
    return absl::CancelledError(absl::StrCat("cancelled in step ", state_.worker().step + 1));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("out of memory in step ", state_.worker().step + 1));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("step ", state_.worker().step + 1, " failed: ", e.what()));
  }
}

absl::StatusOr<std::map<std::string, double>> FlowJob::Evaluate() {
  MetricOptions o;
  o.seed = spec_.config.seed;
  o.threads = spec_.config.threads;
  ScopedStopFlag stop(cancel_flag());
  try {
    return ComputeMetrics(eval_metrics_, state_.worker().particles, *target_, o);
  } catch (const StopRequested&) {
    return absl::CancelledError("cancelled while evaluating metrics");
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory while evaluating metrics");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("evaluating metrics failed: ", e.what()));
  }
}

absl::StatusOr<Points> FlowJob::CopyParticles(const FlowState& state) {
  return Guarded("copying the particles", [&]() -> absl::StatusOr<Points> { return state.particles; });
}

void FlowJob::ServePendingReads() {
  if (!has_pending_reads_.load()) return;
  std::vector<ParticlesDone> reads;
  {
    absl::MutexLock lock(&mu_);
    reads.swap(pending_reads_);
    has_pending_reads_.store(false);
  }
  for (auto& done : reads) done(CopyParticles(state_.worker()), state_.worker().step);
}

void FlowJob::ReadParticles(ParticlesDone done) {
  absl::StatusOr<Points> copy;
  int64_t step;
  {
    absl::MutexLock lock(&mu_);
    if (StateLocked() == JobState::kRunning) {
      pending_reads_.push_back(std::move(done));
      has_pending_reads_.store(true);
      return;
    }
    copy = CopyParticles(state_.locked(mu_));  // not running: no worker holds it
    step = state_.locked(mu_).step;
  }
  done(std::move(copy), step);
}

bool FlowJob::RunSlice(FlowRun& run, absl::Duration slice, const std::function<bool()>& others_waiting) {
  if (run.ended) return false;
  if (!run.started) {
    if (!MarkRunning(run.generation, run.steps)) {
      run.status = absl::CancelledError("the run was cancelled before it started");
      run.ended = true;
      return false;
    }
    run.started = true;
    run.start = absl::Now();
  }
  // From here this worker owns the flow state until MarkFinished.
  const absl::Time slice_start = absl::Now();
  const int64_t particles = state_.worker().particles.rows();
  StepStats stats;
  absl::Status status;
  while (run.taken < run.steps) {
    if (cancel_requested()) {
      status = absl::CancelledError(absl::StrCat("cancelled at step ", state_.worker().step));
      break;
    }
    ServePendingReads();
    const absl::Time t0 = absl::Now();
    status = GuardedStep(stats);
    const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
    if (!status.ok()) break;
    ++run.taken;
    if (on_step_) on_step_(spec_.config.method, particles, seconds);
    if (run.collect_stats) {
      run.stats.push_back({stats, seconds});
      if (static_cast<int64_t>(run.stats.size()) > kMaxReturnedStats) {
        run.stats.pop_front();
        ++run.stats_omitted;
      }
    }

    // An evaluation that fails (out of memory, a cancel) is reported beside the metrics; it does not fail
    // the flow, whose particles are fine.
    std::map<std::string, double> metrics;
    std::string metrics_error;
    const bool evaluate = spec_.eval_every > 0 && state_.worker().step % spec_.eval_every == 0;
    if (evaluate) {
      absl::StatusOr<std::map<std::string, double>> m = Evaluate();
      if (m.ok()) {
        metrics = *std::move(m);
      } else {
        metrics_error = m.status().ToString();
      }
      run.evaluated_at = state_.worker().step;
    }
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - run.start);
    const double rate = elapsed > 0 ? run.taken / elapsed : 0.0;
    UpdateProgress(
        [&](JobSnapshot& s) {
          s.step = state_.worker().step;
          s.last_stats = stats;
          s.last_step_seconds = seconds;
          s.steps_per_second = rate;
          s.eta_seconds = rate > 0 ? (run.steps - run.taken) / rate : 0.0;
          s.bytes = StateBytes();
          if (evaluate) {
            s.metrics_error = metrics_error;
            if (metrics_error.empty()) {
              s.metrics = metrics;
              s.metrics_step = state_.worker().step;
            }
          }
        },
        /*force=*/evaluate || seconds >= kSlowStepSeconds);
    if (Checkpointer* c = checkpoints()) {
      c->AfterStep(state_.worker().step, [this] { return SerializeFlowState(state_.worker()); });
    }
    if (run.taken < run.steps && absl::Now() - slice_start >= slice && others_waiting && others_waiting()) {
      ServePendingReads();  // a read does not wait for the next slice
      return true;
    }
  }
  run.status = status;
  EndRun(run);
  return false;
}

void FlowJob::EndRun(FlowRun& run) {
  // A run with evaluation ends with the metrics of its last step.
  if (run.status.ok() && spec_.eval_every > 0 && run.steps > 0 && run.evaluated_at != state_.worker().step) {
    absl::StatusOr<std::map<std::string, double>> m = Evaluate();
    UpdateProgress([&](JobSnapshot& s) {
      s.metrics_error = m.ok() ? "" : m.status().ToString();
      if (m.ok()) {
        s.metrics = *m;
        s.metrics_step = state_.worker().step;
      }
    });
  }
  // A job's run ends with a checkpoint, and so does a run the shutdown stopped; an interactive run's end
  // writes one when one is due (a client stepping one step at a time is not slowed by a write per call).
  if (Checkpointer* c = checkpoints()) {
    const auto serialize = [this] { return SerializeFlowState(state_.worker()); };
    if (run.collect_stats && !interrupted()) {
      c->AfterStep(state_.worker().step, serialize);
    } else {
      c->Now(state_.worker().step, serialize);
    }
  }
  // Particle reads that arrived during the run are served with the final state, under the lock that
  // makes the job visibly not running.
  std::vector<ParticlesDone> reads;
  absl::StatusOr<Points> final_particles;
  const int64_t final_step = state_.worker().step;
  MarkFinished(run.status, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    reads.swap(pending_reads_);
    has_pending_reads_.store(false);
    if (!reads.empty()) final_particles = CopyParticles(state_.worker());
  });
  run.ended = true;
  for (auto& done : reads) done(final_particles, final_step);
}

void FlowJob::AbandonRun(FlowRun& run) {
  if (run.ended) return;
  if (!run.started) {
    run.status = absl::CancelledError("the run was cancelled before it started");
    run.ended = true;
    return;
  }
  run.status = absl::CancelledError(absl::StrCat("the server shut down at step ", state_.worker().step));
  EndRun(run);
}

FlowRun FlowJob::Run(uint64_t generation, int64_t steps, bool collect_stats) {
  FlowRun run;
  run.generation = generation;
  run.steps = steps;
  run.collect_stats = collect_stats;
  while (RunSlice(run, absl::InfiniteDuration(), nullptr)) {
  }
  return run;
}

}  // namespace sampled::server
