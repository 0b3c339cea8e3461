// The "mala" method: the Metropolis-adjusted Langevin algorithm, one independent chain per particle:
//   proposal y' = y + eta grad log p(y) + sqrt(2 eta) xi, accepted with probability
//   min(1, p(y') q(y | y') / (p(y) q(y' | y))),  q(a | b) = N(a; b + eta grad log p(b), 2 eta I).
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/flows/options.h"

namespace sampled {
namespace {

class MalaFlow final : public Flow {
 public:
  MalaFlow(double step_size, std::shared_ptr<const Target> target)
      : eta_(step_size), target_(std::move(target)) {}

  absl::Status Step(FlowState& state, StepStats* stats) override {
    const Points& y = state.particles;
    const int64_t m = y.rows(), d = y.cols();
    Rng rng = state.rng;
    SAMPLED_RETURN_IF_ERROR(target_->LogDensity(y, &logp_));
    SAMPLED_RETURN_IF_ERROR(target_->Score(y, &score_));
    xi_.resize(m, d);
    rng.FillNormal(xi_.data(), xi_.size());
    proposal_ = y + eta_ * score_ + std::sqrt(2.0 * eta_) * xi_;
    SAMPLED_RETURN_IF_ERROR(target_->LogDensity(proposal_, &logp_new_));
    SAMPLED_RETURN_IF_ERROR(target_->Score(proposal_, &score_new_));
    next_ = y;
    int64_t accepted = 0;
    const double inv_4eta = 1.0 / (4.0 * eta_);
    for (int64_t i = 0; i < m; ++i) {
      // log q(y | y') - log q(y' | y), the Gaussian normalisers cancel.
      const double forward = (proposal_.row(i) - y.row(i) - eta_ * score_.row(i)).squaredNorm();
      const double backward = (y.row(i) - proposal_.row(i) - eta_ * score_new_.row(i)).squaredNorm();
      const double log_alpha = logp_new_(i) - logp_(i) + (forward - backward) * inv_4eta;
      const double u = rng.Uniform();
      if (std::isfinite(log_alpha) && std::log(u) < log_alpha) {
        next_.row(i) = proposal_.row(i);
        ++accepted;
      }
    }
    displacement_ = next_ - y;
    CommitParticles(next_, displacement_, nullptr, rng, eta_, state, stats);
    stats->acceptance_rate = m > 0 ? static_cast<double>(accepted) / m : 0.0;
    return absl::OkStatus();
  }

 private:
  double eta_;
  std::shared_ptr<const Target> target_;
  Eigen::VectorXd logp_, logp_new_;
  Points score_, score_new_, xi_, proposal_, next_, displacement_;
};

absl::StatusOr<std::unique_ptr<Flow>> CreateMalaFlow(const FlowConfig& c, std::shared_ptr<const Target> target) {
  OptionReader options(c.options, "mala");
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  return std::unique_ptr<Flow>(std::make_unique<MalaFlow>(c.step_size.value_or(0.01), std::move(target)));
}

}  // namespace

const FlowMethod& MalaFlowMethod() {
  static const FlowMethod kMethod{"mala",
                                  "Metropolis-adjusted Langevin, one chain per particle, step size 0.01 by default "
                                  "(density targets; acceptance rate in the step statistics)",
                                  /*needs_samples=*/false,
                                  /*needs_density=*/true,
                                  {FlowField::kStepSize},
                                  {},
                                  CreateMalaFlow};
  return kMethod;
}

}  // namespace sampled
