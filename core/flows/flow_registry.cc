#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/flows/flow.h"

namespace sampled {
namespace {

// The subset's pairs and distances take 16 bytes each: 1e7 pairs is 160 MB.
constexpr int64_t kMaxMedianPairs = 10'000'000;

bool IsSet(const FlowConfig& c, FlowField f) {
  switch (f) {
    case FlowField::kStepSize: return c.step_size.has_value();
    case FlowField::kOptimizer: return c.optimizer.has_value();
    case FlowField::kNoise: return c.noise.has_value();
    case FlowField::kBandwidth: return c.bandwidth.has_value();
    case FlowField::kBatchSize: return c.batch_size.has_value();
    case FlowField::kDType: return c.dtype.has_value();
    case FlowField::kMedianPairs: return c.median_pairs.has_value();
  }
  return false;
}

}  // namespace

const char* FlowFieldName(FlowField f) {
  switch (f) {
    case FlowField::kStepSize: return "step_size";
    case FlowField::kOptimizer: return "optimizer";
    case FlowField::kNoise: return "noise";
    case FlowField::kBandwidth: return "bandwidth";
    case FlowField::kBatchSize: return "batch_size";
    case FlowField::kDType: return "dtype";
    case FlowField::kMedianPairs: return "median_pairs";
  }
  return "?";
}

std::string FlowFieldDoc(FlowField f) {
  switch (f) {
    case FlowField::kStepSize: return "step size eta > 0 (default: the method's, e.g. 0.1 for sd, 1 for king)";
    case FlowField::kOptimizer: return "sgd (default) or adagrad";
    case FlowField::kNoise:
      return "noise rule (README, Flow methods); default: the method's (sd: follows the bandwidth; svgd, "
             "mmd-gaussian: none)";
    case FlowField::kBandwidth: return "kernel bandwidth rule (README, Flow methods); default: the method's median rule";
    case FlowField::kBatchSize: return "points per batch; 0 (default): the full batch";
    case FlowField::kDType:
      return "precision of the kernel sums: float32 (default; float64 accumulators) or float64 throughout";
    case FlowField::kMedianPairs:
      return absl::StrCat("pairs the median rules measure: a fixed random subset of ", kDefaultMedianPairs,
                          " (default); 0: every pair (exact)");
  }
  return "?";
}

const std::vector<const FlowMethod*>& FlowMethods() {
  static const std::vector<const FlowMethod*> kMethods = {
      &SdFlowMethod(),  &SvgdFlowMethod(), &LangevinFlowMethod(), &MmdFlowMethod(),
      &MmdGaussianFlowMethod(), &WgfFlowMethod(),  &MalaFlowMethod(),     &HmcFlowMethod(),
      &KingFlowMethod(), &NtKingFlowMethod(), &SteinKingFlowMethod(),
  };
  return kMethods;
}

absl::StatusOr<const FlowMethod*> FindFlowMethod(const std::string& name) {
  std::vector<std::string> names;
  for (const FlowMethod* m : FlowMethods()) {
    if (m->name == name) return m;
    names.push_back(m->name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown flow method '", name, "'; known methods: ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::unique_ptr<Flow>> CreateFlow(const FlowConfig& config,
                                                 std::shared_ptr<const Target> target) {
  absl::StatusOr<const FlowMethod*> method = FindFlowMethod(config.method);
  if (!method.ok()) return method.status();
  const FlowMethod& m = **method;
  if (m.needs_samples && target->samples() == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "method '", m.name, "' moves particles toward data and needs a sample target; this target is the '",
        target->family(), "' density: upload samples, or use a density method (svgd, langevin)"));
  }
  if (m.needs_density && !target->has_density()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "method '", m.name, "' needs the target's score and this target is defined by samples only: "
        "define an analytic target, or use a sample method (sd)"));
  }
  for (FlowField f : {FlowField::kStepSize, FlowField::kOptimizer, FlowField::kNoise, FlowField::kBandwidth,
                      FlowField::kBatchSize, FlowField::kDType, FlowField::kMedianPairs}) {
    if (IsSet(config, f) && m.fields.count(f) == 0) {
      std::vector<std::string> used;
      for (FlowField g : m.fields) used.push_back(FlowFieldName(g));
      return absl::InvalidArgumentError(absl::StrCat(
          "method '", m.name, "' does not use '", FlowFieldName(f), "'; it takes: ",
          used.empty() ? "no common parameters" : absl::StrJoin(used, ", ")));
    }
  }
  if (config.step_size.has_value() && !(*config.step_size > 0 && std::isfinite(*config.step_size))) {
    return absl::InvalidArgumentError(
        absl::StrCat("step_size must be a finite number > 0, got ", *config.step_size));
  }
  if (config.batch_size.has_value() && *config.batch_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be >= 0 (0 means the full batch), got ", *config.batch_size));
  }
  if (config.median_pairs.has_value() && !(*config.median_pairs >= 0 && *config.median_pairs <= kMaxMedianPairs)) {
    return absl::InvalidArgumentError(absl::StrCat("median_pairs must be in [0, ", kMaxMedianPairs,
                                                   "] (0: every pair, the exact median), got ",
                                                   *config.median_pairs));
  }
  if (config.schedule_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule_steps must be >= 0, got ", config.schedule_steps));
  }
  return m.create(config, std::move(target));
}

}  // namespace sampled
