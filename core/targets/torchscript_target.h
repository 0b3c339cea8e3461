// A target defined by a user's model: a TorchScript module whose forward maps x [n, d] to log q [n] (or
// to an energy E [n], log q = -E, with `energy`). TorchScript is code, so a module is loaded only when
// every operation in every graph it holds (submodules and called functions inlined) is in an allowlist of
// pure tensor operations (TorchScriptAllowedOps: no file, network, print, thread, random, in-place,
// uninitialised-memory or loop ops; the threat model is in docs/torchscript.md) and its code defines no
// __setstate__ (which the loader would run before any check), and then validated on probe points: float64 and float32 input
// [n, d] gives a finite [n], and a finite score by autograd. Scores come from autograd, and the module is
// its own autograd form for Fisher training.
//
// Thread-safe: evaluations of one module are serialised by a mutex (LibTorch documents no guarantee for
// concurrent calls of one scripted method), so jobs on one model target take turns.
#ifndef SAMPLED_CORE_TARGETS_TORCHSCRIPT_TARGET_H_
#define SAMPLED_CORE_TARGETS_TORCHSCRIPT_TARGET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/targets/target_family.h"

namespace sampled {

struct TorchScriptSpec {
  int64_t dim = 0;      // d >= 1: the module's input width
  bool energy = false;  // forward returns an energy E (log q = -E) instead of log q
  // Past this point in time the load is abandoned between its stages (parse, op scan, probes) with
  // DEADLINE_EXCEEDED; a single stage is not interrupted.
  absl::Time deadline = absl::InfiniteFuture();
};

// INVALID_ARGUMENT for bytes that are not a TorchScript archive (the loader's message), a module without
// forward, an operation outside the allowlist (naming it), or a probe that fails (naming the probe and
// what was wrong); DEADLINE_EXCEEDED past spec.deadline.
absl::StatusOr<std::unique_ptr<Target>> LoadTorchScriptTarget(std::string_view bytes, const TorchScriptSpec& spec);

// The operations a module may use, sorted (listed in docs/torchscript.md).
const std::vector<std::string>& TorchScriptAllowedOps();

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_TORCHSCRIPT_TARGET_H_
