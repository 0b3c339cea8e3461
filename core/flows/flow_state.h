// Building a flow's initial state, and turning a state into bytes and back (checkpoints).
#ifndef SAMPLED_CORE_FLOWS_FLOW_STATE_H_
#define SAMPLED_CORE_FLOWS_FLOW_STATE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/flows/flow.h"

namespace sampled {

// Where the particles start: `given` particles, or `count` draws from N(mean, std^2 I) (mean: 1 value
// broadcast or d values; default 0; std default 1).
struct InitialParticles {
  int64_t count = 0;
  std::vector<double> mean;
  std::optional<double> std;
  const Points* given = nullptr;
};

// The state at step 0: particles drawn with Rng(seed) (which the state then keeps), empty optimiser
// memory. INVALID_ARGUMENT for a bad count, mean length, std, non-finite or wrong-dimension particles.
absl::StatusOr<FlowState> MakeInitialState(const InitialParticles& init, int64_t dim, uint64_t seed);

// A versioned little-endian binary encoding of the whole state.
std::string SerializeFlowState(const FlowState& state);
// INVALID_ARGUMENT when `bytes` is not a state written by SerializeFlowState.
absl::StatusOr<FlowState> ParseFlowState(std::string_view bytes);

// Displacement statistics of a step (mean and max of the row norms of new - old).
void DisplacementStats(const Points& displacement, StepStats* stats);

// The commit every step ends with, in one place. A step computes into its own scratch and changes `state`
// only here, so a step that fails (or is stopped between blocks) leaves the state of the step before.
//
// CommitParticles: `next` becomes the particles (swapped, not copied), `memory` (when given) the optimiser's
// memory, `rng` the generator; the step count advances; stats gets the step, `step_size` and the
// displacement statistics.
void CommitParticles(Points& next, const Points& displacement, Points* memory, const Rng& rng, double step_size,
                     FlowState& state, StepStats* stats);
// next = particles + displacement, refused when not finite (FAILED_PRECONDITION "<method> step N made
// particles non-finite; <hint>", the state untouched), then CommitParticles.
absl::Status CommitDisplacement(const char* method, const char* hint, const Points& displacement, Points& next,
                                Points* memory, const Rng& rng, double step_size, FlowState& state,
                                StepStats* stats);

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_FLOW_STATE_H_
