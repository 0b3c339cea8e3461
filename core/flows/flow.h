// The one interface every particle flow implements, the value a flow's state is, and the registry that
// maps a method name to its factory. A flow step lives in core/flows/<method>_flow.cc; a new method is a
// new file plus one line in flow_registry.cc.
#ifndef SAMPLED_CORE_FLOWS_FLOW_H_
#define SAMPLED_CORE_FLOWS_FLOW_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/points.h"
#include "core/common/rng.h"
#include "core/targets/target.h"

namespace sampled {

// Pairs in the median rules' random subset when a request gives no median_pairs (docs/performance.md:
// the estimate's error against the exact median, and its cost).
constexpr int64_t kDefaultMedianPairs = 16384;

// What a caller asks of a flow. Optional fields are "not given": each method uses the ones it
// documents and refuses the others, so a parameter that would be ignored is an error instead.
struct FlowConfig {
  std::string method;
  // Length of the run the schedules (cosine noise) span. 0: no schedule length (a cosine schedule is
  // then refused).
  int64_t schedule_steps = 0;
  std::optional<double> step_size;
  std::optional<std::string> optimizer;   // "sgd" | "adagrad"
  std::optional<std::string> noise;       // see schedule.h
  std::optional<std::string> bandwidth;   // see schedule.h
  std::optional<int64_t> batch_size;      // 0: full batch
  std::optional<DType> dtype;             // precision of the kernel sums; default float32 (kernel_flow_util.h)
  // Pairs the median bandwidth rules look at: a fixed random subset of this many (default
  // kDefaultMedianPairs); 0: every pair (the exact median).
  std::optional<int64_t> median_pairs;
  uint64_t seed = 0;
  // Method-specific options, by name (e.g. "leapfrog" -> "10"); unknown names are refused.
  std::map<std::string, std::string> options;
  // Threads for the kernel sums; 0: DefaultComputeThreads().
  int threads = 0;
};

// A flow's whole mutable state as a plain value: copy it to snapshot, serialise it to checkpoint.
struct FlowState {
  Points particles;         // M x d
  int64_t step = 0;         // steps taken so far
  Points optimizer_state;   // per-coordinate optimiser memory (AdaGrad); empty for SGD
  Rng rng;
  std::map<std::string, double> values;  // method scalars fixed during the run (e.g. an automatic step size)
};

// Statistics of one step. NaN marks "does not apply to this method".
struct StepStats {
  static constexpr double kNotApplicable = std::numeric_limits<double>::quiet_NaN();
  int64_t step = 0;                    // the step number after this step (1 for the first)
  double step_size = kNotApplicable;   // the step size used
  double mean_displacement = 0;        // mean over particles of |y_new - y_old|
  double max_displacement = 0;
  double bandwidth = kNotApplicable;   // kernel bandwidth sigma used
  double noise = kNotApplicable;       // injected noise level sigma used
  double acceptance_rate = kNotApplicable;
};

// A configured flow bound to its target, with the scratch memory its steps reuse. Not thread-safe: one
// job steps a flow at a time.
class Flow {
 public:
  virtual ~Flow() = default;
  // Advances `state` by one step and fills `stats`. On error (the step would make particles non-finite:
  // FAILED_PRECONDITION naming the step), `state` is left unchanged.
  virtual absl::Status Step(FlowState& state, StepStats* stats) = 0;
  // Checks what depends on the particles (e.g. a basis drawn from them); called once on the initial state.
  // INVALID_ARGUMENT naming the option that does not fit.
  virtual absl::Status CheckState(const FlowState& state) const { return absl::OkStatus(); }
};

// Fields of FlowConfig a method may use (besides method, seed, threads and schedule_steps).
enum class FlowField { kStepSize, kOptimizer, kNoise, kBandwidth, kBatchSize, kDType, kMedianPairs };
// "step_size", "optimizer", ... (the names used in messages and by the API).
const char* FlowFieldName(FlowField f);
// What the field does and its default, for listings (`samplectl flow methods`).
std::string FlowFieldDoc(FlowField f);

struct OptionDoc {
  std::string name;
  std::string doc;
};

struct FlowMethod {
  std::string name;
  std::string summary;
  bool needs_samples = false;   // runs on a data target
  bool needs_density = false;   // runs on a target with a score
  std::set<FlowField> fields;   // the FlowConfig fields it uses
  std::vector<OptionDoc> options;
  std::function<absl::StatusOr<std::unique_ptr<Flow>>(const FlowConfig&, std::shared_ptr<const Target>)>
      create;
};

// Every built-in method, in a fixed order.
const std::vector<const FlowMethod*>& FlowMethods();
// INVALID_ARGUMENT naming the known methods when `name` is unknown.
absl::StatusOr<const FlowMethod*> FindFlowMethod(const std::string& name);

// Validates `config` against its method and `target` and builds the flow. INVALID_ARGUMENT for an
// unknown method, a field or option the method does not use, or a value out of range;
// FAILED_PRECONDITION when the method cannot run on this kind of target.
absl::StatusOr<std::unique_ptr<Flow>> CreateFlow(const FlowConfig& config, std::shared_ptr<const Target> target);

// The methods, one per file.
const FlowMethod& SdFlowMethod();
const FlowMethod& SvgdFlowMethod();
const FlowMethod& LangevinFlowMethod();
const FlowMethod& MmdFlowMethod();
const FlowMethod& MmdGaussianFlowMethod();
const FlowMethod& WgfFlowMethod();
const FlowMethod& MalaFlowMethod();
const FlowMethod& HmcFlowMethod();
const FlowMethod& KingFlowMethod();
const FlowMethod& NtKingFlowMethod();
const FlowMethod& SteinKingFlowMethod();

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_FLOW_H_
