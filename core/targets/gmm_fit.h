// A Gaussian mixture fitted to data by expectation-maximisation: the prior of 004's NDSM (the forward noising
// runs Langevin dynamics toward it) and, stored as a "mixture" target, a density the flows and neural samplers
// can run on. The arithmetic is sklearn.mixture.GaussianMixture's (tests/python compare the held-out log
// likelihood with Debian's python3-sklearn on the same data): k-means++ seeding of the means, responsibilities
// from the nearest seed, then EM with reg_covar added to every covariance's diagonal, stopping when the mean
// log likelihood per point changes by less than tol; the best of n_init starts by final likelihood.
#ifndef SAMPLED_CORE_TARGETS_GMM_FIT_H_
#define SAMPLED_CORE_TARGETS_GMM_FIT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/param_map.h"
#include "core/common/points.h"
#include "core/targets/target.h"

namespace sampled {

enum class CovarianceType { kFull, kDiagonal, kSpherical };
const char* CovarianceTypeName(CovarianceType t);  // "full" | "diag" | "spherical"
absl::StatusOr<CovarianceType> ParseCovarianceType(const std::string& name);

struct GmmFitOptions {
  int64_t components = 0;  // K; 0: chosen by BIC over 1..max_components
  int64_t max_components = 10;
  CovarianceType covariance = CovarianceType::kFull;
  double reg_covar = 1e-6;  // added to each covariance's diagonal (sklearn's default)
  int64_t max_iter = 100;
  double tol = 1e-3;         // on the change of the mean log likelihood per point
  int64_t n_init = 1;
  int64_t max_points = 0;    // > 0: fit on a random subset of this many rows
  uint64_t seed = 0;
};

struct GmmFit {
  std::vector<double> weights;   // K, summing to 1
  Points means;                  // K x d
  std::vector<MatrixXd> covs;    // K of d x d (diagonal or spherical ones as full matrices)
  CovarianceType covariance = CovarianceType::kFull;
  double mean_log_likelihood = 0;  // per point, on the data it was fitted to
  double bic = 0;
  int64_t iterations = 0;
  bool converged = false;
  int64_t points = 0;  // rows it was fitted on

  int64_t components() const { return static_cast<int64_t>(weights.size()); }
  // Free parameters (BIC's count).
  int64_t parameter_count() const;
};

// INVALID_ARGUMENT naming the parameter: fewer points than components, K or the iteration counts out of
// range, a non-finite value in the data, tol or reg_covar <= 0. A covariance that stays singular after
// reg_covar is FAILED_PRECONDITION saying to raise reg_covar.
absl::StatusOr<GmmFit> FitGaussianMixture(const Points& data, const GmmFitOptions& options);

// The bytes FitGaussianMixture works in on `rows` x `dim` data (the subset, the responsibilities and log
// densities, a centred copy, the fits of every K tried), for the caller's memory budget.
int64_t GmmFitBytes(int64_t rows, int64_t dim, const GmmFitOptions& options);

// The mean log density per row of `x` under the fitted mixture.
double GmmMeanLogLikelihood(const GmmFit& fit, const Points& x);

// The "gmm" family's parameters (gmm_target.cc): components, max_components, diagonal, spherical, reg_covar,
// max_iter, tol, n_init, max_points, seed; INVALID_ARGUMENT naming a bad one.
absl::StatusOr<GmmFitOptions> ReadGmmFitOptions(const ParamMap& params);
// The "mixture" target of a fit.
absl::StatusOr<std::unique_ptr<Target>> MixtureOfFit(const GmmFit& fit);

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_GMM_FIT_H_
