// Gaussian-kernel sums between two point sets, computed in tiles: a call over N points and M queries never
// holds an M x N matrix, runs on several threads, and allocates nothing once its workspace has grown to
// the sizes in use. These are the inner loops of SD flow (002 Eq. 17-18), SVGD and the MMD metrics.
#ifndef SAMPLED_CORE_KERNELS_GAUSSIAN_KERNEL_SUMS_H_
#define SAMPLED_CORE_KERNELS_GAUSSIAN_KERNEL_SUMS_H_

#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "core/common/points.h"

namespace sampled {

// Scratch memory for the kernel sums: per-thread tiles plus per-call vectors. Reuse one workspace across
// calls (a flow keeps one) so steady-state calls allocate nothing. Not thread-safe: one caller at a time.
template <typename Scalar>
class KernelWorkspace {
 public:
  struct Thread {
    PointsT<Scalar> logits;       // tile of log kernel values, query rows x point columns
    Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> partial;  // tile @ values
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> acc;      // running sums
    VectorT<Scalar> query_norms;
    Eigen::VectorXd shift;
  };
  std::vector<Thread> threads;
  VectorT<Scalar> point_norms;   // |p_i|^2
  PointsT<Scalar> values;        // [points | 1] for weighted means
  PointsT<Scalar> points_t;      // points transposed (d x N) for the small-d distance path
  Points sums;                   // un-normalised weighted sums and normalisers
};

// For each query q_j (rows of `queries`, M x d) computes
//   out_j = sum_i exp(L_ji - s_j) v_i,   L_ji = -|q_j - p_i|^2 / (2 sigma^2),
// over the rows p_i of `points` (N x d) and v_i of `values` (N x c). With `max_shift`, s_j = max_i L_ji
// (so the nearest point has weight 1 and nothing underflows to 0/0), else s_j = 0. `out` (M x c) is
// accumulated in float64 whatever Scalar is; `shift` (if not null) receives s. threads = 0 uses
// DefaultComputeThreads(). Requires sigma > 0 and matching dimensions (programmer errors).
template <typename Scalar>
void GaussianKernelProduct(const PointsT<Scalar>& queries, const PointsT<Scalar>& points,
                           const PointsT<Scalar>& values, double sigma, bool max_shift,
                           KernelWorkspace<Scalar>& ws, int threads, Points* out,
                           Eigen::VectorXd* shift = nullptr);

// Kernel-weighted means of 002 Eq. 17: out_j = sum_i K(q_j, p_i) p_i / sum_i K(q_j, p_i) with
// K(q, p) = exp(-|q - p|^2 / (2 sigma^2)), normalised with a max shift so that queries far from every
// point get the nearest point's value instead of 0/0.
template <typename Scalar>
void GaussianWeightedMeans(const PointsT<Scalar>& queries, const PointsT<Scalar>& points, double sigma,
                           KernelWorkspace<Scalar>& ws, int threads, Points* out);

extern template class KernelWorkspace<float>;
extern template class KernelWorkspace<double>;

}  // namespace sampled

#endif  // SAMPLED_CORE_KERNELS_GAUSSIAN_KERNEL_SUMS_H_
