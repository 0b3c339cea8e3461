// The "cfd" metric: the mean characteristic function distance of 002 Sec. 7.2.
#include <cmath>

#include "core/common/rng.h"
#include "core/common/status_macros.h"
#include "core/metrics/distances.h"
#include "core/metrics/metric.h"

namespace sampled {
namespace {

constexpr int64_t kRowBlock = 1024;

// Real and imaginary parts of the empirical characteristic function at each frequency (K each).
void EmpiricalCharacteristicFunction(const Points& x, const Points& frequencies, VectorXd* re, VectorXd* im) {
  const int64_t k = frequencies.rows();
  re->setZero(k);
  im->setZero(k);
  MatrixXd phase;
  for (int64_t i0 = 0; i0 < x.rows(); i0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, x.rows() - i0);
    phase.noalias() = x.middleRows(i0, rows) * frequencies.transpose();
    *re += phase.array().cos().colwise().sum().matrix().transpose();
    *im += phase.array().sin().colwise().sum().matrix().transpose();
  }
  *re /= static_cast<double>(x.rows());
  *im /= static_cast<double>(x.rows());
}

class Cfd final : public Metric {
 public:
  const std::string& name() const override {
    static const std::string kName = "cfd";
    return kName;
  }
  const std::string& description() const override {
    static const std::string kDoc =
        "mean characteristic function distance at K frequencies ~ N(0, I), 002 Sec. 7.2 (seeded)";
    return kDoc;
  }
  bool Supports(const Target& target) const override {
    return target.samples() != nullptr || target.can_sample();
  }
  absl::StatusOr<double> Compute(const Points& samples, const Target& target,
                                 const MetricOptions& options) const override {
    SAMPLED_RETURN_IF_ERROR(CheckSamples(samples, target, 1));
    Rng rng(options.seed);
    const Points frequencies = CfdFrequencies(options.frequencies, target.dim(), options.seed);
    Points reference;
    SAMPLED_RETURN_IF_ERROR(target.ReferenceSamples(
        options.reference_size > 0 ? options.reference_size : samples.rows(), rng, &reference));
    return CharacteristicFunctionDistance(samples, reference, frequencies);
  }
};

}  // namespace

Points CfdFrequencies(int64_t k, int64_t d, uint64_t seed) {
  // A stream distinct from the reference draws made with the same seed.
  Rng rng(seed ^ 0x9e3779b97f4a7c15ULL);
  Points f(k, d);
  rng.FillNormal(f.data(), f.size());
  return f;
}

double CharacteristicFunctionDistance(const Points& x, const Points& y, const Points& frequencies) {
  VectorXd xr, xi, yr, yi;
  EmpiricalCharacteristicFunction(x, frequencies, &xr, &xi);
  EmpiricalCharacteristicFunction(y, frequencies, &yr, &yi);
  return ((xr - yr).array().square() + (xi - yi).array().square()).sqrt().mean();
}

const Metric& CharacteristicFunctionDistanceMetric() {
  static const Cfd kMetric;
  return kMetric;
}

}  // namespace sampled
