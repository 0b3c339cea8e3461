// The "sd-generator" method: a generator trained from data by regression on SD-flow-perturbed targets
// (002 Sec. 6.2, Alg. 2; the step's pieces in sd_generator.h). Each iteration draws a fresh latent batch, its
// images, noise and a data batch (without replacement; all the data when there are fewer points than the
// batch), moves the images by one SD step and takes `steps_per_batch` optimiser steps on the regression (plain
// SGD as Alg. 2 writes it, or Adam).
//
// The noise level and the kernel bandwidth follow the SD flow's rules (core/flows/schedule.h; default: the
// median rule of 002 footnote 15 over the generated batch, the bandwidth equal to the noise), or
// nearest-mean:F, 002 App. C.4's constant schedule: sigma^2 = F x the mean distance from the first output batch
// to its nearest data point, fixed at the first iteration and kept in the state.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/kernel_flow_util.h"
#include "core/flows/schedule.h"
#include "core/flows/sd_flow.h"
#include "core/training/data_batch.h"
#include "core/training/sd_generator.h"

namespace sampled::training {
namespace {

constexpr char kNearestMean[] = "nearest-mean:";
constexpr char kNoiseSigma[] = "noise_sigma";  // TrainingState::values: the nearest-mean level, once fixed

class SdGeneratorTrainer final : public Trainer {
 public:
  SdGeneratorTrainer(const TrainSettings& settings, std::shared_ptr<const Target> target, KernelSigmas sigmas,
                     double nearest_factor)
      : settings_(settings),
        target_(std::move(target)),
        data_(*target_->samples()),
        sigmas_(std::move(sigmas)),
        nearest_factor_(nearest_factor),
        threads_(ThreadsOf(settings)),
        gradients_(settings),
        median_(MedianSpec{kDefaultMedianPairs, settings.seed}) {}

  absl::Status Step(TrainingState& state, TrainStats* stats) override {
    const int64_t iteration = state.step + 1;
    const int64_t batch = settings_.batch;
    const MlpShape& shape = settings_.sampler;
    Rng rng = state.rng;  // committed only when the whole iteration is finite
    Network gen = state.sampler;
    std::map<std::string, double> values = state.values;

    // The latents and the noise in blocks on every thread, from one draw of the run's generator (a serial
    // Box-Muller of 77k values took 1.8 ms of a 7.6 ms iteration at 002 App. C.4's sizes).
    const uint64_t draws = rng.NextU64();
    xi_.resize(batch, shape.in);
    FillNormalBlocks(BlockSeed(draws, 0), xi_.data(), xi_.size(), threads_);
    gradients_.Forward(gen.params, xi_);
    double bandwidth = 0, noise = 0;
    if (nearest_factor_ > 0) {
      auto it = values.find(kNoiseSigma);
      if (it == values.end()) {
        const double mean = MeanNearestDistance(gradients_.output().cast<double>(), data_);
        it = values.emplace(kNoiseSigma, std::sqrt(nearest_factor_ * mean)).first;
      }
      bandwidth = noise = it->second;
    } else {
      SigmaMedians medians;
      if (sigmas_.needs_median() || sigmas_.needs_initial_median()) {  // initial-: the first generated batch's
        const Points y = gradients_.output().cast<double>();
        medians = median_.Measure(sigmas_, y, values, y.colwise().mean(), rng, threads_);
        HoldInitialMedian(sigmas_, medians, values);  // `values` is committed with the iteration
      }
      sigmas_.At(state.step, medians, batch, &bandwidth, &noise);
    }
    if (!(bandwidth > 0 && std::isfinite(bandwidth)) || !std::isfinite(noise)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sd-generator iteration ", iteration, ": the kernel bandwidth is ", bandwidth, " and the noise level ", noise,
          " (has the generator collapsed to a point?); give a fixed bandwidth"));
    }
    if (noise > 0) {
      eps_.resize(batch, shape.out);
      FillNormalBlocks(BlockSeed(draws, 1), eps_.data(), eps_.size(), threads_);
    }
    batch_.Gather(data_, settings_.batch, rng, &x_);
    gradients_.Goal(x_, eps_, bandwidth, noise, &goal_);

    double first_loss = 0, grad_norm = 0;
    for (int64_t k = 0; k < settings_.steps_per_batch; ++k) {
      if (k > 0) gradients_.Forward(gen.params, xi_);
      const double loss = gradients_.Regression(gen.params, goal_, &grad_);
      if (!std::isfinite(loss) || !AllFinite(grad_)) {
        return NonFiniteError(absl::StrCat("the generator's regression loss or gradient turned non-finite at iteration ",
                                           iteration, " (loss ", loss, "); lower lr or eta"));
      }
      if (k == 0) {
        first_loss = loss;
        grad_norm = Norm(grad_);
      }
      if (settings_.sgd) {
        const float lr = static_cast<float>(settings_.sampler_adam.lr);
        for (size_t i = 0; i < grad_.size(); ++i) gen.params[i] -= lr * grad_[i];
      } else {
        AdamStep(settings_.sampler_adam, grad_, gen.adam, gen.params);
      }
    }
    if (!AllFinite(gen.params)) {
      return NonFiniteError(
          absl::StrCat("the generator's weights turned non-finite at iteration ", iteration, "; lower lr or eta"));
    }
    state.sampler = std::move(gen);
    state.values = std::move(values);
    CommitIteration(rng, {iteration, 0, first_loss, grad_norm}, state, stats);
    return absl::OkStatus();
  }

  const TrainSettings& settings() const override { return settings_; }

 private:
  const TrainSettings settings_;
  const std::shared_ptr<const Target> target_;
  const Points& data_;
  const KernelSigmas sigmas_;
  const double nearest_factor_;  // > 0: the nearest-mean rule
  const int threads_;
  SdGeneratorGradients<float> gradients_;
  // Scratch reused by every iteration.
  PointsF xi_, eps_, x_, goal_;
  DataBatch batch_;
  std::vector<float> grad_;
  ParticleMedian<float> median_;
};

// The noise and bandwidth rules of `s`; `nearest` gets the nearest-mean factor (0: the SD flow's rules).
absl::StatusOr<KernelSigmas> ResolveSigmas(const TrainSettings& s, double* nearest) {
  SAMPLED_ASSIGN_OR_RETURN(*nearest, NearestMeanFactor(s.noise));
  if (*nearest > 0) {
    if (!s.bandwidth.empty() && s.bandwidth != "noise") {
      return absl::InvalidArgumentError("noise nearest-mean:F sets the bandwidth too; leave bandwidth unset");
    }
    return KernelSigmas();
  }
  for (const std::string* rule : {&s.noise, &s.bandwidth}) {
    if (absl::StartsWith(*rule, "cosine")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", *rule, "': sd-generator takes no cosine schedule yet (its length is not known to the trainer); "
          "use a constant, a median rule or nearest-mean:F"));
    }
  }
  const auto given = [](const std::string& v) { return v.empty() ? std::nullopt : std::optional<std::string>(v); };
  return KernelSigmas::Resolve(given(s.bandwidth), given(s.noise), "median", "bandwidth", /*schedule_steps=*/0);
}

}  // namespace

template <typename T>
SdGeneratorGradients<T>::SdGeneratorGradients(const TrainSettings& settings)
    : settings_(settings), threads_(ThreadsOf(settings)) {}

template <typename T>
void SdGeneratorGradients<T>::Forward(const std::vector<T>& params, const PointsT<T>& xi) {
  MlpForward<T>(settings_.sampler, params, xi, threads_, &cache_, &y_);
}

template <typename T>
void SdGeneratorGradients<T>::Goal(const PointsT<T>& data, const PointsT<T>& eps, double bandwidth, double noise,
                                   PointsT<T>* goal) {
  // Centred on the batch's mean, as the SD flow works (the direction is translation-equivariant, and float32
  // keeps more digits near the origin).
  center_ = y_.template cast<double>().colwise().mean();
  const Eigen::Matrix<T, 1, Eigen::Dynamic> c = center_.cast<T>();
  yc_ = y_.rowwise() - c;
  if (noise > 0) {
    z_ = yc_ + static_cast<T>(noise) * eps;
  } else {
    z_ = yc_;
  }
  xc_ = data.rowwise() - c;
  SdFlowDirection<T>(z_, xc_, yc_, bandwidth, ws_, threads_, &scratch_, &direction_);
  *goal = y_ + (settings_.eta * direction_).template cast<T>();
}

template <typename T>
double SdGeneratorGradients<T>::Regression(const std::vector<T>& params, const PointsT<T>& goal,
                                           std::vector<T>* grad) {
  dy_ = y_ - goal;
  grad->clear();
  MlpBackward<T>(settings_.sampler, params, cache_, dy_, {}, threads_, grad, nullptr);
  return 0.5 * dy_.template cast<double>().squaredNorm();
}

template class SdGeneratorGradients<float>;
template class SdGeneratorGradients<double>;

absl::StatusOr<double> NearestMeanFactor(const std::string& noise) {
  if (!absl::StartsWith(noise, kNearestMean)) return 0.0;
  double f = 0;
  if (!absl::SimpleAtod(noise.substr(sizeof(kNearestMean) - 1), &f) || !(f > 0) || !std::isfinite(f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("noise '", noise, "': nearest-mean:F needs a factor F > 0 (002 App. C.4: nearest-mean:10)"));
  }
  return f;
}

double MeanNearestDistance(const Points& y, const Points& x) {
  // Blocks of both sides: the workspace is 256 x 4096 distances (8 MB) whatever the data's size.
  constexpr int64_t kRows = 256, kCols = 4096;
  double total = 0;
  Eigen::MatrixXd d2;
  for (int64_t r0 = 0; r0 < y.rows(); r0 += kRows) {
    const int64_t rows = std::min(kRows, y.rows() - r0);
    const auto yb = y.middleRows(r0, rows);
    const Eigen::VectorXd yn = yb.rowwise().squaredNorm();
    Eigen::VectorXd nearest = Eigen::VectorXd::Constant(rows, std::numeric_limits<double>::infinity());
    for (int64_t c0 = 0; c0 < x.rows(); c0 += kCols) {
      const auto xb = x.middleRows(c0, std::min(kCols, x.rows() - c0));
      d2.noalias() = -2.0 * (yb * xb.transpose());
      d2.colwise() += yn;
      d2.rowwise() += xb.rowwise().squaredNorm().transpose();
      nearest = nearest.cwiseMin(d2.rowwise().minCoeff());
    }
    for (int64_t i = 0; i < rows; ++i) total += std::sqrt(std::max(0.0, nearest(i)));
  }
  return total / static_cast<double>(y.rows());
}

const TrainMethod& SdGeneratorTrainMethod() {
  static const TrainMethod method{
      "sd-generator",
      "002 Alg. 2: a generator x = g(xi) (mlp, or linear: x = B xi + mu) regressed on its own output moved by an SD "
      "step toward a data batch (data targets)",
      /*needs_twice_differentiable_score=*/false,
      [](const TrainSettings& settings,
         std::shared_ptr<const Target> target) -> absl::StatusOr<std::unique_ptr<Trainer>> {
        if (target->samples() == nullptr) {
          return absl::FailedPreconditionError("sd-generator trains from a data target's points");
        }
        double nearest = 0;
        SAMPLED_ASSIGN_OR_RETURN(KernelSigmas sigmas, ResolveSigmas(settings, &nearest));
        return std::unique_ptr<Trainer>(
            std::make_unique<SdGeneratorTrainer>(settings, std::move(target), std::move(sigmas), nearest));
      },
      TrainKind::kGenerator};
  return method;
}

}  // namespace sampled::training
