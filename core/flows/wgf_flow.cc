// The "wgf" method: the Wasserstein gradient flow of the reverse KL divergence KL[q_t, p] (000 App. E):
//   dy/dt = grad log p(y) - grad log q_t(y),
// with grad log q_t from a Gaussian kernel density estimate over the particles, and grad log p the exact
// score of a density target or the same kernel estimate over the samples of a data target. For a KDE of
// bandwidth h, grad log q(y) = (m_q(y) - y) / h^2 with m_q the kernel-weighted mean (as in 002 Eq. 16).
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/flows/kernel_flow_util.h"
#include "core/flows/optimizer.h"
#include "core/flows/options.h"
#include "core/flows/schedule.h"
#include "core/kernels/kernel_sums.h"

namespace sampled {
namespace {

using WgfParams = KernelFlowParams;

template <typename Scalar>
class WgfFlow final : public Flow {
 public:
  WgfFlow(WgfParams p, std::shared_ptr<const Target> target) : p_(std::move(p)), target_(std::move(target)) {}

  absl::Status Step(FlowState& state, StepStats* stats) override {
    const Points& y = state.particles;
    const int64_t m = y.rows();
    Rng rng = state.rng;
    center_ = y.colwise().mean();
    const SigmaMedians medians = median_.Measure(p_.sigmas, y, state.values, center_, rng, p_.threads);
    double h, unused_noise;
    p_.sigmas.At(state.step, medians, m, &h, &unused_noise);
    if (!(h > 0 && std::isfinite(h))) {
      return absl::FailedPreconditionError(
          absl::StrCat("wgf step ", state.step + 1, ": the kernel bandwidth is ", h, "; give a bandwidth"));
    }
    const double inv_h2 = 1.0 / (h * h);
    GatherCentred(y, center_, 0, rng, perm_y_, index_, &y_);
    GatherCentred(y, center_, p_.batch, rng, perm_y_, index_, &yb_);
    GaussianWeightedMeans(y_, yb_, h, ws_, p_.threads, &mean_q_);  // KDE score of q: (m_q - y) / h^2
    if (const Points* samples = target_->samples(); samples != nullptr) {
      GatherCentred(*samples, center_, p_.batch, rng, perm_x_, index_, &xb_);
      GaussianWeightedMeans(y_, xb_, h, ws_, p_.threads, &mean_p_);
      direction_ = inv_h2 * (mean_p_ - mean_q_);
    } else {
      SAMPLED_RETURN_IF_ERROR(target_->Score(y, &score_));
      direction_ = score_ - inv_h2 * (mean_q_ - y_.template cast<double>());
    }
    if (!direction_.allFinite()) {
      return absl::FailedPreconditionError(absl::StrCat("wgf step ", state.step + 1, ": the drift is not finite"));
    }
    p_.optimizer.Displacement(direction_, p_.step_size, state.optimizer_state, &memory_, &displacement_);
    SAMPLED_RETURN_IF_ERROR(
        CommitDisplacement("wgf", "lower the step size", displacement_, next_, &memory_, rng, p_.step_size, state, stats));
    HoldInitialMedian(p_.sigmas, medians, state.values);
    stats->bandwidth = h;
    return absl::OkStatus();
  }

 private:
  WgfParams p_;
  std::shared_ptr<const Target> target_;
  Eigen::RowVectorXd center_;
  Points mean_p_, mean_q_, score_, direction_, displacement_, memory_, next_;
  PointsT<Scalar> y_, yb_, xb_;
  std::vector<int64_t> perm_x_, perm_y_, index_;
  KernelWorkspace<Scalar> ws_;
  ParticleMedian<Scalar> median_{p_.median};
};

absl::StatusOr<std::unique_ptr<Flow>> CreateWgfFlow(const FlowConfig& c, std::shared_ptr<const Target> target) {
  OptionReader options(c.options, "wgf");
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  WgfParams p;
  SAMPLED_RETURN_IF_ERROR(ReadKernelFlowConfig(c, std::string("none"), "median-scaled:0.5", "none", &p));
  return MakeKernelFlow<WgfFlow>(c.dtype, std::move(p), std::move(target));
}

}  // namespace

const FlowMethod& WgfFlowMethod() {
  static const FlowMethod kMethod{
      "wgf",
      "reverse-KL Wasserstein gradient flow with kernel density score estimates, 000 App. E (any target; KDE "
      "bandwidth median-scaled:0.5 by default, k = exp(-D^2 / median D^2) as in 000's experiments)",
      /*needs_samples=*/false,
      /*needs_density=*/false,
      {FlowField::kStepSize, FlowField::kOptimizer, FlowField::kBandwidth, FlowField::kBatchSize, FlowField::kDType, FlowField::kMedianPairs},
      {},
      CreateWgfFlow};
  return kMethod;
}

}  // namespace sampled
