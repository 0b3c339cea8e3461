// The "mmd" metric: unbiased MMD^2 with a Gaussian kernel.
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/kernels/kernel_sums.h"
#include "core/kernels/pairwise_median.h"
#include "core/metrics/distances.h"
#include "core/metrics/metric.h"

namespace sampled {
namespace {

// sum_{i,j} k(a_i, b_j), accumulated row by row in a fixed order.
double KernelSum(const Points& a, const Points& b, double bandwidth, KernelWorkspace<double>& ws,
                 int threads) {
  const Points ones = Points::Ones(b.rows(), 1);
  Points rows;
  KernelSumsOptions o;
  o.sigma = bandwidth;
  KernelSums(a, b, &ones, o, ws, threads, &rows);
  return rows.sum();
}

class Mmd final : public Metric {
 public:
  const std::string& name() const override {
    static const std::string kName = "mmd";
    return kName;
  }
  const std::string& description() const override {
    static const std::string kDoc =
        "unbiased MMD^2, Gaussian kernel, bandwidth = median pairwise distance of the pooled samples "
        "unless given";
    return kDoc;
  }
  bool Supports(const Target& target) const override {
    return target.samples() != nullptr || target.can_sample();
  }
  absl::StatusOr<double> Compute(const Points& samples, const Target& target,
                                 const MetricOptions& options) const override {
    SAMPLED_RETURN_IF_ERROR(CheckSamples(samples, target, 2));
    Rng rng(options.seed);
    Points reference;
    SAMPLED_RETURN_IF_ERROR(target.ReferenceSamples(
        options.reference_size > 0 ? options.reference_size : samples.rows(), rng, &reference));
    if (reference.rows() < 2) return absl::InvalidArgumentError("the target needs at least 2 samples");
    double h = options.bandwidth.has_value() ? *options.bandwidth
                                             : MedianHeuristicBandwidth(samples, reference, options.threads);
    if (!(h > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MMD bandwidth must be > 0 (got ", h, "; all samples coincide: give a bandwidth)"));
    }
    return UnbiasedMmd2(samples, reference, h, options.threads);
  }
};

}  // namespace

double UnbiasedMmd2(const Points& x, const Points& y, double bandwidth, int threads) {
  KernelWorkspace<double> ws;
  const double n = static_cast<double>(x.rows()), m = static_cast<double>(y.rows());
  // The kernel is 1 on the diagonal: remove n (resp. m) for the U-statistics.
  const double kxx = (KernelSum(x, x, bandwidth, ws, threads) - n) / (n * (n - 1));
  const double kyy = (KernelSum(y, y, bandwidth, ws, threads) - m) / (m * (m - 1));
  const double kxy = KernelSum(x, y, bandwidth, ws, threads) / (n * m);
  return kxx + kyy - 2.0 * kxy;
}

double MedianHeuristicBandwidth(const Points& x, const Points& y, int threads) {
  Points pooled(x.rows() + y.rows(), x.cols());
  pooled << x, y;
  return std::sqrt(MedianPairwiseSquaredDistance(pooled, threads));
}

const Metric& MmdMetric() {
  static const Mmd kMetric;
  return kMetric;
}

}  // namespace sampled
