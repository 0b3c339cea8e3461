// The one interface every sample-quality metric implements, and the registry of built-in metrics
// (mmd, energy, cfd, ksd). A new metric is a new file plus one line in metric.cc.
#ifndef SAMPLED_CORE_METRICS_METRIC_H_
#define SAMPLED_CORE_METRICS_METRIC_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/points.h"
#include "core/targets/target.h"

namespace sampled {

struct MetricOptions {
  // Seeds the CFD frequencies and any exact draws from a density target.
  uint64_t seed = 0;
  // Gaussian-kernel bandwidth h of the MMD (k = exp(-|x-y|^2 / (2 h^2))); unset: the median heuristic,
  // h = median pairwise distance of the pooled samples.
  std::optional<double> bandwidth;
  // Number of exact draws used as the reference for a density target that can sample; 0: as many as
  // the samples being evaluated.
  int64_t reference_size = 0;
  // Number of CFD frequencies (002 Sec. 7.2 uses 256).
  int64_t frequencies = 256;
  int threads = 0;
};

// Thread-safe: Compute is const and keeps no state.
class Metric {
 public:
  virtual ~Metric() = default;
  virtual const std::string& name() const = 0;
  virtual const std::string& description() const = 0;
  // Whether the metric can be computed against `target` (sample metrics need data or an exact sampler,
  // ksd needs a score).
  virtual bool Supports(const Target& target) const = 0;
  // The metric between `samples` (N x d) and `target`. INVALID_ARGUMENT for a dimension mismatch or too
  // few samples; FAILED_PRECONDITION when the target does not support the metric.
  virtual absl::StatusOr<double> Compute(const Points& samples, const Target& target,
                                         const MetricOptions& options) const = 0;
};

// Every built-in metric, in a fixed order.
const std::vector<const Metric*>& AllMetrics();
// INVALID_ARGUMENT naming the known metrics when `name` is unknown.
absl::StatusOr<const Metric*> FindMetric(const std::string& name);
// The metrics a flow reports by default against `target`: cfd and mmd for sample targets, ksd for
// density targets.
std::vector<std::string> DefaultMetrics(const Target& target);

// Computes `names` (all must be known and supported) and returns name -> value.
absl::StatusOr<std::map<std::string, double>> ComputeMetrics(const std::vector<std::string>& names,
                                                             const Points& samples, const Target& target,
                                                             const MetricOptions& options);

// The metrics, one per file.
const Metric& MmdMetric();
const Metric& EnergyDistanceMetric();
const Metric& CharacteristicFunctionDistanceMetric();
const Metric& KernelSteinDiscrepancyMetric();

// Shared validation: INVALID_ARGUMENT unless samples has >= min_rows rows and target.dim() columns.
absl::Status CheckSamples(const Points& samples, const Target& target, int64_t min_rows);

}  // namespace sampled

#endif  // SAMPLED_CORE_METRICS_METRIC_H_
