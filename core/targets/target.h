// The one interface every target implements. A target is either a set of samples (uploaded data) or an
// unnormalised log-density with its exact score; a density target may also draw exact samples (Gaussians,
// mixtures), which lets sample-based metrics and flows use it.
//
// Targets are immutable after construction and thread-safe: many jobs read one target at once.
#ifndef SAMPLED_CORE_TARGETS_TARGET_H_
#define SAMPLED_CORE_TARGETS_TARGET_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/param_map.h"
#include "core/common/points.h"
#include "core/common/rng.h"

namespace sampled {

class TorchLogDensity;  // core/targets/torch_density.h

class Target {
 public:
  virtual ~Target() = default;

  // Dimension of the space the target lives in.
  virtual int64_t dim() const = 0;
  // "samples" for data targets, the family name ("gaussian", "mixture", ...) for density targets.
  virtual const std::string& family() const = 0;
  // The parameters the target was built with, defaults filled in (empty for data targets).
  virtual const ParamMap& params() const = 0;

  // The samples of a data target (N x d), or nullptr for a density target.
  virtual const Points* samples() const { return nullptr; }

  // True when LogDensity and Score are available.
  virtual bool has_density() const { return false; }
  // Unnormalised log q at each row of x (out: N). FAILED_PRECONDITION without a density.
  virtual absl::Status LogDensity(const Points& x, Eigen::VectorXd* out) const;
  // The score grad_x log q at each row of x (out: N x d). FAILED_PRECONDITION without a density.
  virtual absl::Status Score(const Points& x, Points* out) const;

  // The Jacobian of the score (the Hessian of log q) at each row of x: out[i] is d x d with
  // (out[i])(a, c) = d/dx_c d/dx_a log q. The default takes central differences of Score (relative step
  // 1e-5, error ~1e-9 for smooth densities); families override it with the closed form where they can.
  virtual absl::Status ScoreJacobian(const Points& x, std::vector<MatrixXd>* out) const;

  // What Fisher training needs (003 Eq. 9) at the rows of x, in closed form where a family has it: the
  // score, its divergence (the Laplacian of log q, n) and grad_x [1/2 |s|^2 + div s] (n x d). Families without
  // a closed form return the status code UNIMPLEMENTED (the default), and Fisher training then takes the terms
  // by autograd from torch_log_density() (core/training/target_terms.cc).
  virtual absl::Status FisherTerms(const Points& x, Points* score, VectorXd* laplacian, Points* gradient) const;

  // True when Sample draws exact independent samples.
  virtual bool can_sample() const { return false; }
  // n exact samples into out (n x d). FAILED_PRECONDITION when the target cannot sample.
  virtual absl::Status Sample(int64_t n, Rng& rng, Points* out) const;

  // Bytes of memory the target holds (its samples and parameters).
  virtual int64_t bytes() const;

  // The log-density as a LibTorch function, for derivatives by autograd beyond the score (Fisher
  // training). The default builds the family's form from params(); FAILED_PRECONDITION without a density.
  virtual absl::StatusOr<std::shared_ptr<const TorchLogDensity>> torch_log_density() const;

  // Samples to compare against for sample-based metrics: the data of a data target, or `n` exact draws
  // from a density target that can sample. FAILED_PRECONDITION otherwise.
  absl::Status ReferenceSamples(int64_t n, Rng& rng, Points* out) const;
};

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_TARGET_H_
