// The "mmd" method: MMD flow with the negative distance kernel (000 App. E; Hagemann et al. 2024), a step
// along minus the gradient of MMD^2 with k(a, b) = -|a - b|:
//   y_i += eta (2/n^2 sum_k u(y_i - y_k) - 2/(n m) sum_l u(y_i - x_l)),  u(v) = v / |v| (0 at v = 0),
// over all n particles and m targets, or a fresh random batch of B of each.
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
    // [sum_k r_ik y_k | sum_k r_ik] with r = 1/|y_i - y_k|: sum_k u(y_i - y_k) = y_i sum r - sum r y_k.
    KernelSums<Scalar>(y_, yb_, nullptr, kernel_, ws_, p_.threads, &self_);
    KernelSums<Scalar>(y_, xb_, nullptr, kernel_, ws_, p_.threads, &cross_);
    const auto& yc = y_.template cast<double>();  // a reference, not a copy, when Scalar is double
    direction_ = (2.0 / (n * n)) * ((yc.array().colwise() * self_.col(d).array()).matrix() - self_.leftCols(d)) -
                 (2.0 / (n * m)) * ((yc.array().colwise() * cross_.col(d).array()).matrix() - cross_.leftCols(d));
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
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  MmdParams p;
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
      "MMD flow with the negative distance kernel, 000 App. E (data targets); the direction is the gradient of "
      "MMD^2, so useful step sizes grow with the particle count (000 Sec. 5.1 uses 100 at n = 100)",
      /*needs_samples=*/true,
      /*needs_density=*/false,
      {FlowField::kStepSize, FlowField::kOptimizer, FlowField::kBatchSize, FlowField::kDType},
      {},
      CreateMmdFlow};
  return kMethod;
}

}  // namespace sampled
