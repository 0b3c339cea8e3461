// Pieces the kernel flows share: centring and casting point sets into their compute precision, random
// batches, and the particle median for the bandwidth rules.
#ifndef SAMPLED_CORE_FLOWS_KERNEL_FLOW_UTIL_H_
#define SAMPLED_CORE_FLOWS_KERNEL_FLOW_UTIL_H_

#include <cstdint>
#include <numeric>
#include <vector>

#include "core/common/points.h"
#include "core/common/rng.h"
#include "core/kernels/pairwise_median.h"

namespace sampled {

// Copies the rows of `src` (all of them, or a random batch of `batch` rows when 0 < batch < rows) minus
// `center`, cast to Scalar, into `dst`. `perm` and `index` are scratch kept by the caller.
template <typename Scalar>
void GatherCentred(const Points& src, const Eigen::RowVectorXd& center, int64_t batch, Rng& rng,
                   std::vector<int64_t>& perm, std::vector<int64_t>& index, PointsT<Scalar>* dst) {
  const int64_t rows = src.rows();
  if (batch <= 0 || batch >= rows) {
    *dst = (src.rowwise() - center).template cast<Scalar>();
    return;
  }
  if (static_cast<int64_t>(perm.size()) != rows) {
    perm.resize(rows);
    std::iota(perm.begin(), perm.end(), 0);
  }
  index.resize(batch);
  rng.SampleWithoutReplacement(rows, batch, perm.data(), index.data());
  dst->resize(batch, src.cols());
  for (int64_t i = 0; i < batch; ++i) dst->row(i) = (src.row(index[i]) - center).template cast<Scalar>();
}

// The median rules look at no more than this many particles (a random subset beyond it): the cost grows
// with the square of the count, and 8192 points give the median of ~33 million pairs.
constexpr int64_t kMedianMaxPoints = 8192;

// Median pairwise squared distance of the particles (exact up to kMedianMaxPoints, then of a random
// subset), computed in Scalar.
template <typename Scalar>
struct ParticleMedian {
  PointsT<Scalar> points;
  std::vector<int64_t> perm, index;
  PairwiseMedianWorkspace<Scalar> ws;

  double operator()(const Points& y, const Eigen::RowVectorXd& center, Rng& rng, int threads) {
    GatherCentred(y, center, y.rows() > kMedianMaxPoints ? kMedianMaxPoints : 0, rng, perm, index, &points);
    return MedianPairwiseSquaredDistance(points, threads, ws);
  }
};

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_KERNEL_FLOW_UTIL_H_
