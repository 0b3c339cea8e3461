// The "rosenbrock" family (003's 2-D benchmark): z = (-x0, -x1 - x0^2 - 1) ~ N(mean, cov).
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/params.h"
#include "core/targets/target_family.h"
#include "core/targets/transformed_gaussian.h"

namespace sampled {
namespace {

Transform2d RosenbrockTransform() {
  Transform2d t;
  t.forward = [](const Points& x, Points* z) {
    z->resize(x.rows(), 2);
    z->col(0) = -x.col(0);
    z->col(1) = -x.col(1).array() - x.col(0).array().square() - 1.0;
  };
  t.inverse = [](const Points& z, Points* x) {
    x->resize(z.rows(), 2);
    x->col(0) = -z.col(0);
    x->col(1) = -z.col(1).array() - x->col(0).array().square() - 1.0;
  };
  // dT/dx = [[-1, 0], [-2 x0, -1]]; its transpose maps (g0, g1) to (-g0 - 2 x0 g1, -g1).
  t.apply_jacobian_transpose = [](const Points& x, Points* g) {
    const VectorXd g1 = g->col(1);
    g->col(0) = -g->col(0).array() - 2.0 * x.col(0).array() * g1.array();
    g->col(1) = -g1;
  };
  return t;
}

absl::StatusOr<std::unique_ptr<Target>> CreateRosenbrock(int64_t d, const ParamMap& params) {
  ParamReader r(params, "rosenbrock");
  if (d != 2) return r.Error("dim", absl::StrCat("rosenbrock is defined in 2 dimensions, got dim ", d));
  SAMPLED_ASSIGN_OR_RETURN(auto mean_v, r.Get("mean", {2}));
  SAMPLED_ASSIGN_OR_RETURN(auto cov, r.SpdMatrix("cov", 2));
  SAMPLED_RETURN_IF_ERROR(r.Finish());
  VectorXd mean(2);
  mean << 0.0, 1.0;
  if (mean_v.has_value()) mean << (*mean_v)[0], (*mean_v)[1];
  MatrixXd c(2, 2);
  c << 1.0, 0.5, 0.5, 1.0;
  if (cov.has_value()) c = *cov;
  SAMPLED_ASSIGN_OR_RETURN(GaussianComponent g, GaussianComponent::FromCovariance(mean, c));
  ParamMap resolved{{"mean", {mean(0), mean(1)}}, {"cov", FlattenMatrix(c)}};
  return std::make_unique<TransformedGaussianTarget>("rosenbrock", std::move(g), RosenbrockTransform(),
                                                     std::move(resolved));
}

}  // namespace

const TargetFamily& RosenbrockFamily() {
  static const TargetFamily kFamily{
      "rosenbrock",
      "banana density: z = (-x0, -x1 - x0^2 - 1) ~ N(mean, cov), dim 2",
      2,
      {{"mean", "2 values, the mean of z; default (0, 1)"},
       {"cov", "4 values, the covariance of z; default [[1, 0.5], [0.5, 1]]"}},
      CreateRosenbrock};
  return kFamily;
}

}  // namespace sampled
