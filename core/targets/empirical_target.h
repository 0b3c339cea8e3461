// A target given by samples: the uploaded N x d array. Thread-safe (immutable).
#ifndef SAMPLED_CORE_TARGETS_EMPIRICAL_TARGET_H_
#define SAMPLED_CORE_TARGETS_EMPIRICAL_TARGET_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/targets/target.h"

namespace sampled {

class EmpiricalTarget final : public Target {
 public:
  // INVALID_ARGUMENT when there are no rows, no columns, or a non-finite value (the message names the
  // first bad row and column).
  static absl::StatusOr<std::unique_ptr<EmpiricalTarget>> Create(Points samples);

  int64_t dim() const override { return samples_.cols(); }
  const std::string& family() const override;
  const ParamMap& params() const override;
  const Points* samples() const override { return &samples_; }
  int64_t bytes() const override { return PointsBytes(samples_); }

 private:
  explicit EmpiricalTarget(Points samples) : samples_(std::move(samples)) {}
  Points samples_;
};

// OK when every entry of `points` is finite; INVALID_ARGUMENT naming the first bad entry otherwise.
// `what` names the array in the message ("samples", "initial particles").
absl::Status CheckFinite(const Points& points, const std::string& what);

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_EMPIRICAL_TARGET_H_
