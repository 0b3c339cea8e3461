#include "core/flows/king_common.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/flows/kernel_flow_util.h"

namespace sampled {

absl::Status ReadKingRidge(OptionReader& options, KingStepParams* p) {
  SAMPLED_ASSIGN_OR_RETURN(p->lambda, options.Double("lambda", 1e-3, 0.0, 1e12));
  SAMPLED_ASSIGN_OR_RETURN(p->ridge, options.Double("ridge", 1e-3, 0.0, 1e12));
  return absl::OkStatus();
}

absl::Status ReadKingConfig(const FlowConfig& c, const std::string& method, bool bandwidth, KingStepParams* p) {
  p->step_size = c.step_size.value_or(1.0);
  SAMPLED_ASSIGN_OR_RETURN(p->optimizer, Optimizer::Parse(c.optimizer.value_or("sgd")));
  if (bandwidth) {
    SAMPLED_ASSIGN_OR_RETURN(p->bandwidth, SigmaRule::Parse(c.bandwidth.value_or("median-scaled:0.5"), "bandwidth"));
    if (p->bandwidth.kind() == SigmaRule::Kind::kFollow || p->bandwidth.needs_schedule_length()) {
      return absl::InvalidArgumentError(absl::StrCat(method, ": bandwidth must be a value or a median rule"));
    }
  }
  p->threads = c.threads;
  p->median = MedianSpecOf(c);
  p->precision = c.dtype.value_or(kDefaultNaturalGradientDType);
  return absl::OkStatus();
}

absl::StatusOr<KingStatsConfig> ReadKingStats(OptionReader& options, int64_t dim, bool stein, int64_t default_basis) {
  KingStatsConfig c;
  std::string kind = "stein";
  if (!stein) {
    SAMPLED_ASSIGN_OR_RETURN(kind, options.Choice("stats", "rbf", {"gaussian", "rbf", "rbf+pairs"}));
  }
  c.kind = kind == "gaussian" ? KingStatsConfig::Kind::kGaussian
           : kind == "rbf"    ? KingStatsConfig::Kind::kRbf
           : kind == "stein"  ? KingStatsConfig::Kind::kStein
                              : KingStatsConfig::Kind::kRbfPairs;
  if (c.kind == KingStatsConfig::Kind::kGaussian) {
    for (const char* misplaced : {"basis", "pairs", "feature_bandwidth"}) {
      if (options.Has(misplaced)) {
        return options.Error(misplaced, "does not apply to stats=gaussian (T = [x, x x^T] has no basis)");
      }
    }
    return c;
  }
  c.basis_given = options.Has("basis");
  SAMPLED_ASSIGN_OR_RETURN(c.basis, options.Int("basis", default_basis, 1, 100000));
  // The Stein family's test functions are narrower than KiNG's RBF features: wide ones satisfy the Stein
  // identity E_q[S_p f] = 0 long before q = p (on 003's 2-D MoG2 the particles stall between the modes). How
  // narrow depends on the dimension: pairwise distances concentrate about their median as d grows, so a width
  // that resolves a 2-D mixture's modes sees no other particle in 10-D. Hence F = 0.025 d, KiNG's 0.5 from
  // d = 20 on (docs/experiments.md "Stein KiNG's defaults": 0.05 in 2-D, 0.2-0.3 work in 10-D, 0.1 does not).
  const std::string default_rule =
      stein ? absl::StrCat("median-scaled:", std::min(0.5, 0.025 * static_cast<double>(dim))) : "median-scaled:0.5";
  SAMPLED_ASSIGN_OR_RETURN(std::string rule, options.String("feature_bandwidth", default_rule));
  absl::StatusOr<SigmaRule> r = SigmaRule::Parse(rule, "bandwidth");
  if (!r.ok() || r->kind() == SigmaRule::Kind::kFollow || r->needs_schedule_length()) {
    return options.Error("feature_bandwidth", absl::StrCat("'", rule, "' is not a fixed value or median rule"));
  }
  if (r->needs_initial_median()) {
    return options.Error("feature_bandwidth", "takes no initial- rule (the features are redrawn from the particles "
                                              "and targets of each step); give a median rule or a value");
  }
  c.feature_bandwidth = *r;
  if (c.kind == KingStatsConfig::Kind::kRbfPairs) {
    if (!options.Has("pairs")) return options.Error("pairs", "stats=rbf+pairs needs pairs, e.g. pairs=0-1,2-5");
    SAMPLED_ASSIGN_OR_RETURN(std::string text, options.String("pairs", ""));
    SAMPLED_ASSIGN_OR_RETURN(c.pairs, ParsePairs(text, dim));
  } else if (options.Has("pairs")) {
    return options.Error("pairs", "applies only to stats=rbf+pairs");
  }
  return c;
}

absl::Status KingStatsBuilder::CheckSizes(int64_t particles, int64_t targets) const {
  if (config_.kind == KingStatsConfig::Kind::kGaussian || !config_.basis_given) return absl::OkStatus();
  const int64_t available = particles + targets;
  if (config_.basis > available) {
    return absl::InvalidArgumentError(absl::StrCat(
        "option 'basis' (", config_.basis, ") exceeds the ", available, " points it is drawn from (",
        targets > 0 ? "particles and targets" : "particles", ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SufficientStatistics>> KingStatsBuilder::Build(const Points& particles,
                                                                             const Points* targets,
                                                                             std::shared_ptr<const Target> density,
                                                                             Rng& rng, int threads) {
  const int64_t d = particles.cols();
  if (config_.kind == KingStatsConfig::Kind::kGaussian) {
    last_sigma_ = std::numeric_limits<double>::quiet_NaN();
    return GaussianStatistics(d);
  }
  // The pool the basis and the bandwidth come from.
  const int64_t n = particles.rows(), m = targets != nullptr ? targets->rows() : 0;
  pool_.resize(n + m, d);
  pool_.topRows(n) = particles;
  if (m > 0) pool_.bottomRows(m) = *targets;
  double median_sq = 0;
  if (config_.feature_bandwidth.needs_median()) {
    median_sq = feature_median_(pool_, pool_.colwise().mean(), rng, threads);
  }
  last_sigma_ = config_.feature_bandwidth.Sigma(0, 0, median_sq, pool_.rows());
  if (!(last_sigma_ > 0 && std::isfinite(last_sigma_))) {
    return absl::FailedPreconditionError("the feature bandwidth is 0 (all points coincide); set feature_bandwidth");
  }
  const int64_t b = std::min(config_.basis, pool_.rows());
  if (static_cast<int64_t>(perm_.size()) != pool_.rows()) {
    perm_.resize(pool_.rows());
    std::iota(perm_.begin(), perm_.end(), 0);
  }
  index_.resize(b);
  rng.SampleWithoutReplacement(pool_.rows(), b, perm_.data(), index_.data());
  Points basis(b, d);
  for (int64_t i = 0; i < b; ++i) basis.row(i) = pool_.row(index_[i]);
  if (config_.kind == KingStatsConfig::Kind::kStein) return SteinStatistics(std::move(density), std::move(basis), last_sigma_);
  std::unique_ptr<SufficientStatistics> rbf = RbfStatistics(std::move(basis), last_sigma_);
  if (config_.kind == KingStatsConfig::Kind::kRbf) return rbf;
  std::vector<std::unique_ptr<SufficientStatistics>> parts;
  parts.push_back(std::move(rbf));
  parts.push_back(PairStatistics(d, config_.pairs));
  return ConcatStatistics(std::move(parts));
}

}  // namespace sampled
