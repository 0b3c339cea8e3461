// Helpers for the papers' experiments (ctest label "slow"): targets, runs and table printing.
#ifndef SAMPLED_TESTS_EXPERIMENTS_EXPERIMENT_UTIL_H_
#define SAMPLED_TESTS_EXPERIMENTS_EXPERIMENT_UTIL_H_

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

}  // namespace sampled::experiments

#endif  // SAMPLED_TESTS_EXPERIMENTS_EXPERIMENT_UTIL_H_
