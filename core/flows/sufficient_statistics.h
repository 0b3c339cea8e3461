// Sufficient statistics T(x) of the exponential families KiNG and ntKiNG project onto (000 Sec. 4, 5.2,
// App. D), with their Jacobians in closed form.
//
// Layout: for n points, T is n x b; the Jacobian is n x (d*b), row i holding dT/dx_a at x_i for a = 0..d-1 as
// d consecutive blocks of b values (so a (n*d) x b row-major view stacks the d x b Jacobians).
#ifndef SAMPLED_CORE_FLOWS_SUFFICIENT_STATISTICS_H_
#define SAMPLED_CORE_FLOWS_SUFFICIENT_STATISTICS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/points.h"
#include "core/targets/target.h"

namespace sampled {

// The structure of RBF features T_m(x) = exp(-|x - b_m|^2 / (2 sigma^2)): J(x)^T v =
// -(1/sigma^2) T(x) .* ((x . v) 1 - B v), which contractions over many x can use instead of the Jacobian.
struct RbfStructure {
  const Points* basis = nullptr;  // b x d; owned by the statistics
  double sigma = 0;
};

// Immutable after construction; thread-safe.
class SufficientStatistics {
 public:
  virtual ~SufficientStatistics() = default;
  virtual int64_t size() const = 0;
  // T(x) into t (n x b) and, when jac is not null, the Jacobian into jac (n x (d*b)).
  virtual absl::Status Evaluate(const Points& x, Points* t, Points* jac) const = 0;
  // The RBF structure when these are plain RBF features (valid while the statistics live).
  virtual std::optional<RbfStructure> rbf() const { return std::nullopt; }
};

// T = [x, upper triangle of x x^T] (the Gaussian family): d + d(d+1)/2 statistics.
std::unique_ptr<SufficientStatistics> GaussianStatistics(int64_t d);
// T_m = exp(-|x - b_m|^2 / (2 sigma^2)) for the rows b_m of `basis`.
std::unique_ptr<SufficientStatistics> RbfStatistics(Points basis, double sigma);
// T = x_i x_j for each pair (000 Sec. 5.2, pairwise potentials).
std::unique_ptr<SufficientStatistics> PairStatistics(int64_t d, std::vector<std::pair<int, int>> pairs);
// The concatenation of several statistics.
std::unique_ptr<SufficientStatistics> ConcatStatistics(std::vector<std::unique_ptr<SufficientStatistics>> parts);
// The Stein family of a density target (000 App. D): T_{a,m}(x) = d_a log p(x) f_m(x) + d_a f_m(x) with RBF test
// functions f_m on `basis` (bandwidth sigma); E_p[T] = 0. Its Jacobian needs the score's Jacobian.
std::unique_ptr<SufficientStatistics> SteinStatistics(std::shared_ptr<const Target> target, Points basis, double sigma);

// Parses "0-1,2-5" into pairs of coordinates; INVALID_ARGUMENT naming the bad pair (not two integers, an index
// outside [0, d), or i == j).
absl::StatusOr<std::vector<std::pair<int, int>>> ParsePairs(const std::string& text, int64_t d);

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_SUFFICIENT_STATISTICS_H_
