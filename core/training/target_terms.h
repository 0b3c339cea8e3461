// What Fisher training needs of the target at the sampler's draws (003 Eq. 9): the score s_q, its
// divergence (the Laplacian of log q) and the x-gradient of 1/2 |s_q|^2 + div s_q (third derivatives of
// log q), by autograd on the target's LibTorch form of its density, in float64.
#ifndef SAMPLED_CORE_TRAINING_TARGET_TERMS_H_
#define SAMPLED_CORE_TRAINING_TARGET_TERMS_H_

#include "absl/status/status.h"
#include "core/common/points.h"
#include "core/targets/torch_density.h"

namespace sampled::training {

struct FisherTargetTerms {
  Points score;                // s_q(x), n x d
  Eigen::VectorXd laplacian;   // div s_q(x), n
  Points gradient;             // grad_x [1/2 |s_q|^2 + div s_q], n x d
};

// The terms at the rows of x by autograd. INTERNAL with LibTorch's message when the density's autograd fails.
absl::Status ComputeFisherTargetTerms(const TorchLogDensity& density, const Points& x, FisherTargetTerms* out);
// From the target's closed form (Target::FisherTerms) where it has one, else by autograd on `density`.
absl::Status ComputeFisherTargetTerms(const Target& target, const TorchLogDensity& density, const Points& x,
                                      FisherTargetTerms* out);

}  // namespace sampled::training

#endif  // SAMPLED_CORE_TRAINING_TARGET_TERMS_H_
