// What KiNG, ntKiNG and Stein KiNG share: the step's settings, reading the sufficient-statistics options,
// and building the statistics of one step (RBF basis points are redrawn at every step).
#ifndef SAMPLED_CORE_FLOWS_KING_COMMON_H_
#define SAMPLED_CORE_FLOWS_KING_COMMON_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/points.h"
#include "core/common/rng.h"
#include "core/flows/kernel_flow_util.h"
#include "core/flows/natural_gradient.h"
#include "core/flows/optimizer.h"
#include "core/flows/options.h"
#include "core/flows/schedule.h"
#include "core/flows/sufficient_statistics.h"
#include "core/kernels/pairwise_median.h"

namespace sampled {

// The settings of a KiNG-family step.
struct KingStepParams {
  double step_size = 1.0;
  Optimizer optimizer;
  SigmaRule bandwidth;  // of the drift kernel k over the particles (KiNG, Stein KiNG; ntKiNG's kernel is the NTK)
  double lambda = 1e-3, ridge = 1e-3;
  int threads = 0;
  MedianSpec median;
  DType precision = kDefaultNaturalGradientDType;  // of the contractions behind G
};

// Reads the `lambda` and `ridge` options (the caller reads its own, then calls options.Finish()).
absl::Status ReadKingRidge(OptionReader& options, KingStepParams* p);
// Reads the config's step size (default 1), optimizer (sgd), precision, threads and median pairs, and
// with `bandwidth` the drift kernel's bandwidth (default median-scaled:0.5; a value or a median rule).
absl::Status ReadKingConfig(const FlowConfig& c, const std::string& method, bool bandwidth, KingStepParams* p);

struct KingStatsConfig {
  enum class Kind { kGaussian, kRbf, kRbfPairs, kStein };
  Kind kind = Kind::kRbf;
  int64_t basis = 200;         // up to this many basis points (fewer when fewer points exist)
  bool basis_given = false;    // set by the caller: then more than the available points is an error
  std::vector<std::pair<int, int>> pairs;
  SigmaRule feature_bandwidth;
};

// Reads stats, basis, pairs and feature_bandwidth. `stein` fixes the kind to the Stein family (no stats or
// pairs options; feature_bandwidth's default then depends on `dim`, king_common.cc). Options that do not
// apply to the chosen statistics are refused.
absl::StatusOr<KingStatsConfig> ReadKingStats(OptionReader& options, int64_t dim, bool stein, int64_t default_basis);

// The statistics of one step: RBF basis points drawn (without replacement) from the particles and, for
// data targets, the targets; the feature bandwidth from the rule over the same points.
class KingStatsBuilder {
 public:
  // `median` is how the feature bandwidth's median rules measure the pool (kernel_flow_util.h).
  KingStatsBuilder(KingStatsConfig config, MedianSpec median) : config_(std::move(config)), feature_median_(median) {}

  // INVALID_ARGUMENT when the basis asks for more points than there are.
  absl::Status CheckSizes(int64_t particles, int64_t targets) const;

  absl::StatusOr<std::unique_ptr<SufficientStatistics>> Build(const Points& particles, const Points* targets,
                                                              std::shared_ptr<const Target> density, Rng& rng,
                                                              int threads);
  // The feature bandwidth used by the last Build (NaN for Gaussian statistics).
  double last_feature_bandwidth() const { return last_sigma_; }

 private:
  KingStatsConfig config_;
  Points pool_;
  std::vector<int64_t> perm_, index_;
  ParticleMedian<double> feature_median_;
  double last_sigma_ = 0;
};

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_KING_COMMON_H_
