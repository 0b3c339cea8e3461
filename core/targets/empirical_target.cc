#include "core/targets/empirical_target.h"

#include <cmath>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace sampled {

namespace {

// True when every value is finite: x * 0 is 0 for finite x and NaN for Inf and NaN, and a NaN survives the
// sum. One multiply-add per value in a loop the compiler vectorises (Eigen's allFinite() compares
// elementwise and took a quarter of a 10^8-value upload).
bool AllFinite(const double* v, int64_t n) {
  constexpr int kLanes = 8;
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kLanes; ++k) acc[k] += v[i + k] * 0.0;
  }
  double total = 0;
  for (; i < n; ++i) total += v[i] * 0.0;
  for (int k = 0; k < kLanes; ++k) total += acc[k];
  return total == 0.0;
}

}  // namespace

absl::Status CheckFinite(const Points& points, const std::string& what) {
  if (AllFinite(points.data(), points.size())) return absl::OkStatus();
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
