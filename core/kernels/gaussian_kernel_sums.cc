#include "core/kernels/gaussian_kernel_sums.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/common/parallel.h"

namespace sampled {
namespace {

// Tile shape: a query block of kQueryBlock rows against a point block of kPointBlock columns. A float
// tile is 256 KiB, a double tile 512 KiB: both stay in a 1 MiB L2 while they are exponentiated and
// multiplied into the accumulators.
constexpr int64_t kQueryBlock = 128;
constexpr int64_t kPointBlock = 512;
// Up to this dimension distances are formed coordinate by coordinate (exact differences, no GEMM
// packing overhead); above it through the expansion |q|^2 + |p|^2 - 2 q.p with a GEMM.
constexpr int64_t kDirectDistanceMaxDim = 8;

template <typename Scalar>
void EnsureSize(PointsT<Scalar>& m, int64_t rows, int64_t cols) {
  if (m.rows() != rows || m.cols() != cols) m.resize(rows, cols);
}

// Fills the first `nq` x `np` corner of `logits` with -|q_j - p_i|^2 / (2 sigma^2) for the query rows
// [q0, q0+nq) and point rows [p0, p0+np).
template <typename Scalar>
void ComputeLogits(const PointsT<Scalar>& queries, const PointsT<Scalar>& points,
                   const KernelWorkspace<Scalar>& ws, typename KernelWorkspace<Scalar>::Thread& t,
                   int64_t q0, int64_t nq, int64_t p0, int64_t np, Scalar neg_inv_two_s2) {
  const int64_t d = queries.cols();
  auto logits = t.logits.topLeftCorner(nq, np);
  if (d <= kDirectDistanceMaxDim) {
    for (int64_t j = 0; j < nq; ++j) {
      auto row = logits.row(j).array();
      row.setZero();
      for (int64_t k = 0; k < d; ++k) {
        const Scalar qk = queries(q0 + j, k);
        row += (ws.points_t.row(k).segment(p0, np).array() - qk).square();
      }
      row *= neg_inv_two_s2;
    }
    return;
  }
  logits.noalias() = queries.middleRows(q0, nq) * points.middleRows(p0, np).transpose();
  const auto qn = t.query_norms.head(nq).array();
  const auto pn = ws.point_norms.segment(p0, np).array();
  for (int64_t j = 0; j < nq; ++j) {
    // |q|^2 + |p|^2 - 2 q.p, clamped at 0 where round-off makes a squared distance negative.
    logits.row(j).array() =
        (qn(j) + pn.transpose() - Scalar(2) * logits.row(j).array()).max(Scalar(0)) * neg_inv_two_s2;
  }
}

}  // namespace

template <typename Scalar>
void GaussianKernelProduct(const PointsT<Scalar>& queries, const PointsT<Scalar>& points,
                           const PointsT<Scalar>& values, double sigma, bool max_shift,
                           KernelWorkspace<Scalar>& ws, int threads, Points* out,
                           Eigen::VectorXd* shift) {
  const int64_t m = queries.rows(), n = points.rows(), d = queries.cols(), c = values.cols();
  threads = ResolveThreads(threads);
  if (out->rows() != m || out->cols() != c) out->resize(m, c);
  if (shift != nullptr && shift->size() != m) shift->resize(m);
  if (static_cast<int>(ws.threads.size()) < threads) ws.threads.resize(threads);
  for (auto& t : ws.threads) {
    EnsureSize(t.logits, kQueryBlock, kPointBlock);
    if (t.partial.rows() != kQueryBlock || t.partial.cols() != c) t.partial.resize(kQueryBlock, c);
    if (t.acc.rows() != kQueryBlock || t.acc.cols() != c) t.acc.resize(kQueryBlock, c);
    if (t.query_norms.size() != kQueryBlock) t.query_norms.resize(kQueryBlock);
    if (t.shift.size() != kQueryBlock) t.shift.resize(kQueryBlock);
  }
  if (d <= kDirectDistanceMaxDim) {
    EnsureSize(ws.points_t, d, n);
    ws.points_t = points.transpose();
  } else {
    if (ws.point_norms.size() != n) ws.point_norms.resize(n);
    ws.point_norms = points.rowwise().squaredNorm();
  }
  const Scalar neg_inv_two_s2 = static_cast<Scalar>(-1.0 / (2.0 * sigma * sigma));

  ParallelFor(m, kQueryBlock, threads, [&](int64_t q0, int64_t q1, int ti) {
    auto& t = ws.threads[ti];
    const int64_t nq = q1 - q0;
    auto acc = t.acc.topRows(nq);
    auto s = t.shift.head(nq);
    acc.setZero();
    s.setConstant(max_shift ? -std::numeric_limits<double>::infinity() : 0.0);
    if (d > kDirectDistanceMaxDim) {
      t.query_norms.head(nq) = queries.middleRows(q0, nq).rowwise().squaredNorm();
    }
    for (int64_t p0 = 0; p0 < n; p0 += kPointBlock) {
      const int64_t np = std::min(kPointBlock, n - p0);
      ComputeLogits(queries, points, ws, t, q0, nq, p0, np, neg_inv_two_s2);
      auto logits = t.logits.topLeftCorner(nq, np);
      if (max_shift) {
        for (int64_t j = 0; j < nq; ++j) {
          const double tile_max = static_cast<double>(logits.row(j).maxCoeff());
          if (tile_max > s(j)) {
            // Rescale what was accumulated under the old shift (exp(-inf) = 0 on the first tile).
            acc.row(j) *= std::exp(s(j) - tile_max);
            s(j) = tile_max;
          }
          logits.row(j).array() = (logits.row(j).array() - static_cast<Scalar>(s(j))).exp();
        }
      } else {
        logits.array() = logits.array().exp();
      }
      auto partial = t.partial.topRows(nq);
      partial.noalias() = logits * values.middleRows(p0, np);
      acc += partial.template cast<double>();
    }
    out->middleRows(q0, nq) = acc;
    if (shift != nullptr) shift->segment(q0, nq) = s;
  });
}

template <typename Scalar>
void GaussianWeightedMeans(const PointsT<Scalar>& queries, const PointsT<Scalar>& points, double sigma,
                           KernelWorkspace<Scalar>& ws, int threads, Points* out) {
  const int64_t n = points.rows(), d = points.cols();
  EnsureSize(ws.values, n, d + 1);
  ws.values.leftCols(d) = points;
  ws.values.col(d).setOnes();
  GaussianKernelProduct(queries, points, ws.values, sigma, /*max_shift=*/true, ws, threads, &ws.sums);
  if (out->rows() != queries.rows() || out->cols() != d) out->resize(queries.rows(), d);
  *out = ws.sums.leftCols(d).array().colwise() / ws.sums.col(d).array();
}

template class KernelWorkspace<float>;
template class KernelWorkspace<double>;
template void GaussianKernelProduct<float>(const PointsF&, const PointsF&, const PointsF&, double, bool,
                                           KernelWorkspace<float>&, int, Points*, Eigen::VectorXd*);
template void GaussianKernelProduct<double>(const Points&, const Points&, const Points&, double, bool,
                                            KernelWorkspace<double>&, int, Points*, Eigen::VectorXd*);
template void GaussianWeightedMeans<float>(const PointsF&, const PointsF&, double, KernelWorkspace<float>&,
                                           int, Points*);
template void GaussianWeightedMeans<double>(const Points&, const Points&, double,
                                            KernelWorkspace<double>&, int, Points*);

}  // namespace sampled
