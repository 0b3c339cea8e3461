// Helpers for the papers' experiments (ctest label "slow"): targets, runs and table printing.
#ifndef SAMPLED_TESTS_EXPERIMENTS_EXPERIMENT_UTIL_H_
#define SAMPLED_TESTS_EXPERIMENTS_EXPERIMENT_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/common/rng.h"
#include "core/flows/flow.h"
#include "core/flows/flow_state.h"
#include "core/kernels/pairwise_median.h"
#include "core/metrics/distances.h"
#include "core/targets/empirical_target.h"
#include "core/targets/target_family.h"

namespace sampled::experiments {

inline std::shared_ptr<const Target> DataTarget(const Points& x) {
  return std::shared_ptr<const Target>(*EmpiricalTarget::Create(x));
}

inline std::shared_ptr<const Target> Family(const std::string& family, int64_t dim, const ParamMap& params) {
  auto t = CreateAnalyticTarget(family, dim, params);
  if (!t.ok()) {
    std::fprintf(stderr, "%s\n", t.status().ToString().c_str());
    std::abort();
  }
  return std::shared_ptr<const Target>(*std::move(t));
}

inline Points Draw(const Target& t, int64_t n, Rng& rng) {
  Points out;
  if (!t.Sample(n, rng, &out).ok()) std::abort();
  return out;
}

struct MeanError {
  double mean = 0, error = 0;  // error: standard error of the mean
};

inline MeanError Summarise(const std::vector<double>& v) {
  MeanError m;
  for (double x : v) m.mean += x;
  m.mean /= v.size();
  double var = 0;
  for (double x : v) var += (x - m.mean) * (x - m.mean);
  m.error = v.size() > 1 ? std::sqrt(var / (v.size() - 1) / v.size()) : 0.0;
  return m;
}

// MMD as we read 000's authors to report it: sqrt(|unbiased MMD^2|) with the Gaussian kernel
// exp(-|x - y|^2 / median D^2), i.e. h^2 = median D^2 / 2, the median over `median_of` (diagonal excluded).
// (The absolute value: under it our converged runs reach the authors' floor of about 0.06 in table B; with
// the estimate clamped at 0 they read 0.)
inline double AuthorsMmd(const Points& x, const Points& y, const Points& median_of) {
  const double h = std::sqrt(MedianPairwiseSquaredDistance(median_of) / 2.0);
  return std::sqrt(std::abs(UnbiasedMmd2(x, y, h)));
}

inline Points Stack(const Points& a, const Points& b) {
  Points s(a.rows() + b.rows(), a.cols());
  s << a, b;
  return s;
}

// Nearest-neighbour distances from each row of `from` to the rows of `to` (skipping the same index when
// `same` is set): 002 App. C.3's check that synthetic points do not collapse onto the data.
inline std::vector<double> NearestDistances(const Points& from, const Points& to, bool same) {
  std::vector<double> out;
  for (int64_t i = 0; i < from.rows(); ++i) {
    double best = 1e300;
    for (int64_t j = 0; j < to.rows(); ++j) {
      if (same && i == j) continue;
      best = std::min(best, (from.row(i) - to.row(j)).squaredNorm());
    }
    out.push_back(std::sqrt(best));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The q-quantile of sorted values (the nearest rank below).
inline double Quantile(const std::vector<double>& sorted, double q) {
  return sorted[static_cast<size_t>(q * (sorted.size() - 1))];
}

}  // namespace sampled::experiments

#endif  // SAMPLED_TESTS_EXPERIMENTS_EXPERIMENT_UTIL_H_
