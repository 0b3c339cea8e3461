// The "energy" metric: the energy distance (Szekely & Rizzo).
#include <cmath>
#include <vector>

#include "core/common/parallel.h"
#include "core/common/status_macros.h"
#include "core/metrics/distances.h"
#include "core/metrics/metric.h"

namespace sampled {
namespace {

constexpr int64_t kRowBlock = 64;

// sum_{i,j} |a_i - b_j|, per-block partial sums added in block order (deterministic).
double SumDistances(const Points& a, const Points& b, int threads) {
  const int64_t blocks = (a.rows() + kRowBlock - 1) / kRowBlock;
  std::vector<double> partial(blocks, 0.0);
  ParallelFor(a.rows(), kRowBlock, threads, [&](int64_t begin, int64_t end, int) {
    double s = 0;
    for (int64_t i = begin; i < end; ++i) s += (b.rowwise() - a.row(i)).rowwise().norm().sum();
    partial[begin / kRowBlock] = s;
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

class Energy final : public Metric {
 public:
  const std::string& name() const override {
    static const std::string kName = "energy";
    return kName;
  }
  const std::string& description() const override {
    static const std::string kDoc = "energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (U-statistics)";
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
    return EnergyDistance(samples, reference, options.threads);
  }
};

}  // namespace

double EnergyDistance(const Points& x, const Points& y, int threads) {
  const double n = static_cast<double>(x.rows()), m = static_cast<double>(y.rows());
  const double xy = SumDistances(x, y, threads) / (n * m);
  const double xx = SumDistances(x, x, threads) / (n * (n - 1));  // the diagonal adds 0
  const double yy = SumDistances(y, y, threads) / (m * (m - 1));
  return 2.0 * xy - xx - yy;
}

const Metric& EnergyDistanceMetric() {
  static const Energy kMetric;
  return kMetric;
}

}  // namespace sampled
