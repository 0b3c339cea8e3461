// The "king" method: kernel implicit natural-gradient descent (000 Thm 4.3, Eq. 9, Alg. 2) for data
// targets. Each step projects onto the exponential family of the chosen sufficient statistics
// (gaussian, rbf on a fresh basis of particles and targets, or rbf+pairs), with grad L = E_p[T] - E_q[T]
// and F = Cov_q[T], and moves the particles along the closed-form RKHS drift of an RBF kernel.
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/flows/kernel_flow_util.h"
#include "core/flows/king_common.h"
#include "core/flows/natural_gradient.h"
#include "core/flows/optimizer.h"
#include "core/flows/options.h"
#include "core/flows/schedule.h"

namespace sampled {
namespace {

using KingParams = KingStepParams;

class KingFlow final : public Flow {
 public:
  KingFlow(KingParams p, KingStatsConfig stats, std::shared_ptr<const Target> target)
      : p_(std::move(p)), builder_(std::move(stats), p_.median), target_(std::move(target)) {}

  absl::Status CheckState(const FlowState& state) const override {
    return builder_.CheckSizes(state.particles.rows(), target_->samples()->rows());
  }

  absl::Status Step(FlowState& state, StepStats* stats) override {
    const Points& y = state.particles;
    const Points& x = *target_->samples();
    Rng rng = state.rng;
    SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<SufficientStatistics> t,
                             builder_.Build(y, &x, nullptr, rng, p_.threads));
    SAMPLED_RETURN_IF_ERROR(t->Evaluate(x, &tx_, nullptr));
    SAMPLED_RETURN_IF_ERROR(t->Evaluate(y, &ty_, &jy_));
    grad_ = (tx_.colwise().mean() - ty_.colwise().mean()).transpose();  // E_p[T] - E_q[T]
    const SigmaMedians medians = median_.Measure(p_.bandwidth, y, state.values, y.colwise().mean(), rng, p_.threads);
    const double sigma = p_.bandwidth.Sigma(state.step, 0, medians, y.rows());
    if (!(sigma > 0 && std::isfinite(sigma))) {
      return absl::FailedPreconditionError(absl::StrCat("king step ", state.step + 1, ": the kernel bandwidth is ",
                                                        sigma, "; give a bandwidth"));
    }
    NaturalGradientProblem problem =
        MakeNaturalGradientProblem(y, ty_, jy_, grad_, p_.lambda, p_.ridge, p_.threads, p_.precision);
    problem.rbf = t->rbf();
    SAMPLED_RETURN_IF_ERROR(KingVelocity(problem, sigma, ng_ws_, &velocity_));
    p_.optimizer.Displacement(velocity_, p_.step_size, state.optimizer_state, &memory_, &displacement_);
    SAMPLED_RETURN_IF_ERROR(
        CommitDisplacement("king", "lower the step size", displacement_, next_, &memory_, rng, p_.step_size, state, stats));
    HoldInitialMedian(p_.bandwidth, medians, state.values);
    stats->bandwidth = sigma;
    return absl::OkStatus();
  }

 private:
  KingParams p_;
  KingStatsBuilder builder_;
  std::shared_ptr<const Target> target_;
  Points tx_, ty_, jy_, velocity_, displacement_, memory_, next_;
  NaturalGradientWorkspace ng_ws_;
  Eigen::VectorXd grad_;
  ParticleMedian<double> median_{p_.median};
};

absl::StatusOr<std::unique_ptr<Flow>> CreateKingFlow(const FlowConfig& c, std::shared_ptr<const Target> target) {
  OptionReader options(c.options, "king");
  SAMPLED_ASSIGN_OR_RETURN(KingStatsConfig stats, ReadKingStats(options, target->dim(), /*stein=*/false, 200));
  KingParams p;
  SAMPLED_RETURN_IF_ERROR(ReadKingRidge(options, &p));
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  SAMPLED_RETURN_IF_ERROR(ReadKingConfig(c, "king", /*bandwidth=*/true, &p));
  return std::unique_ptr<Flow>(std::make_unique<KingFlow>(std::move(p), std::move(stats), std::move(target)));
}

}  // namespace

const FlowMethod& KingFlowMethod() {
  static const FlowMethod kMethod{
      "king",
      "kernel natural-gradient flow KiNG, 000 Thm 4.3 / Eq. 9 (data targets; step size 1 by default)",
      /*needs_samples=*/true,
      /*needs_density=*/false,
      {FlowField::kStepSize, FlowField::kOptimizer, FlowField::kBandwidth, FlowField::kDType, FlowField::kMedianPairs},
      {{"stats", "sufficient statistics: gaussian ([x, x x^T]), rbf (default), rbf+pairs"},
       {"basis", "RBF basis points drawn each step from particles and targets (default: up to 200; a larger "
                 "explicit value than there are points is refused)"},
       {"pairs", "for rbf+pairs: coordinate pairs I-J whose products x_I x_J join T, e.g. 0-1,2-5"},
       {"feature_bandwidth", "bandwidth rule of the RBF features over particles and targets (default median-scaled:0.5)"},
       {"lambda", "weight of the Fisher matrix in Gamma (default 1e-3)"},
       {"ridge", "added to Gamma's diagonal (default 1e-3)"}},
      CreateKingFlow};
  return kMethod;
}

}  // namespace sampled
