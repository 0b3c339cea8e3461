// The "ntking" method: KiNG through the empirical neural tangent kernel of a small MLP (000 Eq. 11), in the
// diagonal scalar-kernel form of the Remark after it: K(x, y) = k_NTK(x, y) I. The network keeps its
// initial weights (drawn from the flow's seed) and is redrawn every `redraw` steps if asked.
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/flows/king_common.h"
#include "core/flows/natural_gradient.h"
#include "core/flows/ntk_mlp.h"
#include "core/flows/optimizer.h"
#include "core/flows/options.h"

namespace sampled {
namespace {

struct NtKingParams : KingStepParams {
  std::vector<int64_t> hidden;
  Activation activation = Activation::kTanh;
  int64_t redraw = 0;  // 0: never
  uint64_t seed = 0;
};

class NtKingFlow final : public Flow {
 public:
  NtKingFlow(NtKingParams p, KingStatsConfig stats, std::shared_ptr<const Target> target)
      : p_(std::move(p)), builder_(std::move(stats), p_.median), target_(std::move(target)) {}

  absl::Status CheckState(const FlowState& state) const override {
    return builder_.CheckSizes(state.particles.rows(), target_->samples()->rows());
  }

  absl::Status Step(FlowState& state, StepStats* stats) override {
    const Points& y = state.particles;
    const Points& x = *target_->samples();
    Rng rng = state.rng;
    // The network for this step: generation g = step / redraw, weights seeded by (seed, g), so a resumed
    // flow gets the same network without storing it.
    const int64_t generation = p_.redraw > 0 ? state.step / p_.redraw : 0;
    if (mlp_ == nullptr || generation != generation_) {
      mlp_ = std::make_unique<NtkMlp>(y.cols(), p_.hidden, p_.activation,
                                      p_.seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(generation) + 1);
      generation_ = generation;
    }
    SAMPLED_ASSIGN_OR_RETURN(std::unique_ptr<SufficientStatistics> t, builder_.Build(y, &x, nullptr, rng, p_.threads));
    SAMPLED_RETURN_IF_ERROR(t->Evaluate(x, &tx_, nullptr));
    SAMPLED_RETURN_IF_ERROR(t->Evaluate(y, &ty_, &jy_));
    grad_ = (tx_.colwise().mean() - ty_.colwise().mean()).transpose();
    NaturalGradientProblem problem =
        MakeNaturalGradientProblem(y, ty_, jy_, grad_, p_.lambda, p_.ridge, p_.threads, p_.precision);
    if (p_.precision == DType::kFloat32) {
      mlp_->KernelInto(y, p_.threads, &kernel_f32_);
      SAMPLED_RETURN_IF_ERROR(ScalarKernelVelocity(problem, kernel_f32_, ng_ws_, &velocity_));
    } else {
      mlp_->KernelInto(y, p_.threads, &kernel_f64_);
      SAMPLED_RETURN_IF_ERROR(ScalarKernelVelocity(problem, kernel_f64_, ng_ws_, &velocity_));
    }
    p_.optimizer.Displacement(velocity_, p_.step_size, state.optimizer_state, &memory_, &displacement_);
    SAMPLED_RETURN_IF_ERROR(
        CommitDisplacement("ntking", "lower the step size", displacement_, next_, &memory_, rng, p_.step_size, state, stats));
    stats->bandwidth = builder_.last_feature_bandwidth();
    return absl::OkStatus();
  }

 private:
  NtKingParams p_;
  KingStatsBuilder builder_;
  std::shared_ptr<const Target> target_;
  std::unique_ptr<NtkMlp> mlp_;
  int64_t generation_ = -1;
  Points tx_, ty_, jy_, velocity_, displacement_, memory_, next_;
  NaturalGradientWorkspace ng_ws_;
  PointsF kernel_f32_;
  Points kernel_f64_;
  Eigen::VectorXd grad_;
};

absl::StatusOr<std::unique_ptr<Flow>> CreateNtKingFlow(const FlowConfig& c, std::shared_ptr<const Target> target) {
  OptionReader options(c.options, "ntking");
  SAMPLED_ASSIGN_OR_RETURN(KingStatsConfig stats, ReadKingStats(options, target->dim(), /*stein=*/false, 200));
  NtKingParams p;
  SAMPLED_RETURN_IF_ERROR(ReadKingRidge(options, &p));
  SAMPLED_ASSIGN_OR_RETURN(std::string hidden, options.String("hidden", "64,64"));
  SAMPLED_ASSIGN_OR_RETURN(p.hidden, ParseHidden(hidden));
  SAMPLED_ASSIGN_OR_RETURN(std::string activation, options.Choice("activation", "tanh", {"tanh", "relu", "silu"}));
  SAMPLED_ASSIGN_OR_RETURN(p.activation, ParseActivation(activation));
  SAMPLED_ASSIGN_OR_RETURN(p.redraw, options.Int("redraw", 0, 0, INT64_MAX));
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  SAMPLED_RETURN_IF_ERROR(ReadKingConfig(c, "ntking", /*bandwidth=*/false, &p));
  p.seed = c.seed;
  return std::unique_ptr<Flow>(std::make_unique<NtKingFlow>(std::move(p), std::move(stats), std::move(target)));
}

}  // namespace

const FlowMethod& NtKingFlowMethod() {
  static const FlowMethod kMethod{
      "ntking",
      "KiNG through the empirical neural tangent kernel of a small MLP, diagonal scalar form, 000 Eq. 11 (data "
      "targets; step size 1 by default)",
      /*needs_samples=*/true,
      /*needs_density=*/false,
      {FlowField::kStepSize, FlowField::kOptimizer, FlowField::kDType, FlowField::kMedianPairs},
      {{"stats", "sufficient statistics: gaussian, rbf (default), rbf+pairs"},
       {"basis", "RBF basis points drawn each step from particles and targets (default: up to 200)"},
       {"pairs", "for rbf+pairs: coordinate pairs I-J, e.g. 0-1,2-5"},
       {"feature_bandwidth", "bandwidth rule of the RBF features (default median-scaled:0.5)"},
       {"lambda", "weight of the Fisher matrix in Gamma (default 1e-3)"},
       {"ridge", "added to Gamma's diagonal (default 1e-3)"},
       {"hidden", "hidden layer widths of the MLP (default 64,64)"},
       {"activation", "tanh (default), relu or silu"},
       {"redraw", "redraw the network's weights every K steps (default 0: never)"}},
      CreateNtKingFlow};
  return kMethod;
}

}  // namespace sampled
