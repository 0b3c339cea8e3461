// The median of pairwise squared distances within a point set, the statistic behind the median bandwidth
// rules (002 footnote 15, Liu & Wang's SVGD rule, the MMD metric's default bandwidth). Exact, without
// holding the N^2/2 distances: a sample of pairs brackets the median, one SIMD sweep counts the distances
// below the bracket and gathers those inside, and the median is selected among them; a radix select over
// the distances' bit patterns answers when the bracket misses.
#ifndef SAMPLED_CORE_KERNELS_PAIRWISE_MEDIAN_H_
#define SAMPLED_CORE_KERNELS_PAIRWISE_MEDIAN_H_

#include <cstdint>
#include <vector>

#include "core/common/points.h"

namespace sampled {

// Scratch for MedianPairwiseSquaredDistance; reuse it so that steady-state calls allocate nothing.
// Not thread-safe.
template <typename Scalar>
struct PairwiseMedianWorkspace {
  std::vector<std::vector<uint32_t>> histograms;  // one per thread
  std::vector<std::vector<Scalar>> candidates;     // one per thread
  std::vector<Scalar> merged;
  PointsT<Scalar> points_t;
  VectorT<Scalar> norms;
  std::vector<PointsT<Scalar>> tiles;              // one per thread
  std::vector<uint64_t> below;                     // one per thread
  std::vector<size_t> counts;                      // candidates gathered, one per thread
  // Size the candidate buffers for the expected count up front (for workspaces reused step after step).
  bool presize = true;
};

// The lower median (the element of rank floor((P-1)/2) in ascending order, as torch.median returns) of
// the P = n(n-1)/2 squared distances |p_i - p_j|^2, i < j, between the rows of `points`, computed in
// Scalar precision. Returns 0 when there are fewer than two points. threads = 0 uses the default.
template <typename Scalar>
double MedianPairwiseSquaredDistance(const PointsT<Scalar>& points, int threads,
                                     PairwiseMedianWorkspace<Scalar>& ws);

// Same, allocating its own workspace (for one-off uses such as metrics).
double MedianPairwiseSquaredDistance(const Points& points, int threads = 0);

}  // namespace sampled

#endif  // SAMPLED_CORE_KERNELS_PAIRWISE_MEDIAN_H_
