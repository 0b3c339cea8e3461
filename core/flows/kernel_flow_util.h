// Pieces the kernel flows share: centring and casting point sets into their compute precision, random
// batches, and the particle median for the bandwidth rules.
#ifndef SAMPLED_CORE_FLOWS_KERNEL_FLOW_UTIL_H_
#define SAMPLED_CORE_FLOWS_KERNEL_FLOW_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/common/points.h"
#include "core/common/rng.h"
#include "core/flows/flow.h"
#include "core/flows/optimizer.h"
#include "core/flows/options.h"
#include "core/flows/schedule.h"
#include "core/kernels/pairwise_median.h"

namespace sampled {

// The precision of the kernel sums when a request gives none: float32 values with float64 accumulators
// (packet sums are flushed to float64 every 512 points; SVGD's cancelling term is formed on centred
// coordinates). Measured against float64 in docs/performance.md ("Precision of the kernel sums").
constexpr DType kDefaultKernelDType = DType::kFloat32;

// Builds FlowT<float> or FlowT<double> for the requested (or default) precision of the kernel sums.
template <template <typename> class FlowT, typename... Args>
std::unique_ptr<Flow> MakeKernelFlow(const std::optional<DType>& dtype, Args&&... args) {
  if (dtype.value_or(kDefaultKernelDType) == DType::kFloat32) {
    return std::make_unique<FlowT<float>>(std::forward<Args>(args)...);
  }
  return std::make_unique<FlowT<double>>(std::forward<Args>(args)...);
}

// Copies the rows of `src` (all of them, or a random batch of `batch` rows when 0 < batch < rows) minus
// `center`, cast to Scalar, into `dst`. `perm` and `index` are scratch kept by the caller.
template <typename Scalar>
void GatherCentred(const Points& src, const Eigen::RowVectorXd& center, int64_t batch, Rng& rng,
                   std::vector<int64_t>& perm, std::vector<int64_t>& index, PointsT<Scalar>* dst) {
  const int64_t rows = src.rows();
  if (batch <= 0 || batch >= rows) {
    *dst = (src.rowwise() - center).template cast<Scalar>();
    return;
  }
  if (static_cast<int64_t>(perm.size()) != rows) {
    perm.resize(rows);
    std::iota(perm.begin(), perm.end(), 0);
  }
  index.resize(batch);
  rng.SampleWithoutReplacement(rows, batch, perm.data(), index.data());
  dst->resize(batch, src.cols());
  for (int64_t i = 0; i < batch; ++i) dst->row(i) = (src.row(index[i]) - center).template cast<Scalar>();
}

// The exact median rule looks at no more than this many particles (a random subset beyond it): the cost
// grows with the square of the count, and 8192 points give the median of ~33 million pairs.
constexpr int64_t kMedianMaxPoints = 8192;

// How the median bandwidth rules measure the particles' median pairwise squared distance.
struct MedianSpec {
  // Pairs of the fixed random subset (SubsetPairMedian); 0: every pair (exact, of a random subset of
  // kMedianMaxPoints particles beyond that count).
  int64_t pairs = kDefaultMedianPairs;
  uint64_t seed = 0;  // draws the subset (the flow's seed)
};
// The spec a flow's configuration asks for (FlowConfig::median_pairs, FlowConfig::seed).
inline MedianSpec MedianSpecOf(const FlowConfig& c) { return {c.median_pairs.value_or(kDefaultMedianPairs), c.seed}; }

// FlowState::values key of the initial- rules' median (schedule.h): measured at the first step, then held.
inline constexpr char kInitialMedianSq[] = "initial_median";  // short: no allocation to look it up

// After a committed step: keeps the initial median the step measured (ParticleMedian::Measure) in a
// state's values (FlowState::values, TrainingState::values).
template <typename Rules>
void HoldInitialMedian(const Rules& rules, const SigmaMedians& m, std::map<std::string, double>& values) {
  if (rules.needs_initial_median() && values.count(kInitialMedianSq) == 0) values.emplace(kInitialMedianSq, m.initial);
}

// Median pairwise squared distance of the particles for the median rules: over a fixed random subset of
// pairs by default, exact with MedianSpec::pairs = 0 (computed in Scalar). Not thread-safe.
template <typename Scalar>
class ParticleMedian {
 public:
  explicit ParticleMedian(MedianSpec spec = {}) : spec_(spec), subset_(std::max<int64_t>(1, spec.pairs), spec.seed) {}

  // The medians `rules` (KernelSigmas or SigmaRule) read at this step: `now` over the points y, `initial`
  // held in the state's `values` (measured on y when they hold none yet; HoldInitialMedian keeps it when the
  // step commits).
  template <typename Rules>
  SigmaMedians Measure(const Rules& rules, const Points& y, const std::map<std::string, double>& values,
                       const Eigen::RowVectorXd& center, Rng& rng, int threads) {
    SigmaMedians m;
    if (rules.needs_median()) m.now = (*this)(y, center, rng, threads);
    if (rules.needs_initial_median()) {
      const auto it = values.find(kInitialMedianSq);
      m.initial = it != values.end() ? it->second : rules.needs_median() ? m.now : (*this)(y, center, rng, threads);
    }
    return m;
  }

  // `center` is the point the exact path centres on before casting; `rng` draws its subset of
  // particles beyond kMedianMaxPoints (the subset estimator consumes no randomness).
  double operator()(const Points& y, const Eigen::RowVectorXd& center, Rng& rng, int threads) {
    if (spec_.pairs > 0) return subset_(y);
    GatherCentred(y, center, y.rows() > kMedianMaxPoints ? kMedianMaxPoints : 0, rng, perm_, index_, &points_);
    return MedianPairwiseSquaredDistance(points_, threads, ws_);
  }

 private:
  MedianSpec spec_;
  SubsetPairMedian subset_;
  PointsT<Scalar> points_;
  std::vector<int64_t> perm_, index_;
  PairwiseMedianWorkspace<Scalar> ws_;
};

// The settings of a kernel flow's step (SD, SVGD, WGF, MMD-Gaussian).
struct KernelFlowParams {
  double step_size = 0.1;
  // > 0 (option first_step_norm; sd, mmd-gaussian): the step size is chosen at the first step so that the
  // first perturbation has this norm (001 App. C), then held (KernelFlowStepSize).
  double first_step_norm = 0;
  Optimizer optimizer;
  KernelSigmas sigmas;
  int64_t batch = 0;  // 0: full batch
  int threads = 0;
  MedianSpec median;
};

// Reads them from the config: step size (default 0.1), optimizer (sgd), the bandwidth and `noise` (the
// config's, or a rule the method fixes) with the method's defaults, batch, threads and median pairs.
inline absl::Status ReadKernelFlowConfig(const FlowConfig& c, const std::optional<std::string>& noise,
                                         const char* default_bandwidth, const char* default_noise,
                                         KernelFlowParams* p) {
  p->step_size = c.step_size.value_or(0.1);
  absl::StatusOr<Optimizer> optimizer = Optimizer::Parse(c.optimizer.value_or("sgd"));
  if (!optimizer.ok()) return optimizer.status();
  p->optimizer = *optimizer;
  absl::StatusOr<KernelSigmas> sigmas =
      KernelSigmas::Resolve(c.bandwidth, noise, default_bandwidth, default_noise, c.schedule_steps);
  if (!sigmas.ok()) return sigmas.status();
  p->sigmas = *std::move(sigmas);
  p->batch = c.batch_size.value_or(0);
  p->threads = c.threads;
  p->median = MedianSpecOf(c);
  return absl::OkStatus();
}

// The option's description in the methods' listings.
inline OptionDoc FirstStepNormDoc() {
  return {"first_step_norm", "instead of step_size: choose the step size so that the first perturbation moves "
                             "the particles by this much (root mean square over particles), 001 App. C (e.g. 0.5)"};
}

// Reads the option first_step_norm into p (after ReadKernelFlowConfig): refused together with a step size.
inline absl::Status ReadFirstStepNorm(const FlowConfig& c, OptionReader& options, KernelFlowParams* p) {
  absl::StatusOr<double> norm = options.Double("first_step_norm", 0.0, 0.0, 1e300);
  if (!norm.ok()) return norm.status();
  p->first_step_norm = *norm;
  if (p->first_step_norm > 0 && c.step_size.has_value()) {
    return options.Error("first_step_norm", "sets the step size itself; give step_size or first_step_norm, not both");
  }
  return absl::OkStatus();
}

// FlowState::values key of the step size first_step_norm chose.
inline constexpr char kAutoStepSize[] = "auto_step_size";

// The step size of this step: p.step_size, or with p.first_step_norm the one that makes the first
// perturbation (the M x d displacement of `direction` under p.optimizer) move the particles by that norm, root
// mean square over the particles (|D|_F / sqrt(M)), chosen at the first step and read from state.values
// afterwards. 001 App. C: "the first perturbation to the base data would have a norm of 0.5" — read per
// point; read as the whole array's Frobenius norm, 001 App. C.1.2's offset SD run stalls (tests/experiments/
// sd_helix_test.cc, docs/experiments.md). `*chosen` is set when it was
// chosen now: the caller keeps it in state.values[kAutoStepSize] once the step commits.
inline absl::StatusOr<double> KernelFlowStepSize(const KernelFlowParams& p, const char* method, const Points& direction,
                                                 const FlowState& state, Points* memory, Points* displacement,
                                                 bool* chosen) {
  *chosen = false;
  if (!(p.first_step_norm > 0)) return p.step_size;
  const auto it = state.values.find(kAutoStepSize);
  if (it != state.values.end()) return it->second;
  p.optimizer.Displacement(direction, 1.0, state.optimizer_state, memory, displacement);
  const double norm = displacement->norm() / std::sqrt(static_cast<double>(std::max<int64_t>(1, displacement->rows())));
  if (!(norm > 0 && std::isfinite(norm))) {
    return absl::FailedPreconditionError(absl::StrCat(
        method, ": the first perturbation is zero, so first_step_norm cannot set the step size; give step_size"));
  }
  *chosen = true;
  return p.first_step_norm / norm;
}

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_KERNEL_FLOW_UTIL_H_
