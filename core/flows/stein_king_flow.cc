// The "stein-king" method: KiNG on the Stein exponential family of a density target (000 App. D). With
// T = S_p f for RBF test functions f_m, E_p[T] = 0, so grad L = -E_q[T] needs only the score: KiNG runs on
// an unnormalised density without samples. The statistics' Jacobian uses the score's Jacobian.
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

using SteinKingParams = KingStepParams;

class SteinKingFlow final : public Flow {
 public:
  SteinKingFlow(SteinKingParams p, KingStatsConfig stats, std::shared_ptr<const Target> target)
      : p_(std::move(p)), builder_(std::move(stats), p_.median), target_(std::move(target)) {}

  absl::Status CheckState(const FlowState& state) const override {
    return builder_.CheckSizes(state.particles.rows(), 0);
  }

  absl::Status Step(FlowState& state, StepStats* stats) override {
    const Points& y = state.particles;
    Rng rng = state.rng;
    SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<SufficientStatistics> t,
                             builder_.Build(y, nullptr, target_, rng, p_.threads));
    SAMPLED_RETURN_IF_ERROR(t->Evaluate(y, &ty_, &jy_));
    if (!ty_.allFinite() || !jy_.allFinite()) {
      return absl::FailedPreconditionError(
          absl::StrCat("stein-king step ", state.step + 1, ": the score is not finite at some particle"));
    }
    grad_ = -ty_.colwise().mean().transpose();  // E_p[T] - E_q[T] with E_p[T] = 0
    const SigmaMedians medians = median_.Measure(p_.bandwidth, y, state.values, y.colwise().mean(), rng, p_.threads);
    const double sigma = p_.bandwidth.Sigma(state.step, 0, medians, y.rows());
    if (!(sigma > 0 && std::isfinite(sigma))) {
      return absl::FailedPreconditionError(absl::StrCat("stein-king step ", state.step + 1,
                                                        ": the kernel bandwidth is ", sigma, "; give a bandwidth"));
    }
    NaturalGradientProblem problem =
        MakeNaturalGradientProblem(y, ty_, jy_, grad_, p_.lambda, p_.ridge, p_.threads, p_.precision);
    SAMPLED_RETURN_IF_ERROR(KingVelocity(problem, sigma, ng_ws_, &velocity_));
    p_.optimizer.Displacement(velocity_, p_.step_size, state.optimizer_state, &memory_, &displacement_);
    SAMPLED_RETURN_IF_ERROR(
        CommitDisplacement("stein-king", "lower the step size", displacement_, next_, &memory_, rng, p_.step_size, state, stats));
    HoldInitialMedian(p_.bandwidth, medians, state.values);
    stats->bandwidth = sigma;
    return absl::OkStatus();
  }

 private:
  SteinKingParams p_;
  KingStatsBuilder builder_;
  std::shared_ptr<const Target> target_;
  Points ty_, jy_, velocity_, displacement_, memory_, next_;
  NaturalGradientWorkspace ng_ws_;
  Eigen::VectorXd grad_;
  ParticleMedian<double> median_{p_.median};
};

absl::StatusOr<std::unique_ptr<Flow>> CreateSteinKingFlow(const FlowConfig& c, std::shared_ptr<const Target> target) {
  OptionReader options(c.options, "stein-king");
  SAMPLED_ASSIGN_OR_RETURN(KingStatsConfig stats, ReadKingStats(options, target->dim(), /*stein=*/true, 50));
  SteinKingParams p;
  SAMPLED_RETURN_IF_ERROR(ReadKingRidge(options, &p));
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  SAMPLED_RETURN_IF_ERROR(ReadKingConfig(c, "stein-king", /*bandwidth=*/true, &p));
  return std::unique_ptr<Flow>(std::make_unique<SteinKingFlow>(std::move(p), std::move(stats), std::move(target)));
}

}  // namespace

const FlowMethod& SteinKingFlowMethod() {
  static const FlowMethod kMethod{
      "stein-king",
      "KiNG on the Stein exponential family T = S_p f, 000 App. D (density targets)",
      /*needs_samples=*/false,
      /*needs_density=*/true,
      {FlowField::kStepSize, FlowField::kOptimizer, FlowField::kBandwidth, FlowField::kDType, FlowField::kMedianPairs},
      {{"basis", "RBF test functions centred on particles drawn each step (default: up to 50; T has d * basis "
                 "entries)"},
       {"feature_bandwidth", "bandwidth rule of the test functions over the particles (default median-scaled:F with F = "
                             "min(0.5, 0.025 d): s^2 = F x the median squared distance; 0.05 in 2-D)"},
       {"lambda", "weight of the Fisher matrix in Gamma (default 1e-3)"},
       {"ridge", "added to Gamma's diagonal (default 1e-3)"}},
      CreateSteinKingFlow};
  return kMethod;
}

}  // namespace sampled
