// A density q(x) = N(T(x); mean, cov) where T is a smooth bijection of R^2 with |det dT/dx| = 1, so the
// log-density needs no Jacobian term: the shape of the rosenbrock and squiggle benchmark densities.
// Thread-safe (immutable).
#ifndef SAMPLED_CORE_TARGETS_TRANSFORMED_GAUSSIAN_H_
#define SAMPLED_CORE_TARGETS_TRANSFORMED_GAUSSIAN_H_

#include <functional>
#include <string>

#include "core/targets/gaussian_component.h"
#include "core/targets/target.h"

namespace sampled {

struct Transform2d {
  // z = T(x) for every row.
  std::function<void(const Points& x, Points* z)> forward;
  // x = T^-1(z) for every row.
  std::function<void(const Points& z, Points* x)> inverse;
  // g <- (dT/dx)^T g at every row of x (turns a score in z into a score in x).
  std::function<void(const Points& x, Points* g)> apply_jacobian_transpose;
};

class TransformedGaussianTarget final : public Target {
 public:
  TransformedGaussianTarget(const std::string& family, GaussianComponent g, Transform2d t, ParamMap params)
      : family_(family), g_(std::move(g)), t_(std::move(t)), params_(std::move(params)) {}

  int64_t dim() const override { return 2; }
  const std::string& family() const override { return family_; }
  const ParamMap& params() const override { return params_; }
  bool has_density() const override { return true; }
  absl::Status LogDensity(const Points& x, VectorXd* out) const override {
    Points z;
    t_.forward(x, &z);
    g_.LogDensity(z, out);
    return absl::OkStatus();
  }
  absl::Status Score(const Points& x, Points* out) const override {
    Points z;
    t_.forward(x, &z);
    g_.Score(z, out);
    t_.apply_jacobian_transpose(x, out);
    return absl::OkStatus();
  }
  bool can_sample() const override { return true; }
  absl::Status Sample(int64_t n, Rng& rng, Points* out) const override {
    Points z;
    g_.Sample(n, rng, &z);
    t_.inverse(z, out);
    return absl::OkStatus();
  }

 private:
  const std::string family_;
  GaussianComponent g_;
  Transform2d t_;
  ParamMap params_;
};

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_TRANSFORMED_GAUSSIAN_H_
