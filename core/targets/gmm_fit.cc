#include "core/targets/gmm_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/common/rng.h"
#include "core/common/status_macros.h"
#include "core/targets/gaussian_component.h"

namespace sampled {
namespace {

constexpr double kTinyWeight = 10 * std::numeric_limits<double>::epsilon();  // sklearn's 10 * eps

// k-means++ seeding (Arthur and Vassilvitskii 2007): the first centre uniformly, each next one with
// probability proportional to the squared distance to the nearest centre so far.
std::vector<int64_t> KMeansPlusPlus(const Points& x, int64_t k, Rng& rng) {
  const int64_t n = x.rows();
  std::vector<int64_t> chosen = {rng.UniformInt(n)};
  Eigen::VectorXd nearest = (x.rowwise() - x.row(chosen[0])).rowwise().squaredNorm();
  while (static_cast<int64_t>(chosen.size()) < k) {
    const double total = nearest.sum();
    int64_t next = 0;
    if (total > 0) {
      double u = rng.Uniform() * total;
      for (next = 0; next + 1 < n && u >= nearest(next); ++next) u -= nearest(next);
    } else {
      next = rng.UniformInt(n);  // every point coincides with a centre
    }
    chosen.push_back(next);
    nearest = nearest.cwiseMin((x.rowwise() - x.row(next)).rowwise().squaredNorm());
  }
  return chosen;
}

// Responsibilities (n x K) with every point given to its nearest seed.
MatrixXd NearestSeed(const Points& x, const std::vector<int64_t>& seeds) {
  MatrixXd resp = MatrixXd::Zero(x.rows(), static_cast<int64_t>(seeds.size()));
  for (int64_t i = 0; i < x.rows(); ++i) {
    int64_t best = 0;
    double best_d = std::numeric_limits<double>::infinity();
    for (size_t k = 0; k < seeds.size(); ++k) {
      const double d = (x.row(i) - x.row(seeds[k])).squaredNorm();
      if (d < best_d) best_d = d, best = static_cast<int64_t>(k);
    }
    resp(i, best) = 1;
  }
  return resp;
}

// The M-step: weights, means and covariances (reg_covar on the diagonal) from responsibilities.
void MStep(const Points& x, const MatrixXd& resp, const GmmFitOptions& o, GmmFit* fit) {
  const int64_t n = x.rows(), d = x.cols(), k_count = resp.cols();
  const Eigen::VectorXd nk = resp.colwise().sum().transpose().array() + kTinyWeight;
  fit->weights.assign(nk.data(), nk.data() + k_count);
  for (double& w : fit->weights) w /= static_cast<double>(n);
  fit->means = (resp.transpose() * x).array().colwise() / nk.array();
  fit->covs.assign(k_count, MatrixXd());
  for (int64_t k = 0; k < k_count; ++k) {
    const Points centred = x.rowwise() - fit->means.row(k);
    MatrixXd cov;
    if (o.covariance == CovarianceType::kFull) {
      cov = (centred.array().colwise() * resp.col(k).array()).matrix().transpose() * centred / nk(k);
    } else {
      const Eigen::RowVectorXd var =
          (centred.array().square().colwise() * resp.col(k).array()).colwise().sum() / nk(k);
      cov = o.covariance == CovarianceType::kDiagonal ? MatrixXd(var.transpose().asDiagonal())
                                                       : MatrixXd::Identity(d, d) * var.mean();
    }
    cov.diagonal().array() += o.reg_covar;
    fit->covs[k] = 0.5 * (cov + cov.transpose());
  }
}

// log w_k + log N(x_i; mu_k, Sigma_k), n x K.
absl::StatusOr<MatrixXd> WeightedLogs(const GmmFit& fit, const Points& x) {
  MatrixXd logs(x.rows(), fit.components());
  Eigen::VectorXd col;
  for (int64_t k = 0; k < fit.components(); ++k) {
    auto g = GaussianComponent::FromCovariance(fit.means.row(k).transpose(), fit.covs[k]);
    if (!g.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("component ", k, "'s covariance is singular after reg_covar (", fit.covs[k].diagonal().minCoeff(),
                       " on its diagonal; duplicate points?); raise reg_covar"));
    }
    g->LogDensity(x, &col);
    logs.col(k) = col.array() + std::log(fit.weights[k]);
  }
  return logs;
}

// Normalises `logs` into responsibilities in place and returns the mean log likelihood.
double EStep(MatrixXd& logs) {
  const Eigen::VectorXd max = logs.rowwise().maxCoeff();
  logs = (logs.colwise() - max).array().exp();
  const Eigen::VectorXd sums = logs.rowwise().sum();
  logs.array().colwise() /= sums.array();
  return (max.array() + sums.array().log()).mean();
}

absl::StatusOr<GmmFit> FitOnce(const Points& x, int64_t k_count, const GmmFitOptions& o, Rng& rng) {
  GmmFit fit;
  fit.covariance = o.covariance;
  fit.points = x.rows();
  MatrixXd resp = NearestSeed(x, KMeansPlusPlus(x, k_count, rng));
  MStep(x, resp, o, &fit);
  double last = -std::numeric_limits<double>::infinity();
  for (fit.iterations = 1; fit.iterations <= o.max_iter; ++fit.iterations) {
    SAMPLED_ASSIGN_OR_RETURN(resp, WeightedLogs(fit, x));
    const double ll = EStep(resp);
    MStep(x, resp, o, &fit);
    if (std::abs(ll - last) < o.tol) {
      fit.converged = true;
      break;
    }
    last = ll;
  }
  fit.iterations = std::min(fit.iterations, o.max_iter);
  fit.mean_log_likelihood = GmmMeanLogLikelihood(fit, x);
  fit.bic = -2.0 * fit.mean_log_likelihood * static_cast<double>(x.rows()) +
            static_cast<double>(fit.parameter_count()) * std::log(static_cast<double>(x.rows()));
  return fit;
}

}  // namespace

const char* CovarianceTypeName(CovarianceType t) {
  switch (t) {
    case CovarianceType::kFull: return "full";
    case CovarianceType::kDiagonal: return "diag";
    case CovarianceType::kSpherical: return "spherical";
  }
  return "?";
}

absl::StatusOr<CovarianceType> ParseCovarianceType(const std::string& name) {
  for (CovarianceType t : {CovarianceType::kFull, CovarianceType::kDiagonal, CovarianceType::kSpherical}) {
    if (name == CovarianceTypeName(t)) return t;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown covariance '", name, "'; known: full, diag, spherical"));
}

int64_t GmmFit::parameter_count() const {
  const int64_t k = components(), d = means.cols();
  const int64_t cov = covariance == CovarianceType::kFull       ? k * d * (d + 1) / 2
                      : covariance == CovarianceType::kDiagonal ? k * d
                                                                : k;
  return cov + k * d + k - 1;
}

double GmmMeanLogLikelihood(const GmmFit& fit, const Points& x) {
  absl::StatusOr<MatrixXd> logs = WeightedLogs(fit, x);
  if (!logs.ok()) return -std::numeric_limits<double>::infinity();
  const Eigen::VectorXd max = logs->rowwise().maxCoeff();
  return (max.array() + (logs->colwise() - max).array().exp().rowwise().sum().log()).mean();
}

int64_t GmmFitBytes(int64_t rows, int64_t dim, const GmmFitOptions& o) {
  const int64_t n = o.max_points > 0 ? std::min(rows, o.max_points) : rows;
  const int64_t k = std::max<int64_t>(1, o.components > 0 ? o.components : o.max_components);
  const int64_t per_point = (o.max_points > 0 ? dim : 0) + 3 * k + 2 * dim + 2;  // subset, resp/logs/seeding, copies
  const int64_t per_fit = k * (dim * dim + dim + 1);                              // covariances, means, weights
  return 8 * (n * per_point + 3 * per_fit + rows * (o.max_points > 0 ? 1 : 0));   // + the subset's index
}

absl::StatusOr<GmmFit> FitGaussianMixture(const Points& data, const GmmFitOptions& o) {
  if (data.rows() < 1 || data.cols() < 1) return absl::InvalidArgumentError("the data is empty");
  if (!data.allFinite()) return absl::InvalidArgumentError("the data holds a NaN or an infinity");
  if (o.components < 0) return absl::InvalidArgumentError(absl::StrCat("components must be >= 0, got ", o.components));
  if (o.components == 0 && o.max_components < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_components must be >= 1, got ", o.max_components));
  }
  if (!(o.reg_covar > 0) || !std::isfinite(o.reg_covar)) {
    return absl::InvalidArgumentError(absl::StrCat("reg_covar must be a finite number > 0, got ", o.reg_covar));
  }
  if (!(o.tol > 0) || !std::isfinite(o.tol)) {
    return absl::InvalidArgumentError(absl::StrCat("tol must be a finite number > 0, got ", o.tol));
  }
  if (o.max_iter < 1 || o.max_iter > 100000) {
    return absl::InvalidArgumentError(absl::StrCat("max_iter must be between 1 and 100000, got ", o.max_iter));
  }
  if (o.n_init < 1 || o.n_init > 100) {
    return absl::InvalidArgumentError(absl::StrCat("n_init must be between 1 and 100, got ", o.n_init));
  }
  if (o.max_points < 0) return absl::InvalidArgumentError(absl::StrCat("max_points must be >= 0, got ", o.max_points));
  Rng rng(o.seed);
  Points subset;
  const Points* x = &data;
  if (o.max_points > 0 && data.rows() > o.max_points) {
    std::vector<int64_t> scratch(data.rows()), index(o.max_points);
    std::iota(scratch.begin(), scratch.end(), 0);
    rng.SampleWithoutReplacement(data.rows(), o.max_points, scratch.data(), index.data());
    subset.resize(o.max_points, data.cols());
    for (int64_t i = 0; i < o.max_points; ++i) subset.row(i) = data.row(index[i]);
    x = &subset;
  }
  const int64_t k_max = o.components > 0 ? o.components : o.max_components;
  if (k_max > x->rows()) {
    return absl::InvalidArgumentError(absl::StrCat("components: ", k_max, " components need at least as many points; the ",
                                                   o.max_points > 0 ? "subset has " : "data has ", x->rows()));
  }
  std::optional<GmmFit> best;
  for (int64_t k = o.components > 0 ? o.components : 1; k <= k_max; ++k) {
    std::optional<GmmFit> best_of_k;
    for (int64_t init = 0; init < o.n_init; ++init) {
      SAMPLED_ASSIGN_OR_RETURN(GmmFit fit, FitOnce(*x, k, o, rng));
      if (!best_of_k || fit.mean_log_likelihood > best_of_k->mean_log_likelihood) best_of_k = std::move(fit);
    }
    if (!best || best_of_k->bic < best->bic) best = std::move(best_of_k);
  }
  return *std::move(best);
}

}  // namespace sampled
