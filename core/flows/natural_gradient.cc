#include "core/flows/natural_gradient.h"

#include <cmath>

#include <Eigen/Cholesky>

#include "absl/strings/str_cat.h"
#include "core/common/parallel.h"

namespace sampled {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// alpha = (lambda F + G + ridge I)^-1 grad.
absl::Status SolveGamma(const NaturalGradientProblem& p, const MatrixXd& g, Eigen::VectorXd* alpha) {
  const int64_t b = g.rows();
  MatrixXd gamma = p.lambda * Covariance(*p.stats) + g;
  gamma.diagonal().array() += p.ridge;
  gamma = 0.5 * (gamma + gamma.transpose()).eval();
  Eigen::LLT<MatrixXd> llt(gamma);
  if (llt.info() == Eigen::Success) {
    *alpha = llt.solve(*p.grad);
  } else {
    Eigen::LDLT<MatrixXd> ldlt(gamma);
    if (ldlt.info() != Eigen::Success) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the ", b, " x ", b, " natural-gradient system is singular; raise the ridge or lambda option"));
    }
    *alpha = ldlt.solve(*p.grad);
  }
  if (!alpha->allFinite()) {
    return absl::FailedPreconditionError("the natural-gradient solve is not finite; raise the ridge option");
  }
  return absl::OkStatus();
}

}  // namespace

MatrixXd Covariance(const Points& t) {
  const int64_t n = t.rows();
  const Eigen::RowVectorXd mean = t.colwise().mean();
  const Points centred = t.rowwise() - mean;
  return (centred.transpose() * centred) / std::max<double>(1.0, n - 1.0);
}

absl::Status KingVelocity(const NaturalGradientProblem& p, double sigma, Points* velocity) {
  const Points& y = *p.particles;
  const Points& jac = *p.jacobian;
  const int64_t n = y.rows(), d = y.cols(), b = p.stats->cols();
  const double inv_s2 = 1.0 / (sigma * sigma), inv_s4 = inv_s2 * inv_s2;
  // hj_i = sum_j H_ij J_j (d x b per particle), pair by pair: with D = x_i - x_j and t = D^T J_j,
  // H_ij J_j = k (J_j / s^2 - D t / s^4).
  RowMatrix hj = RowMatrix::Zero(n, d * b);
  ParallelFor(n, 4, p.threads, [&](int64_t i0, int64_t i1, int) {
    Eigen::RowVectorXd t(b);
    Eigen::RowVectorXd delta(d);
    for (int64_t i = i0; i < i1; ++i) {
      auto out = hj.row(i);
      for (int64_t j = 0; j < n; ++j) {
        delta = y.row(i) - y.row(j);
        const double k = std::exp(-0.5 * inv_s2 * delta.squaredNorm());
        if (k == 0.0) continue;
        const auto jj = jac.row(j);
        t.setZero();
        for (int64_t a = 0; a < d; ++a) t += delta(a) * jj.segment(a * b, b);
        for (int64_t a = 0; a < d; ++a) {
          out.segment(a * b, b) += (k * inv_s2) * jj.segment(a * b, b) - (k * delta(a) * inv_s4) * t;
        }
      }
    }
  });
  // G = (1/n^2) sum_i J_i^T hj_i: with (n d) x b views, J^T hj.
  const Eigen::Map<const RowMatrix> jflat(jac.data(), n * d, b);
  const Eigen::Map<const RowMatrix> hflat(hj.data(), n * d, b);
  const MatrixXd g = (jflat.transpose() * hflat) / (static_cast<double>(n) * n);
  Eigen::VectorXd alpha;
  if (absl::Status s = SolveGamma(p, g, &alpha); !s.ok()) return s;
  // h(x_j) = (1/n) sum_i H_ij J_i alpha = (1/n) hj_j alpha (H_ij is symmetric in i, j).
  const Eigen::VectorXd v = hflat * alpha / static_cast<double>(n);
  *velocity = Eigen::Map<const Points>(v.data(), n, d);
  return absl::OkStatus();
}

absl::Status ScalarKernelVelocity(const NaturalGradientProblem& p, const MatrixXd& kernel, Points* velocity) {
  const Points& jac = *p.jacobian;
  const int64_t n = jac.rows(), d = p.particles->cols(), b = p.stats->cols();
  // G = (1/n^2) sum_a J_a^T K J_a, J_a the n x b block of dT/dx_a.
  MatrixXd g = MatrixXd::Zero(b, b);
  for (int64_t a = 0; a < d; ++a) {
    const auto ja = jac.middleCols(a * b, b);
    g.noalias() += ja.transpose() * (kernel * ja);
  }
  g /= static_cast<double>(n) * n;
  Eigen::VectorXd alpha;
  if (absl::Status s = SolveGamma(p, g, &alpha); !s.ok()) return s;
  // u_i = J_i alpha (d), h = K u / n.
  Points u(n, d);
  for (int64_t a = 0; a < d; ++a) u.col(a) = jac.middleCols(a * b, b) * alpha;
  *velocity = kernel * u / static_cast<double>(n);
  return absl::OkStatus();
}

}  // namespace sampled
