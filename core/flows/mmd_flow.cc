// The "mmd" method: MMD flow with the negative distance kernel (000 App. E; Hagemann et al. 2024). With
// u(v) = v / |v| (0 at v = 0), over the N particles and M targets or a fresh random batch of each (n, m the
// counts summed over):
//   velocity mmd2-gradient: minus the gradient of MMD^2 (k(a, b) = -|a - b|) with respect to particle y_i,
//   moves of order 1/n (../shared/bench/peer_flows.py's form):
//     y_i += eta 2/n (1/n sum_k u(y_i - y_k) - 1/m sum_l u(y_i - x_l))
//   velocity 000 (default): 000 App. E's factor N on that gradient, the particle count taken out, so that a
//   step size means the same at every N (000 Sec. 5.1: step size 1):
//     y_i += eta 2 (1/n sum_k u(y_i - y_k) - 1/m sum_l u(y_i - x_l))
// Step size 1 of the 000 form is 100 of the gradient form at N = 100, the authors' code's value. (Read with
// N outside the bracket of App. E's formula, N grad(1/N sum |y - y_k| - 1/M sum |y - x_l|), step size 1
// would be the gradient form's N^2 / 2 = 5000: it leaves 000 Sec. 5.1's runs at MMD 0.71 where 000 reports
// 0.05, docs/experiments.md.)
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/flows/kernel_flow_util.h"
#include "core/flows/optimizer.h"
#include "core/flows/options.h"
#include "core/kernels/kernel_sums.h"

namespace sampled {
namespace {

struct MmdParams {
  double step_size = 1.0;
  bool gradient_form = false;  // velocity mmd2-gradient; else 000's
  Optimizer optimizer;
  int64_t batch = 0;
  int threads = 0;
};

template <typename Scalar>
class MmdFlow final : public Flow {
 public:
  MmdFlow(MmdParams p, std::shared_ptr<const Target> target)
      : p_(std::move(p)), target_(std::move(target)), targets_(*target_->samples()) {
    kernel_.kernel = PairKernel::kInverseDistance;
  }

  absl::Status Step(FlowState& state, StepStats* stats) override {
    const Points& y = state.particles;
    const int64_t d = y.cols();
    Rng rng = state.rng;
    center_ = y.colwise().mean();
    GatherCentred(y, center_, 0, rng, perm_y_, index_, &y_);
    GatherCentred(targets_, center_, p_.batch, rng, perm_x_, index_, &xb_);
    GatherCentred(y, center_, p_.batch, rng, perm_y_, index_, &yb_);
    const double n = static_cast<double>(yb_.rows()), m = static_cast<double>(xb_.rows());
    const double scale = p_.gradient_form ? 2.0 / n : 2.0;
    // [sum_k r_ik y_k | sum_k r_ik] with r = 1/|y_i - y_k|: sum_k u(y_i - y_k) = y_i sum r - sum r y_k.
    KernelSums<Scalar>(y_, yb_, nullptr, kernel_, ws_, p_.threads, &self_);
    KernelSums<Scalar>(y_, xb_, nullptr, kernel_, ws_, p_.threads, &cross_);
    const auto& yc = y_.template cast<double>();  // a reference, not a copy, when Scalar is double
    direction_ = (scale / n) * ((yc.array().colwise() * self_.col(d).array()).matrix() - self_.leftCols(d)) -
                 (scale / m) * ((yc.array().colwise() * cross_.col(d).array()).matrix() - cross_.leftCols(d));
    p_.optimizer.Displacement(direction_, p_.step_size, state.optimizer_state, &memory_, &displacement_);
    SAMPLED_RETURN_IF_ERROR(
        CommitDisplacement("mmd", "lower the step size", displacement_, next_, &memory_, rng, p_.step_size, state, stats));
    return absl::OkStatus();
  }

 private:
  MmdParams p_;
  std::shared_ptr<const Target> target_;
  const Points& targets_;
  KernelSumsOptions kernel_;
  Eigen::RowVectorXd center_;
  Points self_, cross_, direction_, displacement_, memory_, next_;
  PointsT<Scalar> y_, yb_, xb_;
  std::vector<int64_t> perm_x_, perm_y_, index_;
  KernelWorkspace<Scalar> ws_;
};

absl::StatusOr<std::unique_ptr<Flow>> CreateMmdFlow(const FlowConfig& c, std::shared_ptr<const Target> target) {
  OptionReader options(c.options, "mmd");
  MmdParams p;
  SAMPLED_ASSIGN_OR_RETURN(const std::string velocity, options.Choice("velocity", "000", {"000", "mmd2-gradient"}));
  p.gradient_form = velocity == "mmd2-gradient";
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  p.step_size = c.step_size.value_or(1.0);
  SAMPLED_ASSIGN_OR_RETURN(p.optimizer, Optimizer::Parse(c.optimizer.value_or("sgd")));
  p.batch = c.batch_size.value_or(0);
  p.threads = c.threads;
  return MakeKernelFlow<MmdFlow>(c.dtype, std::move(p), std::move(target));
}

}  // namespace

const FlowMethod& MmdFlowMethod() {
  static const FlowMethod kMethod{
      "mmd",
      "MMD flow with the negative distance kernel, 000 App. E (data targets; N times the particle gradient of "
      "MMD^2: step size 1 as in 000 Sec. 5.1, whatever the particle count)",
      /*needs_samples=*/true,
      /*needs_density=*/false,
      {FlowField::kStepSize, FlowField::kOptimizer, FlowField::kBatchSize, FlowField::kDType},
      {{"velocity", "000 (default: N times the particle gradient of MMD^2, 000 App. E) or mmd2-gradient (the "
                    "gradient itself, moves of order 1/N: 000's step size 1 is its N)"}},
      CreateMmdFlow};
  return kMethod;
}

}  // namespace sampled
