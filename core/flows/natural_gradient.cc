#include "core/flows/natural_gradient.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Cholesky>

#include "absl/strings/str_cat.h"
#include "core/common/parallel.h"

namespace sampled {
namespace {

template <typename S>
using Mat = PointsT<S>;  // row-major
template <typename S>
using MapMat = Eigen::Map<Mat<S>>;
template <typename S>
using ConstMapMat = Eigen::Map<const Mat<S>>;

// Particle rows per block of the kernel rows and the products that use them (what a thread takes).
constexpr int64_t kRowBlock = 32;
// Columns of G per block of its products.
constexpr int64_t kColBlock = 32;
// kPerParticle: values of the t_ij block a thread holds at once (8 MB in float64).
constexpr int64_t kPairValuesPerBlock = int64_t{1} << 20;

// out = a^T b (a: r x p, b: r x q). Columns of out are cut into blocks that threads take; each element is
// computed by one thread in a fixed order, so the result does not depend on the thread count.
template <typename S, typename A, typename B>
void TransposedProduct(const A& a, const B& b, int threads, Mat<S>& out) {
  out.resize(a.cols(), b.cols());
  ParallelFor(b.cols(), kColBlock, threads, [&](int64_t c0, int64_t c1, int) {
    out.middleCols(c0, c1 - c0).noalias() = a.transpose() * b.middleCols(c0, c1 - c0);
  });
}

// Rows [i0, i1) of the kernel matrix, k_ij = exp(-|y_i - y_j|^2 / (2 sigma^2)), with exact differences.
template <typename S>
void KernelRows(const NaturalGradientScratch<S>& w, int64_t i0, int64_t i1, S inv_s2, Mat<S>& k) {
  const int64_t n = w.y.rows(), d = w.y.cols();
  k.resize(i1 - i0, n);
  for (int64_t i = i0; i < i1; ++i) {
    auto row = k.row(i - i0).array();
    row = (w.yt.row(0).array() - w.y(i, 0)).square();
    for (int64_t c = 1; c < d; ++c) row += (w.yt.row(c).array() - w.y(i, c)).square();
    row = (row * (S(-0.5) * inv_s2)).exp();
  }
}

// G by coordinate pairs: for a <= c, M^{ac} = W^{ac} J_c with W^{ac}_ij = k_ij (delta_ac / s^2 -
// D_a D_c / s^4), D = y_i - y_j; then G = sum_a J_a^T M^{aa} + sum_{a<c} (J_a^T M^{ac} + its transpose),
// since W^{ac} is symmetric in i, j and W^{ca} = W^{ac}.
template <typename S>
void GramByCoordinatePairs(NaturalGradientScratch<S>& w, int64_t b, S inv_s2, int threads, MatrixXd* g) {
  const int64_t n = w.y.rows(), d = w.y.cols();
  const S inv_s4 = inv_s2 * inv_s2;
  w.m.resize(d * (d + 1) / 2);
  for (Mat<S>& m : w.m) m.resize(n, b);
  ParallelFor(n, kRowBlock, threads, [&](int64_t i0, int64_t i1, int ti) {
    auto& t = w.per_thread[ti];
    const int64_t r = i1 - i0;
    KernelRows(w, i0, i1, inv_s2, t.k);
    t.diff.resize(d);
    for (int64_t a = 0; a < d; ++a) {
      t.diff[a].resize(r, n);
      for (int64_t ii = 0; ii < r; ++ii) t.diff[a].row(ii).array() = w.y(i0 + ii, a) - w.yt.row(a).array();
    }
    int64_t pair = 0;
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t c = a; c < d; ++c, ++pair) {
        t.q = t.k.array() * ((a == c ? inv_s2 : S(0)) - inv_s4 * t.diff[a].array() * t.diff[c].array());
        w.m[pair].middleRows(i0, r).noalias() = t.q * w.jac.middleCols(c * b, b);
      }
    }
  });
  Mat<S>& diagonal = w.products[0];
  Mat<S>& off = w.products[1];
  diagonal.setZero(b, b);
  off.setZero(b, b);
  ParallelFor(b, kColBlock, threads, [&](int64_t c0, int64_t c1, int) {
    int64_t pair = 0;
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t c = a; c < d; ++c, ++pair) {
        (a == c ? diagonal : off).middleCols(c0, c1 - c0).noalias() +=
            w.jac.middleCols(a * b, b).transpose() * w.m[pair].middleCols(c0, c1 - c0);
      }
    }
  });
  *g = (diagonal + off + off.transpose()).template cast<double>() / (static_cast<double>(n) * n);
}

// G per particle: hj_i = sum_j H_ij J_j = (1/s^2) (K J)_i - (1/s^4) sum_j k_ij D_ij t_ij^T with
// t_ij = J_j^T D_ij = J_j^T y_i - P_j (P_j = J_j^T y_j) and D_ij = y_i - y_j, so
//   sum_j k_ij D_ij t_ij^T = y_i (sum_j k_ij t_ij)^T - sum_j k_ij y_j t_ij^T,
// both from one product [Y | 1]^T diag(k_i) [t_ij]_j; then G = (1/n^2) sum_i J_i^T hj_i.
template <typename S>
void GramPerParticle(NaturalGradientScratch<S>& w, int64_t b, S inv_s2, int threads, MatrixXd* g) {
  const int64_t n = w.y.rows(), d = w.y.cols();
  const S inv_s4 = inv_s2 * inv_s2;
  // J transposed to d x (n b): row c holds J_j[c, :] for j = 0..n-1, so Y jt gives every J_j^T y_i.
  w.jt.resize(d, n * b);
  w.p.setZero(n, b);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t c = 0; c < d; ++c) {
      w.jt.row(c).segment(j * b, b) = w.jac.row(j).segment(c * b, b);
      w.p.row(j) += w.y(j, c) * w.jac.row(j).segment(c * b, b);
    }
  }
  w.h.resize(n, d * b);
  const int64_t rows = std::clamp<int64_t>(kPairValuesPerBlock / (n * b), 1, kRowBlock);
  ParallelFor(n, rows, threads, [&](int64_t i0, int64_t i1, int ti) {
    auto& t = w.per_thread[ti];
    const int64_t r = i1 - i0;
    KernelRows(w, i0, i1, inv_s2, t.k);
    t.kj.noalias() = t.k * w.jac;                     // (K J)_i, r x (d b)
    t.q.noalias() = w.y.middleRows(i0, r) * w.jt;     // J_j^T y_i, r x (n b)
    t.ykt.resize(d + 1, n);
    for (int64_t ii = 0; ii < r; ++ii) {
      const int64_t i = i0 + ii;
      MapMat<S> tij(t.q.row(ii).data(), n, b);
      tij -= w.p;
      for (int64_t c = 0; c < d; ++c) t.ykt.row(c) = t.k.row(ii).cwiseProduct(w.yt.row(c));
      t.ykt.row(d) = t.k.row(ii);
      t.z.noalias() = t.ykt * tij;  // rows 0..d-1: sum_j k_ij y_j t_ij^T; row d: sum_j k_ij t_ij
      MapMat<S> hi(w.h.row(i).data(), d, b);
      const ConstMapMat<S> kji(t.kj.row(ii).data(), d, b);
      hi = inv_s2 * kji - inv_s4 * (w.y.row(i).transpose() * t.z.row(d) - t.z.topRows(d));
    }
  });
  const ConstMapMat<S> hflat(w.h.data(), n * d, b), jflat(w.jac.data(), n * d, b);
  TransposedProduct<S>(hflat, jflat, threads, w.products[0]);
  *g = w.products[0].template cast<double>() / (static_cast<double>(n) * n);
}

// Cov_q[T] in precision S (b x b), from the rows of t.
template <typename S>
MatrixXd CovarianceIn(const Points& t, int threads, NaturalGradientScratch<S>& w) {
  const int64_t n = t.rows();
  w.centred = (t.rowwise() - t.colwise().mean()).template cast<S>();
  TransposedProduct<S>(w.centred, w.centred, threads, w.products[1]);
  return w.products[1].template cast<double>() / std::max<double>(1.0, n - 1.0);
}

// alpha = (lambda F + G + ridge I)^-1 grad, in float64.
absl::Status SolveGamma(const NaturalGradientProblem& p, const MatrixXd& fisher, NaturalGradientWorkspace& ws,
                        Eigen::VectorXd* alpha) {
  const int64_t b = ws.g.rows();
  ws.gamma = p.lambda * fisher + ws.g;
  ws.gamma.diagonal().array() += p.ridge;
  ws.gamma = 0.5 * (ws.gamma + ws.gamma.transpose()).eval();
  Eigen::LLT<MatrixXd> llt(ws.gamma);
  if (llt.info() == Eigen::Success) {
    *alpha = llt.solve(*p.grad);
  } else {
    Eigen::LDLT<MatrixXd> ldlt(ws.gamma);
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

// u_i = J_i alpha for every particle (n x d), in float64.
Points ParticleDirections(const Points& jac, int64_t d, const Eigen::VectorXd& alpha) {
  const int64_t n = jac.rows(), b = alpha.size();
  Points u(n, d);
  for (int64_t a = 0; a < d; ++a) u.col(a) = jac.middleCols(a * b, b) * alpha;
  return u;
}

// h(x_j) = (1/n) sum_i H_ij u_i = (1/n) sum_i k_ij (u_i / s^2 - D_ij (D_ij . u_i) / s^4), in float64.
void KingDrift(const Points& y, const Points& u, double sigma, int threads, Points* velocity) {
  const int64_t n = y.rows(), d = y.cols();
  const double inv_s2 = 1.0 / (sigma * sigma), inv_s4 = inv_s2 * inv_s2;
  const Points yt = y.transpose(), ut = u.transpose();  // d x n, row-major: rows are contiguous
  velocity->resize(n, d);
  ParallelFor(n, 16, threads, [&](int64_t j0, int64_t j1, int) {
    Eigen::Array<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> diff(d, n);
    Eigen::ArrayXd k(n), dot(n);
    for (int64_t j = j0; j < j1; ++j) {
      k.setZero();
      dot.setZero();
      for (int64_t c = 0; c < d; ++c) {
        diff.row(c) = yt.row(c).array() - y(j, c);
        k += diff.row(c).transpose().square();
        dot += diff.row(c).transpose() * ut.row(c).transpose().array();
      }
      k = (-0.5 * inv_s2 * k).exp();
      for (int64_t a = 0; a < d; ++a) {
        (*velocity)(j, a) = (inv_s2 * (k * ut.row(a).transpose().array()).sum() -
                             inv_s4 * (k * diff.row(a).transpose() * dot).sum()) /
                            static_cast<double>(n);
      }
    }
  });
}

template <typename S>
absl::Status KingVelocityIn(const NaturalGradientProblem& p, double sigma, NaturalGradientWorkspace& ws,
                            NaturalGradientScratch<S>& w, Points* velocity, KingContraction contraction) {
  const Points& y = *p.particles;
  const int64_t n = y.rows(), d = y.cols(), b = p.stats->cols();
  const int threads = ResolveThreads(p.threads);
  w.per_thread.resize(threads);
  w.y = y.template cast<S>();
  w.yt = w.y.transpose();
  w.jac = p.jacobian->template cast<S>();
  if (contraction == KingContraction::kAuto) {
    // Multiply-adds of the two arrangements (the kernel rows and the solve are common to both).
    const double pairs = d * (d + 1) / 2.0;
    const double by_pairs = pairs * (static_cast<double>(n) * n * b + static_cast<double>(n) * b * b);
    const double per_particle = (2.0 * d + 1) * n * n * b + static_cast<double>(n) * d * b * b;
    contraction = by_pairs <= per_particle ? KingContraction::kCoordinatePairs : KingContraction::kPerParticle;
  }
  const S inv_s2 = static_cast<S>(1.0 / (sigma * sigma));
  if (contraction == KingContraction::kCoordinatePairs) {
    GramByCoordinatePairs(w, b, inv_s2, threads, &ws.g);
  } else {
    GramPerParticle(w, b, inv_s2, threads, &ws.g);
  }
  Eigen::VectorXd alpha;
  if (absl::Status s = SolveGamma(p, CovarianceIn(*p.stats, threads, w), ws, &alpha); !s.ok()) return s;
  KingDrift(y, ParticleDirections(*p.jacobian, d, alpha), sigma, threads, velocity);
  return absl::OkStatus();
}

template <typename S>
absl::Status ScalarKernelVelocityIn(const NaturalGradientProblem& p, const MatrixXd& kernel,
                                    NaturalGradientWorkspace& ws, NaturalGradientScratch<S>& w, Points* velocity) {
  const int64_t n = p.particles->rows(), d = p.particles->cols(), b = p.stats->cols();
  const int threads = ResolveThreads(p.threads);
  w.jac = p.jacobian->template cast<S>();
  w.kernel = kernel.template cast<S>();
  // G = (1/n^2) sum_a J_a^T K J_a = (1/n^2) J_flat^T (K J)_flat.
  w.h.resize(n, d * b);
  ParallelFor(n, kRowBlock, threads, [&](int64_t i0, int64_t i1, int) {
    w.h.middleRows(i0, i1 - i0).noalias() = w.kernel.middleRows(i0, i1 - i0) * w.jac;
  });
  const ConstMapMat<S> hflat(w.h.data(), n * d, b), jflat(w.jac.data(), n * d, b);
  TransposedProduct<S>(jflat, hflat, threads, w.products[0]);
  ws.g = w.products[0].template cast<double>() / (static_cast<double>(n) * n);
  Eigen::VectorXd alpha;
  if (absl::Status s = SolveGamma(p, CovarianceIn(*p.stats, threads, w), ws, &alpha); !s.ok()) return s;
  // h = K u / n, u_i = J_i alpha.
  const Points u = ParticleDirections(*p.jacobian, d, alpha);
  velocity->resize(n, d);
  ParallelFor(n, kRowBlock, threads, [&](int64_t i0, int64_t i1, int) {
    velocity->middleRows(i0, i1 - i0).noalias() = kernel.middleRows(i0, i1 - i0) * u / static_cast<double>(n);
  });
  return absl::OkStatus();
}

}  // namespace

MatrixXd Covariance(const Points& t) {
  const int64_t n = t.rows();
  const Eigen::RowVectorXd mean = t.colwise().mean();
  const Points centred = t.rowwise() - mean;
  return (centred.transpose() * centred) / std::max<double>(1.0, n - 1.0);
}

absl::Status KingVelocity(const NaturalGradientProblem& p, double sigma, NaturalGradientWorkspace& ws,
                          Points* velocity, KingContraction contraction) {
  if (p.precision == DType::kFloat32) return KingVelocityIn(p, sigma, ws, ws.f32, velocity, contraction);
  return KingVelocityIn(p, sigma, ws, ws.f64, velocity, contraction);
}

absl::Status ScalarKernelVelocity(const NaturalGradientProblem& p, const MatrixXd& kernel,
                                  NaturalGradientWorkspace& ws, Points* velocity) {
  if (p.precision == DType::kFloat32) return ScalarKernelVelocityIn(p, kernel, ws, ws.f32, velocity);
  return ScalarKernelVelocityIn(p, kernel, ws, ws.f64, velocity);
}

}  // namespace sampled
