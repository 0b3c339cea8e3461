// Reading a family's parameters from a ParamMap: defaults, shape checks, and a refusal of any key the
// family does not know, so a misspelt parameter is an error instead of silently ignored.
#ifndef SAMPLED_CORE_TARGETS_PARAMS_H_
#define SAMPLED_CORE_TARGETS_PARAMS_H_

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/points.h"
#include "core/targets/target.h"

namespace sampled {

// Not thread-safe; one per Create call.
class ParamReader {
 public:
  ParamReader(const ParamMap& params, std::string family) : params_(params), family_(std::move(family)) {}

  // The values of `key` if present (marking it known), else nullopt. Errors (INVALID_ARGUMENT) when the
  // count is not one of `sizes` (empty: any count) or a value is not finite.
  absl::StatusOr<std::optional<std::vector<double>>> Get(const std::string& key,
                                                         std::vector<size_t> sizes = {});
  // A scalar parameter with a default; `positive` requires > 0.
  absl::StatusOr<double> Scalar(const std::string& key, double default_value, bool positive = false);
  // A d x d symmetric positive-definite matrix given row-major; nullopt when absent.
  absl::StatusOr<std::optional<MatrixXd>> SpdMatrix(const std::string& key, int64_t d);

  // Marks `key` as known without reading it (for keys read through another path).
  void Accept(const std::string& key) { known_.insert(key); }

  // INVALID_ARGUMENT naming the first parameter that no accessor asked for, with the known keys.
  absl::Status Finish() const;

  // An INVALID_ARGUMENT error about `key`, prefixed with the family and key.
  absl::Status Error(const std::string& key, const std::string& message) const;

 private:
  const ParamMap& params_;
  std::string family_;
  std::set<std::string> known_;
};

// Stores a matrix row-major into a parameter vector.
std::vector<double> FlattenMatrix(const MatrixXd& m);

}  // namespace sampled

#endif  // SAMPLED_CORE_TARGETS_PARAMS_H_
