// The "squiggle" family (003's 2-D benchmark): z = (x0, x1 + sin(freq x0)) ~ N(mean, cov).
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/params.h"
#include "core/targets/target_family.h"
#include "core/targets/transformed_gaussian.h"

namespace sampled {
namespace {

Transform2d SquiggleTransform(double freq) {
  Transform2d t;
  t.forward = [freq](const Points& x, Points* z) {
    z->resize(x.rows(), 2);
    z->col(0) = x.col(0);
    z->col(1) = x.col(1).array() + (freq * x.col(0).array()).sin();
  };
  t.inverse = [freq](const Points& z, Points* x) {
    x->resize(z.rows(), 2);
    x->col(0) = z.col(0);
    x->col(1) = z.col(1).array() - (freq * z.col(0).array()).sin();
  };
  // dT/dx = [[1, 0], [freq cos(freq x0), 1]]; its transpose maps (g0, g1) to (g0 + freq cos(freq x0) g1, g1).
  t.apply_jacobian_transpose = [freq](const Points& x, Points* g) {
    g->col(0) = g->col(0).array() + freq * (freq * x.col(0).array()).cos() * g->col(1).array();
  };
  return t;
}

absl::StatusOr<std::unique_ptr<Target>> CreateSquiggle(int64_t d, const ParamMap& params) {
  ParamReader r(params, "squiggle");
  if (d != 2) return r.Error("dim", absl::StrCat("squiggle is defined in 2 dimensions, got dim ", d));
  SAMPLED_ASSIGN_OR_RETURN(auto mean_v, r.Get("mean", {2}));
  SAMPLED_ASSIGN_OR_RETURN(auto cov, r.SpdMatrix("cov", 2));
  SAMPLED_ASSIGN_OR_RETURN(double freq, r.Scalar("freq", 2.0));
  SAMPLED_RETURN_IF_ERROR(r.Finish());
  VectorXd mean(2);
  mean << 1.0, 1.0;
  if (mean_v.has_value()) mean << (*mean_v)[0], (*mean_v)[1];
  MatrixXd c(2, 2);
  c << 2.0, 0.25, 0.25, 0.5;
  if (cov.has_value()) c = *cov;
  SAMPLED_ASSIGN_OR_RETURN(GaussianComponent g, GaussianComponent::FromCovariance(mean, c));
  ParamMap resolved{{"mean", {mean(0), mean(1)}}, {"cov", FlattenMatrix(c)}, {"freq", {freq}}};
  return std::make_unique<TransformedGaussianTarget>("squiggle", std::move(g), SquiggleTransform(freq),
                                                     std::move(resolved));
}

}  // namespace

const TargetFamily& SquiggleFamily() {
  static const TargetFamily kFamily{
      "squiggle",
      "periodic density: z = (x0, x1 + sin(freq x0)) ~ N(mean, cov), dim 2",
      2,
      {{"mean", "2 values, the mean of z; default (1, 1)"},
       {"cov", "4 values, the covariance of z; default [[2, 0.25], [0.25, 0.5]]"},
       {"freq", "the frequency of the sine; default 2"}},
      CreateSquiggle};
  return kFamily;
}

}  // namespace sampled
