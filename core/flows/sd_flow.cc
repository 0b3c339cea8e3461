// The "sd" method: kernel score-difference flow (002 Eq. 17-18, Alg. 1).
#include "core/flows/sd_flow.h"

#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/flows/kernel_flow_util.h"
#include "core/flows/optimizer.h"
#include "core/flows/options.h"
#include "core/flows/schedule.h"

namespace sampled {
namespace {

using SdParams = KernelFlowParams;

template <typename Scalar>
class SdFlow final : public Flow {
 public:
  SdFlow(SdParams p, std::shared_ptr<const Target> target)
      : p_(std::move(p)), target_(std::move(target)), targets_(*target_->samples()) {}

  absl::Status Step(FlowState& state, StepStats* stats) override {
    const Points& y = state.particles;
    const int64_t m = y.rows(), n = targets_.rows(), d = y.cols();
    Rng rng = state.rng;  // committed only if the step succeeds

    // Work in coordinates centred on the particles' mean: the weighted means are translation-equivariant,
    // and float32 keeps more digits near the origin.
    center_ = y.colwise().mean();

    const SigmaMedians medians = median_.Measure(p_.sigmas, y, state.values, center_, rng, p_.threads);
    double bandwidth, noise;
    p_.sigmas.At(state.step, medians, m, &bandwidth, &noise);
    if (!(bandwidth > 0 && std::isfinite(bandwidth))) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sd step ", state.step + 1, ": the kernel bandwidth is ", bandwidth,
          " (all particles coincide?); give a fixed bandwidth"));
    }

    // z = y + sigma eps (002 Eq. 15): the noise-injected proxies.
    if (noise > 0) {
      eps_.resize(m, d);
      rng.FillNormal(eps_.data(), eps_.size());
      z_ = ((y.rowwise() - center_) + noise * eps_).template cast<Scalar>();
    } else {
      z_ = (y.rowwise() - center_).template cast<Scalar>();
    }
    GatherCentred(targets_, center_, p_.batch, rng, x_perm_, index_, &x_);
    GatherCentred(y, center_, p_.batch, rng, y_perm_, index_, &y_);

    SdFlowDirection(z_, x_, y_, bandwidth, ws_, p_.threads, &mean_p_, &direction_);
    bool chose_step_size = false;
    SAMPLED_ASSIGN_OR_RETURN(const double step_size, KernelFlowStepSize(p_, "sd", direction_, state, &memory_,
                                                                        &displacement_, &chose_step_size));
    p_.optimizer.Displacement(direction_, step_size, state.optimizer_state, &memory_, &displacement_);
    SAMPLED_RETURN_IF_ERROR(CommitDisplacement("sd", "lower the step size or fix the bandwidth", displacement_, next_,
                                               &memory_, rng, step_size, state, stats));
    if (chose_step_size) state.values[kAutoStepSize] = step_size;
    HoldInitialMedian(p_.sigmas, medians, state.values);
    stats->bandwidth = bandwidth;
    stats->noise = noise;
    (void)n;
    return absl::OkStatus();
  }

 private:
  SdParams p_;
  std::shared_ptr<const Target> target_;
  const Points& targets_;
  // Scratch reused by every step.
  Eigen::RowVectorXd center_;
  Points eps_, mean_p_, direction_, displacement_, memory_, next_;
  PointsT<Scalar> z_, x_, y_;
  std::vector<int64_t> x_perm_, y_perm_, index_;
  KernelWorkspace<Scalar> ws_;
  ParticleMedian<Scalar> median_{p_.median};
};

absl::StatusOr<std::unique_ptr<Flow>> CreateSdFlow(const FlowConfig& c, std::shared_ptr<const Target> target) {
  OptionReader options(c.options, "sd");
  SdParams p;
  SAMPLED_RETURN_IF_ERROR(ReadKernelFlowConfig(c, c.noise, "median", "bandwidth", &p));
  SAMPLED_RETURN_IF_ERROR(ReadFirstStepNorm(c, options, &p));
  SAMPLED_RETURN_IF_ERROR(options.Finish());
  return MakeKernelFlow<SdFlow>(c.dtype, std::move(p), std::move(target));
}

}  // namespace

template <typename Scalar>
void SdFlowDirection(const PointsT<Scalar>& z, const PointsT<Scalar>& targets, const PointsT<Scalar>& particles,
                     double sigma, KernelWorkspace<Scalar>& ws, int threads, Points* scratch, Points* out) {
  GaussianWeightedMeans(z, targets, sigma, ws, threads, scratch);  // E_p[K x] / E_p[K]
  GaussianWeightedMeans(z, particles, sigma, ws, threads, out);    // E_q[K y] / E_q[K]
  *out = 0.5 * (*scratch - *out);                                   // Eq. 18 without eta
}

template void SdFlowDirection<float>(const PointsF&, const PointsF&, const PointsF&, double,
                                     KernelWorkspace<float>&, int, Points*, Points*);
template void SdFlowDirection<double>(const Points&, const Points&, const Points&, double,
                                      KernelWorkspace<double>&, int, Points*, Points*);

const FlowMethod& SdFlowMethod() {
  static const FlowMethod kMethod{
      "sd",
      "kernel score-difference flow, 002 Eq. 17-18 / Alg. 1 (data targets)",
      /*needs_samples=*/true,
      /*needs_density=*/false,
      {FlowField::kStepSize, FlowField::kOptimizer, FlowField::kNoise, FlowField::kBandwidth,
       FlowField::kBatchSize, FlowField::kDType, FlowField::kMedianPairs},
      {FirstStepNormDoc()},
      CreateSdFlow};
  return kMethod;
}

}  // namespace sampled
