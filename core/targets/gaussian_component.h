// A multivariate normal N(mean, cov) with its precision and Cholesky factor precomputed: the building
// block of the gaussian and mixture families and of the transformed 2-D benchmark densities.
// Thread-safe (immutable after Create).
#ifndef SAMPLED_CORE_TARGETS_GAUSSIAN_COMPONENT_H_
#define SAMPLED_CORE_TARGETS_GAUSSIAN_COMPONENT_H_

#include "absl/status/statusor.h"
#include "core/common/points.h"
#include "core/common/rng.h"

namespace sampled {

class GaussianComponent {
 public:
  // INVALID_ARGUMENT when cov is not symmetric positive definite or the shapes disagree.
  static absl::StatusOr<GaussianComponent> FromCovariance(VectorXd mean, MatrixXd cov);
  static absl::StatusOr<GaussianComponent> FromPrecision(VectorXd mean, MatrixXd precision);

  int64_t dim() const { return mean_.size(); }
  const VectorXd& mean() const { return mean_; }
  const MatrixXd& cov() const { return cov_; }
  const MatrixXd& precision() const { return precision_; }

  // Normalised log N(x; mean, cov) for each row of x.
  void LogDensity(const Points& x, VectorXd* out) const;
  // -precision (x - mean) for each row of x.
  void Score(const Points& x, Points* out) const;
  // n draws mean + L xi, L L^T = cov.
  void Sample(int64_t n, Rng& rng, Points* out) const;

 private:
  GaussianComponent() = default;
  static absl::StatusOr<GaussianComponent> Build(VectorXd mean, MatrixXd cov, MatrixXd precision);
  VectorXd mean_;
  MatrixXd cov_, precision_, chol_;  // chol_: lower Cholesky factor of cov
  double log_normaliser_ = 0;         // -d/2 log(2 pi) - 1/2 log det cov
};

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_GAUSSIAN_COMPONENT_H_
