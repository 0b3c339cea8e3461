// What a flow will hold, estimated before it is built: so that the server can charge a flow job against
// its memory budget before allocating (a KiNG `basis` or an ntKiNG `hidden` option can ask for tens of GB).
#ifndef SAMPLED_CORE_FLOWS_FLOW_MEMORY_H_
#define SAMPLED_CORE_FLOWS_FLOW_MEMORY_H_

#include <cstdint>

#include "core/flows/flow.h"

namespace sampled {

// An upper estimate, in bytes, of a flow's state and scratch for `particles` particles on `target`: the
// particle-sized buffers every step keeps (next, displacement, direction, optimiser memory, ...), the
// target-sized ones (centred target copies of the kernel flows), and the method's own (KiNG's Jacobians of
// its statistics, ntKiNG's M x M kernel and activations, Stein KiNG's test functions). Options are read as
// the methods read them, with their defaults; a bad value counts as the default (CreateFlow refuses it).
// Saturates at INT64_MAX instead of overflowing.
int64_t EstimateFlowBytes(const FlowConfig& config, const Target& target, int64_t particles);

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_FLOW_MEMORY_H_
