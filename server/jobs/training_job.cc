#include "server/jobs/training_job.h"

#include <algorithm>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "core/common/byte_codec.h"
#include "core/common/parallel.h"
#include "core/common/status_macros.h"
#include "core/metrics/metric.h"

namespace sampled::server {
absl::StatusOr<std::shared_ptr<TrainingJob>> TrainingJob::Create(JobSnapshot identity, TrainingJobSpec spec,
                                                                 std::shared_ptr<const Target> target,
                                                                 std::string provenance_json, SamplerSink sink,
                                                                 TrainingObserver on_step) {
  SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<training::Trainer> trainer, training::CreateTrainer(spec.settings, target));
  SAMPLED_ASSIGN_OR_RETURN(
      training::TrainingState state,
      training::MakeInitialTrainingState(spec.settings, spec.from_sampler.empty() ? nullptr : &spec.from_sampler));
  identity.method = spec.settings.method;
  identity.dim = target->dim();
  identity.particle_count = spec.settings.batch;
  return absl::WrapUnique(new TrainingJob(std::move(identity), std::move(spec), std::move(target), std::move(trainer),
                                          std::move(state), std::move(provenance_json), std::move(sink),
                                          std::move(on_step)));
}

namespace {
constexpr std::string_view kCheckpointMagic = "SDTJOB1";

void WriteMetrics(ByteWriter& w, const std::map<std::string, double>& m) {
  w.U64(m.size());
  for (const auto& [k, v] : m) w.String(k), w.F64(v);
}
bool ReadMetrics(ByteReader& r, std::map<std::string, double>* m) {
  uint64_t n = 0;
  if (!r.U64(&n) || n > (uint64_t{1} << 20)) return false;
  for (uint64_t i = 0; i < n; ++i) {
    std::string k;
    double v;
    if (!r.String(&k) || !r.F64(&v)) return false;
    (*m)[k] = v;
  }
  return true;
}
}  // namespace

std::string TrainingJob::CheckpointOf(const training::TrainingState& state) const {
  std::string out(kCheckpointMagic);
  ByteWriter w(&out);
  w.String(training::SerializeTrainingState(state));
  w.I64(start_step_);
  w.I64(evaluated_at_);
  WriteMetrics(w, last_metrics_);
  WriteMetrics(w, best_metrics_);
  absl::MutexLock lock(&history_mu_);
  w.I64(evaluation_count_);
  for (const Series* series : {&iterations_, &evaluations_}) {
    w.I64(series->stride);
    w.U64(series->rows.size());
    for (const auto& [index, row] : series->rows) {
      w.I64(index);
      w.I64(row.step);
      for (double v : {row.score_loss, row.sampler_loss, row.sampler_grad_norm, row.seconds}) w.F64(v);
      WriteMetrics(w, row.metrics);
    }
  }
  return out;
}

std::string TrainingJob::SerializeCheckpoint() const {
  absl::MutexLock lock(&mu_);
  return CheckpointOf(state_.locked(mu_));
}

absl::StatusOr<std::shared_ptr<TrainingJob>> TrainingJob::Restore(JobSnapshot snapshot, TrainingJobSpec spec,
                                                                  std::shared_ptr<const Target> target,
                                                                  std::string provenance_json, SamplerSink sink,
                                                                  TrainingObserver on_step,
                                                                  std::string_view checkpoint) {
  const auto bad = [] { return absl::DataLossError("the training checkpoint does not parse"); };
  ByteReader r(checkpoint);
  std::string state_bytes;
  if (!r.Magic(kCheckpointMagic) || !r.String(&state_bytes)) return bad();
  SAMPLED_ASSIGN_OR_RETURN(training::TrainingState state, training::ParseTrainingState(state_bytes));
  int64_t start_step = 0, evaluated_at = -1, evaluation_count = 0;
  std::map<std::string, double> last_metrics, best_metrics;
  if (!r.I64(&start_step) || !r.I64(&evaluated_at) || !ReadMetrics(r, &last_metrics) || !ReadMetrics(r, &best_metrics) ||
      !r.I64(&evaluation_count)) {
    return bad();
  }
  Series series[2];
  for (Series& out : series) {
    uint64_t n = 0;
    if (!r.I64(&out.stride) || out.stride < 1 || !r.U64(&n) || n > static_cast<uint64_t>(kHistoryRows)) return bad();
    for (uint64_t i = 0; i < n; ++i) {
      int64_t index = 0;
      HistoryRow row;
      if (!r.I64(&index) || !r.I64(&row.step) || !r.F64(&row.score_loss) || !r.F64(&row.sampler_loss) ||
          !r.F64(&row.sampler_grad_norm) || !r.F64(&row.seconds) || !ReadMetrics(r, &row.metrics)) {
        return bad();
      }
      out.rows.emplace_back(index, std::move(row));
    }
  }
  if (!r.Done()) return bad();
  SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<training::Trainer> trainer, training::CreateTrainer(spec.settings, target));
  const auto parameters = [](const training::MlpShape& m) {
    int64_t n = 0;
    for (int64_t l = 0; l < m.layers(); ++l) n += (m.in_of(l) + 1) * m.out_of(l);
    return static_cast<size_t>(n);
  };
  if (state.sampler.params.size() != parameters(spec.settings.sampler) ||
      state.score.params.size() != parameters(spec.settings.score) ||
      state.chain.size() % std::max<size_t>(1, parameters(spec.settings.sampler)) != 0) {
    return absl::DataLossError("the training checkpoint's networks do not fit the job's settings");
  }
  snapshot.method = spec.settings.method;
  snapshot.dim = target->dim();
  snapshot.particle_count = spec.settings.batch;
  snapshot.step = state.step;
  auto job = absl::WrapUnique(new TrainingJob(std::move(snapshot), std::move(spec), std::move(target),
                                              std::move(trainer), std::move(state), std::move(provenance_json),
                                              std::move(sink), std::move(on_step)));
  job->start_step_ = start_step;
  job->taken_ = job->state_.worker().step - start_step;
  job->evaluated_at_ = evaluated_at;
  job->last_metrics_ = std::move(last_metrics);
  job->best_metrics_ = std::move(best_metrics);
  {
    absl::MutexLock lock(&job->history_mu_);
    job->evaluation_count_ = evaluation_count;
    job->iterations_ = std::move(series[0]);
    job->evaluations_ = std::move(series[1]);
  }
  return std::shared_ptr<TrainingJob>(std::move(job));
}

TrainingJob::TrainingJob(JobSnapshot identity, TrainingJobSpec spec, std::shared_ptr<const Target> target,
                         std::unique_ptr<training::Trainer> trainer, training::TrainingState state,
                         std::string provenance_json, SamplerSink sink, TrainingObserver on_step)
    : Job(std::move(identity)),
      spec_(std::move(spec)),
      target_(std::move(target)),
      provenance_json_(std::move(provenance_json)),
      sink_(std::move(sink)),
      on_step_(std::move(on_step)),
      trainer_(std::move(trainer)),
      state_(std::move(state)),
      best_by_(DefaultMetrics(*target_).empty() ? std::string() : DefaultMetrics(*target_).front()) {
  start_step_ = state_.worker().step;
  UpdateProgress([this](JobSnapshot& s) { s.bytes = StateBytes(); }, /*force=*/true);
}

int64_t TrainingJob::StateBytes() const {
  const auto bytes = [](const training::Network& n) {
    return static_cast<int64_t>((n.params.size() + n.adam.m.size() + n.adam.v.size()) * sizeof(float));
  };
  return bytes(state_.worker().sampler) + bytes(state_.worker().score) +
         static_cast<int64_t>((state_.worker().best_params.size() + state_.worker().chain.size()) * sizeof(float));
}

absl::Status TrainingJob::GuardedStep(training::TrainStats& stats) {
  // No exception crosses into the worker loop: an allocation failure fails the job, not the server. A
  // cancel stops the iteration between blocks: the sampler's weights are those of the last iteration (the
  // score network may have taken some of its inner steps).
  ScopedStopFlag stop(cancel_flag());
  try {
    return trainer_->Step(state_.worker(), &stats);
  } catch (const StopRequested&) {
    return absl::CancelledError(absl::StrCat("cancelled in iteration ", state_.worker().step + 1));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("out of memory in iteration ", state_.worker().step + 1));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("iteration ", state_.worker().step + 1, " failed: ", e.what()));
  }
}

training::SamplerModel TrainingJob::ModelOf(const std::vector<float>& params) const {
  training::SamplerModel model;
  model.shape = spec_.settings.sampler;
  model.final_params = params;
  if (const training::ScoreSdeModel* m = trainer_->score_model()) model.score_model = *m;
  model.drift = trainer_->drift_chain();
  return model;
}

absl::StatusOr<std::map<std::string, double>> TrainingJob::Evaluate(const std::vector<float>& params, int64_t step) {
  // A fresh draw per evaluation, from a seed of its own (the training stream is not touched).
  PointsF draws;
  MetricOptions o;
  o.seed = spec_.settings.seed;
  try {
    training::SamplerModel model = ModelOf(params);
    SAMPLED_RETURN_IF_ERROR(training::DrawModel(model, /*best=*/false, {},
                                                spec_.settings.seed ^ (0x5eed0000ULL + static_cast<uint64_t>(step)),
                                                spec_.eval_draws, spec_.settings.threads, &draws));
    return ComputeMetrics(DefaultMetrics(*target_), draws.cast<double>(), *target_, o);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory while evaluating the sampler");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("evaluating the sampler failed: ", e.what()));
  }
}

void TrainingJob::Series::Add(int64_t index, HistoryRow row) {
  if (index % stride != 0) return;
  rows.emplace_back(index, std::move(row));
  if (static_cast<int64_t>(rows.size()) < kHistoryRows) return;
  stride *= 2;  // at most log2(steps) times: stride never passes the index it thins
  std::vector<std::pair<int64_t, HistoryRow>> kept;
  for (auto& r : rows) {
    if (r.first % stride == 0) kept.push_back(std::move(r));
  }
  rows.swap(kept);
}

void TrainingJob::AppendHistory(HistoryRow row) {
  absl::MutexLock lock(&history_mu_);
  if (!row.metrics.empty()) evaluations_.Add(++evaluation_count_, row);
  row.metrics.clear();
  iterations_.Add(row.step, std::move(row));
}

std::vector<HistoryRow> TrainingJob::History() const {
  absl::MutexLock lock(&history_mu_);
  std::map<int64_t, HistoryRow> by_step;
  for (const auto& [index, row] : iterations_.rows) by_step[row.step] = row;
  for (const auto& [index, row] : evaluations_.rows) {
    auto [it, added] = by_step.try_emplace(row.step, row);
    if (!added) it->second.metrics = row.metrics;
  }
  std::vector<HistoryRow> out;
  for (auto& [step, row] : by_step) out.push_back(std::move(row));
  return out;
}

void TrainingJob::ConsiderBest(const std::map<std::string, double>& metrics) {
  auto it = metrics.find(best_by_);
  if (it == metrics.end()) return;
  if (state_.worker().best_step < 0 || it->second < state_.worker().best_metric) {
    state_.worker().best_params = trainer_->SamplerWeights(state_.worker());
    state_.worker().best_step = state_.worker().step;
    state_.worker().best_metric = it->second;
    best_metrics_ = metrics;
  }
}

bool TrainingJob::RunSlice(absl::Duration slice, const std::function<bool()>& others_waiting) {
  if (ended_) return false;
  if (!started_) {
    if (!MarkRunning(/*generation=*/0, spec_.steps - taken_)) {
      ended_ = true;
      return false;
    }
    started_ = true;
    run_start_ = absl::Now();
    resumed_at_ = taken_;
  }
  // From here this worker owns the training state until MarkFinished.
  const absl::Time slice_start = absl::Now();
  training::TrainStats stats;
  absl::Status status;
  while (taken_ < spec_.steps) {
    if (cancel_requested()) {
      status = absl::CancelledError(absl::StrCat("cancelled at iteration ", state_.worker().step));
      break;
    }
    const absl::Time t0 = absl::Now();
    status = GuardedStep(stats);
    const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
    if (!status.ok()) break;
    ++taken_;
    if (on_step_) on_step_(spec_.settings.method, seconds);
    HistoryRow row{state_.worker().step, stats.score_loss, stats.sampler_loss, stats.sampler_grad_norm, seconds, {}};
    const bool evaluate = spec_.eval_every > 0 && state_.worker().step % spec_.eval_every == 0;
    std::string metrics_error;
    if (evaluate) {
      // A failed evaluation is reported beside the metrics; the weights are fine, the run goes on.
      absl::StatusOr<std::map<std::string, double>> m = Evaluate(trainer_->SamplerWeights(state_.worker()), state_.worker().step);
      evaluated_at_ = state_.worker().step;
      if (m.ok()) {
        last_metrics_ = *std::move(m);
        row.metrics = last_metrics_;
        ConsiderBest(last_metrics_);
      } else {
        metrics_error = m.status().ToString();
      }
    }
    AppendHistory(row);
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - run_start_);
    const double rate = elapsed > 0 ? (taken_ - resumed_at_) / elapsed : 0.0;
    UpdateProgress(
        [&](JobSnapshot& s) {
          s.step = state_.worker().step;
          s.last_training = stats;
          s.last_step_seconds = seconds;
          s.steps_per_second = rate;
          s.eta_seconds = rate > 0 ? (spec_.steps - taken_) / rate : 0.0;
          s.bytes = StateBytes();
          if (evaluate) {
            s.metrics_error = metrics_error;
            if (metrics_error.empty()) {
              s.metrics = last_metrics_;
              s.metrics_step = state_.worker().step;
            }
          }
        },
        /*force=*/evaluate || seconds >= kSlowStepSeconds);
    if (Checkpointer* c = checkpoints()) c->AfterStep(state_.worker().step, [this] { return CheckpointOf(state_.worker()); });
    if (taken_ < spec_.steps && absl::Now() - slice_start >= slice && others_waiting && others_waiting()) {
      return true;
    }
  }
  EndRun(status);
  return false;
}

void TrainingJob::AbandonRun() {
  if (ended_) return;
  if (!started_) {
    ended_ = true;
    return;
  }
  EndRun(absl::CancelledError(absl::StrCat("the server shut down at iteration ", state_.worker().step)));
}

void TrainingJob::EndRun(absl::Status status) {
  ended_ = true;
  // A run stopped by the shutdown leaves a checkpoint to resume from, and no sampler: it goes on at the
  // next start.
  if (interrupted()) {
    if (Checkpointer* c = checkpoints()) c->Now(state_.worker().step, [this] { return CheckpointOf(state_.worker()); });
    MarkFinished(status);
    return;
  }
  std::map<std::string, double>& metrics = last_metrics_;
  const int64_t evaluated_at = evaluated_at_;
  const int64_t start_step = start_step_;
  const bool took_steps = state_.worker().step > start_step;
  // What is left in the session: the final weights of a succeeded run, the last ones of a cancelled run
  // that took a step, the last finite ones of a run whose loss turned non-finite.
  const bool non_finite = training::IsNonFinite(status);
  bool leaves = status.ok() ? took_steps : (status.code() == absl::StatusCode::kCancelled ? took_steps : non_finite);
  // A drift chain (ingd) that holds no drift yet is no sampler (its first iteration failed).
  if (trainer_->SamplerWeights(state_.worker()).empty()) leaves = false;
  if (leaves) {
    if (evaluated_at != state_.worker().step) {
      absl::StatusOr<std::map<std::string, double>> m = Evaluate(trainer_->SamplerWeights(state_.worker()), state_.worker().step);
      if (m.ok()) {
        metrics = *std::move(m);
        ConsiderBest(metrics);
        UpdateProgress([&](JobSnapshot& s) {
          s.metrics = metrics;
          s.metrics_step = state_.worker().step;
        });
      }
    }
    auto model = std::make_shared<training::SamplerModel>(ModelOf(trainer_->SamplerWeights(state_.worker())));
    if (state_.worker().best_step >= 0 && state_.worker().best_step != state_.worker().step) model->best_params = state_.worker().best_params;
    model->last_finite = !status.ok() && non_finite;
    model->provenance_json =
        training::WithTrainingResult(provenance_json_, {spec_.settings.method, state_.worker().step, state_.worker().best_step});
    TrainedSampler trained{std::move(model), state_.worker().step, metrics, best_metrics_, state_.worker().best_step};
    absl::StatusOr<std::string> id = sink_(std::move(trained));
    if (id.ok()) {
      UpdateProgress([&](JobSnapshot& s) { s.sampler_id = *id; }, /*force=*/true);
    } else if (status.ok()) {
      status = absl::Status(id.status().code(),
                            absl::StrCat("training finished but its sampler could not be stored: ", id.status().message()));
    }
  }
  if (Checkpointer* c = checkpoints()) c->Now(state_.worker().step, [this] { return CheckpointOf(state_.worker()); });
  MarkFinished(status);
}

}  // namespace sampled::server
