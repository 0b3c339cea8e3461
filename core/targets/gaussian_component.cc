#include "core/targets/gaussian_component.h"

#include <cmath>

#include <Eigen/Cholesky>

#include "absl/strings/str_cat.h"

namespace sampled {
namespace {
constexpr double kLog2Pi = 1.8378770664093454835606594728112;
}  // namespace

absl::StatusOr<GaussianComponent> GaussianComponent::Build(VectorXd mean, MatrixXd cov, MatrixXd precision) {
  Eigen::LLT<MatrixXd> llt(cov);
  if (llt.info() != Eigen::Success) {
    return absl::InvalidArgumentError("covariance is not positive definite");
  }
  GaussianComponent g;
  g.chol_ = llt.matrixL();
  g.log_normaliser_ =
      -0.5 * mean.size() * kLog2Pi - g.chol_.diagonal().array().log().sum();
  g.mean_ = std::move(mean);
  g.cov_ = std::move(cov);
  g.precision_ = std::move(precision);
  return g;
}

absl::StatusOr<GaussianComponent> GaussianComponent::FromCovariance(VectorXd mean, MatrixXd cov) {
  if (cov.rows() != mean.size() || cov.cols() != mean.size()) {
    return absl::InvalidArgumentError(absl::StrCat("covariance must be ", mean.size(), " x ", mean.size()));
  }
  Eigen::LLT<MatrixXd> llt(cov);
  if (llt.info() != Eigen::Success) return absl::InvalidArgumentError("covariance is not positive definite");
  MatrixXd precision = llt.solve(MatrixXd::Identity(cov.rows(), cov.cols()));
  return Build(std::move(mean), std::move(cov), std::move(precision));
}

absl::StatusOr<GaussianComponent> GaussianComponent::FromPrecision(VectorXd mean, MatrixXd precision) {
  if (precision.rows() != mean.size() || precision.cols() != mean.size()) {
    return absl::InvalidArgumentError(absl::StrCat("precision must be ", mean.size(), " x ", mean.size()));
  }
  Eigen::LLT<MatrixXd> llt(precision);
  if (llt.info() != Eigen::Success) return absl::InvalidArgumentError("precision is not positive definite");
  MatrixXd cov = llt.solve(MatrixXd::Identity(precision.rows(), precision.cols()));
  cov = 0.5 * (cov + cov.transpose());
  return Build(std::move(mean), std::move(cov), std::move(precision));
}

void GaussianComponent::LogDensity(const Points& x, VectorXd* out) const {
  const Points centred = x.rowwise() - mean_.transpose();
  // Quadratic form through the Cholesky factor: |L^-1 (x - mean)|^2.
  const MatrixXd whitened = chol_.triangularView<Eigen::Lower>().solve(centred.transpose());
  *out = (log_normaliser_ - 0.5 * whitened.colwise().squaredNorm().array()).matrix().transpose();
}

void GaussianComponent::Score(const Points& x, Points* out) const {
  *out = -(x.rowwise() - mean_.transpose()) * precision_;  // precision is symmetric
}

void GaussianComponent::Sample(int64_t n, Rng& rng, Points* out) const {
  Points xi(n, dim());
  rng.FillNormal(xi.data(), xi.size());
  *out = (xi * chol_.transpose()).rowwise() + mean_.transpose();
}

}  // namespace sampled
