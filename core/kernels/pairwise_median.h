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

// The median of |p_i - p_j|^2 over a fixed random subset of pairs: the estimator behind the flows' median
// bandwidth rules (the exact median cost 5.3 ms at 4096 points, most of a float32 SD step). The subset
// holds `pairs` pairs i != j drawn uniformly (with replacement) from `seed` the first time a point count is
// seen, and is reused while the count stays, so the estimate is a smooth function of the points that
// consumes no randomness per call. When the count has no more than `pairs` distinct pairs, the exact median
// is returned instead. The lower median of the subset, as the exact rule takes it. Its error against the
// exact median: docs/performance.md ("The median bandwidth"). Not thread-safe.
class SubsetPairMedian {
 public:
  SubsetPairMedian(int64_t pairs, uint64_t seed) : pairs_(pairs), seed_(seed) {}

  // The estimate for the rows of `points` (0 for fewer than two points).
  double operator()(const Points& points);

  // True when `n` points have more distinct pairs than the subset holds (the estimate is not exact).
  bool subsampled(int64_t n) const { return n * (n - 1) / 2 > pairs_; }

 private:
  int64_t pairs_;
  uint64_t seed_;
  int64_t drawn_for_ = -1;                  // the point count the subset was drawn for
  std::vector<int32_t> first_, second_;     // the pairs
  std::vector<double> d2_;
  PairwiseMedianWorkspace<double> exact_ws_;
};

}  // namespace sampled

#endif  // SAMPLED_CORE_KERNELS_PAIRWISE_MEDIAN_H_
