#include "core/kernels/kernel_sums.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/common/parallel.h"
#include "core/kernels/simd_math.h"

namespace sampled {
namespace {

namespace ei = Eigen::internal;

// Largest dimension the fused SIMD path handles for the Gaussian kernel (above, the GEMM path is faster),
// and the most value columns it accumulates.
constexpr int kMaxFusedDim = 8;
constexpr int64_t kMaxFusedValues = 64;
// SIMD path: rows of queries per parallel task, and points per block of weights (fits L1 with the
// coordinates it reads).
constexpr int64_t kFusedQueryGrain = 16;
constexpr int64_t kFusedPointBlock = 512;
// GEMM path tile: a query block of kQueryBlock rows against kPointBlock points (a float tile is 256 KiB,
// a double tile 512 KiB: both stay in a 1 MiB L2 while they are weighted and multiplied).
constexpr int64_t kQueryBlock = 128;
constexpr int64_t kPointBlock = 512;

template <typename Matrix>
void EnsureSize(Matrix& m, int64_t rows, int64_t cols) {
  if (m.rows() != rows || m.cols() != cols) m.resize(rows, cols);
}

// Fused path ---------------------------------------------------------------------------------------------
//
// Points live in padded SoA rows (coords: d x n_padded, zero padding). Only the last packet holds padding;
// its lanes past n are masked out of every minimum and every weight.

template <typename Packet>
EIGEN_ALWAYS_INLINE Packet TailMask(int64_t valid_lanes) {
  using Scalar = typename ei::unpacket_traits<Packet>::type;
  return ei::pcmp_lt(ei::plset<Packet>(Scalar(0)), ei::pset1<Packet>(static_cast<Scalar>(valid_lanes)));
}

// The weight of squared distance d2. Gaussian: `scale` is -1/(2 s^2) (times log2(e) in float, for 2^x),
// `shift` the query's minimum squared distance; inverse distance: 1/sqrt(d2), 0 at d2 = 0.
template <typename Scalar, PairKernel K>
EIGEN_ALWAYS_INLINE typename ei::packet_traits<Scalar>::type Weight(const typename ei::packet_traits<Scalar>::type& d2,
                                                                    const typename ei::packet_traits<Scalar>::type& shift,
                                                                    const typename ei::packet_traits<Scalar>::type& scale) {
  using Packet = typename ei::packet_traits<Scalar>::type;
  if constexpr (K == PairKernel::kGaussian) {
    // x <= 0 once the shift is the minimum; below kMaxLagExponent while the running shift lags.
    const Packet x = ei::pmul(ei::psub(d2, shift), scale);
    if constexpr (std::is_same_v<Scalar, float>) {
      return FastExp2(x);
    } else {
      return ei::pexp(x);
    }
  } else {
    const Packet zero = ei::pzero(d2);
    return ei::pand(ei::prsqrt(d2), ei::pcmp_lt(zero, d2));
  }
}

template <typename Scalar>
Scalar WeightScale(const KernelSumsOptions& o) {
  const double c = -1.0 / (2.0 * o.sigma * o.sigma);
  // float weights are computed as powers of 2.
  return static_cast<Scalar>(std::is_same_v<Scalar, float> ? c * 1.4426950408889634 : c);
}

// Squared distance from q to the points [j, j + P) (D = 0: runtime dimension).
template <typename Scalar, int D>
EIGEN_ALWAYS_INLINE typename ei::packet_traits<Scalar>::type SquaredDistance(
    const Scalar* coords, int64_t stride, int dim, const typename ei::packet_traits<Scalar>::type* qk,
    const Scalar* q, int64_t j) {
  using Packet = typename ei::packet_traits<Scalar>::type;
  Packet d2 = ei::pzero(Packet());
  if constexpr (D > 0) {
    for (int k = 0; k < D; ++k) {
      const Packet diff = ei::psub(ei::ploadu<Packet>(coords + k * stride + j), qk[k]);
      d2 = ei::pmadd(diff, diff, d2);
    }
  } else {
    for (int k = 0; k < dim; ++k) {
      const Packet diff = ei::psub(ei::ploadu<Packet>(coords + k * stride + j), ei::pset1<Packet>(q[k]));
      d2 = ei::pmadd(diff, diff, d2);
    }
  }
  return d2;
}

// The running max-shift. The shift of a query is the smallest squared distance seen so far; weights are
// exp((d2 - shift) * scale) (in float, powers of 2), so the nearest point so far has weight 1 and nothing
// underflows to 0/0. When a later block of points holds a nearer one, the sums so far are rescaled by
// RescaleFactor and the shift moves down to it: one pass over the points, and the final shift is the
// minimum over all of them, as a separate minimum pass would give.
template <typename Scalar>
double RescaleFactor(double old_shift, double new_shift, double scale) {
  const double x = (old_shift - new_shift) * scale;  // <= 0
  return std::is_same_v<Scalar, float> ? std::exp2(x) : std::exp(x);
}

// Largest exponent (log2 units in float, natural in double) a weight may reach while the shift lags
// behind the true minimum. A block's packet sums hold up to 512 weights times coordinates: at 2^64 (float)
// they overflow only for coordinates beyond 3.6e16, at e^300 (double) beyond 1e175. A block whose sums are
// not finite all the same is recomputed with its own minimum as the shift. (2^32 recomputed the first
// block of many far queries: an SD step at 1024 x 1024 with the median bandwidth ran 20-30% longer.)
template <typename Scalar>
constexpr double kMaxLagExponent = std::is_same_v<Scalar, float> ? 64.0 : 300.0;

// Values [p | 1] (values == nullptr) for d <= 8: one pass, the d + 1 sums in registers. Packet sums are
// moved into float64 every kFusedPointBlock points. With the max-shift, a block's weights use the shift
// from before the block (they may exceed 1) while the block's minimum is taken alongside; the rare block
// whose minimum lies so far below the shift that its weights could overflow (kMaxLagExponent) is
// recomputed with the new shift.
template <typename Scalar, int D, PairKernel K>
void FusedImplicitRows(const PointsT<Scalar>& queries, int64_t q0, int64_t q1, int64_t n, const KernelSumsOptions& o,
                       KernelWorkspace<Scalar>& ws, Points* out, Eigen::VectorXd* shift) {
  using Packet = typename ei::packet_traits<Scalar>::type;
  constexpr int P = ei::unpacket_traits<Packet>::size;
  const Scalar* coords = ws.coords.data();
  const int64_t stride = ws.coords.cols();
  const Scalar scale_s = WeightScale<Scalar>(o);
  const Packet scale = ei::pset1<Packet>(scale_s);
  const bool shifted = K == PairKernel::kGaussian && o.max_shift;
  const Packet inf = ei::pset1<Packet>(std::numeric_limits<Scalar>::infinity());
  const int64_t full = n / P * P;
  for (int64_t i = q0; i < q1; ++i) {
    const Scalar* q = queries.data() + i * D;
    Packet qk[D];
    for (int k = 0; k < D; ++k) qk[k] = ei::pset1<Packet>(q[k]);
    // Start from the distance to the first point.
    Scalar s_cur = 0;
    if (shifted && n > 0) {
      for (int k = 0; k < D; ++k) s_cur += (coords[k * stride] - q[k]) * (coords[k * stride] - q[k]);
    }
    double total[D + 1] = {};
    Packet acc[D + 1];
    Packet block_min;
    auto accumulate = [&](int64_t j, const Packet& s, const Packet& mask, bool masked) __attribute__((always_inline)) {
      Packet d2 = ei::pzero(Packet());
      Packet pk[D];
      for (int k = 0; k < D; ++k) {
        pk[k] = ei::ploadu<Packet>(coords + k * stride + j);
        const Packet diff = ei::psub(pk[k], qk[k]);
        d2 = ei::pmadd(diff, diff, d2);
      }
      Packet w = Weight<Scalar, K>(d2, s, scale);
      if (masked) {
        w = ei::pand(w, mask);
        d2 = ei::pselect(mask, d2, inf);
      }
      if (shifted) block_min = ei::pmin(block_min, d2);
      for (int k = 0; k < D; ++k) acc[k] = ei::pmadd(w, pk[k], acc[k]);
      acc[D] = ei::padd(acc[D], w);
    };
    // One block [b0, b1) of whole packets (plus the masked tail when `tail`), flushed into `total`.
    auto block = [&](int64_t b0, int64_t b1, bool tail) __attribute__((always_inline)) {
      for (int pass = 0; pass < 2; ++pass) {
        const Packet s = ei::pset1<Packet>(s_cur);
        for (int k = 0; k <= D; ++k) acc[k] = ei::pzero(Packet());
        block_min = inf;
        for (int64_t j = b0; j < b1; j += P) accumulate(j, s, ei::pzero(Packet()), false);
        if (tail) accumulate(full, s, TailMask<Packet>(n - full), true);
        const Scalar m = shifted ? ei::predux_min(block_min) : s_cur;
        double sums[D + 1];
        bool finite = true;
        for (int k = 0; k <= D; ++k) {
          sums[k] = static_cast<double>(ei::predux(acc[k]));
          finite = finite && std::isfinite(sums[k]);
        }
        const bool moved = m < s_cur;
        // Weights of this block may have overflowed: recompute it against the moved shift.
        const bool redo = moved && (!finite || static_cast<double>(s_cur - m) * -static_cast<double>(scale_s) >
                                                   kMaxLagExponent<Scalar>);
        if (!redo) {
          for (int k = 0; k <= D; ++k) total[k] += sums[k];
        }
        if (moved) {
          const double f = RescaleFactor<Scalar>(s_cur, m, scale_s);
          for (int k = 0; k <= D; ++k) total[k] *= f;
          s_cur = m;
        }
        if (!redo) return;
      }
    };
    for (int64_t b0 = 0; b0 < full; b0 += kFusedPointBlock) {
      const int64_t b1 = std::min(full, b0 + kFusedPointBlock);
      block(b0, b1, false);
    }
    if (full < n) block(full, full, true);
    for (int k = 0; k <= D; ++k) (*out)(i, k) = total[k];
    if (shift != nullptr) (*shift)(i) = shifted ? static_cast<double>(s_cur) / (2.0 * o.sigma * o.sigma) : 0.0;
  }
}

// Explicit values (c columns, padded SoA rows in ws.values) or d > 8: weights of a block of points into a
// buffer, then the c sums of the block as dot products.
template <typename Scalar, int D, PairKernel K>
void FusedBlockRows(const PointsT<Scalar>& queries, int dim, int64_t q0, int64_t q1, int64_t n, int64_t c,
                    const KernelSumsOptions& o, KernelWorkspace<Scalar>& ws, typename KernelWorkspace<Scalar>::Thread& t,
                    Points* out, Eigen::VectorXd* shift) {
  using Packet = typename ei::packet_traits<Scalar>::type;
  constexpr int P = ei::unpacket_traits<Packet>::size;
  const Scalar* coords = ws.coords.data();
  const Scalar* values = ws.values.data();
  const int64_t stride = ws.coords.cols();
  const int64_t n_padded = (n + P - 1) / P * P;
  const Scalar scale_s = WeightScale<Scalar>(o);
  const Packet scale = ei::pset1<Packet>(scale_s);
  const bool shifted = K == PairKernel::kGaussian && o.max_shift;
  const Packet inf = ei::pset1<Packet>(std::numeric_limits<Scalar>::infinity());
  Scalar* w = t.weights.data();
  double acc[kMaxFusedValues];
  Packet qk[D > 0 ? D : 1];
  for (int64_t i = q0; i < q1; ++i) {
    const Scalar* q = queries.data() + i * dim;
    if constexpr (D > 0) {
      for (int k = 0; k < D; ++k) qk[k] = ei::pset1<Packet>(q[k]);
    }
    Scalar s_cur = std::numeric_limits<Scalar>::infinity();  // running shift (see RescaleFactor)
    std::fill(acc, acc + c, 0.0);
    for (int64_t p0 = 0; p0 < n_padded; p0 += kFusedPointBlock) {
      const int64_t np = std::min(kFusedPointBlock, n_padded - p0);
      if (shifted) {
        // The block's distances into the buffer and their minimum; then the weights in place.
        Packet mn = inf;
        for (int64_t j = 0; j < np; j += P) {
          Packet d2 = SquaredDistance<Scalar, D>(coords, stride, dim, qk, q, p0 + j);
          if (p0 + j + P > n) d2 = ei::pselect(TailMask<Packet>(n - (p0 + j)), d2, inf);
          mn = ei::pmin(mn, d2);
          ei::pstoreu(w + j, d2);
        }
        const Scalar m = ei::predux_min(mn);
        if (m < s_cur) {
          if (s_cur < std::numeric_limits<Scalar>::infinity()) {
            const double f = RescaleFactor<Scalar>(s_cur, m, scale_s);
            for (int64_t v = 0; v < c; ++v) acc[v] *= f;
          }
          s_cur = m;
        }
        const Packet s = ei::pset1<Packet>(s_cur);
        for (int64_t j = 0; j < np; j += P) {
          Packet wk = Weight<Scalar, K>(ei::ploadu<Packet>(w + j), s, scale);
          if (p0 + j + P > n) wk = ei::pand(wk, TailMask<Packet>(n - (p0 + j)));
          ei::pstoreu(w + j, wk);
        }
      } else {
        const Packet s = ei::pzero(Packet());
        for (int64_t j = 0; j < np; j += P) {
          Packet wk = Weight<Scalar, K>(SquaredDistance<Scalar, D>(coords, stride, dim, qk, q, p0 + j), s, scale);
          if (p0 + j + P > n) wk = ei::pand(wk, TailMask<Packet>(n - (p0 + j)));
          ei::pstoreu(w + j, wk);
        }
      }
      for (int64_t v = 0; v < c; ++v) {
        const Scalar* vals = values + v * stride + p0;
        Packet s0 = ei::pzero(Packet()), s1 = ei::pzero(Packet());
        int64_t j = 0;
        for (; j + 2 * P <= np; j += 2 * P) {
          s0 = ei::pmadd(ei::ploadu<Packet>(w + j), ei::ploadu<Packet>(vals + j), s0);
          s1 = ei::pmadd(ei::ploadu<Packet>(w + j + P), ei::ploadu<Packet>(vals + j + P), s1);
        }
        for (; j < np; j += P) s0 = ei::pmadd(ei::ploadu<Packet>(w + j), ei::ploadu<Packet>(vals + j), s0);
        acc[v] += static_cast<double>(ei::predux(ei::padd(s0, s1)));
      }
    }
    for (int64_t v = 0; v < c; ++v) (*out)(i, v) = acc[v];
    if (shift != nullptr) {
      (*shift)(i) = shifted && n > 0 ? static_cast<double>(s_cur) / (2.0 * o.sigma * o.sigma) : 0.0;
    }
  }
}

template <typename Scalar, PairKernel K>
void FusedDispatch(int d, bool implicit, const PointsT<Scalar>& queries, int64_t q0, int64_t q1, int64_t n,
                   int64_t c, const KernelSumsOptions& o, KernelWorkspace<Scalar>& ws,
                   typename KernelWorkspace<Scalar>::Thread& t, Points* out, Eigen::VectorXd* shift) {
  switch (d) {
#define SAMPLED_FUSED_CASE(D)                                                                        \
  case D:                                                                                            \
    if (implicit) return FusedImplicitRows<Scalar, D, K>(queries, q0, q1, n, o, ws, out, shift);     \
    return FusedBlockRows<Scalar, D, K>(queries, d, q0, q1, n, c, o, ws, t, out, shift);
    SAMPLED_FUSED_CASE(1)
    SAMPLED_FUSED_CASE(2)
    SAMPLED_FUSED_CASE(3)
    SAMPLED_FUSED_CASE(4)
    SAMPLED_FUSED_CASE(5)
    SAMPLED_FUSED_CASE(6)
    SAMPLED_FUSED_CASE(7)
    SAMPLED_FUSED_CASE(8)
#undef SAMPLED_FUSED_CASE
    default:
      return FusedBlockRows<Scalar, 0, K>(queries, d, q0, q1, n, c, o, ws, t, out, shift);
  }
}

// GEMM path ----------------------------------------------------------------------------------------------

template <typename Scalar>
void GemmRows(const PointsT<Scalar>& queries, const PointsT<Scalar>& points,
              const Eigen::Ref<const PointsT<Scalar>>& values,
              int64_t q0, int64_t q1, const KernelSumsOptions& o, KernelWorkspace<Scalar>& ws,
              typename KernelWorkspace<Scalar>::Thread& t, Points* out, Eigen::VectorXd* shift) {
  const int64_t n = points.rows(), nq = q1 - q0;
  const Scalar neg_inv_two_s2 = static_cast<Scalar>(-1.0 / (2.0 * o.sigma * o.sigma));
  const bool gaussian = o.kernel == PairKernel::kGaussian;
  auto qn = t.query_norms.head(nq);
  qn = queries.middleRows(q0, nq).rowwise().squaredNorm();
  const bool shifted = gaussian && o.max_shift;
  auto acc = t.acc.topRows(nq);
  acc.setZero();
  auto row_min = t.row_min.head(nq);  // the running shifts (see RescaleFactor)
  row_min.setConstant(std::numeric_limits<Scalar>::infinity());
  for (int64_t p0 = 0; p0 < n; p0 += kPointBlock) {
    const int64_t np = std::min(kPointBlock, n - p0);
    auto tile = t.tile.topLeftCorner(nq, np);
    tile.noalias() = queries.middleRows(q0, nq) * points.middleRows(p0, np).transpose();
    const auto pn = ws.point_norms.segment(p0, np).transpose().array();
    for (int64_t r = 0; r < nq; ++r) {
      auto row = tile.row(r).array();
      row = (qn(r) + pn - Scalar(2) * row).max(Scalar(0));  // squared distances
      if (gaussian) {
        Scalar s = 0;
        if (shifted) {
          const Scalar m = row.minCoeff();
          if (m < row_min[r]) {
            if (row_min[r] < std::numeric_limits<Scalar>::infinity()) {
              // Weights here are natural exponentials (Eigen's exp), in float as in double.
              acc.row(r) *= std::exp((static_cast<double>(row_min[r]) - m) * neg_inv_two_s2);
            }
            row_min[r] = m;
          }
          s = row_min[r];
        }
        row = ((row - s) * neg_inv_two_s2).exp();
      } else {
        row = (row > Scalar(0)).select(row.rsqrt(), Scalar(0));
      }
    }
    auto partial = t.partial.topRows(nq);
    partial.noalias() = tile * values.middleRows(p0, np);
    acc += partial.template cast<double>();
  }
  out->middleRows(q0, nq) = acc;
  if (shift != nullptr) {
    for (int64_t r = 0; r < nq; ++r) {
      (*shift)(q0 + r) =
          shifted && n > 0 ? static_cast<double>(row_min[r]) * -static_cast<double>(neg_inv_two_s2) : 0.0;
    }
  }
}

}  // namespace

template <typename Scalar>
void KernelSums(const PointsT<Scalar>& queries, const PointsT<Scalar>& points, const PointsT<Scalar>* values,
                const KernelSumsOptions& o, KernelWorkspace<Scalar>& ws, int threads, Points* out,
                Eigen::VectorXd* shift) {
  using Packet = typename ei::packet_traits<Scalar>::type;
  constexpr int P = ei::unpacket_traits<Packet>::size;
  const int64_t m = queries.rows(), n = points.rows(), d = points.cols();
  const int64_t c = values != nullptr ? values->cols() : d + 1;
  threads = ResolveThreads(threads);
  EnsureSize(*out, m, c);
  if (shift != nullptr && shift->size() != m) shift->resize(m);
  if (static_cast<int>(ws.threads.size()) < threads) ws.threads.resize(threads);
  // The inverse-distance kernel always takes the exact-difference path (see FusedWeights).
  const bool fused = c <= kMaxFusedValues && (d <= kMaxFusedDim || o.kernel == PairKernel::kInverseDistance);

  if (fused) {
    // Coordinates (and explicit values) as zero-padded SoA rows; the padding lanes are masked.
    const int64_t n_padded = (n + P - 1) / P * P;
    const bool implicit = values == nullptr && d <= kMaxFusedDim;
    // coords and values share one row stride (their column capacity), which only grows.
    const int64_t stride = std::max<int64_t>(ws.coords.cols(), n_padded);
    if (ws.coords.rows() < d || ws.coords.cols() != stride) ws.coords.resize(std::max<int64_t>(ws.coords.rows(), d), stride);
    ws.coords.topLeftCorner(d, n) = points.transpose();
    ws.coords.block(0, n, d, n_padded - n).setZero();
    if (!implicit) {
      if (ws.values.rows() < c || ws.values.cols() != stride) ws.values.resize(std::max<int64_t>(ws.values.rows(), c), stride);
      if (values != nullptr) {
        ws.values.topLeftCorner(c, n) = values->transpose();
      } else {
        ws.values.topLeftCorner(d, n) = points.transpose();
        ws.values.row(d).head(n).setOnes();
      }
      ws.values.block(0, n, c, n_padded - n).setZero();
    }
    for (auto& t : ws.threads) {
      if (static_cast<int64_t>(t.weights.size()) < kFusedPointBlock) t.weights.resize(kFusedPointBlock);
    }
    ParallelFor(m, kFusedQueryGrain, threads, [&](int64_t q0, int64_t q1, int ti) {
      if (o.kernel == PairKernel::kGaussian) {
        FusedDispatch<Scalar, PairKernel::kGaussian>(static_cast<int>(d), implicit, queries, q0, q1, n, c, o, ws,
                                                     ws.threads[ti], out, shift);
      } else {
        FusedDispatch<Scalar, PairKernel::kInverseDistance>(static_cast<int>(d), implicit, queries, q0, q1, n, c, o,
                                                            ws, ws.threads[ti], out, shift);
      }
    });
    return;
  }

  // GEMM path.
  if (values == nullptr) {
    if (ws.gemm_values.rows() < n || ws.gemm_values.cols() != d + 1) {
      ws.gemm_values.resize(std::max<int64_t>(ws.gemm_values.cols() == d + 1 ? ws.gemm_values.rows() : 0, n), d + 1);
    }
    ws.gemm_values.topLeftCorner(n, d) = points;
    ws.gemm_values.col(d).head(n).setOnes();
  }
  // Contiguous rows either way: binds without a copy.
  const Eigen::Ref<const PointsT<Scalar>> v =
      values != nullptr ? Eigen::Ref<const PointsT<Scalar>>(*values) : Eigen::Ref<const PointsT<Scalar>>(ws.gemm_values.topRows(n));
  if (ws.point_norms.size() < n) ws.point_norms.resize(n);
  ws.point_norms.head(n) = points.rowwise().squaredNorm();
  for (auto& t : ws.threads) {
    EnsureSize(t.tile, kQueryBlock, kPointBlock);
    EnsureSize(t.partial, kQueryBlock, c);
    EnsureSize(t.acc, kQueryBlock, c);
    if (t.query_norms.size() != kQueryBlock) t.query_norms.resize(kQueryBlock);
    if (t.row_min.size() != kQueryBlock) t.row_min.resize(kQueryBlock);
  }
  ParallelFor(m, kQueryBlock, threads, [&](int64_t q0, int64_t q1, int ti) {
    GemmRows(queries, points, v, q0, q1, o, ws, ws.threads[ti], out, shift);
  });
}

template <typename Scalar>
void GaussianWeightedMeans(const PointsT<Scalar>& queries, const PointsT<Scalar>& points, double sigma,
                           KernelWorkspace<Scalar>& ws, int threads, Points* out) {
  KernelSumsOptions o;
  o.kernel = PairKernel::kGaussian;
  o.sigma = sigma;
  o.max_shift = true;
  KernelSums<Scalar>(queries, points, nullptr, o, ws, threads, &ws.sums);
  const int64_t d = points.cols();
  EnsureSize(*out, queries.rows(), d);
  *out = ws.sums.leftCols(d).array().colwise() / ws.sums.col(d).array();
}

template void KernelSums<float>(const PointsF&, const PointsF&, const PointsF*, const KernelSumsOptions&,
                                KernelWorkspace<float>&, int, Points*, Eigen::VectorXd*);
template void KernelSums<double>(const Points&, const Points&, const Points*, const KernelSumsOptions&,
                                 KernelWorkspace<double>&, int, Points*, Eigen::VectorXd*);
template void GaussianWeightedMeans<float>(const PointsF&, const PointsF&, double, KernelWorkspace<float>&, int,
                                           Points*);
template void GaussianWeightedMeans<double>(const Points&, const Points&, double, KernelWorkspace<double>&, int,
                                            Points*);

}  // namespace sampled
