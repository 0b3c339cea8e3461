// The "gmm" family: a Gaussian mixture fitted by EM to a data target (core/targets/gmm_fit.h), stored as the
// "mixture" density it found (its weights, means and covariances are the target's parameters), so that the
// density flows and the neural samplers run on it, and 004's NDSM noises toward it.
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/gmm_fit.h"
#include "core/targets/params.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

absl::StatusOr<int64_t> Count(ParamReader& r, const std::string& key, double fallback, int64_t lo, int64_t hi) {
  SAMPLED_ASSIGN_OR_RETURN(const double v, r.Scalar(key, fallback));
  if (v != std::floor(v) || v < lo || v > hi) {
    return r.Error(key, absl::StrCat("must be a whole number between ", lo, " and ", hi, ", got ", v));
  }
  return static_cast<int64_t>(v);
}

}  // namespace

absl::StatusOr<GmmFitOptions> ReadGmmFitOptions(const ParamMap& params) {
  ParamReader r(params, "gmm");
  GmmFitOptions o;
  SAMPLED_ASSIGN_OR_RETURN(o.components, Count(r, "components", 0, 0, 1000));
  SAMPLED_ASSIGN_OR_RETURN(o.max_components, Count(r, "max_components", 10, 1, 1000));
  SAMPLED_ASSIGN_OR_RETURN(const int64_t diagonal, Count(r, "diagonal", 0, 0, 1));
  SAMPLED_ASSIGN_OR_RETURN(const int64_t spherical, Count(r, "spherical", 0, 0, 1));
  if (diagonal && spherical) return r.Error("diagonal", "give at most one of diagonal and spherical");
  o.covariance = diagonal ? CovarianceType::kDiagonal : spherical ? CovarianceType::kSpherical : CovarianceType::kFull;
  SAMPLED_ASSIGN_OR_RETURN(o.reg_covar, r.Scalar("reg_covar", 1e-6, /*positive=*/true));
  SAMPLED_ASSIGN_OR_RETURN(o.max_iter, Count(r, "max_iter", 100, 1, 100000));
  SAMPLED_ASSIGN_OR_RETURN(o.tol, r.Scalar("tol", 1e-3, /*positive=*/true));
  SAMPLED_ASSIGN_OR_RETURN(o.n_init, Count(r, "n_init", 1, 1, 100));
  SAMPLED_ASSIGN_OR_RETURN(o.max_points, Count(r, "max_points", 0, 0, int64_t{1} << 40));
  SAMPLED_ASSIGN_OR_RETURN(const double seed, r.Scalar("seed", 0));
  if (seed < 0 || seed != std::floor(seed)) return r.Error("seed", "must be a whole number >= 0");
  o.seed = static_cast<uint64_t>(seed);
  SAMPLED_RETURN_IF_ERROR(r.Finish());
  return o;
}

absl::StatusOr<std::unique_ptr<Target>> MixtureOfFit(const GmmFit& fit) {
  const int64_t d = fit.means.cols();
  ParamMap m;
  m["weights"] = fit.weights;
  for (int64_t k = 0; k < fit.components(); ++k) {
    for (int64_t c = 0; c < d; ++c) m["means"].push_back(fit.means(k, c));
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j < d; ++j) m["cov"].push_back(fit.covs[k](i, j));
    }
  }
  return CreateAnalyticTarget("mixture", d, m);
}

const TargetFamily& GmmFamily() {
  static const TargetFamily kFamily{
      "gmm",
      "a Gaussian mixture fitted by EM to a data target (k-means++ seeding; sklearn's GaussianMixture arithmetic), "
      "stored as the mixture density it found",
      0,
      {{"components", "K; default 0: chosen by BIC over 1..max_components"},
       {"max_components", "the largest K tried by BIC; default 10"},
       {"diagonal", "1: diagonal covariances; default 0 (full)"},
       {"spherical", "1: spherical covariances (sigma_k^2 I); default 0"},
       {"reg_covar", "added to every covariance's diagonal; default 1e-6"},
       {"max_iter", "EM iterations at most; default 100"},
       {"tol", "stop when the mean log likelihood per point changes by less; default 1e-3"},
       {"n_init", "starts, the best by likelihood kept; default 1"},
       {"max_points", "fit on a random subset of this many points; default 0: all"},
       {"seed", "the seeding's and the subset's; default 0"}},
      nullptr,
      [](const Target& data, int64_t dim, const ParamMap& params) -> absl::StatusOr<std::unique_ptr<Target>> {
        if (data.samples() == nullptr) return absl::InvalidArgumentError("gmm is fitted to a data target's points");
        const int64_t d = data.samples()->cols();
        if (dim != 0 && dim != d) {
          return absl::InvalidArgumentError(absl::StrCat("dim: the data has ", d, " dimensions, got ", dim));
        }
        SAMPLED_ASSIGN_OR_RETURN(const GmmFitOptions options, ReadGmmFitOptions(params));
        SAMPLED_ASSIGN_OR_RETURN(const GmmFit fit, FitGaussianMixture(*data.samples(), options));
        return MixtureOfFit(fit);
      },
      /*uploaded=*/false,
      [](const Target& data, const ParamMap& params) -> absl::StatusOr<int64_t> {
        if (data.samples() == nullptr) return 0;
        SAMPLED_ASSIGN_OR_RETURN(const GmmFitOptions o, ReadGmmFitOptions(params));
        return GmmFitBytes(data.samples()->rows(), data.samples()->cols(), o);
      }};
  return kFamily;
}

}  // namespace sampled
