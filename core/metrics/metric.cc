#include "core/metrics/metric.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"

namespace sampled {

const std::vector<const Metric*>& AllMetrics() {
  static const std::vector<const Metric*> kMetrics = {
      &MmdMetric(), &EnergyDistanceMetric(), &CharacteristicFunctionDistanceMetric(),
      &KernelSteinDiscrepancyMetric()};
  return kMetrics;
}

absl::StatusOr<const Metric*> FindMetric(const std::string& name) {
  std::vector<std::string> names;
  for (const Metric* m : AllMetrics()) {
    if (m->name() == name) return m;
    names.push_back(m->name());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown metric '", name, "'; known metrics: ", absl::StrJoin(names, ", ")));
}

std::vector<std::string> DefaultMetrics(const Target& target) {
  if (target.samples() != nullptr) return {"cfd", "mmd"};
  if (target.has_density()) return {"ksd"};
  return {};
}

absl::StatusOr<std::map<std::string, double>> ComputeMetrics(const std::vector<std::string>& names,
                                                             const Points& samples, const Target& target,
                                                             const MetricOptions& options) {
  std::map<std::string, double> out;
  for (const std::string& name : names) {
    SAMPLED_ASSIGN_OR_RETURN(const Metric* m, FindMetric(name));
    SAMPLED_ASSIGN_OR_RETURN(out[name], m->Compute(samples, target, options));
  }
  return out;
}

absl::Status CheckSamples(const Points& samples, const Target& target, int64_t min_rows) {
  if (samples.cols() != target.dim()) {
    return absl::InvalidArgumentError(absl::StrCat("samples have dimension ", samples.cols(),
                                                   " but the target has dimension ", target.dim()));
  }
  if (samples.rows() < min_rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("need at least ", min_rows, " samples, got ", samples.rows()));
  }
  return absl::OkStatus();
}

}  // namespace sampled
