#include "core/training/neural_sampler.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/parallel.h"
#include "core/common/status_macros.h"

namespace sampled::training {
namespace {

bool AllFinite(const std::vector<float>& v) {
  float acc = 0;
  for (float f : v) acc += f * 0.0f;  // NaN for any NaN or infinity
  return acc == 0;
}

double Norm(const std::vector<float>& v) {
  double s = 0;
  for (float f : v) s += static_cast<double>(f) * f;
  return std::sqrt(s);
}

}  // namespace

absl::Status TargetScore(const Target& target, const PointsF& x, PointsF* out) {
  const Points xd = x.cast<double>();
  Points s;
  SAMPLED_RETURN_IF_ERROR(target.Score(xd, &s));
  *out = s.cast<float>();
  return absl::OkStatus();
}

NeuralSamplerTrainer::NeuralSamplerTrainer(const TrainSettings& settings, std::shared_ptr<const Target> target,
                                           std::unique_ptr<SamplerObjective> objective)
    : settings_(settings),
      target_(std::move(target)),
      objective_(std::move(objective)),
      threads_(settings.threads > 0 ? settings.threads : DefaultComputeThreads()) {}

void NeuralSamplerTrainer::Draw(const std::vector<float>& sampler_params, Rng& rng, MlpCache* cache) {
  z_.resize(settings_.batch, settings_.sampler.in);
  rng.FillNormal(z_.data(), z_.size());
  MlpForward(settings_.sampler, sampler_params, z_, threads_, cache, &x_);
}

void NeuralSamplerTrainer::DrawScoreNoise(Rng& rng) {
  if (settings_.score_loss == ScoreLoss::kSsm) return;
  noise_.resize(settings_.batch, settings_.score.in);
  rng.FillNormal(noise_.data(), noise_.size());
}

double NeuralSamplerTrainer::ScoreGradient(const std::vector<float>& score_params, const PointsF& x,
                                           const PointsF& noise, std::vector<float>* grad) {
  return ScoreMatchingLoss(settings_.score, score_params, x, settings_.score_loss, settings_.dsm_sigma, noise,
                           threads_, score_ws_, grad);
}

absl::Status NeuralSamplerTrainer::SamplerGradient(const TrainingState& state, const PointsF& z, double* loss,
                                                   std::vector<float>* grad, PointsF* x) {
  MlpForward(settings_.sampler, state.sampler.params, z, threads_, &sampler_cache_, x);
  SAMPLED_RETURN_IF_ERROR(objective_->Evaluate(settings_.score, state.score.params, *x, threads_, loss, &dloss_dx_));
  grad->clear();
  MlpBackward(settings_.sampler, state.sampler.params, sampler_cache_, dloss_dx_, {}, threads_, grad, nullptr);
  return absl::OkStatus();
}

absl::Status NeuralSamplerTrainer::Step(TrainingState& state, TrainStats* stats) {
  const int64_t iteration = state.step + 1;
  Rng rng = state.rng;
  Network score = state.score;  // committed only when the whole iteration is finite
  double score_loss = 0;
  for (int64_t k = 0; k < settings_.score_steps; ++k) {
    Draw(state.sampler.params, rng, nullptr);
    DrawScoreNoise(rng);
    score_loss = ScoreGradient(score.params, x_, noise_, &grad_);
    if (!std::isfinite(score_loss) || !AllFinite(grad_)) {
      return NonFiniteError(
          absl::StrCat("the score network's loss or gradient turned non-finite at iteration ", iteration,
                       ", score step ", k + 1, " (loss ", score_loss, "); lower score_lr or lr"));
    }
    AdamStep(settings_.score_adam, grad_, score.adam, score.params);
  }
  Draw(state.sampler.params, rng, &sampler_cache_);
  double sampler_loss = 0;
  SAMPLED_RETURN_IF_ERROR(
      objective_->Evaluate(settings_.score, score.params, x_, threads_, &sampler_loss, &dloss_dx_));
  grad_.clear();
  MlpBackward(settings_.sampler, state.sampler.params, sampler_cache_, dloss_dx_, {}, threads_, &grad_, nullptr);
  if (!std::isfinite(sampler_loss) || !AllFinite(grad_)) {
    return NonFiniteError(absl::StrCat("the sampler's loss or gradient turned non-finite at iteration ",
                                                      iteration, " (loss ", sampler_loss, "); lower lr"));
  }
  AdamStep(settings_.sampler_adam, grad_, state.sampler.adam, state.sampler.params);
  state.score = std::move(score);
  state.rng = rng;
  state.step = iteration;
  if (stats != nullptr) {
    stats->step = iteration;
    stats->score_loss = score_loss;
    stats->sampler_loss = sampler_loss;
    stats->sampler_grad_norm = Norm(grad_);
  }
  return absl::OkStatus();
}

}  // namespace sampled::training
