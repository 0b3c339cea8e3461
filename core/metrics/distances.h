// The statistical distances behind the metrics, as plain functions on point sets (rows are points).
// All are deterministic for fixed inputs and thread counts do not change their values.
#ifndef SAMPLED_CORE_METRICS_DISTANCES_H_
#define SAMPLED_CORE_METRICS_DISTANCES_H_

#include <cstdint>

#include "core/common/points.h"

namespace sampled {

// Unbiased MMD^2 (Gretton et al. 2012, U-statistics within each sample) with the Gaussian kernel
// k(a, b) = exp(-|a - b|^2 / (2 h^2)). Needs >= 2 rows in each sample.
double UnbiasedMmd2(const Points& x, const Points& y, double bandwidth, int threads = 0);

// The median heuristic: the median pairwise distance of the pooled rows of x and y (diagonal excluded).
double MedianHeuristicBandwidth(const Points& x, const Points& y, int threads = 0);

// Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'|, the within-sample means over distinct pairs.
double EnergyDistance(const Points& x, const Points& y, int threads = 0);

// K frequencies omega_k ~ N(0, I_d) drawn from `seed` (002 Sec. 7.2 uses K = 256).
Points CfdFrequencies(int64_t k, int64_t d, uint64_t seed);

// Mean characteristic function distance of 002 Sec. 7.2:
// (1/K) sum_k | mean_i exp(i omega_k.x_i) - mean_j exp(i omega_k.y_j) |.
double CharacteristicFunctionDistance(const Points& x, const Points& y, const Points& frequencies);

struct KsdValues {
  double v_statistic;  // (1/n^2) sum_{i,j} k_p(x_i, x_j)   (biased, >= 0)
  double u_statistic;  // (1/(n(n-1))) sum_{i != j} k_p(x_i, x_j)   (unbiased estimate of KSD^2)
};

// Kernel Stein discrepancy with the IMQ base kernel k(a, b) = (c^2 + |a - b|^2)^beta (Gorham & Mackey
// 2017; c = 1, beta = -1/2 by default), from the samples x and the target's scores at them.
KsdValues ImqKernelSteinDiscrepancy(const Points& x, const Points& scores, double c = 1.0,
                                    double beta = -0.5, int threads = 0);

}  // namespace sampled

#endif  // SAMPLED_CORE_METRICS_DISTANCES_H_
