#include "server/jobs/flow_job.h"

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/metrics/metric.h"

namespace sampled::server {
absl::StatusOr<std::shared_ptr<FlowJob>> FlowJob::Create(JobSnapshot identity, FlowJobSpec spec,
                                                         std::shared_ptr<const Target> target,
                                                         const InitialParticles& init, StepObserver on_step) {
  SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<Flow> flow, CreateFlow(spec.config, target));
  SAMPLED_ASSIGN_OR_RETURN(FlowState state, MakeInitialState(init, target->dim(), spec.config.seed));
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
  return PointsBytes(state_.particles) + PointsBytes(state_.optimizer_state);
}

absl::Status FlowJob::GuardedStep(StepStats& stats) {
  // No exception crosses into the worker loop: an allocation failure fails the job, not the server.
  try {
    return flow_->Step(state_, &stats);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("out of memory in step ", state_.step + 1));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("step ", state_.step + 1, " failed: ", e.what()));
  }
}

absl::StatusOr<std::map<std::string, double>> FlowJob::Evaluate() {
  MetricOptions o;
  o.seed = spec_.config.seed;
  o.threads = spec_.config.threads;
  try {
    return ComputeMetrics(eval_metrics_, state_.particles, *target_, o);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory while evaluating metrics");
  }
}

void FlowJob::ServePendingReads() {
  if (!has_pending_reads_.load()) return;
  std::vector<std::function<void(Points, int64_t)>> reads;
  {
    absl::MutexLock lock(&mu_);
    reads.swap(pending_reads_);
    has_pending_reads_.store(false);
  }
  for (auto& done : reads) done(state_.particles, state_.step);
}

void FlowJob::ReadParticles(std::function<void(Points, int64_t)> done) {
  Points copy;
  int64_t step;
  {
    absl::MutexLock lock(&mu_);
    if (StateLocked() == JobState::kRunning) {
      pending_reads_.push_back(std::move(done));
      has_pending_reads_.store(true);
      return;
    }
    copy = state_.particles;
    step = state_.step;
  }
  done(std::move(copy), step);
}

FlowJob::RunResult FlowJob::Run(uint64_t generation, int64_t steps, bool collect_stats) {
  RunResult result;
  if (!MarkRunning(generation, steps)) {
    result.status = absl::CancelledError("the run was cancelled before it started");
    return result;
  }
  // From here this worker owns the flow state until MarkFinished.
  const absl::Time run_start = absl::Now();
  const int64_t particles = state_.particles.rows();
  StepStats stats;
  int64_t evaluated_at = -1;
  absl::Status status;
  for (int64_t k = 0; k < steps; ++k) {
    if (cancel_requested()) {
      status = absl::CancelledError(absl::StrCat("cancelled at step ", state_.step));
      break;
    }
    ServePendingReads();
    const absl::Time t0 = absl::Now();
    status = GuardedStep(stats);
    const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
    if (!status.ok()) break;
    if (on_step_) on_step_(spec_.config.method, particles, seconds);
    if (collect_stats) result.stats.push_back({stats, seconds});

    std::map<std::string, double> metrics;
    const bool evaluate = spec_.eval_every > 0 && state_.step % spec_.eval_every == 0;
    if (evaluate) {
      absl::StatusOr<std::map<std::string, double>> m = Evaluate();
      if (!m.ok()) {
        status = m.status();
        break;
      }
      metrics = *std::move(m);
      evaluated_at = state_.step;
    }
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - run_start);
    const double rate = elapsed > 0 ? (k + 1) / elapsed : 0.0;
    UpdateProgress(
        [&](JobSnapshot& s) {
          s.step = state_.step;
          s.last_stats = stats;
          s.last_step_seconds = seconds;
          s.steps_per_second = rate;
          s.eta_seconds = rate > 0 ? (steps - k - 1) / rate : 0.0;
          s.bytes = StateBytes();
          if (evaluate) {
            s.metrics = metrics;
            s.metrics_step = state_.step;
          }
        },
        /*force=*/evaluate || seconds >= kSlowStepSeconds);
  }
  // A run with evaluation ends with the metrics of its last step.
  if (status.ok() && spec_.eval_every > 0 && steps > 0 && evaluated_at != state_.step) {
    absl::StatusOr<std::map<std::string, double>> m = Evaluate();
    if (m.ok()) {
      UpdateProgress([&](JobSnapshot& s) {
        s.metrics = *m;
        s.metrics_step = state_.step;
      });
    } else {
      status = m.status();
    }
  }
  // Particle reads that arrived during the run are served with the final state, under the lock that
  // makes the job visibly not running.
  std::vector<std::function<void(Points, int64_t)>> reads;
  Points final_particles;
  const int64_t final_step = state_.step;
  MarkFinished(status, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    reads.swap(pending_reads_);
    has_pending_reads_.store(false);
    if (!reads.empty()) final_particles = state_.particles;
  });
  for (auto& done : reads) done(final_particles, final_step);
  result.status = status;
  return result;
}

}  // namespace sampled::server
