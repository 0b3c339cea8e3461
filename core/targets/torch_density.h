// A target's unnormalised log-density as a LibTorch function, for what needs derivatives beyond the score
// (Fisher training: the Laplacian of log q and its gradient, third derivatives) by autograd. The families
// have one each, built from their resolved parameters (core/targets/torch_forms.cc); a target defined by
// a user's model (later: TorchScript) is one natively.
#ifndef SAMPLED_CORE_TARGETS_TORCH_DENSITY_H_
#define SAMPLED_CORE_TARGETS_TORCH_DENSITY_H_

#include <functional>
#include <memory>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "core/targets/target.h"

namespace sampled {

// Immutable; thread-safe.
class TorchLogDensity {
 public:
  virtual ~TorchLogDensity() = default;
  // log q up to a constant, for x of shape [n, d] (float64); returns [n]. Differentiable by autograd.
  virtual at::Tensor operator()(const at::Tensor& x) const = 0;
};

// The autograd form of a family's density from its resolved parameters. FAILED_PRECONDITION for a target
// defined by samples or a family without one.
absl::StatusOr<std::shared_ptr<const TorchLogDensity>> FamilyTorchLogDensity(const Target& target);

// Runs `fn`, turning a LibTorch exception (c10::Error) into INTERNAL, or INVALID_ARGUMENT when
// `invalid_argument` is set, with its message: no exception crosses our APIs.
absl::Status TorchCall(const std::function<absl::Status()>& fn, bool invalid_argument = false);

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_TORCH_DENSITY_H_
