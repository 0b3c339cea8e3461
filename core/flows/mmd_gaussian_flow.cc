// The "mmd-gaussian" method: MMD gradient flow with a Gaussian kernel and noise injection (Arbel et al.
// 2019; 002 App. B.3, Eq. 51): with z = y + beta eps,
//   dz = sum_i w_i^p x_i - sum_j w_j^q y_j + (sum_j w_j^q - sum_i w_i^p) z,
//   w_i^p = K(z, x_i) / (N sigma^2),  w_j^q = K(z, y_j) / (M sigma^2),   y += eta dz.
// Unlike SD flow the weights are not normalised, which is what makes MMD flow stall far from the data
// (002 Remark 1). The noise level beta is a separate setting (002 Remark 2).
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

using MmdGaussianParams = KernelFlowParams;

template <typename Scalar>
class MmdGaussianFlow final : public Flow {
 public:
  MmdGaussianFlow(MmdGaussianParams p, std::shared_ptr<const Target> target)
      : p_(std::move(p)), target_(std::move(target)), targets_(*target_->samples()) {}

  absl::Status Step(FlowState& state, StepStats* stats) override {
    const Points& y = state.particles;
    const int64_t m = y.rows(), d = y.cols();
    Rng rng = state.rng;
    center_ = y.colwise().mean();
    const SigmaMedians medians = median_.Measure(p_.sigmas, y, state.values, center_, rng, p_.threads);
    double bandwidth, noise;
    p_.sigmas.At(state.step, medians, m, &bandwidth, &noise);
    if (!(bandwidth > 0 && std::isfinite(bandwidth))) {
      return absl::FailedPreconditionError(absl::StrCat("mmd-gaussian step ", state.step + 1,
                                                        ": the kernel bandwidth is ", bandwidth, "; give a bandwidth"));
    }
    if (noise > 0) {
      eps_.resize(m, d);
      rng.FillNormal(eps_.data(), eps_.size());
      z_ = ((y.rowwise() - center_) + noise * eps_).template cast<Scalar>();
    } else {
      z_ = (y.rowwise() - center_).template cast<Scalar>();
    }
    GatherCentred(targets_, center_, p_.batch, rng, perm_x_, index_, &xb_);
    GatherCentred(y, center_, p_.batch, rng, perm_y_, index_, &yb_);
    KernelSumsOptions kernel;
    kernel.sigma = bandwidth;
    KernelSums<Scalar>(z_, xb_, nullptr, kernel, ws_, p_.threads, &sp_);  // [sum K x | sum K]
    KernelSums<Scalar>(z_, yb_, nullptr, kernel, ws_, p_.threads, &sq_);
    const double scale_p = 1.0 / (xb_.rows() * bandwidth * bandwidth);
    const double scale_q = 1.0 / (yb_.rows() * bandwidth * bandwidth);
    const auto& zc = z_.template cast<double>();  // a reference, not a copy, when Scalar is double
    // Eq. 51: sum w^p x - sum w^q y + (sum w^q - sum w^p) z.
    weight_diff_ = scale_q * sq_.col(d) - scale_p * sp_.col(d);
    direction_ = scale_p * sp_.leftCols(d) - scale_q * sq_.leftCols(d) +
                 (zc.array().colwise() * weight_diff_.array()).matrix();
    bool chose_step_size = false;
    SAMPLED_ASSIGN_OR_RETURN(const double step_size, KernelFlowStepSize(p_, "mmd-gaussian", direction_, state, &memory_,
                                                                        &displacement_, &chose_step_size));
    p_.optimizer.Displacement(direction_, step_size, state.optimizer_state, &memory_, &displacement_);
    SAMPLED_RETURN_IF_ERROR(
        CommitDisplacement("mmd-gaussian", "lower the step size", displacement_, next_, &memory_, rng, step_size, state,
                           stats));
    if (chose_step_size) state.values[kAutoStepSize] = step_size;
    HoldInitialMedian(p_.sigmas, medians, state.values);
    stats->bandwidth = bandwidth;
    stats->noise = noise;
    return absl::OkStatus();
  }

 private:
  MmdGaussianParams p_;
  std::shared_ptr<const Target> target_;
  const Points& targets_;
  Eigen::RowVectorXd center_;
  Points eps_, sp_, sq_, direction_, displacement_, memory_, next_;
  Eigen::VectorXd weight_diff_;
  PointsT<Scalar> z_, xb_, yb_;
  std::vector<int64_t> perm_x_, perm_y_, index_;
  KernelWorkspace<Scalar> ws_;
  ParticleMedian<Scalar> median_{p_.median};
};

absl::StatusOr<std::unique_ptr<Flow>> CreateMmdGaussianFlow(const FlowConfig& c,
                                                            std::shared_ptr<const Target> target) {
  OptionReader options(c.options, "mmd-gaussian");
  MmdGaussianParams p;
  SAMPLED_RETURN_IF_ERROR(ReadKernelFlowConfig(c, c.noise, "median", "none", &p));
  SAMPLED_RETURN_IF_ERROR(ReadFirstStepNorm(c, options, &p));
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  // Step size 1 by default: Eq. 51's weights K / (N sigma^2) make the velocity small wherever the kernel is
  // wide (0.1, 002's value for its 2-D grid, ends a 10-D run at 6x the equal-distribution null after 500
  // steps; 1 ends it at 1.6x: tests/experiments/defaults_test.cc).
  p.step_size = c.step_size.value_or(1.0);
  return MakeKernelFlow<MmdGaussianFlow>(c.dtype, std::move(p), std::move(target));
}

}  // namespace

const FlowMethod& MmdGaussianFlowMethod() {
  static const FlowMethod kMethod{
      "mmd-gaussian",
      "MMD gradient flow, Gaussian kernel, noise injection as a separate level (002 Eq. 51, data targets)",
      /*needs_samples=*/true,
      /*needs_density=*/false,
      {FlowField::kStepSize, FlowField::kOptimizer, FlowField::kNoise, FlowField::kBandwidth, FlowField::kBatchSize,
       FlowField::kDType, FlowField::kMedianPairs},
      {FirstStepNormDoc()},
      CreateMmdGaussianFlow};
  return kMethod;
}

}  // namespace sampled
