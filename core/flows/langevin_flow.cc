// The "langevin" method: the unadjusted Langevin algorithm for targets with a score,
//   y <- y + eta grad log p(y) + sqrt(2 eta) xi,  xi ~ N(0, I).
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/flows/options.h"

namespace sampled {
namespace {

class LangevinFlow final : public Flow {
 public:
  LangevinFlow(double step_size, std::shared_ptr<const Target> target)
      : step_size_(step_size), target_(std::move(target)) {}

  absl::Status Step(FlowState& state, StepStats* stats) override {
    const Points& y = state.particles;
    Rng rng = state.rng;
    SAMPLED_RETURN_IF_ERROR(target_->Score(y, &scores_));
    xi_.resize(y.rows(), y.cols());
    rng.FillNormal(xi_.data(), xi_.size());
    displacement_ = step_size_ * scores_ + std::sqrt(2.0 * step_size_) * xi_;
    SAMPLED_RETURN_IF_ERROR(
        CommitDisplacement("langevin", "lower the step size", displacement_, next_, nullptr, rng, step_size_, state, stats));
    return absl::OkStatus();
  }

 private:
  double step_size_;
  std::shared_ptr<const Target> target_;
  Points scores_, xi_, displacement_, next_;
};

absl::StatusOr<std::unique_ptr<Flow>> CreateLangevinFlow(const FlowConfig& c,
                                                         std::shared_ptr<const Target> target) {
  OptionReader options(c.options, "langevin");
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  return std::unique_ptr<Flow>(std::make_unique<LangevinFlow>(c.step_size.value_or(0.01), std::move(target)));
}

}  // namespace

const FlowMethod& LangevinFlowMethod() {
  static const FlowMethod kMethod{"langevin",
                                  "unadjusted Langevin algorithm, step size 0.01 by default (density targets)",
                                  /*needs_samples=*/false,
                                  /*needs_density=*/true,
                                  {FlowField::kStepSize},
                                  {},
                                  CreateLangevinFlow};
  return kMethod;
}

}  // namespace sampled
