// What KiNG, ntKiNG and Stein KiNG share: reading the sufficient-statistics options and building the
// statistics of one step (RBF basis points are redrawn at every step).
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
#include "core/flows/options.h"
#include "core/flows/schedule.h"
#include "core/flows/sufficient_statistics.h"
#include "core/kernels/pairwise_median.h"

namespace sampled {

struct KingStatsConfig {
  enum class Kind { kGaussian, kRbf, kRbfPairs, kStein };
  Kind kind = Kind::kRbf;
  int64_t basis = 200;         // up to this many basis points (fewer when fewer points exist)
  bool basis_given = false;    // set by the caller: then more than the available points is an error
  std::vector<std::pair<int, int>> pairs;
  SigmaRule feature_bandwidth;
};

// Reads stats, basis, pairs and feature_bandwidth. `stein` fixes the kind to the Stein family (no stats or
// pairs options). Options that do not apply to the chosen statistics are refused.
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
