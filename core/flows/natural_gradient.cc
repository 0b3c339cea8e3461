#include "core/flows/natural_gradient.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Cholesky>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/common/parallel.h"

namespace sampled {
namespace {

template <typename S>
using Mat = PointsT<S>;  // row-major
template <typename S>
using MapMat = Eigen::Map<Mat<S>>;
template <typename S>
using ConstMapMat = Eigen::Map<const Mat<S>>;

// Rows (or columns) per block of a product that threads share: about `target`, in an even number of
// blocks of equal size. It depends on the size only, never on the thread count: a GEMM's summation order
// depends on its shape, and a seeded flow must give the same particles whatever the threads.
int64_t BlockSize(int64_t size, int64_t target) {
  const int64_t blocks = 2 * std::max<int64_t>(1, (size + 2 * target - 1) / (2 * target));
  return std::max<int64_t>(1, (size + blocks - 1) / blocks);
}

// Particle rows per block of the kernel rows and the products that use them (what a thread takes).
constexpr int64_t kRowBlock = 64;
// kPerParticle: values of the t_ij block a thread holds at once (8 MB in float64).
constexpr int64_t kPairValuesPerBlock = int64_t{1} << 20;

// Rows of the inner dimension per partial product of TransposedProduct.
constexpr int64_t kInnerBlock = 1024;

// out = a^T b when that product is symmetric (G, the covariance): the columns split in two halves and only
// the three blocks on and above the diagonal are computed (three quarters of the work), each over the same
// chunks of rows as TransposedProduct, partials added in chunk order.
template <typename S, typename A, typename B>
void SymmetricTransposedProduct(const A& a, const B& b, int threads, std::vector<Mat<S>>& partials, Mat<S>& out) {
  const int64_t r = a.rows(), q = b.cols(), half = q / 2;
  const int64_t chunk = BlockSize(r, kInnerBlock), chunks = (r + chunk - 1) / chunk;
  const int64_t col0[3] = {0, 0, half}, col1[3] = {0, half, half};  // block k: rows of out from col0, cols from col1
  const int64_t len0[3] = {half, half, q - half}, len1[3] = {half, q - half, q - half};
  partials.resize(3 * chunks);
  ParallelFor(3 * chunks, 1, threads, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c = t / 3, k = t % 3, r0 = c * chunk, rows = std::min(chunk, r - r0);
      partials[t].noalias() =
          a.block(r0, col0[k], rows, len0[k]).transpose() * b.block(r0, col1[k], rows, len1[k]);
    }
  });
  out.resize(q, q);
  for (int64_t k = 0; k < 3; ++k) {
    auto block = out.block(col0[k], col1[k], len0[k], len1[k]);
    block = partials[k];
    for (int64_t c = 1; c < chunks; ++c) block += partials[3 * c + k];
  }
  out.block(half, 0, q - half, half) = out.block(0, half, half, q - half).transpose();
}

// out = src in precision S, rows in parallel (the Jacobian has n x d b values).
template <typename S, typename Src>
void CastRows(const Src& src, int threads, Mat<S>* out) {
  out->resize(src.rows(), src.cols());
  ParallelFor(src.rows(), 64, threads, [&](int64_t r0, int64_t r1, int) {
    out->middleRows(r0, r1 - r0) = src.middleRows(r0, r1 - r0).template cast<S>();
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
  ParallelFor(n, BlockSize(n, kRowBlock), threads, [&](int64_t i0, int64_t i1, int ti) {
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
  // The G products, over chunks of particle rows (partials added in chunk order).
  const int64_t chunk = BlockSize(n, kInnerBlock), chunks = (n + chunk - 1) / chunk;
  w.partials.resize(2 * chunks);
  ParallelFor(n, chunk, threads, [&](int64_t r0, int64_t r1, int) {
    Mat<S>& diagonal = w.partials[2 * (r0 / chunk)];
    Mat<S>& off = w.partials[2 * (r0 / chunk) + 1];
    diagonal.setZero(b, b);
    off.setZero(b, b);
    int64_t pair = 0;
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t c = a; c < d; ++c, ++pair) {
        (a == c ? diagonal : off).noalias() +=
            w.jac.block(r0, a * b, r1 - r0, b).transpose() * w.m[pair].middleRows(r0, r1 - r0);
      }
    }
  });
  Mat<S>& diagonal = w.products[0];
  Mat<S>& off = w.products[1];
  diagonal = w.partials[0];
  off = w.partials[1];
  for (int64_t k = 1; k < chunks; ++k) {
    diagonal += w.partials[2 * k];
    off += w.partials[2 * k + 1];
  }
  *g = (diagonal + off + off.transpose()).template cast<double>() / (static_cast<double>(n) * n);
}

// G per particle: hj_i = sum_j H_ij J_j = (1/s^2) (K J)_i - (1/s^4) sum_j k_ij D_ij t_ij^T with
// t_ij = J_j^T D_ij = J_j^T y_i - P_j (P_j = J_j^T y_j) and D_ij = y_i - y_j, so
//   sum_j k_ij D_ij t_ij^T = y_i (sum_j k_ij t_ij)^T - sum_j k_ij y_j t_ij^T,
// both from one product [t_ij]_j^T [Y | 1] scaled by k_i; then G = (1/n^2) sum_i J_i^T hj_i.
template <typename S>
void GramPerParticle(const NaturalGradientProblem& problem, NaturalGradientScratch<S>& w, int64_t b, S inv_s2,
                     int threads, MatrixXd* g) {
  const int64_t n = w.y.rows(), d = w.y.cols();
  const S inv_s4 = inv_s2 * inv_s2;
  const bool rbf = problem.rbf.has_value();
  if (rbf) {
    // RBF statistics: J_j = -(1/s_f^2) (y_j 1^T - B^T) diag(T_j), so
    //   t_ij[m] = -(1/s_f^2) T_jm ((y_j . y_i - |y_j|^2) - (B_m . y_i - B_m . y_j)) = C_jm + A_jm (G_ij - BY_im)
    // with A = -(1/s_f^2) T, C_jm = A_jm (BY_jm - |y_j|^2), G = Y Y^T and BY = Y B^T: O(b) per pair
    // instead of O(d b).
    const S inv_f2 = static_cast<S>(1.0 / (problem.rbf->sigma * problem.rbf->sigma));
    w.jt = w.y * problem.rbf->basis->transpose().template cast<S>();  // BY, n x b
    w.kernel.noalias() = w.y * w.y.transpose();                        // G, n x n
    w.p = (-inv_f2) * problem.stats->template cast<S>();                // A
    w.centred = w.p.array() * (w.jt.array().colwise() - w.y.rowwise().squaredNorm().array());  // C
  } else {
    // [J^T | P] as (d + 1) x (n b): row c holds J_j[c, :] for j = 0..n-1, row d holds P_j = J_j^T y_j, so
    // that [y_i, -1] times it is [t_ij]_j (every J_j^T y_i - P_j) in one product.
    w.jt.resize(d + 1, n * b);
    ParallelFor(n, 16, threads, [&](int64_t j0, int64_t j1, int) {
      for (int64_t j = j0; j < j1; ++j) {
        auto pj = w.jt.row(d).segment(j * b, b);
        pj.setZero();
        for (int64_t c = 0; c < d; ++c) {
          w.jt.row(c).segment(j * b, b) = w.jac.row(j).segment(c * b, b);
          pj += w.y(j, c) * w.jac.row(j).segment(c * b, b);
        }
      }
    });
    w.p.resize(n, d + 1);  // [Y | -1]
    w.p.leftCols(d) = w.y;
    w.p.col(d).setConstant(S(-1));
  }
  w.h.resize(n, d * b);
  const int64_t rows =
      rbf ? BlockSize(n, kRowBlock) : BlockSize(n, std::clamp<int64_t>(kPairValuesPerBlock / (n * b), 1, kRowBlock));
  ParallelFor(n, rows, threads, [&](int64_t i0, int64_t i1, int ti) {
    auto& t = w.per_thread[ti];
    const int64_t r = i1 - i0;
    KernelRows(w, i0, i1, inv_s2, t.k);
    t.kj.noalias() = t.k * w.jac;                                  // (K J)_i, r x (d b)
    if (!rbf) t.q.noalias() = w.p.middleRows(i0, r) * w.jt;        // t_ij, r x (n b)
    t.ykt.resize(n, d + 1);  // [Y | 1] scaled by k_i
    for (int64_t ii = 0; ii < r; ++ii) {
      const int64_t i = i0 + ii;
      if (rbf) {
        t.q.resize(n, b);
        const auto by_i = w.jt.row(i).array();
        for (int64_t j = 0; j < n; ++j) {
          t.q.row(j).array() = w.centred.row(j).array() + w.p.row(j).array() * (w.kernel(j, i) - by_i);
        }
      }
      const ConstMapMat<S> tij(rbf ? t.q.data() : t.q.row(ii).data(), n, b);
      t.ykt.leftCols(d) = w.y.array().colwise() * t.k.row(ii).transpose().array();
      t.ykt.col(d) = t.k.row(ii).transpose();
      // Z^T (b x (d + 1)): columns 0..d-1 are sum_j k_ij t_ij y_j^T, column d is sum_j k_ij t_ij. As
      // t^T [Y | 1] the product's long side is b, which fills the GEMM's register blocks (d + 1 would not).
      t.z.noalias() = tij.transpose() * t.ykt;
      MapMat<S> hi(w.h.row(i).data(), d, b);
      const ConstMapMat<S> kji(t.kj.row(ii).data(), d, b);
      hi = inv_s2 * kji - inv_s4 * (w.y.row(i).transpose() * t.z.col(d).transpose() - t.z.leftCols(d).transpose());
    }
  });
  const ConstMapMat<S> hflat(w.h.data(), n * d, b), jflat(w.jac.data(), n * d, b);
  SymmetricTransposedProduct<S>(hflat, jflat, threads, w.partials, w.products[0]);
  *g = w.products[0].template cast<double>() / (static_cast<double>(n) * n);
}

// Cov_q[T] in precision S (b x b), from the rows of t.
template <typename S>
MatrixXd CovarianceIn(const Points& t, int threads, NaturalGradientScratch<S>& w) {
  const int64_t n = t.rows();
  w.centred = (t.rowwise() - t.colwise().mean()).template cast<S>();
  SymmetricTransposedProduct<S>(w.centred, w.centred, threads, w.partials, w.products[1]);
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
  CastRows(*p.jacobian, threads, &w.jac);
  if (contraction == KingContraction::kAuto) {
    // Multiply-adds of the two arrangements (the kernel rows and the solve are common to both).
    const double pairs = d * (d + 1) / 2.0;
    const double by_pairs = pairs * (static_cast<double>(n) * n * b + static_cast<double>(n) * b * b);
    const double per_particle = (2.0 * d + 1) * n * n * b + static_cast<double>(n) * d * b * b;
    contraction = by_pairs <= per_particle ? KingContraction::kCoordinatePairs : KingContraction::kPerParticle;
  }
  const S inv_s2 = static_cast<S>(1.0 / (sigma * sigma));
  const absl::Time t0 = absl::Now();
  if (contraction == KingContraction::kCoordinatePairs) {
    GramByCoordinatePairs(w, b, inv_s2, threads, &ws.g);
  } else {
    GramPerParticle(p, w, b, inv_s2, threads, &ws.g);
  }
  const absl::Time t1 = absl::Now();
  const MatrixXd fisher = CovarianceIn(*p.stats, threads, w);
  const absl::Time t2 = absl::Now();
  Eigen::VectorXd alpha;
  if (absl::Status s = SolveGamma(p, fisher, ws, &alpha); !s.ok()) return s;
  const absl::Time t3 = absl::Now();
  KingDrift(y, ParticleDirections(*p.jacobian, d, alpha), sigma, threads, velocity);
  ws.timings = {absl::ToDoubleSeconds(t1 - t0), absl::ToDoubleSeconds(t2 - t1), absl::ToDoubleSeconds(t3 - t2),
                absl::ToDoubleSeconds(absl::Now() - t3)};
  return absl::OkStatus();
}

template <typename S>
absl::Status ScalarKernelVelocityIn(const NaturalGradientProblem& p, const Mat<S>& kernel,
                                    NaturalGradientWorkspace& ws, NaturalGradientScratch<S>& w, Points* velocity) {
  const int64_t n = p.particles->rows(), d = p.particles->cols(), b = p.stats->cols();
  const int threads = ResolveThreads(p.threads);
  const absl::Time t0 = absl::Now();
  CastRows(*p.jacobian, threads, &w.jac);
  // G = (1/n^2) sum_a J_a^T K J_a = (1/n^2) J_flat^T (K J)_flat.
  w.h.resize(n, d * b);
  ParallelFor(n, BlockSize(n, kRowBlock), threads, [&](int64_t i0, int64_t i1, int) {
    w.h.middleRows(i0, i1 - i0).noalias() = kernel.middleRows(i0, i1 - i0) * w.jac;
  });
  const ConstMapMat<S> hflat(w.h.data(), n * d, b), jflat(w.jac.data(), n * d, b);
  SymmetricTransposedProduct<S>(jflat, hflat, threads, w.partials, w.products[0]);
  ws.g = w.products[0].template cast<double>() / (static_cast<double>(n) * n);
  const absl::Time t1 = absl::Now();
  const MatrixXd fisher = CovarianceIn(*p.stats, threads, w);
  const absl::Time t2 = absl::Now();
  Eigen::VectorXd alpha;
  if (absl::Status s = SolveGamma(p, fisher, ws, &alpha); !s.ok()) return s;
  const absl::Time t3 = absl::Now();
  // h = K u / n, u_i = J_i alpha, in float64.
  const Points u = ParticleDirections(*p.jacobian, d, alpha);
  velocity->resize(n, d);
  ParallelFor(n, BlockSize(n, kRowBlock), threads, [&](int64_t i0, int64_t i1, int) {
    velocity->middleRows(i0, i1 - i0).noalias() =
        kernel.middleRows(i0, i1 - i0).template cast<double>() * u / static_cast<double>(n);
  });
  ws.timings = {absl::ToDoubleSeconds(t1 - t0), absl::ToDoubleSeconds(t2 - t1), absl::ToDoubleSeconds(t3 - t2),
                absl::ToDoubleSeconds(absl::Now() - t3)};
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
  if (p.precision == DType::kFloat32) return ScalarKernelVelocity(p, PointsF(kernel.cast<float>()), ws, velocity);
  return ScalarKernelVelocity(p, Points(kernel), ws, velocity);
}

absl::Status ScalarKernelVelocity(const NaturalGradientProblem& p, const PointsF& kernel,
                                  NaturalGradientWorkspace& ws, Points* velocity) {
  return ScalarKernelVelocityIn(p, kernel, ws, ws.f32, velocity);
}

absl::Status ScalarKernelVelocity(const NaturalGradientProblem& p, const Points& kernel,
                                  NaturalGradientWorkspace& ws, Points* velocity) {
  return ScalarKernelVelocityIn(p, kernel, ws, ws.f64, velocity);
}

}  // namespace sampled
