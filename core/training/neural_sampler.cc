#include "core/training/neural_sampler.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/parallel.h"
#include "core/common/status_macros.h"

namespace sampled::training {

template <typename T>
absl::Status TargetScore(const Target& target, const PointsT<T>& x, PointsT<T>* out) {
  if constexpr (std::is_same_v<T, double>) {
    return target.Score(x, out);
  } else {
    const Points xd = x.template cast<double>();
    Points s;
    SAMPLED_RETURN_IF_ERROR(target.Score(xd, &s));
    *out = s.cast<T>();
    return absl::OkStatus();
  }
}

template <typename T>
absl::StatusOr<std::unique_ptr<SamplerObjective<T>>> MakeSamplerObjective(const std::string& method,
                                                                         std::shared_ptr<const Target> target) {
  if (method == KlTrainMethod().name) return MakeKlObjective<T>(std::move(target));
  if (method == FisherTrainMethod().name) return MakeFisherObjective<T>(std::move(target));
  return absl::InvalidArgumentError(absl::StrCat("'", method, "' is not a neural-sampler method (kl, fisher)"));
}

template <typename T>
NeuralSamplerGradients<T>::NeuralSamplerGradients(const TrainSettings& settings,
                                                  std::unique_ptr<SamplerObjective<T>> objective)
    : settings_(settings), objective_(std::move(objective)), threads_(ThreadsOf(settings)) {}

template <typename T>
double NeuralSamplerGradients<T>::Score(const std::vector<T>& score_params, const PointsT<T>& x,
                                        const PointsT<T>& noise, std::vector<T>* grad) {
  return ScoreMatchingLoss(settings_.score, score_params, x, settings_.score_loss, settings_.dsm_sigma, noise,
                           threads_, score_ws_, grad);
}

template <typename T>
absl::Status NeuralSamplerGradients<T>::Sampler(const std::vector<T>& sampler_params,
                                                const std::vector<T>& score_params, const PointsT<T>& z,
                                                double* loss, std::vector<T>* grad, PointsT<T>* x) {
  MlpForward<T>(settings_.sampler, sampler_params, z, threads_, &sampler_cache_, x);
  SAMPLED_RETURN_IF_ERROR(objective_->Evaluate(settings_.score, score_params, *x, threads_, loss, &dloss_dx_));
  grad->clear();
  MlpBackward<T>(settings_.sampler, sampler_params, sampler_cache_, dloss_dx_, {}, threads_, grad,
              nullptr);
  return absl::OkStatus();
}

template class NeuralSamplerGradients<float>;
template class NeuralSamplerGradients<double>;
template absl::Status TargetScore<float>(const Target&, const PointsF&, PointsF*);
template absl::Status TargetScore<double>(const Target&, const Points&, Points*);
template absl::StatusOr<std::unique_ptr<SamplerObjective<float>>> MakeSamplerObjective<float>(
    const std::string&, std::shared_ptr<const Target>);
template absl::StatusOr<std::unique_ptr<SamplerObjective<double>>> MakeSamplerObjective<double>(
    const std::string&, std::shared_ptr<const Target>);

NeuralSamplerTrainer::NeuralSamplerTrainer(const TrainSettings& settings,
                                           std::unique_ptr<SamplerObjective<float>> objective)
    : settings_(settings), threads_(ThreadsOf(settings)), gradients_(settings, std::move(objective)) {}

void NeuralSamplerTrainer::DrawLatents(Rng& rng) {
  z_.resize(settings_.batch, settings_.sampler.in);
  rng.FillNormal(z_.data(), z_.size());
}

void NeuralSamplerTrainer::Draw(const std::vector<float>& sampler_params, Rng& rng) {
  DrawLatents(rng);
  MlpForward<float>(settings_.sampler, sampler_params, z_, threads_, nullptr, &x_);
}

void NeuralSamplerTrainer::DrawScoreNoise(Rng& rng) {
  if (settings_.score_loss == ScoreLoss::kSsm) return;
  noise_.resize(settings_.batch, settings_.score.in);
  rng.FillNormal(noise_.data(), noise_.size());
}

absl::Status NeuralSamplerTrainer::Step(TrainingState& state, TrainStats* stats) {
  const int64_t iteration = state.step + 1;
  Rng rng = state.rng;
  Network score = state.score;  // committed only when the whole iteration is finite
  double score_loss = 0;
  for (int64_t k = 0; k < settings_.score_steps; ++k) {
    Draw(state.sampler.params, rng);
    DrawScoreNoise(rng);
    score_loss = gradients_.Score(score.params, x_, noise_, &grad_);
    if (!std::isfinite(score_loss) || !AllFinite(grad_)) {
      return NonFiniteError(
          absl::StrCat("the score network's loss or gradient turned non-finite at iteration ", iteration,
                       ", score step ", k + 1, " (loss ", score_loss, "); lower score_lr or lr"));
    }
    AdamStep(settings_.score_adam, grad_, score.adam, score.params);
  }
  DrawLatents(rng);
  double sampler_loss = 0;
  SAMPLED_RETURN_IF_ERROR(gradients_.Sampler(state.sampler.params, score.params, z_, &sampler_loss, &grad_, &x_));
  if (!std::isfinite(sampler_loss) || !AllFinite(grad_)) {
    return NonFiniteError(absl::StrCat("the sampler's loss or gradient turned non-finite at iteration ",
                                                      iteration, " (loss ", sampler_loss, "); lower lr"));
  }
  AdamStep(settings_.sampler_adam, grad_, state.sampler.adam, state.sampler.params);
  state.score = std::move(score);
  CommitIteration(rng, {iteration, score_loss, sampler_loss, Norm(grad_)}, state, stats);
  return absl::OkStatus();
}

}  // namespace sampled::training
