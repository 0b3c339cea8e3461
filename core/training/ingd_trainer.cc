// The "ingd" method: a generator trained from data by implicit natural gradient descent (000 Alg. 1), with the
// drift model of Def. 4.1 as the generator: x_0 = z ~ N(0, I_d), x_{k+1} = x_k + epsilon h_k(x_k), each h_k an
// MLP fitted by Eq. 7,
//   min_w  | grad L - E_q[J_T(x) h(x; w)] |^2_{F^-1},   grad L = E_p[T] - E_q[T],  F = Cov_q[T] + ridge I,
// so that the step moves q's mean statistics as natural gradient descent on KL(p | q) moves them in the
// exponential family of T (Thm 4.2: the drift's projected natural parameter velocity is F^-1 E[J_T h]).
// (The sign: Eq. 7 writes the Euclidean gradient of the loss; we use the descent direction E_p[T] - E_q[T],
// as KiNG does, so that h points from q toward p.)
//
// The generator's samples during training are a cloud of `batch` latents z fixed at the start (Alg. 1's
// "latent samples Z") pushed through the drifts so far; the cloud is a function of the seed and the chain,
// recomputed when a trainer meets a state it has not stepped (a restore), so the state stays the whole state.
// Each iteration: a data batch (fresh, without replacement), the statistics of the step (KiNG's: RBF basis
// points redrawn from the cloud and the batch), grad L and F at the cloud, then `inner_steps` Adam steps on
// Eq. 7 from the previous drift's weights (the first drift starts at h = 0), then the cloud moves.
#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include <Eigen/Cholesky>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/king_common.h"
#include "core/flows/natural_gradient.h"
#include "core/flows/options.h"
#include "core/training/data_batch.h"
#include "core/training/trainer.h"

namespace sampled::training {
namespace {

constexpr uint64_t kCloudSalt = 0x1a9d0c10dULL;  // the latent cloud's seed: settings.seed ^ this

class IngdTrainer final : public Trainer {
 public:
  IngdTrainer(const TrainSettings& settings, std::shared_ptr<const Target> target, KingStatsConfig stats)
      : settings_(settings),
        target_(std::move(target)),
        data_(*target_->samples()),
        threads_(ThreadsOf(settings)),
        builder_(std::move(stats), MedianSpec{kDefaultMedianPairs, settings.seed}) {}

  absl::Status Step(TrainingState& state, TrainStats* stats) override {
    const int64_t iteration = state.step + 1;
    const MlpShape& shape = settings_.sampler;
    const int64_t n = settings_.batch, d = shape.out;
    SAMPLED_RETURN_IF_ERROR(Cloud(state));
    Rng rng = state.rng;  // committed only when the whole iteration is finite
    batch_.Gather(data_, settings_.batch, rng, &x_);
    y_ = cloud_.cast<double>();
    SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<SufficientStatistics> t, builder_.Build(y_, &x_, nullptr, rng, threads_));
    SAMPLED_RETURN_IF_ERROR(t->Evaluate(y_, &ty_, &jac_));
    SAMPLED_RETURN_IF_ERROR(t->Evaluate(x_, &tx_, nullptr));
    const int64_t b = t->size();
    const Eigen::VectorXd grad = (tx_.colwise().mean() - ty_.colwise().mean()).transpose();
    MatrixXd fisher = Covariance(ty_);
    fisher.diagonal().array() += settings_.ridge;
    const Eigen::LDLT<MatrixXd> solve(fisher);
    if (solve.info() != Eigen::Success || !grad.allFinite()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ingd iteration ", iteration, ": the statistics' covariance F cannot be factorised (raise ridge)"));
    }

    // |grad L|^2_{F^-1}: the natural gradient's squared norm, the history's score_loss.
    const double first = grad.dot(solve.solve(grad));
    // Eq. 7 by Adam on the drift's weights, from the last drift's.
    Network h = state.sampler;
    h.adam = AdamState();
    double last = 0, grad_norm = 0;
    for (int64_t k = 0; k <= settings_.inner_steps; ++k) {
      MlpForward(shape, h.params, cloud_, threads_, &cache_, &out_);
      h64_ = out_.cast<double>();
      Eigen::VectorXd m = Eigen::VectorXd::Zero(b);  // E_q[J_T h] = (1/n) sum_i J_i h_i
      for (int64_t a = 0; a < d; ++a) m.noalias() += jac_.middleCols(a * b, b).transpose() * h64_.col(a);
      m /= static_cast<double>(n);
      const Eigen::VectorXd r = grad - m, u = solve.solve(r);
      const double loss = r.dot(u);
      last = loss;
      if (!std::isfinite(loss)) {
        return NonFiniteError(absl::StrCat("ingd's drift fit turned non-finite at iteration ", iteration,
                                           " (inner step ", k, "); lower lr or epsilon, or raise ridge"));
      }
      if (k == settings_.inner_steps) break;
      // dL/dh_i = -(2/n) J_i^T F^-1 r
      for (int64_t a = 0; a < d; ++a) dh_.col(a) = jac_.middleCols(a * b, b) * u;
      dy_ = (dh_ * (-2.0 / static_cast<double>(n))).cast<float>();
      grad_.clear();
      MlpBackward(shape, h.params, cache_, dy_, {}, threads_, &grad_, nullptr);
      if (k == 0) grad_norm = Norm(grad_);
      AdamStep(settings_.sampler_adam, grad_, h.adam, h.params);
    }
    if (!AllFinite(h.params) || !out_.allFinite()) {
      return NonFiniteError(absl::StrCat("ingd's drift turned non-finite at iteration ", iteration,
                                         "; lower lr or epsilon, or raise ridge"));
    }
    state.chain.insert(state.chain.end(), h.params.begin(), h.params.end());
    state.sampler = std::move(h);
    cloud_ += static_cast<float>(settings_.epsilon) * out_;  // out_ is the committed drift at the cloud
    cloud_drifts_ = DriftSteps(shape, state.chain);
    CommitIteration(rng, {iteration, first, last, grad_norm}, state, stats);
    return absl::OkStatus();
  }

  const TrainSettings& settings() const override { return settings_; }
  const std::vector<float>& SamplerWeights(const TrainingState& state) const override { return state.chain; }
  std::optional<DriftChain> drift_chain() const override { return DriftChain{settings_.epsilon}; }

 private:
  // The cloud of the state's chain: the fixed latents pushed through every drift, unless it is the one the
  // last step left (dh_ sized alongside).
  absl::Status Cloud(const TrainingState& state) {
    const MlpShape& shape = settings_.sampler;
    const int64_t drifts = DriftSteps(shape, state.chain);
    if (static_cast<int64_t>(state.chain.size()) != drifts * shape.parameter_count()) {
      return absl::InvalidArgumentError("ingd: the state's chain is not a whole number of drifts");
    }
    dh_.resize(settings_.batch, shape.out);
    if (cloud_drifts_ == drifts && cloud_.rows() == settings_.batch) return absl::OkStatus();
    cloud_drifts_ = -1;  // until the recomputation below completes
    cloud_.resize(settings_.batch, shape.out);
    Rng z(settings_.seed ^ kCloudSalt);
    z.FillNormal(cloud_.data(), cloud_.size());
    SAMPLED_RETURN_IF_ERROR(ApplyDrifts(shape, state.chain, 0, drifts, settings_.epsilon, threads_, nullptr, &cloud_));
    cloud_drifts_ = drifts;
    return absl::OkStatus();
  }

  const TrainSettings settings_;
  const std::shared_ptr<const Target> target_;
  const Points& data_;
  const int threads_;
  KingStatsBuilder builder_;
  // The cloud and the chain length it was pushed through (-1: none yet), and scratch reused by every step.
  PointsF cloud_, out_, dy_;
  int64_t cloud_drifts_ = -1;
  Points x_, y_, tx_, ty_, jac_, dh_, h64_;
  MlpCache cache_;
  DataBatch batch_;
  std::vector<float> grad_;
};

absl::StatusOr<KingStatsConfig> IngdStatistics(const TrainSettings& settings, int64_t dim) {
  OptionReader options(settings.statistics, "ingd");
  SAMPLED_ASSIGN_OR_RETURN(KingStatsConfig stats, ReadKingStats(options, dim, /*stein=*/false, /*default_basis=*/100));
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  return stats;
}

}  // namespace

const TrainMethod& IngdTrainMethod() {
  static const TrainMethod method{
      "ingd",
      "000 Alg. 1 with the drift model (Def. 4.1, Eq. 7): a chain of MLP drifts from N(0, I), each fitted so that it "
      "moves the statistics T (gaussian, rbf, rbf+pairs) as natural gradient descent on KL(data | model) (data targets)",
      /*needs_twice_differentiable_score=*/false,
      [](const TrainSettings& settings,
         std::shared_ptr<const Target> target) -> absl::StatusOr<std::unique_ptr<Trainer>> {
        if (target->samples() == nullptr) return absl::FailedPreconditionError("ingd trains from a data target's points");
        SAMPLED_ASSIGN_OR_RETURN(KingStatsConfig stats, IngdStatistics(settings, target->dim()));
        KingStatsBuilder check(stats, MedianSpec{});
        SAMPLED_RETURN_IF_ERROR(check.CheckSizes(settings.batch, std::min(settings.batch, target->samples()->rows())));
        return std::unique_ptr<Trainer>(std::make_unique<IngdTrainer>(settings, std::move(target), std::move(stats)));
      },
      TrainKind::kDriftChain};
  return method;
}

}  // namespace sampled::training
