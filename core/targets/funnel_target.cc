// The "funnel" family (003's 2-D benchmark): x1 ~ N(v_mean, v_std^2), x0 | x1 ~ N(x_mean, exp(x1)).
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/targets/params.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;

class FunnelTarget final : public Target {
 public:
  FunnelTarget(double v_mean, double v_std, double x_mean)
      : v_mean_(v_mean),
        v_var_(v_std * v_std),
        x_mean_(x_mean),
        params_{{"v_mean", {v_mean}}, {"v_std", {v_std}}, {"x_mean", {x_mean}}} {}

  int64_t dim() const override { return 2; }
  const std::string& family() const override { return FunnelFamily().name; }
  const ParamMap& params() const override { return params_; }
  bool has_density() const override { return true; }

  // log N(x1; v_mean, v_std^2) + log N(x0; x_mean, e^{x1}), normalised.
  absl::Status LogDensity(const Points& x, VectorXd* out) const override {
    const auto v = x.col(1).array();
    const auto u = x.col(0).array() - x_mean_;
    *out = -0.5 * (v - v_mean_).square() / v_var_ - 0.5 * std::log(v_var_) - 0.5 * u.square() * (-v).exp() -
           0.5 * v - kLog2Pi;
    return absl::OkStatus();
  }
  // d/dx0 = -(x0 - x_mean) e^{-x1};  d/dx1 = -(x1 - v_mean)/v_std^2 + (x0 - x_mean)^2 e^{-x1} / 2 - 1/2.
  absl::Status Score(const Points& x, Points* out) const override {
    const auto v = x.col(1).array();
    const auto u = x.col(0).array() - x_mean_;
    out->resize(x.rows(), 2);
    out->col(0) = -u * (-v).exp();
    out->col(1) = -(v - v_mean_) / v_var_ + 0.5 * u.square() * (-v).exp() - 0.5;
    return absl::OkStatus();
  }
  bool can_sample() const override { return true; }
  absl::Status Sample(int64_t n, Rng& rng, Points* out) const override {
    out->resize(n, 2);
    for (int64_t i = 0; i < n; ++i) {
      const double v = v_mean_ + std::sqrt(v_var_) * rng.Normal();
      (*out)(i, 1) = v;
      (*out)(i, 0) = x_mean_ + std::exp(0.5 * v) * rng.Normal();
    }
    return absl::OkStatus();
  }

 private:
  double v_mean_, v_var_, x_mean_;
  ParamMap params_;
};

absl::StatusOr<std::unique_ptr<Target>> CreateFunnel(int64_t d, const ParamMap& params) {
  ParamReader r(params, "funnel");
  if (d != 2) return r.Error("dim", absl::StrCat("funnel is defined in 2 dimensions, got dim ", d));
  SAMPLED_ASSIGN_OR_RETURN(double v_mean, r.Scalar("v_mean", 4.0));
  SAMPLED_ASSIGN_OR_RETURN(double v_std, r.Scalar("v_std", 3.0, /*positive=*/true));
  SAMPLED_ASSIGN_OR_RETURN(double x_mean, r.Scalar("x_mean", 1.0));
  SAMPLED_RETURN_IF_ERROR(r.Finish());
  return std::make_unique<FunnelTarget>(v_mean, v_std, x_mean);
}

}  // namespace

const TargetFamily& FunnelFamily() {
  static const TargetFamily kFamily{"funnel",
                                    "Neal's funnel: x1 ~ N(v_mean, v_std^2), x0 | x1 ~ N(x_mean, exp(x1)), dim 2",
                                    2,
                                    {{"v_mean", "mean of x1; default 4"},
                                     {"v_std", "standard deviation of x1; default 3"},
                                     {"x_mean", "mean of x0 given x1; default 1"}},
                                    CreateFunnel};
  return kFamily;
}

}  // namespace sampled
