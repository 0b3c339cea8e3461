#include "core/targets/empirical_target.h"

#include <cmath>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace sampled {

absl::Status CheckFinite(const Points& points, const std::string& what) {
  if (points.allFinite()) return absl::OkStatus();
  for (int64_t i = 0; i < points.rows(); ++i) {
    for (int64_t j = 0; j < points.cols(); ++j) {
      if (!std::isfinite(points(i, j))) {
        return absl::InvalidArgumentError(absl::StrCat(what, " contain a non-finite value (", points(i, j),
                                                       ") at row ", i, ", column ", j,
                                                       "; remove or replace NaN and Inf entries"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EmpiricalTarget>> EmpiricalTarget::Create(Points samples) {
  if (samples.rows() == 0 || samples.cols() == 0) {
    return absl::InvalidArgumentError(absl::StrCat("samples must be a non-empty N x d array; got ",
                                                   samples.rows(), " x ", samples.cols()));
  }
  SAMPLED_RETURN_IF_ERROR(CheckFinite(samples, "samples"));
  return absl::WrapUnique(new EmpiricalTarget(std::move(samples)));
}

const std::string& EmpiricalTarget::family() const {
  static const std::string kFamily = "samples";
  return kFamily;
}

const ParamMap& EmpiricalTarget::params() const {
  static const ParamMap kEmpty;
  return kEmpty;
}

}  // namespace sampled
