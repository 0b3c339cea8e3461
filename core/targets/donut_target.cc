// The "donut" family (003's 2-D benchmark, any dimension here): log q(x) = -(|x| - radius)^2 / width.
#include <cmath>
#include <memory>

#include "core/common/status_macros.h"
#include "core/targets/params.h"
#include "core/targets/target_family.h"

namespace sampled {
namespace {

class DonutTarget final : public Target {
 public:
  DonutTarget(int64_t d, double radius, double width)
      : d_(d), radius_(radius), width_(width), params_{{"radius", {radius}}, {"width", {width}}} {}

  int64_t dim() const override { return d_; }
  const std::string& family() const override { return DonutFamily().name; }
  const ParamMap& params() const override { return params_; }
  bool has_density() const override { return true; }
  absl::Status LogDensity(const Points& x, VectorXd* out) const override {
    *out = -(x.rowwise().norm().array() - radius_).square() / width_;
    return absl::OkStatus();
  }
  // grad = -2 (|x| - radius) / width * x / |x|; at x = 0 the density has a cusp and the score is set to 0.
  absl::Status Score(const Points& x, Points* out) const override {
    const VectorXd r = x.rowwise().norm();
    const VectorXd coeff = (r.array() > 0).select(-2.0 * (r.array() - radius_) / (width_ * r.array()), 0.0);
    *out = x.array().colwise() * coeff.array();
    return absl::OkStatus();
  }

 private:
  int64_t d_;
  double radius_, width_;
  ParamMap params_;
};

absl::StatusOr<std::unique_ptr<Target>> CreateDonut(int64_t d, const ParamMap& params) {
  ParamReader r(params, "donut");
  SAMPLED_ASSIGN_OR_RETURN(double radius, r.Scalar("radius", 2.5, /*positive=*/true));
  SAMPLED_ASSIGN_OR_RETURN(double width, r.Scalar("width", 0.5, /*positive=*/true));
  SAMPLED_RETURN_IF_ERROR(r.Finish());
  return std::make_unique<DonutTarget>(d, radius, width);
}

}  // namespace

const TargetFamily& DonutFamily() {
  static const TargetFamily kFamily{"donut",
                                    "ring density log q = -(|x| - radius)^2 / width (no exact sampler)",
                                    2,
                                    {{"radius", "ring radius; default 2.5"},
                                     {"width", "the divisor of the squared radial distance; default 0.5"}},
                                    CreateDonut};
  return kFamily;
}

}  // namespace sampled
