// The "gaussian" family: N(mean, cov) in any dimension.
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/gaussian_component.h"
#include "core/targets/params.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

class GaussianTarget final : public Target {
 public:
  GaussianTarget(GaussianComponent g, ParamMap params) : g_(std::move(g)), params_(std::move(params)) {}

  int64_t dim() const override { return g_.dim(); }
  const std::string& family() const override { return GaussianFamily().name; }
  const ParamMap& params() const override { return params_; }
  bool has_density() const override { return true; }
  absl::Status LogDensity(const Points& x, VectorXd* out) const override {
    g_.LogDensity(x, out);
    return absl::OkStatus();
  }
  absl::Status Score(const Points& x, Points* out) const override {
    g_.Score(x, out);
    return absl::OkStatus();
  }
  absl::Status ScoreJacobian(const Points& x, std::vector<MatrixXd>* out) const override {
    out->assign(x.rows(), -g_.precision());
    return absl::OkStatus();
  }
  bool can_sample() const override { return true; }
  absl::Status Sample(int64_t n, Rng& rng, Points* out) const override {
    g_.Sample(n, rng, out);
    return absl::OkStatus();
  }

 private:
  GaussianComponent g_;
  ParamMap params_;
};

absl::StatusOr<std::unique_ptr<Target>> CreateGaussian(int64_t d, const ParamMap& params) {
  ParamReader r(params, "gaussian");
  SAMPLED_ASSIGN_OR_RETURN(auto mean_v, r.Get("mean", {static_cast<size_t>(d)}));
  SAMPLED_ASSIGN_OR_RETURN(auto cov, r.SpdMatrix("cov", d));
  SAMPLED_ASSIGN_OR_RETURN(auto precision, r.SpdMatrix("precision", d));
  SAMPLED_ASSIGN_OR_RETURN(auto std_v, r.Get("std", {1, static_cast<size_t>(d)}));
  SAMPLED_RETURN_IF_ERROR(r.Finish());
  const int given = cov.has_value() + precision.has_value() + std_v.has_value();
  if (given > 1) {
    return r.Error("cov", "give at most one of cov, precision and std");
  }

  // Defaults: at d = 2 the benchmark Gaussian of 003 (mean (-1, 1), precision [[3, -0.5], [-0.5, 1]]);
  // otherwise the standard normal.
  VectorXd mean = VectorXd::Zero(d);
  MatrixXd default_precision = MatrixXd::Identity(d, d);
  if (d == 2) {
    mean << -1.0, 1.0;
    default_precision << 3.0, -0.5, -0.5, 1.0;
  }
  if (mean_v.has_value()) mean = Eigen::Map<const VectorXd>(mean_v->data(), d);

  absl::StatusOr<GaussianComponent> g = absl::InternalError("unset");
  if (cov.has_value()) {
    g = GaussianComponent::FromCovariance(mean, *cov);
  } else if (std_v.has_value()) {
    VectorXd s(d);
    for (int64_t i = 0; i < d; ++i) s(i) = (*std_v)[std_v->size() == 1 ? 0 : i];
    if ((s.array() <= 0).any()) return r.Error("std", "must be > 0");
    g = GaussianComponent::FromCovariance(mean, s.array().square().matrix().asDiagonal());
  } else {
    g = GaussianComponent::FromPrecision(mean, precision.has_value() ? *precision : default_precision);
  }
  if (!g.ok()) return r.Error("cov", std::string(g.status().message()));

  ParamMap resolved;
  resolved["mean"] = std::vector<double>(mean.data(), mean.data() + d);
  resolved["cov"] = FlattenMatrix(g->cov());
  return std::make_unique<GaussianTarget>(*std::move(g), std::move(resolved));
}

}  // namespace

const TargetFamily& GaussianFamily() {
  static const TargetFamily kFamily{
      "gaussian",
      "multivariate normal N(mean, cov); at dim 2 the default is 003's benchmark Gaussian",
      2,
      {{"mean", "d values; default (-1, 1) at dim 2, else 0"},
       {"cov", "d*d values, row-major, symmetric positive definite"},
       {"precision", "d*d values, the inverse covariance; default [[3, -0.5], [-0.5, 1]] at dim 2, else I"},
       {"std", "1 or d values: a diagonal covariance std^2 (give one of cov, precision, std)"}},
      CreateGaussian};
  return kFamily;
}

}  // namespace sampled
