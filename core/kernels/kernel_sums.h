// Kernel-weighted sums between two point sets: out_j = sum_i w(q_j, p_i) v_i for every query q_j, the inner
// loop of SD flow (002 Eq. 17-18), MMD flows, WGF, SVGD and the MMD metric. Computed in blocks: a call over
// N points and M queries never holds an M x N matrix, runs on several threads, has float32 and float64
// paths, and allocates nothing once its workspace has grown to the sizes in use.
//
// Two code paths: up to 8 dimensions, distances are formed coordinate by coordinate with explicit SIMD and
// the weights are fused with the sums (the exp dominates); above, distances come from a GEMM tile
// (|q|^2 + |p|^2 - 2 q.p) and the sums from a second GEMM.
#ifndef SAMPLED_CORE_KERNELS_KERNEL_SUMS_H_
#define SAMPLED_CORE_KERNELS_KERNEL_SUMS_H_

#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "core/common/points.h"

namespace sampled {

enum class PairKernel {
  kGaussian,          // w = exp(-|q - p|^2 / (2 sigma^2))
  kInverseDistance,   // w = 1 / |q - p|, and 0 where q == p
};

struct KernelSumsOptions {
  PairKernel kernel = PairKernel::kGaussian;
  double sigma = 1.0;
  // Gaussian only: scale each query's weights by exp(s_j) with s_j = min_i |q_j - p_i|^2 / (2 sigma^2), so
  // the nearest point has weight 1 and nothing underflows to 0/0 (log-sum-exp).
  bool max_shift = false;
};

// Scratch memory reused across calls. Not thread-safe: one caller at a time.
template <typename Scalar>
struct KernelWorkspace {
  struct Thread {
    Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> tile;     // weights, rows x points
    Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> partial;  // tile @ values
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> acc;
    VectorT<Scalar> query_norms;
    VectorT<Scalar> row_min;
    std::vector<Scalar> weights;  // one block of fused weights
  };
  // Capacities that only grow (the top-left corner is in use), so that calls alternating between point
  // sets of different sizes allocate nothing.
  std::vector<Thread> threads;
  PointsT<Scalar> coords;       // fused path: points as SoA rows, d x N padded to whole packets with 0
  PointsT<Scalar> values;       // fused path: values as SoA rows, c x N, same row stride as coords
  PointsT<Scalar> gemm_values;  // GEMM path: [points | 1], N x (d + 1)
  VectorT<Scalar> point_norms;  // GEMM path: |p_i|^2
  Points sums;
};

// For each query q_j (rows of `queries`, M x d) computes out_j = sum_i w(q_j, p_i) v_i over the rows p_i of
// `points` (N x d), with v_i the rows of `values` (N x c) or, when `values` is null, [p_i | 1] (c = d + 1).
// `out` (M x c) is accumulated in float64 whatever Scalar is; with max_shift the sums are scaled by exp(s_j)
// and `shift` (optional) receives s_j (0 without max_shift). threads = 0 uses DefaultComputeThreads(). Requires sigma > 0 and matching shapes.
template <typename Scalar>
void KernelSums(const PointsT<Scalar>& queries, const PointsT<Scalar>& points, const PointsT<Scalar>* values,
                const KernelSumsOptions& options, KernelWorkspace<Scalar>& ws, int threads, Points* out,
                Eigen::VectorXd* shift = nullptr);

// Kernel-weighted means of 002 Eq. 17: out_j = sum_i K(q_j, p_i) p_i / sum_i K(q_j, p_i), Gaussian K with
// bandwidth sigma, max-shifted so that a query far from every point gets the nearest point, not 0/0.
template <typename Scalar>
void GaussianWeightedMeans(const PointsT<Scalar>& queries, const PointsT<Scalar>& points, double sigma,
                           KernelWorkspace<Scalar>& ws, int threads, Points* out);

}  // namespace sampled

#endif  // SAMPLED_CORE_KERNELS_KERNEL_SUMS_H_
