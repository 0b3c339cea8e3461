// The "hmc" method: Hamiltonian Monte Carlo, one chain per particle. Each step draws momenta
// p ~ N(0, mass I), takes `leapfrog` leapfrog steps of size eta on H(y, p) = -log pi(y) + |p|^2 / (2 mass),
// and accepts the end point with probability min(1, exp(H_start - H_end)).
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/flows/options.h"

namespace sampled {
namespace {

class HmcFlow final : public Flow {
 public:
  HmcFlow(double step_size, int64_t leapfrog, double mass, std::shared_ptr<const Target> target)
      : eta_(step_size), leapfrog_(leapfrog), mass_(mass), target_(std::move(target)) {}

  absl::Status Step(FlowState& state, StepStats* stats) override {
    const Points& y = state.particles;
    const int64_t m = y.rows(), d = y.cols();
    Rng rng = state.rng;
    momentum_.resize(m, d);
    rng.FillNormal(momentum_.data(), momentum_.size());
    momentum_ *= std::sqrt(mass_);
    SAMPLED_RETURN_IF_ERROR(target_->LogDensity(y, &logp_));
    h_start_ = -logp_.array() + momentum_.rowwise().squaredNorm().array() / (2.0 * mass_);

    q_ = y;
    SAMPLED_RETURN_IF_ERROR(target_->Score(q_, &score_));
    momentum_ += 0.5 * eta_ * score_;  // half step: -grad U = grad log pi
    for (int64_t l = 0; l < leapfrog_; ++l) {
      q_ += (eta_ / mass_) * momentum_;
      SAMPLED_RETURN_IF_ERROR(target_->Score(q_, &score_));
      momentum_ += (l + 1 < leapfrog_ ? 1.0 : 0.5) * eta_ * score_;
    }
    SAMPLED_RETURN_IF_ERROR(target_->LogDensity(q_, &logp_));
    next_ = y;
    int64_t accepted = 0;
    for (int64_t i = 0; i < m; ++i) {
      const double h_end = -logp_(i) + momentum_.row(i).squaredNorm() / (2.0 * mass_);
      const double log_alpha = h_start_(i) - h_end;
      const double u = rng.Uniform();
      if (std::isfinite(log_alpha) && q_.row(i).allFinite() && std::log(u) < log_alpha) {
        next_.row(i) = q_.row(i);
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
  int64_t leapfrog_;
  double mass_;
  std::shared_ptr<const Target> target_;
  Eigen::VectorXd logp_, h_start_;
  Points momentum_, q_, score_, next_, displacement_;
};

absl::StatusOr<std::unique_ptr<Flow>> CreateHmcFlow(const FlowConfig& c, std::shared_ptr<const Target> target) {
  OptionReader options(c.options, "hmc");
  SAMPLED_ASSIGN_OR_RETURN(int64_t leapfrog, options.Int("leapfrog", 10, 1, 100000));
  SAMPLED_ASSIGN_OR_RETURN(double mass, options.Double("mass", 1.0, 1e-12, 1e12));
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  return std::unique_ptr<Flow>(
      std::make_unique<HmcFlow>(c.step_size.value_or(0.1), leapfrog, mass, std::move(target)));
}

}  // namespace

const FlowMethod& HmcFlowMethod() {
  static const FlowMethod kMethod{
      "hmc",
      "Hamiltonian Monte Carlo, one chain per particle, step size 0.1 and 10 leapfrog steps by default (003 Sec. 4.1; "
      "density targets; acceptance rate in the step statistics)",
      /*needs_samples=*/false,
      /*needs_density=*/true,
      {FlowField::kStepSize},
      {{"leapfrog", "leapfrog steps per HMC step (>= 1; default 10)"},
       {"mass", "mass scale: momenta ~ N(0, mass I) (> 0; default 1)"}},
      CreateHmcFlow};
  return kMethod;
}

}  // namespace sampled
